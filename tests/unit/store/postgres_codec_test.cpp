// The PostgreSQL store's text-format codec: array literals both ways, bytea hex, microseconds.
#include <gtest/gtest.h>

#include "store/postgres/pg_codec.hpp"

namespace pm_agent::store::postgres {

TEST(postgres_codec, TextArrayQuotesAndEscapes) {
    const std::vector<std::string> items{"a", "b c", "q\"uote", "back\\slash", ""};
    EXPECT_EQ(text_array(items), R"({"a","b c","q\"uote","back\\slash",""})");
    EXPECT_EQ(text_array({}), "{}");
}

TEST(postgres_codec, ParsesPostgresArrayOutput) {
    std::vector<std::string> out;
    ASSERT_TRUE(parse_text_array(R"({a,"b c","q\"uote","back\\slash","",NULL})", out));
    EXPECT_EQ(out, (std::vector<std::string>{"a", "b c", "q\"uote", "back\\slash", ""}));
    ASSERT_TRUE(parse_text_array("{}", out));
    EXPECT_TRUE(out.empty());
    EXPECT_FALSE(parse_text_array("gpu", out));
}

TEST(postgres_codec, ArrayBuilderMixesNullsAndNumbers) {
    array_builder b;
    b.add_int(-3);
    b.add_null();
    b.add("x,y");
    EXPECT_EQ(b.take(), R"({-3,NULL,"x,y"})");
    EXPECT_EQ(b.take(), "{}");  // reusable after take()
}

TEST(postgres_codec, ByteaRoundTrips) {
    std::array<unsigned char, 4> in{0x00, 0x7f, 0xab, 0xff};
    const std::string hex = bytea_hex(in);
    EXPECT_EQ(hex, "\\x007fabff");
    std::array<unsigned char, 4> out{};
    ASSERT_TRUE(parse_bytea_hex(hex, out));
    EXPECT_EQ(out, in);
    EXPECT_FALSE(parse_bytea_hex("\\x00", out));  // wrong length
    EXPECT_FALSE(parse_bytea_hex("\\x0g7fabff", out));
}

TEST(postgres_codec, MicrosecondsRoundTrip) {
    const time_point t = time_point(std::chrono::microseconds(1'700'000'000'123'456LL));
    EXPECT_EQ(micros(t), "1700000000123456");
    EXPECT_EQ(from_micros(to_int(micros(t))), t);
}

}  // namespace pm_agent::store::postgres

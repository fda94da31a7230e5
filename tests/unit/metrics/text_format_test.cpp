#include "pm_agent/metrics/text_format.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace pm_agent::metrics {
namespace {

std::string number(double value) {
    std::string out;
    append_number(out, value);
    return out;
}

TEST(metrics_text_format, metric_names_follow_the_prometheus_regex) {
    EXPECT_TRUE(is_valid_metric_name("pm_agent_requests_total"));
    EXPECT_TRUE(is_valid_metric_name("_x"));
    EXPECT_TRUE(is_valid_metric_name("job:rate5m"));
    EXPECT_TRUE(is_valid_metric_name("A9"));
    EXPECT_FALSE(is_valid_metric_name(""));
    EXPECT_FALSE(is_valid_metric_name("9lives"));
    EXPECT_FALSE(is_valid_metric_name("has-dash"));
    EXPECT_FALSE(is_valid_metric_name("has space"));
    EXPECT_FALSE(is_valid_metric_name("caf\xC3\xA9"));
}

TEST(metrics_text_format, label_names_follow_the_regex_and_reserve_double_underscore) {
    EXPECT_TRUE(is_valid_label_name("route"));
    EXPECT_TRUE(is_valid_label_name("_private"));
    EXPECT_FALSE(is_valid_label_name("__name__"));
    EXPECT_FALSE(is_valid_label_name(""));
    EXPECT_FALSE(is_valid_label_name("1st"));
    EXPECT_FALSE(is_valid_label_name("a:b"));
}

TEST(metrics_text_format, label_values_escape_backslash_quote_and_newline) {
    std::string out;
    append_label_value(out, "a\\b\"c\nd\te");
    EXPECT_EQ(out, "a\\\\b\\\"c\\nd\te");
}

TEST(metrics_text_format, help_escapes_backslash_and_newline_but_not_quotes) {
    std::string out;
    append_help(out, "say \"hi\"\\\nbye");
    EXPECT_EQ(out, "say \"hi\"\\\\\\nbye");
}

TEST(metrics_text_format, integers_print_without_exponent_or_fraction) {
    EXPECT_EQ(number(0), "0");
    EXPECT_EQ(number(-0.0), "0");
    EXPECT_EQ(number(42), "42");
    EXPECT_EQ(number(-7), "-7");
    EXPECT_EQ(number(1e6), "1000000");
    EXPECT_EQ(number(9007199254740991.0), "9007199254740991");
}

TEST(metrics_text_format, fractions_print_shortest_round_trip) {
    EXPECT_EQ(number(0.5), "0.5");
    EXPECT_EQ(number(0.0005), "0.0005");
    EXPECT_EQ(number(0.1 + 0.2), "0.30000000000000004");
    EXPECT_EQ(number(2.5), "2.5");
    EXPECT_EQ(std::stod(number(1e300)), 1e300);
    EXPECT_EQ(std::stod(number(1.234e-12)), 1.234e-12);
}

TEST(metrics_text_format, special_values_are_spelled_as_prometheus_wants) {
    EXPECT_EQ(number(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(number(-std::numeric_limits<double>::infinity()), "-Inf");
    EXPECT_EQ(number(std::nan("")), "NaN");
}

TEST(metrics_text_format, utf8_validation_rejects_ill_formed_sequences) {
    EXPECT_TRUE(is_valid_utf8(""));
    EXPECT_TRUE(is_valid_utf8("plain"));
    EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
    EXPECT_FALSE(is_valid_utf8("\xFF"));
    EXPECT_FALSE(is_valid_utf8("\xC3"));              // truncated
    EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
    EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
    EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated at the end
}

TEST(metrics_text_format, sanitize_replaces_each_bad_byte_and_keeps_good_text) {
    EXPECT_EQ(sanitize_utf8("ok"), "ok");
    EXPECT_EQ(sanitize_utf8("a\xFF"
                            "b"),
              "a\xEF\xBF\xBD"
              "b");
    EXPECT_EQ(sanitize_utf8("\xC3\xA9\xC3"), "\xC3\xA9\xEF\xBF\xBD");
    EXPECT_TRUE(is_valid_utf8(sanitize_utf8("\xED\xA0\x80 x \xF8")));
}

}  // namespace
}  // namespace pm_agent::metrics

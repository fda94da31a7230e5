// pg::conninfo: which hosts need DNS, and what libpq is handed once they are resolved.

#include "pg/conninfo.hpp"

#include <gtest/gtest.h>

namespace pm_agent::pg {
namespace {

std::string value_of(const connect_params& params, const std::string& keyword) {
    const std::string* value = params.find(keyword);
    return value != nullptr ? *value : std::string("<unset>");
}

TEST(conninfo, classifies_hosts) {
    EXPECT_EQ(classify_host(""), host_kind::none);
    EXPECT_EQ(classify_host("/var/run/postgresql"), host_kind::socket);
    EXPECT_EQ(classify_host("10.1.2.3"), host_kind::numeric);
    EXPECT_EQ(classify_host("::1"), host_kind::numeric);
    EXPECT_EQ(classify_host("db.example.com"), host_kind::name);
    EXPECT_EQ(classify_host("localhost"), host_kind::name);
}

TEST(conninfo, a_numeric_host_passes_through_unchanged) {
    auto info = conninfo::parse("postgresql://user:secret@127.0.0.1:5433/app?sslmode=disable");
    ASSERT_TRUE(info);
    EXPECT_TRUE(info->names().empty());
    auto params = info->resolve({});
    ASSERT_TRUE(params);
    EXPECT_EQ(value_of(*params, "host"), "127.0.0.1");
    EXPECT_EQ(value_of(*params, "hostaddr"), "<unset>");
    EXPECT_EQ(value_of(*params, "port"), "5433");
    EXPECT_EQ(value_of(*params, "password"), "secret");
    EXPECT_EQ(value_of(*params, "dbname"), "app");
    EXPECT_EQ(value_of(*params, "sslmode"), "disable");
    EXPECT_EQ(value_of(*params, "fallback_application_name"), "pm-agent-server");
}

TEST(conninfo, a_name_becomes_one_host_entry_per_address_keeping_the_name) {
    auto info = conninfo::parse("postgresql://db.example.com:6000/app");
    ASSERT_TRUE(info);
    ASSERT_EQ(info->names(), std::vector<std::string>{"db.example.com"});
    auto params = info->resolve({{"10.0.0.1", "10.0.0.2"}});
    ASSERT_TRUE(params);
    EXPECT_EQ(value_of(*params, "host"), "db.example.com,db.example.com");
    EXPECT_EQ(value_of(*params, "hostaddr"), "10.0.0.1,10.0.0.2");
    EXPECT_EQ(value_of(*params, "port"), "6000");
}

TEST(conninfo, mixed_hosts_with_per_host_ports) {
    auto info = conninfo::parse("host=a.example,10.0.0.9,/tmp,a.example port=1,2,3,4");
    ASSERT_TRUE(info);
    ASSERT_EQ(info->names(), std::vector<std::string>{"a.example"});  // listed once
    auto params = info->resolve({{"10.0.0.1"}});
    ASSERT_TRUE(params);
    EXPECT_EQ(value_of(*params, "host"), "a.example,10.0.0.9,/tmp,a.example");
    EXPECT_EQ(value_of(*params, "hostaddr"), "10.0.0.1,10.0.0.9,,10.0.0.1");
    EXPECT_EQ(value_of(*params, "port"), "1,2,3,4");
}

TEST(conninfo, a_name_without_addresses_is_left_out_and_none_left_is_an_error) {
    auto info = conninfo::parse("host=a.example,b.example");
    ASSERT_TRUE(info);
    auto params = info->resolve({{}, {"10.0.0.2"}});
    ASSERT_TRUE(params);
    EXPECT_EQ(value_of(*params, "host"), "b.example");
    EXPECT_EQ(value_of(*params, "hostaddr"), "10.0.0.2");
    EXPECT_FALSE(info->resolve({{}, {}}));
}

TEST(conninfo, a_user_hostaddr_means_nothing_to_resolve) {
    auto info = conninfo::parse("host=db.example.com hostaddr=10.0.0.5");
    ASSERT_TRUE(info);
    EXPECT_TRUE(info->names().empty());
    auto params = info->resolve({});
    ASSERT_TRUE(params);
    EXPECT_EQ(value_of(*params, "host"), "db.example.com");
    EXPECT_EQ(value_of(*params, "hostaddr"), "10.0.0.5");
}

TEST(conninfo, a_malformed_url_is_rejected) {
    EXPECT_FALSE(conninfo::parse("postgresql://[::1"));
    EXPECT_FALSE(conninfo::parse("host='unterminated"));
}

}  // namespace
}  // namespace pm_agent::pg

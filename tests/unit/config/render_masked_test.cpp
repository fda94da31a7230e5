#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "pm_agent/config/load.hpp"
#include "unit/config/config_test_support.hpp"

namespace pm_agent::config {
namespace {

using namespace std::chrono_literals;
using testing::contains;
using testing::lacks;

TEST(ConfigRenderMasked, HasEverySchemaKeyInTheFileLayout) {
    const auto document = boost::json::parse(render_masked(config{}));
    ASSERT_TRUE(document.is_object());
    std::size_t keys = 0;
    for (const auto& [section, members] : document.get_object()) {
        keys += members.get_object().size();
    }
    EXPECT_EQ(keys, schema_keys().size());
    for (const auto& k : schema_keys()) {
        const auto dot = k.key.find('.');
        const auto* section = document.get_object().if_contains(k.key.substr(0, dot));
        ASSERT_NE(section, nullptr) << k.key;
        EXPECT_NE(section->get_object().if_contains(k.key.substr(dot + 1)), nullptr) << k.key;
    }
    EXPECT_EQ(document.at("server").at("port").as_int64(), 8000);
    EXPECT_TRUE(document.at("database").at("url").is_null());
}

TEST(ConfigRenderMasked, TokensAreStarsButTheirCountShows) {
    config c;
    c.auth.submit_tokens = {"submit-secret-1", "submit-secret-2"};
    c.auth.admin_tokens = {"admin-secret"};
    const auto text = render_masked(c);
    EXPECT_TRUE(lacks(text, "secret"));
    const auto document = boost::json::parse(text);
    EXPECT_EQ(boost::json::serialize(document.at("auth").at("submit_tokens")), R"(["***","***"])");
    EXPECT_EQ(boost::json::serialize(document.at("auth").at("admin_tokens")), R"(["***"])");
    EXPECT_EQ(boost::json::serialize(document.at("auth").at("registration_tokens")), "[]");
}

TEST(ConfigRenderMasked, UrlPasswordsAreMaskedAndTheRestKept) {
    config c;
    c.database.url = "postgresql://pm:db-pass-word@db.internal:5432/pm?sslmode=require";
    c.redis.url = "redis://:redis-pass-word@cache:6379/0";
    const auto text = render_masked(c);
    EXPECT_TRUE(lacks(text, "pass-word"));
    const auto document = boost::json::parse(text);
    EXPECT_EQ(document.at("database").at("url").as_string(),
              "postgresql://pm:***@db.internal:5432/pm?sslmode=require");
    EXPECT_EQ(document.at("redis").at("url").as_string(), "redis://:***@cache:6379/0");
}

TEST(ConfigRenderMasked, MaskUrlCoversUserinfoQueryAndOddShapes) {
    EXPECT_EQ(mask_url("redis://cache:6379"), "redis://cache:6379");
    EXPECT_EQ(mask_url("postgres://pm@db/pm"), "postgres://pm@db/pm");
    EXPECT_EQ(mask_url("redis://user:pw@cache"), "redis://user:***@cache");
    EXPECT_EQ(mask_url("postgres://u:p@ss@db/x"), "postgres://u:***@db/x");
    EXPECT_EQ(mask_url("postgresql://db/pm?user=pm&password=pw&sslmode=require#frag"),
              "postgresql://db/pm?user=pm&password=***&sslmode=require#frag");
    EXPECT_EQ(mask_url("postgresql://db?PASSWORD=pw"), "postgresql://db?PASSWORD=***");
    EXPECT_EQ(mask_url("redis://:@cache"), "redis://:@cache");
    EXPECT_EQ(mask_url("host=db password=pw"), "***");
}

TEST(ConfigRenderMasked, RoundTripsThroughLoadConfig) {
    config c;
    c.server.host = "0.0.0.0";
    c.server.port = 0;
    c.server.workers = 2;
    c.server.connection_timeout = 61s;
    c.server.header_limit_bytes = 16384;
    c.server.trusted_proxies = {"10.0.0.0/8"};
    c.server.metrics_public = false;
    c.redis.url = "redis://cache:6379/2";
    c.redis.timeout = 250ms;
    c.database.url = "postgresql://pm@db/pm";
    c.database.prepared_statements = false;
    c.performance.task_batch_size = 64;
    c.queue.task_queue_size = 12345;
    c.queue.retry_max = 301s;
    c.agents.heartbeat_interval = 10s;
    c.agents.permessage_deflate = true;
    c.rate_limit.submit_per_s = 0.5;
    c.rate_limit.agent_burst = 1.25;
    c.rate_limit.redis_failure = redis_failure_policy::open;
    c.log.level = "warn";
    c.log.format = log_format::json;
    const testing::temp_file file(render_masked(c));
    const auto result = load_config(sources{file.path(), {}, {}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(*result.value, c);
}

TEST(ConfigRenderMasked, FractionalRatesPrintReadably) {
    config c;
    c.rate_limit.submit_per_s = 0.5;
    const auto text = render_masked(c);
    EXPECT_TRUE(contains(text, "\"submit_per_s\": 0.5"));
    EXPECT_TRUE(contains(text, "\"submit_burst\": 2000"));
    EXPECT_TRUE(contains(text, "\"trusted_proxies\": [\"127.0.0.1/32\", \"::1/128\"]"));
}

}  // namespace
}  // namespace pm_agent::config

#include <gtest/gtest.h>

#include <cstdlib>

#include "pm_agent/config/load.hpp"
#include "unit/config/config_test_support.hpp"

namespace pm_agent::config {
namespace {

using namespace std::chrono_literals;
using testing::load_json;
using testing::load_without_file;

TEST(ConfigPrecedence, NoSourcesGiveTheDefaults) {
    const auto result = load_config(sources{});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(*result.value, config{});
    EXPECT_EQ(result.value->server.host, "127.0.0.1");
    EXPECT_EQ(result.value->server.port, 8000);
    EXPECT_EQ(result.value->agents.heartbeat_timeout, 45s);
    EXPECT_FALSE(result.value->database.url.has_value());
}

TEST(ConfigPrecedence, FileBeatsDefault) {
    const auto result = load_json(R"({"server": {"port": 9001}, "log": {"level": "debug"}})");
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->server.port, 9001);
    EXPECT_EQ(result.value->log.level, "debug");
    EXPECT_EQ(result.value->server.workers, 1);  // keys absent from the file keep their default
}

TEST(ConfigPrecedence, EnvironmentBeatsFile) {
    const auto result = load_json(R"({"server": {"port": 9001}, "log": {"level": "debug"}})",
                                  {{"PM_AGENT_PORT", "9002"}, {"LOG_LEVEL", "warn"}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->server.port, 9002);
    EXPECT_EQ(result.value->log.level, "warn");
}

TEST(ConfigPrecedence, FlagBeatsEnvironment) {
    const auto result = load_json(R"({"server": {"port": 9001}, "log": {"level": "debug"}})",
                                  {{"PM_AGENT_PORT", "9002"}, {"LOG_LEVEL", "warn"}},
                                  {{"server.port", "9003"}, {"log.level", "error"}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->server.port, 9003);
    EXPECT_EQ(result.value->log.level, "error");
}

TEST(ConfigPrecedence, FlagBeatsDefaultWithoutFileOrEnvironment) {
    const auto result = load_without_file({}, {{"server.host", "::1"}, {"server.workers", "1"}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->server.host, "::1");
}

TEST(ConfigPrecedence, AnyKeyCanBeGivenAsFlag) {
    const auto result = load_without_file({}, {{"queue.max_attempts", "7"},
                                               {"agents.permessage_deflate", "on"},
                                               {"rate_limit.submit_per_s", "2.5"},
                                               {"server.trusted_proxies", "10.0.0.0/8, ::1"}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->queue.max_attempts, 7);
    EXPECT_TRUE(result.value->agents.permessage_deflate);
    EXPECT_DOUBLE_EQ(result.value->rate_limit.submit_per_s, 2.5);
    EXPECT_EQ(result.value->server.trusted_proxies,
              (std::vector<std::string>{"10.0.0.0/8", "::1"}));
}

TEST(ConfigPrecedence, EveryEnvironmentVariableOfTheSchemaIsRead) {
    const auto result = load_without_file({
        {"PM_AGENT_HOST", "0.0.0.0"},
        {"PM_AGENT_PORT", "8100"},
        {"PM_AGENT_WORKERS", "3"},
        {"MAX_CONNECTIONS", "123"},
        {"CONNECTION_TIMEOUT", "77"},
        {"REDIS_URL", "redis://cache:6379/1"},
        {"REDIS_POOL_SIZE", "5"},
        {"DATABASE_URL", "postgresql://pm@db/pm"},
        {"DB_POOL_SIZE", "9"},
        {"CACHE_TTL", "31"},
        {"TASK_QUEUE_SIZE", "500"},
        {"PM_AGENT_SUBMIT_TOKENS", "s1,s2"},
        {"PM_AGENT_ADMIN_TOKENS", "a1"},
        {"PM_AGENT_REGISTRATION_TOKENS", "r1"},
        {"LOG_LEVEL", "trace"},
    });
    ASSERT_TRUE(result.ok()) << result.error->message;
    const auto& c = *result.value;
    EXPECT_EQ(c.server.host, "0.0.0.0");
    EXPECT_EQ(c.server.port, 8100);
    EXPECT_EQ(c.server.workers, 3);
    EXPECT_EQ(c.server.max_connections, 123);
    EXPECT_EQ(c.server.connection_timeout, 77s);
    EXPECT_EQ(c.redis.url, "redis://cache:6379/1");
    EXPECT_EQ(c.redis.pool_size, 5);
    EXPECT_EQ(c.database.url, "postgresql://pm@db/pm");
    EXPECT_EQ(c.database.pool_size, 9);
    EXPECT_EQ(c.performance.cache_ttl, 31s);
    EXPECT_EQ(c.queue.task_queue_size, 500u);
    EXPECT_EQ(c.auth.submit_tokens, (std::vector<std::string>{"s1", "s2"}));
    EXPECT_EQ(c.auth.admin_tokens, (std::vector<std::string>{"a1"}));
    EXPECT_EQ(c.auth.registration_tokens, (std::vector<std::string>{"r1"}));
    EXPECT_EQ(c.log.level, "trace");
}

TEST(ConfigPrecedence, EnvironmentTokenListsAreTrimmedAndEmptiesDropped) {
    const auto result = load_without_file({{"PM_AGENT_SUBMIT_TOKENS", " alpha , beta,,  ,gamma "}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->auth.submit_tokens,
              (std::vector<std::string>{"alpha", "beta", "gamma"}));
}

TEST(ConfigPrecedence, EmptyEnvironmentVariableCountsAsUnset) {
    const auto result = load_json(R"({"server": {"port": 9001}, "auth": {"admin_tokens": ["x"]}})",
                                  {{"PM_AGENT_PORT", ""}, {"PM_AGENT_ADMIN_TOKENS", "  "}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->server.port, 9001);
    EXPECT_EQ(result.value->auth.admin_tokens, (std::vector<std::string>{"x"}));
}

TEST(ConfigPrecedence, EnvironmentIsReadOnlyThroughTheInjectedFunction) {
    // A key without an env name in CONFIG.md ignores a same-named variable.
    const auto result =
        load_without_file({{"READ_TIMEOUT", "99"}, {"server.read_timeout_s", "99"}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->server.read_timeout, 10s);
}

TEST(ConfigPrecedence, NullUrlInFileIsUnsetAndEnvironmentSetsIt) {
    const auto result = load_json(R"({"database": {"url": null}, "redis": {"url": null}})",
                                  {{"DATABASE_URL", "postgres://db/pm"}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->database.url, "postgres://db/pm");
    EXPECT_FALSE(result.value->redis.url.has_value());
}

TEST(ConfigPrecedence, EmptyFlagUnsetsUrlFromEnvironment) {
    const auto result =
        load_without_file({{"DATABASE_URL", "postgres://db/pm"}}, {{"database.url", ""}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_FALSE(result.value->database.url.has_value());
}

TEST(ConfigPrecedence, ChoicesIgnoreCaseAndAreStoredCanonically) {
    const auto result = load_json(
        R"({"log": {"format": "JSON"}, "rate_limit": {"redis_failure_policy": "Closed"}})",
        {{"LOG_LEVEL", "DEBUG"}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->log.level, "debug");
    EXPECT_EQ(result.value->log.format, log_format::json);
    EXPECT_EQ(result.value->rate_limit.redis_failure, redis_failure_policy::closed);
}

TEST(ConfigPrecedence, FileTokensAndDurationsAreRead) {
    const auto result = load_json(R"({
        "auth": {"submit_tokens": ["t1", "t2"], "registration_tokens": ["r"]},
        "redis": {"timeout_ms": 150},
        "database": {"statement_timeout_ms": 2500},
        "queue": {"retry_base_s": 2, "retry_max_s": 600}
    })");
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->auth.submit_tokens, (std::vector<std::string>{"t1", "t2"}));
    EXPECT_EQ(result.value->auth.registration_tokens, (std::vector<std::string>{"r"}));
    EXPECT_EQ(result.value->redis.timeout, 150ms);
    EXPECT_EQ(result.value->database.statement_timeout, 2500ms);
    EXPECT_EQ(result.value->queue.retry_base, 2s);
    EXPECT_EQ(result.value->queue.retry_max, 600s);
}

TEST(ConfigPrecedence, WorkersAboveOneAreAllowedWithDatabase) {
    const auto result = load_without_file(
        {{"DATABASE_URL", "postgresql://user:pw@db:5432/pm"}, {"PM_AGENT_WORKERS", "4"}});
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->server.workers, 4);
}

TEST(ConfigPrecedence, ProcessEnvironmentReadsTheRealEnvironment) {
    // A name no other test or tool uses, removed again before the test ends.
    const char* name = "PM_AGENT_CONFIG_UNIT_TEST_PROBE";
    ASSERT_EQ(::setenv(name, "probe-value", 1), 0);
    const auto value = process_environment()(name);
    ::unsetenv(name);
    EXPECT_EQ(value, "probe-value");
    EXPECT_FALSE(process_environment()(name).has_value());
}

TEST(ConfigSchema, ListsEveryKeyWithItsEnvironmentNameAndFlag) {
    const auto keys = schema_keys();
    EXPECT_EQ(keys.size(), 45u);
    std::map<std::string_view, std::string_view> env_of;
    std::map<std::string_view, std::string_view> flag_of;
    for (const auto& k : keys) {
        if (!k.env.empty()) {
            env_of[k.key] = k.env;
        }
        if (!k.flag.empty()) {
            flag_of[k.key] = k.flag;
        }
    }
    const std::map<std::string_view, std::string_view> expected_env{
        {"server.host", "PM_AGENT_HOST"},
        {"server.port", "PM_AGENT_PORT"},
        {"server.workers", "PM_AGENT_WORKERS"},
        {"server.max_connections", "MAX_CONNECTIONS"},
        {"server.connection_timeout_s", "CONNECTION_TIMEOUT"},
        {"redis.url", "REDIS_URL"},
        {"redis.pool_size", "REDIS_POOL_SIZE"},
        {"database.url", "DATABASE_URL"},
        {"database.pool_size", "DB_POOL_SIZE"},
        {"performance.cache_ttl", "CACHE_TTL"},
        {"queue.task_queue_size", "TASK_QUEUE_SIZE"},
        {"auth.submit_tokens", "PM_AGENT_SUBMIT_TOKENS"},
        {"auth.admin_tokens", "PM_AGENT_ADMIN_TOKENS"},
        {"auth.registration_tokens", "PM_AGENT_REGISTRATION_TOKENS"},
        {"log.level", "LOG_LEVEL"},
        {"rate_limit.fleet_workers", "PM_AGENT_FLEET_WORKERS"},
    };
    EXPECT_EQ(env_of, expected_env);
    const std::map<std::string_view, std::string_view> expected_flags{
        {"server.host", "--host"},
        {"server.port", "--port"},
        {"server.workers", "--workers"},
        {"log.level", "--log-level"},
    };
    EXPECT_EQ(flag_of, expected_flags);
}

}  // namespace
}  // namespace pm_agent::config

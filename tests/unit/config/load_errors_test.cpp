#include <gtest/gtest.h>

#include <filesystem>

#include "pm_agent/config/load.hpp"
#include "unit/config/config_test_support.hpp"

namespace pm_agent::config {
namespace {

using testing::contains;
using testing::lacks;
using testing::load_json;
using testing::load_without_file;
using testing::temp_file;

// The error must be present, name `key` in both fields, and contain each of `parts`.
void expect_error(const load_result& result, const std::string& key,
                  std::initializer_list<std::string> parts = {}) {
    ASSERT_FALSE(result.ok()) << "accepted, expected an error for " << key;
    ASSERT_TRUE(result.error.has_value());
    EXPECT_EQ(result.error->key, key);
    EXPECT_TRUE(contains(result.error->message, key));
    for (const auto& part : parts) {
        EXPECT_TRUE(contains(result.error->message, part));
    }
}

TEST(ConfigErrors, UnknownTopLevelSectionIsNamedWithSuggestion) {
    const temp_file file(R"({"sever": {"port": 1}})");
    const auto result = load_config(sources{file.path(), {}, {}});
    expect_error(result, "sever", {file.path(), "unknown section", "did you mean 'server'"});
}

TEST(ConfigErrors, UnknownNestedKeyIsNamed) {
    const auto result = load_json(R"({"server": {"prot": 8001}})");
    expect_error(result, "server.prot", {"unknown key", "did you mean 'port'"});
}

TEST(ConfigErrors, UnknownNestedKeyFarFromAnyKnownKeyHasNoSuggestion) {
    const auto result = load_json(R"({"queue": {"colour": "blue"}})");
    expect_error(result, "queue.colour", {"unknown key"});
    EXPECT_TRUE(lacks(result.error->message, "did you mean"));
}

TEST(ConfigErrors, SectionThatIsNotAnObject) {
    expect_error(load_json(R"({"server": 8000})"), "server", {"expected an object"});
}

TEST(ConfigErrors, TopLevelThatIsNotAnObject) {
    const auto result = load_json(R"([1, 2])");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error->key, "");
    EXPECT_TRUE(contains(result.error->message, "expected a JSON object"));
}

TEST(ConfigErrors, WrongJsonTypes) {
    expect_error(load_json(R"({"server": {"port": "8000"}})"), "server.port",
                 {"expected an integer, got a string"});
    expect_error(load_json(R"({"server": {"port": 8000.5}})"), "server.port",
                 {"expected an integer"});
    expect_error(load_json(R"({"server": {"metrics_public": "yes"}})"), "server.metrics_public",
                 {"expected true or false"});
    expect_error(load_json(R"({"server": {"host": 127}})"), "server.host", {"expected a string"});
    expect_error(load_json(R"({"server": {"trusted_proxies": "10.0.0.0/8"}})"),
                 "server.trusted_proxies", {"expected an array of strings"});
    expect_error(load_json(R"({"auth": {"admin_tokens": ["ok", 5]}})"), "auth.admin_tokens",
                 {"entry 2 is an integer"});
    expect_error(load_json(R"({"redis": {"url": 6379}})"), "redis.url",
                 {"expected a URL string or null"});
    expect_error(load_json(R"({"rate_limit": {"agent_burst": "100"}})"), "rate_limit.agent_burst",
                 {"expected a number"});
    expect_error(load_json(R"({"log": {"level": null}})"), "log.level", {"expected a string"});
    expect_error(load_json(R"({"server": {"workers": null}})"), "server.workers",
                 {"expected an integer, got null"});
}

TEST(ConfigErrors, OutOfRangeNumbers) {
    expect_error(load_json(R"({"server": {"port": 65536}})"), "server.port", {"0..65535"});
    expect_error(load_json(R"({"server": {"port": -1}})"), "server.port", {"out of range"});
    expect_error(load_json(R"({"server": {"workers": 0}})"), "server.workers",
                 {"0 is out of range (must be in 1..2147483647)"});
    expect_error(load_json(R"({"queue": {"max_attempts": 0}})"), "queue.max_attempts");
    expect_error(load_json(R"({"queue": {"task_queue_size": 0}})"), "queue.task_queue_size");
    expect_error(load_json(R"({"server": {"read_timeout_s": 0}})"), "server.read_timeout_s");
    expect_error(load_json(R"({"redis": {"timeout_ms": -5}})"), "redis.timeout_ms");
    expect_error(load_json(R"({"server": {"header_limit_bytes": 4294967296}})"),
                 "server.header_limit_bytes");
    expect_error(load_json(R"({"server": {"body_limit_bytes": 18446744073709551615}})"),
                 "server.body_limit_bytes", {"out of range"});
    expect_error(load_json(R"({"server": {"max_connections": 2147483648}})"),
                 "server.max_connections");
    expect_error(load_json(R"({"agents": {"heartbeat_interval_s": 2000000000}})"),
                 "agents.heartbeat_interval_s");
    expect_error(load_json(R"({"rate_limit": {"submit_per_s": 0}})"), "rate_limit.submit_per_s",
                 {"> 0"});
    expect_error(load_json(R"({"rate_limit": {"submit_burst": 0.5}})"), "rate_limit.submit_burst",
                 {">= 1"});
}

TEST(ConfigErrors, ValuesOutsideTheirSet) {
    expect_error(load_json(R"({"log": {"level": "verbose"}})"), "log.level",
                 {"'verbose'", "trace, debug, info, warn, error"});
    expect_error(load_json(R"({"log": {"format": "xml"}})"), "log.format", {"text, json"});
    expect_error(load_json(R"({"rate_limit": {"redis_failure_policy": "ignore"}})"),
                 "rate_limit.redis_failure_policy", {"local, open, closed"});
    expect_error(load_json(R"({"server": {"host": "0.0.0.0 "}})"), "server.host", {"blanks"});
    expect_error(load_json(R"({"server": {"host": ""}})"), "server.host", {"must not be empty"});
}

TEST(ConfigErrors, UrlsNeedTheirSchemeAndNeverLeakThePassword) {
    expect_error(load_json(R"({"redis": {"url": "http://cache:6379"}})"), "redis.url",
                 {"redis://", "'http'"});
    expect_error(load_json(R"({"database": {"url": "postgresql://"}})"), "database.url",
                 {"missing the host"});
    const auto mysql = load_json(R"({"database": {"url": "mysql://u:Sup3rSecret@db/pm"}})");
    expect_error(mysql, "database.url", {"postgres:// or postgresql://"});
    EXPECT_TRUE(lacks(mysql.error->message, "Sup3rSecret"));
    const auto conninfo = load_without_file({{"DATABASE_URL", "host=db password=Sup3rSecret"}});
    expect_error(conninfo, "database.url", {"DATABASE_URL", "without a scheme"});
    EXPECT_TRUE(lacks(conninfo.error->message, "Sup3rSecret"));
}

TEST(ConfigErrors, TokensAreCheckedWithoutEchoingThem) {
    const auto blank = load_json(R"({"auth": {"submit_tokens": ["good", "has Secret space"]}})");
    expect_error(blank, "auth.submit_tokens", {"token 2", "blanks"});
    EXPECT_TRUE(lacks(blank.error->message, "Secret"));
    expect_error(load_json(R"({"auth": {"registration_tokens": [""]}})"),
                 "auth.registration_tokens", {"token 1 is empty"});
}

TEST(ConfigErrors, BadCidrInTrustedProxies) {
    expect_error(load_json(R"({"server": {"trusted_proxies": ["10.0.0.0/8", "10.0.0.0/33"]}})"),
                 "server.trusted_proxies", {"entry 2", "'10.0.0.0/33'"});
    expect_error(load_json(R"({"server": {"trusted_proxies": ["nginx"]}})"),
                 "server.trusted_proxies", {"entry 1"});
}

TEST(ConfigErrors, BadEnvironmentValueNamesVariableAndKey) {
    expect_error(load_without_file({{"PM_AGENT_PORT", "eighty"}}), "server.port",
                 {"PM_AGENT_PORT", "'eighty' is not an integer"});
    expect_error(load_without_file({{"PM_AGENT_PORT", "70000"}}), "server.port",
                 {"PM_AGENT_PORT", "out of range"});
    expect_error(load_without_file({{"MAX_CONNECTIONS", "-3"}}), "server.max_connections",
                 {"MAX_CONNECTIONS"});
    expect_error(load_without_file({{"CACHE_TTL", "5m"}}), "performance.cache_ttl", {"CACHE_TTL"});
    expect_error(load_without_file({{"LOG_LEVEL", "loud"}}), "log.level", {"LOG_LEVEL"});
    expect_error(load_without_file({{"REDIS_URL", "localhost:6379"}}), "redis.url", {"REDIS_URL"});
    expect_error(load_without_file({{"TASK_QUEUE_SIZE", "99999999999999999999"}}),
                 "queue.task_queue_size", {"TASK_QUEUE_SIZE", "out of range"});
}

TEST(ConfigErrors, BadFlagValueNamesFlagAndKey) {
    expect_error(load_without_file({}, {{"server.port", "x"}}), "server.port",
                 {"--port", "'x' is not an integer"});
    expect_error(load_without_file({}, {{"log.level", "chatty"}}), "log.level", {"--log-level"});
    expect_error(load_without_file({}, {{"agents.permessage_deflate", "maybe"}}),
                 "agents.permessage_deflate", {"not a boolean"});
    expect_error(load_without_file({}, {{"rate_limit.agent_per_s", "inf"}}),
                 "rate_limit.agent_per_s", {"out of range"});
}

TEST(ConfigErrors, FlagForUnknownKey) {
    expect_error(load_without_file({}, {{"server.colour", "1"}}), "server.colour", {"unknown key"});
}

TEST(ConfigErrors, BadFileValueIsAnErrorEvenWhenOverridden) {
    // A broken file is reported, not silently masked by the environment of the day.
    expect_error(load_json(R"({"server": {"port": "x"}})", {{"PM_AGENT_PORT", "8001"}}),
                 "server.port");
}

TEST(ConfigErrors, MissingFileIsNamed) {
    const std::string path = "/nonexistent/pm-agent-config.json";
    const auto result = load_config(sources{path, {}, {}});
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error->key, "");
    EXPECT_TRUE(contains(result.error->message, path));
    EXPECT_TRUE(contains(result.error->message, "cannot open"));
}

TEST(ConfigErrors, DirectoryInsteadOfFileIsNamed) {
    const auto dir = std::filesystem::temp_directory_path().string();
    const auto result = load_config(sources{dir, {}, {}});
    ASSERT_FALSE(result.ok());
    EXPECT_TRUE(contains(result.error->message, dir));
    EXPECT_TRUE(contains(result.error->message, "is a directory"));
}

TEST(ConfigErrors, MalformedJsonNamesFileAndPosition) {
    const temp_file file("{\n  \"server\": {\n    \"port\": 8000,,\n  }\n}\n");
    const auto result = load_config(sources{file.path(), {}, {}});
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error->key, "");
    EXPECT_TRUE(contains(result.error->message, file.path()));
    EXPECT_TRUE(contains(result.error->message, "invalid JSON at line 3"));
}

TEST(ConfigErrors, EmptyAndTruncatedFilesAreMalformed) {
    for (const auto* text : {"", "   ", R"({"server": {"port": 1)"}) {
        const auto result = load_json(text);
        ASSERT_FALSE(result.ok()) << text;
        EXPECT_TRUE(contains(result.error->message, "invalid JSON"));
    }
}

TEST(ConfigErrors, WorkersAboveOneNeedADatabase) {
    expect_error(load_json(R"({"server": {"workers": 2}})"), "server.workers",
                 {"database.url", "in-memory store"});
    expect_error(load_without_file({{"PM_AGENT_WORKERS", "4"}}), "server.workers");
}

TEST(ConfigErrors, RetryBaseAboveRetryMax) {
    expect_error(load_json(R"({"queue": {"retry_base_s": 10, "retry_max_s": 5}})"),
                 "queue.retry_base_s", {"queue.retry_max_s"});
    EXPECT_TRUE(load_json(R"({"queue": {"retry_base_s": 5, "retry_max_s": 5}})").ok());
}

TEST(ConfigErrors, HeartbeatTimeoutMustExceedInterval) {
    expect_error(
        load_json(R"({"agents": {"heartbeat_interval_s": 30, "heartbeat_timeout_s": 30}})"),
        "agents.heartbeat_timeout_s", {"agents.heartbeat_interval_s"});
}

TEST(ConfigErrors, LeaseTimeoutMustExceedHeartbeatInterval) {
    expect_error(load_json(R"({"agents": {"heartbeat_interval_s": 20, "lease_timeout_s": 10,
                                          "heartbeat_timeout_s": 60}})"),
                 "agents.lease_timeout_s", {"agents.heartbeat_interval_s"});
}

}  // namespace
}  // namespace pm_agent::config

#pragma once
/// The whole configuration schema of ../shared/CONFIG.md as plain data. Built once at start-up
/// by load_config() (flag > environment > JSON file > default) and passed down by reference;
/// no component reads the environment or a file itself.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pm_agent::config {

struct server_config {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8000;
    int workers = 1;
    int max_connections = 10000;
    std::chrono::seconds connection_timeout{60};
    std::chrono::seconds read_timeout{10};
    std::size_t header_limit_bytes = 8192;
    std::size_t body_limit_bytes = 1048576;
    std::chrono::seconds shutdown_timeout{25};
    std::vector<std::string> trusted_proxies{"127.0.0.1/32", "::1/128"};
    bool metrics_public = true;

    friend bool operator==(const server_config&, const server_config&) = default;
};

struct redis_config {
    std::optional<std::string> url;  ///< secret (may hold a password)
    int pool_size = 4;
    std::chrono::seconds ttl{300};
    std::chrono::milliseconds timeout{200};

    friend bool operator==(const redis_config&, const redis_config&) = default;
};

struct database_config {
    std::optional<std::string> url;  ///< secret (may hold a password)
    int pool_size = 8;
    std::chrono::milliseconds statement_timeout{5000};
    bool prepared_statements = true;
    /// Reaper period, and how often idle consumers look for tasks other workers queued.
    std::chrono::milliseconds poll_interval{200};

    friend bool operator==(const database_config&, const database_config&) = default;
};

struct performance_config {
    int connection_pool_size = 100;
    int task_batch_size = 50;
    std::chrono::seconds cache_ttl{300};

    friend bool operator==(const performance_config&, const performance_config&) = default;
};

struct queue_config {
    std::size_t task_queue_size = 100000;
    std::chrono::seconds retention{86400};
    int max_attempts = 3;
    std::chrono::seconds retry_base{1};
    std::chrono::seconds retry_max{300};

    friend bool operator==(const queue_config&, const queue_config&) = default;
};

struct agents_config {
    std::chrono::seconds heartbeat_interval{15};
    std::chrono::seconds heartbeat_timeout{45};
    std::chrono::seconds lease_timeout{60};
    std::size_t read_message_max = 1048576;
    std::size_t outbound_queue_max = 256;
    bool permessage_deflate = false;

    friend bool operator==(const agents_config&, const agents_config&) = default;
};

struct auth_config {
    std::vector<std::string> submit_tokens;        ///< secret
    std::vector<std::string> admin_tokens;         ///< secret
    std::vector<std::string> registration_tokens;  ///< secret

    friend bool operator==(const auth_config&, const auth_config&) = default;
};

enum class redis_failure_policy { local, open, closed };

struct rate_limit_config {
    double submit_per_s = 1000;
    double submit_burst = 2000;
    double agent_per_s = 50;
    double agent_burst = 100;
    redis_failure_policy redis_failure = redis_failure_policy::local;
    /// Worker processes that share the limits, all replicas counted: the "local" policy allows
    /// limit / this per process while Redis is down. 0: server.workers (one host, one fleet).
    int fleet_workers = 0;

    friend bool operator==(const rate_limit_config&, const rate_limit_config&) = default;
};

enum class log_format { text, json };

struct log_config {
    std::string level = "info";  ///< trace, debug, info, warn, error
    log_format format = log_format::text;

    friend bool operator==(const log_config&, const log_config&) = default;
};

struct config {
    server_config server;
    redis_config redis;
    database_config database;
    performance_config performance;
    queue_config queue;
    agents_config agents;
    auth_config auth;
    rate_limit_config rate_limit;
    log_config log;

    friend bool operator==(const config&, const config&) = default;
};

}  // namespace pm_agent::config

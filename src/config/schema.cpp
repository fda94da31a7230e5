#include "config/schema.hpp"

#include <cstdint>

#include "config/value_codecs.hpp"

namespace pm_agent::config::detail {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Binds a codec to one member of config. `access` is a generic lambda returning a reference
// to the member, so the same lambda serves reading (const config) and writing.
template <class Codec, class Access>
field bind_field(std::string_view key, const char* env, std::string_view flag, Codec codec,
                 Access access, secret_kind secret = secret_kind::none) {
    field f{key, env, flag, secret, {}, {}, {}};
    f.from_json = [codec, access](config& c, const boost::json::value& v) -> std::string {
        auto p = codec.from_json(v);
        if (!p.value) {
            return std::move(p.error);
        }
        access(c) = std::move(*p.value);
        return {};
    };
    f.from_text = [codec, access](config& c, std::string_view text) -> std::string {
        auto p = codec.from_text(text);
        if (!p.value) {
            return std::move(p.error);
        }
        access(c) = std::move(*p.value);
        return {};
    };
    f.to_json = [codec, access](const config& c) { return codec.to_json(access(c)); };
    return f;
}

template <class T>
integer_codec<T> at_least_one() {
    return integer_codec<T>{};
}

}  // namespace

std::vector<std::string_view> section_names() {
    return {"server", "redis", "database",   "performance", "queue",
            "agents", "auth",  "rate_limit", "log"};
}

std::vector<field> make_fields() {
    const duration_codec<seconds> secs;
    const duration_codec<milliseconds> millis;
    const bool_codec boolean;
    // Rates must be positive; a token bucket whose burst is below one request never admits one.
    const number_codec rate{0, false};
    const number_codec burst{1, true};
    // Beast's header parser takes its limit as a 32-bit count.
    const integer_codec<std::size_t> header_bytes{1, 0xffffffff};

    return {
        bind_field(
            "server.host", "PM_AGENT_HOST", "--host", word_codec{},
            [](auto& c) -> auto& { return c.server.host; }),
        bind_field(
            "server.port", "PM_AGENT_PORT", "--port", integer_codec<std::uint16_t>{0},
            [](auto& c) -> auto& { return c.server.port; }),
        bind_field(
            "server.workers", "PM_AGENT_WORKERS", "--workers", at_least_one<int>(),
            [](auto& c) -> auto& { return c.server.workers; }),
        bind_field(
            "server.max_connections", "MAX_CONNECTIONS", "", at_least_one<int>(),
            [](auto& c) -> auto& { return c.server.max_connections; }),
        bind_field(
            "server.connection_timeout_s", "CONNECTION_TIMEOUT", "", secs,
            [](auto& c) -> auto& { return c.server.connection_timeout; }),
        bind_field(
            "server.read_timeout_s", nullptr, "", secs,
            [](auto& c) -> auto& { return c.server.read_timeout; }),
        bind_field(
            "server.header_limit_bytes", nullptr, "", header_bytes,
            [](auto& c) -> auto& { return c.server.header_limit_bytes; }),
        bind_field(
            "server.body_limit_bytes", nullptr, "", at_least_one<std::size_t>(),
            [](auto& c) -> auto& { return c.server.body_limit_bytes; }),
        bind_field(
            "server.shutdown_timeout_s", nullptr, "", secs,
            [](auto& c) -> auto& { return c.server.shutdown_timeout; }),
        bind_field(
            "server.trusted_proxies", nullptr, "", cidr_list_codec{},
            [](auto& c) -> auto& { return c.server.trusted_proxies; }),
        bind_field(
            "server.metrics_public", nullptr, "", boolean,
            [](auto& c) -> auto& { return c.server.metrics_public; }),

        bind_field(
            "redis.url", "REDIS_URL", "", url_codec{{"redis"}},
            [](auto& c) -> auto& { return c.redis.url; }, secret_kind::url),
        bind_field(
            "redis.pool_size", "REDIS_POOL_SIZE", "", at_least_one<int>(),
            [](auto& c) -> auto& { return c.redis.pool_size; }),
        bind_field(
            "redis.ttl", nullptr, "", secs, [](auto& c) -> auto& { return c.redis.ttl; }),
        bind_field(
            "redis.timeout_ms", nullptr, "", millis,
            [](auto& c) -> auto& { return c.redis.timeout; }),

        bind_field(
            "database.url", "DATABASE_URL", "", url_codec{{"postgres", "postgresql"}},
            [](auto& c) -> auto& { return c.database.url; }, secret_kind::url),
        bind_field(
            "database.pool_size", "DB_POOL_SIZE", "", at_least_one<int>(),
            [](auto& c) -> auto& { return c.database.pool_size; }),
        bind_field(
            "database.statement_timeout_ms", nullptr, "", millis,
            [](auto& c) -> auto& { return c.database.statement_timeout; }),
        bind_field(
            "database.prepared_statements", nullptr, "", boolean,
            [](auto& c) -> auto& { return c.database.prepared_statements; }),
        bind_field(
            "database.poll_interval_ms", nullptr, "", millis,
            [](auto& c) -> auto& { return c.database.poll_interval; }),

        bind_field(
            "performance.connection_pool_size", nullptr, "", at_least_one<int>(),
            [](auto& c) -> auto& { return c.performance.connection_pool_size; }),
        bind_field(
            "performance.task_batch_size", nullptr, "", at_least_one<int>(),
            [](auto& c) -> auto& { return c.performance.task_batch_size; }),
        bind_field(
            "performance.cache_ttl", "CACHE_TTL", "", secs,
            [](auto& c) -> auto& { return c.performance.cache_ttl; }),

        bind_field(
            "queue.task_queue_size", "TASK_QUEUE_SIZE", "", at_least_one<std::size_t>(),
            [](auto& c) -> auto& { return c.queue.task_queue_size; }),
        bind_field(
            "queue.retention_s", nullptr, "", secs,
            [](auto& c) -> auto& { return c.queue.retention; }),
        bind_field(
            "queue.max_attempts", nullptr, "", at_least_one<int>(),
            [](auto& c) -> auto& { return c.queue.max_attempts; }),
        bind_field(
            "queue.retry_base_s", nullptr, "", secs,
            [](auto& c) -> auto& { return c.queue.retry_base; }),
        bind_field(
            "queue.retry_max_s", nullptr, "", secs,
            [](auto& c) -> auto& { return c.queue.retry_max; }),

        bind_field(
            "agents.heartbeat_interval_s", nullptr, "", secs,
            [](auto& c) -> auto& { return c.agents.heartbeat_interval; }),
        bind_field(
            "agents.heartbeat_timeout_s", nullptr, "", secs,
            [](auto& c) -> auto& { return c.agents.heartbeat_timeout; }),
        bind_field(
            "agents.lease_timeout_s", nullptr, "", secs,
            [](auto& c) -> auto& { return c.agents.lease_timeout; }),
        bind_field(
            "agents.read_message_max", nullptr, "", at_least_one<std::size_t>(),
            [](auto& c) -> auto& { return c.agents.read_message_max; }),
        bind_field(
            "agents.outbound_queue_max", nullptr, "", at_least_one<std::size_t>(),
            [](auto& c) -> auto& { return c.agents.outbound_queue_max; }),
        bind_field(
            "agents.permessage_deflate", nullptr, "", boolean,
            [](auto& c) -> auto& { return c.agents.permessage_deflate; }),

        bind_field(
            "auth.submit_tokens", "PM_AGENT_SUBMIT_TOKENS", "", token_list_codec{},
            [](auto& c) -> auto& { return c.auth.submit_tokens; }, secret_kind::tokens),
        bind_field(
            "auth.admin_tokens", "PM_AGENT_ADMIN_TOKENS", "", token_list_codec{},
            [](auto& c) -> auto& { return c.auth.admin_tokens; }, secret_kind::tokens),
        bind_field(
            "auth.registration_tokens", "PM_AGENT_REGISTRATION_TOKENS", "", token_list_codec{},
            [](auto& c) -> auto& { return c.auth.registration_tokens; }, secret_kind::tokens),

        bind_field(
            "rate_limit.submit_per_s", nullptr, "", rate,
            [](auto& c) -> auto& { return c.rate_limit.submit_per_s; }),
        bind_field(
            "rate_limit.submit_burst", nullptr, "", burst,
            [](auto& c) -> auto& { return c.rate_limit.submit_burst; }),
        bind_field(
            "rate_limit.agent_per_s", nullptr, "", rate,
            [](auto& c) -> auto& { return c.rate_limit.agent_per_s; }),
        bind_field(
            "rate_limit.agent_burst", nullptr, "", burst,
            [](auto& c) -> auto& { return c.rate_limit.agent_burst; }),
        bind_field(
            "rate_limit.redis_failure_policy", nullptr, "",
            choice_codec<redis_failure_policy>{{{"local", redis_failure_policy::local},
                                                {"open", redis_failure_policy::open},
                                                {"closed", redis_failure_policy::closed}}},
            [](auto& c) -> auto& { return c.rate_limit.redis_failure; }),
        bind_field(
            "rate_limit.fleet_workers", "PM_AGENT_FLEET_WORKERS", "", integer_codec<int>{0},
            [](auto& c) -> auto& { return c.rate_limit.fleet_workers; }),

        bind_field(
            "log.level", "LOG_LEVEL", "--log-level",
            choice_codec<std::string>{{{"trace", "trace"},
                                       {"debug", "debug"},
                                       {"info", "info"},
                                       {"warn", "warn"},
                                       {"error", "error"}}},
            [](auto& c) -> auto& { return c.log.level; }),
        bind_field(
            "log.format", nullptr, "",
            choice_codec<log_format>{{{"text", log_format::text}, {"json", log_format::json}}},
            [](auto& c) -> auto& { return c.log.format; }),
    };
}

}  // namespace pm_agent::config::detail

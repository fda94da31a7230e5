#pragma once
// Private to src/api: the state one worker's service shares between its route files (ops,
// tasks, agents, WebSocket sessions).

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "pm_agent/api/application.hpp"
#include "pm_agent/api/auth.hpp"
#include "pm_agent/api/codec.hpp"
#include "pm_agent/api/errors.hpp"
#include "pm_agent/api/query.hpp"
#include "pm_agent/api/rate_limit.hpp"
#include "pm_agent/api/router.hpp"
#include "pm_agent/api/shared_rate_limit.hpp"
#include "pm_agent/config/cidr.hpp"
#include "pm_agent/config/config.hpp"
#include "pm_agent/core/engine.hpp"
#include "pm_agent/core/random.hpp"
#include "pm_agent/metrics/registry.hpp"
#include "pm_agent/store/result.hpp"

namespace boost::asio {
class io_context;
}
namespace pm_agent::redis {
class client;
}

namespace pm_agent::api {

class agent_ws_session;
class cluster_link;

/// Which limit a request is held to.
enum class limit_kind { submit, agent };

/// A rate-limit decision as the route sees it: the response to send instead when refused, and
/// the RateLimit-* headers to add when allowed.
struct limit_answer {
    std::optional<http_response> refused;
    std::vector<std::pair<std::string, std::string>> headers;
};

/// Hash of a token digest (already uniformly distributed: the first bytes suffice).
struct digest_hash {
    std::size_t operator()(const token_digest& d) const noexcept {
        std::size_t h;
        std::memcpy(&h, d.data(), sizeof(h));
        return h;
    }
};

/// Metrics of the api layer and of the engine it fronts.
struct service_metrics {
    explicit service_metrics(metrics::registry& registry);

    metrics::counter_family& rate_limited;   ///< scope: submit, register, request
    metrics::counter_family& task_outcomes;  ///< outcome
    metrics::counter& tasks_submitted;
    metrics::counter& tasks_dispatched;
    metrics::counter& lease_expired;
    metrics::counter& tasks_repushed;
    metrics::histogram& dispatch_latency;
    metrics::gauge_family& queue_size;  ///< queue
    metrics::gauge_family& agents;      ///< status
    metrics::gauge& waiting_requests;
};

/// Everything the route handlers share. One per worker; loop thread only.
struct service_state : core::engine_observer {
    /// With `redis` (and the loop `ioc`), rate limits are shared and workers coordinate
    /// through it (cluster_link).
    service_state(const config::config& cfg, metrics::registry& registry, transport_state& state,
                  std::unique_ptr<store::store> st, std::string store_name,
                  redis::client* redis = nullptr, boost::asio::io_context* ioc = nullptr);
    ~service_state() override;

    void on_dispatched(store::time_point ready_at) override;
    void on_heartbeat(const store::agent& agent, store::time_point now) override;
    void on_unclaimed(std::string_view queue) override;
    void on_hungry(std::string_view queue) override;
    void on_notice_elsewhere(std::string_view agent_id) override;
    void on_attached(std::string_view agent_id, store::time_point at) override;

    const config::config& cfg;
    metrics::registry& registry;
    transport_state& transport;
    authenticator auth;
    config::trusted_proxies proxies;
    core::crypto_random rng;
    std::unique_ptr<store::store> store;
    std::string store_name;  ///< "memory" or "postgres"
    core::engine engine;
    local_rate_limiter submit_limiter;
    local_rate_limiter agent_limiter;
    service_metrics metrics;
    std::string worker_id;  ///< "host:pid"
    /// Redis-backed limits and the link to the other workers; null without Redis.
    std::unique_ptr<shared_rate_limiter> shared_submit_limiter;
    std::unique_ptr<shared_rate_limiter> shared_agent_limiter;
    std::unique_ptr<cluster_link> cluster;
    std::chrono::steady_clock::time_point started;
    /// Agent token digest -> agent id, so a task operation (whose body names no agent) knows
    /// which agent is calling. Filled at registration; entries are verified by the engine.
    std::unordered_map<token_digest, std::string, digest_hash> agent_tokens;
    /// A long poll in flight: the engine's id and the answer slot (emptied once answered).
    struct long_poll {
        core::request_id id;
        std::shared_ptr<respond_fn> slot;
    };
    /// Long polls by HTTP connection id: abandoned when their client leaves, answered empty
    /// when the worker drains.
    std::unordered_map<std::uint64_t, long_poll> long_polls;
    /// Long polls whose client left before they waited (service::abandon), by connection id:
    /// request_allowed ends them at once. A mark is forgotten after k_abandoned_poll_memory
    /// (the poll was refused before it got to wait).
    std::unordered_map<std::uint64_t, std::chrono::steady_clock::time_point> abandoned_polls;
    static constexpr std::chrono::seconds k_abandoned_poll_memory{60};
    /// Open agent WebSocket sessions, told `draining` when the worker drains.
    std::unordered_map<agent_ws_session*, bool> ws_sessions;
    /// Engine counters already exported, to turn them into counter increments at scrape time.
    core::engine_counters exported{};

    /// The engine's clock.
    static store::time_point now() { return store::clock::now(); }

    /// The client address for rate limits: X-Forwarded-For / X-Real-IP only from a trusted
    /// proxy.
    std::string client_address(const http_request& request) const;

    /// Copies engine counters and gauges into the registry (called before a scrape).
    void sync_metrics();

    /// Rate-limit check of `key` under `kind`'s limit: then(limit_answer) is called once,
    /// inline for the local limiter, from the loop after a round trip for the shared one.
    /// `scope` labels pm_agent_rate_limited_total (a string literal).
    template <class Then>
    void limit(limit_kind kind, std::string_view scope, std::string_view key, Then&& then) {
        shared_rate_limiter* shared =
            kind == limit_kind::submit ? shared_submit_limiter.get() : shared_agent_limiter.get();
        if (shared == nullptr) {
            local_rate_limiter& local = kind == limit_kind::submit ? submit_limiter : agent_limiter;
            then(answer_limit(shared_decision{local.check(key, std::chrono::steady_clock::now())},
                              scope));
            return;
        }
        shared->check(key, [this, scope, then = std::forward<Then>(then)](
                               shared_decision d) mutable { then(answer_limit(d, scope)); });
    }
    /// The answer for a decision: 429 (or 503 when policy "closed" could not decide).
    limit_answer answer_limit(const shared_decision& d, std::string_view scope);

    /// /ready's degraded reason (Redis configured and not usable); nullopt when all is well.
    std::optional<std::string> degraded_reason() const;

    /// A route's 401/403 for a configured token kind; nullopt when allowed.
    std::optional<http_response> require(const http_request& request, token_kind kind) const;

    /// Resolves the calling agent from its bearer token. `expected` (a path's agent id) must
    /// match: otherwise 403. Calls `done` with the agent id or an error response.
    void authenticate_agent(const http_request& request, std::string_view expected,
                            store::unique_function<void(store::result<std::string>)> done);

    /// Records a newly issued agent token.
    void remember_agent_token(std::string_view token, std::string_view agent_id);
};

/// The HTTP status for an engine error code.
unsigned status_for(store::errc code);

/// An engine error as the API's JSON error response (with Retry-After where due).
http_response error_from(const store::error& error);

/// A 200/201/202 JSON response.
http_response json_response(unsigned status, std::string body);

/// A long poll's answer with no task: `{"tasks":[]}`.
http_response empty_task_list();

/// Reads `limit` (1..1000) and `cursor` of a list endpoint's query; the error when malformed.
std::optional<store::error> read_paging(const query_params& params, std::size_t& limit,
                                        std::string& cursor);

/// Answers a list endpoint: {"items": [...], "next_cursor": str|null}.
template <class Page, class AppendItem>
http_response page_response(const Page& page, AppendItem append_item) {
    std::string out = R"({"items":[)";
    for (std::size_t i = 0; i < page.items.size(); ++i) {
        if (i > 0) {
            out.push_back(',');
        }
        append_item(out, page.items[i]);
    }
    out += R"(],"next_cursor":)";
    if (page.next_cursor) {
        append_json_string(out, *page.next_cursor);
    } else {
        out += "null";
    }
    out.push_back('}');
    return json_response(200, std::move(out));
}

// Route handlers, one file each group. Each answers through `done` exactly once.
void handle_task_route(service_state& s, const route_match& match, http_request&& request,
                       respond_fn done);
void handle_agent_route(service_state& s, const route_match& match, http_request&& request,
                        respond_fn done);
void handle_stats(service_state& s, const http_request& request, respond_fn done);
/// GET /ui and /ui/{name}: the dashboard's embedded files (ui_routes.cpp); 404 for others.
http_response ui_file(std::string_view name);

/// A WebSocket upgrade on /ws/agent or /ws/agent/{id}.
void upgrade_agent_socket(service_state& s, const route_match& match, const http_request& request,
                          ws_connection& connection, upgrade_callback done);
/// Tells every open agent socket to go elsewhere (the transport then closes them with 1001).
void announce_drain(service_state& s);

}  // namespace pm_agent::api

// The shared state of the api layer: wiring of store and engine, metrics, auth helpers, the
// client address behind a trusted proxy, and rate-limit answers.

#include "api/service_state.hpp"

#include "api/cluster_link.hpp"

#include <algorithm>
#include <charconv>

#include "pm_agent/config/load.hpp"
#include "pm_agent/core/text.hpp"
#include "pm_agent/process/identity.hpp"
#include "pm_agent/store/memory_store.hpp"

namespace pm_agent::api {
namespace {

/// Queues exported by name in pm_agent_task_queue_size; below the registry's family bound so
/// the "other" series is ours, not the registry's overflow.
constexpr std::size_t k_queue_series = 400;

core::engine_options engine_options_from(const config::config& cfg) {
    core::engine_options options;
    options.queue = cfg.queue;
    options.agents = cfg.agents;
    return options;
}

}  // namespace

service_metrics::service_metrics(metrics::registry& registry)
    : rate_limited(registry.counter("pm_agent_rate_limited_total",
                                    "Requests refused with 429 by scope.", {"scope"})),
      task_outcomes(registry.counter("pm_agent_task_outcomes_total",
                                     "Tasks by how their attempt ended.", {"outcome"})),
      tasks_submitted(registry.counter("pm_agent_tasks_submitted_total", "Tasks accepted.").get()),
      tasks_dispatched(registry
                           .counter("pm_agent_tasks_dispatched_total",
                                    "Assignments of tasks to agents (pushes and long polls).")
                           .get()),
      lease_expired(registry
                        .counter("pm_agent_lease_expired_total",
                                 "Leases ended by lease or heartbeat timeout.")
                        .get()),
      tasks_repushed(registry
                         .counter("pm_agent_tasks_repushed_total",
                                  "Tasks pushed again to a reconnected WebSocket agent that "
                                  "never reported on them.")
                         .get()),
      dispatch_latency(registry
                           .histogram("pm_agent_dispatch_latency_seconds",
                                      "Time from a task becoming pending to its assignment.",
                                      metrics::k_default_latency_buckets)
                           .get()),
      queue_size(registry.gauge("pm_agent_task_queue_size", "Pending tasks per queue.", {"queue"})),
      agents(registry.gauge("pm_agent_agents", "Registered agents by status.", {"status"})),
      waiting_requests(
          registry.gauge("pm_agent_waiting_requests", "REST long polls waiting for a task.")
              .get()) {}

service_state::service_state(const config::config& c, metrics::registry& r, transport_state& t,
                             std::unique_ptr<store::store> st, std::string name,
                             redis::client* redis, boost::asio::io_context* ioc)
    : cfg(c),
      registry(r),
      transport(t),
      auth(c.auth, config::is_loopback_host(c.server.host)),
      proxies(*config::trusted_proxies::parse(c.server.trusted_proxies)),
      store(st ? std::move(st) : store::make_memory_store(c.queue, c.agents)),
      store_name(std::move(name)),
      engine(*store, engine_options_from(c), rng),
      submit_limiter(c.rate_limit.submit_per_s, c.rate_limit.submit_burst),
      agent_limiter(c.rate_limit.agent_per_s, c.rate_limit.agent_burst),
      metrics(r),
      worker_id(process::worker_identity()),
      started(std::chrono::steady_clock::now()) {
    if (redis != nullptr && ioc != nullptr) {
        const auto& rl = c.rate_limit;
        const int fleet = rl.fleet_workers > 0 ? rl.fleet_workers : c.server.workers;
        shared_submit_limiter = std::make_unique<shared_rate_limiter>(
            *redis, "submit", rl.submit_per_s, rl.submit_burst, fleet, rl.redis_failure, r);
        shared_agent_limiter = std::make_unique<shared_rate_limiter>(
            *redis, "agent", rl.agent_per_s, rl.agent_burst, fleet, rl.redis_failure, r);
        cluster = std::make_unique<cluster_link>(*ioc, *redis, engine, worker_id, c.redis.ttl, r);
        cluster->start();
    }
    engine.set_observer(this);
}

service_state::~service_state() {
    engine.set_observer(nullptr);
}

void service_state::on_dispatched(store::time_point ready_at) {
    // Another worker's clock may have set ready_at a little ahead of ours: never below zero.
    const auto latency = std::max(store::clock::now() - ready_at, store::clock::duration::zero());
    metrics.dispatch_latency.observe(std::chrono::duration<double>(latency).count());
}

std::string service_state::client_address(const http_request& request) const {
    if (!proxies.trusts(request.peer_address)) {
        return request.peer_address;
    }
    // Walk X-Forwarded-For from the right: the first hop our proxies did not add is the client.
    std::string_view chain = request.forwarded_for;
    while (!chain.empty()) {
        const auto comma = chain.rfind(',');
        const auto hop =
            core::trim_blanks(comma == std::string_view::npos ? chain : chain.substr(comma + 1));
        chain = comma == std::string_view::npos ? std::string_view() : chain.substr(0, comma);
        if (hop.empty()) {
            continue;
        }
        if (!proxies.trusts(hop) || chain.empty()) {
            return std::string(hop);
        }
    }
    if (!request.real_ip.empty()) {
        return std::string(core::trim_blanks(request.real_ip));
    }
    return request.peer_address;
}

void service_state::sync_metrics() {
    const auto& c = engine.counters();
    auto bump = [](metrics::counter& counter, std::uint64_t now_value, std::uint64_t& seen) {
        if (now_value > seen) {
            counter.inc(static_cast<double>(now_value - seen));
            seen = now_value;
        }
    };
    bump(metrics.tasks_submitted, c.submitted, exported.submitted);
    bump(metrics.tasks_dispatched, c.dispatched, exported.dispatched);
    bump(metrics.task_outcomes.with({"succeeded"}), c.succeeded, exported.succeeded);
    bump(metrics.task_outcomes.with({"retried"}), c.retried, exported.retried);
    bump(metrics.task_outcomes.with({"dead"}), c.dead, exported.dead);
    bump(metrics.task_outcomes.with({"cancelled"}), c.cancelled, exported.cancelled);
    bump(metrics.task_outcomes.with({"timed_out"}), c.timed_out, exported.timed_out);
    bump(metrics.task_outcomes.with({"requeued"}), c.requeued, exported.requeued);
    bump(metrics.lease_expired, c.lease_expired, exported.lease_expired);
    bump(metrics.tasks_repushed, c.repushed, exported.repushed);
    metrics.waiting_requests.set(static_cast<double>(engine.waiting_requests()));
    engine.queue_depths([this](store::result<std::vector<store::queue_depth>> depths) {
        if (!depths) {
            return;
        }
        // Queues that emptied keep their series at 0 rather than vanishing. Queue names come
        // from users: past k_queue_series queues (by name) the rest are summed as "other".
        double other = 0;
        for (std::size_t i = 0; i < depths->size(); ++i) {
            const auto& d = (*depths)[i];
            if (i < k_queue_series) {
                metrics.queue_size.with({d.queue}).set(static_cast<double>(d.pending));
            } else {
                other += static_cast<double>(d.pending);
            }
        }
        if (depths->size() > k_queue_series) {
            metrics.queue_size.with({"other"}).set(other);
        }
    });
    engine.stats([this](store::result<store::store_stats> stats) {
        if (!stats) {
            return;
        }
        for (std::size_t i = 0; i < store::k_agent_status_count; ++i) {
            metrics.agents.with({store::to_string(static_cast<store::agent_status>(i))})
                .set(static_cast<double>(stats->agents[i]));
        }
    });
}

limit_answer service_state::answer_limit(const shared_decision& d, std::string_view scope) {
    limit_answer out;
    if (d.unavailable) {
        out.refused = error_response(503, "unavailable", "rate limiter unavailable; retry later");
        out.refused->headers.emplace_back("Retry-After", "1");
        return out;
    }
    if (d.decision.allowed) {
        for (auto& h : rate_limit_headers(d.decision)) {
            out.headers.emplace_back(std::string(h.name), std::move(h.value));
        }
        return out;
    }
    metrics.rate_limited.with({scope}).inc();
    out.refused = error_response(429, "rate_limited", "too many requests; retry later");
    for (auto& h : rate_limit_headers(d.decision)) {
        out.refused->headers.emplace_back(std::string(h.name), std::move(h.value));
    }
    return out;
}

std::optional<std::string> service_state::degraded_reason() const {
    if (cluster && !cluster->healthy()) {
        return std::string("redis unreachable: rate limits per worker, wake-ups by polling");
    }
    return std::nullopt;
}

void service_state::on_heartbeat(const store::agent& agent, store::time_point now) {
    if (cluster) {
        cluster->on_heartbeat(agent.id, now);
    }
}

void service_state::on_unclaimed(std::string_view queue) {
    if (cluster) {
        cluster->on_unclaimed(queue);
    }
}

void service_state::on_hungry(std::string_view queue) {
    if (cluster) {
        cluster->on_hungry(queue);
    }
}

void service_state::on_notice_elsewhere(std::string_view agent_id) {
    if (cluster) {
        cluster->on_notice_elsewhere(agent_id);
    }
}

void service_state::on_attached(std::string_view agent_id, store::time_point at) {
    if (cluster) {
        cluster->on_attached(agent_id, at);
    }
}

std::optional<http_response> service_state::require(const http_request& request,
                                                    token_kind kind) const {
    const auto token = bearer_token(request.authorization);
    auto outcome = auth.check(token, kind);
    // An agent's own token is valid, just not here: 403 rather than 401. Hashed only then.
    if (outcome == auth_outcome::unauthorized && !token.empty() &&
        agent_tokens.contains(digest_token(token))) {
        outcome = auth_outcome::forbidden;
    }
    switch (outcome) {
        case auth_outcome::allowed:
            return std::nullopt;
        case auth_outcome::unauthorized: {
            auto response = error_response(401, "unauthorized", "missing or unknown bearer token");
            response.headers.emplace_back("WWW-Authenticate", "Bearer");
            return response;
        }
        case auth_outcome::forbidden:
            return error_response(403, "forbidden", "this token may not use this endpoint");
    }
    return error_response(500, "internal", "internal error");
}

void service_state::authenticate_agent(
    const http_request& request, std::string_view expected,
    store::unique_function<void(store::result<std::string>)> done) {
    const auto token = bearer_token(request.authorization);
    if (token.empty()) {
        done(store::error{store::errc::unauthorized, "missing bearer token (the agent's own)"});
        return;
    }
    auto it = agent_tokens.find(digest_token(token));
    if (it == agent_tokens.end()) {
        if (auth.kind_of(token)) {
            done(store::error{store::errc::forbidden, "this endpoint needs the agent's own token"});
            return;
        }
        // Issued by another worker (or before a restart): the store knows the agent.
        engine.identify(token,
                        [this, token = std::string(token), expected = std::string(expected),
                         done = std::move(done)](store::result<const store::agent*> agent) mutable {
                            if (!agent) {
                                return done(std::move(agent).err());
                            }
                            if (!expected.empty() && expected != (*agent)->id) {
                                return done(store::error{store::errc::forbidden,
                                                         "this token belongs to another agent"});
                            }
                            remember_agent_token(token, (*agent)->id);
                            done((*agent)->id);
                        });
        return;
    }
    if (!expected.empty() && expected != it->second) {
        done(store::error{store::errc::forbidden, "this token belongs to another agent"});
        return;
    }
    std::string agent_id = it->second;
    engine.authenticate(
        agent_id, token,
        [agent_id, done = std::move(done)](store::result<const store::agent*> agent) mutable {
            if (!agent && agent.err().code == store::errc::unavailable) {
                done(std::move(agent).err());  // the database is down: 503, not a refusal
                return;
            }
            if (!agent) {
                done(store::error{store::errc::unauthorized, "unknown or deregistered agent"});
                return;
            }
            done(std::move(agent_id));
        });
}

void service_state::remember_agent_token(std::string_view token, std::string_view agent_id) {
    agent_tokens.emplace(digest_token(token), std::string(agent_id));
}

unsigned status_for(store::errc code) {
    switch (code) {
        case store::errc::bad_request:
            return 400;
        case store::errc::unauthorized:
            return 401;
        case store::errc::forbidden:
            return 403;
        case store::errc::not_found:
            return 404;
        case store::errc::conflict:
            return 409;
        case store::errc::rate_limited:
            return 429;
        case store::errc::queue_full:
        case store::errc::unavailable:
            return 503;
        case store::errc::internal:
            return 500;
    }
    return 500;
}

http_response error_from(const store::error& error) {
    const unsigned status = status_for(error.code);
    auto response = error_response(
        status, store::to_string(error.code),
        status == 500 ? std::string_view("internal error") : std::string_view(error.message));
    if (error.code == store::errc::queue_full || error.code == store::errc::unavailable) {
        response.headers.emplace_back("Retry-After", "1");
    }
    if (error.code == store::errc::unauthorized) {
        response.headers.emplace_back("WWW-Authenticate", "Bearer");
    }
    return response;
}

std::optional<store::error> read_paging(const query_params& params, std::size_t& limit,
                                        std::string& cursor) {
    for (const auto& [name, value] : params) {
        if (name == "limit") {
            std::size_t n = 0;
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > 1000) {
                return store::error{store::errc::bad_request,
                                    "limit: must be an integer from 1 to 1000"};
            }
            limit = n;
        } else if (name == "cursor") {
            cursor = value;
        }
    }
    return std::nullopt;
}

http_response json_response(unsigned status, std::string body) {
    http_response response;
    response.status = status;
    response.body = std::move(body);
    return response;
}

http_response empty_task_list() {
    auto response = json_response(200, R"({"tasks":[]})");
    response.route = "/api/v1/tasks/request";
    return response;
}

}  // namespace pm_agent::api

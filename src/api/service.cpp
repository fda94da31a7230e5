// Request routing and the operational endpoints (/health, /ready, /metrics). Task and agent
// routes are dispatched to their own files.

#include "pm_agent/api/service.hpp"

#include "api/service_state.hpp"
#include "pm_agent/config/load.hpp"
#include "pm_agent/core/text.hpp"
#include "pm_agent/log/logging.hpp"
#include "pm_agent/metrics/registry.hpp"
#include "pm_agent/store/store.hpp"

namespace pm_agent::api {

struct service::impl : service_state {
    using service_state::service_state;

    http_response health() const {
        http_response response;
        response.body = R"({"status":"ok"})";
        return response;
    }

    http_response ready() const {
        http_response response;
        if (transport.draining) {
            response.status = 503;
            response.body = R"({"status":"draining","reason":"the worker is shutting down"})";
        } else if (auto reason = store->unavailable_reason()) {
            response.status = 503;
            response.body = R"({"status":"unavailable","reason":)";
            append_json_string(response.body, *reason);
            response.body.push_back('}');
        } else if (auto degraded = degraded_reason()) {
            response.body = R"({"status":"degraded","reason":)";
            append_json_string(response.body, *degraded);
            response.body.push_back('}');
        } else {
            response.body = R"({"status":"ready"})";
        }
        return response;
    }

    http_response metrics_page(const http_request& request) {
        if (!cfg.server.metrics_public) {
            if (auto refused = require(request, token_kind::admin)) {
                return std::move(*refused);
            }
        }
        sync_metrics();
        http_response response;
        response.content_type = "text/plain; version=0.0.4; charset=utf-8";
        registry.render(response.body);
        return response;
    }

    /// Ends a long poll that waits for tasks, answered with none (its client left, or the
    /// worker drains).
    void end_empty(long_poll& poll) {
        engine.abandon_request(poll.id);
        auto reply = std::move(*poll.slot);
        *poll.slot = nullptr;
        reply(empty_task_list());
    }
};

service::service(const config::config& cfg, metrics::registry& registry, transport_state& state,
                 std::unique_ptr<store::store> st, std::string store_name, redis::client* redis,
                 boost::asio::io_context* ioc)
    : impl_(std::make_unique<impl>(cfg, registry, state, std::move(st), std::move(store_name),
                                   redis, ioc)) {
    registry.gauge("pm_agent_log_lines_dropped", "Log lines dropped because the queue was full.")
        .get()
        .bind([] { return static_cast<double>(log::dropped_lines()); });
}

service::~service() = default;

void service::handle(http_request&& request, respond_fn done) {
    auto lookup = match_route(request.method, request.path);
    if (!lookup.match) {
        if (!lookup.allow.empty()) {
            auto response = error_response(405, "method_not_allowed",
                                           "method " +
                                               (request.method == http_method::other
                                                    ? request.method_name
                                                    : std::string(to_string(request.method))) +
                                               " is not allowed here; allowed: " + lookup.allow);
            response.headers.emplace_back("Allow", lookup.allow);
            done(std::move(response));
            return;
        }
        done(error_response(404, "not_found", "no such endpoint"));
        return;
    }
    const auto& match = *lookup.match;
    if (!core::is_storable_text(match.param)) {
        // Raw bytes that are not UTF-8 (RFC 3986 wants them percent-encoded): no id is such.
        done(error_response(400, "bad_request", "the path must be UTF-8 text"));
        return;
    }
    // Operational routes answer inline: no wrapper (and no allocation) around `done`.
    auto answer_now = [&](http_response&& r) {
        r.route = match.route_template;
        done(std::move(r));
    };
    switch (match.id) {
        case route_id::health:
            answer_now(impl_->health());
            return;
        case route_id::ready:
            answer_now(impl_->ready());
            return;
        case route_id::metrics:
            answer_now(impl_->metrics_page(request));
            return;
        case route_id::ui:
            answer_now(ui_file(match.param));
            return;
        default:
            break;
    }
    auto tagged = [route = match.route_template, done = std::move(done)](http_response&& r) {
        r.route = route;
        done(std::move(r));
    };
    switch (match.id) {
        case route_id::stats:
            handle_stats(*impl_, request, std::move(tagged));
            return;
        case route_id::register_agent:
        case route_id::heartbeat:
        case route_id::deregister_agent:
        case route_id::list_agents:
        case route_id::get_agent:
            handle_agent_route(*impl_, match, std::move(request), std::move(tagged));
            return;
        case route_id::ws_agent_new:
        case route_id::ws_agent:
            tagged(error_response(400, "bad_request", "this endpoint needs a WebSocket upgrade"));
            return;
        case route_id::health:
        case route_id::ready:
        case route_id::metrics:
        case route_id::ui:
            return;  // answered above
        default:
            handle_task_route(*impl_, match, std::move(request), std::move(tagged));
            return;
    }
}

void service::abandon(std::uint64_t connection_id) {
    auto it = impl_->long_polls.find(connection_id);
    if (it == impl_->long_polls.end() || !*it->second.slot) {
        // Not waiting yet (its agent is being authenticated, or its rate limit asked): it ends
        // when it gets to wait (request_allowed).
        impl_->abandoned_polls.emplace(connection_id, std::chrono::steady_clock::now());
        return;
    }
    service_state::long_poll poll = std::move(it->second);
    impl_->long_polls.erase(it);
    impl_->end_empty(poll);
}

bool service::may_wait_for_event(const http_request& request) const {
    return request.method == http_method::post && request.path == "/api/v1/tasks/request";
}

void service::upgrade(const http_request& request, ws_connection& connection,
                      upgrade_callback done) {
    auto lookup = match_route(request.method, request.path);
    if (!lookup.match ||
        (lookup.match->id != route_id::ws_agent_new && lookup.match->id != route_id::ws_agent)) {
        upgrade_result result;
        result.refusal = error_response(404, "not_found", "no WebSocket endpoint here");
        return done(std::move(result));
    }
    if (!core::is_storable_text(lookup.match->param)) {
        upgrade_result result;
        result.refusal = error_response(400, "bad_request", "the path must be UTF-8 text");
        return done(std::move(result));
    }
    if (impl_->transport.draining) {
        upgrade_result result;
        result.refusal = error_response(503, "unavailable", "the worker is draining");
        result.refusal->headers.emplace_back("Retry-After", "1");
        return done(std::move(result));
    }
    upgrade_agent_socket(*impl_, *lookup.match, request, connection, std::move(done));
}

std::chrono::steady_clock::time_point service::tick(std::chrono::steady_clock::time_point now) {
    const auto wall_now = service_state::now();
    const auto next = impl_->engine.tick(wall_now);
    // Drop answered long polls from the drain list, and marks of abandoned ones that never got
    // to wait (refused before, by authentication or the rate limit).
    std::erase_if(impl_->long_polls, [](const auto& entry) { return !*entry.second.slot; });
    std::erase_if(impl_->abandoned_polls, [now](const auto& entry) {
        return now - entry.second > service_state::k_abandoned_poll_memory;
    });
    if (next == store::time_point::max()) {
        return std::chrono::steady_clock::time_point::max();
    }
    return now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(next - wall_now);
}

void service::begin_drain() {
    // Long polls end now (empty), so their connections can close within the drain.
    for (auto& [connection, poll] : impl_->long_polls) {
        if (*poll.slot) {
            impl_->end_empty(poll);
        }
    }
    impl_->long_polls.clear();
    announce_drain(*impl_);
}

std::string_view service::store_name() const {
    return impl_->store_name;
}

}  // namespace pm_agent::api

// Request routing and the operational endpoints (/health, /ready, /metrics). Task and agent
// routes are dispatched to their own files.

#include "pm_agent/api/service.hpp"

#include "pm_agent/api/auth.hpp"
#include "pm_agent/api/errors.hpp"
#include "pm_agent/api/router.hpp"
#include "pm_agent/config/load.hpp"
#include "pm_agent/log/logging.hpp"
#include "pm_agent/metrics/registry.hpp"

namespace pm_agent::api {

struct service::impl {
    impl(const config::config& c, metrics::registry& r, transport_state& s)
        : cfg(c),
          registry(r),
          state(s),
          auth(c.auth, config::is_loopback_host(c.server.host)) {
        registry.gauge("pm_agent_log_lines_dropped", "Log lines dropped because the queue was full.")
            .get()
            .bind([] { return static_cast<double>(log::dropped_lines()); });
    }

    const config::config& cfg;
    metrics::registry& registry;
    transport_state& state;
    authenticator auth;

    http_response health() const {
        http_response response;
        response.body = R"({"status":"ok"})";
        return response;
    }

    http_response ready() const {
        http_response response;
        if (state.draining) {
            response.status = 503;
            response.body = R"({"status":"draining","reason":"the worker is shutting down"})";
        } else {
            response.body = R"({"status":"ready"})";
        }
        return response;
    }

    http_response metrics_page(const http_request& request) const {
        if (!cfg.server.metrics_public) {
            if (auto refused = check_token(request, token_kind::admin)) {
                return std::move(*refused);
            }
        }
        http_response response;
        response.content_type = "text/plain; version=0.0.4; charset=utf-8";
        registry.render(response.body);
        return response;
    }

    /// nullopt when the caller may proceed; else the 401/403 to send.
    std::optional<http_response> check_token(const http_request& request, token_kind kind) const {
        switch (auth.check(bearer_token(request.authorization), kind)) {
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
};

service::service(const config::config& cfg, metrics::registry& registry, transport_state& state)
    : impl_(std::make_unique<impl>(cfg, registry, state)) {}

service::~service() = default;

void service::handle(http_request&& request, respond_fn done) {
    auto lookup = match_route(request.method, request.path);
    if (!lookup.match) {
        if (!lookup.allow.empty()) {
            auto response = error_response(405, "method_not_allowed",
                                           "method " + std::string(to_string(request.method)) +
                                               " is not allowed here; allowed: " + lookup.allow);
            response.headers.emplace_back("Allow", lookup.allow);
            done(std::move(response));
            return;
        }
        done(error_response(404, "not_found", "no such endpoint"));
        return;
    }
    const auto& match = *lookup.match;
    http_response response;
    switch (match.id) {
        case route_id::health:
            response = impl_->health();
            break;
        case route_id::ready:
            response = impl_->ready();
            break;
        case route_id::metrics:
            response = impl_->metrics_page(request);
            break;
        default:
            response = error_response(404, "not_found", "no such endpoint");
            break;
    }
    response.route = match.route_template;
    done(std::move(response));
}

upgrade_result service::upgrade(const http_request& request, ws_connection& connection) {
    upgrade_result result;
    result.refusal = error_response(404, "not_found", "no such endpoint");
    return result;
}

std::chrono::steady_clock::time_point service::tick(std::chrono::steady_clock::time_point now) {
    return now + std::chrono::seconds(1);
}

void service::begin_drain() {}

std::string_view service::store_name() const { return "memory"; }

}  // namespace pm_agent::api

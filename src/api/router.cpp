#include "pm_agent/api/router.hpp"

#include <array>

namespace pm_agent::api {
namespace {

struct route_entry {
    http_method method;
    std::string_view pattern;  ///< "{id}" marks the single parameter segment
    route_id id;
};

// Literal routes come before parameterised ones with the same shape, so
// "/api/v1/tasks/batch" is not read as a task id.
constexpr std::array k_routes{
    route_entry{http_method::get, "/health", route_id::health},
    route_entry{http_method::get, "/ready", route_id::ready},
    route_entry{http_method::get, "/metrics", route_id::metrics},
    route_entry{http_method::get, "/api/v1/stats", route_id::stats},
    route_entry{http_method::post, "/api/v1/agents/register", route_id::register_agent},
    route_entry{http_method::post, "/api/v1/agents/{id}/heartbeat", route_id::heartbeat},
    route_entry{http_method::get, "/api/v1/agents", route_id::list_agents},
    route_entry{http_method::get, "/api/v1/agents/{id}", route_id::get_agent},
    route_entry{http_method::del, "/api/v1/agents/{id}", route_id::deregister_agent},
    route_entry{http_method::post, "/api/v1/tasks", route_id::submit_task},
    route_entry{http_method::get, "/api/v1/tasks", route_id::list_tasks},
    route_entry{http_method::post, "/api/v1/tasks/batch", route_id::submit_batch},
    route_entry{http_method::post, "/api/v1/tasks/request", route_id::request_tasks},
    route_entry{http_method::get, "/api/v1/tasks/{id}", route_id::get_task},
    route_entry{http_method::post, "/api/v1/tasks/{id}/cancel", route_id::cancel_task},
    route_entry{http_method::post, "/api/v1/tasks/{id}/retry", route_id::retry_task},
    route_entry{http_method::post, "/api/v1/tasks/{id}/start", route_id::start_task},
    route_entry{http_method::post, "/api/v1/tasks/{id}/progress", route_id::progress_task},
    route_entry{http_method::post, "/api/v1/tasks/{id}/complete", route_id::complete_task},
    route_entry{http_method::post, "/api/v1/tasks/{id}/fail", route_id::fail_task},
    route_entry{http_method::get, "/ws/agent", route_id::ws_agent_new},
    route_entry{http_method::get, "/ws/agent/{id}", route_id::ws_agent},
    route_entry{http_method::get, "/ui", route_id::ui},
    route_entry{http_method::get, "/ui/{id}", route_id::ui},
};

/// Matches path against pattern segment by segment; the "{id}" segment must be non-empty.
bool matches(std::string_view pattern, std::string_view path, std::string_view& param) {
    constexpr std::string_view k_param = "{id}";
    while (!pattern.empty() && !path.empty()) {
        if (pattern.starts_with(k_param)) {
            auto end = path.find('/');
            auto segment = path.substr(0, end);
            if (segment.empty()) {
                return false;
            }
            param = segment;
            pattern.remove_prefix(k_param.size());
            path.remove_prefix(segment.size());
            continue;
        }
        if (pattern.front() != path.front()) {
            return false;
        }
        pattern.remove_prefix(1);
        path.remove_prefix(1);
    }
    return pattern.empty() && path.empty();
}

/// Whether a literal route claims this path (so "{id}" must not).
bool literal_route_exists(std::string_view path) {
    for (const auto& entry : k_routes) {
        if (entry.pattern.find('{') == std::string_view::npos && entry.pattern == path) {
            return true;
        }
    }
    return false;
}

}  // namespace

route_lookup match_route(http_method method, std::string_view path) {
    const http_method effective = method == http_method::head ? http_method::get : method;
    const bool literal = literal_route_exists(path);
    route_lookup result;
    for (const auto& entry : k_routes) {
        std::string_view param;
        if (!matches(entry.pattern, path, param)) {
            continue;
        }
        if (literal && !param.empty()) {
            continue;
        }
        if (entry.method == effective) {
            result.match = route_match{entry.id, entry.pattern, param};
            result.allow.clear();
            return result;
        }
        const auto name = to_string(entry.method);
        if (result.allow.find(name) == std::string::npos) {
            if (!result.allow.empty()) {
                result.allow += ", ";
            }
            result.allow += name;
            if (entry.method == http_method::get) {
                result.allow += ", HEAD";
            }
        }
    }
    return result;
}

}  // namespace pm_agent::api

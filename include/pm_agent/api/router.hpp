#pragma once
/// The route table of API.md as pure data: (method, path) -> route id, the route template for
/// metrics labels, and the path parameter. 404 vs 405 (with Allow) is decided here.

#include <optional>
#include <string>
#include <string_view>

#include "pm_agent/api/http_types.hpp"

namespace pm_agent::api {

enum class route_id {
    health,
    ready,
    metrics,
    stats,
    register_agent,
    heartbeat,
    deregister_agent,
    list_agents,
    get_agent,
    submit_task,
    submit_batch,
    list_tasks,
    get_task,
    cancel_task,
    retry_task,
    request_tasks,
    start_task,
    progress_task,
    complete_task,
    fail_task,
    ws_agent_new,
    ws_agent,
    ui,  ///< the dashboard's files (an extension)
};

/// A matched route. `param` is the one path parameter ({id}), a view into the matched path.
struct route_match {
    route_id id;
    std::string_view route_template;  ///< static string, safe as a metrics label
    std::string_view param;
};

/// Either a match, or a known path with the wrong method (405 + Allow), or nothing (404).
struct route_lookup {
    std::optional<route_match> match;
    std::string allow;  ///< non-empty when the path exists for other methods
};

/// HEAD matches GET routes.
route_lookup match_route(http_method method, std::string_view path);

}  // namespace pm_agent::api

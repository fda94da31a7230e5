#pragma once
/// What submitters and agents ask for, as the JSON codec decoded it (types already checked),
/// and the range checks and defaults that turn it into store records. Numbers are kept wide
/// here so that an out-of-range value is reported, not silently truncated.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "pm_agent/store/result.hpp"
#include "pm_agent/store/types.hpp"

namespace pm_agent::core {

/// The body of POST /api/v1/tasks (or one entry of a batch). Absent fields are nullopt/empty.
struct task_spec {
    std::string type;
    boost::json::value payload;  ///< null when absent
    std::optional<std::string> queue;
    std::optional<std::int64_t> priority;
    std::vector<std::string> required_capabilities;
    std::optional<std::int64_t> max_attempts;
    std::optional<std::int64_t> timeout_s;
    std::optional<double> delay_s;
    std::optional<store::time_point> run_at;
    std::optional<std::string> idempotency_key;  ///< the field or the Idempotency-Key header
};

/// The body of agent registration (REST or the WebSocket `register` message).
struct agent_spec {
    std::string name;
    std::vector<std::string> queues;  ///< empty: ["default"]
    std::vector<std::string> capabilities;
    std::map<std::string, std::string> labels;
    std::optional<std::int64_t> max_concurrency;
    std::string worker;  ///< "host:pid" of the worker handling the registration
};

/// Defaults applied to a task_spec.
struct task_defaults {
    int max_attempts = 3;         ///< queue.max_attempts
    std::uint32_t timeout_s = 0;  ///< 0: no execution timeout unless the task asks for one
};

/// Range limits, here so that the codec and the docs can quote them.
inline constexpr int k_min_priority = -100;
inline constexpr int k_max_priority = 100;
inline constexpr int k_max_attempts_limit = 1000;
inline constexpr std::int64_t k_max_timeout_s = 30LL * 24 * 3600;
inline constexpr double k_max_delay_s = 366.0 * 24 * 3600;
inline constexpr std::int64_t k_max_concurrency_limit = 10000;
inline constexpr std::size_t k_max_name_length = 255;

/// Checks ranges and applies defaults. `field_prefix` ("" or "tasks[3].") starts every error
/// message, which otherwise names the field ("priority: must be between -100 and 100").
/// The id is left empty for the caller to fill.
store::result<store::new_task> validate_task(task_spec&& spec, const task_defaults& defaults,
                                             std::string_view field_prefix);

/// Checks ranges and applies defaults (queues ["default"], max_concurrency 1). The id and
/// token hash are left for the caller.
store::result<store::new_agent> validate_agent(agent_spec&& spec);

}  // namespace pm_agent::core

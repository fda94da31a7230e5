#include "pm_agent/core/requests.hpp"

#include <cmath>

namespace pm_agent::core {

namespace {

using store::errc;
using store::error;

error bad(std::string_view prefix, std::string_view field, std::string_view what) {
    std::string msg;
    msg.reserve(prefix.size() + field.size() + what.size() + 2);
    msg.append(prefix).append(field).append(": ").append(what);
    return error{errc::bad_request, std::move(msg)};
}

bool valid_name(std::string_view s) {
    return !s.empty() && s.size() <= k_max_name_length;
}

// Checks a list of names (capabilities, queues) and brings it to the sorted unique form.
bool normalize_list(std::vector<std::string>& names) {
    for (const std::string& n : names) {
        if (!valid_name(n)) {
            return false;
        }
    }
    store::normalize_names(names);
    return true;
}

}  // namespace

store::result<store::new_task> validate_task(task_spec&& spec, const task_defaults& defaults,
                                             std::string_view prefix) {
    store::new_task t;
    if (!valid_name(spec.type)) {
        return bad(prefix, "type", "must be a non-empty string of at most 255 bytes");
    }
    t.type = std::move(spec.type);
    t.payload = std::move(spec.payload);
    if (spec.queue) {
        if (!valid_name(*spec.queue)) {
            return bad(prefix, "queue", "must be a non-empty string of at most 255 bytes");
        }
        t.queue = std::move(*spec.queue);
    } else {
        t.queue = "default";
    }
    if (spec.priority) {
        if (*spec.priority < k_min_priority || *spec.priority > k_max_priority) {
            return bad(prefix, "priority", "must be an integer between -100 and 100");
        }
        t.priority = static_cast<int>(*spec.priority);
    }
    if (!normalize_list(spec.required_capabilities)) {
        return bad(prefix, "required_capabilities",
                   "must be non-empty strings of at most 255 bytes");
    }
    t.required_capabilities = std::move(spec.required_capabilities);
    t.max_attempts = defaults.max_attempts;
    if (spec.max_attempts) {
        if (*spec.max_attempts < 1 || *spec.max_attempts > k_max_attempts_limit) {
            return bad(prefix, "max_attempts", "must be an integer between 1 and 1000");
        }
        t.max_attempts = static_cast<int>(*spec.max_attempts);
    }
    t.timeout_s = defaults.timeout_s;
    if (spec.timeout_s) {
        if (*spec.timeout_s < 1 || *spec.timeout_s > k_max_timeout_s) {
            return bad(prefix, "timeout_s", "must be an integer between 1 and 2592000");
        }
        t.timeout_s = static_cast<std::uint32_t>(*spec.timeout_s);
    }
    if (spec.delay_s && spec.run_at) {
        return bad(prefix, "delay_s", "give delay_s or run_at, not both");
    }
    if (spec.delay_s) {
        const double d = *spec.delay_s;
        if (!std::isfinite(d) || d < 0 || d > k_max_delay_s) {
            return bad(prefix, "delay_s", "must be a number of seconds between 0 and 31622400");
        }
        t.delay = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(d * 1000.0)));
    }
    t.run_at = spec.run_at;
    if (spec.idempotency_key) {
        if (!valid_name(*spec.idempotency_key)) {
            return bad(prefix, "idempotency_key",
                       "must be a non-empty string of at most 255 bytes");
        }
        t.idempotency_key = std::move(spec.idempotency_key);
    }
    return t;
}

store::result<store::new_agent> validate_agent(agent_spec&& spec) {
    store::new_agent a;
    if (!valid_name(spec.name)) {
        return bad("", "name", "must be a non-empty string of at most 255 bytes");
    }
    a.name = std::move(spec.name);
    if (spec.queues.empty()) {
        spec.queues.emplace_back("default");
    }
    if (!normalize_list(spec.queues)) {
        return bad("", "queues", "must be non-empty strings of at most 255 bytes");
    }
    a.queues = std::move(spec.queues);
    if (!normalize_list(spec.capabilities)) {
        return bad("", "capabilities", "must be non-empty strings of at most 255 bytes");
    }
    a.capabilities = std::move(spec.capabilities);
    for (const auto& [key, value] : spec.labels) {
        if (!valid_name(key) || value.size() > k_max_name_length) {
            return bad("", "labels", "keys must be non-empty; keys and values at most 255 bytes");
        }
    }
    a.labels = std::move(spec.labels);
    if (spec.max_concurrency) {
        if (*spec.max_concurrency < 1 || *spec.max_concurrency > k_max_concurrency_limit) {
            return bad("", "max_concurrency", "must be an integer between 1 and 10000");
        }
        a.max_concurrency = static_cast<std::uint32_t>(*spec.max_concurrency);
    }
    a.worker = std::move(spec.worker);
    return a;
}

}  // namespace pm_agent::core

#include "pm_agent/store/types.hpp"

#include "pm_agent/store/store.hpp"

#include <algorithm>
#include <array>

namespace pm_agent::store {

namespace {

constexpr std::array<std::string_view, k_task_status_count> k_task_status_names{
    "pending", "scheduled", "assigned", "running", "succeeded", "failed", "dead", "cancelled"};

constexpr std::array<std::string_view, k_agent_status_count> k_agent_status_names{
    "online", "offline", "draining"};

}  // namespace

std::string_view to_string(task_status s) {
    return k_task_status_names[static_cast<std::size_t>(s)];
}

std::optional<task_status> parse_task_status(std::string_view s) {
    for (std::size_t i = 0; i < k_task_status_names.size(); ++i) {
        if (k_task_status_names[i] == s) {
            return static_cast<task_status>(i);
        }
    }
    return std::nullopt;
}

bool is_finished(task_status s) {
    return s == task_status::succeeded || s == task_status::failed || s == task_status::dead ||
           s == task_status::cancelled;
}

bool is_held(task_status s) {
    return s == task_status::assigned || s == task_status::running;
}

std::string_view to_string(agent_status s) {
    return k_agent_status_names[static_cast<std::size_t>(s)];
}

std::optional<agent_status> parse_agent_status(std::string_view s) {
    for (std::size_t i = 0; i < k_agent_status_names.size(); ++i) {
        if (k_agent_status_names[i] == s) {
            return static_cast<agent_status>(i);
        }
    }
    return std::nullopt;
}

std::string_view release_text(release_reason why) {
    switch (why) {
        case release_reason::lease_expired:
            return "lease expired: not renewed within lease_timeout_s";
        case release_reason::agent_offline:
            return "agent offline: no heartbeat within heartbeat_timeout_s";
        case release_reason::timed_out:
            return "timed out: assigned longer than timeout_s";
        case release_reason::deregistered:
            return "agent deregistered";
        case release_reason::disconnected:
            return "agent disconnected: it stopped reading its connection";
    }
    return "released";
}

bool same_submission(const new_task& a, const new_task& b) {
    return a.queue == b.queue && a.type == b.type && a.payload == b.payload &&
           a.priority == b.priority && a.max_attempts == b.max_attempts &&
           a.required_capabilities == b.required_capabilities && a.timeout_s == b.timeout_s &&
           a.delay == b.delay && a.run_at == b.run_at;
}

std::optional<time_point> run_at_of(const new_task& spec, time_point now) {
    if (spec.run_at) {
        return spec.run_at;
    }
    if (spec.delay) {
        return now + *spec.delay;
    }
    return std::nullopt;
}

task record_of_submission(new_task&& spec, time_point now, std::uint64_t seq) {
    task t;
    t.run_at = run_at_of(spec, now);
    t.status = t.run_at && *t.run_at > now ? task_status::scheduled : task_status::pending;
    t.id = std::move(spec.id);
    t.queue = std::move(spec.queue);
    t.type = std::move(spec.type);
    t.payload = std::move(spec.payload);
    t.priority = spec.priority;
    t.max_attempts = spec.max_attempts;
    t.required_capabilities = std::move(spec.required_capabilities);
    t.timeout_s = spec.timeout_s;
    t.idempotency_key = std::move(spec.idempotency_key);
    t.created_at = now;
    t.updated_at = now;
    t.ready_at = now;
    t.seq = seq;
    return t;
}

std::string batch_message(std::size_t count, std::size_t i, std::string_view text) {
    std::string msg;
    if (count > 1) {
        msg = "tasks[" + std::to_string(i) + "].";
    }
    msg += text;
    return msg;
}

void normalize_names(std::vector<std::string>& names) {
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
}

bool is_subset(std::span<const std::string> needed, std::span<const std::string> have) {
    if (needed.size() > have.size()) {
        return false;
    }
    return std::includes(have.begin(), have.end(), needed.begin(), needed.end());
}

}  // namespace pm_agent::store

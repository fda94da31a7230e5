#pragma once
/// The records the store keeps: tasks and agents, as the engine and the JSON codec read them,
/// and the inputs that create them. All times are injected by the caller (system_clock).

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

namespace pm_agent::store {

using clock = std::chrono::system_clock;
using time_point = clock::time_point;

/// API.md task states. `failed` is reserved: v1 never reports it.
enum class task_status : std::uint8_t {
    pending,
    scheduled,
    assigned,
    running,
    succeeded,
    failed,
    dead,
    cancelled,
};
inline constexpr std::size_t k_task_status_count = 8;

/// The wire name ("pending").
std::string_view to_string(task_status s);
/// Parses a wire name; nullopt for anything else.
std::optional<task_status> parse_task_status(std::string_view s);
/// succeeded, failed, dead, cancelled: the task will never change again.
bool is_finished(task_status s);
/// assigned or running: an agent holds a lease on the task.
bool is_held(task_status s);

/// API.md agent states.
enum class agent_status : std::uint8_t { online, offline, draining };
inline constexpr std::size_t k_agent_status_count = 3;

std::string_view to_string(agent_status s);
std::optional<agent_status> parse_agent_status(std::string_view s);

/// The last progress an agent reported for a task.
struct task_progress {
    double value = 0;  ///< 0..1
    std::string message;
};

/// One task as stored. Optional fields are JSON null when absent.
struct task {
    std::string id;  ///< "t_" + 13 base32 characters
    std::string queue;
    std::string type;
    boost::json::value payload;
    int priority = 0;  ///< -100..100, higher runs first
    task_status status = task_status::pending;
    int attempts = 0;  ///< assignments so far; each assignment counts
    int max_attempts = 1;
    std::vector<std::string> required_capabilities;  ///< sorted, unique
    std::uint32_t timeout_s = 0;                     ///< 0: no execution timeout
    std::optional<std::string> idempotency_key;
    std::optional<std::string> agent_id;  ///< holder while assigned/running; who finished it after
    boost::json::value result;            ///< null until succeeded
    std::optional<std::string> error;     ///< last failure or why the task is dead
    std::optional<task_progress> progress;
    std::optional<time_point> run_at;  ///< while scheduled: when it becomes pending
    time_point created_at{};
    time_point updated_at{};
    std::optional<time_point> lease_expires_at;  ///< while held
    /// Fencing number of the current (or last) lease: incremented on every assignment and never
    /// reset, so a timer or a delayed message about an older lease can be told apart.
    std::uint32_t attempt = 0;
    /// Submission order: FIFO within a priority and "newest first" listings use it.
    std::uint64_t seq = 0;
    /// When the task last became pending; dispatch latency = assignment time - ready_at.
    time_point ready_at{};
};

/// One agent as stored.
struct agent {
    std::string id;  ///< "a_" + 13 base32 characters
    std::string name;
    std::vector<std::string> queues;        ///< sorted, unique, at least one
    std::vector<std::string> capabilities;  ///< sorted, unique
    std::map<std::string, std::string> labels;
    std::uint32_t max_concurrency = 1;
    agent_status status = agent_status::online;
    std::uint32_t running = 0;  ///< tasks it holds now (assigned or running)
    time_point last_heartbeat{};
    time_point registered_at{};
    std::optional<time_point> lease_expires_at;  ///< when its leases end unless renewed
    std::string worker;                          ///< "host:pid" of the worker it registered on
    std::array<unsigned char, 32> token_hash{};  ///< SHA-256 of its token; never serialized
    std::uint64_t seq = 0;                       ///< registration order
};

/// A validated, defaulted submission (built by core::validate_task).
struct new_task {
    std::string id;
    std::string queue;
    std::string type;
    boost::json::value payload;
    int priority = 0;
    int max_attempts = 1;
    std::vector<std::string> required_capabilities;  ///< sorted, unique
    std::uint32_t timeout_s = 0;
    std::optional<std::string> idempotency_key;
    /// As requested (at most one of them); an idempotent repeat compares these, not the
    /// resulting run_at, so that the same `delay_s` sent twice counts as the same body.
    std::optional<std::chrono::milliseconds> delay;
    std::optional<time_point> run_at;
};

/// A validated registration (built by the engine).
struct new_agent {
    std::string id;
    std::string name;
    std::vector<std::string> queues;        ///< sorted, unique, at least one
    std::vector<std::string> capabilities;  ///< sorted, unique
    std::map<std::string, std::string> labels;
    std::uint32_t max_concurrency = 1;
    std::string worker;
    std::array<unsigned char, 32> token_hash{};
};

/// Sorts and removes duplicates: capability and queue sets are kept in this form.
void normalize_names(std::vector<std::string>& names);

/// Two submissions are the same request (an idempotent repeat) when every field the client sent
/// matches; the delay is compared as sent, not as the run_at it produced.
bool same_submission(const new_task& a, const new_task& b);

/// When a submission becomes pending: its run_at, else now + its delay; nullopt: at once.
std::optional<time_point> run_at_of(const new_task& spec, time_point now);

/// The record of a newly created task (pending, or scheduled when run_at_of is later than
/// `now`), with the submission order `seq` its store assigned.
task record_of_submission(new_task&& spec, time_point now, std::uint64_t seq);

/// "tasks[i].text" for entry i of a batch of `count`, just `text` for a single submission.
std::string batch_message(std::size_t count, std::size_t i, std::string_view text);

/// True when every name of `needed` is in `have`; both sorted and unique.
bool is_subset(std::span<const std::string> needed, std::span<const std::string> have);

}  // namespace pm_agent::store

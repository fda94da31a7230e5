#pragma once
/// The one storage interface (DESIGN.md §2). The memory store implements it now, a PostgreSQL
/// store later; both pass tests/unit/store's contract suite. The store keeps task and agent
/// records, the pending index, leases, cancel notices and deadlines; it knows nothing of
/// connections, credit or long polls (that is core::engine).
///
/// Every operation completes through a callback (store::callback, see unique_function.hpp):
/// the memory store calls it before returning, an asynchronous store later on the same loop
/// thread. Pointers and spans in a result are valid only during the callback; string_views
/// passed in only need to live until the call returns. An implementation must be re-entrant:
/// a callback may start another operation.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/value.hpp>

#include "pm_agent/store/result.hpp"
#include "pm_agent/store/types.hpp"
#include "pm_agent/store/unique_function.hpp"

namespace pm_agent::store {

/// Names the lease an operation acts under: the task and the agent that claims to hold it.
struct lease_ref {
    std::string_view task_id;
    std::string_view agent_id;
};

/// One entry of a submission, in request order.
struct submitted {
    const task* record = nullptr;
    bool created = false;  ///< false: an idempotent repeat answered with the existing task
};

/// The tasks a claim assigned, and the claiming agent as it is afterwards (its status,
/// running count and max_concurrency tell the engine how much more it may take).
struct claim_outcome {
    std::span<const task* const> tasks;
    const agent* claimer = nullptr;
};

/// A cancellation. `was_held`: the task had a holder (record->agent_id), who must be told.
struct cancel_outcome {
    const task* record = nullptr;
    bool was_held = false;
};

/// Why a lease ended without an outcome from its agent.
enum class release_reason : std::uint8_t {
    lease_expired,  ///< not renewed within lease_timeout
    agent_offline,  ///< agent silent past heartbeat_timeout
    timed_out,      ///< assigned longer than the task's timeout_s
    deregistered,   ///< its agent was deregistered
    disconnected,   ///< its agent's connection was dropped for not reading (release_agent_tasks)
};

/// Why a lease ended, as a released task's `error` says it (a store adds "; no attempts left"
/// when the task is dead).
std::string_view release_text(release_reason why);

/// A task taken from its agent by the store. `status` is pending (it can run again) or dead.
struct released_task {
    std::string task_id;
    std::string agent_id;  ///< the former holder
    std::string queue;
    std::vector<std::string> required_capabilities;
    task_status status = task_status::pending;
    release_reason reason = release_reason::lease_expired;
};

/// A task that became pending on its own (a scheduled task came due).
struct due_task {
    std::string queue;
    std::vector<std::string> required_capabilities;
};

/// What a heartbeat did.
struct heartbeat_outcome {
    const agent* record = nullptr;
    /// Tasks taken from this agent since its last heartbeat (cancelled, timed out, released):
    /// it must stop them. Taken out of the store by this call.
    std::vector<std::string> cancel;
    bool came_online = false;  ///< it was offline and is online (or draining) again
};

/// Everything a reap did at `now`; see store::reap.
struct reap_outcome {
    std::vector<released_task> released;
    std::vector<due_task> due;
    std::vector<std::string> offline_agents;
    std::size_t deleted_tasks = 0;
    /// Queues that have pending tasks this store may not have told the engine about (another
    /// worker queued them): the engine offers them to every available consumer of those queues.
    /// Only a store shared between workers fills it.
    std::vector<std::string> pending_queues;
};

/// Filters of GET /api/v1/tasks; newest first.
struct task_filter {
    std::optional<task_status> status;
    std::optional<std::string> queue;
    std::optional<std::string> type;
    std::optional<std::string> agent_id;
    std::size_t limit = 100;  ///< 1..1000
    std::string cursor;       ///< "" or a next_cursor from the previous page
};

/// One page of tasks.
struct task_page {
    std::vector<task> items;
    std::optional<std::string> next_cursor;
};

/// Filters of GET /api/v1/agents; registration order.
struct agent_filter {
    std::optional<agent_status> status;
    std::optional<std::string> queue;
    std::size_t limit = 100;
    std::string cursor;
};

/// One page of agents.
struct agent_page {
    std::vector<agent> items;
    std::optional<std::string> next_cursor;
};

/// Task counts indexed by task_status.
using status_counts = std::array<std::uint64_t, k_task_status_count>;

/// The numbers of /api/v1/stats.
struct store_stats {
    status_counts tasks{};
    std::vector<std::pair<std::string, status_counts>> queues;  ///< sorted by queue name
    std::array<std::uint64_t, k_agent_status_count> agents{};   ///< indexed by agent_status
};

/// Pending tasks of one queue (the pm_agent_task_queue_size{queue} gauge).
struct queue_depth {
    std::string queue;
    std::uint64_t pending = 0;
};

/// The storage contract. Errors: not_found for an unknown task or agent id, conflict for a
/// lease the caller does not hold or a finished task, queue_full past task_queue_size,
/// bad_request for a bad cursor, unavailable/internal for back-end trouble.
class store {
  public:
    virtual ~store() = default;

    /// Creates tasks, all or nothing. A task is `scheduled` when its run_at (or now + delay)
    /// is in the future, else `pending`. Idempotency key already used with the same body:
    /// that task, created=false; with a different body: conflict. Past task_queue_size
    /// pending+scheduled tasks (counting only new ones): queue_full; nothing is created.
    virtual void submit(std::vector<new_task> tasks, time_point now,
                        callback<std::span<const submitted>> done) = 0;

    /// Assigns up to `max` pending tasks to the agent: its queues, required capabilities a
    /// subset of its capabilities, priority desc then FIFO, at most max_concurrency - running.
    /// Only online agents get tasks (none for draining/offline ones: an empty success). Each
    /// assignment increments attempts and attempt, and starts a lease of lease_timeout (which
    /// renews the agent's other leases: leases are per agent).
    virtual void claim(std::string_view agent_id, std::size_t max, time_point now,
                       callback<claim_outcome> done) = 0;

    /// assigned -> running (running stays running).
    virtual void start(lease_ref lease, time_point now, callback<const task*> done) = 0;
    /// Records progress, implies start, renews all of the agent's leases.
    virtual void progress(lease_ref lease, task_progress value, time_point now,
                          callback<const task*> done) = 0;
    /// -> succeeded with `result`.
    virtual void complete(lease_ref lease, boost::json::value result, time_point now,
                          callback<const task*> done) = 0;
    /// retryable and attempts < max_attempts: -> scheduled at now + retry_delay(attempts,
    /// jitter) (store/backoff.hpp); else -> dead. `jitter` is uniform in [0, 1).
    virtual void fail(lease_ref lease, std::string error, bool retryable, double jitter,
                      time_point now, callback<const task*> done) = 0;
    /// Any unfinished task -> cancelled (conflict when finished). A held task's agent gets a
    /// cancel notice (see heartbeat).
    virtual void cancel(std::string_view task_id, time_point now,
                        callback<cancel_outcome> done) = 0;
    /// A dead or cancelled task -> pending again, as if new: attempts 0, no agent, result,
    /// error, progress or run_at; its retention starts over when it finishes again. The
    /// fencing number (`attempt`) is kept. conflict for any other status.
    virtual void retry(std::string_view task_id, time_point now, callback<const task*> done) = 0;

    /// One task by id.
    virtual void get_task(std::string_view task_id, callback<const task*> done) = 0;
    /// A page of tasks, newest first (see task_filter).
    virtual void list_tasks(task_filter filter, callback<task_page> done) = 0;
    /// Counts by status, per queue and of agents.
    virtual void stats(callback<store_stats> done) = 0;
    /// Pending tasks per queue, sorted by queue name.
    virtual void queue_depths(callback<std::vector<queue_depth>> done) = 0;

    /// Stores a new agent, online, heartbeat at `now`. conflict if the id exists.
    virtual void register_agent(new_agent spec, time_point now, callback<const agent*> done) = 0;
    /// One agent by id.
    virtual void get_agent(std::string_view agent_id, callback<const agent*> done) = 0;
    /// The agent whose token has this SHA-256 (a task operation names no agent: its bearer
    /// token does); not_found when none.
    virtual void find_agent_by_token(const std::array<unsigned char, 32>& token_hash,
                                     callback<const agent*> done) = 0;
    /// A page of agents in registration order (see agent_filter).
    virtual void list_agents(agent_filter filter, callback<agent_page> done) = 0;
    /// Liveness: last_heartbeat = now, renews all of its leases, sets `status` when given
    /// (online or draining; absent keeps draining, and brings an offline agent online), and
    /// hands over its cancel notices.
    virtual void heartbeat(std::string_view agent_id, std::optional<agent_status> status,
                           time_point now, callback<heartbeat_outcome> done) = 0;
    /// Liveness from an agent's other calls (a REST task request, start, progress, complete,
    /// fail): as a heartbeat without a status, except that its cancel notices stay for its
    /// next heartbeat, whose answer is where a REST agent reads them. The agent's record.
    virtual void renew_liveness(std::string_view agent_id, time_point now,
                                callback<const agent*> done) = 0;
    /// This worker now holds (true) or no longer holds (false) the agent's WebSocket. A store
    /// shared by workers lets the holding worker's own liveness stand for the agent's while it
    /// is attached, so an idle fleet costs no row write per agent; on detach the agent's last
    /// heartbeat is written and its silence counts from there. Fire and forget; the memory
    /// store (one process, heartbeats in memory) has nothing to do.
    virtual void set_attached(std::string_view agent_id, bool attached) {
        (void)agent_id;
        (void)attached;
    }
    /// Deletes the agent; its unfinished tasks go back to pending (dead past max_attempts).
    virtual void deregister_agent(std::string_view agent_id, time_point now,
                                  callback<std::vector<released_task>> done) = 0;
    /// Ends all of the agent's leases now as an expiry would (pending, or dead past
    /// max_attempts, with cancel notices); the agent stays registered. For a consumer whose
    /// connection was dropped because it stopped reading (DESIGN.md §4).
    virtual void release_agent_tasks(std::string_view agent_id, time_point now,
                                     callback<std::vector<released_task>> done) = 0;

    /// Runs everything due at `now`: agents silent past heartbeat_timeout go offline and lose
    /// their tasks; leases not renewed within lease_timeout end; tasks held longer than their
    /// timeout_s end; due scheduled tasks become pending; finished tasks older than retention
    /// are deleted with their idempotency keys. An ended lease puts the task back to pending
    /// if attempts < max_attempts, else dead with an error saying why, and leaves a cancel
    /// notice for the agent.
    virtual void reap(time_point now, callback<reap_outcome> done) = 0;

    /// When reap next has work: exact for the memory store; an asynchronous store answers
    /// with its polling period. nullopt: nothing is due until something changes.
    virtual std::optional<time_point> next_due() const = 0;

    /// Orders claims after writes, so the engine can count tasks on a claim already in flight
    /// instead of starting one claim per task. Never decreases. When a callback reporting
    /// written tasks runs and reads E here, every claim still unanswered that was started while
    /// this already read E will see those tasks (unless another claim takes them first). An
    /// asynchronous store advances it before it hands a transaction's results to their
    /// callbacks, and answers the claims among them before the submissions, so a task that a
    /// claim of the same transaction took is known taken when its submission is answered. A
    /// store that answers every claim inline may return anything.
    virtual std::uint64_t visible_epoch() const = 0;
    /// Most tasks one claim() takes, whatever `max` asks for.
    virtual std::size_t claim_limit() const { return SIZE_MAX; }

    /// Why the store cannot serve now (its database is unreachable), for /ready; nullopt when
    /// it can.
    virtual std::optional<std::string> unavailable_reason() const { return std::nullopt; }
};

}  // namespace pm_agent::store

#pragma once
/// The task/agent engine (DESIGN.md §3-§4): task lifecycle, dispatch with credit (WebSocket)
/// and long polls (REST), leases, cancel pushes and timers, on top of a store::store.
///
/// Sans-I/O and single-threaded: one engine per worker loop, no locks, no clock reads (every
/// operation takes `now`), randomness injected. Operations complete through a callback that is
/// called exactly once (inline with the memory store; later, on the loop, with an asynchronous
/// store). Pointers and spans handed to a callback are valid only during that call. A callback
/// may start further engine operations.
///
/// Wiring for the transport:
/// - REST routes map 1:1 to operations below; errors carry API.md codes (store::errc).
/// - WebSocket: after authenticating, attach(agent_id, sink) and send `registered` from its
///   callback (ready() returns false until then); `ready` -> ready(); each pong and `heartbeat`
///   message -> heartbeat(agent_id, nullopt, now) (liveness and lease renewal; other frames
///   count as liveness too, but at most about once a second, not one store write per frame);
///   `progress`/`complete`/`fail` -> the task operations; connection gone -> detach(agent_id,
///   sink). The engine pushes `task` and `cancel` through the sink.
/// - Timers: arm one timer at the time tick() returns (time_point::max(): none), and re-arm
///   when the timer hook reports an earlier deadline.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "pm_agent/config/config.hpp"
#include "pm_agent/core/agent_sink.hpp"
#include "pm_agent/core/random.hpp"
#include "pm_agent/core/requests.hpp"
#include "pm_agent/store/store.hpp"

namespace pm_agent::core {

using store::callback;
using store::time_point;

/// Engine settings: the queue and agents sections of the configuration plus engine defaults.
struct engine_options {
    config::queue_config queue;
    config::agents_config agents;
    /// timeout_s of a task that does not ask for one; 0 = none (leases still protect against
    /// dead agents, and long-running agent work is the norm).
    std::uint32_t default_timeout_s = 0;
};

/// Monotonic counters for /metrics (read them at scrape time).
struct engine_counters {
    std::uint64_t submitted = 0;   ///< tasks created (idempotent repeats excluded)
    std::uint64_t dispatched = 0;  ///< assignments: pushes and long-poll answers
    std::uint64_t succeeded = 0;
    std::uint64_t retried = 0;  ///< reported failures scheduled for a retry
    std::uint64_t dead = 0;     ///< tasks that went dead (failures or lost leases)
    std::uint64_t cancelled = 0;
    /// Tasks pushed again to a reconnected agent that never reported on them.
    std::uint64_t repushed = 0;
    std::uint64_t lease_expired = 0;  ///< leases ended by lease_timeout, agent silence or a
                                      ///< connection dropped as too slow
    std::uint64_t timed_out = 0;      ///< leases ended by the task's timeout_s
    std::uint64_t requeued = 0;       ///< ended leases put back to pending
    std::uint64_t deleted = 0;        ///< finished tasks removed after retention
};

/// Per-event hooks: histograms (the dispatch latency) and the coordination of workers that
/// share a store (presence, wake-ups, cancels for agents connected elsewhere). Called from
/// inside engine operations: an observer must not call back into the engine synchronously.
class engine_observer {
  public:
    virtual ~engine_observer() = default;
    /// A task was assigned; it had been pending since `ready_at`. The observer reads its own
    /// clock for the latency: the claim that assigned the task may have been asked for (its
    /// `now`) before the task was even submitted, when both went in one database transaction.
    virtual void on_dispatched(time_point ready_at) = 0;
    /// The store accepted a heartbeat (or an attach) of this agent at `now`.
    virtual void on_heartbeat(const store::agent& agent, time_point now) {}
    /// A task of `queue` became pending and no consumer here was free to claim it: one on
    /// another worker may be (the wake-up to publish).
    virtual void on_unclaimed(std::string_view queue) {}
    /// The first free consumer of `queue` here whose last claim found fewer tasks than it
    /// asked for: it waits for work, and a wake-up from another worker would reach it (see
    /// engine::hungry_queues).
    virtual void on_hungry(std::string_view queue) {}
    /// A task was taken from an agent that is not connected here (cancelled, or its lease
    /// ended): the store left it a cancel notice; the worker it is connected to should push it.
    virtual void on_notice_elsewhere(std::string_view agent_id) {}
    /// The agent's WebSocket attached here at `at`: a connection of it on another worker is
    /// stale (engine::replaced_elsewhere there).
    virtual void on_attached(std::string_view agent_id, time_point at) {}
};

/// An agent's calls count as liveness at most this often: a busy agent makes thousands a
/// second, and one renewal a second keeps it as alive as a heartbeat would.
inline constexpr auto k_liveness_interval = std::chrono::seconds(1);

/// The answer to a registration.
struct registration {
    const store::agent* agent = nullptr;
    std::string token;  ///< shown once; only its hash is stored
};

/// Identifies a long poll so that the transport can abandon it when its connection closes.
using request_id = std::uint64_t;

class engine {
  public:
    /// `st` and `rng` must outlive the engine.
    engine(store::store& st, engine_options options, random_source& rng);
    /// Drops pending long polls without calling them.
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    // --- submitters -------------------------------------------------------------------------

    /// POST /api/v1/tasks. Range errors: bad_request naming the field; queue_full; conflict
    /// for an idempotency key reused with another body. The entry says created=false for an
    /// idempotent repeat (answer 200 instead of 202).
    void submit(task_spec spec, time_point now, callback<store::submitted> done);
    /// POST /api/v1/tasks/batch: up to 1000, all or nothing; an invalid entry fails the whole
    /// batch with bad_request naming "tasks[i].field".
    void submit_batch(std::vector<task_spec> specs, time_point now,
                      callback<std::span<const store::submitted>> done);
    /// POST /api/v1/tasks/{id}/cancel: the cancelled task; a holder is sent `cancel` (or gets
    /// it in its next heartbeat answer) and its slot is credited back. conflict if finished.
    void cancel(std::string_view task_id, time_point now, callback<const store::task*> done);
    /// POST /api/v1/tasks/{id}/retry (an extension): a dead or cancelled task pending again
    /// (store::retry) and offered like a new one. conflict for any other status.
    void retry(std::string_view task_id, time_point now, callback<const store::task*> done);
    /// GET /api/v1/tasks/{id}.
    void get_task(std::string_view task_id, callback<const store::task*> done);
    /// limit must be 1..1000 (bad_request otherwise); a bad cursor is bad_request.
    void list_tasks(store::task_filter filter, callback<store::task_page> done);
    /// The store's part of /api/v1/stats.
    void stats(callback<store::store_stats> done);
    /// Pending tasks per queue, for the pm_agent_task_queue_size{queue} gauge.
    void queue_depths(callback<std::vector<store::queue_depth>> done);

    // --- agents -----------------------------------------------------------------------------

    /// POST /api/v1/agents/register (or the WebSocket `register`): a new agent, online, with a
    /// fresh token.
    void register_agent(agent_spec spec, time_point now, callback<registration> done);
    /// Checks an agent's own token: the agent, or unauthorized (unknown id or wrong token).
    void authenticate(std::string_view agent_id, std::string_view token,
                      callback<const store::agent*> done);
    /// The agent whose own token this is (a task operation names no agent), or unauthorized.
    void identify(std::string_view token, callback<const store::agent*> done);
    /// Liveness and lease renewal; `status` online/draining (nullopt keeps it). Answers the
    /// ids of tasks the agent must stop; an attached WebSocket agent is also pushed `cancel`
    /// for each it has not been pushed already (notices left by other workers).
    void heartbeat(std::string_view agent_id, std::optional<store::agent_status> status,
                   time_point now, callback<std::vector<std::string>> done);
    /// DELETE /api/v1/agents/{id}: its unfinished tasks go back to pending; an attached sink
    /// gets deregistered() and its long polls end empty.
    void deregister(std::string_view agent_id, time_point now, callback<void> done);
    /// GET /api/v1/agents/{id}.
    void get_agent(std::string_view agent_id, callback<const store::agent*> done);
    /// GET /api/v1/agents; limit must be 1..1000.
    void list_agents(store::agent_filter filter, callback<store::agent_page> done);

    // --- WebSocket agents -------------------------------------------------------------------

    /// The agent's connection is up (after authentication): counts as a heartbeat, starts with
    /// 0 credit, replaces any previous sink of the agent (close that connection). The callback
    /// gets the agent (send `registered` there); cancels the agent missed while disconnected
    /// are pushed right after it.
    void attach(std::string_view agent_id, agent_sink& sink, time_point now,
                callback<const store::agent*> done);
    /// The connection is gone. Ignored unless `sink` is the agent's current one. The agent
    /// keeps its tasks until heartbeat_timeout (it may reconnect and carry on).
    void detach(std::string_view agent_id, const agent_sink& sink);
    /// Like detach(), for a connection the transport dropped because the agent stopped
    /// reading (its outbound queue overflowed): its tasks go back to pending at once instead
    /// of after heartbeat_timeout (DESIGN.md §4). May be called from inside push_task().
    void detach_too_slow(std::string_view agent_id, const agent_sink& sink, time_point now);
    /// `ready`: grants `slots` more credit, capped so running + credit <= max_concurrency, and
    /// pushes what is pending. Returns false when the agent is not attached.
    bool ready(std::string_view agent_id, std::uint32_t slots, time_point now);

    // --- REST agents ------------------------------------------------------------------------

    /// POST /api/v1/tasks/request: up to max_tasks (1..1000) tasks, each now assigned to the
    /// caller (also capped by max_concurrency - running). Answers at once when any is
    /// available or wait is 0, otherwise when a matching task arrives or empty at now + wait
    /// (0..60 s). Returns an id for abandon_request().
    request_id request_tasks(std::string_view agent_id, std::size_t max_tasks,
                             std::chrono::milliseconds wait, time_point now,
                             callback<std::span<const store::task* const>> done);
    /// The long poll's connection closed: forget it; its callback is never called.
    void abandon_request(request_id id);

    // --- the holding agent's task operations -----------------------------------------------
    // Each names the agent; one that does not hold the task's current lease gets conflict and
    // nothing changes; an unknown task id is not_found.

    /// assigned -> running.
    void start(store::lease_ref lease, time_point now, callback<const store::task*> done);
    /// Records progress (0..1) and renews all of the agent's leases.
    void progress(store::lease_ref lease, double value, std::string message, time_point now,
                  callback<const store::task*> done);
    /// -> succeeded; the slot is credited back and more work pushed.
    void complete(store::lease_ref lease, boost::json::value result, time_point now,
                  callback<const store::task*> done);
    /// -> scheduled for a retry after back-off (retryable and attempts left) or dead.
    void fail(store::lease_ref lease, std::string error, bool retryable, time_point now,
              callback<const store::task*> done);

    // --- time and observability -------------------------------------------------------------

    /// Runs everything due at `now` (leases, agent silence, task timeouts, scheduled tasks,
    /// retention, long-poll deadlines) and returns when it should run next
    /// (time_point::max(): nothing pending).
    time_point tick(time_point now);
    /// Called with a deadline earlier than the last one tick() returned or this hook reported,
    /// when an operation creates one: re-arm the timer. It must not call into the engine.
    void set_timer_hook(store::unique_function<void(time_point)> hook);
    /// `observer` (or nullptr) must outlive the engine or be reset first.
    void set_observer(engine_observer* observer);
    /// Outcome counters (monotonic).
    const engine_counters& counters() const;
    /// Agents with a WebSocket sink attached.
    std::size_t attached_agents() const;
    /// True when this agent's WebSocket is attached to this engine.
    bool is_attached(std::string_view agent_id) const;

    // --- workers sharing a store (wake-ups from other workers) ----------------------------

    /// Another worker queued tasks of `queue`: every free consumer of it here claims once.
    void offer(std::string_view queue, time_point now);
    /// Queues with a free consumer here whose last claim found fewer tasks than it asked for,
    /// in name order: the ones another worker's wake-ups are worth publishing for.
    std::vector<std::string> hungry_queues() const;
    /// Another worker left cancel notices for this agent: if its WebSocket is attached here,
    /// take them from the store (a heartbeat) and push `cancel` for each.
    void deliver_notices(std::string_view agent_id, time_point now);
    /// A REST agent's call that is neither a heartbeat nor a task request (start, progress,
    /// complete, fail) counts as liveness, at most once per k_liveness_interval: API.md ties
    /// liveness to silence, and an agent busy reporting on its tasks is not silent. Its cancel
    /// notices stay for its next heartbeat (store::renew_liveness).
    void heard(std::string_view agent_id, time_point now);
    /// The agent attached on another worker at `attached_at`: its connection here, if it
    /// attached before then, is detached and closed (agent_sink::replaced).
    void replaced_elsewhere(std::string_view agent_id, time_point attached_at);
    /// Long polls waiting.
    std::size_t waiting_requests() const;
    /// Agents the engine keeps dispatch state for (attached, polling, or online since it last
    /// saw them); offline agents without a connection or poll are dropped. A debug gauge.
    std::size_t tracked_agents() const;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace pm_agent::core

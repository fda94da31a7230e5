#pragma once
// The engine's private state (engine::impl), shared by the engine_*.cpp files.
//
// Per agent the engine mirrors what dispatch needs (queues, capabilities, max_concurrency,
// status, running) in an agent_state, kept from store outcomes: every change of an agent's
// running count goes through an engine operation, so with the memory store the mirror is exact
// and a picked consumer always gets the task it was picked for. An agent_state exists while
// the agent is attached, has long polls, or is online after having been seen; it goes away on
// deregistration or when the agent is offline with neither.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "pm_agent/core/dispatcher.hpp"
#include "pm_agent/core/engine.hpp"
#include "pm_agent/core/ids.hpp"

namespace pm_agent::core {

using task_list_callback = callback<std::span<const store::task* const>>;

struct waiter {
    std::string agent_id;
    std::uint32_t max_tasks = 1;
    time_point deadline{};
    task_list_callback done;
    bool linked = false;  // in its agent_state's queue (false until the agent is known)
    // When its waiting next counts as the agent's liveness (impl::waiter_renewals_), if the
    // poll lasts that long.
    std::optional<time_point> renew_at;
};

struct agent_state {
    agent_state() : entry(this) {}

    std::string id;
    std::vector<std::string> queues;
    std::vector<std::string> capabilities;
    std::uint32_t max_concurrency = 1;
    std::uint32_t running = 0;
    store::agent_status status = store::agent_status::online;
    agent_sink* sink = nullptr;
    time_point attached_at{};  // when `sink` attached
    std::uint32_t credit = 0;
    std::vector<request_id> waiters;   // FIFO
    std::uint64_t waiting_demand = 0;  // sum of max_tasks over waiters
    bool claiming = false;             // a claim is in flight: not a consumer until it completes
    bool doomed = false;               // to be destroyed when the claim in flight completes
    bool starved = false;              // its last claim found fewer tasks than it asked for
    bool hungry = false;               // free and starved: counted in impl::hungry_queues_
    // missed_offers_ when the claim in flight started.
    std::uint64_t claim_epoch = 0;
    // The claim in flight: how many more tasks may be counted on it, and the seqs of those
    // that were (0: not known; impl::find_cover).
    std::uint64_t claim_spare = 0;
    std::vector<std::uint64_t> claim_counted;
    // Cancels pushed to this connection whose store notices a heartbeat has not taken yet:
    // the heartbeat then skips them, so each cancel reaches the agent once. Bounded (oldest
    // dropped: at worst a cancel is repeated, which an agent must tolerate anyway).
    std::vector<std::string> pushed_cancels;
    dispatcher::entry entry;

    std::uint32_t room() const {
        return running >= max_concurrency ? 0 : max_concurrency - running;
    }
};

struct engine::impl {
    impl(store::store& st, engine_options opts, random_source& random);

    // engine_dispatch.cpp
    agent_state* find_agent(std::string_view id);
    agent_state& ensure_agent(const store::agent& rec);
    void sync(agent_state& a, const store::agent& rec);  // leaves credit alone
    void clamp_credit(agent_state& a);                   // credit <= room
    // A consumer now: online, not claiming, with room and credit (or long polls waiting).
    static bool available(const agent_state& a);
    void update_activity(agent_state& a);
    void set_hungry(agent_state& a, bool hungry);
    void maybe_forget(agent_state& a);
    void destroy(agent_state& a);
    // Claims for the agent's demand; `for_task`: it was picked for a task just written (its
    // seq, 0 when not known), which counts on this claim's room.
    void serve(agent_state& a, time_point now, std::optional<std::uint64_t> for_task = {});
    // A slot or credit came back: claims unless nothing can be pending for it.
    void refill(agent_state& a, time_point now);
    void on_claimed(agent_state* a, time_point now, std::uint64_t asked,
                    store::result<store::claim_outcome> r);
    // A claim in flight that will see a task of `queue` needing `caps` written at the store's
    // current visible_epoch(), with room left for it; nullptr when there is none.
    agent_state* find_cover(std::string_view queue, std::span<const std::string> caps);
    void uncover(agent_state& a);
    void dispatch_pending(std::string_view queue, std::span<const std::string> caps, time_point now,
                          std::uint64_t seq = 0);
    // A task just submitted: dispatched when pending and not already taken by a claim
    // answered in the same store transaction.
    void offer_submitted(const store::task& t, time_point now);
    // Pending tasks of `queue` may exist that this engine was not told of (another worker
    // queued them): every available consumer of the queue claims once. Returns how many did.
    std::size_t offer_queue(std::string_view queue, time_point now);
    // Tasks counted on a claim may have been left behind in these queues: offered again here,
    // and reported unclaimed (for other workers) when no consumer here is free.
    void offer_left_behind(const std::vector<std::string>& queues, time_point now);
    // A task left the agent: one slot free again (credit for a WebSocket agent), and a cancel
    // pushed when `cancelled_task` is not empty. The caller serves the agent afterwards.
    void release_slot(agent_state& a, std::string_view cancelled_task);
    // Pushes `cancel` for each notice the attached agent has not been pushed already, and
    // returns how many: tasks taken from it elsewhere (another worker's cancel or reaper),
    // whose slots this worker has not credited back yet.
    std::size_t push_notices(std::string_view agent_id, const agent_sink* sink,
                             const std::vector<std::string>& notices);
    // A notice was left for an agent whose connection is not here: tell the observer.
    void notice_elsewhere(std::string_view agent_id);

    // engine_requests.cpp (long polls). remove_waiter hands back the callback uncalled.
    void link_waiter(agent_state& a, request_id id);
    std::vector<task_list_callback> take_expired_waiters(agent_state& a, time_point now);
    task_list_callback remove_waiter(request_id id);
    void end_waiters(agent_state& a, std::vector<task_list_callback>& out);
    void start_request(agent_state& a, request_id id, time_point now);

    // engine.cpp
    time_point next_deadline() const;
    // Reports a new earliest deadline to the timer hook.
    void refresh_deadline();
    void on_reaped(time_point now, store::result<store::reap_outcome> r);
    // Tasks the store took from agents: counters, mirrors, cancels, then dispatch.
    void absorb_released(time_point now, const std::vector<store::released_task>& released);
    void count_release(const store::released_task& r);

    store::store& store_;
    engine_options opts_;
    random_source& rng_;
    id_generator ids_;
    task_defaults defaults_;
    dispatcher dispatcher_;
    std::unordered_map<std::string_view, std::unique_ptr<agent_state>> agents_;
    // attach() calls whose store round trip is still in flight: a detach() meanwhile cancels
    // the attach, so a closed connection's sink is never installed.
    std::unordered_map<std::string, agent_sink*> attaching_;
    // When each REST agent's calls last counted as liveness (engine::heard), pruned once it
    // doubles past heard_prune_at_.
    std::unordered_map<std::string, time_point> heard_at_;
    std::size_t heard_prune_at_ = 1024;
    /// Whether a call of the agent at `now` should count as liveness (and notes that it does).
    bool liveness_due(std::string_view agent_id, time_point now);
    /// The store's record of an agent just heard from, applied here.
    void apply_heard(const store::agent& record, time_point now);
    /// A reconnected agent's tasks it never reported on (still `assigned`, from before the
    /// attach at `attached_at`) pushed again: their first push may have died with the old
    /// connection, and its leases would otherwise be renewed forever with nobody working.
    void repush_unstarted(const std::string& agent_id, agent_sink* sink, time_point attached_at,
                          std::uint32_t held);
    /// The agent counts as alive at `now`, unless it did within k_liveness_interval.
    void hear(std::string_view agent_id, time_point now);
    std::unordered_map<request_id, waiter> waiters_;
    std::set<std::pair<time_point, request_id>> waiter_deadlines_;
    // A poll waiting longer than a third of heartbeat_timeout renews its agent's liveness at
    // each third: an agent blocked in a 60 s poll is not silent (heartbeat_timeout 45 s).
    std::set<std::pair<time_point, request_id>> waiter_renewals_;
    /// Schedules the waiter's next renewal, if it still waits then.
    void schedule_renewal(request_id id, time_point now);
    /// Renewals due at `now` (from tick()).
    void renew_waiting(time_point now);
    request_id next_request_ = 1;
    engine_counters counters_;
    engine_observer* observer_ = nullptr;
    // Counts offers and pending tasks that found no free consumer. A claim that was in flight
    // meanwhile may have missed those tasks (its snapshot was older), so when it comes back
    // empty it claims once more instead of idling until the next poll.
    std::uint64_t missed_offers_ = 0;
    // Claims in flight started at covering_epoch_ (newest last, at most k_max_covering): a
    // task written at that epoch is counted on one of them instead of starting a claim of its
    // own. Without it a batch of submits started a claim on every free consumer and all but
    // the first came back empty. A claim that comes back full may have left counted tasks
    // behind: their queues are offered again.
    static constexpr std::size_t k_max_covering = 32;
    std::vector<agent_state*> covering_;
    std::uint64_t covering_epoch_ = 0;
    // The agent whose store.claim() call is on the stack (a store answering inline).
    agent_state* claim_call_ = nullptr;
    // Tasks (by seq) taken by claims answered at claimed_epoch_ that were in flight: the store
    // answers a transaction's claims before its submissions, so a task submitted and claimed
    // in one transaction is not offered to another consumer, which would find nothing.
    std::unordered_set<std::uint64_t> claimed_seqs_;
    std::uint64_t claimed_epoch_ = 0;
    // Queue -> free consumers here whose last claim found fewer tasks than it asked for
    // (waiting for work that another worker may be holding): engine::hungry_queues().
    std::map<std::string, std::size_t, std::less<>> hungry_queues_;
    std::size_t attached_ = 0;
    store::unique_function<void(time_point)> timer_hook_;
    time_point announced_ = time_point::max();
};

}  // namespace pm_agent::core

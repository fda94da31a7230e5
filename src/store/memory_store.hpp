#pragma once
// The memory store's records and class (private to src/store). The public view of a record is
// its `t`/`a` member; the rest is index bookkeeping. Records live in std::map nodes, so
// pointers to them (and string_views into their ids) stay valid until the record is erased.

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "node_pool.hpp"
#include "pending_index.hpp"
#include "pm_agent/config/config.hpp"
#include "pm_agent/store/store.hpp"

namespace pm_agent::store {

struct agent_rec;

struct task_rec {
    task t;
    queue_state* q = nullptr;
    bucket* b = nullptr;                   // while pending
    pending_map::iterator pending_it;      // while pending
    agent_rec* holder = nullptr;           // while held
    std::optional<time_point> timeout_at;  // while held, when timeout_s > 0
    // As submitted, for comparing an idempotent repeat.
    std::optional<std::chrono::milliseconds> requested_delay;
    std::optional<time_point> requested_run_at;
};

struct agent_rec {
    agent a;
    std::vector<queue_state*> queues;  // parallel to a.queues
    std::vector<task_rec*> held;
    std::vector<std::string> notices;  // ids of tasks taken from it, until its next heartbeat
    time_point heartbeat_deadline{};   // while not offline
};

/// The bytes of an agent's token hash, as a key into memory_store::agents_by_token_.
std::string_view token_key(const agent& a);

using deadline_set = std::set<std::pair<time_point, std::uint64_t>>;

class memory_store final : public store {
  public:
    memory_store(const config::queue_config& queue, const config::agents_config& agents);

    void submit(std::vector<new_task> tasks, time_point now,
                callback<std::span<const submitted>> done) override;
    void claim(std::string_view agent_id, std::size_t max, time_point now,
               callback<claim_outcome> done) override;
    void start(lease_ref lease, time_point now, callback<const task*> done) override;
    void progress(lease_ref lease, task_progress value, time_point now,
                  callback<const task*> done) override;
    void complete(lease_ref lease, boost::json::value result, time_point now,
                  callback<const task*> done) override;
    void fail(lease_ref lease, std::string error, bool retryable, double jitter, time_point now,
              callback<const task*> done) override;
    void cancel(std::string_view task_id, time_point now, callback<cancel_outcome> done) override;
    void retry(std::string_view task_id, time_point now, callback<const task*> done) override;
    void get_task(std::string_view task_id, callback<const task*> done) override;
    void list_tasks(task_filter filter, callback<task_page> done) override;
    void stats(callback<store_stats> done) override;
    void queue_depths(callback<std::vector<queue_depth>> done) override;
    void register_agent(new_agent spec, time_point now, callback<const agent*> done) override;
    void get_agent(std::string_view agent_id, callback<const agent*> done) override;
    void find_agent_by_token(const std::array<unsigned char, 32>& token_hash,
                             callback<const agent*> done) override;
    void list_agents(agent_filter filter, callback<agent_page> done) override;
    void heartbeat(std::string_view agent_id, std::optional<agent_status> status, time_point now,
                   callback<heartbeat_outcome> done) override;
    void renew_liveness(std::string_view agent_id, time_point now,
                        callback<const agent*> done) override;
    void deregister_agent(std::string_view agent_id, time_point now,
                          callback<std::vector<released_task>> done) override;
    void release_agent_tasks(std::string_view agent_id, time_point now,
                             callback<std::vector<released_task>> done) override;
    void reap(time_point now, callback<reap_outcome> done) override;
    std::optional<time_point> next_due() const override;
    /// Every claim is answered before claim() returns, so none is ever in flight to count on.
    std::uint64_t visible_epoch() const override { return 0; }

  private:
    /// What heartbeat and renew_liveness share: the agent heard at `now`. Whether it was
    /// offline.
    bool hear(agent_rec& rec, std::optional<agent_status> status, time_point now);
    task_rec* find_task(std::string_view id);
    task_rec* find_task_by_key(std::string_view key);
    agent_rec* find_agent(std::string_view id);
    task_rec* task_by_seq(std::uint64_t seq);
    agent_rec* agent_by_seq(std::uint64_t seq);

    // Moves a task between states, keeping every count and index in step.
    void enter_status(task_rec& rec, task_status s, time_point now);
    void leave_status(task_rec& rec);
    void set_status(task_rec& rec, task_status s, time_point now);

    // Leases.
    result<task_rec*> held_by(lease_ref lease);
    void assign(task_rec& rec, agent_rec& holder, time_point now);
    void unhold(task_rec& rec);
    void renew_leases(agent_rec& holder, time_point now);
    released_task release(task_rec& rec, release_reason why, time_point now);
    /// Releases every task the agent holds (deregistration, a cut-off connection).
    std::vector<released_task> release_all(agent_rec& rec, release_reason why, time_point now);
    void set_agent_status(agent_rec& rec, agent_status s);

    task_rec& create_task(new_task&& spec, time_point now);
    void erase_task(task_rec& rec);
    void erase_agent(agent_rec& rec);

    config::queue_config queue_cfg_;
    config::agents_config agents_cfg_;

    std::map<std::uint64_t, task_rec> tasks_;  // by seq
    std::unordered_map<std::string_view, task_rec*> tasks_by_id_;
    std::unordered_map<std::string_view, task_rec*> tasks_by_key_;
    using status_index = std::set<std::uint64_t, std::greater<>>;  // newest first
    std::array<status_index, k_task_status_count> by_status_;
    node_pool<status_index> status_pool_;
    status_counts counts_{};
    pending_index pending_;
    deadline_set scheduled_;  // (run_at, task seq)
    deadline_set timeouts_;   // (timeout_at, task seq)
    node_pool<deadline_set> timeout_pool_;
    std::deque<std::pair<time_point, std::uint64_t>> retention_;  // (retain_until, task seq)
    std::uint64_t next_task_seq_ = 1;

    std::map<std::uint64_t, agent_rec> agents_;  // by seq
    std::unordered_map<std::string_view, agent_rec*> agents_by_id_;
    std::unordered_map<std::string_view, agent_rec*> agents_by_token_;  // token_hash bytes
    deadline_set heartbeat_deadlines_;  // (deadline, agent seq), agents not offline
    deadline_set lease_deadlines_;      // (lease end, agent seq), agents holding tasks
    std::array<std::uint64_t, k_agent_status_count> agent_counts_{};
    std::uint64_t next_agent_seq_ = 1;
};

}  // namespace pm_agent::store

#pragma once
// Private to src/store/postgres: the PostgreSQL store's class. Each public operation builds
// its statements and queues them as one `op`; batch.cpp sends every op queued during a loop
// turn as one transaction and hands each op its rows. SQL lives with the operation that uses
// it (tasks.cpp, agents.cpp, reap.cpp, queries.cpp).

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pm_agent/config/config.hpp"
#include "pm_agent/pg/pool.hpp"
#include "pm_agent/store/postgres_store.hpp"
#include "pm_agent/store/store.hpp"
#include "store/postgres/pg_codec.hpp"

namespace pm_agent::store::postgres {

/// Answers a heartbeat from a row of agent columns + old status + notices, at `row`.
void answer_heartbeat(const pg::rows& r, std::size_t row, callback<heartbeat_outcome>& done);

/// The claim statement ($1 agent, $2 most tasks, $3 now us, $4 lease ms), for the plan test.
const char* claim_statement();
/// The joined completion ($1 task ids, $2 agents, $3 results, $4 times us), for the plan test.
const char* complete_many_statement();
/// One of the reaper's statements, for the plan tests (null for an unknown name): "offline"
/// ($1 now us, $2 timeout ms, $3 message), "leases" and "timeouts" ($1 now us, $2 message),
/// "due" ($1 now us), "retention" ($1 now us, $2 retention ms), "count" (none: the queued-task
/// count).
const char* reap_statement(std::string_view name);

/// One store operation waiting for (or in) a transaction.
struct op {
    std::vector<pg::statement> statements;
    /// Success: one rows per statement.
    unique_function<void(std::span<pg::rows>)> on_rows;
    /// Failure. `f` is the statement failure when one of this op's statements failed, nullptr
    /// when the transaction failed as a whole (connection, timeout): then `e` is unavailable.
    unique_function<void(error e, const pg::failure* f)> on_error;
    int retries = 0;
    /// Answered after the transaction's other ops: a submission, so that claims in the same
    /// transaction that took its tasks are answered first (store::visible_epoch).
    bool answer_last = false;
};

class postgres_store final : public store {
  public:
    postgres_store(boost::asio::io_context& ioc, pg::pool& db, const config::queue_config& queue,
                   const config::agents_config& agents, postgres_options options);
    ~postgres_store() override;

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
    void retry(std::string_view task_id, time_point now, callback<const task*> done) override;
    void deregister_agent(std::string_view agent_id, time_point now,
                          callback<std::vector<released_task>> done) override;
    void release_agent_tasks(std::string_view agent_id, time_point now,
                             callback<std::vector<released_task>> done) override;
    void set_attached(std::string_view agent_id, bool attached) override;
    void reap(time_point now, callback<reap_outcome> done) override;
    std::optional<time_point> next_due() const override;
    std::optional<std::string> unavailable_reason() const override;
    std::uint64_t visible_epoch() const override { return visible_epoch_; }
    std::size_t claim_limit() const override { return k_claim_limit; }
    static constexpr std::size_t k_claim_limit = 1000;

  private:
    // batch.cpp
    void enqueue(op o);
    /// Read-only ops skip group commit: their own transaction on any free connection, so a
    /// slow listing never holds up the commits behind it.
    void run_direct(op o);
    void schedule_flush();
    void flush();
    void on_transaction(std::vector<op> ops, std::vector<std::size_t> first, pg::outcome out);
    void requeue_front(std::vector<op>& ops);

    // tasks.cpp
    struct plain_submit {
        std::vector<new_task> tasks;
        time_point now;
        callback<std::span<const submitted>> done;
    };
    void submit_plain(std::vector<plain_submit> group);
    void submit_keyed(std::vector<new_task> tasks, time_point now,
                      callback<std::span<const submitted>> done);
    struct pending_complete {
        std::string task_id;
        std::string agent_id;
        std::string result;  // JSON text
        time_point now;
        callback<const task*> done;
    };
    /// Completions of one loop turn as one UPDATE; a task it did not change (a conflict, or the
    /// same task twice) is sent again on its own, whose answer says why.
    void complete_joined(std::vector<pending_complete> group);
    void complete_one(pending_complete c);
    struct pending_heartbeat {
        std::string agent_id;
        std::optional<agent_status> status;
        time_point now;
        callback<heartbeat_outcome> done;
    };
    /// Heartbeats of one loop turn as one UPDATE (a fleet's liveness must not cost a statement
    /// per agent); an agent it did not find is sent again on its own for the answer.
    void heartbeat_joined(std::vector<pending_heartbeat> group);
    void heartbeat_one(pending_heartbeat h);
    /// Heartbeats that only take notices (heartbeat_write_interval), one statement per turn.
    void heartbeat_light(std::vector<pending_heartbeat> group);
    /// Writes the heartbeats the light path kept back, once per heartbeat_write_interval.
    void renew_heartbeats(time_point now);
    void note_written(const std::string& agent_id, time_point at);
    void lease_op(const char* name, const char* sql, std::vector<param> params,
                  std::optional<time_point> lease_until, callback<const task*> done);
    /// Runs `then(true)` once the queued-task count is known (false: the database is down).
    void with_queue_count(unique_function<void(bool)> then);

    // agents.cpp
    void release_one(std::string_view agent_id, time_point now, release_reason why,
                     bool delete_agent, callback<std::vector<released_task>> done);

    boost::asio::io_context& ioc_;
    pg::pool& db_;
    config::queue_config queue_cfg_;
    config::agents_config agents_cfg_;
    postgres_options options_;

    std::deque<op> queued_;
    std::vector<plain_submit> plain_submits_;          // joined into one INSERT at flush time
    std::vector<pending_complete> completes_;          // joined into one UPDATE at flush time
    std::vector<pending_heartbeat> heartbeats_;        // likewise
    std::vector<pending_heartbeat> light_heartbeats_;  // likewise
    // Coalesced heartbeats: when this worker last wrote each agent's heartbeat, and the latest
    // heartbeat of each not written yet (see postgres_options::heartbeat_write_interval).
    std::unordered_map<std::string, time_point> written_heartbeats_;
    std::unordered_map<std::string, time_point> unwritten_heartbeats_;
    std::optional<time_point> last_renewal_;
    bool renewing_ = false;
    // Agents whose WebSocket this worker holds: they live on pm_workers' row of worker_name_.
    std::unordered_set<std::string> attached_;
    std::string worker_name_;
    /// The latest `now` any operation was given: the store's own clock, for set_attached.
    time_point latest_now_{};
    bool flush_scheduled_ = false;
    std::size_t in_flight_ = 0;
    // Transactions answered so far, advanced before their callbacks run: a claim enqueued
    // from then on goes out after that commit (store::visible_epoch).
    std::uint64_t visible_epoch_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

    // The bound on pending + scheduled tasks: the database's count as last read, plus what this
    // worker changed since (other workers' changes show at the next refresh).
    std::optional<std::int64_t> queued_tasks_;
    bool counting_ = false;
    std::vector<unique_function<void(bool)>> waiting_for_count_;
    int reaps_since_count_ = 0;

    // Queue names this worker knows are in pm_queues (cleared when queues are pruned).
    std::set<std::string, std::less<>> known_queues_;
    bool prune_queues_ = false;
    std::optional<time_point> last_prune_;

    std::optional<time_point> last_reap_;
    bool reaping_ = false;
};

}  // namespace pm_agent::store::postgres

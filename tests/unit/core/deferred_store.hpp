#pragma once
// A store decorator that behaves like an asynchronous back end: every operation is queued and
// only runs (on the wrapped memory store) when the test calls run(), so callbacks arrive after
// the engine call returned, interleaved with whatever else the test does. It can also fail
// claims, as a database that became unreachable would.

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "pm_agent/store/store.hpp"
#include "pm_agent/store/unique_function.hpp"

namespace pm_agent::core::testing {

// Inside a class derived from store::store, `store` names the class: spell the namespace out.
namespace ps = ::pm_agent::store;

class deferred_store final : public ps::store {
  public:
    explicit deferred_store(ps::store& inner) : inner_(inner) {}

    /// Runs queued operations (and those they queue) until none is left; returns how many ran.
    std::size_t run();
    /// Runs the oldest queued operation only; false when none was queued.
    bool run_one();
    /// Runs the next n queued operations the way one transaction of an asynchronous store does:
    /// under one visible_epoch, the submissions answered after everything else.
    void run_as_one_transaction(std::size_t n);
    /// Operations waiting to run.
    std::size_t queued() const { return queue_.size(); }

    bool fail_claims = false;
    /// Most tasks a claim takes (claim_limit()), as PostgreSQL's store caps them.
    std::size_t claim_cap = SIZE_MAX;
    /// claim() calls so far.
    std::size_t claims = 0;
    /// set_attached calls, in order: "+id" attached, "-id" detached.
    std::vector<std::string> attachments;

    void submit(std::vector<ps::new_task> tasks, ps::time_point now,
                ps::callback<std::span<const ps::submitted>> done) override;
    void claim(std::string_view agent_id, std::size_t max, ps::time_point now,
               ps::callback<ps::claim_outcome> done) override;
    void start(ps::lease_ref lease, ps::time_point now,
               ps::callback<const ps::task*> done) override;
    void progress(ps::lease_ref lease, ps::task_progress value, ps::time_point now,
                  ps::callback<const ps::task*> done) override;
    void complete(ps::lease_ref lease, boost::json::value result, ps::time_point now,
                  ps::callback<const ps::task*> done) override;
    void fail(ps::lease_ref lease, std::string error, bool retryable, double jitter,
              ps::time_point now, ps::callback<const ps::task*> done) override;
    void cancel(std::string_view task_id, ps::time_point now,
                ps::callback<ps::cancel_outcome> done) override;
    void retry(std::string_view task_id, ps::time_point now,
               ps::callback<const ps::task*> done) override;
    void get_task(std::string_view task_id, ps::callback<const ps::task*> done) override;
    void list_tasks(ps::task_filter filter, ps::callback<ps::task_page> done) override;
    void stats(ps::callback<ps::store_stats> done) override;
    void queue_depths(ps::callback<std::vector<ps::queue_depth>> done) override;
    void register_agent(ps::new_agent spec, ps::time_point now,
                        ps::callback<const ps::agent*> done) override;
    void get_agent(std::string_view agent_id, ps::callback<const ps::agent*> done) override;
    void find_agent_by_token(const std::array<unsigned char, 32>& token_hash,
                             ps::callback<const ps::agent*> done) override;
    void list_agents(ps::agent_filter filter, ps::callback<ps::agent_page> done) override;
    void heartbeat(std::string_view agent_id, std::optional<ps::agent_status> status,
                   ps::time_point now, ps::callback<ps::heartbeat_outcome> done) override;
    void renew_liveness(std::string_view agent_id, ps::time_point now,
                        ps::callback<const ps::agent*> done) override;
    void deregister_agent(std::string_view agent_id, ps::time_point now,
                          ps::callback<std::vector<ps::released_task>> done) override;
    void release_agent_tasks(std::string_view agent_id, ps::time_point now,
                             ps::callback<std::vector<ps::released_task>> done) override;
    void set_attached(std::string_view agent_id, bool attached) override {
        attachments.push_back((attached ? "+" : "-") + std::string(agent_id));
        inner_.set_attached(agent_id, attached);
    }
    void reap(ps::time_point now, ps::callback<ps::reap_outcome> done) override;
    std::optional<ps::time_point> next_due() const override { return inner_.next_due(); }
    /// Operations run so far: a claim queued from then on runs after all of them.
    std::uint64_t visible_epoch() const override { return ran_; }
    std::size_t claim_limit() const override { return std::min(claim_cap, inner_.claim_limit()); }

  private:
    ps::store& inner_;
    std::deque<ps::unique_function<void()>> queue_;
    std::uint64_t ran_ = 0;
    bool in_transaction_ = false;
    std::vector<ps::unique_function<void()>> held_;
};

}  // namespace pm_agent::core::testing

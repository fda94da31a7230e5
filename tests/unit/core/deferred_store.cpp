#include "deferred_store.hpp"

namespace pm_agent::core::testing {

using namespace pm_agent::store;

std::size_t deferred_store::run() {
    std::size_t n = 0;
    while (run_one()) {
        ++n;
    }
    return n;
}

bool deferred_store::run_one() {
    if (queue_.empty()) {
        return false;
    }
    auto op = std::move(queue_.front());
    queue_.pop_front();
    ++ran_;
    op();
    return true;
}

void deferred_store::submit(std::vector<new_task> tasks, time_point now,
                            callback<std::span<const submitted>> done) {
    queue_.emplace_back([this, tasks = std::move(tasks), now, done = std::move(done)]() mutable {
        if (!in_transaction_) {
            return inner_.submit(std::move(tasks), now, std::move(done));
        }
        // Written now, answered when the transaction ends (the records stay in the store).
        inner_.submit(std::move(tasks), now,
                      [this, done = std::move(done)](result<std::span<const submitted>> r) mutable {
                          if (!r) {
                              held_.emplace_back([done = std::move(done), e = r.err()]() mutable {
                                  done(std::move(e));
                              });
                              return;
                          }
                          // As written: a claim later in the transaction changes the
                          // memory store's record, not what the write answers.
                          std::vector<task> records;
                          std::vector<bool> created;
                          for (const submitted& s : *r) {
                              records.push_back(*s.record);
                              created.push_back(s.created);
                          }
                          held_.emplace_back([done = std::move(done), records, created]() mutable {
                              std::vector<submitted> out;
                              for (std::size_t i = 0; i < records.size(); ++i) {
                                  out.push_back(submitted{&records[i], created[i]});
                              }
                              done(std::span<const submitted>(out));
                          });
                      });
    });
}

void deferred_store::run_as_one_transaction(std::size_t n) {
    ++ran_;
    in_transaction_ = true;
    for (std::size_t i = 0; i < n && !queue_.empty(); ++i) {
        auto op = std::move(queue_.front());
        queue_.pop_front();
        op();
    }
    in_transaction_ = false;
    auto held = std::move(held_);
    held_.clear();
    for (auto& answer : held) {
        answer();
    }
}

void deferred_store::claim(std::string_view agent_id, std::size_t max, time_point now,
                           callback<claim_outcome> done) {
    ++claims;
    queue_.emplace_back(
        [this, id = std::string(agent_id), max, now, done = std::move(done)]() mutable {
            if (fail_claims) {
                return done(error{errc::unavailable, "store unreachable"});
            }
            inner_.claim(id, std::min(max, claim_cap), now, std::move(done));
        });
}

void deferred_store::start(lease_ref lease, time_point now, callback<const task*> done) {
    queue_.emplace_back([this, t = std::string(lease.task_id), a = std::string(lease.agent_id), now,
                         done = std::move(done)]() mutable {
        inner_.start({t, a}, now, std::move(done));
    });
}

void deferred_store::progress(lease_ref lease, task_progress value, time_point now,
                              callback<const task*> done) {
    queue_.emplace_back([this, t = std::string(lease.task_id), a = std::string(lease.agent_id),
                         value = std::move(value), now, done = std::move(done)]() mutable {
        inner_.progress({t, a}, std::move(value), now, std::move(done));
    });
}

void deferred_store::complete(lease_ref lease, boost::json::value result, time_point now,
                              callback<const task*> done) {
    queue_.emplace_back([this, t = std::string(lease.task_id), a = std::string(lease.agent_id),
                         result = std::move(result), now, done = std::move(done)]() mutable {
        inner_.complete({t, a}, std::move(result), now, std::move(done));
    });
}

void deferred_store::fail(lease_ref lease, std::string err, bool retryable, double jitter,
                          time_point now, callback<const task*> done) {
    queue_.emplace_back([this, t = std::string(lease.task_id), a = std::string(lease.agent_id),
                         err = std::move(err), retryable, jitter, now,
                         done = std::move(done)]() mutable {
        inner_.fail({t, a}, std::move(err), retryable, jitter, now, std::move(done));
    });
}

void deferred_store::cancel(std::string_view task_id, time_point now,
                            callback<cancel_outcome> done) {
    queue_.emplace_back([this, id = std::string(task_id), now, done = std::move(done)]() mutable {
        inner_.cancel(id, now, std::move(done));
    });
}

void deferred_store::get_task(std::string_view task_id, callback<const task*> done) {
    queue_.emplace_back([this, id = std::string(task_id), done = std::move(done)]() mutable {
        inner_.get_task(id, std::move(done));
    });
}

void deferred_store::list_tasks(task_filter filter, callback<task_page> done) {
    queue_.emplace_back([this, filter = std::move(filter), done = std::move(done)]() mutable {
        inner_.list_tasks(std::move(filter), std::move(done));
    });
}

void deferred_store::stats(callback<store_stats> done) {
    queue_.emplace_back(
        [this, done = std::move(done)]() mutable { inner_.stats(std::move(done)); });
}

void deferred_store::queue_depths(callback<std::vector<queue_depth>> done) {
    queue_.emplace_back(
        [this, done = std::move(done)]() mutable { inner_.queue_depths(std::move(done)); });
}

void deferred_store::register_agent(new_agent spec, time_point now, callback<const agent*> done) {
    queue_.emplace_back([this, spec = std::move(spec), now, done = std::move(done)]() mutable {
        inner_.register_agent(std::move(spec), now, std::move(done));
    });
}

void deferred_store::get_agent(std::string_view agent_id, callback<const agent*> done) {
    queue_.emplace_back([this, id = std::string(agent_id), done = std::move(done)]() mutable {
        inner_.get_agent(id, std::move(done));
    });
}

void deferred_store::find_agent_by_token(const std::array<unsigned char, 32>& token_hash,
                                         callback<const agent*> done) {
    queue_.emplace_back([this, token_hash, done = std::move(done)]() mutable {
        inner_.find_agent_by_token(token_hash, std::move(done));
    });
}

void deferred_store::list_agents(agent_filter filter, callback<agent_page> done) {
    queue_.emplace_back([this, filter = std::move(filter), done = std::move(done)]() mutable {
        inner_.list_agents(std::move(filter), std::move(done));
    });
}

void deferred_store::heartbeat(std::string_view agent_id, std::optional<agent_status> status,
                               time_point now, callback<heartbeat_outcome> done) {
    queue_.emplace_back(
        [this, id = std::string(agent_id), status, now, done = std::move(done)]() mutable {
            inner_.heartbeat(id, status, now, std::move(done));
        });
}

void deferred_store::retry(std::string_view task_id, time_point now,
                           callback<const task*> done) {
    queue_.emplace_back([this, id = std::string(task_id), now, done = std::move(done)]() mutable {
        inner_.retry(id, now, std::move(done));
    });
}

void deferred_store::renew_liveness(std::string_view agent_id, time_point now,
                                    callback<const agent*> done) {
    queue_.emplace_back([this, id = std::string(agent_id), now, done = std::move(done)]() mutable {
        inner_.renew_liveness(id, now, std::move(done));
    });
}

void deferred_store::deregister_agent(std::string_view agent_id, time_point now,
                                      callback<std::vector<released_task>> done) {
    queue_.emplace_back([this, id = std::string(agent_id), now, done = std::move(done)]() mutable {
        inner_.deregister_agent(id, now, std::move(done));
    });
}

void deferred_store::release_agent_tasks(std::string_view agent_id, time_point now,
                                         callback<std::vector<released_task>> done) {
    queue_.emplace_back([this, id = std::string(agent_id), now, done = std::move(done)]() mutable {
        inner_.release_agent_tasks(id, now, std::move(done));
    });
}

void deferred_store::reap(time_point now, callback<reap_outcome> done) {
    queue_.emplace_back(
        [this, now, done = std::move(done)]() mutable { inner_.reap(now, std::move(done)); });
}

}  // namespace pm_agent::core::testing

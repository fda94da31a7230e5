// The holding agent's operations on a task. Fencing (is this agent the holder of the current
// lease?) is the store's; the engine frees the slot and pushes more work.
#include <cmath>

#include "engine_state.hpp"

namespace pm_agent::core {

void engine::start(store::lease_ref lease, time_point now, callback<const store::task*> done) {
    impl_->store_.start(lease, now, std::move(done));
}

void engine::progress(store::lease_ref lease, double value, std::string message, time_point now,
                      callback<const store::task*> done) {
    if (!std::isfinite(value) || value < 0 || value > 1) {
        return done(
            store::error{store::errc::bad_request, "progress: must be a number between 0 and 1"});
    }
    // Renewing leases only moves deadlines later, so the timer needs no refresh.
    impl_->store_.progress(lease, store::task_progress{value, std::move(message)}, now,
                           std::move(done));
}

void engine::complete(store::lease_ref lease, boost::json::value result, time_point now,
                      callback<const store::task*> done) {
    impl& s = *impl_;
    s.store_.complete(
        lease, std::move(result), now,
        [&s, now, done = std::move(done)](store::result<const store::task*> r) mutable {
            if (!r) {
                return done(std::move(r).err());
            }
            ++s.counters_.succeeded;
            if (agent_state* a = s.find_agent(*(*r)->agent_id)) {
                s.release_slot(*a, {});
                s.refill(*a, now);
            }
            s.refresh_deadline();
            done(*r);
        });
}

void engine::fail(store::lease_ref lease, std::string error, bool retryable, time_point now,
                  callback<const store::task*> done) {
    impl& s = *impl_;
    const std::string holder(lease.agent_id);
    s.store_.fail(
        lease, std::move(error), retryable, s.rng_.next_unit(), now,
        [&s, now, holder, done = std::move(done)](store::result<const store::task*> r) mutable {
            if (!r) {
                return done(std::move(r).err());
            }
            if ((*r)->status == store::task_status::scheduled) {
                ++s.counters_.retried;
            } else {
                ++s.counters_.dead;
            }
            if (agent_state* a = s.find_agent(holder)) {
                s.release_slot(*a, {});
                s.refill(*a, now);
            }
            s.refresh_deadline();
            done(*r);
        });
}

}  // namespace pm_agent::core

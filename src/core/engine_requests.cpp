// REST long polls: POST /api/v1/tasks/request. A request is a waiter queued on its agent; the
// agent is a consumer in the dispatcher while it has waiters (or credit) and room.
#include <algorithm>

#include "engine_state.hpp"

namespace pm_agent::core {

namespace {

constexpr std::size_t k_max_request_tasks = 1000;
constexpr std::chrono::seconds k_max_wait{60};

}  // namespace

void engine::impl::link_waiter(agent_state& a, request_id id) {
    waiter& w = waiters_.at(id);
    w.linked = true;
    a.waiters.push_back(id);
    a.waiting_demand += w.max_tasks;
}

task_list_callback engine::impl::remove_waiter(request_id id) {
    auto it = waiters_.find(id);
    waiter& w = it->second;
    if (w.linked) {
        if (agent_state* a = find_agent(w.agent_id)) {
            a->waiters.erase(std::find(a->waiters.begin(), a->waiters.end(), id));
            a->waiting_demand -= w.max_tasks;
        }
    }
    waiter_deadlines_.erase({w.deadline, id});
    if (w.renew_at) {
        waiter_renewals_.erase({*w.renew_at, id});
    }
    task_list_callback done = std::move(w.done);
    waiters_.erase(it);
    return done;
}

std::vector<task_list_callback> engine::impl::take_expired_waiters(agent_state& a, time_point now) {
    std::vector<task_list_callback> out;
    for (std::size_t i = 0; i < a.waiters.size();) {
        if (waiters_.at(a.waiters[i]).deadline <= now) {
            out.push_back(remove_waiter(a.waiters[i]));
        } else {
            ++i;
        }
    }
    return out;
}

void engine::impl::end_waiters(agent_state& a, std::vector<task_list_callback>& out) {
    while (!a.waiters.empty()) {
        out.push_back(remove_waiter(a.waiters.front()));
    }
}

void engine::impl::start_request(agent_state& a, request_id id, time_point now) {
    link_waiter(a, id);
    const std::string agent_id = a.id;
    serve(a, now);
    // wait_s = 0 (or a deadline already past): answer now if the claim found nothing. With an
    // asynchronous store the claim may still be in flight; its completion answers instead.
    agent_state* again = find_agent(agent_id);
    auto it = waiters_.find(id);
    if (again != nullptr && !again->claiming && it != waiters_.end() &&
        it->second.deadline <= now) {
        task_list_callback done = remove_waiter(id);
        update_activity(*again);
        maybe_forget(*again);
        done(std::span<const store::task* const>());
    }
    refresh_deadline();
}

request_id engine::request_tasks(std::string_view agent_id, std::size_t max_tasks,
                                 std::chrono::milliseconds wait, time_point now,
                                 callback<std::span<const store::task* const>> done) {
    impl& s = *impl_;
    if (max_tasks < 1 || max_tasks > k_max_request_tasks) {
        done(store::error{store::errc::bad_request, "max_tasks: must be between 1 and 1000"});
        return 0;
    }
    if (wait < std::chrono::milliseconds::zero() || wait > k_max_wait) {
        done(store::error{store::errc::bad_request, "wait_s: must be between 0 and 60"});
        return 0;
    }
    const request_id id = s.next_request_++;
    waiter& w = s.waiters_[id];
    w.agent_id.assign(agent_id);
    w.max_tasks = static_cast<std::uint32_t>(max_tasks);
    w.deadline = now + wait;
    w.done = std::move(done);
    s.waiter_deadlines_.emplace(w.deadline, id);
    s.schedule_renewal(id, now);
    // Read from the store even for an agent known here: on a store shared by workers its
    // tasks may have ended on another one (a REST agent behind nginx completes wherever its
    // request lands), and a stale running count here would leave the poll without room. The
    // request counts as liveness on the way (an agent that polls is not silent; one taken
    // offline comes back).
    s.liveness_due(agent_id, now);  // noted: its reports right after need not renew again
    s.store_.renew_liveness(agent_id, now, [&s, id, now](store::result<const store::agent*> r) {
        if (!s.waiters_.contains(id)) {
            return;  // abandoned meanwhile
        }
        if (!r) {
            task_list_callback cb = s.remove_waiter(id);
            cb(std::move(r).err());
            return;
        }
        if (s.observer_ != nullptr) {
            s.observer_->on_heartbeat(**r, now);
        }
        s.start_request(s.ensure_agent(**r), id, now);
    });
    return id;
}

void engine::impl::schedule_renewal(request_id id, time_point now) {
    waiter& w = waiters_.at(id);
    // In milliseconds: a third of a few seconds is not 0 (which would renew in a loop).
    const auto period = std::max<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(opts_.agents.heartbeat_timeout) / 3,
        k_liveness_interval);
    const time_point at = now + period;
    if (at >= w.deadline) {
        w.renew_at.reset();
        return;
    }
    w.renew_at = at;
    waiter_renewals_.emplace(at, id);
}

void engine::impl::renew_waiting(time_point now) {
    while (!waiter_renewals_.empty() && waiter_renewals_.begin()->first <= now) {
        const request_id id = waiter_renewals_.begin()->second;
        waiter_renewals_.erase(waiter_renewals_.begin());
        hear(waiters_.at(id).agent_id, now);
        // Back online, the agent may have been served at once: the poll is then answered.
        if (waiters_.contains(id)) {
            schedule_renewal(id, now);
        }
    }
}

void engine::abandon_request(request_id id) {
    impl& s = *impl_;
    auto it = s.waiters_.find(id);
    if (it == s.waiters_.end()) {
        return;
    }
    const std::string agent_id = it->second.agent_id;
    task_list_callback dropped = s.remove_waiter(id);
    if (agent_state* a = s.find_agent(agent_id)) {
        s.update_activity(*a);
        s.maybe_forget(*a);
    }
}

std::size_t engine::waiting_requests() const {
    return impl_->waiters_.size();
}

}  // namespace pm_agent::core

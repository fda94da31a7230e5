// Construction, timers and observability of the engine.
#include "pm_agent/core/engine.hpp"

#include "engine_state.hpp"

namespace pm_agent::core {

engine::impl::impl(store::store& st, engine_options opts, random_source& random)
    : store_(st), opts_(std::move(opts)), rng_(random), ids_(random) {
    defaults_.max_attempts = opts_.queue.max_attempts;
    defaults_.timeout_s = opts_.default_timeout_s;
}

engine::engine(store::store& st, engine_options options, random_source& rng)
    : impl_(std::make_unique<impl>(st, std::move(options), rng)) {}

engine::~engine() = default;

time_point engine::impl::next_deadline() const {
    time_point next = store_.next_due().value_or(time_point::max());
    if (!waiter_renewals_.empty()) {
        next = std::min(next, waiter_renewals_.begin()->first);
    }
    // A long poll whose claim is in flight is answered by that claim, not by its deadline:
    // counting it would make every tick due at once until the claim returns (a busy loop).
    for (const auto& [deadline, id] : waiter_deadlines_) {
        if (deadline >= next) {
            break;
        }
        const waiter& w = waiters_.at(id);
        const auto agent = w.linked ? agents_.find(w.agent_id) : agents_.end();
        if (agent == agents_.end() || !agent->second->claiming) {
            next = deadline;
            break;
        }
    }
    return next;
}

void engine::impl::refresh_deadline() {
    const time_point next = next_deadline();
    if (next < announced_) {
        announced_ = next;
        if (timer_hook_) {
            timer_hook_(next);
        }
    }
}

void engine::impl::count_release(const store::released_task& r) {
    switch (r.reason) {
        case store::release_reason::lease_expired:
        case store::release_reason::agent_offline:
        case store::release_reason::disconnected:
            ++counters_.lease_expired;
            break;
        case store::release_reason::timed_out:
            ++counters_.timed_out;
            break;
        case store::release_reason::deregistered:
            break;
    }
    if (r.status == store::task_status::dead) {
        ++counters_.dead;
    } else {
        ++counters_.requeued;
    }
}

void engine::impl::absorb_released(time_point now,
                                   const std::vector<store::released_task>& released) {
    // First bring every mirror up to date, then dispatch: a released task should go to
    // whoever is available, not necessarily back to the agent that lost it.
    for (const store::released_task& rel : released) {
        count_release(rel);
        if (rel.reason != store::release_reason::deregistered) {
            notice_elsewhere(rel.agent_id);
        }
        if (agent_state* a = find_agent(rel.agent_id)) {
            release_slot(*a, rel.task_id);
        }
    }
    for (const store::released_task& rel : released) {
        if (rel.status == store::task_status::pending) {
            dispatch_pending(rel.queue, rel.required_capabilities, now);
        }
    }
    for (const store::released_task& rel : released) {
        if (agent_state* a = find_agent(rel.agent_id)) {
            refill(*a, now);
        }
    }
}

void engine::impl::on_reaped(time_point now, store::result<store::reap_outcome> r) {
    if (!r) {
        return;  // the next tick tries again
    }
    counters_.deleted += r->deleted_tasks;
    for (const std::string& id : r->offline_agents) {
        if (agent_state* a = find_agent(id)) {
            a->status = store::agent_status::offline;
            update_activity(*a);
        }
    }
    absorb_released(now, r->released);
    for (const store::due_task& due : r->due) {
        dispatch_pending(due.queue, due.required_capabilities, now);
    }
    for (const std::string& queue : r->pending_queues) {
        offer_queue(queue, now);
    }
    for (const std::string& id : r->offline_agents) {
        if (agent_state* a = find_agent(id)) {
            maybe_forget(*a);
        }
    }
}

time_point engine::tick(time_point now) {
    impl& s = *impl_;
    s.renew_waiting(now);  // before the reap: a waiting agent is not silent
    s.store_.reap(
        now, [&s, now](store::result<store::reap_outcome> r) { s.on_reaped(now, std::move(r)); });
    // Long polls past their deadline end empty (unless a claim for them is in flight: its
    // completion answers them).
    std::vector<request_id> due;
    for (auto it = s.waiter_deadlines_.begin(); it != s.waiter_deadlines_.end() && it->first <= now;
         ++it) {
        due.push_back(it->second);
    }
    std::vector<task_list_callback> expired;
    std::vector<std::string> touched;
    for (request_id id : due) {
        const waiter& w = s.waiters_.at(id);
        agent_state* a = w.linked ? s.find_agent(w.agent_id) : nullptr;
        if (a != nullptr && a->claiming) {
            continue;
        }
        if (a != nullptr) {
            touched.push_back(a->id);
        }
        expired.push_back(s.remove_waiter(id));
    }
    for (const std::string& id : touched) {
        if (agent_state* a = s.find_agent(id)) {
            s.update_activity(*a);
            s.maybe_forget(*a);
        }
    }
    for (task_list_callback& cb : expired) {
        cb(std::span<const store::task* const>());
    }
    s.announced_ = s.next_deadline();
    return s.announced_;
}

void engine::set_timer_hook(store::unique_function<void(time_point)> hook) {
    impl_->timer_hook_ = std::move(hook);
}

void engine::set_observer(engine_observer* observer) {
    impl_->observer_ = observer;
}

const engine_counters& engine::counters() const {
    return impl_->counters_;
}

std::size_t engine::attached_agents() const {
    return impl_->attached_;
}

std::size_t engine::tracked_agents() const {
    return impl_->agents_.size();
}

bool engine::is_attached(std::string_view agent_id) const {
    auto it = impl_->agents_.find(agent_id);
    return it != impl_->agents_.end() && it->second->sink != nullptr;
}

void engine::offer(std::string_view queue, time_point now) {
    impl_->offer_queue(queue, now);
    impl_->refresh_deadline();
}

std::vector<std::string> engine::hungry_queues() const {
    std::vector<std::string> out;
    out.reserve(impl_->hungry_queues_.size());
    for (const auto& entry : impl_->hungry_queues_) {
        out.push_back(entry.first);
    }
    return out;
}

void engine::deliver_notices(std::string_view agent_id, time_point now) {
    if (is_attached(agent_id)) {
        // The heartbeat takes the notices and pushes those not pushed yet; a failure (the
        // store is down) leaves them for the agent's next heartbeat.
        heartbeat(agent_id, std::nullopt, now, [](store::result<std::vector<std::string>>) {});
    }
}

}  // namespace pm_agent::core

#include "memory_store.hpp"

#include <algorithm>

namespace pm_agent::store {

namespace {

std::string release_message(release_reason why, bool dead) {
    std::string text(release_text(why));
    if (dead) {
        text += "; no attempts left";
    }
    return text;
}

}  // namespace

std::unique_ptr<store> make_memory_store(const config::queue_config& queue,
                                         const config::agents_config& agents) {
    return std::make_unique<memory_store>(queue, agents);
}

memory_store::memory_store(const config::queue_config& queue, const config::agents_config& agents)
    : queue_cfg_(queue), agents_cfg_(agents) {}

task_rec* memory_store::find_task(std::string_view id) {
    auto it = tasks_by_id_.find(id);
    return it == tasks_by_id_.end() ? nullptr : it->second;
}

agent_rec* memory_store::find_agent(std::string_view id) {
    auto it = agents_by_id_.find(id);
    return it == agents_by_id_.end() ? nullptr : it->second;
}

task_rec* memory_store::task_by_seq(std::uint64_t seq) {
    auto it = tasks_.find(seq);
    return it == tasks_.end() ? nullptr : &it->second;
}

agent_rec* memory_store::agent_by_seq(std::uint64_t seq) {
    auto it = agents_.find(seq);
    return it == agents_.end() ? nullptr : &it->second;
}

void memory_store::enter_status(task_rec& rec, task_status s, time_point now) {
    const auto i = static_cast<std::size_t>(s);
    rec.t.status = s;
    rec.t.updated_at = now;
    ++counts_[i];
    ++rec.q->counts[i];
    status_pool_.insert(by_status_[i], rec.t.seq);
    if (s == task_status::pending) {
        rec.t.ready_at = now;
        pending_.insert(rec);
    } else if (s == task_status::scheduled) {
        scheduled_.emplace(*rec.t.run_at, rec.t.seq);
    } else if (is_finished(s)) {
        retention_.emplace_back(now + queue_cfg_.retention, rec.t.seq);
    }
}

void memory_store::leave_status(task_rec& rec) {
    const auto i = static_cast<std::size_t>(rec.t.status);
    --counts_[i];
    --rec.q->counts[i];
    status_pool_.erase(by_status_[i], by_status_[i].find(rec.t.seq));
    if (rec.t.status == task_status::pending) {
        pending_.erase(rec);
    } else if (rec.t.status == task_status::scheduled) {
        scheduled_.erase({*rec.t.run_at, rec.t.seq});
    }
}

void memory_store::set_status(task_rec& rec, task_status s, time_point now) {
    leave_status(rec);
    enter_status(rec, s, now);
}

result<task_rec*> memory_store::held_by(lease_ref lease) {
    task_rec* rec = find_task(lease.task_id);
    if (rec == nullptr) {
        return error{errc::not_found, "no such task"};
    }
    if (!is_held(rec->t.status)) {
        std::string msg = "task is ";
        msg += to_string(rec->t.status);
        msg += ", not held by this agent";
        return error{errc::conflict, std::move(msg)};
    }
    if (rec->holder == nullptr || rec->holder->a.id != lease.agent_id) {
        return error{errc::conflict, "task is held by another agent (or its lease ended)"};
    }
    return rec;
}

void memory_store::assign(task_rec& rec, agent_rec& holder, time_point now) {
    set_status(rec, task_status::assigned, now);
    ++rec.t.attempts;
    ++rec.t.attempt;
    rec.t.agent_id = holder.a.id;
    rec.t.progress.reset();
    rec.holder = &holder;
    holder.held.push_back(&rec);
    holder.a.running = static_cast<std::uint32_t>(holder.held.size());
    if (rec.t.timeout_s > 0) {
        rec.timeout_at = now + std::chrono::seconds(rec.t.timeout_s);
        timeout_pool_.insert(timeouts_, std::pair{*rec.timeout_at, rec.t.seq});
    }
    renew_leases(holder, now);
}

void memory_store::renew_leases(agent_rec& holder, time_point now) {
    if (holder.held.empty()) {
        return;
    }
    const time_point until = now + agents_cfg_.lease_timeout;
    if (holder.a.lease_expires_at) {
        auto it = lease_deadlines_.find({*holder.a.lease_expires_at, holder.a.seq});
        auto node = lease_deadlines_.extract(it);
        node.value().first = until;
        lease_deadlines_.insert(std::move(node));
    } else {
        lease_deadlines_.emplace(until, holder.a.seq);
    }
    holder.a.lease_expires_at = until;
    // One write per held task (at most max_concurrency), not one deadline per task.
    for (task_rec* rec : holder.held) {
        rec->t.lease_expires_at = until;
    }
}

void memory_store::unhold(task_rec& rec) {
    agent_rec* holder = rec.holder;
    if (holder == nullptr) {
        return;
    }
    auto it = std::find(holder->held.begin(), holder->held.end(), &rec);
    *it = holder->held.back();
    holder->held.pop_back();
    holder->a.running = static_cast<std::uint32_t>(holder->held.size());
    if (holder->held.empty() && holder->a.lease_expires_at) {
        lease_deadlines_.erase({*holder->a.lease_expires_at, holder->a.seq});
        holder->a.lease_expires_at.reset();
    }
    if (rec.timeout_at) {
        timeout_pool_.erase(timeouts_, timeouts_.find({*rec.timeout_at, rec.t.seq}));
        rec.timeout_at.reset();
    }
    rec.holder = nullptr;
    rec.t.lease_expires_at.reset();
}

released_task memory_store::release(task_rec& rec, release_reason why, time_point now) {
    agent_rec* holder = rec.holder;
    released_task out;
    out.task_id = rec.t.id;
    out.agent_id = holder != nullptr ? holder->a.id : std::string();
    out.queue = rec.q->name;
    out.required_capabilities = rec.t.required_capabilities;
    out.reason = why;
    unhold(rec);
    if (holder != nullptr && why != release_reason::deregistered) {
        holder->notices.push_back(rec.t.id);
    }
    const bool dead = rec.t.attempts >= rec.t.max_attempts;
    rec.t.error = release_message(why, dead);
    if (dead) {
        set_status(rec, task_status::dead, now);
        out.status = task_status::dead;
    } else {
        rec.t.agent_id.reset();
        set_status(rec, task_status::pending, now);
        out.status = task_status::pending;
    }
    return out;
}

void memory_store::set_agent_status(agent_rec& rec, agent_status s) {
    --agent_counts_[static_cast<std::size_t>(rec.a.status)];
    ++agent_counts_[static_cast<std::size_t>(s)];
    rec.a.status = s;
}

task_rec& memory_store::create_task(new_task&& spec, time_point now) {
    const std::uint64_t seq = next_task_seq_++;
    task_rec& rec = tasks_.emplace_hint(tasks_.end(), seq, task_rec{})->second;
    rec.requested_delay = spec.delay;
    rec.requested_run_at = spec.run_at;
    rec.q = &pending_.queue(spec.queue);
    rec.t = record_of_submission(std::move(spec), now, seq);
    task& t = rec.t;
    t.queue = rec.q->name;
    tasks_by_id_.emplace(std::string_view(t.id), &rec);
    if (t.idempotency_key) {
        tasks_by_key_.emplace(std::string_view(*t.idempotency_key), &rec);
    }
    const bool later = t.run_at && *t.run_at > now;
    enter_status(rec, later ? task_status::scheduled : task_status::pending, now);
    return rec;
}

void memory_store::erase_task(task_rec& rec) {
    unhold(rec);
    leave_status(rec);
    tasks_by_id_.erase(std::string_view(rec.t.id));
    if (rec.t.idempotency_key) {
        tasks_by_key_.erase(std::string_view(*rec.t.idempotency_key));
    }
    queue_state& q = *rec.q;
    const std::uint64_t seq = rec.t.seq;
    tasks_.erase(seq);
    pending_.release_queue_if_unused(q);
}

void memory_store::erase_agent(agent_rec& rec) {
    if (rec.a.status != agent_status::offline) {
        heartbeat_deadlines_.erase({rec.heartbeat_deadline, rec.a.seq});
    }
    --agent_counts_[static_cast<std::size_t>(rec.a.status)];
    agents_by_id_.erase(std::string_view(rec.a.id));
    if (auto it = agents_by_token_.find(token_key(rec.a));
        it != agents_by_token_.end() && it->second == &rec) {
        agents_by_token_.erase(it);
    }
    std::vector<queue_state*> queues = std::move(rec.queues);
    const std::uint64_t seq = rec.a.seq;
    agents_.erase(seq);
    for (queue_state* q : queues) {
        --q->agent_refs;
        pending_.release_queue_if_unused(*q);
    }
}

std::optional<time_point> memory_store::next_due() const {
    std::optional<time_point> next;
    auto consider = [&next](time_point t) {
        if (!next || t < *next) {
            next = t;
        }
    };
    for (const deadline_set* set :
         {&scheduled_, &timeouts_, &heartbeat_deadlines_, &lease_deadlines_}) {
        if (!set->empty()) {
            consider(set->begin()->first);
        }
    }
    if (!retention_.empty()) {
        consider(retention_.front().first);
    }
    return next;
}

}  // namespace pm_agent::store

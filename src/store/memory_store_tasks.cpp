// Submission and the operations of the agent holding a task.
#include <boost/container/small_vector.hpp>

#include "memory_store.hpp"
#include "pm_agent/store/backoff.hpp"

namespace pm_agent::store {

namespace {

bool same_request(const task_rec& rec, const new_task& b) {
    const task& a = rec.t;
    return a.queue == b.queue && a.type == b.type && a.payload == b.payload &&
           a.priority == b.priority && a.max_attempts == b.max_attempts &&
           a.required_capabilities == b.required_capabilities && a.timeout_s == b.timeout_s &&
           rec.requested_delay == b.delay && rec.requested_run_at == b.run_at;
}

}  // namespace

void memory_store::submit(std::vector<new_task> tasks, time_point now,
                          callback<std::span<const submitted>> done) {
    // Pass 1 decides everything (duplicates, conflicts, the bound) before anything is created,
    // so a batch is all or nothing.
    constexpr std::size_t k_new = static_cast<std::size_t>(-1);
    boost::container::small_vector<task_rec*, 4> existing(tasks.size(), nullptr);
    boost::container::small_vector<std::size_t, 4> same_as(tasks.size(), k_new);
    std::unordered_map<std::string_view, std::size_t> batch_keys;
    std::size_t creating = 0;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        const new_task& t = tasks[i];
        if (tasks_by_id_.contains(t.id)) {
            return done(error{errc::internal, "duplicate task id"});
        }
        if (t.idempotency_key) {
            if (task_rec* rec = find_task_by_key(*t.idempotency_key)) {
                if (!same_request(*rec, t)) {
                    return done(error{
                        errc::conflict,
                        batch_message(tasks.size(), i,
                                      "idempotency_key: already used with a different body")});
                }
                existing[i] = rec;
                continue;
            }
            if (tasks.size() > 1) {
                auto [it, inserted] = batch_keys.emplace(*t.idempotency_key, i);
                if (!inserted) {
                    if (!same_submission(tasks[it->second], t)) {
                        return done(error{
                            errc::conflict,
                            batch_message(
                                tasks.size(), i,
                                "idempotency_key: used twice in the batch with different bodies")});
                    }
                    same_as[i] = it->second;
                    continue;
                }
            }
        }
        ++creating;
    }
    const std::uint64_t queued = counts_[static_cast<std::size_t>(task_status::pending)] +
                                 counts_[static_cast<std::size_t>(task_status::scheduled)];
    if (queued + creating > queue_cfg_.task_queue_size) {
        return done(error{errc::queue_full,
                          "queue is full: task_queue_size pending and scheduled "
                          "tasks reached"});
    }
    boost::container::small_vector<submitted, 4> out(tasks.size());
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        if (existing[i] != nullptr) {
            out[i] = submitted{&existing[i]->t, false};
        } else if (same_as[i] != k_new) {
            out[i] = submitted{out[same_as[i]].record, false};
        } else {
            out[i] = submitted{&create_task(std::move(tasks[i]), now).t, true};
        }
    }
    done(std::span<const submitted>(out.data(), out.size()));
}

task_rec* memory_store::find_task_by_key(std::string_view key) {
    auto it = tasks_by_key_.find(key);
    return it == tasks_by_key_.end() ? nullptr : it->second;
}

void memory_store::claim(std::string_view agent_id, std::size_t max, time_point now,
                         callback<claim_outcome> done) {
    agent_rec* holder = find_agent(agent_id);
    if (holder == nullptr) {
        return done(error{errc::not_found, "no such agent"});
    }
    boost::container::small_vector<const task*, 8> got;
    if (holder->a.status == agent_status::online) {
        const std::size_t room =
            holder->a.max_concurrency -
            std::min<std::size_t>(holder->a.max_concurrency, holder->held.size());
        const std::size_t n = std::min(max, room);
        for (std::size_t i = 0; i < n; ++i) {
            task_rec* rec = pending_.best(holder->queues, holder->a.capabilities);
            if (rec == nullptr) {
                break;
            }
            assign(*rec, *holder, now);
            got.push_back(&rec->t);
        }
    }
    done(claim_outcome{std::span<const task* const>(got.data(), got.size()), &holder->a});
}

void memory_store::start(lease_ref lease, time_point now, callback<const task*> done) {
    auto held = held_by(lease);
    if (!held) {
        return done(std::move(held).err());
    }
    task_rec& rec = **held;
    if (rec.t.status == task_status::assigned) {
        set_status(rec, task_status::running, now);
    }
    done(&rec.t);
}

void memory_store::progress(lease_ref lease, task_progress value, time_point now,
                            callback<const task*> done) {
    auto held = held_by(lease);
    if (!held) {
        return done(std::move(held).err());
    }
    task_rec& rec = **held;
    if (rec.t.status == task_status::assigned) {
        set_status(rec, task_status::running, now);
    }
    rec.t.progress = std::move(value);
    rec.t.updated_at = now;
    renew_leases(*rec.holder, now);
    done(&rec.t);
}

void memory_store::complete(lease_ref lease, boost::json::value result, time_point now,
                            callback<const task*> done) {
    auto held = held_by(lease);
    if (!held) {
        return done(std::move(held).err());
    }
    task_rec& rec = **held;
    unhold(rec);
    rec.t.result = std::move(result);
    rec.t.error.reset();
    set_status(rec, task_status::succeeded, now);
    done(&rec.t);
}

void memory_store::fail(lease_ref lease, std::string error_text, bool retryable, double jitter,
                        time_point now, callback<const task*> done) {
    auto held = held_by(lease);
    if (!held) {
        return done(std::move(held).err());
    }
    task_rec& rec = **held;
    unhold(rec);
    rec.t.error = std::move(error_text);
    if (retryable && rec.t.attempts < rec.t.max_attempts) {
        leave_status(rec);
        rec.t.agent_id.reset();
        rec.t.run_at = now + retry_delay(queue_cfg_, rec.t.attempts, jitter);
        enter_status(rec, task_status::scheduled, now);
    } else {
        set_status(rec, task_status::dead, now);
    }
    done(&rec.t);
}

void memory_store::cancel(std::string_view task_id, time_point now, callback<cancel_outcome> done) {
    task_rec* rec = find_task(task_id);
    if (rec == nullptr) {
        return done(error{errc::not_found, "no such task"});
    }
    if (is_finished(rec->t.status)) {
        std::string msg = "task is already ";
        msg += to_string(rec->t.status);
        return done(error{errc::conflict, std::move(msg)});
    }
    const bool was_held = rec->holder != nullptr;
    if (was_held) {
        rec->holder->notices.push_back(rec->t.id);
        unhold(*rec);
    }
    set_status(*rec, task_status::cancelled, now);
    done(cancel_outcome{&rec->t, was_held});
}

void memory_store::retry(std::string_view task_id, time_point now, callback<const task*> done) {
    task_rec* rec = find_task(task_id);
    if (rec == nullptr) {
        return done(error{errc::not_found, "no such task"});
    }
    if (rec->t.status != task_status::dead && rec->t.status != task_status::cancelled) {
        std::string msg = "task is ";
        msg += to_string(rec->t.status);
        msg += ": only dead or cancelled tasks are retried";
        return done(error{errc::conflict, std::move(msg)});
    }
    rec->t.attempts = 0;
    rec->t.agent_id.reset();
    rec->t.result = nullptr;
    rec->t.error.reset();
    rec->t.progress.reset();
    rec->t.run_at.reset();
    set_status(*rec, task_status::pending, now);
    done(&rec->t);
}

void memory_store::get_task(std::string_view task_id, callback<const task*> done) {
    task_rec* rec = find_task(task_id);
    if (rec == nullptr) {
        return done(error{errc::not_found, "no such task"});
    }
    done(&rec->t);
}

}  // namespace pm_agent::store

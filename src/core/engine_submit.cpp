// Submitters' operations: submit, batch, cancel and the read-only queries.
#include "engine_state.hpp"

namespace pm_agent::core {

namespace {

constexpr std::size_t k_max_batch = 1000;
constexpr std::size_t k_max_page = 1000;

store::error limit_error() {
    return store::error{store::errc::bad_request, "limit: must be between 1 and 1000"};
}

}  // namespace

void engine::submit(task_spec spec, time_point now, callback<store::submitted> done) {
    impl& s = *impl_;
    auto checked = validate_task(std::move(spec), s.defaults_, "");
    if (!checked) {
        return done(std::move(checked).err());
    }
    checked->id = s.ids_.next_task_id();
    std::vector<store::new_task> one;
    one.push_back(std::move(*checked));
    s.store_.submit(std::move(one), now,
                    [&s, now, done = std::move(done)](
                        store::result<std::span<const store::submitted>> r) mutable {
                        if (!r) {
                            return done(std::move(r).err());
                        }
                        const store::submitted entry = (*r)[0];
                        if (entry.created) {
                            ++s.counters_.submitted;
                            s.offer_submitted(*entry.record, now);
                        }
                        s.refresh_deadline();
                        done(entry);
                    });
}

void engine::submit_batch(std::vector<task_spec> specs, time_point now,
                          callback<std::span<const store::submitted>> done) {
    impl& s = *impl_;
    if (specs.empty() || specs.size() > k_max_batch) {
        return done(store::error{store::errc::bad_request, "tasks: must hold 1 to 1000 tasks"});
    }
    std::vector<store::new_task> tasks;
    tasks.reserve(specs.size());
    for (std::size_t i = 0; i < specs.size(); ++i) {
        auto checked = validate_task(std::move(specs[i]), s.defaults_, "");
        if (!checked) {
            store::error e = std::move(checked).err();
            e.message.insert(0, "tasks[" + std::to_string(i) + "].");
            return done(std::move(e));
        }
        checked->id = s.ids_.next_task_id();
        tasks.push_back(std::move(*checked));
    }
    s.store_.submit(std::move(tasks), now,
                    [&s, now, done = std::move(done)](
                        store::result<std::span<const store::submitted>> r) mutable {
                        if (!r) {
                            return done(std::move(r).err());
                        }
                        for (const store::submitted& entry : *r) {
                            if (entry.created) {
                                ++s.counters_.submitted;
                            }
                        }
                        // Dispatch only after the whole batch is in, so the best tasks of it
                        // go first.
                        for (const store::submitted& entry : *r) {
                            if (entry.created) {
                                s.offer_submitted(*entry.record, now);
                            }
                        }
                        s.refresh_deadline();
                        done(*r);
                    });
}

void engine::cancel(std::string_view task_id, time_point now, callback<const store::task*> done) {
    impl& s = *impl_;
    s.store_.cancel(
        task_id, now,
        [&s, now, done = std::move(done)](store::result<store::cancel_outcome> r) mutable {
            if (!r) {
                return done(std::move(r).err());
            }
            ++s.counters_.cancelled;
            const store::task& t = *r->record;
            agent_state* holder = r->was_held && t.agent_id ? s.find_agent(*t.agent_id) : nullptr;
            if (r->was_held && t.agent_id) {
                s.notice_elsewhere(*t.agent_id);
            }
            if (holder != nullptr) {
                s.release_slot(*holder, t.id);
                // Looked up again: the transport may detach inside push_cancel.
                if (agent_state* again = s.find_agent(*t.agent_id)) {
                    s.refill(*again, now);
                }
            }
            s.refresh_deadline();
            done(&t);
        });
}

void engine::retry(std::string_view task_id, time_point now, callback<const store::task*> done) {
    impl& s = *impl_;
    s.store_.retry(task_id, now,
                   [&s, now, done = std::move(done)](store::result<const store::task*> r) mutable {
                       if (!r) {
                           return done(std::move(r).err());
                       }
                       s.offer_submitted(**r, now);
                       s.refresh_deadline();
                       done(*r);
                   });
}

void engine::get_task(std::string_view task_id, callback<const store::task*> done) {
    impl_->store_.get_task(task_id, std::move(done));
}

void engine::list_tasks(store::task_filter filter, callback<store::task_page> done) {
    if (filter.limit < 1 || filter.limit > k_max_page) {
        return done(limit_error());
    }
    impl_->store_.list_tasks(std::move(filter), std::move(done));
}

void engine::stats(callback<store::store_stats> done) {
    impl_->store_.stats(std::move(done));
}

void engine::queue_depths(callback<std::vector<store::queue_depth>> done) {
    impl_->store_.queue_depths(std::move(done));
}

void engine::list_agents(store::agent_filter filter, callback<store::agent_page> done) {
    if (filter.limit < 1 || filter.limit > k_max_page) {
        return done(limit_error());
    }
    impl_->store_.list_agents(std::move(filter), std::move(done));
}

void engine::get_agent(std::string_view agent_id, callback<const store::agent*> done) {
    impl_->store_.get_agent(agent_id, std::move(done));
}

}  // namespace pm_agent::core

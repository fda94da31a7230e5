// The contract fixture's helpers: each runs one store operation and copies its result.
#include "store_contract.hpp"

namespace pm_agent::store::testing {

namespace {

task copy_task(const task* t) {
    return *t;
}

}  // namespace

result<std::vector<submitted_copy>> store_contract::submit(std::vector<new_task> tasks,
                                                           time_point now) {
    return await<std::vector<submitted_copy>, std::span<const submitted>>(
        [&](auto cb) { store_->submit(std::move(tasks), now, std::move(cb)); },
        [](std::span<const submitted> s) {
            std::vector<submitted_copy> out;
            for (const submitted& e : s) {
                out.push_back({*e.record, e.created});
            }
            return out;
        });
}

result<task> store_contract::submit_one(new_task t, time_point now) {
    std::vector<new_task> one;
    one.push_back(std::move(t));
    auto r = submit(std::move(one), now);
    if (!r) {
        return std::move(r).err();
    }
    return r->front().record;
}

result<claim_copy> store_contract::claim(std::string_view agent_id, std::size_t max,
                                         time_point now) {
    return await<claim_copy, claim_outcome>(
        [&](auto cb) { store_->claim(agent_id, max, now, std::move(cb)); },
        [](const claim_outcome& o) {
            claim_copy out;
            for (const task* t : o.tasks) {
                out.tasks.push_back(*t);
            }
            out.claimer = *o.claimer;
            return out;
        });
}

std::vector<std::string> store_contract::claim_ids(std::string_view agent_id, std::size_t max,
                                                   time_point now) {
    std::vector<std::string> ids;
    auto r = claim(agent_id, max, now);
    EXPECT_TRUE(r) << (r ? "" : r.err().message);
    if (r) {
        for (const task& t : r->tasks) {
            ids.push_back(t.id);
        }
    }
    return ids;
}

result<task> store_contract::start(std::string_view task_id, std::string_view agent_id,
                                   time_point now) {
    return await<task, const task*>(
        [&](auto cb) {
            store_->start({task_id, agent_id}, now, std::move(cb));
        },
        copy_task);
}

result<task> store_contract::progress(std::string_view task_id, std::string_view agent_id,
                                      double value, time_point now) {
    return await<task, const task*>(
        [&](auto cb) {
            store_->progress({task_id, agent_id}, task_progress{value, "working"}, now,
                             std::move(cb));
        },
        copy_task);
}

result<task> store_contract::complete(std::string_view task_id, std::string_view agent_id,
                                      boost::json::value value, time_point now) {
    return await<task, const task*>(
        [&](auto cb) {
            store_->complete({task_id, agent_id}, std::move(value), now, std::move(cb));
        },
        copy_task);
}

result<task> store_contract::fail(std::string_view task_id, std::string_view agent_id,
                                  std::string error, bool retryable, double jitter,
                                  time_point now) {
    return await<task, const task*>(
        [&](auto cb) {
            store_->fail({task_id, agent_id}, std::move(error), retryable, jitter, now,
                         std::move(cb));
        },
        copy_task);
}

result<cancel_copy> store_contract::cancel(std::string_view task_id, time_point now) {
    return await<cancel_copy, cancel_outcome>(
        [&](auto cb) { store_->cancel(task_id, now, std::move(cb)); },
        [](const cancel_outcome& o) {
            return cancel_copy{*o.record, o.was_held};
        });
}

result<task> store_contract::retry(std::string_view task_id, time_point now) {
    return await<task, const task*>([&](auto cb) { store_->retry(task_id, now, std::move(cb)); },
                                    copy_task);
}

result<task> store_contract::get_task(std::string_view task_id) {
    return await<task, const task*>([&](auto cb) { store_->get_task(task_id, std::move(cb)); },
                                    copy_task);
}

result<task_page> store_contract::list_tasks(task_filter filter) {
    return await<task_page, task_page>(
        [&](auto cb) { store_->list_tasks(std::move(filter), std::move(cb)); },
        [](task_page& p) { return std::move(p); });
}

result<store_stats> store_contract::stats() {
    return await<store_stats, store_stats>([&](auto cb) { store_->stats(std::move(cb)); },
                                           [](store_stats& s) { return std::move(s); });
}

result<std::vector<queue_depth>> store_contract::queue_depths() {
    return await<std::vector<queue_depth>, std::vector<queue_depth>>(
        [&](auto cb) { store_->queue_depths(std::move(cb)); },
        [](std::vector<queue_depth>& d) { return std::move(d); });
}

result<agent> store_contract::register_agent(new_agent a, time_point now) {
    return await<agent, const agent*>(
        [&](auto cb) { store_->register_agent(std::move(a), now, std::move(cb)); },
        [](const agent* p) { return *p; });
}

result<agent> store_contract::get_agent(std::string_view agent_id) {
    return await<agent, const agent*>([&](auto cb) { store_->get_agent(agent_id, std::move(cb)); },
                                      [](const agent* p) { return *p; });
}

result<agent_page> store_contract::list_agents(agent_filter filter) {
    return await<agent_page, agent_page>(
        [&](auto cb) { store_->list_agents(std::move(filter), std::move(cb)); },
        [](agent_page& p) { return std::move(p); });
}

result<heartbeat_copy> store_contract::heartbeat(std::string_view agent_id,
                                                 std::optional<agent_status> status,
                                                 time_point now) {
    return await<heartbeat_copy, heartbeat_outcome>(
        [&](auto cb) { store_->heartbeat(agent_id, status, now, std::move(cb)); },
        [](heartbeat_outcome& o) {
            return heartbeat_copy{*o.record, std::move(o.cancel), o.came_online};
        });
}

result<agent> store_contract::renew_liveness(std::string_view agent_id, time_point now) {
    return await<agent, const agent*>(
        [&](auto cb) { store_->renew_liveness(agent_id, now, std::move(cb)); },
        [](const agent* p) { return *p; });
}

result<std::vector<released_task>> store_contract::deregister(std::string_view agent_id,
                                                              time_point now) {
    return await<std::vector<released_task>, std::vector<released_task>>(
        [&](auto cb) { store_->deregister_agent(agent_id, now, std::move(cb)); },
        [](std::vector<released_task>& v) { return std::move(v); });
}

result<std::vector<released_task>> store_contract::release_agent_tasks(std::string_view agent_id,
                                                                       time_point now) {
    return await<std::vector<released_task>, std::vector<released_task>>(
        [&](auto cb) { store_->release_agent_tasks(agent_id, now, std::move(cb)); },
        [](std::vector<released_task>& v) { return std::move(v); });
}

result<reap_outcome> store_contract::reap(time_point now) {
    return await<reap_outcome, reap_outcome>([&](auto cb) { store_->reap(now, std::move(cb)); },
                                             [](reap_outcome& o) { return std::move(o); });
}

}  // namespace pm_agent::store::testing

// Everything driven by time: agent silence, lease expiry, task timeouts, scheduled tasks
// coming due and retention. Each walks a deadline-ordered set from its front, so a reap costs
// O(k log n) for the k items actually due, never a scan.
#include "memory_store.hpp"

namespace pm_agent::store {

void memory_store::reap(time_point now, callback<reap_outcome> done) {
    reap_outcome out;
    while (!heartbeat_deadlines_.empty() && heartbeat_deadlines_.begin()->first <= now) {
        agent_rec& rec = *agent_by_seq(heartbeat_deadlines_.begin()->second);
        heartbeat_deadlines_.erase(heartbeat_deadlines_.begin());
        set_agent_status(rec, agent_status::offline);
        while (!rec.held.empty()) {
            out.released.push_back(release(*rec.held.back(), release_reason::agent_offline, now));
        }
        out.offline_agents.push_back(rec.a.id);
    }
    while (!lease_deadlines_.empty() && lease_deadlines_.begin()->first <= now) {
        // Releasing its last task removes the agent's entry, so the loop advances.
        agent_rec& rec = *agent_by_seq(lease_deadlines_.begin()->second);
        while (!rec.held.empty()) {
            out.released.push_back(release(*rec.held.back(), release_reason::lease_expired, now));
        }
    }
    while (!timeouts_.empty() && timeouts_.begin()->first <= now) {
        task_rec& rec = *task_by_seq(timeouts_.begin()->second);
        out.released.push_back(release(rec, release_reason::timed_out, now));
    }
    while (!scheduled_.empty() && scheduled_.begin()->first <= now) {
        task_rec& rec = *task_by_seq(scheduled_.begin()->second);
        set_status(rec, task_status::pending, now);
        out.due.push_back(due_task{rec.q->name, rec.t.required_capabilities});
    }
    while (!retention_.empty() && retention_.front().first <= now) {
        const std::uint64_t seq = retention_.front().second;
        retention_.pop_front();
        task_rec* rec = task_by_seq(seq);
        // A retried task's earlier finish is not the one that counts.
        if (rec != nullptr && is_finished(rec->t.status) &&
            rec->t.updated_at + queue_cfg_.retention <= now) {
            erase_task(*rec);
            ++out.deleted_tasks;
        }
    }
    done(std::move(out));
}

}  // namespace pm_agent::store

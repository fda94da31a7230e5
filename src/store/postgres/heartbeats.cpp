// Heartbeats on PostgreSQL: all of one loop turn in one UPDATE of the agents' rows, which also
// renews their leases and takes their cancel notices. Rows are locked in id order, so two
// workers' heartbeat batches never deadlock each other (other statements lock in their own
// order; a deadlock between workers is retried, see batch.cpp). A lease already set is renewed
// even if the statement's snapshot shows no held task: a claim that committed while this
// statement waited for the row lock has just set it.
#include <unordered_map>

#include "store/postgres/postgres_store.hpp"
#include "store/postgres/sql.hpp"

namespace pm_agent::store::postgres {

namespace {

// $1 agents, $2 statuses (NULL: keep), $3 times, $4 lease ms
constexpr const char* k_heartbeat_many =
    "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(id, status, "
    "now)), "
    "old AS (SELECT a.id, a.status FROM pm_agents a JOIN i ON i.id = a.id ORDER BY a.id FOR "
    "UPDATE OF a), "
    "upd AS (UPDATE pm_agents a SET last_heartbeat = pm_ts(i.now), status = COALESCE(i.status, "
    "CASE WHEN old.status = 'offline' THEN 'online' ELSE old.status END), lease_expires_at = "
    "CASE WHEN a.lease_expires_at IS NOT NULL OR EXISTS (SELECT 1 FROM pm_tasks h WHERE "
    "h.agent_id = a.id AND h.status IN "
    "('assigned', 'running')) THEN pm_ts(i.now) + $4 * interval '1 millisecond' END FROM i JOIN "
    "old ON old.id = i.id WHERE a.id = i.id RETURNING a.*, old.status AS old_status), "
    "notes AS (DELETE FROM pm_agent_notices n USING upd WHERE n.agent_id = upd.id RETURNING "
    "n.agent_id, n.task_id, n.seq) "
    "SELECT " PM_AGENT_COLUMNS("upd") ", upd.old_status, (SELECT array_agg(notes.task_id ORDER "
                                      "BY notes.seq) FROM notes WHERE notes.agent_id = upd.id) "
                                      "FROM upd";

}  // namespace

void answer_heartbeat(const pg::rows& r, std::size_t row, callback<heartbeat_outcome>& done) {
    const agent a = read_agent(r, row);
    heartbeat_outcome out;
    out.record = &a;
    out.came_online = r.get(row, PM_AGENT_COLUMN_COUNT) == "offline";
    if (!r.is_null(row, PM_AGENT_COLUMN_COUNT + 1)) {
        parse_text_array(r.get(row, PM_AGENT_COLUMN_COUNT + 1), out.cancel);
    }
    done(std::move(out));
}

void postgres_store::heartbeat_joined(std::vector<pending_heartbeat> group) {
    if (group.size() == 1) {
        return heartbeat_one(std::move(group.front()));
    }
    array_builder ids, statuses, times;
    for (const pending_heartbeat& h : group) {
        ids.add(h.agent_id);
        if (h.status) {
            statuses.add(to_string(*h.status));
        } else {
            statuses.add_null();
        }
        times.add(micros(h.now));
    }
    op o;
    o.statements.push_back({"pm_heartbeat_many",
                            k_heartbeat_many,
                            {ids.take(), statuses.take(), times.take(),
                             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                agents_cfg_.lease_timeout)
                                                .count())}});
    auto shared = std::make_shared<std::vector<pending_heartbeat>>(std::move(group));
    o.on_rows = [this, shared](std::span<pg::rows> r) {
        std::unordered_map<std::string_view, std::size_t> updated;
        for (std::size_t i = 0; i < r[0].size(); ++i) {
            updated.emplace(r[0].get(i, 0), i);
        }
        for (pending_heartbeat& h : *shared) {
            auto it = updated.find(h.agent_id);
            if (it == updated.end()) {
                heartbeat_one(std::move(h));  // unknown, or twice in this batch
                continue;
            }
            const std::size_t row = it->second;
            updated.erase(it);
            answer_heartbeat(r[0], row, h.done);
        }
    };
    o.on_error = [this, shared](error e, const pg::failure* f) {
        for (pending_heartbeat& h : *shared) {
            if (f != nullptr) {
                heartbeat_one(std::move(h));
            } else {
                h.done(e);
            }
        }
    };
    queued_.push_front(std::move(o));
}

}  // namespace pm_agent::store::postgres

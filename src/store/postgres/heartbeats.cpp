// Heartbeats on PostgreSQL: all of one loop turn in one UPDATE of the agents' rows, which also
// renews their leases and takes their cancel notices. Rows are locked in id order, so two
// workers' heartbeat batches never deadlock each other (other statements lock in their own
// order; a deadlock between workers is retried, see batch.cpp). A lease already set is renewed
// even if the statement's snapshot shows no held task: a claim that committed while this
// statement waited for the row lock has just set it.
//
// With heartbeat_write_interval, most heartbeats are not written at all (DESIGN.md §3): they
// only take the agent's cancel notices, which deletes nothing and so commits nothing when
// there are none; renew_heartbeats() writes the latest of them once per interval, for every
// agent in one statement.
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

// $1 agents. Offline agents are left out: their heartbeat must bring them online (a write).
constexpr const char* k_heartbeat_light =
    "WITH a AS (SELECT * FROM pm_agents WHERE id = ANY($1::text[]) AND status <> 'offline'), "
    "notes AS (DELETE FROM pm_agent_notices n USING a WHERE n.agent_id = a.id RETURNING "
    "n.agent_id, n.task_id, n.seq) "
    "SELECT " PM_AGENT_COLUMNS("a") ", a.status, (SELECT array_agg(notes.task_id ORDER BY "
                                    "notes.seq) FROM notes WHERE notes.agent_id = a.id) FROM a";

// $1 agents, $2 their latest heartbeat times, $3 lease ms. Rows locked in id order, like
// k_heartbeat_many; never moves a heartbeat or a lease backwards.
constexpr const char* k_renew_heartbeats =
    "WITH i AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS i(id, now)), "
    "lk AS (SELECT a.id FROM pm_agents a JOIN i ON i.id = a.id WHERE a.status <> 'offline' "
    "AND (a.attached_to IS NULL OR EXISTS (SELECT 1 FROM pm_tasks h WHERE h.agent_id = a.id AND "
    "h.status IN ('assigned', 'running'))) ORDER BY a.id FOR UPDATE OF a) "
    "UPDATE pm_agents a SET last_heartbeat = GREATEST(a.last_heartbeat, pm_ts(i.now)), "
    "lease_expires_at = CASE WHEN a.lease_expires_at IS NOT NULL OR EXISTS (SELECT 1 FROM "
    "pm_tasks h WHERE h.agent_id = a.id AND h.status IN ('assigned', 'running')) THEN "
    "GREATEST(a.lease_expires_at, pm_ts(i.now) + $3 * interval '1 millisecond') END "
    "FROM i JOIN lk ON lk.id = i.id WHERE a.id = i.id";

// $1 agent, $2 now, $3 lease ms: a heartbeat that leaves the notices (renew_liveness).
constexpr const char* k_renew_liveness =
    "UPDATE pm_agents a SET last_heartbeat = GREATEST(a.last_heartbeat, pm_ts($2)), status = "
    "CASE WHEN a.status = 'offline' THEN 'online' ELSE a.status END, lease_expires_at = CASE "
    "WHEN a.lease_expires_at IS NOT NULL OR EXISTS (SELECT 1 FROM pm_tasks h WHERE h.agent_id = "
    "a.id AND h.status IN ('assigned', 'running')) THEN GREATEST(a.lease_expires_at, pm_ts($2) + "
    "$3 * interval '1 millisecond') END WHERE a.id = $1 RETURNING " PM_AGENT_COLUMNS("a");

// $1 worker, $2 now: this worker is alive, and so are the agents attached to it.
constexpr const char* k_worker_seen =
    "INSERT INTO pm_workers (name, last_seen) VALUES ($1, pm_ts($2)) ON CONFLICT (name) DO "
    "UPDATE SET last_seen = GREATEST(pm_workers.last_seen, EXCLUDED.last_seen)";

// $1 agent, $2 worker
constexpr const char* k_attach =
    "UPDATE pm_agents SET attached_to = $2 WHERE id = $1 AND attached_to IS DISTINCT FROM $2";

// $1 agent, $2 worker, $3 its latest heartbeat seen here (NULL: none kept back), $4 lease ms.
// Only if it is still attached here: it may have attached to another worker meanwhile.
constexpr const char* k_detach =
    "UPDATE pm_agents a SET attached_to = NULL, last_heartbeat = GREATEST(a.last_heartbeat, "
    "pm_ts($3)), lease_expires_at = CASE WHEN a.lease_expires_at IS NOT NULL THEN "
    "GREATEST(a.lease_expires_at, pm_ts($3) + $4 * interval '1 millisecond') END WHERE a.id = "
    "$1 AND a.attached_to = $2";

std::string lease_millis(const config::agents_config& agents) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(agents.lease_timeout).count());
}

}  // namespace

void postgres_store::note_written(const std::string& agent_id, time_point at) {
    time_point& written = written_heartbeats_[agent_id];
    written = std::max(written, at);
    if (auto it = unwritten_heartbeats_.find(agent_id);
        it != unwritten_heartbeats_.end() && it->second <= at) {
        unwritten_heartbeats_.erase(it);
    }
}

void postgres_store::heartbeat_light(std::vector<pending_heartbeat> group) {
    array_builder ids;
    for (const pending_heartbeat& h : group) {
        ids.add(h.agent_id);
    }
    op o;
    o.statements.push_back({"pm_heartbeat_light", k_heartbeat_light, {ids.take()}});
    auto shared = std::make_shared<std::vector<pending_heartbeat>>(std::move(group));
    o.on_rows = [this, shared](std::span<pg::rows> r) {
        // Row of each agent, and whether its notices were handed out already: the same agent
        // twice in one turn gets its notices once, and is not a reason for a full write.
        std::unordered_map<std::string_view, std::pair<std::size_t, bool>> found;
        for (std::size_t i = 0; i < r[0].size(); ++i) {
            found.emplace(r[0].get(i, 0), std::pair{i, false});
        }
        for (pending_heartbeat& h : *shared) {
            auto it = found.find(h.agent_id);
            if (it == found.end()) {
                // Offline or deregistered: the full path says which (and writes the heartbeat).
                written_heartbeats_.erase(h.agent_id);
                heartbeat_one(std::move(h));
                continue;
            }
            auto& [row, taken] = it->second;
            agent a = read_agent(r[0], row);
            a.last_heartbeat = h.now;  // what renew_heartbeats() will write
            heartbeat_outcome out;
            out.record = &a;
            if (!taken && !r[0].is_null(row, PM_AGENT_COLUMN_COUNT + 1)) {
                parse_text_array(r[0].get(row, PM_AGENT_COLUMN_COUNT + 1), out.cancel);
            }
            taken = true;
            h.done(std::move(out));
        }
    };
    o.on_error = [shared](error e, const pg::failure*) {
        for (pending_heartbeat& h : *shared) {
            h.done(e);
        }
    };
    queued_.push_front(std::move(o));
}

void postgres_store::renew_liveness(std::string_view agent_id, time_point now,
                                    callback<const agent*> done) {
    latest_now_ = std::max(latest_now_, now);
    std::string id(agent_id);
    auto written = written_heartbeats_.find(id);
    if (options_.heartbeat_write_interval.count() > 0 && written != written_heartbeats_.end() &&
        now - written->second < options_.heartbeat_write_interval) {
        // Written lately: kept back like a light heartbeat, for renew_heartbeats() to write.
        // The record is read as a task request read it before; an agent taken offline
        // meanwhile (by another worker's reaper) takes the write below instead.
        get_agent(id, [this, alive = alive_, id, now,
                       done = std::move(done)](result<const agent*> r) mutable {
            if (!r || !*alive) {
                return done(std::move(r));
            }
            if ((*r)->status == agent_status::offline) {
                written_heartbeats_.erase(id);
                return renew_liveness(id, now, std::move(done));
            }
            time_point& latest = unwritten_heartbeats_[id];
            latest = std::max(latest, now);
            agent a = **r;
            a.last_heartbeat = std::max(a.last_heartbeat, now);
            done(&a);
        });
        return;
    }
    op o;
    o.statements.push_back(
        {"pm_renew_liveness", k_renew_liveness, {id, micros(now), lease_millis(agents_cfg_)}});
    auto cb = std::make_shared<callback<const agent*>>(std::move(done));
    o.on_rows = [this, alive = alive_, id = std::move(id), now, cb](std::span<pg::rows> r) {
        if (r[0].size() == 0) {
            return (*cb)(error{errc::not_found, "no such agent"});
        }
        if (*alive && options_.heartbeat_write_interval.count() > 0) {
            note_written(id, now);
        }
        const agent a = read_agent(r[0], 0);
        (*cb)(&a);
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    enqueue(std::move(o));
}

void postgres_store::renew_heartbeats(time_point now) {
    if (renewing_ || (unwritten_heartbeats_.empty() && attached_.empty()) ||
        (last_renewal_ && now - *last_renewal_ < options_.heartbeat_write_interval)) {
        return;
    }
    last_renewal_ = now;
    renewing_ = true;
    op o;
    if (!attached_.empty()) {
        o.statements.push_back({"pm_worker_seen", k_worker_seen, {worker_name_, micros(now)}});
    }
    auto batch = std::make_shared<std::vector<std::pair<std::string, time_point>>>();
    if (!unwritten_heartbeats_.empty()) {
        array_builder ids, times;
        for (auto& [id, at] : unwritten_heartbeats_) {
            ids.add(id);
            times.add(micros(at));
            batch->emplace_back(id, at);
        }
        unwritten_heartbeats_.clear();
        o.statements.push_back({"pm_renew_heartbeats",
                                k_renew_heartbeats,
                                {ids.take(), times.take(), lease_millis(agents_cfg_)}});
    }
    // Agents not heard from for an interval take the full path at their next heartbeat (an
    // attached one's silence is its connection's business: the worker closes it).
    std::erase_if(written_heartbeats_, [&](const auto& e) {
        return now - e.second >= options_.heartbeat_write_interval && !attached_.contains(e.first);
    });
    o.on_rows = [this, batch](std::span<pg::rows>) {
        renewing_ = false;
        for (const auto& [id, at] : *batch) {
            note_written(id, at);
        }
    };
    o.on_error = [this, batch](error, const pg::failure*) {
        renewing_ = false;
        // Kept for the next renewal (unless a newer heartbeat took their place).
        for (const auto& [id, at] : *batch) {
            time_point& latest = unwritten_heartbeats_[id];
            latest = std::max(latest, at);
        }
    };
    // Ahead of any backlog: a worker whose liveness waits is taken for dead with its agents.
    queued_.push_front(std::move(o));
    schedule_flush();
}

void postgres_store::set_attached(std::string_view agent_id, bool attached) {
    std::string id(agent_id);
    op o;
    if (attached) {
        attached_.insert(id);
        // The worker's row first: an agent attached to a worker without one would never be
        // found by the reaper if this worker died before its first renewal.
        o.statements.push_back(
            {"pm_worker_seen", k_worker_seen, {worker_name_, micros(latest_now_)}});
        o.statements.push_back({"pm_attach", k_attach, {std::move(id), worker_name_}});
    } else {
        if (attached_.erase(id) == 0) {
            return;
        }
        // Its silence counts from the last heartbeat this worker saw, written now.
        std::optional<time_point> latest;
        if (auto it = written_heartbeats_.find(id); it != written_heartbeats_.end()) {
            latest = it->second;
        }
        if (auto it = unwritten_heartbeats_.find(id); it != unwritten_heartbeats_.end()) {
            latest = std::max(latest.value_or(it->second), it->second);
            unwritten_heartbeats_.erase(it);
        }
        param at;
        if (latest) {
            at = micros(*latest);
        }
        o.statements.push_back(
            {"pm_detach",
             k_detach,
             {std::move(id), worker_name_, std::move(at), lease_millis(agents_cfg_)}});
    }
    o.on_rows = [](std::span<pg::rows>) {};
    o.on_error = [](error, const pg::failure*) {};  // the reaper's timeouts cover a lost write
    enqueue(std::move(o));
}

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
    o.statements.push_back(
        {"pm_heartbeat_many",
         k_heartbeat_many,
         {ids.take(), statuses.take(), times.take(), lease_millis(agents_cfg_)}});
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

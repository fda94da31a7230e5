// Agent records on PostgreSQL: registration, liveness, deregistration and releasing an agent's
// tasks. A heartbeat is one UPDATE of the agent's row (its lease covers all its tasks) and
// takes its cancel notices in the same statement.
#include <boost/json/serialize.hpp>

#include "store/postgres/postgres_store.hpp"
#include "store/postgres/release_sql.hpp"
#include "store/postgres/sql.hpp"

namespace pm_agent::store::postgres {

namespace {

constexpr const char* k_register =
    "INSERT INTO pm_agents (id, name, queues, capabilities, labels, max_concurrency, status, "
    "last_heartbeat, registered_at, worker, token_hash) VALUES ($1, $2, $3::text[], $4::text[], "
    "$5::jsonb, $6, 'online', pm_ts($7), pm_ts($7), $8, $9::bytea) RETURNING " PM_AGENT_COLUMNS(
        "pm_agents");

constexpr const char* k_add_queues =
    "INSERT INTO pm_queues (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING";

constexpr const char* k_agent_by_id =
    "SELECT " PM_AGENT_COLUMNS("a") " FROM pm_agents a WHERE a.id = $1";
constexpr const char* k_agent_by_token =
    "SELECT " PM_AGENT_COLUMNS("a") " FROM pm_agents a WHERE a.token_hash = $1::bytea";

// $1 agent, $2 status or NULL, $3 now, $4 lease ms
constexpr const char* k_heartbeat =
    "WITH old AS (SELECT id, status FROM pm_agents WHERE id = $1 FOR UPDATE), "
    "upd AS (UPDATE pm_agents a SET last_heartbeat = pm_ts($3), status = COALESCE($2, CASE WHEN "
    "old.status = 'offline' THEN 'online' ELSE old.status END), lease_expires_at = CASE WHEN "
    "a.lease_expires_at IS NOT NULL OR EXISTS (SELECT 1 FROM pm_tasks h WHERE h.agent_id = a.id "
    "AND h.status IN ('assigned', 'running')) THEN pm_ts($3) + $4 * interval '1 millisecond' END FROM old WHERE a.id = old.id "
    "RETURNING a.*, old.status AS old_status), "
    "notes AS (DELETE FROM pm_agent_notices n WHERE n.agent_id = $1 AND EXISTS (SELECT 1 FROM "
    "upd) RETURNING n.task_id, n.seq) "
    "SELECT " PM_AGENT_COLUMNS("upd") ", upd.old_status, (SELECT array_agg(task_id ORDER BY seq) "
                                      "FROM notes) FROM upd";

constexpr const char* k_release_agent = PM_RELEASE_AGENT_SQL;

constexpr const char* k_delete_agent =
    "WITH d AS (DELETE FROM pm_agents WHERE id = $1 RETURNING id), "
    "n AS (DELETE FROM pm_agent_notices WHERE agent_id = $1) SELECT count(*) FROM d";

// Locks the agent's row first (a claim in flight holds it until it commits), so that the release
// after it, a statement of its own with a fresh snapshot, sees every task the agent holds.
constexpr const char* k_agent_exists = "SELECT 1 FROM pm_agents WHERE id = $1 FOR UPDATE";

std::string labels_json(const std::map<std::string, std::string>& labels) {
    boost::json::object o;
    for (const auto& [k, v] : labels) {
        o[k] = v;
    }
    return boost::json::serialize(o);
}

template <class T>
void answer_error(const std::shared_ptr<callback<T>>& cb, error e) {
    (*cb)(std::move(e));
}

}  // namespace

void postgres_store::register_agent(new_agent spec, time_point now, callback<const agent*> done) {
    op o;
    std::vector<std::string> new_queues;
    for (const std::string& q : spec.queues) {
        if (!known_queues_.contains(q)) {
            new_queues.push_back(q);
        }
    }
    if (!new_queues.empty()) {
        o.statements.push_back({"pm_add_queues", k_add_queues, {text_array(new_queues)}});
    }
    o.statements.push_back(
        {"pm_register",
         k_register,
         {spec.id, spec.name, text_array(spec.queues), text_array(spec.capabilities),
          labels_json(spec.labels), std::to_string(spec.max_concurrency), micros(now), spec.worker,
          bytea_hex(spec.token_hash)}});
    auto cb = std::make_shared<callback<const agent*>>(std::move(done));
    o.on_rows = [this, cb, new_queues](std::span<pg::rows> r) {
        known_queues_.insert(new_queues.begin(), new_queues.end());
        const agent a = read_agent(r.back(), 0);
        (*cb)(&a);
    };
    o.on_error = [cb](error e, const pg::failure* f) {
        if (f != nullptr && f->sqlstate == "23505") {
            e = error{errc::conflict, "agent id already registered"};
        }
        answer_error(cb, std::move(e));
    };
    enqueue(std::move(o));
}

namespace {

op agent_lookup(const char* name, const char* sql, std::string key, callback<const agent*> done) {
    op o;
    o.statements.push_back({name, sql, {std::move(key)}});
    auto cb = std::make_shared<callback<const agent*>>(std::move(done));
    o.on_rows = [cb](std::span<pg::rows> r) {
        if (r[0].size() == 0) {
            return (*cb)(error{errc::not_found, "no such agent"});
        }
        const agent a = read_agent(r[0], 0);
        (*cb)(&a);
    };
    o.on_error = [cb](error e, const pg::failure*) { answer_error(cb, std::move(e)); };
    return o;
}

}  // namespace

void postgres_store::get_agent(std::string_view agent_id, callback<const agent*> done) {
    run_direct(
        agent_lookup("pm_agent_by_id", k_agent_by_id, std::string(agent_id), std::move(done)));
}

void postgres_store::find_agent_by_token(const std::array<unsigned char, 32>& token_hash,
                                         callback<const agent*> done) {
    run_direct(agent_lookup("pm_agent_by_token", k_agent_by_token, bytea_hex(token_hash),
                            std::move(done)));
}

void postgres_store::heartbeat(std::string_view agent_id, std::optional<agent_status> status,
                               time_point now, callback<heartbeat_outcome> done) {
    if (status == agent_status::offline) {
        return done(error{errc::bad_request, "status: must be online or draining"});
    }
    latest_now_ = std::max(latest_now_, now);
    std::string id(agent_id);
    const bool attached = attached_.contains(id);
    if (attached) {
        // The reaper cleared its attachment (this worker was taken for dead): attach again.
        done = [this, alive = alive_, id,
                done = std::move(done)](result<heartbeat_outcome> r) mutable {
            if (r && r->came_online && *alive && attached_.contains(id)) {
                set_attached(id, true);
            }
            done(std::move(r));
        };
    }
    if (options_.heartbeat_write_interval.count() > 0) {
        auto written = written_heartbeats_.find(id);
        // Attached: its liveness is this worker's, renewed without it (set_attached).
        if (!status && written != written_heartbeats_.end() &&
            (attached || now - written->second < options_.heartbeat_write_interval)) {
            time_point& latest = unwritten_heartbeats_[id];
            latest = std::max(latest, now);
            light_heartbeats_.push_back({std::move(id), status, now, std::move(done)});
            schedule_flush();
            return;
        }
        // Written now: later heartbeats within the interval take the light path.
        done = [this, alive = alive_, id, now,
                done = std::move(done)](result<heartbeat_outcome> r) mutable {
            if (r && *alive) {
                note_written(id, now);
            }
            done(std::move(r));
        };
    }
    heartbeats_.push_back({std::move(id), status, now, std::move(done)});
    schedule_flush();
}

void postgres_store::heartbeat_one(pending_heartbeat h) {
    param status_param;
    if (h.status) {
        status_param = std::string(to_string(*h.status));
    }
    op o;
    o.statements.push_back({"pm_heartbeat",
                            k_heartbeat,
                            {std::move(h.agent_id), std::move(status_param), micros(h.now),
                             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                agents_cfg_.lease_timeout)
                                                .count())}});
    auto cb = std::make_shared<callback<heartbeat_outcome>>(std::move(h.done));
    o.on_rows = [cb](std::span<pg::rows> r) {
        if (r[0].size() == 0) {
            return (*cb)(error{errc::not_found, "no such agent"});
        }
        answer_heartbeat(r[0], 0, *cb);
    };
    o.on_error = [cb](error e, const pg::failure*) { answer_error(cb, std::move(e)); };
    enqueue(std::move(o));
}

void postgres_store::release_one(std::string_view agent_id, time_point now, release_reason why,
                                 bool delete_agent, callback<std::vector<released_task>> done) {
    op o;
    const std::string id(agent_id);
    if (delete_agent) {
        o.statements.push_back({"pm_delete_agent", k_delete_agent, {id}});
    } else {
        o.statements.push_back({"pm_agent_exists", k_agent_exists, {id}});
    }
    o.statements.push_back({"pm_release_agent",
                            k_release_agent,
                            {id, micros(now), std::string(release_text(why)),
                             why == release_reason::deregistered ? "f" : "t"}});
    auto cb = std::make_shared<callback<std::vector<released_task>>>(std::move(done));
    o.on_rows = [this, cb, id, why, delete_agent](std::span<pg::rows> r) {
        const bool found = delete_agent ? to_int(r[0].get(0, 0)) > 0 : r[0].size() > 0;
        if (!found) {
            return (*cb)(error{errc::not_found, "no such agent"});
        }
        std::vector<released_task> out = read_released(r[1], id, why);
        for (const released_task& t : out) {
            if (t.status == task_status::pending && queued_tasks_) {
                ++*queued_tasks_;
            }
        }
        if (delete_agent) {
            prune_queues_ = true;
        }
        (*cb)(std::move(out));
    };
    o.on_error = [cb](error e, const pg::failure*) { answer_error(cb, std::move(e)); };
    enqueue(std::move(o));
}

void postgres_store::deregister_agent(std::string_view agent_id, time_point now,
                                      callback<std::vector<released_task>> done) {
    written_heartbeats_.erase(std::string(agent_id));
    unwritten_heartbeats_.erase(std::string(agent_id));
    attached_.erase(std::string(agent_id));
    release_one(agent_id, now, release_reason::deregistered, true, std::move(done));
}

void postgres_store::release_agent_tasks(std::string_view agent_id, time_point now,
                                         callback<std::vector<released_task>> done) {
    release_one(agent_id, now, release_reason::disconnected, false, std::move(done));
}

}  // namespace pm_agent::store::postgres

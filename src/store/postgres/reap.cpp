// The reaper on PostgreSQL, run by every worker: each statement takes only rows nobody else
// has locked (SKIP LOCKED), so reapers on several workers split the work instead of waiting.
// One reap is one transaction: silent agents, expired leases, task timeouts, due scheduled
// tasks, retention, and the queues with pending work (so idle consumers here can claim what
// another worker queued).
#include <utility>

#include "store/postgres/postgres_store.hpp"
#include "store/postgres/release_sql.hpp"
#include "store/postgres/sql.hpp"

namespace pm_agent::store::postgres {

namespace {

// $1 now, $2 heartbeat timeout ms, $3 message. Silent: an agent on no worker whose own
// heartbeat is older than the timeout, or one attached to a worker that has been silent as long
// (LATERAL: from pm_workers, a few rows, into pm_agents_attached_to; a join would let the
// planner scan every agent on each reap; likewise the update goes by primary key through an
// array, not a join the generic plan would make a scan).
constexpr const char* k_reap_offline =
    "WITH alone AS (SELECT id FROM pm_agents WHERE status <> 'offline' AND attached_to IS NULL "
    "AND last_heartbeat <= pm_ts($1) - $2 * interval '1 millisecond' FOR UPDATE SKIP LOCKED), "
    "orphaned AS (SELECT o.id FROM pm_workers w CROSS JOIN LATERAL (SELECT s.id FROM pm_agents "
    "s WHERE s.attached_to = w.name AND s.status <> 'offline' AND s.last_heartbeat <= pm_ts($1) "
    "- $2 * interval '1 millisecond' FOR UPDATE SKIP LOCKED) o WHERE w.last_seen <= pm_ts($1) - "
    "$2 * interval '1 millisecond'), "
    "off AS (UPDATE pm_agents a SET status = 'offline', attached_to = NULL WHERE a.id = ANY "
    "(ARRAY(SELECT id FROM alone UNION ALL SELECT id FROM orphaned)) RETURNING a.id), "
    "held AS (SELECT h.id, h.agent_id FROM pm_tasks h WHERE h.agent_id = ANY (ARRAY(SELECT id "
    "FROM off)) AND h.status IN ('assigned', 'running') FOR UPDATE SKIP LOCKED), " PM_RELEASE_CTES(
        "$1", "$3", "true") "SELECT 'o', off.id, NULL::text, NULL::text, NULL::text[], NULL::text "
                            "FROM off UNION ALL SELECT 'r', " PM_RELEASED_COLUMNS " FROM rel";

// $1 now, $2 message
constexpr const char* k_reap_leases =
    "WITH exp AS (SELECT id FROM pm_agents WHERE lease_expires_at <= pm_ts($1) FOR UPDATE SKIP "
    "LOCKED), "
    "held AS (SELECT h.id, h.agent_id FROM pm_tasks h WHERE h.agent_id = ANY (ARRAY(SELECT id "
    "FROM exp)) AND h.status IN ('assigned', 'running') FOR UPDATE SKIP LOCKED), " PM_RELEASE_CTES(
        "$1", "$2", "true") ", clr AS (UPDATE pm_agents a SET lease_expires_at = NULL WHERE a.id = "
                            "ANY (ARRAY(SELECT id FROM exp)) AND NOT EXISTS (SELECT 1 FROM "
                            "pm_tasks h WHERE h.agent_id = a.id AND h.status IN ('assigned', "
                            "'running') AND h.id NOT IN (SELECT id FROM held))) "
                            "SELECT " PM_RELEASED_COLUMNS " FROM rel";

// $1 now, $2 message
constexpr const char* k_reap_timeouts =
    "WITH held AS (SELECT id, agent_id FROM pm_tasks WHERE timeout_at <= pm_ts($1) AND status "
    "IN ('assigned', 'running') FOR UPDATE SKIP LOCKED), " PM_RELEASE_CTES(
        "$1", "$2", "true") "SELECT " PM_RELEASED_COLUMNS " FROM rel";

// $1 now. Bounded per reap so that one reap stays short; the next one continues.
constexpr const char* k_reap_due =
    "UPDATE pm_tasks t SET status = 'pending', ready_at = pm_ts($1), updated_at = pm_ts($1) "
    "WHERE t.id = ANY (ARRAY(SELECT id FROM pm_tasks WHERE status = 'scheduled' AND run_at <= "
    "pm_ts($1) ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED)) RETURNING t.queue, "
    "t.required_capabilities";

// $1 now, $2 retention ms. Oldest finish first along pm_tasks_finished, which holds finished
// tasks only: the walk ends at the first one still kept, whatever the backlog.
constexpr const char* k_reap_retention =
    "WITH d AS (DELETE FROM pm_tasks WHERE id = ANY (ARRAY(SELECT id FROM pm_tasks WHERE "
    "finished_at <= pm_ts($1) - $2 * interval '1 millisecond' ORDER BY finished_at LIMIT 1000 "
    "FOR UPDATE SKIP LOCKED)) RETURNING 1) SELECT count(*) FROM d";

// $1 now, $2 heartbeat timeout ms: rows of workers gone silent with no agent attached any more.
constexpr const char* k_prune_workers =
    "DELETE FROM pm_workers w WHERE w.last_seen <= pm_ts($1) - $2 * interval '1 millisecond' "
    "AND NOT EXISTS (SELECT 1 FROM pm_agents a WHERE a.attached_to = w.name)";

// One scan of each table (there is no index by queue: see schema.cpp); at most once a minute.
constexpr const char* k_prune_queues =
    "DELETE FROM pm_queues q WHERE q.name NOT IN (SELECT DISTINCT queue FROM pm_tasks) AND "
    "q.name NOT IN (SELECT DISTINCT unnest(queues) FROM pm_agents)";
constexpr std::chrono::seconds k_prune_every{60};

// The distinct queues of pending tasks, read from the tasks themselves (pm_queues is pruned by any
// worker) by a loose index scan of pm_tasks_claim: one index descent per queue.
constexpr const char* k_pending_queues =
    "WITH RECURSIVE q AS ((SELECT queue FROM pm_tasks WHERE status = 'pending' ORDER BY queue "
    "LIMIT 1) UNION ALL SELECT (SELECT t.queue FROM pm_tasks t WHERE t.status = 'pending' AND "
    "t.queue > q.queue ORDER BY t.queue LIMIT 1) FROM q WHERE q.queue IS NOT NULL) SELECT queue "
    "FROM q WHERE queue IS NOT NULL";

constexpr const char* k_count_queued = PM_COUNT_QUEUED_SQL;

/// The queued-task count is read again every this many reaps (about once a second).
constexpr int k_count_every = 5;

std::string ms_of(auto d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

}  // namespace

const char* reap_statement(std::string_view name) {
    constexpr std::pair<std::string_view, const char*> k_named[] = {
        {"offline", k_reap_offline}, {"leases", k_reap_leases},       {"timeouts", k_reap_timeouts},
        {"due", k_reap_due},         {"retention", k_reap_retention}, {"count", k_count_queued},
    };
    for (const auto& [n, sql] : k_named) {
        if (n == name) {
            return sql;
        }
    }
    return nullptr;
}

void postgres_store::reap(time_point now, callback<reap_outcome> done) {
    latest_now_ = std::max(latest_now_, now);
    renew_heartbeats(now);
    const bool too_soon = options_.poll_interval.count() > 0 && last_reap_ &&
                          now < *last_reap_ + options_.poll_interval;
    if (reaping_ || too_soon) {
        return done(reap_outcome{});
    }
    reaping_ = true;
    last_reap_ = now;
    const std::string at = micros(now);
    op o;
    // Unnamed, so planned on each run. A prepared statement keeps the generic plan it settled on
    // after five runs: made while pm_tasks is still small (a fresh database, before autovacuum
    // first analyzes it) that is a sequential scan, and it stays one while the table grows
    // (12 ms a reap at 20k tasks, on every worker). Planning them costs far less.
    auto add = [&o](const char* sql, std::vector<std::optional<std::string>> params) {
        o.statements.push_back({"", sql, std::move(params)});
    };
    add(k_reap_offline, {at, ms_of(agents_cfg_.heartbeat_timeout),
                         std::string(release_text(release_reason::agent_offline))});
    add(k_reap_leases, {at, std::string(release_text(release_reason::lease_expired))});
    add(k_reap_timeouts, {at, std::string(release_text(release_reason::timed_out))});
    add(k_reap_due, {at});
    add(k_reap_retention, {at, ms_of(queue_cfg_.retention)});
    const bool prune = prune_queues_ && (options_.poll_interval.count() == 0 || !last_prune_ ||
                                         now >= *last_prune_ + k_prune_every);
    if (prune) {
        last_prune_ = now;
        add(k_prune_queues, {});
    }
    add(k_prune_workers, {at, ms_of(agents_cfg_.heartbeat_timeout)});
    add(k_pending_queues, {});
    const bool count = ++reaps_since_count_ >= k_count_every || !queued_tasks_;
    if (count) {
        add(k_count_queued, {});
    }
    auto cb = std::make_shared<callback<reap_outcome>>(std::move(done));
    o.on_rows = [this, cb, prune, count](std::span<pg::rows> r) {
        reaping_ = false;
        reap_outcome out;
        std::size_t i = 0;
        const pg::rows& offline = r[i++];
        for (std::size_t row = 0; row < offline.size(); ++row) {
            if (offline.get(row, 0) == "o") {
                out.offline_agents.emplace_back(offline.get(row, 1));
            }
        }
        // Released rows of the offline statement come after its agents (UNION ALL order).
        for (released_task& t : read_released(offline, "", release_reason::agent_offline, 1)) {
            if (!t.queue.empty()) {
                out.released.push_back(std::move(t));
            }
        }
        for (auto why : {release_reason::lease_expired, release_reason::timed_out}) {
            for (released_task& t : read_released(r[i++], "", why)) {
                out.released.push_back(std::move(t));
            }
        }
        const pg::rows& due = r[i++];
        for (std::size_t row = 0; row < due.size(); ++row) {
            due_task d;
            d.queue = due.get(row, 0);
            parse_text_array(due.get(row, 1), d.required_capabilities);
            out.due.push_back(std::move(d));
        }
        out.deleted_tasks = static_cast<std::size_t>(to_int(r[i++].get(0, 0)));
        if (prune) {
            prune_queues_ = false;
            known_queues_.clear();
            ++i;
        }
        ++i;  // pm_prune_workers
        if (out.deleted_tasks > 0) {
            prune_queues_ = true;  // the next reap drops queues left with nothing
        }
        const pg::rows& pending = r[i++];
        for (std::size_t row = 0; row < pending.size(); ++row) {
            out.pending_queues.emplace_back(pending.get(row, 0));
        }
        if (count) {
            queued_tasks_ = to_int(r[i++].get(0, 0));
            reaps_since_count_ = 0;
        } else if (queued_tasks_) {
            for (const released_task& t : out.released) {
                if (t.status == task_status::pending) {
                    ++*queued_tasks_;
                }
            }
        }
        (*cb)(std::move(out));
    };
    o.on_error = [this, cb](error e, const pg::failure*) {
        reaping_ = false;
        (*cb)(std::move(e));
    };
    enqueue(std::move(o));
}

std::optional<time_point> postgres_store::next_due() const {
    // While a reap is in flight nothing more is due: answering its overdue time would make the
    // worker's timer fire at once, over and over, until the database answers.
    if (!last_reap_ || reaping_) {
        return std::nullopt;
    }
    return *last_reap_ + options_.poll_interval;
}

std::optional<std::string> postgres_store::unavailable_reason() const {
    if (db_.healthy()) {
        return std::nullopt;
    }
    return std::string("database unreachable");
}

}  // namespace pm_agent::store::postgres

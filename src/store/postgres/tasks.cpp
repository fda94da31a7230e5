// Claims and the holding agent's task operations on PostgreSQL. A claim picks pending tasks of
// the agent's queues with FOR UPDATE SKIP LOCKED (workers never wait on each other's claims),
// in priority then submission order, through the partial index of pending tasks per queue.
// Each lease operation is one conditional UPDATE whose answer also says why it changed nothing.
#include <unordered_map>

#include <boost/json/serialize.hpp>

#include "pm_agent/store/backoff.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/postgres/sql.hpp"

namespace pm_agent::store::postgres {

namespace {

// $1 agent, $2 most tasks, $3 now, $4 lease ms. The lateral subquery walks pm_tasks_claim for
// each of the agent's queues; the outer ORDER BY merges them. The answer is one row per claimed
// task, or one row of NULL task columns when it claimed none; every row ends with the claimer's
// status, max_concurrency and running count afterwards (no such agent: no row). One statement,
// where a second one reading the agent back cost a tenth of the claim.
constexpr const char* k_claim =
    "WITH a AS (SELECT s.*, GREATEST(0, LEAST($2::int, s.max_concurrency - s.held)) AS room FROM "
    "(SELECT ag.id, ag.queues, ag.capabilities, ag.status, ag.max_concurrency, (SELECT count(*) "
    "FROM pm_tasks h WHERE h.agent_id = ag.id AND h.status IN ('assigned', 'running'))::int AS "
    "held FROM pm_agents ag WHERE ag.id = $1 FOR UPDATE) s), "
    "pick AS (SELECT c.id, c.priority, c.seq FROM a CROSS JOIN LATERAL unnest(a.queues) AS "
    "q(name) CROSS JOIN LATERAL (SELECT t.id, t.priority, t.seq FROM pm_tasks t WHERE t.status = "
    "'pending' AND t.queue = q.name AND t.required_capabilities <@ a.capabilities ORDER BY "
    "t.priority DESC, t.seq LIMIT $2::int FOR UPDATE SKIP LOCKED) c WHERE a.status = 'online' "
    "AND a.room > 0 ORDER BY c.priority DESC, c.seq LIMIT (SELECT room FROM a)), "
    "upd AS (UPDATE pm_tasks t SET status = 'assigned', attempts = t.attempts + 1, attempt = "
    "t.attempt + 1, agent_id = $1, progress_value = NULL, progress_message = NULL, updated_at = "
    "pm_ts($3), timeout_at = CASE WHEN t.timeout_s > 0 THEN pm_ts($3) + t.timeout_s * interval "
    "'1 second' END FROM pick WHERE t.id = pick.id RETURNING t.*), "
    "lease AS (UPDATE pm_agents SET lease_expires_at = pm_ts($3) + $4 * interval '1 "
    "millisecond' WHERE id = $1 AND EXISTS (SELECT 1 FROM upd)) "
    "SELECT " PM_TASK_COLUMNS_LEASE("upd", "NULL::bigint") ", a.status, a.max_concurrency, "
    "a.held + (SELECT count(*) FROM upd) FROM a LEFT JOIN upd ON true ORDER BY upd.priority "
    "DESC, upd.seq";

// Every lease operation: `upd` is the conditional update of the task ($1) held by the agent
// ($2); the answer is one row, the task's columns when it changed, else its current status and
// holder (NULL when there is no such task).
#define PM_LEASE_TAIL \
    " SELECT " PM_TASK_COLUMNS("upd") ", cur.status, cur.agent_id FROM (SELECT 1) one "  \
                                      "LEFT JOIN upd ON true LEFT JOIN pm_tasks cur ON cur.id = $1"
#define PM_HELD_BY " WHERE t.id = $1 AND t.agent_id = $2 AND t.status IN ('assigned', 'running') "

constexpr const char* k_start =
    "WITH upd AS (UPDATE pm_tasks t SET status = 'running', updated_at = CASE WHEN t.status = "
    "'assigned' THEN pm_ts($3) ELSE t.updated_at END" PM_HELD_BY "RETURNING t.*)" PM_LEASE_TAIL;

// $4 value, $5 message, $6 lease ms
constexpr const char* k_progress =
    "WITH upd AS (UPDATE pm_tasks t SET status = 'running', progress_value = $4, "
    "progress_message = $5, updated_at = pm_ts($3)" PM_HELD_BY
    "RETURNING t.*), "
    "ren AS (UPDATE pm_agents SET lease_expires_at = pm_ts($3) + $6 * interval '1 millisecond' "
    "WHERE id = $2 AND EXISTS (SELECT 1 FROM upd))" PM_LEASE_TAIL;

// $4 result
constexpr const char* k_complete =
    "WITH upd AS (UPDATE pm_tasks t SET status = 'succeeded', result = $4::json, error = NULL, "
    "updated_at = pm_ts($3), finished_at = pm_ts($3), timeout_at = NULL" PM_HELD_BY
    "RETURNING t.*)" PM_LEASE_TAIL;

// $1 ids, $2 agents, $3 results, $4 times: every completion of one loop turn. (An extra
// `t.id = ANY ($1)` made the planner's choice slower end to end: measured, left out.)
constexpr const char* k_complete_many =
    "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS i(id, "
    "agent_id, result, now)), "
    "upd AS (UPDATE pm_tasks t SET status = 'succeeded', result = i.result::json, error = NULL, "
    "updated_at = pm_ts(i.now), finished_at = pm_ts(i.now), timeout_at = NULL FROM i WHERE "
    "t.id = i.id AND t.agent_id = i.agent_id AND t.status IN "
    "('assigned', 'running') RETURNING t.*) "
    "SELECT " PM_TASK_COLUMNS("upd") " FROM upd";

// $4 error, $5 retryable, $6 back-off in ms by attempts so far (the last entry repeats).
#define PM_RETRY "($5::boolean AND t.attempts < t.max_attempts)"
constexpr const char* k_fail =
    "WITH upd AS (UPDATE pm_tasks t SET status = CASE WHEN " PM_RETRY
    " THEN 'scheduled' ELSE 'dead' END, agent_id = CASE WHEN " PM_RETRY
    " THEN NULL ELSE t.agent_id END, run_at = CASE WHEN " PM_RETRY
    " THEN pm_ts($3) + ($6::bigint[])[LEAST(t.attempts, cardinality($6::bigint[]))] * interval "
    "'1 millisecond' ELSE t.run_at END, error = $4, updated_at = pm_ts($3), timeout_at = NULL, "
    "finished_at = CASE WHEN " PM_RETRY " THEN NULL ELSE pm_ts($3) END" PM_HELD_BY
    "RETURNING t.*)" PM_LEASE_TAIL;

// $1 task, $2 now
constexpr const char* k_cancel =
    "WITH cur AS (SELECT id, status, agent_id FROM pm_tasks WHERE id = $1 FOR UPDATE), "
    "upd AS (UPDATE pm_tasks t SET status = 'cancelled', updated_at = pm_ts($2), finished_at = "
    "pm_ts($2), timeout_at = NULL FROM cur WHERE t.id = cur.id AND cur.status NOT IN "
    "('succeeded', 'failed', 'dead', 'cancelled') RETURNING t.*, cur.status AS old_status), "
    "note AS (INSERT INTO pm_agent_notices (agent_id, task_id) SELECT agent_id, id FROM upd "
    "WHERE old_status IN ('assigned', 'running') ON CONFLICT DO NOTHING) "
    "SELECT " PM_TASK_COLUMNS("upd") ", upd.old_status, cur.status FROM (SELECT 1) one LEFT "
                                     "JOIN cur ON true LEFT JOIN upd ON true";

// $1 task, $2 now: dead or cancelled -> pending as if new (the fencing `attempt` stays).
constexpr const char* k_retry =
    "WITH cur AS (SELECT id, status FROM pm_tasks WHERE id = $1 FOR UPDATE), "
    "upd AS (UPDATE pm_tasks t SET status = 'pending', attempts = 0, agent_id = NULL, result = "
    "NULL, error = NULL, progress_value = NULL, progress_message = NULL, run_at = NULL, ready_at "
    "= pm_ts($2), updated_at = pm_ts($2), finished_at = NULL, timeout_at = NULL FROM cur WHERE "
    "t.id = cur.id AND cur.status IN ('dead', 'cancelled') RETURNING t.*) "
    "SELECT " PM_TASK_COLUMNS("upd") ", cur.status FROM (SELECT 1) one LEFT JOIN cur ON true "
                                     "LEFT JOIN upd ON true";

constexpr const char* k_get_task =
    "SELECT " PM_TASK_COLUMNS("t") " FROM pm_tasks t WHERE t.id = $1";

std::string ms(std::chrono::milliseconds d) {
    return std::to_string(d.count());
}

/// The back-off of every attempt count up to where retry_max caps it, for k_fail.
std::string backoff_table(const config::queue_config& q, double jitter) {
    array_builder b;
    std::chrono::milliseconds last{-1};
    for (int attempts = 1; attempts <= 64; ++attempts) {
        const auto d = retry_delay(q, attempts, jitter);
        const auto ceiling = retry_delay(q, attempts, 1.0);
        b.add_int(d.count());
        if (ceiling == last) {
            break;  // capped: the last entry stands for every later attempt
        }
        last = ceiling;
    }
    return b.take();
}

/// Why a lease operation changed nothing, from the task's current status and holder.
error lease_refusal(const pg::rows& r) {
    constexpr int status_col = PM_TASK_COLUMN_COUNT;
    if (r.is_null(0, status_col)) {
        return error{errc::not_found, "no such task"};
    }
    const auto status = parse_task_status(r.get(0, status_col)).value_or(task_status::pending);
    if (is_held(status)) {
        return error{errc::conflict, "task is held by another agent (or its lease ended)"};
    }
    std::string msg = "task is ";
    msg += to_string(status);
    msg += ", not held by this agent";
    return error{errc::conflict, std::move(msg)};
}

}  // namespace

const char* claim_statement() {
    return k_claim;
}

const char* complete_many_statement() {
    return k_complete_many;
}

void postgres_store::claim(std::string_view agent_id, std::size_t max, time_point now,
                           callback<claim_outcome> done) {
    op o;
    o.statements.push_back(
        {"pm_claim",
         k_claim,
         {std::string(agent_id), std::to_string(std::min(max, k_claim_limit)), micros(now),
          ms(agents_cfg_.lease_timeout)}});
    const time_point lease_until = now + agents_cfg_.lease_timeout;
    auto cb = std::make_shared<callback<claim_outcome>>(std::move(done));
    o.on_rows = [this, cb, lease_until, id = std::string(agent_id)](std::span<pg::rows> r) {
        const pg::rows& rows = r[0];
        if (rows.size() == 0) {
            return (*cb)(error{errc::not_found, "no such agent"});
        }
        constexpr int status_col = PM_TASK_COLUMN_COUNT;
        agent claimer;
        claimer.id = id;
        claimer.status =
            parse_agent_status(rows.get(0, status_col)).value_or(agent_status::offline);
        claimer.max_concurrency = static_cast<std::uint32_t>(to_int(rows.get(0, status_col + 1)));
        claimer.running = static_cast<std::uint32_t>(to_int(rows.get(0, status_col + 2)));
        std::vector<task> tasks;
        if (!rows.is_null(0, 0)) {
            tasks.reserve(rows.size());
            for (std::size_t i = 0; i < rows.size(); ++i) {
                tasks.push_back(read_task(rows, i));
                tasks.back().lease_expires_at = lease_until;
            }
        }
        if (queued_tasks_) {
            *queued_tasks_ -= static_cast<std::int64_t>(tasks.size());
        }
        std::vector<const task*> ptrs;
        ptrs.reserve(tasks.size());
        for (const task& t : tasks) {
            ptrs.push_back(&t);
        }
        (*cb)(claim_outcome{std::span<const task* const>(ptrs), &claimer});
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    enqueue(std::move(o));
}

void postgres_store::lease_op(const char* name, const char* sql, std::vector<param> params,
                              std::optional<time_point> lease_until, callback<const task*> done) {
    op o;
    o.statements.push_back({name, sql, std::move(params)});
    auto cb = std::make_shared<callback<const task*>>(std::move(done));
    o.on_rows = [cb, lease_until](std::span<pg::rows> r) {
        if (r[0].size() == 0 || r[0].is_null(0, 0)) {
            return (*cb)(r[0].size() == 0 ? error{errc::internal, "no answer"}
                                          : lease_refusal(r[0]));
        }
        task t = read_task(r[0], 0);
        if (lease_until) {
            t.lease_expires_at = lease_until;  // renewed by this statement
        }
        (*cb)(&t);
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    enqueue(std::move(o));
}

void postgres_store::start(lease_ref lease, time_point now, callback<const task*> done) {
    lease_op("pm_start", k_start,
             {std::string(lease.task_id), std::string(lease.agent_id), micros(now)}, std::nullopt,
             std::move(done));
}

void postgres_store::progress(lease_ref lease, task_progress value, time_point now,
                              callback<const task*> done) {
    char number[32];
    const int len = std::snprintf(number, sizeof(number), "%.17g", value.value);
    lease_op("pm_progress", k_progress,
             {std::string(lease.task_id), std::string(lease.agent_id), micros(now),
              std::string(number, static_cast<std::size_t>(len)), std::move(value.message),
              ms(agents_cfg_.lease_timeout)},
             now + agents_cfg_.lease_timeout, std::move(done));
}

void postgres_store::complete(lease_ref lease, boost::json::value result, time_point now,
                              callback<const task*> done) {
    completes_.push_back({std::string(lease.task_id), std::string(lease.agent_id),
                          boost::json::serialize(result), now, std::move(done)});
    schedule_flush();
}

void postgres_store::complete_one(pending_complete c) {
    lease_op("pm_complete", k_complete,
             {std::move(c.task_id), std::move(c.agent_id), micros(c.now), std::move(c.result)},
             std::nullopt, std::move(c.done));
}

void postgres_store::complete_joined(std::vector<pending_complete> group) {
    if (group.size() == 1) {
        return complete_one(std::move(group.front()));
    }
    array_builder ids, agents, results, times;
    for (const pending_complete& c : group) {
        ids.add(c.task_id);
        agents.add(c.agent_id);
        results.add(c.result);
        times.add(micros(c.now));
    }
    op o;
    o.statements.push_back({"pm_complete_many",
                            k_complete_many,
                            {ids.take(), agents.take(), results.take(), times.take()}});
    auto shared = std::make_shared<std::vector<pending_complete>>(std::move(group));
    o.on_rows = [this, shared](std::span<pg::rows> r) {
        // By task id; the row names its holder, so a stale holder's completion of the same task
        // in this batch is not mistaken for the one that succeeded.
        std::unordered_map<std::string_view, std::size_t> changed;
        for (std::size_t i = 0; i < r[0].size(); ++i) {
            changed.emplace(r[0].get(i, 0), i);
        }
        for (pending_complete& c : *shared) {
            auto it = changed.find(c.task_id);
            if (it == changed.end() || r[0].get(it->second, 11) != c.agent_id) {
                complete_one(std::move(c));  // the single statement explains the refusal
                continue;
            }
            const task t = read_task(r[0], it->second);
            changed.erase(it);  // the same task a second time is a conflict
            c.done(&t);
        }
    };
    o.on_error = [this, shared](error e, const pg::failure* f) {
        for (pending_complete& c : *shared) {
            if (f != nullptr) {
                complete_one(std::move(c));
            } else {
                c.done(e);
            }
        }
    };
    queued_.push_front(std::move(o));
}

void postgres_store::fail(lease_ref lease, std::string error_text, bool retryable, double jitter,
                          time_point now, callback<const task*> done) {
    const std::string task_id(lease.task_id);
    auto counted = [this, cb = std::move(done)](result<const task*> r) mutable {
        if (r && (*r)->status == task_status::scheduled && queued_tasks_) {
            ++*queued_tasks_;
        }
        cb(std::move(r));
    };
    lease_op("pm_fail", k_fail,
             {task_id, std::string(lease.agent_id), micros(now), std::move(error_text),
              retryable ? "true" : "false", backoff_table(queue_cfg_, jitter)},
             std::nullopt, std::move(counted));
}

void postgres_store::cancel(std::string_view task_id, time_point now,
                            callback<cancel_outcome> done) {
    op o;
    o.statements.push_back({"pm_cancel", k_cancel, {std::string(task_id), micros(now)}});
    auto cb = std::make_shared<callback<cancel_outcome>>(std::move(done));
    o.on_rows = [this, cb](std::span<pg::rows> r) {
        constexpr int old_col = PM_TASK_COLUMN_COUNT;
        const pg::rows& rows = r[0];
        if (rows.is_null(0, 0)) {
            if (rows.is_null(0, old_col + 1)) {
                return (*cb)(error{errc::not_found, "no such task"});
            }
            std::string msg = "task is already ";
            msg += rows.get(0, old_col + 1);
            return (*cb)(error{errc::conflict, std::move(msg)});
        }
        const task t = read_task(rows, 0);
        const auto old = parse_task_status(rows.get(0, old_col)).value_or(task_status::pending);
        if ((old == task_status::pending || old == task_status::scheduled) && queued_tasks_) {
            --*queued_tasks_;
        }
        (*cb)(cancel_outcome{&t, is_held(old)});
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    enqueue(std::move(o));
}

void postgres_store::retry(std::string_view task_id, time_point now, callback<const task*> done) {
    op o;
    o.statements.push_back({"pm_retry", k_retry, {std::string(task_id), micros(now)}});
    auto cb = std::make_shared<callback<const task*>>(std::move(done));
    o.on_rows = [this, cb](std::span<pg::rows> r) {
        const pg::rows& rows = r[0];
        if (rows.is_null(0, 0)) {
            if (rows.is_null(0, PM_TASK_COLUMN_COUNT)) {
                return (*cb)(error{errc::not_found, "no such task"});
            }
            std::string msg = "task is ";
            msg += rows.get(0, PM_TASK_COLUMN_COUNT);
            msg += ": only dead or cancelled tasks are retried";
            return (*cb)(error{errc::conflict, std::move(msg)});
        }
        if (queued_tasks_) {
            ++*queued_tasks_;
        }
        const task t = read_task(rows, 0);
        (*cb)(&t);
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    enqueue(std::move(o));
}

void postgres_store::get_task(std::string_view task_id, callback<const task*> done) {
    op o;
    o.statements.push_back({"pm_get_task", k_get_task, {std::string(task_id)}});
    auto cb = std::make_shared<callback<const task*>>(std::move(done));
    o.on_rows = [cb](std::span<pg::rows> r) {
        if (r[0].size() == 0) {
            return (*cb)(error{errc::not_found, "no such task"});
        }
        const task t = read_task(r[0], 0);
        (*cb)(&t);
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    run_direct(std::move(o));
}

}  // namespace pm_agent::store::postgres

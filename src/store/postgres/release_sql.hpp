#pragma once
// Private to src/store/postgres: ending leases without an outcome (an agent deregistered, cut
// off, silent, or a lease or task timeout). Every such statement defines a CTE `held` (id,
// agent_id) of the tasks to take back, then PM_RELEASE_CTES puts each back to pending, or dead
// when it has no attempts left, and leaves the former holder a cancel notice.

#include <string>
#include <vector>

#include "pm_agent/pg/pool.hpp"
#include "pm_agent/store/store.hpp"
#include "store/postgres/pg_codec.hpp"

#define PM_NO_ATTEMPTS_LEFT "t.attempts >= t.max_attempts"
// `now` and `msg` are parameter references ("$2"); `notify` a boolean SQL expression.
#define PM_RELEASE_CTES(now, msg, notify)                                                       \
    "upd_rel AS (UPDATE pm_tasks t SET status = CASE WHEN " PM_NO_ATTEMPTS_LEFT                 \
    " THEN 'dead' ELSE 'pending' END, agent_id = CASE WHEN " PM_NO_ATTEMPTS_LEFT                \
    " THEN t.agent_id END, error = " msg " || CASE WHEN " PM_NO_ATTEMPTS_LEFT                   \
    " THEN '; no attempts left' ELSE '' END, updated_at = pm_ts(" now                           \
    "), ready_at = CASE WHEN " PM_NO_ATTEMPTS_LEFT " THEN t.ready_at ELSE pm_ts(" now           \
    ") END, finished_at = CASE WHEN " PM_NO_ATTEMPTS_LEFT " THEN pm_ts(" now                    \
    ") END, timeout_at = NULL WHERE t.id = ANY (ARRAY(SELECT id FROM held)) AND t.status IN "   \
    "('assigned', 'running') RETURNING t.id, t.queue, t.required_capabilities, t.status), "     \
    "rel AS (SELECT r.id, h.agent_id, r.queue, r.required_capabilities, r.status FROM upd_rel " \
    "r JOIN held h ON h.id = r.id), "                                                           \
    "note AS (INSERT INTO pm_agent_notices (agent_id, task_id) SELECT agent_id, id FROM rel "   \
    "WHERE " notify " ON CONFLICT DO NOTHING) "
#define PM_RELEASED_COLUMNS "rel.id, rel.agent_id, rel.queue, rel.required_capabilities, rel.status"

// $1 agent, $2 now, $3 message, $4 leave notices (boolean)
#define PM_RELEASE_AGENT_SQL                                                             \
    "WITH held AS (SELECT id, agent_id FROM pm_tasks WHERE agent_id = $1 AND status IN " \
    "('assigned', 'running') FOR UPDATE), " PM_RELEASE_CTES(                             \
        "$2", "$3", "$4::boolean") "SELECT " PM_RELEASED_COLUMNS " FROM rel"

namespace pm_agent::store::postgres {

/// Rows of PM_RELEASED_COLUMNS starting at `first`.
inline std::vector<released_task> read_released(const pg::rows& r, std::string_view agent_id,
                                                release_reason why, int first = 0) {
    std::vector<released_task> out;
    out.reserve(r.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
        released_task t;
        t.task_id = r.get(i, first);
        t.agent_id = agent_id.empty() ? std::string(r.get(i, first + 1)) : std::string(agent_id);
        t.queue = r.get(i, first + 2);
        parse_text_array(r.get(i, first + 3), t.required_capabilities);
        t.status = parse_task_status(r.get(i, first + 4)).value_or(task_status::pending);
        t.reason = why;
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace pm_agent::store::postgres

#pragma once
// Private to src/store/postgres: the column lists every statement that answers with a task or
// an agent returns, so one decoder (pg_codec.cpp) reads them all. Macros, so that statements
// stay single string literals with static storage (pg::statement keeps a view of them).

// 0 id, 1 queue, 2 type, 3 payload, 4 priority, 5 status, 6 attempts, 7 max_attempts,
// 8 required_capabilities, 9 timeout_s, 10 idempotency_key, 11 agent_id, 12 result, 13 error,
// 14 progress_value, 15 progress_message, 16 run_at, 17 created_at, 18 updated_at,
// 19 lease_expires_at, 20 attempt, 21 seq, 22 ready_at
// `lease` is the SQL of column 19: PM_TASK_COLUMNS reads the holder's lease; a statement that
// has just set the lease itself (a claim) passes NULL and the caller fills it in.
#define PM_TASK_COLUMNS_LEASE(t, lease)                                                       \
    t ".id, " t ".queue, " t ".type, " t ".payload, " t ".priority, " t ".status, " t         \
      ".attempts, " t ".max_attempts, " t ".required_capabilities, " t ".timeout_s, " t       \
      ".idempotency_key, " t ".agent_id, " t ".result, " t ".error, " t ".progress_value, " t \
      ".progress_message, pm_us(" t ".run_at), pm_us(" t ".created_at), pm_us(" t             \
      ".updated_at), " lease ", " t ".attempt, " t ".seq, pm_us(" t ".ready_at)"
#define PM_TASK_COLUMNS(t)                                                                \
    PM_TASK_COLUMNS_LEASE(t, "CASE WHEN " t                                               \
                             ".status IN ('assigned', 'running') THEN (SELECT "           \
                             "pm_us(l.lease_expires_at) FROM pm_agents l WHERE l.id = " t \
                             ".agent_id) END")
#define PM_TASK_COLUMN_COUNT 23

// 0 id, 1 name, 2 queues, 3 capabilities, 4 labels, 5 max_concurrency, 6 status, 7 running,
// 8 last_heartbeat, 9 registered_at, 10 lease_expires_at, 11 worker, 12 token_hash, 13 seq
#define PM_AGENT_COLUMNS(a)                                                                        \
    a ".id, " a ".name, " a ".queues, " a ".capabilities, " a ".labels, " a ".max_concurrency, " a \
      ".status, (SELECT count(*) FROM pm_tasks h WHERE h.agent_id = " a                            \
      ".id AND h.status IN ('assigned', 'running')), pm_us(GREATEST(" a                            \
      ".last_heartbeat, (SELECT "                                                                  \
      "w.last_seen FROM pm_workers w WHERE w.name = " a ".attached_to))), pm_us(" a                \
      ".registered_at), pm_us(" a ".lease_expires_at), " a ".worker, " a ".token_hash, " a ".seq"
#define PM_AGENT_COLUMN_COUNT 14

// Pending plus scheduled tasks, the bound of queue.task_queue_size: each status through its own
// partial index, so the count costs the queued tasks, never the finished ones kept for
// retention. Named in the submit path and the reaper alike.
#define PM_COUNT_QUEUED_SQL                                                                    \
    "SELECT (SELECT count(*) FROM pm_tasks WHERE status = 'pending') + (SELECT count(*) FROM " \
    "pm_tasks WHERE status = 'scheduled')"

-- The SQL floor of one group-commit cycle (pgbench script, -D batch=N): insert N tasks, claim
-- N with FOR UPDATE SKIP LOCKED in priority/age order through pm_tasks_claim, complete them, in
-- one transaction, as the server does with the operations of one loop turn.
BEGIN;
INSERT INTO pm_tasks (id, queue, type, payload, priority, status, max_attempts,
    required_capabilities, timeout_s, created_at, updated_at, ready_at)
SELECT 't_' || gen_random_uuid(), 'default', 'noop', '{"n":1}', 0, 'pending', 3, '{}', 0,
    now(), now(), now()
FROM generate_series(1, :batch);
WITH pick AS (SELECT id FROM pm_tasks WHERE status = 'pending' AND queue = 'default'
                ORDER BY priority DESC, seq LIMIT :batch FOR UPDATE SKIP LOCKED)
UPDATE pm_tasks t SET status = 'assigned', attempts = t.attempts + 1, attempt = t.attempt + 1,
    agent_id = 'a_floor' || :client_id, updated_at = now()
FROM pick WHERE t.id = pick.id;
UPDATE pm_tasks SET status = 'succeeded', result = '{"ok":true}', updated_at = now(),
    finished_at = now()
WHERE agent_id = 'a_floor' || :client_id AND status = 'assigned';
COMMIT;

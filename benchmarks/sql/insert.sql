-- The SQL floor of batch submission (pgbench script, -D batch=N): one multi-row INSERT of N
-- tasks per transaction.
INSERT INTO pm_tasks (id, queue, type, payload, priority, status, max_attempts,
    required_capabilities, timeout_s, created_at, updated_at, ready_at)
SELECT 't_' || gen_random_uuid(), 'default', 'noop', '{"n":1}', 0, 'pending', 3, '{}', 0,
    now(), now(), now()
FROM generate_series(1, :batch);

// The PostgreSQL schema as versioned migrations. A migration is applied once, in order, inside
// one transaction with its version recorded in pm_schema_migrations; never edit a released
// migration, add the next one.
//
// Indexes follow the queries (see README "PostgreSQL store"): the claim walks the partial index
// of pending tasks in (queue, priority desc, seq) order; every deadline the reaper looks for has
// a partial index holding only the rows that can be due.
#include "store/postgres/schema.hpp"

namespace pm_agent::store::postgres {

namespace {

// Times are timestamptz; the server passes and reads them as integer microseconds since the
// Unix epoch through these two helpers, so no time text is formatted or parsed. They are STABLE
// like the operators in their bodies: the planner inlines a SQL function only when its declared
// volatility is no stricter than its body's (an IMMUTABLE label here made every call a function
// call, about 50 us each).
constexpr std::string_view k_v1 = R"sql(
CREATE FUNCTION pm_ts(us bigint) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN 'epoch'::timestamptz + us * interval '1 microsecond';
CREATE FUNCTION pm_us(t timestamptz) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (extract(epoch FROM t) * 1000000)::bigint;

-- Raised inside a submit statement: the whole transaction rolls back, so a batch stays all or
-- nothing. The message carries the index of the offending task.
CREATE FUNCTION pm_raise(code text, detail text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = detail;
END
$$;

CREATE TABLE pm_agents (
    id               text PRIMARY KEY,
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    name             text NOT NULL,
    queues           text[] NOT NULL,
    capabilities     text[] NOT NULL,
    labels           jsonb NOT NULL,
    max_concurrency  integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('online', 'offline', 'draining')),
    last_heartbeat   timestamptz NOT NULL,
    registered_at    timestamptz NOT NULL,
    -- One lease per agent covers every task it holds: renewing it is one row write.
    lease_expires_at timestamptz,
    worker           text NOT NULL,
    token_hash       bytea NOT NULL
);
CREATE INDEX pm_agents_last_heartbeat ON pm_agents (last_heartbeat) WHERE status <> 'offline';
CREATE INDEX pm_agents_lease ON pm_agents (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX pm_agents_token_hash ON pm_agents (token_hash);

CREATE TABLE pm_tasks (
    id                    text PRIMARY KEY,
    seq                   bigint GENERATED ALWAYS AS IDENTITY,
    queue                 text NOT NULL,
    type                  text NOT NULL,
    payload               json NOT NULL,
    priority              integer NOT NULL,
    status                text NOT NULL CHECK (status IN ('pending', 'scheduled', 'assigned',
                              'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempts              integer NOT NULL DEFAULT 0,
    attempt               integer NOT NULL DEFAULT 0,
    max_attempts          integer NOT NULL,
    required_capabilities text[] NOT NULL,
    timeout_s             integer NOT NULL,
    idempotency_key       text,
    -- As submitted, to tell an idempotent repeat from a conflicting reuse of its key.
    requested_delay_ms    bigint,
    requested_run_at      timestamptz,
    agent_id              text,
    result                json,
    error                 text,
    progress_value        double precision,
    progress_message      text,
    run_at                timestamptz,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    ready_at              timestamptz NOT NULL,
    timeout_at            timestamptz,
    finished_at           timestamptz
);
-- A work queue churns: every task is inserted, updated twice and deleted. Vacuum it often so
-- dead index entries at the head of pm_tasks_claim (the tasks claimed last) do not pile up
-- in front of every claim.
ALTER TABLE pm_tasks SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02);
CREATE UNIQUE INDEX pm_tasks_idempotency_key ON pm_tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX pm_tasks_claim ON pm_tasks (queue, priority DESC, seq) WHERE status = 'pending';
CREATE INDEX pm_tasks_assigned_agent_status ON pm_tasks (agent_id, status)
    WHERE status IN ('assigned', 'running');
-- Listings (newest first) and retention (oldest first) walk seq. Every index on pm_tasks is
-- paid on each of a task's three writes (no update can be HOT: status is indexed), so there is
-- no index for what only admin queries need (counts by queue and status scan the table).
CREATE INDEX pm_tasks_seq ON pm_tasks (seq);
CREATE INDEX pm_tasks_scheduled ON pm_tasks (run_at) WHERE status = 'scheduled';
CREATE INDEX pm_tasks_timeout ON pm_tasks (timeout_at) WHERE timeout_at IS NOT NULL;

-- Tasks taken from an agent (cancelled, timed out, released) that it must be told to stop.
CREATE TABLE pm_agent_notices (
    seq      bigint GENERATED ALWAYS AS IDENTITY,
    agent_id text NOT NULL,
    task_id  text NOT NULL,
    PRIMARY KEY (agent_id, task_id)
);

-- Queue names in use (by a task or an agent), so stats and depths need no scan of all tasks.
CREATE TABLE pm_queues (
    name text PRIMARY KEY
);
)sql";

// Agents on a WebSocket live on their worker's liveness (store::set_attached): each worker
// renews its own row once per heartbeat write interval, and an idle attached agent's row is
// written only when it attaches and detaches (one holding tasks still has its lease renewed).
// The silence index leaves attached agents out, so an idle fleet costs the reaper nothing;
// agents of a worker gone silent are found through pm_agents_attached_to.
constexpr std::string_view k_v2 = R"sql(
CREATE TABLE pm_workers (
    name      text PRIMARY KEY,
    last_seen timestamptz NOT NULL
);
ALTER TABLE pm_agents ADD COLUMN attached_to text;
DROP INDEX pm_agents_last_heartbeat;
CREATE INDEX pm_agents_last_heartbeat ON pm_agents (last_heartbeat)
    WHERE status <> 'offline' AND attached_to IS NULL;
CREATE INDEX pm_agents_attached_to ON pm_agents (attached_to) WHERE attached_to IS NOT NULL;
)sql";

// Retention walked pm_tasks_seq from the oldest task, so with nothing yet due every reap read
// the whole table (every pending and every young finished task). It goes by finish time now
// and stops at the first task still kept; the index is paid once per task, at its finish.
constexpr std::string_view k_v3 = R"sql(
CREATE INDEX pm_tasks_finished ON pm_tasks (finished_at) WHERE finished_at IS NOT NULL;
)sql";

constexpr migration k_migrations[] = {
    {1, "initial schema", k_v1},
    {2, "agents attached to a worker", k_v2},
    {3, "retention by finish time", k_v3},
};

}  // namespace

std::span<const migration> migrations() {
    return k_migrations;
}

}  // namespace pm_agent::store::postgres

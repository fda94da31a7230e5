#!/usr/bin/env bash
# PostgreSQL benchmarks (durable: fsync and synchronous_commit on), each against the SQL floor
# measured in the same run on the same throwaway cluster:
#   e2e    64 submitters (one task per request) -> 4 WebSocket agents x 64 slots -> complete,
#          closed loop, as `run.sh e2e`; floor: pgbench of benchmarks/sql/cycle.sql at the
#          tasks per group-commit transaction the server itself reached in that round.
#   batch  4 submitters posting 1000-task batches, no agents; floor: benchmarks/sql/insert.sql
#          at 1000 rows per transaction with 4 clients.
# Rounds alternate server and floor. Appends one entry to benchmark_results.json.
# Usage: benchmarks/pg.sh BUILD_DIR   (PM_AGENT_BENCH_ROUNDS, PM_AGENT_BENCH_SECONDS)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
out=${PM_AGENT_BENCH_OUT:-benchmark_results.json}
rounds=${PM_AGENT_BENCH_ROUNDS:-3}
seconds=${PM_AGENT_BENCH_SECONDS:-8}
python=/usr/bin/python3
bench="$dir/benchmarks/pm-agent-bench"
engine="$dir/pm-agent-server"
bindir=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

work=$(mktemp -d)
chmod 755 "$work"  # the cluster inside runs as an unprivileged user when we are root
cluster="$work/pg"
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  scripts/pg_cluster.sh stop "$cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
url=$(scripts/pg_cluster.sh start "$cluster")
base=${url%/postgres}

fresh_db() {  # name: a new empty database with the schema; prints its URL
  "$bindir/psql" -q "$url" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" 2>/dev/null
  DATABASE_URL="$base/$1" "$engine" migrate >/dev/null 2>&1
  echo "$base/$1"
}

cat >"$work/engine.json" <<JSON
{
  "queue": {"task_queue_size": 100000000, "retention_s": 60},
  "agents": {"outbound_queue_max": 1000000},
  "rate_limit": {"submit_per_s": 1e9, "submit_burst": 1e9, "agent_per_s": 1e9, "agent_burst": 1e9}
}
JSON

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

server_run() {  # label db_url bench-args...: one bench run; appends to runs.json
  local label=$1 db=$2
  shift 2
  port=$(free_port)
  DATABASE_URL=$db LOG_LEVEL=warn "$engine" serve --port "$port" --config "$work/engine.json" \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.05
  done
  "$bench" --url "http://127.0.0.1:$port" --server-pid "$server_pid" --label "$label" \
    --out "$work/runs.json" --duration "$seconds" --drain 10 "$@" | sed 's/^/    /' || true
  curl -s "http://127.0.0.1:$port/metrics" | awk '/^pm_agent_db_transactions_total\{outcome="committed"\}/ {print $2}' \
    >"$work/$label.transactions"
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

floor_run() {  # label db_url script batch clients: pgbench; prints tasks/s
  local label=$1 db=$2 script=$3 batch=$4 clients=$5
  local tps
  tps=$("$bindir/pgbench" -n -c "$clients" -j 1 -T "$seconds" -D batch="$batch" \
    -f "$script" "$db" 2>/dev/null | awk '/^tps = / {print $3}')
  "$python" -c "print(round(float('$tps') * $batch, 1))" | tee "$work/$label.floor"
}

e2e_client=(--agents 4 --concurrency 64 --submitters 64 --max-outstanding 1024 --mode ws)
batch_client=(--agents 0 --submitters 4 --batch 1000)
for ((round = 1; round <= rounds; round++)); do
  echo "round $round/$rounds: e2e server"
  server_run "e2e-$round" "$(fresh_db bench_e2e)" "${e2e_client[@]}"
  # Tasks per transaction the server reached: every task was submitted, claimed and completed.
  per_tx=$("$python" - "$work/runs.json" "$work/e2e-$round.transactions" <<'PY'
import json, sys
run = [r for r in json.load(open(sys.argv[1])) if r["scenario"].startswith("e2e-")][-1]
tx = float(open(sys.argv[2]).read().strip() or 0)
print(max(1, round(run["tasks_completed"] / tx)) if tx else 1)
PY
)
  echo "round $round/$rounds: e2e SQL floor at $per_tx tasks per transaction"
  echo "    floor: $(floor_run "e2e-$round" "$(fresh_db floor_e2e)" benchmarks/sql/cycle.sql "$per_tx" 1) tasks/s"
  echo "$per_tx" >"$work/e2e-$round.batch"
  echo "round $round/$rounds: batch submit server"
  server_run "batch-$round" "$(fresh_db bench_batch)" "${batch_client[@]}"
  echo "round $round/$rounds: batch submit SQL floor"
  echo "    floor: $(floor_run "batch-$round" "$(fresh_db floor_batch)" benchmarks/sql/insert.sql 1000 4) tasks/s"
done

"$python" - "$out" "$work" "$rounds" "${e2e_client[*]}" "${batch_client[*]}" <<'PY'
import datetime, json, os, platform, statistics, sys
out, work, rounds, e2e_client, batch_client = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
runs = {r["scenario"]: r for r in json.load(open(os.path.join(work, "runs.json")))}
def read(name):
    return float(open(os.path.join(work, name)).read().strip() or 0)
def side(kind, figure):
    return [figure(kind, i) for i in range(1, rounds + 1)]
server = lambda kind, i: runs[f"{kind}-{i}"]["throughput_per_s"] if kind == "e2e" else runs[f"{kind}-{i}"]["submit_rate_per_s"]
floor = lambda kind, i: read(f"{kind}-{i}.floor")
result = {"scenario": "postgres_vs_sql_floor",
          "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "machine": f"{platform.machine()} {os.cpu_count()} cores",
          "durability": "fsync on, synchronous_commit on", "store": "postgres"}
for kind, client in (("e2e", e2e_client), ("batch", batch_client)):
    s, f = side(kind, server), side(kind, floor)
    entry = {"client": "pm-agent-bench " + client, "server_tasks_per_s": s, "floor_tasks_per_s": f,
             "server_median": statistics.median(s), "floor_median": statistics.median(f),
             "ratio_server_vs_floor": round(statistics.median(s) / statistics.median(f), 3)
             if statistics.median(f) else None}
    if kind == "e2e":
        entry["tasks_per_transaction"] = [read(f"e2e-{i}.batch") for i in range(1, rounds + 1)]
        entry["server_cpu_us_per_task"] = [runs[f"e2e-{i}"].get("server", {}).get("cpu_us_per_task") for i in range(1, rounds + 1)]
        entry["lost"] = sum(runs[f"e2e-{i}"]["verification"].get("lost", 0) for i in range(1, rounds + 1))
        entry["duplicated"] = sum(runs[f"e2e-{i}"]["verification"]["duplicated"] for i in range(1, rounds + 1))
    result[kind] = entry
results = json.load(open(out)) if os.path.exists(out) else []
results.append(result)
with open(out + ".tmp", "w") as fh:
    json.dump(results, fh, indent=2)
os.replace(out + ".tmp", out)
print(f"\nPostgreSQL (durable), median of {rounds} rounds")
for kind in ("e2e", "batch"):
    e = result[kind]
    print(f"{kind:6} server {e['server_median']:>10.1f} tasks/s   SQL floor {e['floor_median']:>10.1f} tasks/s   ratio {e['ratio_server_vs_floor']}")
PY

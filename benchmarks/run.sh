#!/usr/bin/env bash
# Standard benchmark scenarios. Each appends one entry to benchmark_results.json and prints a
# table. See benchmarks/README.md for what is measured and the caveats.
#
#   benchmarks/run.sh e2e     engine vs baseline, same pm-agent-bench command, alternating
#                             (default: 3 rounds x 8 s, 64 submitters, 4 WS agents x 64 slots)
#   benchmarks/run.sh idle [N [W]]
#                             N idle WebSocket agents (default 10000) over W workers (default 1;
#                             W > 1: PostgreSQL + Redis stack): server RSS per agent and heartbeat
#                             latency, engine and baseline (benchmarks/idle.py)
#   benchmarks/run.sh health  GET /health vs nginx (benchmarks/health_vs_nginx.sh)
#   benchmarks/run.sh pg      PostgreSQL store (durable) vs the SQL floor (benchmarks/pg.sh)
#   benchmarks/run.sh workers 1 vs 2 workers behind nginx on PostgreSQL + Redis, with the CPU
#                             share of each part (benchmarks/workers.sh)
#   benchmarks/run.sh selftest [BUILD_DIR]
#                             short runs that check the tools themselves (no build, no results
#                             file): clean runs pass, injected lost and duplicated tasks are caught
#
# Knobs (environment): PM_AGENT_BENCH_ROUNDS, PM_AGENT_BENCH_SECONDS, PM_AGENT_BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-e2e}
out=${PM_AGENT_BENCH_OUT:-benchmark_results.json}
rounds=${PM_AGENT_BENCH_ROUNDS:-3}
seconds=${PM_AGENT_BENCH_SECONDS:-}

if [ "$scenario" = health ]; then
  shift
  exec benchmarks/health_vs_nginx.sh "$@"
fi
if [ "$scenario" = pg ]; then
  exec benchmarks/pg.sh "$(scripts/build.sh release)"
fi
if [ "$scenario" = workers ]; then
  exec benchmarks/workers.sh "$(scripts/build.sh release)"
fi
if [ "$scenario" = idle ]; then
  exec benchmarks/idle.py "$(scripts/build.sh release)" "${2:-10000}" "${3:-1}"
fi
case "$scenario" in
  e2e) dir=$(scripts/build.sh release) ;;
  selftest) dir=${2:-build} ;;
  *) echo "usage: benchmarks/run.sh [e2e | idle [agents [workers]] | health [args] | pg | workers | selftest [build dir]]" >&2
    exit 2 ;;
esac

bench="$dir/benchmarks/pm-agent-bench"
baseline="$dir/benchmarks/pm-agent-baseline"
engine="$dir/pm-agent-server"
# Only json and statistics are used; prefer Debian's interpreter over a shim earlier on PATH.
python=/usr/bin/python3
[ -x "$python" ] || python=python3

work=$(mktemp -d)
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server engine|baseline CONFIG_FILE [baseline flags]: sets server_pid and port, waits
# for /health.
start_server() {
  port=$(free_port)
  if [ "$1" = engine ]; then
    env -u DATABASE_URL -u REDIS_URL LOG_LEVEL=warn \
      "$engine" serve --port "$port" --config "$2" >"$work/engine.log" 2>&1 &
  else
    "$baseline" --port "$port" "${@:3}" >"$work/baseline.log" 2>&1 &
  fi
  server_pid=$!
  for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05
  done
  echo "run.sh: $1 did not answer /health; its log:" >&2
  cat "$work/$1.log" >&2
  exit 1
}

# The engine must not be held back by limits meant for production: no submit or agent rate
# limit, a queue and per-agent outbound buffer larger than anything the run can fill.
# Finished tasks are kept a minute, not a day, so long runs do not measure retention growth.
write_engine_config() {  # file max_connections
  cat >"$1" <<JSON
{
  "server": {"max_connections": $2},
  "queue": {"task_queue_size": 100000000, "retention_s": 60},
  "agents": {"outbound_queue_max": 1000000},
  "rate_limit": {"submit_per_s": 1e9, "submit_burst": 1e9, "agent_per_s": 1e9, "agent_burst": 1e9}
}
JSON
}

# run_bench LABEL ARGS...: one bench run against the running server; its entry goes to
# $work/runs.json. A failed verification or an error does not stop the scenario: the entry
# records it and the table shows it.
run_bench() {
  local label=$1
  shift
  local rc=0
  "$bench" --url "http://127.0.0.1:$port" --server-pid "$server_pid" --label "$label" \
    --out "$work/runs.json" "$@" >"$work/last.txt" || rc=$?
  sed 's/^/    /' "$work/last.txt"
  [ "$rc" -eq 0 ] || echo "    (pm-agent-bench exit $rc: see errors / verification above)"
}

if [ "$scenario" = selftest ]; then
  write_engine_config "$work/engine.json" 10000
  failures=0
  # expect NAME EXIT_STATUS PYTHON_CONDITION: checks the last entry of $work/runs.json.
  expect() {
    local name=$1 want_rc=$2 condition=$3
    if [ "$rc" -eq "$want_rc" ] && "$python" - "$work/runs.json" "$condition" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))[-1]
v = run["verification"]
sys.exit(0 if eval("(" + sys.argv[2] + ")", {"run": run, "v": v}) else 1)
PY
    then
      echo "ok   $name"
    else
      echo "FAIL $name (exit $rc; wanted $want_rc and $condition)"
      sed 's/^/    /' "$work/last.txt"
      failures=$((failures + 1))
    fi
  }
  quick() {  # label args...: one short run, sets rc
    local label=$1
    shift
    rc=0
    "$bench" --url "http://127.0.0.1:$port" --server-pid "$server_pid" --label "$label" \
      --out "$work/runs.json" --duration 1 --drain 2 "$@" >"$work/last.txt" || rc=$?
  }
  start_server baseline -
  quick clean --agents 2 --concurrency 8 --submitters 4 --heartbeat-ms 100 --payload-bytes 64
  expect "baseline: clean ws run completes every task" 0 \
    'v["checked"] and run["tasks_submitted"] > 0 and run["tasks_completed"] == run["tasks_submitted"]
     and run["latency_ms"]["e2e"]["count"] == run["tasks_completed"]
     and run["latency_ms"]["heartbeat"]["count"] > 0 and run["server"]["rss_after_kib"] > 0'
  quick batch --agents 2 --concurrency 8 --submitters 2 --batch 20 --rate 2000 --think-ms 5
  expect "baseline: batch submits at a rate, agents think" 0 \
    'run["tasks_submitted"] == 20 * run["submit_requests"] and 1000 < run["submit_rate_per_s"] < 2400
     and run["latency_ms"]["e2e"]["p50"] >= 5'
  stop_server
  start_server baseline - --fault-drop-every 50
  quick drop --agents 2 --concurrency 8 --submitters 4
  expect "baseline dropping every 50th task: lost tasks are reported by id" 1 \
    'v["lost"] > 0 and abs(v["lost"] - run["tasks_submitted"] / 50) <= 1 and len(v["lost_ids"]) == 5'
  stop_server
  start_server baseline - --fault-duplicate-every 50
  quick duplicate --agents 2 --concurrency 8 --submitters 4
  expect "baseline delivering every 50th task twice: duplicates are reported" 1 \
    'v["duplicated"] > 0 and len(v["duplicated_ids"]) > 0'
  stop_server
  if [ -x "$engine" ]; then
    start_server engine "$work/engine.json"
    quick engine-ws --agents 2 --concurrency 8 --submitters 4 --heartbeat-ms 100
    expect "engine: clean ws run" 0 'run["tasks_completed"] == run["tasks_submitted"] > 0'
    quick engine-rest --mode rest --agents 2 --concurrency 4 --submitters 4 --heartbeat-ms 100
    expect "engine: clean rest run" 0 'run["tasks_completed"] == run["tasks_submitted"] > 0
      and run["latency_ms"]["heartbeat"]["count"] > 0'
    stop_server
    # The idle scenario's split over client processes and their barrier: 2 processes per side.
    rc=0
    PM_AGENT_BENCH_AGENTS_PER_PROCESS=100 PM_AGENT_BENCH_SECONDS=1 PM_AGENT_BENCH_HEARTBEAT_MS=200 \
      PM_AGENT_BENCH_OUT="$work/idle.json" benchmarks/idle.py "$dir" 150 >"$work/last.txt" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] && "$python" - "$work/idle.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[-1]
ok = all(r[s]["client_processes"] == 2 and r[s]["agents_registered"] == 150
         and r[s]["rss_per_agent_kib"] is not None and r[s]["heartbeats"] > 0
         for s in ("engine", "baseline"))
sys.exit(0 if ok else 1)
PY
    then
      echo "ok   idle: 150 agents from 2 client processes meeting at the barrier, both sides"
    else
      echo "FAIL idle split (exit $rc)"
      sed 's/^/    /' "$work/last.txt"
      failures=$((failures + 1))
    fi
  fi
  [ "$failures" -eq 0 ] || { echo "$failures self-test(s) failed"; exit 1; }
  echo "self-test passed"
  exit 0
fi

if [ "$scenario" = e2e ]; then
  seconds=${seconds:-8}
  # Closed loop: at most 4 x the agents' slots unfinished, so both servers are measured on the
  # whole exchange rather than on how fast a backlog of submits grows.
  client=(--agents 4 --concurrency 64 --submitters 64 --max-outstanding 1024 --mode ws
          --duration "$seconds" --drain 10)
  write_engine_config "$work/engine.json" 10000
  for ((round = 1; round <= rounds; round++)); do
    # ABBA order, so that drift in machine load does not favour one side.
    order=(baseline engine)
    ((round % 2 == 0)) && order=(engine baseline)
    for side in "${order[@]}"; do
      echo "round $round/$rounds: $side"
      start_server "$side" "$work/engine.json"
      run_bench "e2e-$side" "${client[@]}"
      stop_server
    done
  done
  "$python" - "$out" "$work/runs.json" "${client[*]}" <<'PY'
import datetime, json, os, platform, statistics, sys
out, runs_file, client = sys.argv[1:]
runs = json.load(open(runs_file))

def figures(run):
    lat = run["latency_ms"]
    v = run["verification"]
    return {
        "throughput_per_s": run["throughput_per_s"],
        "submit_p50_ms": lat["submit"]["p50"], "submit_p99_ms": lat["submit"]["p99"],
        "dispatch_p50_ms": lat["dispatch"]["p50"], "dispatch_p99_ms": lat["dispatch"]["p99"],
        "e2e_p50_ms": lat["e2e"]["p50"], "e2e_p99_ms": lat["e2e"]["p99"],
        "server_cpu_us_per_task": run.get("server", {}).get("cpu_us_per_task"),
        "client_cpu_window_s": run["client"]["cpu_window_s"],
        "lost": v.get("lost", 0), "duplicated": v["duplicated"], "errors": run["error_count"],
    }

sides = {}
for run in runs:
    sides.setdefault(run["scenario"].removeprefix("e2e-"), []).append(figures(run))

def summary(items):
    keys = [k for k in items[0] if k not in ("lost", "duplicated", "errors")]
    med = {k: statistics.median([i[k] for i in items if i[k] is not None] or [0]) for k in keys}
    med["lost"] = sum(i["lost"] for i in items)
    med["duplicated"] = sum(i["duplicated"] for i in items)
    med["errors"] = sum(i["errors"] for i in items)
    return med

engine, baseline = summary(sides["engine"]), summary(sides["baseline"])
result = {
    "scenario": "e2e_vs_baseline",
    "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": f"{platform.machine()} {os.cpu_count()} cores",
    "client": "pm-agent-bench " + client,
    "store": "memory",
    "engine_throughput_per_s": [i["throughput_per_s"] for i in sides["engine"]],
    "baseline_throughput_per_s": [i["throughput_per_s"] for i in sides["baseline"]],
    "engine_median": engine,
    "baseline_median": baseline,
    "ratio_engine_vs_baseline": round(engine["throughput_per_s"] / baseline["throughput_per_s"], 3)
    if baseline["throughput_per_s"] else None,
}
results = json.load(open(out)) if os.path.exists(out) else []
results.append(result)
with open(out + ".tmp", "w") as f:
    json.dump(results, f, indent=2)
os.replace(out + ".tmp", out)

rows = [("throughput (tasks/s)", "throughput_per_s"), ("submit p50 / p99 (ms)", "submit"),
        ("dispatch p50 / p99 (ms)", "dispatch"), ("end-to-end p50 / p99 (ms)", "e2e"),
        ("server CPU per task (us)", "server_cpu_us_per_task"),
        ("client CPU in window (s)", "client_cpu_window_s"),
        ("lost / duplicated / errors", "check")]
def cell(m, key):
    if key in ("submit", "dispatch", "e2e"):
        return f"{m[key + '_p50_ms']:.2f} / {m[key + '_p99_ms']:.2f}"
    if key == "check":
        return f"{m['lost']} / {m['duplicated']} / {m['errors']}"
    return f"{m[key]:.1f}"
print(f"\ne2e, median of {len(sides['engine'])} rounds ({client})")
print(f"{'':28}{'engine':>22}{'baseline':>22}")
for title, key in rows:
    print(f"{title:28}{cell(engine, key):>22}{cell(baseline, key):>22}")
print(f"{'throughput ratio':28}{result['ratio_engine_vs_baseline']:>22}")
PY
  exit 0
fi

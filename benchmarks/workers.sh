#!/usr/bin/env bash
# 1 vs 2 workers behind nginx on PostgreSQL + Redis (scripts/stack.sh), end to end: 64
# submitters (one task per request) and 4 WebSocket agents x 64 slots, all through nginx, as
# `run.sh e2e`. Rounds alternate 1 and 2 workers on fresh stacks. Beside tasks/s it records the
# CPU seconds of each part (the workers, nginx, PostgreSQL, Redis, the load tool) read from
# /proc, so the scaling on bigger machines can be projected: the target here is no
# coordination loss (2 workers >= 1.0x one; worker CPU per task within 10 %). A third run per
# round, one worker with half the clients (32 submitters, 2 agents: what each of two workers
# serves), tells what the split of the load costs by itself, without any coordination.
# Usage: benchmarks/workers.sh BUILD_DIR   (PM_AGENT_BENCH_ROUNDS, PM_AGENT_BENCH_SECONDS)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
out=${PM_AGENT_BENCH_OUT:-benchmark_results.json}
rounds=${PM_AGENT_BENCH_ROUNDS:-3}
seconds=${PM_AGENT_BENCH_SECONDS:-8}
python=/usr/bin/python3
bench="$dir/benchmarks/pm-agent-bench"
export PM_AGENT_BINARY="$PWD/$dir/pm-agent-server"
case "$dir" in /*) PM_AGENT_BINARY="$dir/pm-agent-server" ;; esac

work=$(mktemp -d)
chmod 755 "$work"
stack_dir=
cleanup() {
  [ -z "$stack_dir" ] || scripts/stack.sh down --dir "$stack_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export STACK_CONFIG_JSON='{
  "queue": {"task_queue_size": 100000000, "retention_s": 60},
  "agents": {"outbound_queue_max": 1000000},
  "rate_limit": {"submit_per_s": 1e9, "submit_burst": 1e9, "agent_per_s": 1e9, "agent_burst": 1e9},
  "log": {"level": "warn"}
}'

# Prints {"part": [pids...]} for the stack in $1.
stack_pids() {
  "$python" - "$1" <<'PY'
import json, os, subprocess, sys
d = sys.argv[1]
info = json.load(open(f"{d}/stack.json"))
def children(pid):
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]
postmaster = int(open(f"{d}/pg/data/postmaster.pid").readline())
print(json.dumps({
    "workers": [w["pid"] for w in info["workers"]],
    "nginx": [info["nginx_pid"]] + children(info["nginx_pid"]),
    "postgres": [postmaster] + children(postmaster),
    "redis": [int(open(f"{d}/redis/redis.pid").read())],
}))
PY
}

cpu_snapshot() {  # cpu_snapshot PIDS_JSON: {"part": cpu seconds} (exited pids count 0)
  "$python" - "$1" <<'PY'
import json, os, sys
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / tick
    except OSError:
        return 0.0
print(json.dumps({k: sum(cpu(p) for p in v) for k, v in json.loads(sys.argv[1]).items()}))
PY
}

client=(--agents 4 --concurrency 64 --submitters 64 --max-outstanding 1024 --mode ws)
half=(--agents 2 --concurrency 64 --submitters 32 --max-outstanding 512 --mode ws)
for ((round = 1; round <= rounds; round++)); do
  for n in 1 2 1h; do
    stack_dir="$work/stack-$n-$round"
    url=$(scripts/stack.sh up --workers "${n%h}" --dir "$stack_dir" 2>"$work/stack.log") || {
      cat "$work/stack.log" >&2; exit 1; }
    pids=$(stack_pids "$stack_dir")
    before=$(cpu_snapshot "$pids")
    what=""
    [ "$n" = 1h ] && what=", half the clients"
    echo "round $round/$rounds: ${n%h} worker(s) behind nginx$what"
    bench_before=$("$python" -c 'import os; t=os.times(); print(t.children_user + t.children_system)')
    if [ "$n" = 1h ]; then args=("${half[@]}"); else args=("${client[@]}"); fi
    "$bench" --url "$url" --label "workers-$n-$round" --out "$work/runs.json" \
      --duration "$seconds" --drain 10 "${args[@]}" | sed 's/^/    /' || true
    after=$(cpu_snapshot "$pids")
    "$python" - "$before" "$after" "$work/cpu-$n-$round.json" <<PY
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
json.dump({k: round(a[k] - b.get(k, 0), 3) for k in a}, open(sys.argv[3], "w"))
PY
    scripts/stack.sh down --dir "$stack_dir" >/dev/null 2>&1
    stack_dir=
  done
done

"$python" - "$out" "$work" "$rounds" "$seconds" "${client[*]}" <<'PY'
import datetime, json, os, platform, statistics, sys
out, work, rounds, seconds, client = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
runs = {r["scenario"]: r for r in json.load(open(os.path.join(work, "runs.json")))}
result = {"scenario": "workers_behind_nginx",
          "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "machine": f"{platform.machine()} {os.cpu_count()} cores",
          "client": "pm-agent-bench " + client + " (through nginx)",
          "store": "postgres (durable) + redis"}
for n in (1, 2, "1h"):
    tps, cpu_per_task, shares, lost, dup = [], [], [], 0, 0
    for i in range(1, rounds + 1):
        r = runs[f"workers-{n}-{i}"]
        cpu = json.load(open(os.path.join(work, f"cpu-{n}-{i}.json")))
        done = max(r["tasks_completed"], 1)
        tps.append(r["throughput_per_s"])
        cpu_per_task.append(round(cpu["workers"] / done * 1e6, 1))
        busy = sum(cpu.values())
        shares.append({k: round(v / busy, 3) for k, v in cpu.items()} if busy else {})
        lost += r["verification"].get("lost", 0)
        dup += r["verification"].get("duplicated", 0)
    result[f"workers_{n}"] = {
        "tasks_per_s": tps, "median_tasks_per_s": statistics.median(tps),
        "worker_cpu_us_per_task": cpu_per_task,
        "median_worker_cpu_us_per_task": statistics.median(cpu_per_task),
        "cpu_share_of_server_side": shares[len(shares) // 2], "lost": lost, "duplicated": dup}
one, two = result["workers_1"], result["workers_2"]
result["ratio_2_vs_1"] = round(two["median_tasks_per_s"] / one["median_tasks_per_s"], 3)
result["cpu_per_task_2_vs_1"] = round(two["median_worker_cpu_us_per_task"] / one["median_worker_cpu_us_per_task"], 3)
# Against one worker serving what each of the two serves: the split's own cost taken out.
result["workers_1h"]["client"] = "pm-agent-bench --agents 2 --concurrency 64 --submitters 32 --max-outstanding 512 --mode ws"
result["cpu_per_task_2_vs_1_half_clients"] = round(two["median_worker_cpu_us_per_task"] / result["workers_1h"]["median_worker_cpu_us_per_task"], 3)
results = json.load(open(out)) if os.path.exists(out) else []
results.append(result)
with open(out + ".tmp", "w") as fh:
    json.dump(results, fh, indent=2)
os.replace(out + ".tmp", out)
print(f"\nbehind nginx, PostgreSQL + Redis, median of {rounds} rounds")
for n in (1, 2, "1h"):
    e = result[f"workers_{n}"]
    label = "1 worker, half the clients" if n == "1h" else f"{n} worker(s)"
    print(f"{label}: {e['median_tasks_per_s']:>9.1f} tasks/s  worker CPU {e['median_worker_cpu_us_per_task']:>7.1f} us/task  "
          f"CPU shares {e['cpu_share_of_server_side']}  lost {e['lost']} dup {e['duplicated']}")
print(f"2 vs 1 workers: throughput {result['ratio_2_vs_1']}x, worker CPU per task {result['cpu_per_task_2_vs_1']}x")
print(f"2 workers vs 1 worker with half the clients: worker CPU per task {result['cpu_per_task_2_vs_1_half_clients']}x")
PY

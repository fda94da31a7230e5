#!/usr/bin/env bash
# Scenario (d): GET /health req/s of one pm-agent-server worker against nginx `return 200;` with
# one worker process, both driven by the same wrk command in the same run, alternating so that
# machine noise hits both. Appends the figures and the ratio to benchmark_results.json.
# Usage: benchmarks/health_vs_nginx.sh [seconds per round] [rounds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5}
rounds=${2:-3}
connections=${3:-64}
out=${PM_AGENT_BENCH_OUT:-benchmark_results.json}

scripts/bootstrap.sh
dir=$(scripts/build.sh release)
work=$(mktemp -d)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

nginx_port=$(free_port)
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" &
server_port=$(free_port)
LOG_LEVEL=warn "$dir/pm-agent-server" serve --port "$server_port" &
server_pid=$!
sleep 1

rps() {  # url -> requests/s
  wrk -t1 -c"$connections" -d"${duration}s" "$1" | awk '/Requests\/sec/ {print $2}'
}

server_runs=()
nginx_runs=()
for ((i = 0; i < rounds; i++)); do
  server_runs+=("$(rps "http://127.0.0.1:$server_port/health")")
  nginx_runs+=("$(rps "http://127.0.0.1:$nginx_port/health")")
done

python3 - "$out" "$connections" "$duration" "${server_runs[*]}" "${nginx_runs[*]}" <<'PY'
import datetime, json, os, platform, statistics, sys
out, connections, duration, server, nginx = sys.argv[1:]
server = [float(x) for x in server.split()]
nginx = [float(x) for x in nginx.split()]
result = {
    "scenario": "health_vs_nginx",
    "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": f"{platform.machine()} {os.cpu_count()} cores",
    "client": f"wrk -t1 -c{connections} -d{duration}s",
    "pm_agent_rps": server, "nginx_rps": nginx,
    "pm_agent_median_rps": statistics.median(server),
    "nginx_median_rps": statistics.median(nginx),
    "ratio_vs_nginx": round(statistics.median(server) / statistics.median(nginx), 3),
}
results = []
if os.path.exists(out):
    with open(out) as f:
        results = json.load(f)
results.append(result)
with open(out, "w") as f:
    json.dump(results, f, indent=2)
print(json.dumps(result, indent=2))
PY

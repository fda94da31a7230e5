#!/usr/bin/env bash
# The production topology on one machine, from Debian packages (no Docker): PostgreSQL, Redis,
# N pm-agent-server workers and nginx in front of them, all on free loopback ports under one
# state directory. The integration tests and benchmarks use it.
#
#   scripts/stack.sh up     [--workers N] [--dir DIR]   start; prints the nginx URL on stdout
#   scripts/stack.sh down   [--dir DIR]                 stop everything, remove DIR
#   scripts/stack.sh status [--dir DIR]                 exit 0 when all runs, 3 otherwise
#
# DIR defaults to ${TMPDIR:-/tmp}/pm-agent-stack (PostgreSQL runs as the postgres user when we
# are root, so DIR's parents must be searchable by it: /tmp is). The workers are separate
# processes on ports of their own (nginx spreads requests over them; a test may reach or kill
# one directly); each knows the fleet size N (rate_limit.fleet_workers). Environment:
# PM_AGENT_BINARY (default: scripts/build.sh release), STACK_CONFIG_JSON (a JSON object merged
# into the workers' configuration, e.g. '{"agents": {"heartbeat_interval_s": 2}}').
# DIR holds stack.json (URLs, ports and pids), config.json, worker-I.log, pg/, redis/, nginx/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

die() { echo "stack: $*" >&2; exit 1; }
cmd=${1:-}
[ -n "$cmd" ] && shift || die "usage: $0 {up|down|status} [--workers N] [--dir DIR]"
workers=2
dir=${TMPDIR:-/tmp}/pm-agent-stack
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
python=/usr/bin/python3
[ -x "$python" ] || python=python3

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() {  # wait_http URL SECONDS [PID]: until it answers 200 (or PID is gone)
  local i
  for i in $(seq 1 $(( $2 * 10 ))); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    [ -z "${3:-}" ] || kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

start_worker() {  # start_worker I PORT: starts worker I, writes its pid file
  local i=$1 port=$2
  DATABASE_URL=$(cat "$dir/database_url") REDIS_URL=$(cat "$dir/redis_url") \
    setsid "$binary" serve --migrate --config "$dir/config.json" --port "$port" \
    >>"$dir/worker-$i.log" 2>&1 </dev/null &
  echo $! >"$dir/worker-$i.pid"
  echo "$port" >"$dir/worker-$i.port"
}

up() {
  [ "$workers" -ge 1 ] 2>/dev/null || die "--workers must be a positive number"
  [ ! -e "$dir/stack.json" ] || die "$dir already holds a stack: scripts/stack.sh down --dir $dir"
  command -v nginx >/dev/null || command -v /usr/sbin/nginx >/dev/null ||
    die "nginx not found: scripts/bootstrap.sh installs it"
  binary=${PM_AGENT_BINARY:-}
  if [ -z "$binary" ]; then
    binary="$root/$(scripts/build.sh release pm-agent-server)/pm-agent-server"
  fi
  [ -x "$binary" ] || die "no server binary at $binary"
  mkdir -p "$dir"
  chmod 755 "$dir"
  # A failed or interrupted start stops what it started; the logs stay in DIR.
  trap 'up_failed $?' EXIT
  trap 'exit 130' INT TERM
  echo "stack: starting PostgreSQL and Redis in $dir" >&2
  scripts/pg_cluster.sh start "$dir/pg" >"$dir/database_url"
  scripts/redis_server.sh start "$dir/redis" >"$dir/redis_url"

  STACK_WORKERS=$workers "$python" - "$dir/config.json" <<'PY'
import json, os, sys
def merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base
config = {
    "server": {"host": "127.0.0.1"},
    "rate_limit": {"fleet_workers": int(os.environ["STACK_WORKERS"])},
}
merge(config, json.loads(os.environ.get("STACK_CONFIG_JSON") or "{}"))
with open(sys.argv[1], "w") as f:
    json.dump(config, f, indent=2)
PY

  local i ports=()
  for i in $(seq 1 "$workers"); do
    ports+=("$(free_port)")
    start_worker "$i" "${ports[$((i - 1))]}"
  done
  for i in $(seq 1 "$workers"); do
    wait_http "http://127.0.0.1:${ports[$((i - 1))]}/ready" 30 "$(cat "$dir/worker-$i.pid")" || {
      tail -n 20 "$dir/worker-$i.log" >&2
      die "worker $i did not become ready (log: $dir/worker-$i.log)"
    }
  done

  local nginx_port upstreams="" user_line=""
  nginx_port=$(free_port)
  for i in $(seq 1 "$workers"); do
    upstreams+="        server 127.0.0.1:${ports[$((i - 1))]} max_fails=0;"$'\n'
  done
  [ "$(id -u)" -ne 0 ] || user_line="user root;"
  mkdir -p "$dir/nginx/tmp"
  "$python" - "$root/deployment/nginx/stack.conf.template" "$dir/nginx/nginx.conf" \
    "$dir/nginx" "127.0.0.1:$nginx_port" "$upstreams" "$user_line" "$root/deployment/nginx" <<'PY'
import sys
src, dst, prefix, listen, upstreams, user, conf_dir = sys.argv[1:]
text = open(src).read()
for k, v in {"@PREFIX@": prefix, "@LISTEN@": listen, "@UPSTREAMS@": upstreams.rstrip("\n"),
             "@USER@": user, "@CONF_DIR@": conf_dir}.items():
    text = text.replace(k, v)
open(dst, "w").write(text)
PY
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  "$nginx_bin" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" >&2 ||
    die "nginx did not start (see $dir/nginx/error.log)"
  wait_http "http://127.0.0.1:$nginx_port/health" 10 || die "nginx does not answer /health"
  echo "http://127.0.0.1:$nginx_port" >"$dir/url"

  "$python" - "$dir" "$workers" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
read = lambda name: open(f"{d}/{name}").read().strip()
json.dump({
    "url": read("url"),
    "database_url": read("database_url"),
    "redis_url": read("redis_url"),
    "redis_dir": f"{d}/redis",
    "nginx_pid": int(read("nginx/nginx.pid")),
    "workers": [{"port": int(read(f"worker-{i}.port")), "pid": int(read(f"worker-{i}.pid")),
                 "url": f"http://127.0.0.1:{read(f'worker-{i}.port')}",
                 "log": f"{d}/worker-{i}.log"} for i in range(1, n + 1)],
}, open(f"{d}/stack.json", "w"), indent=2)
PY
  trap - EXIT INT TERM
  echo "stack: up: nginx $(cat "$dir/url") over $workers workers; state in $dir" >&2
  cat "$dir/url"
}

stop_pid_file() {  # stop_pid_file FILE: TERM, then KILL after 10 s
  [ -f "$1" ] || return 0
  local pid i
  pid=$(cat "$1" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

stop_all() {  # nginx, the workers, Redis, PostgreSQL (whatever of them has a pid file / dir)
  stop_pid_file "$dir/nginx/nginx.pid"
  local f
  for f in "$dir"/worker-*.pid; do
    [ -e "$f" ] && stop_pid_file "$f"
  done
  scripts/redis_server.sh stop "$dir/redis" >/dev/null 2>&1 || true
  scripts/pg_cluster.sh stop "$dir/pg" >/dev/null 2>&1 || true
}

up_failed() {  # EXIT trap of up
  trap - EXIT
  [ "$1" -ne 0 ] || return 0
  echo "stack: up failed; stopping what it started (logs kept in $dir;" \
    "scripts/stack.sh down --dir $dir removes them)" >&2
  stop_all
  rm -f "$dir/stack.json"
  exit "$1"
}

down() {
  [ -d "$dir" ] || return 0
  [ -f "$dir/config.json" ] || [ -f "$dir/database_url" ] ||
    die "$dir does not look like a stack directory; not removing it"
  stop_all
  rm -rf "$dir"
}

status() {
  [ -f "$dir/stack.json" ] || { echo "stack: no stack in $dir" >&2; exit 3; }
  local ok=0 f pid
  scripts/pg_cluster.sh status "$dir/pg" || { echo "postgres: down"; ok=3; }
  scripts/redis_server.sh status "$dir/redis" || { echo "redis: down"; ok=3; }
  for f in "$dir"/worker-*.pid "$dir/nginx/nginx.pid"; do
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      echo "$(basename "$f" .pid): running (pid $pid)"
    else
      echo "$(basename "$f" .pid): down"; ok=3
    fi
  done
  echo "url: $(cat "$dir/url")"
  exit $ok
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "unknown command $cmd (up, down, status)" ;;
esac

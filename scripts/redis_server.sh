#!/usr/bin/env bash
# A throwaway Redis server for tests and the local stack, in a directory of its own.
#
#   scripts/redis_server.sh start   DIR   start (on a free port chosen the first time, kept);
#                                         prints the URL redis://127.0.0.1:PORT
#   scripts/redis_server.sh stop    DIR   shuts it down, then removes DIR (no-op if DIR is gone)
#   scripts/redis_server.sh halt    DIR   shuts it down, keeps DIR: `start DIR` brings it back
#                                         on the same port (a Redis outage in a test)
#   scripts/redis_server.sh url     DIR   prints the URL
#   scripts/redis_server.sh status  DIR   exit 0 if it is running, 3 if not
#
# Listens on 127.0.0.1 only, no persistence (presence, limits and wake-ups are soft state),
# daemonized with its pid file, log and port file in DIR. Only stdout carries the URL.
set -euo pipefail

die() { echo "redis_server: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: $0 {start|stop|halt|url|status} DIR"
cmd=$1
case "$2" in /*) dir=$2 ;; *) dir="$PWD/$2" ;; esac
dir=${dir%/}
marker="$dir/.redis_server"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pid_of() { [ -f "$dir/redis.pid" ] && cat "$dir/redis.pid" 2>/dev/null || true; }

is_running() {
  local pid
  pid=$(pid_of)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

url_of() {
  [ -f "$dir/port" ] || die "$dir is not a server made by redis_server.sh start (no $dir/port)"
  echo "redis://127.0.0.1:$(cat "$dir/port")"
}

halt() {
  is_running || return 0
  local pid i
  pid=$(pid_of)
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/redis.pid"; return 0; }
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid"
}

start_on() {  # start_on PORT: 0 when it answers PING
  redis-server --bind 127.0.0.1 --port "$1" --daemonize yes --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log" --dir "$dir" --save '' --appendonly no \
    --protected-mode no --maxclients 10000 >&2 || return 1
  local i
  for i in $(seq 1 100); do
    if redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; then return 0; fi
    sleep 0.05
  done
  return 1
}

start() {
  command -v redis-server >/dev/null || die "redis-server not found: install redis-server (scripts/bootstrap.sh)"
  mkdir -p "$dir"
  if [ -f "$dir/port" ]; then
    [ -f "$marker" ] || die "$dir has a port file not made by redis_server.sh"
    is_running || start_on "$(cat "$dir/port")" || die "could not start Redis on port $(cat "$dir/port"); see $dir/redis.log"
    url_of
    return
  fi
  [ -z "$(ls -A "$dir" 2>/dev/null)" ] || die "$dir exists and is not empty; give start a new or empty directory"
  touch "$marker"
  local attempt port
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    if start_on "$port"; then
      echo "$port" >"$dir/port"
      url_of
      return
    fi
    halt
  done
  die "could not start Redis in $dir; see $dir/redis.log"
}

case "$cmd" in
  start) start ;;
  stop)
    [ -e "$dir" ] || exit 0
    [ -f "$marker" ] || { rmdir "$dir" 2>/dev/null && exit 0; die "$dir was not made by redis_server.sh; not removing it"; }
    halt
    rm -rf "$dir"
    ;;
  halt) [ -f "$marker" ] || die "$dir was not made by redis_server.sh"; halt ;;
  url) url_of ;;
  status) is_running || exit 3 ;;
  *) die "unknown command $cmd" ;;
esac

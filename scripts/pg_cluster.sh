#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, in a directory of its own.
#
#   scripts/pg_cluster.sh start   DIR   create (initdb) if needed, start; prints the libpq URL
#   scripts/pg_cluster.sh stop    DIR   fast shutdown, then removes DIR (no-op if DIR is gone)
#   scripts/pg_cluster.sh restart DIR [DOWN_S]
#                                      fast shutdown, optionally stay down DOWN_S seconds,
#                                      start again on the same port; data kept
#   scripts/pg_cluster.sh kill    DIR   immediate shutdown (as after a crash); data kept,
#                                      `start DIR` brings it back on the same port
#   scripts/pg_cluster.sh url     DIR   prints the URL
#   scripts/pg_cluster.sh status  DIR   exit 0 if the cluster is running, 3 if not
#
# The cluster listens on 127.0.0.1 only, on a free port chosen at creation (kept for its
# lifetime), with its unix socket inside DIR, trust authentication for the `postgres` role,
# and fsync + synchronous_commit on: the durability of a commit is what the tests check.
# Run as root, the server runs as the unprivileged `postgres` system user (or
# PG_CLUSTER_USER) and DIR is chowned to it. Binaries: PG_BINDIR, else `pg_config --bindir`,
# else the newest /usr/lib/postgresql/*/bin. Only stdout carries the URL; progress and errors
# go to stderr. Layout of DIR: data/ (PGDATA), sock/ (unix socket), port, server.log.
# PG_CLUSTER_STATS=1 at creation preloads pg_stat_statements (then CREATE EXTENSION
# pg_stat_statements): what a benchmark's statements cost, call by call.
set -euo pipefail

die() { echo "pg_cluster: $*" >&2; exit 1; }
usage() { die "usage: $0 {start|stop|restart|kill|url|status} DIR [DOWN_S]"; }

[ $# -ge 2 ] || usage
cmd=$1
dir_arg=$2
[ -n "$dir_arg" ] || usage
# An absolute path: the unix socket directory and pg_ctl's -D are given to another user.
case "$dir_arg" in
  /*) dir=$dir_arg ;;
  *) dir="$PWD/$dir_arg" ;;
esac
dir=${dir%/}
marker="$dir/.pg_cluster"

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then
    [ -x "$PG_BINDIR/initdb" ] || die "PG_BINDIR=$PG_BINDIR has no initdb"
    echo "$PG_BINDIR"; return
  fi
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -rn); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return
  fi
  die "no PostgreSQL server binaries (initdb, pg_ctl) found: install the postgresql package (scripts/bootstrap.sh) or set PG_BINDIR"
}

# as_owner CMD...: runs CMD as the cluster's owner (the postgres user when we are root).
run_user=""
if [ "$(id -u)" -eq 0 ]; then
  run_user=${PG_CLUSTER_USER:-postgres}
  id -u "$run_user" >/dev/null 2>&1 ||
    die "running as root, and user '$run_user' does not exist; PostgreSQL refuses to run as root: install the postgresql package (it creates 'postgres'), set PG_CLUSTER_USER, or run as a non-root user"
fi
as_owner() {
  if [ -n "$run_user" ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u "$run_user" -- "$@"
    else
      su -s /bin/sh "$run_user" -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

url_of() {
  [ -f "$dir/port" ] || die "$dir is not a cluster made by pg_cluster.sh start (no $dir/port)"
  echo "postgresql://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
}

is_running() {
  [ -f "$dir/data/PG_VERSION" ] || return 1
  as_owner "$bindir/pg_ctl" status -D "$dir/data" >/dev/null 2>&1
}

pg_start() {
  # -w waits until the server accepts connections; its own output goes to stderr.
  if ! as_owner "$bindir/pg_ctl" start -s -w -t 60 -D "$dir/data" -l "$dir/server.log" >&2; then
    echo "pg_cluster: postgres did not start; last lines of $dir/server.log:" >&2
    tail -n 20 "$dir/server.log" >&2 || true
    return 1
  fi
}

pg_stop() {  # pg_stop MODE: stops if running; immediate (and SIGKILL) if MODE fails
  is_running || return 0
  if ! as_owner "$bindir/pg_ctl" stop -s -w -t 60 -m "$1" -D "$dir/data" >&2; then
    echo "pg_cluster: '$1' stop failed, stopping immediately" >&2
    as_owner "$bindir/pg_ctl" stop -s -w -t 30 -m immediate -D "$dir/data" >&2 || true
  fi
  if [ -f "$dir/data/postmaster.pid" ]; then
    local pid
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
}

init_cluster() {
  mkdir -p "$dir"
  if [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    die "$dir exists and is not empty; give start a new or empty directory"
  fi
  touch "$marker"
  mkdir -p "$dir/data" "$dir/sock"
  if [ -n "$run_user" ]; then
    chown -R "$run_user" "$dir"
    as_owner test -w "$dir/data" ||
      die "user '$run_user' cannot write $dir: a parent directory is not searchable by it; use a directory under /tmp"
  fi
  chmod 700 "$dir/data"
  # --no-sync: only initdb's own flush of the template files is skipped (a crash of the
  # machine during a test run loses the whole throwaway cluster anyway); the running
  # server fsyncs every commit.
  if ! as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C \
      --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  fi
  cat >>"$dir/data/postgresql.conf" <<EOF

# pg_cluster.sh (a throwaway test cluster)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/sock'
max_connections = 200
shared_buffers = 128MB
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
  [ -z "${PG_CLUSTER_STATS:-}" ] || echo "shared_preload_libraries = 'pg_stat_statements'" >>"$dir/data/postgresql.conf"
}

set_port() {
  local port=$1
  echo "$port" >"$dir/port"
  # The last assignment in postgresql.conf wins; postgresql.auto.conf would beat it.
  echo "port = $port" >>"$dir/data/postgresql.conf"
  [ -z "$run_user" ] || chown "$run_user" "$dir/port"
}

start() {
  if [ -f "$dir/data/PG_VERSION" ]; then
    [ -f "$marker" ] || die "$dir has a PostgreSQL data directory not made by pg_cluster.sh"
    if ! is_running; then
      pg_start || die "could not start the cluster in $dir (port $(cat "$dir/port"))"
    fi
    url_of
    return
  fi
  init_cluster
  # The port is free when chosen, but another process may take it before postgres binds:
  # try a few.
  local attempt
  for attempt in 1 2 3 4 5; do
    set_port "$(free_port)"
    if pg_start; then
      url_of
      return
    fi
    grep -q "could not bind\|Address already in use" "$dir/server.log" 2>/dev/null ||
      die "could not start the new cluster in $dir"
    echo "pg_cluster: port $(cat "$dir/port") was taken, trying another" >&2
  done
  die "no free port found for the cluster in $dir"
}

case "$cmd" in
  start)
    bindir=$(find_bindir)
    start
    ;;
  stop)
    [ -e "$dir" ] || exit 0
    if [ ! -f "$marker" ]; then
      # Tolerate the empty directory a caller made for us; refuse to delete anything else.
      rmdir "$dir" 2>/dev/null && exit 0
      die "$dir was not made by pg_cluster.sh; not removing it"
    fi
    bindir=$(find_bindir)
    pg_stop fast
    rm -rf "$dir"
    ;;
  restart)
    [ -f "$marker" ] && [ -f "$dir/data/PG_VERSION" ] || die "no cluster in $dir (start it first)"
    bindir=$(find_bindir)
    pg_stop fast
    if [ $# -ge 3 ] && [ -n "$3" ]; then sleep "$3"; fi
    pg_start || die "could not restart the cluster in $dir"
    url_of
    ;;
  kill)
    [ -f "$marker" ] && [ -f "$dir/data/PG_VERSION" ] || die "no cluster in $dir"
    bindir=$(find_bindir)
    pg_stop immediate
    ;;
  url)
    url_of
    ;;
  status)
    [ -f "$marker" ] || die "no cluster in $dir"
    bindir=$(find_bindir)
    if is_running; then echo running; else echo stopped; exit 3; fi
    ;;
  *)
    usage
    ;;
esac

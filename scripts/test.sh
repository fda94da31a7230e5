#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test: unit, integration and benchmark-tool
# tests on the release build, then the unit and integration tests again under
# AddressSanitizer + UBSan (the load tools are not rebuilt there: they are not the product).
# Non-zero on any failure. Set PM_AGENT_SKIP_ASAN=1 to skip the sanitizer pass locally.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test

jobs=$(nproc)
dir=$(scripts/build.sh release)

# One throwaway PostgreSQL cluster for the whole run (both passes), removed on every exit:
# the Store contract suite and the pool tests use PM_AGENT_TEST_DATABASE_URL (and skip
# without it); the PostgreSQL integration tests start private clusters of their own.
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/pm-agent-test-pg.XXXXXX")
redis_dir=$(mktemp -d "${TMPDIR:-/tmp}/pm-agent-test-redis.XXXXXX")
cleanup_pg() {
  scripts/pg_cluster.sh stop "$pg_dir" >/dev/null || true
  scripts/redis_server.sh stop "$redis_dir" >/dev/null || true
}
trap cleanup_pg EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
pg_url=$(scripts/pg_cluster.sh start "$pg_dir")
export PM_AGENT_TEST_DATABASE_URL=$pg_url
echo "test: PostgreSQL test cluster at $pg_url ($pg_dir)" >&2
# One Redis for the unit tests of the Redis client and what uses it (PM_AGENT_TEST_REDIS_URL).
export PM_AGENT_TEST_REDIS_URL=$(scripts/redis_server.sh start "$redis_dir")
echo "test: Redis at $PM_AGENT_TEST_REDIS_URL ($redis_dir)" >&2

(cd "$dir" && ctest --output-on-failure -j "$jobs")

if [ "${PM_AGENT_SKIP_ASAN:-0}" != "1" ]; then
  asan_dir=$(scripts/build.sh asan pm-agent-server unit_tests)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd "$asan_dir" && ctest --output-on-failure -j "$jobs" -E '^benchmarks\.')
fi

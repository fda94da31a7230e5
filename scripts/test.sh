#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test: unit, integration and benchmark-tool
# tests on the release build, then the unit and integration tests again under
# AddressSanitizer + UBSan (the load tools are not rebuilt there: they are not the product).
# Non-zero on any failure. Set PM_AGENT_SKIP_ASAN=1 to skip the sanitizer pass locally.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

jobs=$(nproc)
dir=$(scripts/build.sh release)
(cd "$dir" && ctest --output-on-failure -j "$jobs")

if [ "${PM_AGENT_SKIP_ASAN:-0}" != "1" ]; then
  asan_dir=$(scripts/build.sh asan pm-agent-server unit_tests)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd "$asan_dir" && ctest --output-on-failure -j "$jobs" -E '^benchmarks\.')
fi

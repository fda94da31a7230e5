#!/usr/bin/env bash
# Configures and builds one build tree, then prints its directory.
# Usage: scripts/build.sh [release|asan] [ninja targets...]   (no targets: everything)
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache keys on paths relative to the checkout, so another clone of the project (CI's) reuses
# what this machine compiled before.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
kind=${1:-release}
shift || true
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  # -O1 -g1: line tables for sanitizer reports at about half the compile time of -O2 -g.
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -g1" -DPM_AGENT_SANITIZE=ON) ;;
  *) echo "usage: scripts/build.sh [release|asan] [targets...]" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
fi
ninja -C "$dir" ${NINJA_QUIET:+--quiet} "$@" >&2
echo "$dir"

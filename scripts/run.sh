#!/usr/bin/env bash
# Starts pm-agent-server on 127.0.0.1:8000 with the embedded memory store, after installing
# dependencies and building if needed. Extra arguments go to the server (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
dir=$(scripts/build.sh release)
exec "$dir/pm-agent-server" serve "$@"

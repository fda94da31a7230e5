#!/usr/bin/env bash
# Installs every build and test dependency from Debian packages. Idempotent and quiet when
# everything is already there. `scripts/bootstrap.sh test` adds what only the tests need
# beyond that: Chromium, for the dashboard's browser test (a large download run.sh skips).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libpq-dev libhiredis-dev libspdlog-dev libfmt-dev libcli11-dev libgtest-dev libssl-dev zlib1g-dev
  python3 python3-websockets python3-yaml curl docker-compose
  prometheus wrk nginx postgresql redis-server
)
if [ "${1:-}" = test ]; then
  packages+=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

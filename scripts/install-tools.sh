#!/usr/bin/env bash
# Installs the external programs dynakv's tests and benchmarks use: redis-cli and
# redis-benchmark (redis-tools), redis-server and memcached for side-by-side runs,
# netcat. Debian/Ubuntu; needs root or sudo. Safe to run again.
set -euo pipefail
need=()
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
command -v memcached >/dev/null || need+=(memcached)
command -v nc >/dev/null || need+=(netcat-openbsd)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-tools: all present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Do not start the packaged services: tests start their own servers on free ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
echo "install-tools: installed ${need[*]}"

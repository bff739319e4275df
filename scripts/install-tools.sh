#!/usr/bin/env bash
# Installs the external programs dynakv's tests and benchmarks use: redis-cli and
# redis-benchmark (redis-tools), redis-server and memcached for side-by-side runs,
# netcat; the client matrix's (compat/clients_test.go) python3-redis and
# python3-pymemcache for Debian's /usr/bin/python3, nodejs and npm, the npm
# clients (scripts/install-node-clients.sh), and iproute2 and iptables for
# `make chaos` (scripts/install-chaos-tools.sh). Debian/Ubuntu; needs root or sudo.
# Safe to run again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
need=()
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
command -v memcached >/dev/null || need+=(memcached)
command -v nc >/dev/null || need+=(netcat-openbsd)
# Debian's python modules import only under Debian's interpreter.
/usr/bin/python3 -c 'import redis' 2>/dev/null || need+=(python3-redis)
/usr/bin/python3 -c 'import pymemcache' 2>/dev/null || need+=(python3-pymemcache)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-tools: all present"
  "$here/install-node-clients.sh"
  "$here/install-chaos-tools.sh"
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
"$here/install-node-clients.sh"
"$here/install-chaos-tools.sh"

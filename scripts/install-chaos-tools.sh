#!/usr/bin/env bash
# Installs what `make chaos` (compat/chaos) needs beyond Go: ip (iproute2) for
# network namespaces, veth pairs and the bridge, and iptables for the partitions and
# the redirect of internode traffic through the harness's fault-injecting proxy.
# Debian/Ubuntu; needs root or sudo. Safe to run again.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v mount >/dev/null || need+=(mount)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-chaos-tools: all present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
echo "install-chaos-tools: installed ${need[*]}"

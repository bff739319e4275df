#!/usr/bin/env bash
# Installs the npm clients the client matrix drives (ioredis, redis), pinned by
# compat/clients/node/package-lock.json, into compat/clients/node/node_modules
# (gitignored) with `npm ci`. Needs node and npm (scripts/install-tools.sh installs
# them from Debian). Does nothing when the installed tree matches the lock file.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../compat/clients/node" && pwd)"
stamp="$dir/node_modules/.dynakv-lock"
if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
  echo "install-node-clients: up to date"
  exit 0
fi
cd "$dir"
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
echo "install-node-clients: installed $(node -e 'const p=require("./package-lock.json").packages; console.log(["ioredis","redis"].map(n=>n+"@"+p["node_modules/"+n].version).join(" "))')"

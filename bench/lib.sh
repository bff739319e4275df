# Shared by the bench/*.sh scripts (sourced, not run): checks the tools, builds
# bin/dynakv, makes a work directory, and kills every process in pids on exit.
for t in redis-server redis-benchmark redis-cli; do
  command -v $t >/dev/null || { echo "missing $t: run make tools" >&2; exit 1; }
done
go build -o bin/dynakv ./cmd/dynakv
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# port prints a loopback port that was free a moment ago and that this run has not
# handed out yet (the kernel may give successive bind(0) calls the same port; the
# record is a file because port runs in command substitutions).
port() {
  local p
  while :; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    grep -qx "$p" "$work/ports" 2>/dev/null || break
  done
  echo "$p" >>"$work/ports"
  echo "$p"
}

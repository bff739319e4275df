# Sourced by the scripts that start servers on loopback (scripts/*-suite.sh,
# bench/lib.sh): free_port prints a loopback TCP port nobody listened on a moment
# ago and that this run has not handed out yet.
#
# Ports come from 22000-31999, as internal/freeport picks them for the Go code:
# below the kernel's ephemeral range, so no client socket takes one between the
# pick and the server's bind, and above redis runtest's own 21079-21111. The
# kernel may otherwise hand successive bind(0) calls one port (once a node's
# gossip and memcached ports got one number and the node could not start).
# Handed-out ports are recorded in the file $FREE_PORTS (set it before sourcing
# to put it in the caller's work directory, which the caller removes), since
# free_port runs in command substitutions, whose subshells would lose a variable.
FREE_PORTS=${FREE_PORTS:-$(mktemp)}
touch "$FREE_PORTS"
free_port() {
  local p
  while :; do
    p=$((22000 + RANDOM % 10000))
    grep -qx "$p" "$FREE_PORTS" && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p" >>"$FREE_PORTS"
      echo "$p"
      return
    fi
  done
}

// Package launch starts local dynakv servers as child processes. It is the one
// place a `dynakv server` command line is assembled: the compat tests, bench's
// comparisons, the chaos harness and `dynakv launch` (which the shell scripts use)
// all build theirs here.
//
//   - Node is one server's command line: name, data directory, listen addresses,
//     secret, seeds, extra flags. Node.FreePorts fills the addresses left empty with
//     loopback ports from internal/freeport.
//   - Config.Nodes plans a local cluster: names Prefix1..PrefixN, free ports, data
//     directories under Dir, the first node the seed the others join, and with
//     Zones K node Prefix<k> in zone ZoneName(k-1, K) ("zone-1".."zone-K",
//     round-robin).
//   - Start runs a Spec (a program, its arguments and where its output goes) and
//     returns its Proc; Proc.Ready polls a probe (Healthy, MembersAlive) until the
//     process is ready; Signal, Stop, Kill and Wait act on that process only.
//   - StartCluster starts a planned cluster node by node, each once healthy, then
//     waits until every node sees the members alive; Cluster.Close stops them.
//
// Invariants: a Proc signals only the process it started, by its PID, and never
// once that process has been reaped; each Proc has one goroutine, which waits for
// the process and ends when it exits. The package never kills by name and never
// touches a process it did not start.
//
// Concurrency: a Proc's and a Buffer's methods are safe for concurrent use; a
// Cluster's Close must not run concurrently with StartCluster's return. Node,
// Config and Spec are plain values.
package launch

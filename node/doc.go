// Package node assembles one dynakv node from a Config: it opens storage, builds the
// coordinator and proxy, and serves the Redis (RESP) and memcached front ends and the
// admin HTTP endpoint (/metrics, /healthz, /cluster/status; /cluster/remove,
// /cluster/leave and /debug/pprof behind the admin token, and optional TLS: see
// security.go).
//
// Invariants:
//
//   - Start either returns a running node or releases everything it opened.
//   - Close stops the front ends first (no new requests), then the HTTP server, then
//     storage, so no acknowledged write is in flight when Pebble closes. Close is
//     idempotent and waits for every goroutine the node started.
//   - The node's actor id in version vectors is "<name>:<incarnation>", where the
//     incarnation is created with the data and persisted with it (for the keys of
//     a partition this node dropped and holds again, "<name>:<incarnation>:<epoch>":
//     coordinator.Coordinator.ActorFor). A node whose data
//     was wiped (or an in-memory node that restarted) gets a new incarnation, so it
//     never reissues a dot that an old copy elsewhere still carries; so does a node
//     whose data directory was not closed cleanly (storage.Store.Unclean) when that
//     stop may have lost writes locally that reached other replicas: after a
//     reboot, or with --fsync always or none (mayHaveLostDots). With --fsync
//     interval a coordinator's write is in the OS before its record leaves
//     (coordinator.Config.CheapSync), so a killed node keeps its id and version
//     vectors do not grow an entry per crash.
//
// This version runs a single node: the coordinator works on the local replica and the
// quorum settings are clamped to the one member, with a logged warning. The gossip and
// cluster addresses are validated and reported; joining a cluster arrives with the
// cluster package.
package node

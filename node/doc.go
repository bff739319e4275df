// Package node assembles one dynakv node from a Config. It decides nothing about
// keys: it opens storage, binds the ports, builds the internode transport, gossip
// membership, coordinator, router (proxy/route), proxy, anti-entropy with partition
// handoff and tombstone purge, hinted handoff, and the Redis (RESP) and memcached
// front ends, and connects them: the membership's callbacks to hinted handoff and
// anti-entropy, peers' requests to the coordinator, anti-entropy and the proxy, the
// libraries' counters to Prometheus and INFO.
//
// Files: node.go (lifecycle), cluster.go (transport, membership, repair, serving
// peers), routing.go (the router's view of the cluster, peer avoidance),
// locality.go (internode requests counted by zone), status.go
// (`dynakv status`, /cluster/status), info.go (INFO), memory.go (maxmemory:
// used_memory, the gate on growing writes, CONFIG and stats), metrics.go (Prometheus),
// admin.go (the admin HTTP endpoints: /metrics, /healthz, /cluster/status;
// /cluster/remove, /cluster/leave and /debug/pprof behind the admin token; and
// resp's DPREFLIST and DCLUSTER), security.go (TLS), config.go.
//
// Lifecycle: New builds everything and starts nothing that calls back into the
// node; Start starts it, in order; Close stops it. Start(cfg) does both.
//
// Invariants:
//
//   - New, and Start(cfg), either return a built (running) node or release
//     everything they opened. (*Node).Start fails only on a node started or closed
//     already, changing nothing. Close releases a node whether or not it started.
//   - Membership callbacks (OnAlive, OnChange) run only after Start, so hinted
//     handoff and anti-entropy, which they kick, always exist. The transport serves
//     peers from New on (it binds the cluster port the member entry advertises):
//     until Start, and from the moment Close begins, the node refuses them, a
//     forwarded op with proxy.ErrRunLocally (its sender runs it) and a replica
//     request with an error (its coordinator keeps a hint).
//   - Close stops the front ends first (no new requests), then the HTTP server,
//     repair, the coordinator (waiting for its background writes), membership, the
//     transport and storage, so no acknowledged write is in flight when Pebble
//     closes. Close is idempotent and waits for every goroutine the node started.
//   - One Avoidance is shared by the coordinator and the router: a peer that failed
//     a replica call or a forward is skipped by every request of the node for a
//     while, and memberlist seeing it alive ends that at once.
//   - Every request this node sends to a peer (forwards, replica calls, repair)
//     goes through one counter (locality.go) that tells requests to its own zone
//     from requests to others, for INFO and /metrics; with no zones all are local.
//   - A node whose storage engine failed (Failed, Err: storage.Store.Failed) fails
//     every read and write of its replica from then on; its owner ends the process
//     instead of calling Close, which could wait for calls stuck in the engine.
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
//     (coordinator.Config.SyncIsCheap), so a killed node keeps its id and version
//     vectors do not grow an entry per crash.
//   - The quorum settings in effect are the coordinator's clamping of N, R and W
//     to the ring's member count (logged when it changes); DPREFLIST, the router,
//     status and INFO all use it.
package node

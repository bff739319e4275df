// Package coordinator runs Dynamo's request paths for one key over its N replicas:
// quorum reads that merge the replicas' records, writes that give a value a new dot
// of this node's actor and send the stored record to the other replicas, and
// read-modify-writes that do both.
//
// Without a Cluster the coordinator serves the local replica alone (N = R = W = 1).
// With one, each request is planned from the ring, liveness and the peers this
// node avoids (plan, a pure function): the first N members of the key's preference
// list, a dead or avoided one replaced by a live, not-avoided fallback, which
// keeps the record as a hint for it (sloppy quorum): with zones, the first such
// fallback in the owner's zone, so the copy stays in its data center, and only
// when the zone has none the first of another zone (ring.Ring.Fallback); without
// zones the next one in order. The fallbacks left over are the request's spares. A read asks its own replica and as many others as R needs, more
// if one fails or is slow, and answers with the merge of R records; the replicas it
// asked that were behind get the merged record in the background (read repair). A
// write is acknowledged after W durable copies, its own included; a replica that
// fails, and an owner with no fallback left, get a hint stored here, which repair/
// delivers later.
//
// Requests do not wait for failure detection (Dynamo's sloppy quorum). A replica
// call that fails (refused, reset, an error) or has not answered within
// ReplicaTimeout (default RequestTimeout/4) is replaced at once, while its request
// still lacks its quorum, by a spare (the first in the owner's zone, else the
// first), standing in for the same owner; its
// answer counts toward R or W for that owner. The first call is not cancelled: if
// it succeeds later it adds a copy, not an answer, since each owner counts once.
// The peer is recorded in the Avoidance the node shares between all its requests
// (and its forwarding), so for DefaultAvoidFor later plans replace it by a
// fallback at once instead of waiting for it again; then it is tried again. The
// request's deadline (RequestTimeout from its start, or the caller's earlier one)
// bounds the whole request: a read-modify-write's read and writes share it, and so
// do replacements and read repairs.
//
// Durability (WriteOptions.Durability, WriteResult.Durable): a write's local copy
// is made durable in one of three ways, chosen per write:
//
//   - With other replicas to write and Config.SyncIsCheap (the store's sync is a
//     write to the OS: --fsync interval or none), it commits with its sync before
//     its record leaves for them: one Pebble commit, and no record reaches a
//     replica before the OS has it here, so a killed node cannot lose a dot that
//     other replicas carry (node/ keeps its actor id after such a kill).
//   - With other replicas and a sync that waits for the disk, it commits unsynced
//     and the sync runs alongside the replica writes, counting as this node's
//     acknowledgement, so the write pays one round trip, not a round trip and an
//     fsync in series.
//   - With no other replica, a DurableOnReturn write commits with its sync (one
//     commit, not a write and a separate sync), and a Deferred one commits
//     unsynced for the caller's Sync, which the writes of a batch share.
//
// A DurableOnReturn write that is not durable by then (the alongside sync had not
// finished, or it wrote nothing and what it decided on may be another writer's
// Deferred write) is synced before Modify returns; a Deferred one says so in its
// result and the caller syncs. Replica writes (Serve) are durable before they are
// acknowledged, an ack with nothing new to merge included.
//
// Invariants:
//
//   - A write is acknowledged only after W replicas (the coordinator counting when
//     it is one of the key's N) stored the record that holds it durably: W
//     distinct owners, each in person or through a fallback's hint for it. A read
//     likewise merges the answers of R distinct owners.
//   - Records from replicas are only ever merged with vclock.Sync (through
//     record.SyncStrings): delivering one twice, late, or out of order changes
//     nothing. A record with a typed part (issue 20) is refused, never merged by
//     its string layer alone, until record/ merges every layer: a write over it
//     fails, a read counts its reply as failed, and read repair skips the key.
//   - Every write's causal context is explicit: Put takes the client's clock;
//     Modify uses the record its function saw (the local one, merged with R
//     replicas' when ReadFirst), so the write supersedes exactly what was read.
//   - Dots are never reused or over-claimed, so a write supersedes exactly what
//     its context covers. A node's actor id carries the incarnation of its data
//     (see node/), and a fresh entry starts at a monotonic, clock-based floor
//     (kept across restarts by Config.Floor, so a clock set back does not
//     lower it),
//     which claims every lower dot of its actor as seen (vclock, "Fresh
//     counters"). That claim is safe only while the node's record of the key
//     holds every live dot it wrote: within one partition epoch it does, since
//     the node applies its own dots locally before they leave, keeps its own
//     entry through pruning, and deletes a record only once every value in it is
//     dead everywhere (expired, or a tombstone purged on all replicas; or
//     evicted by Evict on a ring of this node alone holding no hint, where no
//     other node holds a copy: evict.go). A
//     partition drop (a handoff, FLUSHALL) loses records whose values other
//     replicas still hold; the store raises the partition's epoch with the drop
//     (storage.Store.Epoch), and from then on the node writes the partition's
//     keys as Actor+":"+epoch (ActorFor), an actor whose dots nobody holds yet,
//     so a node that holds the partition again never supersedes its older values
//     by accident. The epoch is read under the key's lock, which a drop takes.
//   - A write's record is pruned (vclock.Prune) only of idle entries it does not
//     need (vclock.Needed: the coverage its context adds to what the local record
//     knew superseded) and, below 5*MaxEntries, only of entries older than
//     PruneAge; so a value the client read and replaced never comes back as a
//     sibling of the write, and one superseded less than PruneAge ago never
//     comes back from a stale replica (vclock's package doc gives the assumption).
//   - A request past its deadline is not executed. Modify applies a write only
//     while its request is in time: under the key's lock, immediately before its
//     function decides the write, it checks the request's context and deadline
//     (the context's; with a Cluster, also RequestTimeout after Modify began, the
//     bound of the whole request) and otherwise returns ErrLate, having written
//     nothing. The replica write handlers (Register) do not apply a write whose
//     caller's deadline (which the transport converts into this node's clock) has
//     passed, checked when the merge is decided under the key's lock; the caller
//     keeps a hint if it can store one within RequestTimeout/32 of the request's
//     deadline (a stalled node leaves the key to anti-entropy). So no record a request read travels
//     later than RequestTimeout + RequestTimeout/32 after the request began, which
//     tombstone purge's settle counts on (repair/purge.go). So a node that was paused, or cut off while a forwarded command or a
//     replica write sat in a queue, does not apply it after its client got an
//     answer. The time a write orders by for plain reads (its value's timestamp)
//     is not taken here: the proxy fixes it when the front node accepts the
//     command, so a run within the deadline but late still cannot order after
//     writes the client saw complete after it.
//   - The coordinator knows no wire protocol and no command semantics: liveness,
//     expiry and sibling resolution are the caller's. Replica messages are the
//     replica protocol of package peer (types, codecs), carried by any
//     peer.Caller; Register puts this node's handlers on a peer.Mux.
//   - Work that outlives a request (replica writes past the quorum, a replica
//     write that failed after the answer sending its record to a spare,
//     read repairs) runs in goroutines Close cancels and waits for, and keeps
//     copies of the key and record it uses, made when the request starts it:
//     never the caller's memory, which the caller may reuse once the call
//     returns (a front end's input buffer).
//   - plan is pure: it depends only on the ring (preference lists and zones),
//     liveness, the avoided peers and this node's name. Avoidance is advice: an
//     avoided owner with no fallback left is still asked, and a dead one never is.
//   - A fallback or spare standing in for an owner is in the owner's zone
//     whenever one usable and not already taken by the request is; with a ring
//     of one zone (or none) the plan is exactly the zone-blind one.
//
// Non-blocking requests (nonblock.go): on a single node, ModifyIn and GetIn serve
// an event loop, staging writes in its storage.WriteSet (committed once per
// iteration) and never waiting; whatever would wait (a quorum request, the
// seal's lock, a busy key lock, a full set) returns ErrWouldBlock before any
// side effect, for the caller to run Modify or Get instead. A set holding a
// staged write keeps this node's write admission, so Seal waits for it.
//
// Write batches (writebatch.go): ModifyBatch runs the writes an event loop
// collected in one iteration as Modify would one after another, sharing only
// the local storage batch (one synced commit, before any record leaves) and
// one message per replica node for the writes' first calls. Every invariant
// above holds for each write of a batch: its own plan, deadline, W
// acknowledgements from distinct owners, spares, hints and errors, so one
// write's failure never changes another's outcome.
//
// Read batches (readbatch.go): GetBatch runs the reads of one iteration as Get
// would each, sharing only one pass over the local store and one message per
// replica node (peer.MsgReadBatch) for the reads' first calls; each read keeps
// its own plan, R answers from distinct owners, deadline, slow-replica and
// failed-call replacements, speculation and background read repair. A peer
// that fails for a message, or for one key of it, fails only those calls.
// ModifyBatch's reads-first go through the same path.
//
// A Coordinator is safe for concurrent use.
package coordinator

// Package proxy is dynakv's front door: the semantics of familiar Redis and memcached
// commands (GET, SET NX, INCR, APPEND, EXPIRE, gets/cas, ...) built on Dynamo
// operations, shared by both protocol front ends (resp/ and memcache/), which only
// parse and encode.
//
// Every command is an Op, a plain value executed by Do into a Result. Front ends build
// Ops and run them through their connection's Session (see Durability); keyspace-wide
// commands (DBSize, Scan, Keys, RandomKey, FlushAll) are methods of their own and
// always run on this node. Front ends only parse and encode:
// every rule of a command is here, memcached's meta flags included (C is CondCAS, N
// is Op.Vivify, ma's T is OpIncrUnsigned with SetExpiry).
//
// Each read-modify-write Kind is decided by one applier (apply.go): a pure function
// of the op and the key's current item that fills the Result and returns the value
// to write, or none. The few rules that take more than one step (Vivify, ma's T) run
// their steps on the node that executes the op (steps.go).
//
// Routing (DESIGN.md, "Request paths"): a read-modify-write must be coordinated by a
// node in the key's top-N preference list. Do asks Config.Router (nil: everything runs
// here) about every single-key op: when Route names another node, the whole op is
// forwarded there with Router.Forward and that node's result or error is the answer;
// when Route returns "", or Forward fails with an error wrapping ErrRunLocally (the node
// is unreachable or refused), the op runs here, so the store stays writable. A Local
// DGET (read this replica only) and unknown Kinds are never forwarded. The receiving
// node runs a forwarded op with DoLocal, which never consults the router, so an op is
// forwarded at most once: Register puts that handler on the node's peer.Mux, for the
// internode message peer.MsgForward.
//
//   - The node that executes an op counts it: hits, misses and Config.OnRead are
//     reported by the coordinating node, not by the front door that forwarded the read.
//   - A delayed flush_all is per node: it applies to the ops the node it was sent to
//     executes (Do and DoLocal both check it), whoever forwarded them.
//   - The memory limit is per node too: an op that may grow memory asks
//     Config.Memory of the node that executes it (ErrOOM when full), so a full
//     owner refuses a forwarded write, and the refusal travels back as ErrOOM.
//   - A forwarded op is made durable by the node that runs it: DoLocal returns
//     once its outcome is durable, since the forwarding node's Flush cannot cover
//     another node's writes.
//   - Op.R, Op.W and Op.Local are per-request quorum options, passed to the
//     coordinator as they are.
//   - An op's time is fixed when the front node accepts it: Do sets Op.Accepted
//     (by this node's clock) and a forwarded op carries it, so wherever and however
//     late the op runs, the value it writes is stamped with that time (the order
//     plain reads resolve siblings by) and its expiry decisions use it. A run that
//     comes late therefore cannot order after writes its client saw complete after
//     it; a run past its deadline does not happen at all (coordinator.ErrLate; the
//     transport refuses late requests, and DoLocal runs under the forwarding
//     node's deadline).
//
// Durability: no reply may acknowledge a write, or a decision taken on reading one,
// before it is durable (per the node's --fsync mode: storage's package doc). A front
// end runs a connection's ops through a Session (session.go) and calls its Flush
// before it writes the replies of a pipelined batch: the batch's writes share one
// WAL sync, and a lone write costs one synced commit. Do and DoLocal are sessions
// of one op: they return once the outcome is durable. The coordinator decides how
// each write becomes durable (coordinator's package doc); the proxy only says
// whether the caller will sync later (coordinator.Deferred) or not
// (coordinator.DurableOnReturn). Copy's steps are durable on return, one by one.
//
// Try mode (try.go): an event loop runs a single node's ops with Session.Try,
// staged in its WriteSet (coordinator.ModifyIn, GetIn) and committed once per
// iteration; an op that would wait returns ErrWouldBlock with its reason,
// having done nothing, and runs again with Do off the loop.
//
// Batches (batch.go): an event loop collects the batchable ops of one iteration
// (plain SET, single-key DEL, plain GET; Batchable) into a Batch and runs them
// with DoBatch: each maximal run of writes with one coordinator.ModifyBatch,
// each run of reads with one coordinator.GetBatch, in batch order; each op's
// outcome is what Do gives it alone, in order, durable on return. A front end
// that runs a command's op ahead in a batch hands its outcome to the
// connection's Session (Preset), whose Do of that op then returns it, so the
// command's own handler answers it.
//
// Ops and outcomes cross the network in the binary form of codec.go (Op.AppendBinary,
// DecodeOp, AppendResult, DecodeResult): versioned, canonical, strict and fuzzed. It
// keeps nil and empty slices apart, so a forwarded Result is exactly what the
// coordinating node returned, and it keeps the identity of the errors front ends map
// to wire text (the sentinels below, context errors, *coordinator.QuorumError).
//
// Semantics (DESIGN.md, "Familiar commands on top of Dynamo"):
//
//   - A value is live when it is not a tombstone and not expired (vclock.Value.Live).
//     Plain commands follow one rule (resolve), last writer wins: the winner is the sibling with
//     the greatest (timestamp, dot) among all of them, tombstones and expired values
//     included, so every node answers alike; the key exists for them (GET, EXISTS,
//     TTL, SET NX/XX, INCR, APPEND, cas, KEYS, SCAN, RANDOMKEY ...) only when that
//     winner is live, and then its value is the key's value. A DEL or an expiring
//     SET therefore hides every older value, also one concurrent with it (one its
//     read missed), as Redis users expect. DGET returns every live sibling;
//     Item.Siblings counts them.
//   - Plain writes (SET, DEL, INCR, APPEND, EXPIRE, cas ...) are read-modify-writes
//     through the coordinator with the context of the record they read: they supersede
//     every sibling they saw (last writer wins for plain clients). Read-modify-writes
//     keep the current value's expiry and flags unless the command changes them, as
//     Redis and memcached do.
//   - Every read-modify-write but a plain SET (no NX/XX, CAS, GET or KEEPTTL) asks the
//     coordinator to read the key from R replicas first (WriteOptions.ReadFirst), so it
//     decides on writes coordinated elsewhere too. A plain SET overwrites what the
//     coordinator has seen, as Dynamo's put does; DPUT and DDEL carry their context.
//   - DPUT and DDEL write with the client's context: they supersede exactly the
//     siblings that context covers.
//   - A memcached cas unique is the 64-bit hash of the record's context
//     (vclock.Clock.Hash): a CondCAS write succeeds when the current context hashes
//     to Op.CAS; a CAS of 0 matches no item.
//
// Errors are the sentinel values below; resp/ and memcache/ map them to wire text.
// A Proxy is safe for concurrent use and owns no goroutines.
package proxy

// Package cluster is the membership of a dynakv cluster: who the ring members are
// (membership) and which of them are alive (liveness). It decides nothing about keys:
// ring/ computes placement from the member set, and coordinator/ and repair/ decide
// what to send. How nodes talk to each other is the separate package
// cluster/transport; the two share nothing but the cluster secret, which node/ hands
// to both (gossip encryption here, the transport's handshake there).
//
// # Membership
//
// The ring member set is explicit and durable, and independent of liveness. It is a
// small state-based CRDT, Members (members.go): name -> Member{State, Weight, Zone,
// Version, client and cluster addresses}. MergeMember keeps, per name, the maximum of
// a total order: a Removed entry beats any other, then the higher Lamport Version,
// then the higher State (Removed > Leaving > Active), then the byte-wise greater
// encoding. Merging is therefore commutative, associative and idempotent, and every
// node that has seen the same entries holds the same set and computes the same ring
// (Members.Ring), whatever order the entries arrived in.
//
// A member's zone (rack, availability zone or data center) is what ring/ spreads
// each partition's replicas over. Like the weight and the addresses it is the node's
// own to set, and a change travels with the entry's new version. An encoding carries
// zones only when a member has one (version 2 of the codec), so a cluster without
// zones writes, persists and gossips exactly the bytes of the version before zones,
// and a record persisted by that version decodes with no zone. Nodes of that
// version cannot read version 2: zones are for clusters whose nodes all know them.
//
// Membership (membership.go) is the I/O shell around that set. It persists the set in
// storage (MetaStore, name MembersMetaName) and spreads it through hashicorp/memberlist's
// delegate: a changed entry is broadcast by gossip (and re-broadcast by every node it
// changes), and the whole set is exchanged in memberlist's periodic push/pull, so a
// node that missed broadcasts catches up. Each node also carries its own entry as
// memberlist node metadata, so peers learn its addresses as soon as they see it.
// A node enters the set itself at start, as Active with its version bumped; it leaves
// only by leave (graceful, with partition handoff first) or by an administrator's
// Remove (for a dead node).
//
// Liveness comes from memberlist's SWIM failure detector and is not membership: a
// node that crashes or is shut down stays a ring member (its partitions' writes go to
// fallbacks as hints) and only Alive turns false; OnAlive fires when it comes back, to
// replay those hints. Gossip is encrypted and authenticated with the cluster secret
// (memberlist's SecretKey is sha256 of it), so nodes with a different secret cannot
// join. Nodes join through seed addresses, or through the persisted addresses of the
// other members when restarted, retrying with backoff until one answers.
//
// Invariants:
//
//   - The member set is persisted before it is acknowledged to anyone: before it is
//     visible through Ring, Member or Members, before it is gossiped, and before
//     OnChange. A change whose persisting fails is dropped (and arrives again by
//     gossip).
//   - Removed is final for a name. A removed node that restarts with its old data
//     directory learns of its removal and stays out of the ring; with the removal
//     persisted it refuses to start (ErrRemoved). To come back it needs a new name.
//   - Only a node writes its own entry, except for Remove. If a peer holds a newer
//     entry for a node than the node itself (its data directory was lost), the node
//     outvotes it with a higher version.
//   - Ring is never nil and is replaced, never modified, when the set changes.
//   - The member set is bounded: at most MembersMaxRing (1024) entries not Removed
//     and MembersMaxCount (4096) in all. DecodeMembers refuses a larger set (or a
//     longer encoding than MembersMaxEncodedLen), Merge leaves out the new names
//     past a bound (Membership logs them as an error), and a node that would take
//     its persisted set past one refuses to start. At the bounds, which new names
//     got in may differ between nodes: the set is a CRDT only within them.
//   - Every decoder of network input (DecodeMembers, DecodeMember) validates
//     strictly, never panics and is fuzzed.
//
// # Concurrency
//
// Membership is safe for concurrent use by any number of goroutines, and owns its
// goroutines: Close stops them, waits for them and is idempotent.
// Membership calls OnAlive and OnChange from one goroutine of its own, never while
// holding its locks or memberlist's, so callbacks may call any Membership method
// except Close (which waits for that goroutine). Members and Member values are plain
// data: a Members map is not safe for concurrent mutation, and what Membership
// returns is the caller's to keep.
package cluster

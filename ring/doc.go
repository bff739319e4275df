// Package ring decides which nodes own which keys: it maps keys to a fixed number Q of
// partitions and partitions to an ordered preference list of ring members, by weighted
// rendezvous hashing.
//
// A key's partition is xxhash64(key) mod Q (Q a power of two, default 1024). The
// preference list of partition p is every member sorted by score(member, p) =
// -weight / ln(u), u in (0, 1) derived from xxhash64 of the member's name and p, highest
// first, ties broken by name. The first N members are p's replicas; the rest are the
// fallbacks that take hinted writes for sloppy quorum, in order.
//
// Invariants, which the tests check:
//
//   - Placement is a pure function of the member set {(name, weight)} and Q: input
//     order does not matter, and every node, on every architecture, computes the same
//     lists without talking to the others (the float arithmetic is written to be
//     bit-for-bit portable).
//   - Keys never move between partitions: PartitionOf depends only on the key and Q.
//     Only partitions move between nodes.
//   - Adding a member only inserts it into the lists, leaving the others in their
//     relative order, so the only partitions whose replicas change are those where it
//     lands in the top N (about N/S of them; about 1/S change primary). Removing a
//     member only deletes it from the lists.
//   - A member's expected share of primaries is its weight over the total weight.
//
// A Ring is immutable once New returns and safe for concurrent use. The slices that
// PreferenceList and Replicas return are shared, precomputed at New so the request path
// allocates nothing; callers must not modify them. To change membership, build a new
// Ring and swap it in (for example with an atomic.Pointer).
//
// The package is pure: no I/O, goroutines, clocks or randomness.
package ring

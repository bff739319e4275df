// Package ring decides which nodes own which keys: it maps keys to a fixed number Q of
// partitions and partitions to an ordered preference list of ring members, by weighted
// rendezvous hashing spread over zones.
//
// A key's partition is xxhash64(key) mod Q (Q a power of two, default 1024). The
// plain order of partition p is every member sorted by score(member, p) =
// -weight / ln(u), u in (0, 1) derived from xxhash64 of the member's name and p, highest
// first, ties broken by name. Each member has a zone (a rack, availability zone or
// data center; "" is a zone like any other, the one of members without a zone). The
// preference list of p is its plain order dealt out over the zones, round by round:
// first the best member of each zone, in plain order, then the second best of each
// zone that has one, in plain order, and so on. Equivalently, repeatedly take the
// first remaining member in plain order among the zones that have given the fewest
// members so far. With one zone the preference list is the plain order. The first N
// members are p's replicas; the rest are the fallbacks that take hinted writes for
// sloppy quorum, in order; Fallback picks one in a failed replica's zone first.
//
// Invariants, which the tests check:
//
//   - Placement is a pure function of the member set {(name, weight, zone)} and Q:
//     input order does not matter, and every node, on every architecture, computes
//     the same lists without talking to the others (the float arithmetic is written
//     to be bit-for-bit portable).
//   - Zones: for every partition and every N, the first N members are in N distinct
//     zones when there are at least N zones; with Z < N zones, every zone holds one of
//     them and the rest are as even as the zones' sizes allow (a zone holds at most
//     one more than any zone that still has members left over). So losing one zone
//     loses at most ceil(N/Z) replicas of any partition: with at least N zones one,
//     and a quorum with W, R <= N-1 survives the loss of any zone.
//   - A member set whose members all have the same zone (in particular none) is
//     placed exactly as plain rendezvous hashing placed it before zones existed
//     (testdata/zoneless.golden pins those lists).
//   - Keys never move between partitions: PartitionOf depends only on the key and Q.
//     Only partitions move between nodes.
//   - Movement is minimal. Without zones, adding a member only inserts it into the
//     lists, leaving the others in their relative order, so the only partitions
//     whose replicas change are those where it lands in the top N (about N/S of
//     them; about 1/S change primary); removing one only deletes it. With zones,
//     adding a member changes the first N of a partition (for any N) only by the new
//     member taking the place of exactly one other, and removing one only by one
//     other member taking its place; the partitions where that happens are those
//     the new member must take for its share. For example, a tenth node joining
//     nine in three zones of three (N=3) changes one replica of a quarter of the
//     partitions, its zone's share, so 1/12 of all replicas move (1/10 without
//     zones).
//   - A partition's primary is its best-scoring member, zones or not, so a member's
//     expected share of primaries is its weight over the total weight. Its share of
//     the replicas is its share of its zone's weight times its zone's share; with N
//     or fewer zones every zone holds a replica of every partition, whatever its
//     size, so zones should have similar capacity.
//
// A Ring is immutable once New returns and safe for concurrent use. The slices that
// PreferenceList and Replicas return are shared, precomputed at New so the request path
// allocates nothing; callers must not modify them. To change membership, build a new
// Ring and swap it in (for example with an atomic.Pointer).
//
// The package is pure: no I/O, goroutines, clocks or randomness.
package ring

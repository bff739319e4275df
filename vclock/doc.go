// Package vclock implements dotted version vector sets (DVV sets), the causality
// structure dynakv keeps for every key, after Almeida et al., "Scalable and Accurate
// Causality Tracking for Eventually Consistent Stores" (DAIS 2014) and Riak's dvvset.
//
// A Set is what one replica holds for one key: a list of entries (actor, counter,
// values) sorted by actor, plus anonymous values that carry no dot. The values of an
// entry are newest first: Values[i] carries the dot (Actor, Counter-i); every dot of
// that actor at or below Counter-len(Values) is known to be superseded. A Clock (the
// version vector, what Join returns and what clients hold as an opaque context) maps
// each actor to the highest counter seen.
//
// Invariants, which every function here preserves and the tests check:
//
//   - Entries are sorted by Actor, actors are unique, and len(Values) <= Counter.
//   - Sync is commutative, associative and idempotent (a join-semilattice), so replicas
//     may merge records in any order, any number of times, and converge. (Anonymous
//     values, which only New makes and no stored record carries, are the exception,
//     as in Riak's dvvset: their Sync is not associative.)
//   - Update(local, ctx, actor, v) supersedes exactly the values whose dots ctx covers;
//     every other value survives as a sibling. An empty context supersedes nothing.
//   - Nothing here drops a value that is not covered by a causally later write. Prune
//     only forgets the counters of other actors' entries that hold no value: a later
//     write that was causally after the forgotten counters can then show up as a
//     sibling of an old copy still held by a stale replica. Pruning never loses a value.
//
// The package is pure: no I/O, no clocks, no randomness. Callers pass the time (for the
// pruning order) and the fresh-counter floor explicitly. All functions treat their
// arguments as immutable and return fresh values, so a Set may be shared between
// goroutines once built.
//
// Fresh counters. When an actor writes a key whose record holds no value of its own
// (no entry, an entry from a stale context, or one whose values the write supersedes),
// the new dot is at least the caller-supplied floor. Nodes pass a node-wide,
// monotonically increasing floor (unix microseconds), so that a key whose record was
// reaped (expiry) or purged (tombstone) and written again never reuses a dot that an
// old copy on another replica still carries. Should a dot be issued twice anyway,
// Sync keeps the run with the newer values on every replica, so replicas converge.
package vclock

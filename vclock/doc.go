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
//     as in Riak's dvvset: their Sync is not associative.) Where both sides hold a
//     dot, Sync keeps one value for it by a total order (compareMerge): an expired
//     value on one side and the tombstone a reaper made of it (Value.Tomb, Bury) on
//     the other merge to the tombstone, so replicas that reap at different moments
//     converge on the reaped form.
//   - Update(local, ctx, actor, v) supersedes exactly the values whose dots ctx covers;
//     every other value survives as a sibling. An empty context supersedes nothing.
//   - Nothing here drops a value that is not covered by a causally later write.
//   - Prune never forgets an entry that holds a value, the coordinating actor's own
//     entry, or an entry the write being pruned needs (Needed): one for which the
//     write's context is above what the local record already knew superseded, that
//     is, one whose coverage supersedes a value now, here or on the replicas the
//     client read. So the record a write leaves still descends the write's context
//     restricted to the needed actors, and a value the client read and replaced
//     never survives the write as a sibling once replicas sync.
//
// What pruning can still do. It forgets the counters of other actors' idle entries
// that the write does not need, least recently active first, and only once they are
// older than the age rule's MinAge (Entry.Active: the latest time, merged across
// replicas, that the actor wrote or a write needed its entry; the coordinator's
// default is 24 hours) unless the record is above HardLimit
// entries. A value whose supersession is forgotten that way comes back as a sibling
// if a replica still holds it when the records sync; no value is ever lost. The
// coverage of a dot is always brought in by a write that needed it (its Active is at
// least that write's time, and Sync keeps the maximum), so under the assumption that
// every write reaches every replica within MinAge (directly, through a hint or by
// anti-entropy) and no copy older than that is merged later, a superseded value is gone from every replica
// before its coverage can be forgotten, and pruning never makes two causally ordered
// values concurrent. A replica that was away longer, or a record above HardLimit
// (which takes a hostile context or a pathological history), can see an overwrite
// return as a sibling; plain GET still resolves it by timestamp.
//
// The package is pure: no I/O, no clocks, no randomness. Callers pass the time (for the
// pruning order) and the fresh-counter floor explicitly. All functions treat their
// arguments as immutable and return fresh values, so a Set may be shared between
// goroutines once built.
//
// Fresh counters. When an actor writes a key whose record holds no value of its own
// (no entry, an entry from a stale context, or one whose values the write supersedes),
// the new dot is at least the caller-supplied floor. Nodes pass a node-wide,
// monotonically increasing floor (unix microseconds, never lower than what an
// earlier run of the same actor handed out), so that a key whose record was
// purged (tombstones, expired values included once the reaper turned them into
// tombstones) and written again never reuses a dot that an old copy on another
// replica still carries. Should a dot be issued twice anyway, Sync keeps the newer
// value for it on every replica, so replicas converge.
//
// The jump is an assertion: a DVV entry (actor, counter, values) says every dot of
// actor below the run is superseded, so the jump claims every dot of the actor below
// the floor as seen. That is true only while the record the caller updates holds
// every dot of that actor that is still live anywhere, which is the caller's
// contract: a node applies its own dots to its record before they leave it, keeps the
// actor's own entry through Prune (Keep), and deletes a record only once every value
// in it is dead everywhere (a tombstone, expired values included, purged on every
// holder). A node that lost records it had (a partition dropped after a handoff and
// held again, data lost in a crash) must write as a new actor from then on
// (coordinator: per-partition epochs; node: incarnations), whose dots nobody holds
// yet.
package vclock

// Package crdt holds the conflict-free replicated data types under dynakv's typed
// keys (counters, hashes, sets, HyperLogLog): causal contexts, dot-indexed fields,
// and the joins and deltas replicas merge them with. It is the pure core of issue
// 20; record/ builds a key's record from these pieces and storage, peer, repair
// and the coordinator move them (see issue20-design.md).
//
// # Model
//
// Every typed event (an add, an update, an increment, a TTL change) takes a fresh
// Dot (actor, counter) from a Context with Context.Next. An element of a collection
// is a Field: the entries (dot, payload) of the events that made it what it is. A
// collection is an ORSWOT (observed-remove set without tombstones): its elements'
// fields plus one Context, the dots the replica has seen. An entry whose dot the
// context covers but no field holds was removed; nothing else records a removal,
// so removed elements leave no tombstone.
//
// Two states of an element merge with MergeElem: (L ∩ R) ∪ (L \ Cr) ∪ (R \ Cl).
// An entry survives unless the other side saw it and dropped it, so a remove
// removes only what it observed and an add concurrent with it wins.
//
// Replicas exchange deltas, not operations (Almeida et al., "Delta State
// Replicated Data Types"): an ElemDelta is a small state, the entries an operation
// added (Dots) plus the dots it superseded (Seen), and its context is exactly
// Dots ∪ Seen. ApplyElemDelta equals joining that state, and JoinDelta combines
// two deltas of one element into one, so deltas may be applied in any order, any
// number of times, accumulated (hints) or lost and made up by a later state
// exchange: dynakv has no reliable causal broadcast, which op-based CRDTs need.
// A clear (DEL, expiry) is the state (no elements, context C): each field loses
// the dots C covers (Field.Remove) and the context gains C.
//
// Registers (a hash field's value, a counter's base) pick the entry with the
// greatest Stamp, (timestamp, dot), the order plain GET uses among string
// siblings (vclock.Winner). A typed key's TTL is a register of its own
// (EffectiveTTL): concurrent EXPIREs keep the longest, and PERSIST beats any TTL.
//
// # Counters
//
// A counter (INCR, INCRBY, DECR, DECRBY, INCRBYFLOAT, GET, and SET on a counter
// key; HINCRBY, HINCRBYFLOAT, HSET and HGET on a hash field) is a Field of
// register entries (bytes a SET wrote, at its TS) and increment entries, at most
// one per actor (I, the actor's integer sum; F, its float sum; IsFloat once an
// INCRBYFLOAT touched it). CounterOf resolves it, the same on every replica:
//
//   - value = the register with the greatest Stamp, read as a number (0 when
//     none), plus every I, summed exactly in 128 bits, plus every F, summed in
//     dot order and added last. Integers never overflow: concurrent INCRs that
//     each fit may sum past int64, and the value renders exactly.
//   - GET (Counter.AppendText) gives the register's bytes exactly while there is
//     no increment entry (SET 010, GET 010); then the decimal integer; with a
//     float part, INCRBYFLOAT's rendering (proxy's FormatFloat: the shortest
//     plain decimal that reads back, "0" for -0). A register that is not a number
//     (a hash field HSET to "abc" concurrently with an HINCRBY) shows its bytes,
//     the increments kept but hidden until a write supersedes them.
//   - INCR reads the value as Redis reads its stored string: the rendering by
//     string2ll (Counter.Int64), so "010", "2.5" and sums beyond int64 are not
//     integers; INCRBYFLOAT by string2ld (Counter.Float64), infinities refused.
//
// The mutators take the coordinator's view (the field and the context it is
// stored under) and return an ElemDelta, the package's one delta: an op adds an
// entry and supersedes observed dots, which is what Dots and Seen say, so
// ApplyElemDelta, JoinDelta and MergeElem carry counters with the same laws.
// CounterIncr and CounterIncrFloat supersede the actor's own increment entry
// with a fresh dot holding its sums plus the increment, and refuse as Redis
// does, changing nothing: ErrNotInteger, ErrOverflow (the value plus the
// increment, or the actor's own sum, leaves int64), ErrNotFloat, ErrNaN.
// CounterReset (SET on a counter, HSET on a field) removes every register and
// increment entry it observed and adds one register: increments it did not see
// survive, so SET 5 concurrent with INCR at another node gives 6.
// IsCounterNumber says whether a SET's bytes make a reset or a string write.
//
// # The safety rule
//
// An element context travels only with the effects it covers: a delta's own dots,
// a clear ("every dot in C is dead"), or one element's merged state. A replica that
// joined another's whole collection context before merging every element it covers
// would take the other's added entries for removed ones and drop them for good.
// So a range exchange (anti-entropy, handoff) merges element ranges first and joins
// the context last; an exchange that stops halfway has joined no context and left
// only valid partial merges. The tests show both orders.
//
// # Invariants
//
// Every function preserves these, and the tests check them:
//
//   - A Context's dots are per actor runs of counters, sorted, disjoint and not
//     adjacent (the canonical compact form); equal contexts are identical and
//     encode identically.
//   - A Field's entries are sorted by dot, each dot at most once, and covered by
//     the context the field is stored under.
//   - Join of contexts, MergeElem of elements (with their contexts joined) and
//     JoinDelta are commutative, associative and idempotent; applying a delta
//     equals joining it as a state.
//   - A dot held twice with different payloads (a dot reused, which the
//     fresh-counter contract forbids) merges to the greater payload by a total
//     order on every replica, as vclock's Sync does, so replicas still converge.
//   - An entry is dropped only when a context that has seen it (a delta's Seen, a
//     clear, or a state that no longer holds it) says so.
//
// Fresh dots follow vclock's fresh-counter contract: Next is one above the actor's
// highest dot in the context, or the caller's node-wide floor when there is none;
// a node applies its own dots to its record before they leave it, and one that
// lost records writes as a new actor (epoch or incarnation).
//
// The package is pure: no I/O, no clocks, no randomness, no goroutines. Callers pass
// times and floors. Functions treat their arguments as immutable and return fresh
// values (or their unchanged arguments), so values may be shared between goroutines.
package crdt

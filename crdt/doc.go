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
// A counter (INCR, INCRBY, DECR, DECRBY, INCRBYFLOAT, GET, SET and DEL on a
// counter key; HINCRBY, HINCRBYFLOAT, HSET, HDEL and HGET on a hash field) is a
// Field of increment entries and register entries:
//
//   - an increment entry holds its actor's running totals (I, the integer sum,
//     exact; F, the float sum; IsFloat once an INCRBYFLOAT touched it) since its
//     chain began (Base). The actor's next increment supersedes it with a fresh
//     dot holding the totals plus the increment; nothing else ever supersedes
//     it, so there is at most one per actor and a counter stays O(actors).
//   - a register entry is a value (bytes a SET wrote, at its TS) or a removal
//     marker (Del: a DEL, HDEL), and records Obs, the increment totals the
//     writer's view held (per actor, its entry with the greatest dot). A write
//     supersedes the registers it observed, never an increment.
//
// CounterOf resolves it, the same on every replica:
//
//   - the winner is the value register with the greatest Stamp, and its Obs
//     the observation. A value beats every marker (an HSET concurrent with an
//     HDEL keeps the field); with markers only, each removes what it observed:
//     the observation is their Obs joined.
//   - each increment entry counts what its actor added since the observation:
//     its totals minus the observed ones, the whole totals when the observation
//     holds nothing of its chain, nothing when it holds its dot or a later one.
//     So an increment counts iff the winning register did not observe it, and
//     "increments concurrent with the reset survive, increments it saw do not"
//     holds even when the actor increments again concurrently with the reset:
//     INCRBY 10 at b, SET 5 at a that saw it, INCR at b concurrently: 6.
//   - value = the winner's number (0 when there is none, or it is not a number)
//     plus the counted I, summed exactly in 128 bits, plus the counted F, summed
//     in dot order and added last. Integers never overflow: concurrent INCRs that
//     each fit may sum past int64, and the value renders exactly.
//   - live (CounterLive, HashLive): a value register is left, or some increment
//     counts. DEL then INCR gives 1 as on Redis, and an INCR concurrent with a
//     DEL survives with only its own increment.
//   - GET (Counter.AppendText) gives the register's bytes exactly while no
//     increment counts (SET 010, GET 010); then the decimal integer; with a
//     float part (a counted increment that changed F or became a float one),
//     INCRBYFLOAT's rendering (proxy's FormatFloat: the shortest plain decimal
//     that reads back, "0" for -0). A register that is not a number (a hash
//     field HSET to "abc" concurrently with an HINCRBY) shows its bytes, the
//     increments kept but hidden until a write observes them.
//   - INCR reads the value as Redis reads its stored string: the rendering by
//     string2ll (Counter.Int64), so "010", "2.5" and sums beyond int64 are not
//     integers; INCRBYFLOAT by string2ld (Counter.Float64), infinities refused.
//
// The mutators take the coordinator's view (the field and the context it is
// stored under) and return an ElemDelta, the package's one delta: an op adds an
// entry and supersedes observed dots, which is what Dots and Seen say, so
// ApplyElemDelta, JoinDelta and MergeElem carry counters with the same laws. An
// entry superseded by a newer one of its kind is dropped only by a context that
// saw the newer one, as for every element.
//
//   - CounterIncr, CounterIncrFloat: the actor's own entry superseded by one
//     with the increment added (a new chain when the view holds none of the
//     actor's entries, which only a clear removes). They refuse as Redis does,
//     changing nothing: ErrNotInteger, ErrOverflow (the value plus the
//     increment, or the actor's own total, leaves int64: an actor's total is
//     the net sum of its increments since its chain began, resets included),
//     ErrNotFloat, ErrNaN.
//   - CounterReset (SET on a counter, HSET on a field): a value register.
//   - CounterDel (DEL, a type change, HDEL): with increments, a removal marker;
//     without, the observed dots removed and nothing left.
//
// IsCounterNumber says whether a SET's bytes make a reset or a string write.
//
// Garbage: increment entries stay as long as the counter (one per actor that
// ever incremented it). A counter or hash field removed while it holds
// increments keeps a small grave, the marker plus the increment entries, until
// the purge of the tombstones issue removes it; a chain starting after that
// counts from nothing, so the purge is safe. A counter or field without
// increments leaves nothing. A clear (a hash's DEL, expiry) removes entries
// outright: an increment concurrent with it, by an actor whose entry it removed,
// still comes back with that actor's running total (record/ writes removal
// markers where that matters). Float totals are running sums, so an F that was
// once large loses the low digits of later small increments (INCRBYFLOAT 1e20,
// SET 0, INCRBYFLOAT 0.1 by one node gives 0). Sets have no totals.
//
// # Sets
//
// A set is an ORSWOT: each member is an element whose Field holds flag entries,
// normally one; it is a member while it holds one (SetLive). A command that writes
// several elements takes their dots from one Dots (NewDots: consecutive counters
// from Context.Next), never twice from one Context, which would give every
// element the same dot. Each mutator runs on the coordinator's view (ReadFirst)
// of the member and returns its ElemDelta and what the reply counts:
//
//   - SADD m...: per member, one fresh flag dot superseding every dot of m the view
//     holds ((*Dots).SetAdd; SetAdd for one member). Reply: the members not live
//     before. A live member is written again: its fresh dot is what makes the add
//     win against a concurrent SREM. A member named twice counts once if the
//     caller looks at the view after the first (as Redis counts it).
//   - SREM m...: per member, Seen = the dots the view holds (SetRem); nothing for
//     an absent one. Reply: how many were live. An add the remover did not observe
//     (a concurrent one, or one its ReadFirst missed) survives: add-wins.
//   - SISMEMBER, SMISMEMBER: SetLive of the merged point read.
//   - SPOP [count]: members picked from the coordinator's view, each removed as
//     SREM removes it, with the dots observed there. Through one node pops are
//     exactly-once (the key lock); two concurrent SPOPs through different nodes
//     may pick and return the same member, and both remove it.
//   - SMOVE src dst m: SADD at dst, then SREM of the observed dots at src:
//     at-least-once, never in neither.
//   - DEL, expiry: a clear of the observed collection context (record/).
//
// # Hashes
//
// A hash is an OR-map of counters: each field is an element whose Field holds
// register and increment entries, read as a counter (CounterOf); it exists while
// it is live (HashLive). Mutators run on the coordinator's view of the field:
//
//   - HSET, HMSET f v...: per field, one fresh register dot holding v at the
//     command's time and the increment totals of f the view holds, superseding
//     every register and marker of f ((*Dots).HashSet, which is CounterReset;
//     HashSet for one field). Reply: the fields not live before (HMSET: OK).
//     Increments it did not observe add to a numeric v while it wins;
//     concurrent HSETs leave several registers, the greatest (TS, dot) shows,
//     and the increments it did not observe count, whoever else observed them.
//   - HSETNX f v: HashSet when f is not live in the view (reply 1), else nothing
//     (reply 0). Two concurrent HSETNXs through different nodes both write; the
//     greater (TS, dot) shows.
//   - HDEL f...: per field ((*Dots).HashDel, HashDel for one field), nothing when
//     it is not live; without increments, Seen = the dots the view holds, and
//     the field leaves nothing; with increments, a removal marker under a fresh
//     dot (CounterDel), and the field's grave stays. Reply: how many were live.
//     An HSET the HDEL did not observe survives, whatever its time; an HINCRBY it
//     did not observe brings the field back with only its own increment.
//   - HGET, HMGET, HSTRLEN, HEXISTS: HashValue and HashLive of the merged point
//     read. HLEN and the scans count live fields, not graves. The value is the
//     winning register's bytes while no increment counts, else the rendered sum.
//     A register that is not a number, with increments (HSET f abc concurrent
//     with HINCRBY f 1), shows its bytes: every serial order of the two on Redis
//     leaves abc (HINCRBY after abc refuses), so that is what a user can expect.
//     The increments stay, hidden, until an HSET or HDEL that observed them wins;
//     HINCRBY meanwhile refuses.
//   - HINCRBY f n: CounterIncr on the field (HashIncr); a value that is not an
//     integer gives ErrHashNotInteger ("hash value is not an integer"), an
//     overflow ErrOverflow. Concurrent HINCRBYs all count.
//   - HINCRBYFLOAT f x: CounterIncrFloat (HashIncrFloat); x NaN or infinite gives
//     ErrHashIncrNaN ("value is NaN or Infinity") before the field is read, as
//     Redis 7 does; a value that is not a float ErrHashNotFloat; a NaN or
//     infinite result ErrNaN. The reply is the rendered value after it.
//   - DEL, expiry: a clear of the observed collection context (record/).
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

// Package record is what one replica stores for one key: a string layer (today's
// dotted version vector set of siblings, vclock.Set) plus, for the typed keys of
// issue 20 (counters, HyperLogLog, sets, hashes), a meta context, a TTL register
// and one layer per data type. It holds the types, their encodings and their
// semantics: how a key resolves, how records merge, how writes supersede what
// they observed, and what the reaper and tombstone purge see. Storage, peer,
// repair and the coordinator store and ship records through it and through
// nothing else (docs/design/issue20-data-types.md, sections 1, 2.2, 2.4 and 2.5).
//
// # Resolution (Resolve)
//
// The string layer is live when its plain-GET winner (vclock.Winner, tombstones
// and expired values included) is live; a counter when crdt.CounterLive(Val); an
// hll when Val holds an entry; a collection when Coll.Len > 0. Typed layers are
// dead once the TTL register's effective expiry has passed. The key's type is
// the live layer with the greatest (stamp.TS, stamp.Dot, type): a type conflict,
// left by concurrent writes of different types, resolves the same on every
// node, and DGET lists every live layer, winner first. A string-only record
// resolves exactly as plain GET did before layers existed.
//
// # Merge (MergeSafe)
//
// Meta state (Ctx, TTL, each layer's Val, Stamp and Dead) is shipped whole and
// joined: Str by vclock.Sync, Ctx by union, TTL and Val with crdt.MergeElem
// under both meta contexts, Stamp by maximum, Dead by maximum. An element context
// (Coll.Ctx) is never joined by MergeSafe (the safety rule): it travels only with
// the element effects it covers, and the caller joins it after merging the
// elements. MergeSafe keeps the receiver's collection state; on everything else
// it is a join-semilattice (commutative, associative, idempotent).
//
// # Writes (UpdateString, Supersede)
//
// Any write through a coordinator supersedes what it observed (a Context) in
// every layer. A string write updates Str as vclock.Update does (pruned as the
// coordinator prunes), ends an observed counter with crdt.CounterDel, removes
// observed hll and TTL entries, and clears each collection of its observed
// element context. A typed write discards the observed string values
// (vclock.Discard) and clears the other typed layers; on an expired key it
// clears every layer and the TTL first. Clears come back as element work for
// storage (Clear): a full one is a DeleteRange, a partial one a sweep.
//
// # Deltas (Delta, ApplyDelta, JoinDeltas)
//
// A write ships a Delta, not an operation: its header state but element contexts
// (whole, as MergeSafe joins it), each collection clear's observed element
// context (ClearC), and one crdt.ElemDelta per changed element (new dots, and the
// element's dots it superseded). ApplyDelta joins the header part into the
// receiver's record, applies the clears as UpdateString does and returns them
// with the element deltas as work for storage, which applies each with
// ElemDelta.Apply against the stored element and the collection's context, after
// the clears. Applying a delta twice changes nothing, and JoinDeltas(a, b) (how a
// hint accumulates) has the effect of applying a and b in either order. A string
// write's delta is Delta{Str}; on the wire a string-only key keeps its version 1
// record bytes, and deltas travel beside them only for typed keys.
//
// # Reaping and graves (Counts, ReapTime, GraveTime, Reap)
//
// A record counts for DBSIZE while a layer holds content, whatever the time. It
// is due for the reaper at its earliest string expiry, at the TTL's expiry while
// a typed layer has content, and at once while a partial clear is pending.
// Reaping buries expired string values (vclock.Bury) and clears every typed
// layer of an expired key with the local contexts, keeping the TTL entries. A
// record with no content left, no element key and no pending clear is a grave
// since its latest tombstone or layer death. On string-only records all four
// are exactly storage's functions of the string layer before layers existed.
//
// # Encoding
//
// A record without a typed part (empty Ctx, TTL and Layers) encodes byte for byte
// as its string layer, vclock.Set.AppendBinary, whose first byte is version 1. So
// every record, hint, Merkle hash and wire message of a string key is what it was
// before records had layers, and every stored version-1 record decodes as
// Record{Str: set}. A record with a typed part is version 2:
//
//	2 | uvarint len(S) | S (the string layer, version 1) | Ctx | TTL |
//	uvarint n | n × layer
//	layer: type | stamp (varint TS, actor, uvarint counter) | varint Dead | Val |
//	       0, or 1 and the collection (Ctx, Clear, varint Len, varint Bytes,
//	       buckets, actors, sweep cursor)
//
// A Delta has its own version byte, 1 (DecodeDelta, strict as Decode):
//
//	1 | uvarint len(S) | S | Ctx | TTL | uvarint n | n × (type | stamp | varint
//	Dead | Val | ClearC) | uvarint m | m × (type | uvarint len | elem | ElemDelta)
//
// Contexts and fields carry crdt's own version bytes. Decode refuses any other
// first byte. The client context (Context) is vclock's version 1 clock for a
// key without a typed part, and version 2 (clock, meta context, element
// contexts) otherwise; ParseContext accepts both.
//
// # Invariants
//
//   - Equal records have equal encodings (and Merkle hashes), and Decode of an
//     encoding gives the record back. Decode refuses what has no encoding: a
//     version 2 record without a typed part (it would be version 1), layers out
//     of type order or repeated, a collection flag that does not match the type,
//     trailing bytes. (Like vclock's, it does not insist on the shortest varint.)
//   - Decode, DecodeDelta and ParseContext never panic and never allocate much more than
//     their input, whatever the input: records and contexts come from disk, the
//     network and clients. They are fuzzed (FuzzDecodeRecord, FuzzParseContext,
//     FuzzDecodeDelta).
//   - Layers are sorted by Type, at most one per type; Plain (the string layer)
//     is never a Layer's type. A Delta's layers likewise; its elements are
//     sorted by (Type, Elem), one delta each, of collection types only, and only
//     collection layers have a ClearC.
//   - Every TTL and Val entry's dot is covered by Ctx, every element's dot by its
//     layer's Coll.Ctx; an entry is dropped only where a context that saw it
//     says so. Coll.Clear is within Coll.Ctx.
//   - Coll.Len counts live elements, Coll.Bytes every element key (graves too);
//     storage maintains both, with Buckets and Actors, from the element keys.
//
// The package is pure: no I/O, clocks, randomness or goroutines; values are
// treated as immutable, so they may be shared between goroutines. It imports only
// vclock and crdt of this module.
package record

// Package record is what one replica stores for one key: a string layer (today's
// dotted version vector set of siblings, vclock.Set) plus, for the typed keys of
// issue 20 (counters, HyperLogLog, sets, hashes), a meta context, a TTL register
// and one layer per data type. It holds the types and their encodings; storage,
// peer, repair and the coordinator store and ship records through it and through
// nothing else (docs/design/issue20-data-types.md, sections 1.2 and 1.3).
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
// Contexts and fields carry crdt's own version bytes. Decode refuses any other
// first byte.
//
// # Invariants
//
//   - Equal records have equal encodings (and Merkle hashes), and Decode of an
//     encoding gives the record back. Decode refuses what has no encoding: a
//     version 2 record without a typed part (it would be version 1), layers out
//     of type order or repeated, a collection flag that does not match the type,
//     trailing bytes. (Like vclock's, it does not insist on the shortest varint.)
//   - Decode never panics and never allocates much more than its input, whatever
//     the input: records come from disk and from the network. It is fuzzed
//     (FuzzDecodeRecord).
//   - Layers are sorted by Type, at most one per type.
//
// The package is pure: no I/O, clocks, randomness or goroutines; values are
// treated as immutable, so they may be shared between goroutines. It imports only
// vclock and crdt of this module.
package record

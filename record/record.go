package record

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strconv"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

// Type is a layer's data type. The zero Type, Plain, names the string layer
// (Record.Str) in a View; no Layer has it.
type Type uint8

// Layer types, in the order a type conflict breaks ties by (1.5).
const (
	Plain   Type = iota // the string layer, Record.Str: never a Layer's Type
	Counter             // string-typed: a base register plus increments (Val)
	HLL                 // string-typed: Redis-format register arrays (Val)
	Set                 // a collection of members (Coll)
	Hash                // a collection of fields (Coll)
	ZSet                // reserved for issue 21 (Coll)
	List                // reserved for issue 21 (Coll)
	maxType = List
)

// Collection reports whether layers of type t keep their elements as element
// keys, described by a Coll in the layer.
func (t Type) Collection() bool { return t >= Set && t <= maxType }

// typeNames are the names String gives; redisTypes what Redis's TYPE answers.
var (
	typeNames  = [...]string{"string", "counter", "hll", "set", "hash", "zset", "list"}
	redisTypes = [...]string{"string", "string", "string", "set", "hash", "zset", "list"}
)

// String names t as DGET lists a layer: "string" (Plain), "counter", "hll",
// "set", "hash", "zset", "list".
func (t Type) String() string {
	if t > maxType {
		return "type(" + strconv.Itoa(int(t)) + ")"
	}
	return typeNames[t]
}

// RedisType is what Redis's TYPE answers for a key of type t: counters and
// HyperLogLogs are strings there.
func (t Type) RedisType() string {
	if t > maxType {
		return "none"
	}
	return redisTypes[t]
}

// Record is one replica's state of one key.
type Record struct {
	Str    vclock.Set   // the string layer: siblings, tombstones, per-value expiry
	Ctx    crdt.Context // meta context: dots of TTL and Val events
	TTL    crdt.Field   // dot -> absolute expiry ms (0: PERSIST); typed layers only
	Layers []Layer      // sorted by Type, at most one per type
}

// Layer is the state of one data type of a key.
type Layer struct {
	Type  Type
	Stamp crdt.Stamp // max (accepted ts, dot) of the ops on this layer
	Dead  int64      // unix ms it was last emptied (grave time); 0: never
	Val   crdt.Field // a counter's or an hll's payload; empty for collections
	Coll  *Coll      // collections only
}

// Coll is a collection layer's header: its causal context and the fields
// storage derives from its element keys.
type Coll struct {
	Ctx       crdt.Context     // element dots seen (the ORSWOT clock); never shipped bare
	Clear     crdt.Context     // clears not yet swept here (local, usually empty)
	Len       int64            // element keys
	Bytes     int64            // their accounted size
	Buckets   []uint64         // XOR digests of the elements by hash bucket
	Actors    map[string]int64 // live element dots per actor
	SweepFrom []byte           // the local sweep cursor; nil: no sweep
}

// String returns the record of a string-only key: what a version 1 encoding
// decodes to.
func String(s vclock.Set) Record { return Record{Str: s} }

// Typed reports whether r has a typed part (meta context, TTL or layers), and so
// encodes as version 2.
func (r Record) Typed() bool { return !r.Ctx.Empty() || len(r.TTL) > 0 || len(r.Layers) > 0 }

// IsString reports whether r is a string-only record (no typed part): one that
// encodes exactly as its string layer.
func (r Record) IsString() bool { return !r.Typed() }

// Empty reports whether r holds nothing at all: storage deletes such a record.
func (r Record) Empty() bool { return r.Str.Empty() && !r.Typed() }

// Equal reports whether r and o are the same state (equal encodings).
func (r Record) Equal(o Record) bool {
	return bytes.Equal(r.Str.AppendBinary(nil), o.Str.AppendBinary(nil)) &&
		r.Ctx.Equal(o.Ctx) && r.TTL.Equal(o.TTL) && slices.EqualFunc(r.Layers, o.Layers, Layer.Equal)
}

// Equal reports whether l and o are the same state.
func (l Layer) Equal(o Layer) bool {
	if l.Type != o.Type || l.Stamp != o.Stamp || l.Dead != o.Dead || !l.Val.Equal(o.Val) || (l.Coll == nil) != (o.Coll == nil) {
		return false
	}
	return l.Coll == nil || l.Coll.Equal(*o.Coll)
}

// Equal reports whether c and o are the same state. Nil and empty Buckets and
// Actors are equal; a nil SweepFrom (no sweep) differs from an empty one (a
// sweep from the start).
func (c Coll) Equal(o Coll) bool {
	return c.Ctx.Equal(o.Ctx) && c.Clear.Equal(o.Clear) && c.Len == o.Len && c.Bytes == o.Bytes &&
		slices.Equal(c.Buckets, o.Buckets) && maps.Equal(c.Actors, o.Actors) &&
		(c.SweepFrom == nil) == (o.SweepFrom == nil) && bytes.Equal(c.SweepFrom, o.SweepFrom)
}

// ErrTyped is returned by SyncStrings when either record has a typed part.
var ErrTyped = errors.New("record: typed records are not merged yet")

// SyncStrings merges two string-only records: MergeSafe, which on string-only
// records is exactly Record{Str: vclock.Sync(a.Str, b.Str)}. It refuses (ErrTyped)
// a record with a typed part, so the paths that call it keep refusing typed
// records until issue 20's S5 wires MergeSafe and the element exchange in.
func SyncStrings(a, b Record) (Record, error) {
	if a.Typed() || b.Typed() {
		return Record{}, ErrTyped
	}
	return MergeSafe(a, b)
}

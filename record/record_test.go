package record

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

const now = int64(1_700_000_000_000)

func val(s string, ts int64) vclock.Value { return vclock.Value{Data: []byte(s), Timestamp: ts} }

// stringSets is a table of string layers as the store holds them: empty, one
// value, siblings, tombstones, expiring and anonymous values.
func stringSets() map[string]vclock.Set {
	one := vclock.Update(vclock.Set{}, nil, "node-a", val("v", now), now, 1<<50)
	sib := vclock.Update(one, nil, "node-b", val("w", now+1), now+1, 1<<50)
	over := vclock.Update(sib, sib.Join(), "node-a", vclock.Value{Data: []byte("x"), Flags: 7, Expiry: now + 5000, Timestamp: now + 2}, now+2, 1<<50)
	del := vclock.Update(over, over.Join(), "node-c", vclock.Value{Tombstone: true, Timestamp: now + 3}, now+3, 1<<50)
	return map[string]vclock.Set{
		"empty":     {},
		"one":       one,
		"siblings":  sib,
		"overwrite": over,
		"tombstone": del,
		"anon":      {Anon: []vclock.Value{{Data: []byte("anon"), Flags: 7, Timestamp: -1, Expiry: now}}},
		"buried":    {Entries: []vclock.Entry{{Actor: "a", Counter: 3, Active: -2, Values: []vclock.Value{val("v3", 1), {Tombstone: true, Timestamp: 2}}}}},
	}
}

// TestStringGolden: a record without a typed part encodes byte for byte as its
// string layer (version 1), and every version 1 encoding decodes to
// Record{Str: set}, which encodes to the same bytes again.
func TestStringGolden(t *testing.T) {
	for name, s := range stringSets() {
		t.Run(name, func(t *testing.T) {
			want := s.AppendBinary(nil)
			rec := String(s)
			got := rec.AppendBinary(nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("record encodes as %x, vclock.Set as %x", got, want)
			}
			if got[0] != 1 {
				t.Fatalf("version byte %d, want 1", got[0])
			}
			if !rec.IsString() || rec.Typed() {
				t.Fatal("a string record says it is typed")
			}
			dec, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if dec.Typed() || !bytes.Equal(dec.Str.AppendBinary(nil), want) || !dec.Equal(rec) {
				t.Fatalf("decoded %+v, want Record{Str: %+v}", dec, s)
			}
			if !bytes.Equal(dec.AppendBinary([]byte("prefix")), append([]byte("prefix"), want...)) {
				t.Fatal("AppendBinary does not append")
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	if !(Record{}).Empty() || !(Record{}).IsString() {
		t.Fatal("zero record not empty")
	}
	typedOnly := Record{Ctx: crdt.ContextOf(crdt.Dot{Actor: "a", Counter: 1})}
	if typedOnly.Empty() || !typedOnly.Typed() {
		t.Fatal("a record with only a meta context is empty or untyped")
	}
	if String(stringSets()["one"]).Empty() {
		t.Fatal("a record with a value is empty")
	}
}

func typedExamples() map[string]Record {
	d := func(a string, n uint64) crdt.Dot { return crdt.Dot{Actor: a, Counter: n} }
	return map[string]Record{
		"ctx only": {Ctx: crdt.ContextOf(d("a", 1), d("a", 2), d("b", 7))},
		"ttl": {Ctx: crdt.ContextOf(d("a", 1)), TTL: crdt.Field{crdt.TTLEntry(d("a", 1), now+1000, now)},
			Str: stringSets()["siblings"]},
		"counter": {Ctx: crdt.ContextOf(d("a", 1), d("b", 2)), Layers: []Layer{{
			Type: Counter, Stamp: crdt.Stamp{TS: now, Dot: d("b", 2)},
			Val: crdt.Field{{Dot: d("a", 1), Kind: crdt.KindReg, Data: []byte("10"), TS: now}, {Dot: d("b", 2), Kind: crdt.KindIncr, I: -3}},
		}}},
		"conflict": {Str: stringSets()["one"], Layers: []Layer{
			{Type: HLL, Stamp: crdt.Stamp{TS: now, Dot: d("a", 4)}, Dead: now - 1},
			{Type: Set, Stamp: crdt.Stamp{TS: -5}, Coll: &Coll{
				Ctx: crdt.ContextOf(d("a", 1), d("a", 2)), Clear: crdt.ContextOf(d("a", 1)), Len: 1, Bytes: 40,
				Buckets: make([]uint64, 64), Actors: map[string]int64{"a": 1}, SweepFrom: []byte{},
			}},
			{Type: Hash, Coll: &Coll{Buckets: []uint64{0, 0, 1 << 63, 5}, Actors: map[string]int64{"x": 2, "b": 1}, SweepFrom: []byte("k\x00")}},
		}},
	}
}

func TestTypedRoundTrip(t *testing.T) {
	for name, rec := range typedExamples() {
		t.Run(name, func(t *testing.T) {
			checkRoundTrip(t, rec)
		})
	}
}

func checkRoundTrip(t *testing.T, rec Record) {
	t.Helper()
	enc := rec.AppendBinary(nil)
	if enc[0] != 2 || !rec.Typed() {
		t.Fatalf("typed record encodes with version %d", enc[0])
	}
	dec, err := Decode(enc)
	if err != nil {
		t.Fatalf("decode %x: %v", enc, err)
	}
	if !dec.Equal(rec) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", dec, rec)
	}
	if again := dec.AppendBinary(nil); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoding differs:\n%x\n%x", again, enc)
	}
	// Every strict prefix is refused, and so is a trailing byte.
	for i := range len(enc) {
		if _, err := Decode(enc[:i]); err == nil {
			t.Fatalf("prefix of %d of %d bytes accepted", i, len(enc))
		}
	}
	if _, err := Decode(append(enc, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestDecodeRefuses(t *testing.T) {
	counter := Record{Layers: []Layer{{Type: Counter}}}
	layer := func(b []byte) []byte { // a version 2 record of empty parts and one layer b
		return append([]byte{2, 3, 1, 0, 0, 1, 0, 1, 0, 1}, b...)
	}
	// The encodings the cases below are built from.
	if got, want := counter.AppendBinary(nil), layer([]byte{1, 0, 0, 0, 0, 1, 0, 0}); !bytes.Equal(got, want) {
		t.Fatalf("counter layer encodes as %x, want %x", got, want)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"unknown version 0", []byte{0, 0, 0}, "unknown version 0"},
		{"unknown version 3", []byte{3}, "unknown version 3"},
		{"version 1 trailing", []byte{1, 0, 0, 0}, "trailing"},
		{"version 2 only", []byte{2}, "bad varint"},
		{"version 2 untyped", []byte{2, 3, 1, 0, 0, 1, 0, 1, 0, 0}, "without a typed part"},
		{"string layer too long", []byte{2, 9, 1, 0, 0}, "string layer truncated"},
		{"string layer bad", []byte{2, 3, 1, 0, 1, 1, 0, 1, 0, 0}, "string layer"},
		{"layer type 0", layer([]byte{0, 0, 0, 0, 0, 1, 0, 0}), "unknown layer type 0"},
		{"layer type 7", layer([]byte{7, 0, 0, 0, 0, 1, 0, 0}), "unknown layer type 7"},
		{"coll on counter", layer([]byte{1, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0}), "collection flag 1"},
		{"no coll on set", layer([]byte{3, 0, 0, 0, 0, 1, 0, 0}), "collection flag 0"},
		{"stamp actor without counter", layer([]byte{1, 0, 1, 'a', 0, 0, 1, 0, 0}), "bad stamp dot"},
		{"negative dead", layer([]byte{1, 0, 0, 0, 1, 1, 0, 0}), "negative dead"},
		{"layers out of order", append([]byte{2, 3, 1, 0, 0, 1, 0, 1, 0, 2}, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0), "out of order"},
		{"huge layer count", []byte{2, 3, 1, 0, 0, 1, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, "count exceeds input"},
		{"bad ttl", []byte{2, 3, 1, 0, 0, 1, 0, 9, 0, 0}, "ttl"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.b)
			if err == nil {
				t.Fatalf("Decode(%x) accepted", c.b)
			}
			if !errors.Is(err, ErrBadRecord) && !errors.Is(err, vclock.ErrBadRecord) {
				t.Fatalf("error %v wraps neither ErrBadRecord", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestCollRefuses(t *testing.T) {
	// A set layer's collection, after its two empty contexts: Len, Bytes, buckets,
	// actors, sweep cursor.
	coll := func(b ...byte) []byte {
		return append([]byte{2, 3, 1, 0, 0, 1, 0, 1, 0, 1, 3, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0}, b...)
	}
	if got, want := (Record{Layers: []Layer{{Type: Set, Coll: &Coll{}}}}).AppendBinary(nil), coll(0, 0, 0, 0, 0, 0); !bytes.Equal(got, want) {
		t.Fatalf("empty set encodes as %x, want %x", got, want)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"negative len", coll(1, 0, 0, 0, 0), "negative collection size"},
		{"too many buckets", coll(0, 0, 65, 0, 0, 0), "too many buckets"},
		{"bucket index out of range", coll(0, 0, 2, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0), "bad bucket index"},
		{"zero bucket", coll(0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "zero bucket"},
		{"buckets out of order", coll(0, 0, 4, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0), "bad bucket index"},
		{"empty actor", coll(0, 0, 0, 0, 1, 0, 2, 0), "bad or unordered actor"},
		{"actors out of order", coll(0, 0, 0, 0, 2, 1, 'b', 2, 1, 'a', 2, 0), "bad or unordered actor"},
		{"zero actor count", coll(0, 0, 0, 0, 1, 1, 'a', 0, 0), "bad actor dot count"},
		{"sweep cursor truncated", coll(0, 0, 0, 0, 0, 3, 'k'), "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Decode(c.b); err == nil || !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Decode(%x) = %v, want an error saying %q", c.b, err, c.want)
			}
		})
	}
}

// TestRoundTripProperty: random records, string-only or typed, decode to
// themselves and re-encode to the same bytes.
func TestRoundTripProperty(t *testing.T) {
	seed := uint64(20)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range 2000 {
		rec := randomRecord(rng)
		enc := rec.AppendBinary(nil)
		if rec.IsString() != (enc[0] == 1) {
			t.Fatalf("seed %d case %d: typed %v encodes as version %d", seed, i, rec.Typed(), enc[0])
		}
		dec, err := Decode(enc)
		if err != nil {
			t.Fatalf("seed %d case %d: decode %x: %v", seed, i, enc, err)
		}
		if !dec.Equal(rec) || !bytes.Equal(dec.AppendBinary(nil), enc) {
			t.Fatalf("seed %d case %d: round trip of %+v gave %+v", seed, i, rec, dec)
		}
	}
}

func randomDot(rng *rand.Rand) crdt.Dot {
	return crdt.Dot{Actor: fmt.Sprintf("n%d", rng.IntN(4)), Counter: 1 + rng.Uint64N(1<<52)}
}

func randomContext(rng *rand.Rand) crdt.Context {
	var ds []crdt.Dot
	for range rng.IntN(5) {
		d := randomDot(rng)
		for range rng.IntN(4) {
			ds = append(ds, d)
			d.Counter++
		}
	}
	return crdt.ContextOf(ds...)
}

func randomField(rng *rand.Rand) crdt.Field {
	seen := map[crdt.Dot]bool{}
	var f crdt.Field
	for range rng.IntN(4) {
		d := randomDot(rng)
		if seen[d] {
			continue
		}
		seen[d] = true
		e := crdt.Entry{Dot: d, Kind: crdt.Kind(1 + rng.IntN(4))}
		if rng.IntN(2) == 0 {
			e.Data = []byte(fmt.Sprint(rng.Int64()))
		}
		if rng.IntN(2) == 0 {
			e.TS = rng.Int64() - rng.Int64()
		}
		if rng.IntN(2) == 0 {
			e.I = rng.Int64N(100) + 1
		}
		if rng.IntN(3) == 0 {
			e.F = rng.Float64() + 0.5
		}
		f = append(f, e)
	}
	slicesSortFunc(f)
	return f
}

func randomRecord(rng *rand.Rand) Record {
	var rec Record
	for range rng.IntN(3) {
		rec.Str = vclock.Update(rec.Str, rec.Str.Join(), fmt.Sprintf("n%d", rng.IntN(3)),
			val(fmt.Sprint(rng.IntN(100)), now+rng.Int64N(100)), now, 1<<50)
	}
	if rng.IntN(4) == 0 {
		return rec // string only
	}
	if rng.IntN(2) == 0 {
		rec.Ctx = randomContext(rng)
	}
	if rng.IntN(3) == 0 {
		rec.TTL = randomField(rng)
	}
	for typ := Counter; typ <= maxType; typ++ {
		if rng.IntN(3) != 0 {
			continue
		}
		l := Layer{Type: typ, Dead: rng.Int64N(now)}
		if rng.IntN(2) == 0 {
			l.Stamp = crdt.Stamp{TS: rng.Int64() - rng.Int64(), Dot: randomDot(rng)}
		}
		if !typ.Collection() {
			l.Val = randomField(rng)
		} else {
			c := &Coll{Ctx: randomContext(rng), Clear: randomContext(rng), Len: rng.Int64N(1 << 40), Bytes: rng.Int64N(1 << 50)}
			if rng.IntN(2) == 0 {
				c.Buckets = make([]uint64, 1+rng.IntN(MaxBuckets))
				for i := range c.Buckets {
					if rng.IntN(2) == 0 {
						c.Buckets[i] = rng.Uint64()
					}
				}
			}
			if rng.IntN(2) == 0 {
				c.Actors = map[string]int64{}
				for range 1 + rng.IntN(3) {
					c.Actors[randomDot(rng).Actor] = 1 + rng.Int64N(1000)
				}
			}
			switch rng.IntN(3) {
			case 0:
				c.SweepFrom = []byte{}
			case 1:
				c.SweepFrom = []byte(fmt.Sprint(rng.Uint64()))
			}
			l.Coll = c
		}
		rec.Layers = append(rec.Layers, l)
	}
	if !rec.Typed() {
		rec.Ctx = crdt.ContextOf(randomDot(rng))
	}
	return rec
}

func slicesSortFunc(f crdt.Field) {
	slices.SortFunc(f, func(a, b crdt.Entry) int { return a.Dot.Compare(b.Dot) })
}

func TestSyncStrings(t *testing.T) {
	sets := stringSets()
	a, b := sets["overwrite"], sets["anon"]
	got, err := SyncStrings(String(a), String(b))
	if err != nil || !got.IsString() || !bytes.Equal(got.Str.AppendBinary(nil), vclock.Sync(a, b).AppendBinary(nil)) {
		t.Fatalf("SyncStrings = %+v, %v; want vclock.Sync's", got, err)
	}
	for name, typed := range typedExamples() {
		if _, err := SyncStrings(String(a), typed); !errors.Is(err, ErrTyped) {
			t.Errorf("%s: SyncStrings(string, typed) = %v, want ErrTyped", name, err)
		}
		if _, err := SyncStrings(typed, String(a)); !errors.Is(err, ErrTyped) {
			t.Errorf("%s: SyncStrings(typed, string) = %v, want ErrTyped", name, err)
		}
	}
}

// TestDecodeBucketsAllocFree: a header's bucket digests are read in place, so
// decoding a Coll with 64 non-zero buckets allocates no more than one whose 64
// buckets are all zero (the S4 helper saw 64 extra allocations, one per digest).
func TestDecodeBucketsAllocFree(t *testing.T) {
	header := func(fill bool) []byte {
		c := &Coll{Ctx: crdt.ContextOf(crdt.Dot{Actor: "a", Counter: 1}), Len: 64, Bytes: 640, Buckets: make([]uint64, MaxBuckets)}
		for i := range c.Buckets {
			if fill {
				c.Buckets[i] = uint64(i+1) * 0x9e3779b97f4a7c15
			}
		}
		return Record{Layers: []Layer{{Type: Set, Coll: c}}}.AppendBinary(nil)
	}
	allocs := func(b []byte) float64 {
		return testing.AllocsPerRun(100, func() {
			if _, err := Decode(b); err != nil {
				t.Fatal(err)
			}
		})
	}
	full, empty := allocs(header(true)), allocs(header(false))
	if full != empty {
		t.Fatalf("decoding 64 buckets costs %v allocations, %v with none set: digests allocate", full, empty)
	}
}

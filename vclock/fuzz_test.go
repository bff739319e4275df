package vclock

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
)

// Fuzz targets for the three decoders. Each must never panic, must fail only with
// its package sentinel, and whatever it accepts must be a valid value that encodes
// to something that decodes to the same thing again. The committed seed corpus is in
// testdata/fuzz/<FuzzName>/; the f.Add seeds below are valid encodings and
// corruptions of them.

func fuzzClocks() []Clock {
	return []Clock{
		nil,
		{{"a", 1}},
		{{"a", 3}, {"bc", 300}, {"node-7", 1_700_000_000_000_000}},
		{{strings.Repeat("z", MaxActorLen), MaxCounter}},
		{{"\x00", 1}, {"\xff\xfe", 2}},
	}
}

func fuzzSets() []Set {
	return []Set{
		{},
		{Entries: []Entry{{Actor: "a", Counter: 1, Active: 5, Values: []Value{val("v1")}}}},
		{
			Entries: []Entry{
				{Actor: "a", Counter: 3, Active: -2, Values: []Value{val("v3"), {Data: []byte("v2"), Tombstone: true}}},
				{Actor: "b", Counter: 1 << 40},
				{Actor: "c", Counter: 2, Values: []Value{{Data: []byte("x"), Flags: 0xffffffff, Expiry: 1 << 50, Timestamp: -1}}},
			},
			Anon: []Value{val("w"), {Tombstone: true}},
		},
		{Entries: []Entry{{Actor: "x", Counter: maxRecordCounter, Values: []Value{val("top")}}}},
	}
}

// corruptions returns enc plus a few damaged variants of it.
func corruptions(enc []byte) [][]byte {
	out := [][]byte{enc}
	if len(enc) > 1 {
		out = append(out, enc[:len(enc)-1], enc[:len(enc)/2])
		flip := slices.Clone(enc)
		flip[len(flip)/2] ^= 0x80
		out = append(out, flip)
	}
	out = append(out,
		append(slices.Clone(enc), 0),                            // trailing byte
		append([]byte{2}, enc[min(1, len(enc)):]...),            // unknown version
		append([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, enc...), // huge count
	)
	return out
}

func FuzzParseContext(f *testing.F) {
	for _, c := range fuzzClocks() {
		f.Add(c.String())
		for _, b := range corruptions(c.AppendBinary(nil)) {
			f.Add(base64.RawURLEncoding.EncodeToString(b))
		}
	}
	f.Add("")
	f.Add("!!!")
	f.Add("AQEBYQE=")
	f.Add("AQEBYQE\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseContext(s)
		if err != nil {
			if !errors.Is(err, ErrBadContext) {
				t.Fatalf("error %v is not ErrBadContext", err)
			}
			if c != nil {
				t.Fatalf("clock %q returned with an error", fmtClock(c))
			}
			return
		}
		checkClock(t, c)
		again := c.String()
		if len(c) == 0 && again != "" {
			t.Fatalf("empty clock encodes as %q", again)
		}
		c2, err := ParseContext(again)
		if err != nil {
			t.Fatalf("re-encoded context %q does not parse: %v", again, err)
		}
		if !slices.Equal(c, c2) {
			t.Fatalf("round trip: %q -> %q", fmtClock(c), fmtClock(c2))
		}
		if c2.String() != again {
			t.Fatalf("encoding is not a fixpoint: %q then %q", again, c2.String())
		}
		if h := c.Hash(); h == 0 || h != c2.Hash() {
			t.Fatalf("hash %d vs %d", h, c2.Hash())
		}
	})
}

func FuzzDecodeClock(f *testing.F) {
	for _, c := range fuzzClocks() {
		for _, b := range corruptions(c.AppendBinary(nil)) {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := slices.Clone(b)
		c, rest, err := DecodeClock(b)
		if !bytes.Equal(in, b) {
			t.Fatalf("DecodeClock modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrBadContext) {
				t.Fatalf("error %v is not ErrBadContext", err)
			}
			return
		}
		checkClock(t, c)
		if len(rest) > len(b) || !bytes.Equal(rest, b[len(b)-len(rest):]) {
			t.Fatalf("rest is not a suffix of the input")
		}
		enc := append(c.AppendBinary(nil), rest...)
		c2, rest2, err := DecodeClock(enc)
		if err != nil || !slices.Equal(c, c2) || !bytes.Equal(rest, rest2) {
			t.Fatalf("round trip of %q: %q, %v", fmtClock(c), fmtClock(c2), err)
		}
	})
}

func FuzzDecodeSet(f *testing.F) {
	for _, s := range fuzzSets() {
		for _, b := range corruptions(s.AppendBinary(nil)) {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := slices.Clone(b)
		s, err := DecodeSet(b)
		if !bytes.Equal(in, b) {
			t.Fatalf("DecodeSet modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		if bad := checkInvariants(s); bad != "" {
			t.Fatalf("decoded set breaks invariants: %s", bad)
		}
		for _, e := range s.Entries {
			if e.Counter > maxRecordCounter {
				t.Fatalf("counter %d above the record limit", e.Counter)
			}
		}
		enc := s.AppendBinary(nil)
		s2, err := DecodeSet(enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !identicalSets(s, s2) {
			t.Fatalf("round trip: %q -> %q", fmtSet(s), fmtSet(s2))
		}
		if !bytes.Equal(s2.AppendBinary(nil), enc) {
			t.Fatalf("encoding is not a fixpoint")
		}
		// The decoded record does not alias the input.
		for i := range b {
			b[i] ^= 0xff
		}
		if !identicalSets(s, s2) {
			t.Fatalf("decoded record aliases its input")
		}

		// A hostile but well-formed record from a peer must not make the algebra
		// panic or break invariants either.
		ctx := s.Join()
		for _, got := range []Set{
			Sync(s, s2),
			Sync(s, Set{}),
			Discard(s, ctx),
			Update(s, ctx, "fuzz", val("f"), 1, 1),
			Update(s, nil, "fuzz", val("f"), 1, 1<<50),
			Prune(s, PruneOptions{Limit: 1}),
			Prune(s, PruneOptions{Limit: 1, Keep: "fuzz", Needed: Needed(s, ctx), Now: 1, MinAge: 10, HardLimit: 2}),
			Prune(Update(s, ctx, "fuzz", val("f"), 1, 1), PruneOptions{Limit: 1, Keep: "fuzz", Needed: Needed(s, ctx), Now: 1, MinAge: 1 << 40, HardLimit: 3}),
		} {
			if bad := checkInvariants(got); bad != "" {
				t.Fatalf("algebra on a decoded record breaks invariants: %s", bad)
			}
		}
		if w, ok := Winner(s.Siblings()); ok != (s.Len() > 0) {
			t.Fatalf("Winner ok=%v with %d siblings (%+v)", ok, s.Len(), w)
		}
	})
}

func checkClock(t *testing.T, c Clock) {
	t.Helper()
	for i, d := range c {
		switch {
		case d.Actor == "" || len(d.Actor) > MaxActorLen:
			t.Fatalf("bad actor %q", d.Actor)
		case d.Counter == 0 || d.Counter > MaxCounter:
			t.Fatalf("bad counter %d", d.Counter)
		case i > 0 && c[i-1].Actor >= d.Actor:
			t.Fatalf("actors out of order: %q", fmtClock(c))
		}
	}
}

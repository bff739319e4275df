package record

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/vclock"
)

// addDamaged seeds f with enc, its first half, and enc with a bit flipped in
// its middle.
func addDamaged(f *testing.F, enc []byte) {
	f.Add(enc)
	f.Add(enc[:len(enc)/2])
	flip := slices.Clone(enc)
	flip[len(flip)/2] ^= 0x80
	f.Add(flip)
}

// FuzzDecodeRecord: Decode never panics, fails only with ErrBadRecord (or
// vclock's, for version 1), and what it accepts encodes to bytes that decode to
// the same record again and encode to the same bytes. (Accepted bytes may differ
// from the encoding: varints, vclock's included, are not checked for the
// shortest form.)
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range stringSets() {
		f.Add(String(s).AppendBinary(nil))
	}
	for _, r := range typedExamples() {
		addDamaged(f, r.AppendBinary(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{3})
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) && !errors.Is(err, vclock.ErrBadRecord) {
				t.Fatalf("error %v wraps neither ErrBadRecord", err)
			}
			return
		}
		enc := rec.AppendBinary(nil)
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !again.Equal(rec) {
			t.Fatalf("decode(encode(decode(b))) = %+v, want %+v", again, rec)
		}
		if !bytes.Equal(again.AppendBinary(nil), enc) {
			t.Fatal("encoding not stable across a round trip")
		}
		if rec.IsString() != (b[0] == 1) {
			t.Fatalf("version %d decoded as typed=%v", b[0], rec.Typed())
		}
	})
}

// FuzzParseContext: ParseContext never panics, fails only with ErrBadContext,
// and what it accepts encodes to a string that parses to the same context and
// encodes to the same string; a context without a typed part is vclock's
// version 1 context, byte for byte.
func FuzzParseContext(f *testing.F) {
	for _, c := range contextExamples() {
		s := c.String()
		f.Add(s)
		if len(s) > 2 {
			f.Add(s[:len(s)/2])
			f.Add(s[:len(s)-1] + "A")
		}
	}
	f.Add("")
	f.Add("!!!")
	f.Add("Ag")
	f.Add("AgEAAQAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseContext(s)
		if err != nil {
			if !errors.Is(err, ErrBadContext) {
				t.Fatalf("error %v does not wrap ErrBadContext", err)
			}
			return
		}
		again := c.String()
		c2, err := ParseContext(again)
		if err != nil {
			t.Fatalf("re-encoded context %q does not parse: %v", again, err)
		}
		if !c2.Equal(c) || c2.String() != again {
			t.Fatalf("round trip of %q: %+v then %+v", s, c, c2)
		}
		if !c.Typed() {
			if again != c.Clock.String() || c.Hash() != c.Clock.Hash() {
				t.Fatalf("string-only context %q differs from its clock's %q", again, c.Clock.String())
			}
			if clk, err := vclock.ParseContext(again); err != nil || !slices.Equal(clk, c.Clock) {
				t.Fatalf("vclock does not parse %q back: %v", again, err)
			}
		}
		if c.Hash() == 0 || c.Hash() != c2.Hash() {
			t.Fatalf("hash %d vs %d", c.Hash(), c2.Hash())
		}
	})
}

// FuzzDecodeDelta: DecodeDelta never panics, fails only with ErrBadDelta, and
// what it accepts encodes to bytes that decode to the same delta again and
// encode to the same bytes; ApplyDelta and JoinDeltas accept it (a decoded
// delta keeps every invariant they check), and a join of it decodes.
func FuzzDecodeDelta(f *testing.F) {
	for _, d := range deltaExamples() {
		addDamaged(f, d.AppendBinary(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDelta(b)
		if err != nil {
			if !errors.Is(err, ErrBadDelta) {
				t.Fatalf("error %v does not wrap ErrBadDelta", err)
			}
			return
		}
		enc := d.AppendBinary(nil)
		again, err := DecodeDelta(enc)
		if err != nil {
			t.Fatalf("re-encoded delta does not decode: %v", err)
		}
		if !again.Equal(d) {
			t.Fatalf("decode(encode(decode(b))) = %+v, want %+v", again, d)
		}
		if !bytes.Equal(again.AppendBinary(nil), enc) {
			t.Fatal("encoding not stable across a round trip")
		}
		if _, _, _, err := ApplyDelta(Record{}, d); err != nil {
			t.Fatalf("ApplyDelta refuses a decoded delta: %v", err)
		}
		if dd, err := JoinDeltas(d, d); err != nil {
			t.Fatalf("JoinDeltas refuses a decoded delta: %v", err)
		} else if _, err := DecodeDelta(dd.AppendBinary(nil)); err != nil {
			t.Fatalf("a joined delta does not decode: %v", err)
		}
	})
}

package crdt

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func fuzzContexts(tb testing.TB) []Context {
	return []Context{
		{},
		ctx(tb, "a:1"),
		ctx(tb, "a:1-3,5,9-12 bc:300 node-7:17"),
		ContextOf(Dot{Actor: strings.Repeat("z", MaxActorLen), Counter: MaxCounter}, Dot{Actor: "\x00", Counter: 1}),
	}
}

func fuzzFields() []Field {
	return []Field{
		nil,
		field("a1"),
		field("a1=x b3+5 c2"),
		{
			{Dot: Dot{Actor: "n", Counter: 1 << 40}, Kind: KindIncr, I: -7, F: 0.25, TS: -1},
			{Dot: Dot{Actor: "n", Counter: MaxCounter}, Kind: KindHLL, Data: []byte("HYLL\x00"), TS: 1 << 50},
			{Dot: Dot{Actor: "o", Counter: 2}, Kind: KindIncr, F: math.Inf(-1)},
			{Dot: Dot{Actor: "o", Counter: 3}, Kind: KindIncr, I: 3, IsFloat: true},
			{Dot: Dot{Actor: "o", Counter: 4}, Kind: KindIncr, F: -0.5, IsFloat: true},
		},
		field("a3=5@9{b2+10,c1~0.5,d7+-3~1e-3} b2+11^2 c4+0~0.75^1 e5!{b2+10} f6!"),
	}
}

func fuzzDeltas() []ElemDelta {
	return []ElemDelta{
		{},
		NewElemDelta(field("a2"), dots("a1 b1")),
		NewElemDelta(nil, dots("c7")),
		NewElemDelta(fuzzFields()[3], dots("n1 n2 z9")),
		NewElemDelta(field("a3=5@9{b2+10} b4+11^1 c5!{b2+10,d1~0.5}"), dots("a1 b2")),
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
	return append(out,
		append(slices.Clone(enc), 0),
		append([]byte{2}, enc[min(1, len(enc)):]...),
		append([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, enc...),
	)
}

func TestCodecRoundTrip(t *testing.T) {
	for _, c := range fuzzContexts(t) {
		enc := c.AppendBinary([]byte("prefix"))
		got, rest, err := DecodeContext(append(enc[len("prefix"):], "tail"...))
		if err != nil || !got.Equal(c) || string(rest) != "tail" {
			t.Errorf("context %s: decoded %s rest %q err %v", c, got, rest, err)
		}
	}
	for _, f := range fuzzFields() {
		got, rest, err := DecodeField(f.AppendBinary(nil))
		if err != nil || !got.Equal(f) || len(rest) != 0 {
			t.Errorf("field %s: decoded %s err %v", fmtField(f), fmtField(got), err)
		}
	}
	for _, d := range fuzzDeltas() {
		got, rest, err := DecodeElemDelta(d.AppendBinary(nil))
		if err != nil || !got.Equal(d) || len(rest) != 0 {
			t.Errorf("delta %v: decoded %v err %v", d, got, err)
		}
	}
}

func TestCodecRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		dec  func([]byte) error
	}{
		{"empty context", nil, decCtx},
		{"context version", []byte{2, 0}, decCtx},
		{"actors out of order", []byte{1, 2, 1, 'b', 1, 1, 0, 1, 'a', 1, 1, 0}, decCtx},
		{"adjacent runs", []byte{1, 1, 1, 'a', 2, 1, 0, 1, 0}, decCtx},
		{"zero first run", []byte{1, 1, 1, 'a', 1, 0, 0}, decCtx},
		{"actor without runs", []byte{1, 1, 1, 'a', 0, 0, 0}, decCtx},
		{"counter overflow", append([]byte{1, 1, 1, 'a', 1}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0), decCtx},
		{"field version", []byte{9, 0}, decField},
		{"zero kind", []byte{1, 1, 1, 'a', 1, 0, 0}, decField},
		{"unknown kind", []byte{1, 1, 1, 'a', 1, 5, 0}, decField},
		{"zero counter", []byte{1, 1, 1, 'a', 0, 1, 0}, decField},
		{"unknown payload flag", []byte{1, 1, 1, 'a', 1, 1, 128}, decField},
		{"float flag on a register", []byte{1, 1, 1, 'a', 1, byte(KindReg), isFloat}, decField},
		{"zero TS present", []byte{1, 1, 1, 'a', 1, 2, hasTS, 0}, decField},
		{"dots out of order", []byte{1, 2, 1, 'a', 2, 1, 0, 1, 'a', 1, 1, 0}, decField},
		{"observed totals on an increment", []byte{1, 1, 1, 'a', 1, byte(KindIncr), hasObs, 1}, decField},
		{"empty observation present", []byte{1, 1, 1, 'a', 1, byte(KindReg), hasObs, 0}, decField},
		{"observed totals out of order", []byte{1, 1, 1, 'a', 1, byte(KindReg), hasObs, 4, 1, 'b', 1, 0, 1, 'a', 1, 0}, decField},
		{"observed total of one actor twice", []byte{1, 1, 1, 'a', 1, byte(KindReg), hasObs, 4, 1, 'b', 1, 0, 1, 'b', 2, 0}, decField},
		{"unknown total flag", []byte{1, 1, 1, 'a', 1, byte(KindReg), hasObs, 2, 1, 'b', 1, hasTS}, decField},
		{"zero I in a total", []byte{1, 1, 1, 'a', 1, byte(KindReg), hasObs, 2, 1, 'b', 1, hasI, 0}, decField},
		{"observation count beyond the input", []byte{1, 1, 1, 'a', 1, byte(KindReg), hasObs, 0x7e}, decField},
		{"chain base on a register", []byte{1, 1, 1, 'a', 1, byte(KindReg), hasBase, 1}, decField},
		{"zero chain base", []byte{1, 1, 1, 'a', 1, byte(KindIncr), hasBase, 0}, decField},
		{"chain base above the dot", []byte{1, 1, 1, 'a', 1, byte(KindIncr), hasBase, 2}, decField},
		{"seen among dots", []byte{1, 1, 1, 'a', 1, 1, 0, 1, 1, 'a', 1}, decDelta},
		{"seen out of order", []byte{1, 0, 2, 1, 'a', 2, 1, 'a', 1}, decDelta},
	} {
		if err := tc.dec(tc.b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: err = %v, want ErrBadEncoding", tc.name, err)
		}
	}
}

func decCtx(b []byte) error   { _, _, err := DecodeContext(b); return err }
func decField(b []byte) error { _, _, err := DecodeField(b); return err }
func decDelta(b []byte) error { _, _, err := DecodeElemDelta(b); return err }

// Fuzz targets for the three decoders. Each must never panic, must fail only with
// ErrBadEncoding, and whatever it accepts must be canonical (well formed) and
// encode to bytes that decode to the same value again.

func FuzzDecodeContext(f *testing.F) {
	for _, c := range fuzzContexts(f) {
		for _, b := range corruptions(c.AppendBinary(nil)) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, rest, err := DecodeContext(b)
		if err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("error %v is not ErrBadEncoding", err)
			}
			return
		}
		checkContext(t, c)
		enc := c.AppendBinary(nil)
		if len(enc)+len(rest) > len(b) {
			t.Fatalf("re-encoding %s is longer than its input", c)
		}
		again, rest2, err := DecodeContext(enc)
		if err != nil || len(rest2) != 0 || !again.Equal(c) {
			t.Fatalf("round trip of %s: %s, %v", c, again, err)
		}
		for _, a := range c.as {
			top := Dot{Actor: a.actor, Counter: a.runs[len(a.runs)-1].hi}
			if !c.Covers(top) || (top.Counter < math.MaxUint64 && c.Covers(c.Next(a.actor, 0))) {
				t.Fatalf("%s: Covers or Next wrong for %q", c, a.actor)
			}
		}
	})
}

func FuzzDecodeField(f *testing.F) {
	for _, fl := range fuzzFields() {
		for _, b := range corruptions(fl.AppendBinary(nil)) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, rest, err := DecodeField(b)
		if err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("error %v is not ErrBadEncoding", err)
			}
			return
		}
		checkField(t, fl, fl.Context())
		enc := fl.AppendBinary(nil)
		again, rest2, err := DecodeField(enc)
		if err != nil || len(rest2) != 0 || !again.Equal(fl) {
			t.Fatalf("round trip of %s: %s, %v", fmtField(fl), fmtField(again), err)
		}
		if len(enc)+len(rest) > len(b) {
			t.Fatalf("re-encoding %s is longer than its input", fmtField(fl))
		}
		for i := range b {
			b[i] ^= 0xff // the result must not alias the input
		}
		if !fl.Equal(again) {
			t.Fatal("decoded field aliases its input")
		}
		checkCounterReads(t, fl)
	})
}

// checkCounterReads fails unless f's counter renders one way and INCR and
// INCRBYFLOAT read it as Redis would read those bytes, and HGET shows what GET
// shows: whatever a replica is sent, the counter view answers without panicking
// and agrees with GET.
func checkCounterReads(t *testing.T, f Field) {
	t.Helper()
	c := CounterOf(f)
	text := c.AppendText(nil)
	if again := CounterOf(f).AppendText(nil); !slices.Equal(text, again) {
		t.Fatalf("%s renders %q then %q", fmtField(f), text, again)
	}
	i, iok := c.Int64()
	if n, ok := parseInt(text); ok != iok || n != i {
		t.Fatalf("%s renders %q but Int64 = %d, %v", fmtField(f), text, i, iok)
	}
	x, fok := c.Float64()
	if y, ok := parseFloat(text); ok != fok || x != y {
		t.Fatalf("%s renders %q but Float64 = %v, %v", fmtField(f), text, x, fok)
	}
	// Read as a hash field, it shows what GET shows, when it holds a value.
	if v, ok := HashValue(f); ok != HashLive(f) || ok != CounterLive(f) || (ok && !slices.Equal(v, text)) {
		t.Fatalf("%s: HGET %q, %v; GET %q", fmtField(f), v, ok, text)
	}
	// The mutators run on it, and a DEL (HDEL) leaves it not live.
	c0 := f.Context()
	for _, d := range []ElemDelta{
		CounterReset(f, c0, "z", 1, []byte("5"), 1),
		func() ElemDelta { d, _, _ := CounterIncr(f, c0, "z", 1, 1); return d }(),
		func() ElemDelta { d, _, _ := CounterIncrFloat(f, c0, "z", 1, 0.5); return d }(),
	} {
		after, ac := ApplyElemDelta(f, c0, d)
		checkField(t, after, ac)
	}
	d, removed := CounterDel(f, c0, "z", 1)
	after, ac := ApplyElemDelta(f, c0, d)
	checkField(t, after, ac)
	if removed != CounterLive(f) || CounterLive(after) {
		t.Fatalf("%s: DEL removed %v, leaves %s live %v", fmtField(f), removed, fmtField(after), CounterLive(after))
	}
}

func FuzzDecodeElemDelta(f *testing.F) {
	for _, d := range fuzzDeltas() {
		for _, b := range corruptions(d.AppendBinary(nil)) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, _, err := DecodeElemDelta(b)
		if err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("error %v is not ErrBadEncoding", err)
			}
			return
		}
		checkField(t, d.Dots, d.Context())
		if n := NewElemDelta(d.Dots, d.Seen); !n.Equal(d) {
			t.Fatalf("decoded delta %v is not canonical (%v)", d, n)
		}
		again, rest, err := DecodeElemDelta(d.AppendBinary(nil))
		if err != nil || len(rest) != 0 || !again.Equal(d) {
			t.Fatalf("round trip of %v: %v, %v", d, again, err)
		}
		// Applying it twice is applying it once.
		l, c := ApplyElemDelta(nil, Context{}, d)
		l2, c2 := ApplyElemDelta(l, c, d)
		if !l2.Equal(l) || !c2.Equal(c) {
			t.Fatalf("delta %v not idempotent", d)
		}
	})
}

// TestFieldEncodingCompat pins the version 1 field bytes written before IsFloat
// existed: they decode as before (IsFloat false), and an entry without the flag
// still encodes to exactly them.
func TestFieldEncodingCompat(t *testing.T) {
	old := []byte{fieldVersion, 1, 1, 'a', 1, byte(KindIncr), hasI | hasF, 10, 0, 0, 0, 0, 0, 0, 0xd0, 0x3f}
	want := Field{{Dot: dot("a1"), Kind: KindIncr, I: 5, F: 0.25}}
	got, rest, err := DecodeField(old)
	if err != nil || len(rest) != 0 || !got.Equal(want) {
		t.Fatalf("old bytes decode to %v, %v", got, err)
	}
	if enc := want.AppendBinary(nil); !slices.Equal(enc, old) {
		t.Errorf("encoding changed: % x, was % x", enc, old)
	}
	flagged := slices.Clone(want)
	flagged[0].IsFloat = true
	enc := flagged.AppendBinary(nil)
	if enc[6] != hasI|hasF|isFloat || len(enc) != len(old) {
		t.Errorf("IsFloat entry encodes as % x", enc)
	}
	// A register written before observed totals existed: no Obs, not a marker,
	// and a register without them encodes exactly so.
	oldReg := []byte{fieldVersion, 1, 1, 'a', 1, byte(KindReg), hasData | hasTS, 4, 1, '5'}
	wantReg := Field{{Dot: dot("a1"), Kind: KindReg, Data: []byte("5"), TS: 2}}
	if got, _, err := DecodeField(oldReg); err != nil || !got.Equal(wantReg) {
		t.Fatalf("old register decodes to %s, %v", fmtField(got), err)
	}
	if enc := wantReg.AppendBinary(nil); !slices.Equal(enc, oldReg) {
		t.Errorf("register encoding changed: % x, was % x", enc, oldReg)
	}
	// The new payloads: a marker with one observed total, an increment's base.
	enc = field("a1!{b2+3} b2+3^2").AppendBinary(nil)
	wantEnc := []byte{fieldVersion, 2, 1, 'a', 1, byte(KindReg), hasObs, 3, 1, 'b', 2, hasI, 6,
		1, 'b', 2, byte(KindIncr), hasI | hasBase, 6, 2}
	if !slices.Equal(enc, wantEnc) {
		t.Errorf("marker and base encode as % x, want % x", enc, wantEnc)
	}
}

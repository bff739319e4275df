package vclock

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestClockEncoding(t *testing.T) {
	c := Clock{{"a", 1}, {"bc", 300}}
	wantBin := []byte{1, 2, 1, 'a', 1, 2, 'b', 'c', 0xac, 0x02}
	if got := c.AppendBinary(nil); !bytes.Equal(got, wantBin) {
		t.Errorf("AppendBinary = %x, want %x", got, wantBin)
	}
	if got := c.AppendBinary([]byte("pre")); !bytes.Equal(got, append([]byte("pre"), wantBin...)) {
		t.Errorf("AppendBinary does not append: %x", got)
	}
	wantStr := base64.RawURLEncoding.EncodeToString(wantBin)
	if got := c.String(); got != wantStr {
		t.Errorf("String = %q, want %q", got, wantStr)
	}
	if strings.ContainsAny(c.String(), "+/= \r\n") {
		t.Errorf("context %q is not redis-cli safe", c.String())
	}
	back, err := ParseContext(wantStr)
	if err != nil || fmtClock(back) != "a:1 bc:300" {
		t.Errorf("ParseContext = %q, %v", fmtClock(back), err)
	}

	// The empty clock is "" both ways, and hashes to a fixed non-zero value.
	for _, e := range []Clock{nil, {}} {
		if e.String() != "" {
			t.Errorf("empty clock encodes as %q", e.String())
		}
		if e.Hash() != 1 {
			t.Errorf("empty clock hash %d", e.Hash())
		}
	}
	if got, err := ParseContext(""); got != nil || err != nil {
		t.Errorf(`ParseContext("") = %v, %v`, got, err)
	}

	// The cas unique must be the same on every node and across versions: pin it.
	const wantHash = 0x0fb30cc95d9a0d3c
	if got := c.Hash(); got != wantHash {
		t.Errorf("Hash = %#x, want %#x (changing it breaks in-flight memcached cas)", got, wantHash)
	}
	if (Clock{{"a", 1}, {"bc", 301}}).Hash() == c.Hash() {
		t.Errorf("different clocks hash alike")
	}
	long := make(Clock, 40) // longer than Hash's stack buffer
	for i := range long {
		long[i] = Dot{strings.Repeat("n", i+1), uint64(i + 1)}
	}
	if long.Hash() == 0 || long.Hash() != long.Hash() {
		t.Errorf("long clock hash unstable or zero")
	}
}

func TestParseContextErrors(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	entry := func(actor string, counter ...byte) []byte {
		return append(append([]byte{byte(len(actor))}, actor...), counter...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name, in, why string
	}{
		{"not base64", "!!!", "illegal base64"},
		{"std alphabet", "AQEBYQE+", "illegal base64"},
		{"padding", "AQEBYQE=", "illegal base64"},
		{"too long", strings.Repeat("A", MaxContextLen+1), "longer than"},
		{"only version", b64([]byte{1}), "bad varint"},
		{"unknown version", b64([]byte{2, 0}), "unknown version 2"},
		{"version zero", b64([]byte{0, 0}), "unknown version 0"},
		{"count exceeds input", b64([]byte{1, 5, 1, 'a', 1}), "count exceeds input"},
		{"huge count", b64([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}), "count exceeds input"},
		{"truncated actor", b64([]byte{1, 1, 3, 'a', 1}), "truncated"},
		{"empty actor", b64(cat([]byte{1, 1}, []byte{0, 1, 1})), "bad actor length"},
		{"actor too long", b64(cat([]byte{1, 1}, []byte{0x80, 0x02}, bytes.Repeat([]byte{'a'}, 256), []byte{1})), "bad actor length"},
		{"missing counter", b64(cat([]byte{1, 1}, entry("ab"))), "bad varint"},
		{"zero counter", b64(cat([]byte{1, 1}, entry("a", 0))), "zero counter"},
		{"counter too large", b64(cat([]byte{1, 1}, entry("a", 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40))), "counter too large"},
		{"varint overflow", b64(cat([]byte{1, 1}, entry("a", 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))), "bad varint"},
		{"actors out of order", b64(cat([]byte{1, 2}, entry("b", 1), entry("a", 1))), "out of order"},
		{"duplicate actor", b64(cat([]byte{1, 2}, entry("a", 1), entry("a", 2))), "out of order"},
		{"trailing bytes", b64(cat([]byte{1, 1}, entry("a", 1), []byte{0})), "1 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseContext(tt.in)
			if err == nil {
				t.Fatalf("ParseContext accepted it: %q", fmtClock(c))
			}
			if !errors.Is(err, ErrBadContext) {
				t.Errorf("error %v is not ErrBadContext", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("error %q does not say %q", err, tt.why)
			}
			if c != nil {
				t.Errorf("non-nil clock with an error")
			}
		})
	}
	// The largest legal counter and the longest legal actor decode.
	ok := Clock{{strings.Repeat("z", MaxActorLen), MaxCounter}}
	if got, err := ParseContext(ok.String()); err != nil || got[0] != ok[0] {
		t.Errorf("limits: %v", err)
	}
}

func TestDecodeClockRest(t *testing.T) {
	c := Clock{{"a", 1}, {"b", 2}}
	buf := append(c.AppendBinary(nil), "tail"...)
	got, rest, err := DecodeClock(buf)
	if err != nil || fmtClock(got) != "a:1 b:2" || string(rest) != "tail" {
		t.Errorf("DecodeClock = %q, %q, %v", fmtClock(got), rest, err)
	}
	if _, _, err := DecodeClock(nil); !errors.Is(err, ErrBadContext) {
		t.Errorf("DecodeClock(nil) error %v", err)
	}
}

func TestSetEncoding(t *testing.T) {
	s := Set{
		Entries: []Entry{{Actor: "a", Counter: 2, Active: 7, Values: []Value{{Data: []byte("x"), Timestamp: 5}}}},
		Anon:    []Value{{Tombstone: true, Expiry: 9, Flags: 3, Timestamp: -1}},
	}
	want := []byte{
		1,             // version
		1,             // entries
		1, 'a', 2, 14, // actor, counter, active (zigzag 7)
		1, 0, 10, 1, 'x', // one value: flags, timestamp (zigzag 5), data
		1, 7, 1, 18, 3, 0, // anon: flags tomb|expiry|flags, ts -1, expiry 9, flags 3, no data
	}
	got := s.AppendBinary(nil)
	if !bytes.Equal(got, want) {
		t.Errorf("AppendBinary = %v, want %v", got, want)
	}
	back, err := DecodeSet(got)
	if err != nil || !identicalSets(back, s) {
		t.Fatalf("DecodeSet = %q, %v", fmtSet(back), err)
	}
	// The decoded set does not alias the input buffer.
	for i := range got {
		got[i] = 0xee
	}
	if !identicalSets(back, s) {
		t.Errorf("DecodeSet result aliases its input")
	}
	// The empty set.
	if e, err := DecodeSet((Set{}).AppendBinary(nil)); err != nil || !e.Empty() {
		t.Errorf("empty set round trip: %q, %v", fmtSet(e), err)
	}
}

func TestDecodeSetErrors(t *testing.T) {
	good := Set{Entries: []Entry{{Actor: "a", Counter: 2, Values: []Value{val("x")}}, {Actor: "b", Counter: 1}}}
	enc := good.AppendBinary(nil)
	tests := []struct {
		name string
		in   []byte
		why  string
	}{
		{"empty", nil, "truncated"},
		{"unknown version", []byte{9, 0, 0}, "unknown version 9"},
		{"truncated", enc[:len(enc)-1], ""},
		{"trailing", append(append([]byte{}, enc...), 0), "trailing"},
		{"zero counter", []byte{1, 1, 1, 'a', 0, 0, 0, 0}, "zero counter"},
		{"more values than counter", []byte{1, 1, 1, 'a', 1, 0, 2, 0, 0, 0, 0, 0, 0, 0}, "more values than counter"},
		{"out of order", []byte{1, 2, 1, 'b', 1, 0, 0, 1, 'a', 1, 0, 0, 0}, "out of order"},
		{"duplicate actor", []byte{1, 2, 1, 'a', 1, 0, 0, 1, 'a', 2, 0, 0, 0}, "out of order"},
		{"unknown value flag", []byte{1, 0, 1, 8, 0, 0}, "unknown value flags"},
		{"flags overflow", []byte{1, 0, 1, 4, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0}, "flags overflow"},
		{"data longer than input", []byte{1, 0, 1, 0, 0, 5, 'a'}, "truncated"},
		{"value count exceeds input", []byte{1, 0, 0x40, 0, 0, 0}, "count exceeds input"},
		{"entry count exceeds input", []byte{1, 0x40, 1, 'a', 1, 0, 0, 0}, "count exceeds input"},
		{"counter too large", []byte{1, 1, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0}, "counter too large"},
		{"bad active varint", []byte{1, 1, 1, 'a', 1, 0x80}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := DecodeSet(tt.in)
			if err == nil {
				t.Fatalf("DecodeSet accepted it: %q", fmtSet(s))
			}
			if !errors.Is(err, ErrBadRecord) {
				t.Errorf("error %v is not ErrBadRecord", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("error %q does not say %q", err, tt.why)
			}
		})
	}
}

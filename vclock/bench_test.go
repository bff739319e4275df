package vclock

import (
	"bytes"
	"fmt"
	"testing"
)

// benchRecord is a typical hot record: N=3 replicas as coordinators, a few idle
// entries of nodes that coordinated it in the past, two siblings of 100 bytes.
func benchRecord() Set {
	var s Set
	now := int64(1_700_000_000_000)
	for i := range 5 {
		s = Update(s, s.Join(), fmt.Sprintf("node-%d", i), Value{Data: bytes.Repeat([]byte{'x'}, 100), Timestamp: now}, now, 1)
		now++
	}
	ctx := s.Join()
	s = Update(s, ctx, "node-1", Value{Data: bytes.Repeat([]byte{'y'}, 100), Timestamp: now}, now, 1)
	s = Update(s, ctx, "node-2", Value{Data: bytes.Repeat([]byte{'z'}, 100), Timestamp: now}, now, 1)
	return s
}

func BenchmarkUpdate(b *testing.B) {
	s := benchRecord()
	ctx := s.Join()
	v := Value{Data: bytes.Repeat([]byte{'w'}, 100), Timestamp: 1}
	b.ReportAllocs()
	for b.Loop() {
		_ = Update(s, ctx, "node-1", v, 1, 1)
	}
}

func BenchmarkSync(b *testing.B) {
	base := benchRecord()
	x := Update(base, base.Join(), "node-0", val("a"), 1, 1)
	y := Update(base, nil, "node-2", val("b"), 1, 1)
	b.ReportAllocs()
	for b.Loop() {
		_ = Sync(x, y)
	}
}

func BenchmarkDecodeSet(b *testing.B) {
	enc := benchRecord().AppendBinary(nil)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSet(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendBinary(b *testing.B) {
	s := benchRecord()
	buf := s.AppendBinary(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendBinary(buf[:0])
	}
}

func BenchmarkParseContext(b *testing.B) {
	str := benchRecord().Join().String()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseContext(str); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	c := benchRecord().Join()
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Hash()
	}
}

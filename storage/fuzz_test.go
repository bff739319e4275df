package storage

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/vclock"
)

// FuzzDecodeRecord feeds arbitrary bytes through every decoding path the store has:
// a record value (record.Decode, reached through Get, Scan and the reaper), a data
// key and an expiry-index key. Nothing may panic; what decodes must re-encode to
// something that decodes to the same thing; malformed records are errors that wrap
// vclock.ErrBadRecord (version 1) or record.ErrBadRecord.
func FuzzDecodeRecord(f *testing.F) {
	now := int64(1_700_000_000_000)
	for _, r := range []record.Record{
		{},
		rec(val("v", 0)),
		rec(val("a", now), tomb(), val("", 0)),
		record.String(vclock.Set{Anon: []vclock.Value{{Data: []byte("anon"), Flags: 7, Timestamp: -1, Expiry: now}}}),
		record.String(vclock.Update(vclock.Set{}, nil, "node-a", val("x", 0), now, 1<<50)),
	} {
		f.Add(r.AppendBinary(nil), dataKey(nil, 3, 0xdeadbeef, []byte("key")), expiryKey(nil, now, 3, 0xdeadbeef, []byte("key")))
	}
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, []byte{spaceData}, []byte{spaceExpiry})
	f.Add([]byte{2, 0, 0}, dataKey(nil, 0xffff, ^uint64(0), nil), expiryKey(nil, -1, 0, 0, nil))

	s, err := Open(Config{InMemory: true, Partitions: 16, Logger: quietLogger(), ReapInterval: time.Hour,
		Now: func() time.Time { return time.UnixMilli(now) }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	key := []byte("fuzzed")
	h := ring.KeyHash(key)
	p := s.PartitionOf(key)
	dk := dataKey(nil, p, h, key)

	f.Fuzz(func(t *testing.T, raw, dkey, xkey []byte) {
		r, decErr := record.Decode(raw)
		if decErr != nil {
			if !errors.Is(decErr, vclock.ErrBadRecord) && !errors.Is(decErr, record.ErrBadRecord) {
				t.Fatalf("Decode error %v wraps no ErrBadRecord", decErr)
			}
		} else {
			enc := r.AppendBinary(nil)
			r2, err := record.Decode(enc)
			if err != nil {
				t.Fatalf("re-encoded record does not decode: %v", err)
			}
			if !bytes.Equal(r2.AppendBinary(nil), enc) {
				t.Fatal("decode(encode(decode(b))) differs from decode(b)")
			}
			if Counts(r) != Counts(r2) || ReapTime(r) != ReapTime(r2) || r.Str.Len() != r2.Str.Len() {
				t.Fatal("counts/reapTime/Len changed across a round trip")
			}
			if len(raw) > 0 {
				raw[0] ^= 0xff // the decoded record must not alias its input
				if !bytes.Equal(r.AppendBinary(nil), enc) {
					t.Fatal("decoded record aliases its input")
				}
				raw[0] ^= 0xff
			}
		}

		// The same bytes as a stored record: Get, Scan and the reaper see the same
		// verdict, as errors, never panics.
		if err := s.db.Set(dk, raw, nil); err != nil {
			t.Fatal(err)
		}
		s.kf.add(h)  // a raw write of a data key must tell the key filter (keyFilter)
		s.rc.reset() // the raw write went around the record cache
		_, _, getErr := s.Get(key)
		if (getErr == nil) != (decErr == nil) {
			t.Fatalf("Get err = %v, Decode err = %v", getErr, decErr)
		}
		scanErr := s.Scan(p, h, func(uint64, []byte, record.Record) bool { return true })
		if (scanErr == nil) != (decErr == nil) {
			t.Fatalf("Scan err = %v, Decode err = %v", scanErr, decErr)
		}
		if _, err := s.reapOne(now, p, h, key, now); (err == nil) != (decErr == nil) {
			t.Fatalf("reapOne err = %v, Decode err = %v", err, decErr)
		}
		if err := s.db.Delete(dk, nil); err != nil {
			t.Fatal(err)
		}
		s.rc.reset()

		if p, h, k, err := parseDataKey(dkey); err == nil {
			if got := dataKey(nil, p, h, k); !bytes.Equal(got, dkey) {
				t.Fatalf("dataKey(parseDataKey(%x)) = %x", dkey, got)
			}
		} else if len(dkey) >= dataHeader && dkey[0] == spaceData {
			t.Fatalf("parseDataKey(%x) refused a well-formed key: %v", dkey, err)
		}
		if at, p, h, k, err := parseTimeIndexKey(xkey, spaceExpiry); err == nil {
			if got := expiryKey(nil, at, p, h, k); !bytes.Equal(got, xkey) {
				t.Fatalf("expiryKey(parseTimeIndexKey(%x, spaceExpiry)) = %x", xkey, got)
			}
		} else if len(xkey) >= 19 && xkey[0] == spaceExpiry {
			t.Fatalf("parseTimeIndexKey(%x, spaceExpiry) refused a well-formed key: %v", xkey, err)
		}
	})
}

func TestKeyLayout(t *testing.T) {
	// Records sort by partition, then hash; the expiry index by reap time.
	a := dataKey(nil, 1, 0xffff_ffff_ffff_ffff, []byte("a"))
	b := dataKey(nil, 2, 0, []byte("a"))
	if bytes.Compare(a, b) >= 0 {
		t.Fatal("partition does not dominate the record order")
	}
	lo, hi := partitionBounds(1)
	if bytes.Compare(lo, a) > 0 || bytes.Compare(a, hi) >= 0 || bytes.Compare(b, hi) < 0 {
		t.Fatal("partitionBounds(1) does not bound partition 1's records")
	}
	x1 := expiryKey(nil, 5, 9, 9, []byte("z"))
	x2 := expiryKey(nil, 6, 0, 0, nil)
	if bytes.Compare(x1, x2) >= 0 {
		t.Fatal("reap time does not dominate the expiry index order")
	}
	for _, tc := range []struct {
		k  []byte
		ok bool
	}{
		{nil, false},
		{[]byte{spaceData}, false},
		{dataKey(nil, 0, 0, nil), true},
		{dataKey(nil, 0, 0, nil)[:dataHeader-1], false},
		{append([]byte{spaceMeta}, make([]byte, 20)...), false},
	} {
		if _, _, _, err := parseDataKey(tc.k); (err == nil) != tc.ok {
			t.Errorf("parseDataKey(%x) err = %v", tc.k, err)
		}
	}
	at, p, h, k, err := parseTimeIndexKey(expiryKey(nil, 1234, 7, 99, []byte("key")), spaceExpiry)
	if err != nil || at != 1234 || p != 7 || h != 99 || string(k) != "key" {
		t.Fatalf("parseExpiryKey round trip = %d %d %d %q %v", at, p, h, k, err)
	}
	if _, _, _, _, err := parseTimeIndexKey([]byte(fmt.Sprint("x", 1)), spaceExpiry); err == nil {
		t.Fatal("parseExpiryKey accepted a short key")
	}
}

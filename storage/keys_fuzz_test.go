package storage

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
	"github.com/dynakv/dynakv/record"
)

// FuzzParseKeys feeds arbitrary Pebble keys to every key parser of the store: data
// keys (read by Scan and the count at Open), expiry- and grave-index keys (the reaper
// and the tombstone purge) and hint keys (hinted handoff). A parser accepts exactly
// the keys of its space that are long enough, and what it accepts re-encodes to the
// same key and lies within the bounds the store iterates over.
func FuzzParseKeys(f *testing.F) {
	for _, s := range []struct {
		name string
		k    []byte
	}{
		{"data", dataKey(nil, 3, 0xdeadbeef, []byte("user:1"))},
		{"data-last-partition-empty-key", dataKey(nil, 0xffff, ^uint64(0), nil)},
		{"data-short", dataKey(nil, 1, 2, nil)[:dataHeader-1]},
		{"expiry", expiryKey(nil, 1_700_000_000_000, 7, 99, []byte("key"))},
		{"expiry-negative-time", expiryKey(nil, -1, 0, 0, nil)},
		{"grave", graveKey(nil, 1_700_000_000_000, 2, 1<<63, []byte("gone"))},
		{"grave-short", graveKey(nil, 5, 0, 0, nil)[:18]},
		{"hint", hintKey(nil, "node-b", []byte("key"))},
		{"hint-longest-owner", hintKey(nil, strings.Repeat("o", maxHintOwner), []byte{0xff})},
		{"hint-owner-past-end", []byte{spaceHint, 9, 'a', 'b'}},
		{"hint-empty-owner", []byte{spaceHint, 0, 'k'}},
		{"meta", metaKey("partitions")},
	} {
		fuzzcheck.Seed(f, s.name, s.k)
	}
	f.Fuzz(func(t *testing.T, k []byte) {
		tag := byte(0)
		if len(k) > 0 {
			tag = k[0]
		}
		p, h, key, err := parseDataKey(k)
		if want := tag == spaceData && len(k) >= dataHeader; (err == nil) != want {
			t.Fatalf("parseDataKey(%x): %v", k, err)
		}
		if err == nil {
			if got := dataKey(nil, p, h, key); !bytes.Equal(got, k) {
				t.Fatalf("dataKey(parseDataKey(%x)) = %x", k, got)
			}
			if lo, hi := partitionBounds(p); bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
				t.Fatalf("data key %x outside partition %d's bounds [%x, %x)", k, p, lo, hi)
			}
		}
		for _, space := range []byte{spaceExpiry, spaceGrave} {
			at, p, h, key, err := parseTimeIndexKey(k, space)
			if want := tag == space && len(k) >= 1+8+2+8; (err == nil) != want {
				t.Fatalf("parseTimeIndexKey(%x, %c): %v", k, space, err)
			}
			if err == nil {
				if got := timeIndexKey(nil, space, at, p, h, key); !bytes.Equal(got, k) {
					t.Fatalf("timeIndexKey(parseTimeIndexKey(%x, %c)) = %x", k, space, got)
				}
				if p < 0 || p > 0xffff {
					t.Fatalf("index key %x gave partition %d", k, p)
				}
			}
		}
		owner, key, err := parseHintKey(k)
		if want := tag == spaceHint && len(k) >= 3 && k[1] > 0 && len(k) >= 2+int(k[1]); (err == nil) != want {
			t.Fatalf("parseHintKey(%x): %v", k, err)
		}
		if err == nil {
			if err := checkOwner(owner); err != nil {
				t.Fatalf("hint key %x gave owner %q: %v", k, owner, err)
			}
			if got := hintKey(nil, owner, key); !bytes.Equal(got, k) {
				t.Fatalf("hintKey(parseHintKey(%x)) = %x", k, got)
			}
			if lo, hi := hintBounds(owner); bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
				t.Fatalf("hint key %x outside %q's bounds [%x, %x)", k, owner, lo, hi)
			}
		}
	})
}

// FuzzParseEpoch feeds arbitrary metadata entries to the partition-epoch decoder
// (read at Open): it accepts exactly an epoch key of a partition below Q with an
// 8-byte value, and what it accepts re-encodes to the same entry.
func FuzzParseEpoch(f *testing.F) {
	for _, s := range []struct {
		name string
		k, v []byte
		q    int
	}{
		{"epoch", epochKey(3), binary.BigEndian.AppendUint64(nil, 7), 8},
		{"last-partition", epochKey(0xffff), binary.BigEndian.AppendUint64(nil, ^uint64(0)), 1 << 16},
		{"beyond-q", epochKey(8), binary.BigEndian.AppendUint64(nil, 1), 8},
		{"short-value", epochKey(1), []byte{1, 2, 3}, 8},
		{"short-key", epochKey(1)[:len(epochKey(1))-1], binary.BigEndian.AppendUint64(nil, 1), 8},
		{"other-meta", metaKey("partitions"), []byte("1024"), 1024},
	} {
		fuzzcheck.Seed(f, s.name, s.k, s.v, s.q)
	}
	f.Fuzz(func(t *testing.T, k, v []byte, q int) {
		p, epoch, err := parseEpoch(k, v, q)
		prefix := metaKey(metaEpoch)
		want := len(k) == len(prefix)+2 && bytes.HasPrefix(k, prefix) && len(v) == 8 &&
			int(binary.BigEndian.Uint16(k[len(prefix):])) < q
		if (err == nil) != want {
			t.Fatalf("parseEpoch(%x, %x, %d): %v", k, v, q, err)
		}
		if err != nil {
			return
		}
		if p < 0 || p >= q {
			t.Fatalf("parseEpoch(%x) gave partition %d of %d", k, p, q)
		}
		if !bytes.Equal(epochKey(p), k) || !bytes.Equal(binary.BigEndian.AppendUint64(nil, epoch), v) {
			t.Fatalf("parseEpoch(%x, %x) = %d, %d does not re-encode", k, v, p, epoch)
		}
	})
}

// FuzzParseElemKey feeds arbitrary Pebble keys to the element key parser (read by
// every element scan): it never panics, it accepts exactly the element keys
// elemKey writes, and what it accepts re-encodes to the same key and lies within
// its partition's element range and its layer's prefix, apart from the records.
func FuzzParseElemKey(f *testing.F) {
	for _, s := range []struct {
		name string
		k    []byte
	}{
		{"set", elemKey(nil, 3, 0xdeadbeef, []byte("cart"), record.Set, elemHash([]byte("m")), []byte("m"))},
		{"hash-empty-field", elemKey(nil, 0, 0, []byte("h"), record.Hash, elemHash(nil), nil)},
		{"empty-key", elemKey(nil, 0xffff, ^uint64(0), nil, record.Set, 7, []byte{0xff})},
		{"long-key", elemKey(nil, 1, 2, []byte(strings.Repeat("k", 200)), record.Hash, 1, []byte("f"))},
		{"not-shortest-length", append([]byte{spaceElem, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00, 'k', byte(record.Set), 0}, make([]byte, 8)...)},
		{"key-past-end", []byte{spaceElem, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 'k'}},
		{"counter-type", elemKey(nil, 0, 0, []byte("c"), record.Counter, 0, nil)},
		{"sub-index", append(layerPrefix(nil, 0, 0, []byte("z"), record.ZSet)[:14:14], 1, 0, 0, 0, 0, 0, 0, 0, 0)},
		{"short-suffix", elemKey(nil, 0, 0, []byte("s"), record.Set, 0, nil)[:20]},
		{"data", dataKey(nil, 3, 0xdeadbeef, []byte("cart"))},
	} {
		fuzzcheck.Seed(f, s.name, s.k)
	}
	f.Fuzz(func(t *testing.T, k []byte) {
		e, err := parseElemKey(k)
		if err != nil {
			if len(k) > 0 && k[0] == spaceElem && wellFormedElemKey(k) {
				t.Fatalf("parseElemKey(%x) refused a well-formed key: %v", k, err)
			}
			return
		}
		if !e.typ.Collection() {
			t.Fatalf("parseElemKey(%x) gave type %d", k, e.typ)
		}
		if got := elemKey(nil, e.p, e.h, e.key, e.typ, e.ehash, e.elem); !bytes.Equal(got, k) {
			t.Fatalf("elemKey(parseElemKey(%x)) = %x", k, got)
		}
		if lo, hi := elemBounds(e.p); bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
			t.Fatalf("element key %x outside partition %d's element range [%x, %x)", k, e.p, lo, hi)
		}
		if !bytes.HasPrefix(k, layerPrefix(nil, e.p, e.h, e.key, e.typ)) {
			t.Fatalf("element key %x outside its layer's prefix", k)
		}
		if lo, hi := partitionBounds(e.p); bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
			t.Fatalf("element key %x inside partition %d's records", k, e.p)
		}
	})
}

// wellFormedElemKey says whether k is an element key by a reading of the layout
// apart from the parser's: the shortest length varint, the key, a collection type,
// sub 0 and an 8-byte hash.
func wellFormedElemKey(k []byte) bool {
	if len(k) < dataHeader+1 {
		return false
	}
	rest := k[dataHeader:]
	var n uint64
	for i, shift := 0, 0; ; i, shift = i+1, shift+7 {
		if i >= len(rest) || i >= 10 || i == 9 && rest[i] > 1 { // past 64 bits
			return false
		}
		n |= uint64(rest[i]&0x7f) << shift
		if rest[i] < 0x80 {
			if i > 0 && rest[i] == 0 { // a trailing zero byte: not the shortest form
				return false
			}
			rest = rest[i+1:]
			break
		}
	}
	if n > uint64(len(rest)) {
		return false
	}
	rest = rest[n:]
	return len(rest) >= 10 && record.Type(rest[0]).Collection() && rest[1] == 0
}

func TestElemKeyLayout(t *testing.T) {
	// A layer's elements are one contiguous range in hash order, apart from the
	// records, from other layers and from keys whose names extend the key.
	h := uint64(42)
	a := elemKey(nil, 1, h, []byte("k"), record.Set, 5, []byte("z"))
	b := elemKey(nil, 1, h, []byte("k"), record.Set, 6, []byte("a"))
	if bytes.Compare(a, b) >= 0 {
		t.Fatal("element hash does not order a layer's elements")
	}
	prefix := layerPrefix(nil, 1, h, []byte("k"), record.Set)
	for _, other := range [][]byte{
		elemKey(nil, 1, h, []byte("k"), record.Hash, 0, nil),
		elemKey(nil, 1, h, []byte("k\x03"), record.Set, 0, nil), // the key "k" with type 3 following
		elemKey(nil, 1, h, []byte("kk"), record.Set, 0, nil),
		dataKey(nil, 1, h, []byte("k")),
	} {
		if bytes.HasPrefix(other, prefix) {
			t.Fatalf("%x has the prefix of another layer %x", other, prefix)
		}
	}
	lo, hi := elemBounds(1)
	if bytes.Compare(a, lo) < 0 || bytes.Compare(a, hi) >= 0 {
		t.Fatal("elemBounds(1) does not bound partition 1's elements")
	}
	if lo, hi := elemBounds(0xffff); bytes.Compare(elemKey(nil, 0xffff, ^uint64(0), nil, record.List, ^uint64(0), []byte{0xff}), hi) >= 0 || lo[0] != spaceElem {
		t.Fatal("elemBounds of the last partition")
	}
	e, err := parseElemKey(a)
	if err != nil || e.p != 1 || e.h != h || string(e.key) != "k" || e.typ != record.Set || e.ehash != 5 || string(e.elem) != "z" {
		t.Fatalf("parseElemKey round trip = %+v %v", e, err)
	}
	for _, n := range []uint64{0, 1, 127, 128, 1 << 14, 1<<63 + 5} {
		if got, want := uvarintLen(n), len(binaryUvarint(n)); got != want {
			t.Fatalf("uvarintLen(%d) = %d, want %d", n, got, want)
		}
	}
}

func binaryUvarint(n uint64) []byte {
	var b []byte
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

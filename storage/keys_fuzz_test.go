package storage

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
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

package storage

import (
	"bytes"
	"testing"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// TestStringRecordBytesUnchanged: issue 20's record envelope changes nothing on
// disk for a string key. The stored record and the stored hint of a string-only
// record are byte for byte vclock.Set's encoding, and what was stored that way
// reads back as Record{Str: set}.
func TestStringRecordBytesUnchanged(t *testing.T) {
	now := int64(1_700_000_000_000)
	one := vclock.Update(vclock.Set{}, nil, "node-a", vclock.Value{Data: []byte("v"), Timestamp: now}, now, 1<<50)
	sib := vclock.Update(one, nil, "node-b", vclock.Value{Data: []byte("w"), Flags: 9, Timestamp: now + 1, Expiry: now + 5000}, now+1, 1<<50)
	del := vclock.Update(sib, sib.Join(), "node-a", vclock.Value{Tombstone: true, Timestamp: now + 2}, now+2, 1<<50)
	sets := map[string]vclock.Set{
		"one":      one,
		"siblings": sib,
		"deleted":  del,
		"anon":     {Anon: []vclock.Value{{Data: []byte("anon"), Timestamp: now}}},
	}
	s := openMem(t, Config{Partitions: 8})
	for name, set := range sets {
		want := set.AppendBinary(nil)
		put(t, s, name, record.String(set))
		if got, found := pebbleRecord(t, s, name); !found || !bytes.Equal(got, want) {
			t.Errorf("%s: stored record %x, vclock.Set encodes %x", name, got, want)
		}
		putHint(t, s, "owner", name, record.String(set))
		if got, found, err := s.getEncoded(hintKey(nil, "owner", []byte(name))); err != nil || !found || !bytes.Equal(got, want) {
			t.Errorf("%s: stored hint %x (%v), vclock.Set encodes %x", name, got, err, want)
		}
		got, found := mustGet(t, s, name)
		if !found || !got.IsString() || !bytes.Equal(got.Str.AppendBinary(nil), want) {
			t.Errorf("%s: read back %+v", name, got)
		}
		if h, ok := mustGetHint(t, s, "owner", name); !ok || !h.IsString() || !bytes.Equal(h.Str.AppendBinary(nil), want) {
			t.Errorf("%s: hint read back %+v", name, h)
		}
	}
}

// TestTypedRecordNeverAGrave: until typed layers have their own grave rule (S3),
// a typed record whose string layer holds only tombstones is not a grave, so
// tombstone purge cannot drop its layers.
func TestTypedRecordNeverAGrave(t *testing.T) {
	tomb := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Tombstone: true, Timestamp: 5}, 5, 1)
	if GraveTime(record.String(tomb)) == 0 {
		t.Fatal("a string tombstone is not a grave")
	}
	typed := record.Record{Str: tomb, Layers: []record.Layer{{Type: record.Counter}}}
	if got := GraveTime(typed); got != 0 {
		t.Fatalf("GraveTime of a typed record = %d, want 0", got)
	}
}

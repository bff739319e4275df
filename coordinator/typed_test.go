package coordinator

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// TestTypedRecordsRefused: before issue 20's S3 nothing merges or overwrites a
// record with a typed part by its string layer alone (which would drop the
// layers): a client write over one, a replica write or a hint merged with one,
// and a replica read merging one with a hint all fail with record.ErrTyped and
// leave the stored records as they were.
func TestTypedRecordsRefused(t *testing.T) {
	c, st := newCoordinator(t, 4, time.Now)
	ctx := context.Background()
	typed := record.Record{
		Str:    vclock.Update(vclock.Set{}, nil, "x:1", value("s"), 1, 1),
		Layers: []record.Layer{{Type: record.Counter}},
	}
	str := record.String(vclock.Update(vclock.Set{}, nil, "y:1", value("v"), 1, 1))
	set := func(key string, r record.Record) {
		t.Helper()
		if _, err := st.Update([]byte(key), func(record.Record, bool) (record.Record, error) { return r, nil }); err != nil {
			t.Fatal(err)
		}
	}
	unchanged := func(key string, want record.Record) {
		t.Helper()
		got, _, err := st.Get([]byte(key))
		if err != nil || !bytes.Equal(got.AppendBinary(nil), want.AppendBinary(nil)) {
			t.Fatalf("%s: stored %+v (%v), want %+v unchanged", key, got, err, want)
		}
	}
	set("t", typed)
	set("s", str)

	if _, err := c.Put(ctx, []byte("t"), nil, value("w"), WriteOptions{}); !errors.Is(err, record.ErrTyped) {
		t.Errorf("Put over a typed record: %v, want ErrTyped", err)
	}
	unchanged("t", typed)
	if err := c.HandleWrite(peer.WriteRequest{Key: []byte("t"), Record: str}); !errors.Is(err, record.ErrTyped) {
		t.Errorf("replica write of a string record onto a typed one: %v, want ErrTyped", err)
	}
	unchanged("t", typed)
	if err := c.HandleWrite(peer.WriteRequest{Key: []byte("s"), Record: typed}); !errors.Is(err, record.ErrTyped) {
		t.Errorf("replica write of a typed record onto a string one: %v, want ErrTyped", err)
	}
	unchanged("s", str)

	if _, err := st.UpdateHint("other", []byte("s"), func(record.Record, bool) (record.Record, error) { return typed, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.HandleRead(peer.ReadRequest{Key: []byte("s"), HintFor: "other"}); !errors.Is(err, record.ErrTyped) {
		t.Errorf("replica read merging a typed hint: %v, want ErrTyped", err)
	}
	if _, err := mergeInto(typed)(str, true); !errors.Is(err, record.ErrTyped) {
		t.Errorf("mergeInto of a typed record: %v, want ErrTyped", err)
	}
	// With nothing stored, an incoming typed record is kept whole.
	if next, err := mergeInto(typed)(record.Record{}, false); err != nil || !next.Equal(typed) {
		t.Errorf("mergeInto over no record = %+v, %v; want the typed record whole", next, err)
	}
}

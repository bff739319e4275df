package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// TestReplicaWriteLateUnderTheLock: a replica write (single or batched, record or
// hint) that was in time when it arrived but waited for its key's lock until past
// its deadline changes nothing and fails with ErrLate: the deadline is checked
// when the merge is decided, under the lock, not only on arrival. Tombstone purge
// counts on no record landing later than its request's deadline.
func TestReplicaWriteLateUnderTheLock(t *testing.T) {
	rec := vclock.Update(vclock.Set{}, nil, "n2", vclock.Value{Data: []byte("v"), Timestamp: 1}, 1, 1)
	for _, tc := range []struct {
		name  string
		batch bool
		hint  string
	}{{"write", false, ""}, {"batch", true, ""}, {"hint", false, "n3"}, {"batched hint", true, "n3"}} {
		t.Run(tc.name, func(t *testing.T) {
			c, st := newCoordinator(t, 16, nil)
			key := []byte("k")
			held, release := make(chan struct{}), make(chan struct{})
			hold := func(cur record.Record, _ bool) (record.Record, error) {
				close(held)
				<-release
				return record.Record{}, storage.ErrNoChange
			}
			go func() {
				if tc.hint != "" {
					_, _ = st.UpdateHint(tc.hint, key, hold)
				} else {
					_, _ = st.Update(key, hold)
				}
			}()
			<-held
			req := peer.WriteRequest{Key: key, Record: record.String(rec), HintFor: tc.hint}
			typ, body := peer.MsgWrite, req.AppendBinary(nil)
			if tc.batch {
				typ, body = peer.MsgWriteBatch, peer.AppendWriteBatch(nil, [][]byte{req.AppendBinary(nil)})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				rep, err := serve(ctx, c, typ, body)
				if err == nil && tc.batch {
					errs, derr := peer.DecodeBatchReply(rep, 1)
					err = errors.Join(derr, errs[0])
				}
				done <- err
			}()
			<-ctx.Done() // the request is past its deadline while it waits for the lock
			close(release)
			// A batch's reply carries each write's error as text.
			if err := <-done; !errors.Is(err, ErrLate) && !(tc.batch && err != nil && strings.Contains(err.Error(), ErrLate.Error())) {
				t.Fatalf("Serve = %v, want ErrLate", err)
			}
			var found bool
			var err error
			if tc.hint != "" {
				_, found, err = st.GetHint(tc.hint, key)
			} else {
				_, found, err = st.Get(key)
			}
			if err != nil || found {
				t.Fatalf("the late write was applied: found %v, err %v", found, err)
			}
		})
	}
}

package coordinator

import (
	"context"

	"github.com/dynakv/dynakv/vclock"
)

// Count returns the number of keys holding a value, as DBSIZE reports it.
func (c *Coordinator) Count(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return c.store.Count(), nil
}

// ScanPage visits records in cursor order, starting at cursor (0 starts a scan), and
// calls fn for each until fn has accepted at least count records or the keyspace ends.
// It returns the cursor to continue from, 0 when the scan is complete.
//
// A cursor is a key hash: partition = cursor mod Q, and records inside a partition are
// ordered by hash, so a cursor stays valid while keys are added or removed (every key
// present for the whole scan is visited at least once, as Redis's SCAN promises).
// Between partitions the cursor is the next partition's number, the smallest hash that
// partition can hold. fn's arguments are valid only during the call.
func (c *Coordinator) ScanPage(ctx context.Context, cursor uint64, count int, fn func(key []byte, rec vclock.Set) bool) (uint64, error) {
	q := uint64(c.store.Partitions())
	accepted := 0
	for p := cursor & (q - 1); p < q; p++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		from := p
		if p == cursor&(q-1) {
			from = cursor
		}
		var next uint64
		stopped := false
		err := c.store.Scan(int(p), from, func(h uint64, key []byte, rec vclock.Set) bool {
			if accepted >= count {
				next, stopped = h, true
				return false
			}
			if fn(key, rec) {
				accepted++
			}
			return true
		})
		if err != nil {
			return 0, err
		}
		if stopped {
			return next, nil
		}
		if accepted >= count && p+1 < q {
			return p + 1, nil
		}
	}
	return 0, nil
}

// FlushAll deletes every key.
func (c *Coordinator) FlushAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.store.DropAll()
}

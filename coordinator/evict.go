package coordinator

import (
	"context"
	"errors"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// Eviction for a memory limit, agreed by the replicas (issue 18). A node over
// its limit picks a record it holds and calls Evict with the record as it saw
// it. Evict does not drop the record quietly, which anti-entropy, read repair
// or a hint would copy back from the other replicas: it writes a causal
// tombstone whose context is exactly the evicted record's clock (seen.Join()),
// so that
//
//   - every replica drops exactly the evicted values once the tombstone reaches
//     it (vclock.Update and Sync supersede what the context covers), and a write
//     concurrent with the eviction (its dot not covered) survives as a sibling;
//   - read repair, a hint delivered late, anti-entropy and partition handoff
//     merge the older copies into the tombstone, which supersedes them, and
//     tombstone purge deletes it only once every member holds exactly it or
//     nothing (repair/purge.go), so no copy survives anywhere;
//   - plain GET's rule (greatest Timestamp, then dot) answers as if the value
//     had vanished: the tombstone carries the evicted winner's Timestamp, so a
//     concurrent write stamped later wins, and otherwise the key is absent;
//   - its Expiry is the eviction time, which makes it the record's GraveTime
//     (a tombstone died when its Timestamp or Expiry says, whichever is later),
//     so the tombstone grace runs from the eviction. A tombstone is never
//     Expiring: the reaper leaves it alone. No codec or merge rule changes: a
//     reaped value's tombstone already carries an Expiry.
//
// The tombstone is written with the normal W and no hints (WriteOptions.NoHints):
// it reaches the live owners only, a hint would move the evicted bytes to a
// fallback, and with R + W > N a quorum read after an acknowledged eviction
// reads at least one owner that holds the tombstone (when it is answered by the
// owners in person; a fallback standing in for an owner may still hold an older
// copy, as after a DEL). An owner that was down gets it by anti-entropy.
//
// A one-member ring has no other holder, so a tombstone buys nothing there:
// Evict deletes the record outright when it is still exactly seen
// (Store.DeleteIf) and this node keeps no hint. It then looks at the ring
// again: a member that joined meanwhile may have been handed a copy before the
// delete, so the tombstone is written after all, with the evicted context over
// whatever is there. The package's rule that a node deletes a record only once
// every value in it is dead everywhere still holds: with one member and no hint,
// here is everywhere.
//
// Evict counts nothing: it is not a DEL, and the caller counts its evictions.

// EvictResult is the outcome of Evict.
type EvictResult struct {
	// Record is the key's local record as the eviction left it: the tombstone's
	// record, empty after the one-member delete, as found when Evict refused.
	Record record.Record
	// Evicted: the evicted values are gone from this node (their memory is
	// freed here), by the tombstone or the one-member delete. It holds even
	// when the quorum failed: the local tombstone stays.
	Evicted bool
	// Acked: W owners stored the tombstone (or the ring had only this node).
	Acked bool
	// Deleted: the one-member fast path deleted the record outright.
	Deleted bool
}

// Evict evicts key's record, which this node held as seen, from every replica:
// see the comment above EvictResult. With exact, it evicts only while the local
// record is still exactly seen, and otherwise returns ErrNoWrite having written
// nothing (a write came in since the caller sampled it); without, the tombstone
// supersedes what seen held and leaves the rest of the record (newer writes) as
// it is. An empty seen evicts nothing (ErrNoWrite).
//
// After an error, res.Evicted says whether the local tombstone was written (a
// *QuorumError or the request's context error after the local write: the
// eviction is not acknowledged but its memory is freed here). ErrLate and store
// errors write nothing.
func (c *Coordinator) Evict(ctx context.Context, key []byte, seen record.Record, exact bool) (EvictResult, error) {
	if seen.Empty() {
		return EvictResult{}, ErrNoWrite
	}
	if err := late(ctx, time.Time{}); err != nil {
		return EvictResult{}, err
	}
	if !c.alone() {
		return c.evictTombstone(ctx, key, seen, exact)
	}
	deleted, err := c.store.DeleteIf(key, seen.AppendBinary(nil))
	switch {
	case err != nil:
		return EvictResult{}, err
	case !deleted && exact:
		cur, _, err := c.store.Get(key)
		if err != nil {
			return EvictResult{}, err
		}
		return EvictResult{Record: cur}, ErrNoWrite
	case !deleted:
		// The record changed since seen: what is new must stay, so the
		// tombstone supersedes exactly seen.
		return c.evictTombstone(ctx, key, seen, false)
	case c.alone():
		return EvictResult{Evicted: true, Acked: true, Deleted: true}, nil
	}
	// A member joined between the check and the delete, and its handoff may hold
	// a copy: supersede it with the tombstone over whatever is here now.
	res, err := c.evictTombstone(ctx, key, seen, false)
	res.Evicted, res.Deleted = true, true
	return res, err
}

// alone reports whether this node is the only holder of every record: no
// cluster, or a ring of this node only and no hint kept for another.
func (c *Coordinator) alone() bool {
	if c.cfg.Cluster == nil {
		return true
	}
	rg := c.cfg.Cluster.Ring()
	return rg.Len() == 1 && rg.Members()[0].Name == c.cfg.Node && c.store.HintCount() == 0
}

// evictTombstone writes Evict's tombstone: context seen.Join(), the evicted
// winner's Timestamp, Expiry (and so GraveTime) now, with the normal W and no
// hints; with exact, only over a local record that is still exactly seen.
func (c *Coordinator) evictTombstone(ctx context.Context, key []byte, seen record.Record, exact bool) (EvictResult, error) {
	clk := seen.Str.Join()
	win, _ := vclock.Winner(seen.Str.Siblings())
	refused, decided := false, false
	fn := func(cur record.Record) (vclock.Clock, vclock.Value, error) {
		if exact && !sameRecord(cur, seen) {
			refused = true
			return nil, vclock.Value{}, ErrNoWrite
		}
		decided = true
		return clk, vclock.Value{Tombstone: true, Timestamp: win.Timestamp, Expiry: c.cfg.Now().UnixMilli()}, nil
	}
	wr, err := c.Modify(ctx, key, fn, WriteOptions{NoHints: true})
	res := EvictResult{Record: wr.Record}
	switch {
	case refused:
		return res, ErrNoWrite
	case !decided || wr.Record.Empty():
		// Nothing written here: late, or the store failed.
		if err == nil {
			err = errors.New("coordinator: evict: nothing written")
		}
		return EvictResult{}, err
	}
	res.Evicted, res.Acked = true, err == nil
	return res, err
}

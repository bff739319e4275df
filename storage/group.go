package storage

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
)

// committer commits synced writes in groups: one goroutine at a time leads,
// merging the batches of every writer that arrived while it led into one Pebble
// batch that it commits with a single WAL write and sync; the others wait for it
// and return its result. So a burst of concurrent writes costs one pass through
// Pebble's commit pipeline and WAL flusher, not one each, and their callers are
// released together (their replies then leave in a burst, which also costs the
// clients fewer wakeups).
//
// The group forms without a timer: the leader yields the processor once before
// it collects the group, so writers that were ready to run reach the queue
// first. Alone (one writer at a time) a write waits for nothing but that yield.
//
// A merged batch is atomic: the group succeeds or fails as one, and every member
// gets the result. The callers hold their keys' locks throughout, and nothing in
// a commit waits for a key lock, so grouping cannot deadlock. An engine panic in
// the leader's commit fails the store and is every member's error, and once the
// store failed no group reaches Pebble (which may be wedged): the queued writers
// get the failure instead of waiting for a commit that would never return.
type committer struct {
	s *Store

	mu      sync.Mutex
	leading bool         // a leader is between taking its group and handing over
	queue   []*commitReq // writers waiting for the next group, in arrival order
	group   []*commitReq // the current leader's group; touched by the leader only

	commits atomic.Int64 // requests committed (or failed), in groups
	groups  atomic.Int64 // groups committed
	// testHookLead, set by tests only, runs when a leader is about to collect its
	// group, with a function that reports how many writers are queued.
	testHookLead func(queued func() int)
}

// CommitStats counts the store's synced commits and the groups they went in; their
// ratio is the mean group size.
type CommitStats struct {
	Commits int64 // synced writes and WAL syncs
	Groups  int64 // group commits that carried them
}

// CommitStats reports the group commit counters.
func (s *Store) CommitStats() CommitStats {
	return CommitStats{Commits: s.gc.commits.Load(), Groups: s.gc.groups.Load()}
}

// Group limits: past them the rest of the queue waits for the next leader, so a
// group's commit (and its members' latency) stays bounded.
const (
	maxGroupWrites = 256
	maxGroupBytes  = 1 << 20
)

type commitReq struct {
	b    *pebble.Batch // nil: a sync of what was committed before, nothing to write
	err  error
	lead bool // woken to lead the next group rather than with a result
	wake chan struct{}
}

var commitReqs = sync.Pool{New: func() any { return &commitReq{wake: make(chan struct{}, 1)} }}

// commit commits b (nil: nothing, only a WAL sync) durably in the sense of the
// store's sync mode, together with the batches of concurrent callers.
func (c *committer) commit(b *pebble.Batch) error {
	r := commitReqs.Get().(*commitReq)
	r.b, r.err, r.lead = b, nil, false
	defer func() {
		r.b, r.err = nil, nil
		commitReqs.Put(r)
	}()
	c.mu.Lock()
	if c.leading {
		c.queue = append(c.queue, r)
		c.mu.Unlock()
		<-r.wake
		if !r.lead {
			return r.err
		}
	} else {
		c.leading = true
		c.mu.Unlock()
	}
	return c.lead(r)
}

// lead commits a group headed by r, wakes its other members, and hands the lead
// to the first writer still queued (or gives it up).
func (c *committer) lead(r *commitReq) error {
	// Let the writers that are runnable now get to the queue and join this group.
	runtime.Gosched()
	if c.testHookLead != nil {
		c.testHookLead(func() int {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.queue)
		})
	}
	c.mu.Lock()
	group := append(c.group[:0], r)
	size := batchLen(r.b)
	for _, q := range c.queue {
		n := batchLen(q.b)
		if len(group) == maxGroupWrites || size+n > maxGroupBytes {
			break
		}
		group, size = append(group, q), size+n
	}
	c.dequeue(len(group) - 1)
	c.mu.Unlock()

	err := c.apply(group)
	c.commits.Add(int64(len(group)))
	c.groups.Add(1)
	for _, f := range group[1:] {
		f.err = err
		f.wake <- struct{}{}
	}
	clear(group)
	c.group = group[:0]

	c.mu.Lock()
	var next *commitReq
	if len(c.queue) > 0 {
		next = c.queue[0]
		c.dequeue(1)
	} else {
		c.leading = false
	}
	c.mu.Unlock()
	if next != nil {
		next.lead = true
		next.wake <- struct{}{}
	}
	return err
}

// apply commits the group's batches as one, with a WAL sync: a sync alone when
// there is nothing to write (Pebble does not sync for an empty batch).
func (c *committer) apply(group []*commitReq) (err error) {
	if err := c.s.Err(); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = c.s.recovered(r)
		}
	}()
	b := group[0].b
	if len(group) > 1 {
		b = c.s.db.NewBatch()
		defer b.Close()
		for _, r := range group {
			if r.b == nil {
				continue
			}
			if err := b.Apply(r.b, nil); err != nil {
				return err
			}
		}
	}
	if b == nil || b.Empty() {
		return c.s.db.LogData(nil, pebble.Sync)
	}
	return b.Commit(pebble.Sync)
}

// dequeue removes the first n queued writers; the caller holds mu.
func (c *committer) dequeue(n int) {
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
}

func batchLen(b *pebble.Batch) int {
	if b == nil {
		return 0
	}
	return b.Len()
}

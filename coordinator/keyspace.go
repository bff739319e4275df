package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
)

// Count returns the number of keys holding a value, as DBSIZE reports it.
func (c *Coordinator) Count(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if c.cfg.Cluster == nil {
		return c.store.Count(), nil
	}
	return c.clusterCount(ctx)
}

// ScanPage visits records in cursor order, starting at cursor (0 starts a scan), and
// calls fn for each until fn has accepted at least count records or the keyspace ends.
// It returns the cursor to continue from, 0 when the scan is complete.
//
// A cursor is a key hash: its partition is ring.PartitionOfHash(cursor, Q), and records inside a partition are
// ordered by hash, so a cursor stays valid while keys are added or removed (every key
// present for the whole scan is visited at least once, as Redis's SCAN promises).
// Between partitions the cursor is the next partition's number, the smallest hash that
// partition can hold. fn's arguments are valid only during the call.
func (c *Coordinator) ScanPage(ctx context.Context, cursor uint64, count int, fn func(key []byte, rec record.Record) bool) (uint64, error) {
	q := uint64(c.store.Partitions())
	first := uint64(ring.PartitionOfHash(cursor, int(q)))
	accepted := 0
	for p := first; p < q; p++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		from := p
		if p == first {
			from = cursor
		}
		var next uint64
		stopped := false
		err := c.scanPartition(ctx, int(p), from, count-accepted, func(h uint64, key []byte, rec record.Record) bool {
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

// FlushAll deletes every key: here and, in a cluster, on every live member. It is
// not causal: a member that is down keeps its records and anti-entropy may bring
// them back (see the README).
func (c *Coordinator) FlushAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.store.DropAll(); err != nil {
		return err
	}
	if c.cfg.Cluster == nil {
		return nil
	}
	rctx, cancel := c.requestContext(ctx)
	defer cancel()
	var errs []error
	for _, m := range c.cfg.Cluster.Ring().Members() {
		if m.Name == c.cfg.Node || !c.cfg.Cluster.Alive(m.Name) {
			continue
		}
		if err := c.cfg.Peers.Flush(rctx, m.Name); err != nil {
			errs = append(errs, fmt.Errorf("flush %s: %w", m.Name, err))
		}
	}
	return errors.Join(errs...)
}

// scanSources returns the replicas to read partition p from, best first: this node
// when it is one of p's N replicas, then p's live replicas in preference order.
// Fallbacks are never sources: they hold hints, not the partition. None alive makes
// the keyspace commands fail rather than answer with keys missing.
func (c *Coordinator) scanSources(p int) []string {
	rg := c.cfg.Cluster.Ring()
	n, _, _ := c.Quorum(rg.Len(), 0, 0)
	reps := rg.Replicas(p, n)
	if slices.Contains(reps, c.cfg.Node) {
		return []string{c.cfg.Node}
	}
	var out []string
	for _, node := range reps {
		if c.cfg.Cluster.Alive(node) {
			out = append(out, node)
		}
	}
	return out
}

// scanPartition calls fn for partition p's records with hash >= from in hash
// order, until fn returns false: from the local store, or in a cluster from one of
// p's replicas, a page of about want records at a time.
func (c *Coordinator) scanPartition(ctx context.Context, p int, from uint64, want int, fn func(h uint64, key []byte, rec record.Record) bool) error {
	if c.cfg.Cluster == nil {
		return c.store.Scan(p, from, fn)
	}
	var lastErr error
	for _, node := range c.scanSources(p) {
		if node == c.cfg.Node {
			return c.store.Scan(p, from, fn)
		}
		err := c.scanRemote(ctx, node, p, from, want, fn)
		if err == nil {
			return nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = &QuorumError{Acks: 0, Need: 1}
	}
	return lastErr
}

func (c *Coordinator) scanRemote(ctx context.Context, node string, p int, from uint64, want int, fn func(h uint64, key []byte, rec record.Record) bool) error {
	rctx, cancel := c.requestContext(ctx)
	defer cancel()
	page := min(max(want, 16), peer.MaxScanCount-1) // the request asks for page+1
	for {
		rep, err := c.cfg.Peers.Scan(rctx, node, peer.ScanRequest{Partition: p, From: from, Count: page + 1})
		if err != nil {
			return err
		}
		for i, k := range rep.Keys {
			if !fn(ring.KeyHash(k), k, rep.Records[i]) {
				return nil
			}
		}
		if !rep.More {
			return nil
		}
		if rep.Next <= from && len(rep.Keys) == 0 {
			return fmt.Errorf("coordinator: scan of partition %d on %s does not advance", p, node)
		}
		from = rep.Next
	}
}

// clusterCount sums, over partitions, the live keys of one replica of each: the
// partitions are grouped by their best source, one request per node; the
// partitions of a node that fails are asked of their next source.
func (c *Coordinator) clusterCount(ctx context.Context) (int64, error) {
	q := c.store.Partitions()
	sources := make([][]string, q)
	pending := make([]int, 0, q)
	for p := range q {
		sources[p] = c.scanSources(p)
		pending = append(pending, p)
	}
	rctx, cancel := c.requestContext(ctx)
	defer cancel()
	var total int64
	for len(pending) > 0 {
		byNode := map[string][]int{}
		var order []string
		for _, p := range pending {
			if len(sources[p]) == 0 {
				return 0, &QuorumError{Acks: 0, Need: 1}
			}
			node := sources[p][0]
			if _, ok := byNode[node]; !ok {
				order = append(order, node)
			}
			byNode[node] = append(byNode[node], p)
		}
		slices.Sort(order)
		pending = pending[:0]
		for _, node := range order {
			parts := byNode[node]
			if node == c.cfg.Node {
				total += c.HandleCount(peer.CountRequest{Partitions: parts})
				continue
			}
			n, err := c.cfg.Peers.Count(rctx, node, peer.CountRequest{Partitions: parts})
			if err != nil {
				if rctx.Err() != nil {
					return 0, fmt.Errorf("coordinator: count on %s: %w", node, err)
				}
				for _, p := range parts {
					sources[p] = sources[p][1:]
				}
				pending = append(pending, parts...)
				continue
			}
			total += n
		}
	}
	return total, nil
}

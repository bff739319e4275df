package coordinator_test

// Batched writers and readers (issue 19, S9, S10). In about half the runs
// (params.batched), a client sends about one operation in four as a batch
// instead: two to six plain SETs, DELs and GETs of registers (SETs only in
// blind runs, since a DEL reads first and a GET repairs), a key possibly more
// than once, all through one node's proxy.DoBatch, as an event loop batches an
// iteration's commands. Each op of a batch is recorded like any other (kind
// SET, DEL or GET, the batch's invocation and completion), so every invariant
// and rule of the simulation applies to it: a batched GET returns only values
// recorded writes of its key wrote, never an expired one, never one a purge
// removed. The recorder records each write of a coordinator.ModifyBatch with
// its own outcome and checks, when it is acknowledged, that W of its key's
// owners hold it (in person or as a hint): per-key quorums from distinct
// owners, with spares and hints per key, checked while the faults go on. Every
// quorum read, batched or not, is checked when it answers to have counted R
// distinct owners of its key (checkReadQuorum), and in batched runs the final
// R=N reads of every key are one GetBatch, whose read repair per key must leave
// the replicas of every key byte-equal (invariant 3).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// batchOpsKey carries a batch's writes (a *batchWrites), in order, through the
// proxy to the recording coordinator's ModifyBatch.
type batchOpsKey struct{}

// batchWrites are the write ops of a batch; ModifyBatch takes them run by run.
type batchWrites struct {
	mu   sync.Mutex
	ops  []*op
	next int
}

// take returns the next n write ops, or nil if fewer are left.
func (b *batchWrites) take(n int) []*op {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next+n > len(b.ops) {
		return nil
	}
	ops := b.ops[b.next : b.next+n]
	b.next += n
	return ops
}

// batch sends one batch of SETs, DELs and GETs from client c through a random
// node.
func (s *sim) batch(rng *rand.Rand, c, seq int, keys []string) {
	var regs []string
	for _, k := range keys {
		if strings.HasPrefix(k, "reg") {
			regs = append(regs, k)
		}
	}
	s.mu.Lock()
	targets := s.clientNodes()
	s.mu.Unlock()
	node := targets[rng.IntN(len(targets))]
	n := 2 + rng.IntN(5)
	ops := make([]*op, n)
	pops := make([]proxy.Op, n)
	for j := range ops {
		key := regs[rng.IntN(len(regs))]
		o := &op{client: c, seq: seq, node: node, key: key}
		switch r := rng.IntN(6); {
		case !s.p.blind && r < 2:
			o.kind, pops[j] = "DEL", proxy.Op{Kind: proxy.OpDelete, Key: []byte(key)}
		case !s.p.blind && r < 4:
			o.kind, pops[j] = "GET", proxy.Op{Kind: proxy.OpGet, Key: []byte(key)}
		default:
			val := fmt.Sprintf("c%d.%d.%d", c, seq, j)
			o.kind, pops[j] = "SET", proxy.Op{Kind: proxy.OpSet, Key: []byte(key), Value: []byte(val)}
			o.arg = val
		}
		ops[j] = o
	}
	s.mu.Lock()
	s.ops = append(s.ops, ops...)
	nd := s.nodes[node]
	up, px, clock := nd.up, nd.px, nd.x.now
	s.mu.Unlock()
	start := s.now()
	for _, o := range ops {
		o.start = start
	}
	if !up {
		for _, o := range ops {
			o.err, o.end = errCrashed, start
		}
		return
	}
	b := px.NewBatch()
	accepted := clock().UnixMilli()
	for j, pop := range pops {
		ops[j].accepted = accepted
		if _, ok := b.Add(pop); !ok {
			s.t.Errorf("%s: not batchable", ops[j])
		}
	}
	writes := &batchWrites{}
	for _, o := range ops {
		if o.kind != "GET" {
			writes.ops = append(writes.ops, o)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), batchOpsKey{}, writes), clientTimeout)
	res := px.DoBatch(ctx, b)
	cancel()
	end := s.now()
	for j, o := range ops {
		o.res, o.err, o.end = res[j].Result, res[j].Err, end
	}
}

// ModifyBatch records each write of the batch as Modify records one write.
// The proxy hands the batch's write ops to ModifyBatch in order, one write
// each, a run of them at a time (the simulation's nodes have no memory limit
// and no delayed flush, which could leave one out).
func (r recorder) ModifyBatch(ctx context.Context, writes []coordinator.BatchWrite) []coordinator.BatchResult {
	var ops []*op
	if bw, _ := ctx.Value(batchOpsKey{}).(*batchWrites); bw != nil {
		if ops = bw.take(len(writes)); ops == nil {
			r.s.t.Errorf("ModifyBatch of %d writes: more than the batch's write ops", len(writes))
		}
	}
	type decided struct {
		clk    vclock.Clock
		val    vclock.Value
		called bool
	}
	seen := make([]decided, len(writes))
	wrapped := slices.Clone(writes)
	for i := range wrapped {
		fn := writes[i].Fn
		wrapped[i].Fn = func(cur record.Record) (vclock.Clock, vclock.Value, error) {
			c, v, err := fn(cur)
			seen[i] = decided{c, v, err == nil}
			return c, v, err
		}
	}
	res := r.Coordinator.ModifyBatch(ctx, wrapped)
	for i, br := range res {
		var o *op
		if ops != nil {
			o = ops[i]
		}
		r.record(o, writes[i].Key, seen[i].clk, seen[i].val, seen[i].called, br.WriteResult, br.Err)
	}
	return res
}

// checkReadQuorum checks a quorum read that answered on node: it counted at
// least R owners, each once, each one of its key's replicas in the ring it
// planned on (coordinator.SetReadObserver).
func (s *sim) checkReadQuorum(node string, key []byte, r int, acked, replicas []string) {
	distinct := map[string]bool{}
	for _, o := range acked {
		if distinct[o] || !slices.Contains(replicas, o) {
			s.t.Errorf("%s: a read of %s counted %v toward R=%d; replicas %v", node, key, acked, r, replicas)
			return
		}
		distinct[o] = true
	}
	if len(distinct) < r {
		s.t.Errorf("%s: a read of %s answered with %d owners %v, R=%d", node, key, len(distinct), acked, r)
	}
}

package coordinator_test

// Batched writers (issue 19, S9). In about half the runs (params.batched), a
// client sends about one operation in four as a batch instead: two to six
// plain SETs and DELs of registers (SETs only in blind runs, since a DEL reads
// first), a key possibly more than once, all through one node's
// proxy.DoBatch, as an event loop batches an iteration's commands. Each op of
// a batch is recorded like any other (kind SET or DEL, the batch's invocation
// and completion), so every invariant and rule of the simulation applies to
// it; the recorder records each write of a coordinator.ModifyBatch with its
// own outcome and checks, when it is acknowledged, that W of its key's owners
// hold it (in person or as a hint): per-key quorums from distinct owners,
// with spares and hints per key, checked while the faults go on.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/vclock"
)

// batchOpsKey carries a batch's ops, in order, through the proxy to the
// recording coordinator's ModifyBatch.
type batchOpsKey struct{}

// batch sends one batch of SETs and DELs from client c through a random node.
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
		if !s.p.blind && rng.IntN(3) == 0 {
			o.kind, pops[j] = "DEL", proxy.Op{Kind: proxy.OpDelete, Key: []byte(key)}
		} else {
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
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), batchOpsKey{}, ops), clientTimeout)
	res := px.DoBatch(ctx, b)
	cancel()
	end := s.now()
	for j, o := range ops {
		o.res, o.err, o.end = res[j].Result, res[j].Err, end
	}
}

// ModifyBatch records each write of the batch as Modify records one write.
// The proxy hands the batch's ops to ModifyBatch in order, one write each
// (the simulation's nodes have no memory limit and no delayed flush, which
// could leave one out).
func (r recorder) ModifyBatch(ctx context.Context, writes []coordinator.BatchWrite) []coordinator.BatchResult {
	ops, _ := ctx.Value(batchOpsKey{}).([]*op)
	if ops != nil && len(ops) != len(writes) {
		r.s.t.Errorf("ModifyBatch of %d writes for a batch of %d ops", len(writes), len(ops))
		ops = nil
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
		wrapped[i].Fn = func(cur vclock.Set) (vclock.Clock, vclock.Value, error) {
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

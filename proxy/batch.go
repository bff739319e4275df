package proxy

import (
	"context"

	"github.com/dynakv/dynakv/coordinator"
)

// Batches (issue 19, S9): an event loop collects the batchable commands of one
// iteration, from all its connections, into a Batch, and runs them at once with
// DoBatch in one handoff, which hands the writes to the coordinator's
// ModifyBatch: one local storage batch and one message per replica node for
// all of them, while each keeps its own quorum, spares, hints and deadline.
// Each op's result, or error, is what Do would have returned for it alone
// (coordinator's ModifyBatch keeps one write's failure from changing another's
// outcome), and is durable when DoBatch returns: no Session Flush is needed
// for it.

// BatchCoordinator is what DoBatch needs beyond Coordinator to batch writes:
// *coordinator.Coordinator implements it. With a Coordinator that does not,
// DoBatch runs the ops one after another.
type BatchCoordinator interface {
	ModifyBatch(ctx context.Context, writes []coordinator.BatchWrite) []coordinator.BatchResult
}

var _ BatchCoordinator = (*coordinator.Coordinator)(nil)

// Batch is the batchable ops collected for one DoBatch, in the order their
// connections sent them. A Batch is used by one goroutine at a time; it is
// empty again after DoBatch.
type Batch struct {
	p   *Proxy
	ops []Op
}

// NewBatch returns an empty batch of p's.
func (p *Proxy) NewBatch() *Batch { return &Batch{p: p} }

// Batchable reports whether op may join a Batch: a plain SET (no condition,
// no GET, no KEEPTTL; plainSet) or a single-key DEL (OpDelete without a cas),
// with the default write quorum (W 0), no Vivify, that the router does not
// forward (Route returns ""). Any other op runs alone (Session.Do), after the
// batch that holds its connection's earlier ops has completed, so that a
// connection's ops keep their order.
func (p *Proxy) Batchable(op Op) bool {
	switch {
	case op.W != 0 || op.Vivify:
		return false
	case plainSet(op):
	case op.Kind == OpDelete && op.Cond == CondNone:
	default:
		return false
	}
	return p.cfg.Router == nil || p.cfg.Router.Route(op.Key) == ""
}

// Add adds op to the batch, accepted now (its time, Op.Accepted, is fixed
// here, as Do fixes it), and returns its index in DoBatch's results; it
// reports false, adding nothing, when op is not Batchable.
func (b *Batch) Add(op Op) (int, bool) {
	if !b.p.Batchable(op) {
		return 0, false
	}
	b.p.accept(&op)
	b.ops = append(b.ops, op)
	return len(b.ops) - 1, true
}

// Len returns the number of ops in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// BatchResult is one op's outcome in DoBatch: what Do would have returned.
type BatchResult struct {
	Result Result
	Err    error
}

// DoBatch runs every op of b on this node, as if one after another in order (a
// key written twice sees its earlier write), and returns their outcomes in
// the order they were added, each durable; b is then empty. A delayed
// flush_all that is due runs first (its failure fails every op); each op that
// grows memory asks Config.Memory alone, and ErrOOM fails that op only.
func (p *Proxy) DoBatch(ctx context.Context, b *Batch) []BatchResult {
	ops := b.ops
	b.ops = nil
	out := make([]BatchResult, len(ops))
	if len(ops) == 0 {
		return out
	}
	if err := p.checkFlush(ctx); err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	res := make([]Result, len(ops))
	writes := make([]coordinator.BatchWrite, 0, len(ops))
	idx := make([]int, 0, len(ops)) // writes[j] is ops[idx[j]]
	for i, op := range ops {
		if grows(op) {
			if err := p.cfg.Memory.Admit(ctx); err != nil {
				out[i].Err = err
				continue
			}
		}
		writes = append(writes, coordinator.BatchWrite{Key: op.Key, Fn: p.modifyFunc(op, &res[i]),
			Opt: p.writeOptions(op, coordinator.DurableOnReturn)})
		idx = append(idx, i)
	}
	var done []coordinator.BatchResult
	if bc, ok := p.co.(BatchCoordinator); ok {
		done = bc.ModifyBatch(ctx, writes)
	} else {
		done = make([]coordinator.BatchResult, len(writes))
		for j, w := range writes {
			done[j].WriteResult, done[j].Err = p.co.Modify(ctx, w.Key, w.Fn, w.Opt)
		}
	}
	var unsynced []int // ops that succeeded but are not durable yet
	for j, d := range done {
		i := idx[j]
		if d.Err != nil { // a decision not to write is a success (ErrNoWrite)
			out[i].Err = d.Err
			continue
		}
		out[i].Result = modified(ops[i], res[i], d.WriteResult)
		if !d.Durable {
			unsynced = append(unsynced, i)
		}
	}
	if len(unsynced) > 0 {
		if err := p.co.Sync(ctx); err != nil {
			for _, i := range unsynced {
				out[i] = BatchResult{Err: err}
			}
		}
	}
	return out
}

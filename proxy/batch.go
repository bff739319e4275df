package proxy

import (
	"context"

	"github.com/dynakv/dynakv/coordinator"
)

// Batches (issue 19, S9, S10): an event loop collects the batchable commands
// of one iteration, from all its connections, into a Batch, and runs them at
// once with DoBatch in one handoff, which hands the writes to the
// coordinator's ModifyBatch (one local storage batch and one message per
// replica node for all of them, while each keeps its own quorum, spares, hints
// and deadline) and the reads to its GetBatch (one local read pass and one
// message per replica node, while each keeps its own R, spares, deadline and
// read repair). Each op's result, or error, is what Do would have returned for
// it alone (the coordinator keeps one op's failure from changing another's
// outcome), and is durable when DoBatch returns: no Session Flush is needed
// for it.

// BatchCoordinator is what DoBatch needs beyond Coordinator to batch writes:
// *coordinator.Coordinator implements it. With a Coordinator that does not,
// DoBatch runs the writes one after another.
type BatchCoordinator interface {
	ModifyBatch(ctx context.Context, writes []coordinator.BatchWrite) []coordinator.BatchResult
}

// BatchReader is what DoBatch needs beyond Coordinator to batch reads:
// *coordinator.Coordinator implements it. With a Coordinator that does not,
// DoBatch runs the reads one after another.
type BatchReader interface {
	GetBatch(ctx context.Context, keys [][]byte, opt coordinator.ReadOptions) []coordinator.GetResult
}

var (
	_ BatchCoordinator = (*coordinator.Coordinator)(nil)
	_ BatchReader      = (*coordinator.Coordinator)(nil)
)

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
// no GET, no KEEPTTL; plainSet), a single-key DEL (OpDelete without a cas) or
// a plain GET (OpGet without Vivify), with the default quorum (W 0, R 0), that
// the router does not forward (Route returns ""). Any other op runs alone
// (Session.Do), after the batch that holds its connection's earlier ops has
// completed, so that a connection's ops keep their order.
func (p *Proxy) Batchable(op Op) bool {
	switch {
	case op.W != 0 || op.R != 0 || op.Vivify:
		return false
	case plainSet(op):
	case op.Kind == OpDelete && op.Cond == CondNone:
	case op.Kind == OpGet:
	default:
		return false
	}
	return p.cfg.Router == nil || p.cfg.Router.Route(op.Key) == ""
}

// SoleReplica reports whether key's reads and writes involve this node alone
// (the coordinator's SoleReplica: no cluster, or N=1 or a one-member ring with
// key here). A front leaves such ops out of batches: Do serves them locally,
// and a batch's shared messages would only add work.
func (p *Proxy) SoleReplica(key []byte) bool {
	sr, ok := p.co.(soleReplicas)
	return ok && sr.SoleReplica(key)
}

// soleReplicas is a Coordinator that tells the keys only this node holds:
// *coordinator.Coordinator implements it.
type soleReplicas interface {
	SoleReplica(key []byte) bool
}

var _ soleReplicas = (*coordinator.Coordinator)(nil)

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
// key written twice sees its earlier write, a GET sees the writes before it
// and none after it), and returns their outcomes in the order they were
// added, each durable; b is then empty. A delayed flush_all that is due runs
// first (its failure fails every op); each op that grows memory asks
// Config.Memory alone, and ErrOOM fails that op only.
//
// The ops run in maximal runs of writes and of reads, one run after another
// in batch order: a run of writes with one ModifyBatch, made durable before the
// next run starts; a run of reads with one GetBatch. So a GET after a SET of
// the same key in a batch sees that SET (or what superseded it), and a GET
// before it does not, whichever connections they came from; a batch that
// alternates between reads and writes pays one round per run.
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
	for start := 0; start < len(ops); {
		reads := ops[start].Kind == OpGet
		end := start + 1
		for end < len(ops) && (ops[end].Kind == OpGet) == reads {
			end++
		}
		if reads {
			p.readRun(ctx, ops[start:end], out[start:end])
		} else {
			p.writeRun(ctx, ops[start:end], out[start:end])
		}
		start = end
	}
	return out
}

// readRun runs a run of a batch's GETs with one GetBatch, each answered as
// get answers it.
func (p *Proxy) readRun(ctx context.Context, ops []Op, out []BatchResult) {
	keys := make([][]byte, len(ops))
	for i, op := range ops {
		keys[i] = op.Key
	}
	var got []coordinator.GetResult
	if br, ok := p.co.(BatchReader); ok {
		got = br.GetBatch(ctx, keys, coordinator.ReadOptions{})
	} else {
		got = make([]coordinator.GetResult, len(keys))
		for i, key := range keys {
			got[i].Record, got[i].Err = p.co.Get(ctx, key, coordinator.ReadOptions{})
		}
	}
	for i, g := range got {
		if g.Err != nil {
			out[i].Err = g.Err
			continue
		}
		out[i].Result = p.read(ops[i], g.Record)
	}
}

// writeRun runs a run of a batch's SETs and DELs with one ModifyBatch, and
// makes them durable.
func (p *Proxy) writeRun(ctx context.Context, ops []Op, out []BatchResult) {
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
}

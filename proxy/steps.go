package proxy

import (
	"context"
	"strconv"

	"github.com/dynakv/dynakv/coordinator"
)

// memcached's meta commands have two rules that take more than one step, each step
// an op of its own run on this node (the whole op was routed, or forwarded, once):
//
//   - Vivify (the N flag): the op; when it missed, a SET NX creating the key; when
//     another client created it first, a plain read (for reads) or the op once more
//     (for writes).
//   - ma's T: after an OpIncrUnsigned that stored without creating the key, a
//     GETEX that sets the new expiry.
//
// Every step runs with the op's durability, and the op is durable when every step
// that may write was (a step that only read needs no sync, as a plain read does
// not).

// multiStep is the state of one op run in steps.
type multiStep struct {
	p       *Proxy
	ctx     context.Context
	op      Op
	d       coordinator.Durability
	durable bool // every step so far that may write was durable
}

// steps runs op (Vivify, or OpIncrUnsigned with SetExpiry) in its steps, as do.
func (p *Proxy) steps(ctx context.Context, op Op, d coordinator.Durability) (Result, bool, error) {
	s := &multiStep{p: p, ctx: ctx, op: op, d: d, durable: true}
	first := op
	first.Vivify = false
	first.SetExpiry = op.SetExpiry && op.Kind != OpIncrUnsigned
	res, err := s.run(first)
	if err == nil && op.Vivify && missed(first.Kind, res) {
		res, err = s.vivify(first)
	}
	if err != nil {
		return Result{}, false, err
	}
	if op.Kind == OpIncrUnsigned && op.SetExpiry && res.Status == Stored && !res.Created {
		t, err := s.run(Op{Kind: OpGetEx, Key: op.Key, SetExpiry: true, Expiry: op.Expiry, Persist: op.Persist})
		if err != nil {
			return Result{}, false, err
		}
		if t.Status == Stored {
			res.CAS = t.CAS
		}
	}
	return res, s.durable, nil
}

// run runs one step. It takes op's quorum, durability and time.
func (s *multiStep) run(step Op) (Result, error) {
	step.R, step.W, step.Accepted = s.op.R, s.op.W, s.op.Accepted
	res, durable, err := s.p.run(s.ctx, step, s.d)
	if step.Writes() && (err != nil || !durable) {
		s.durable = false
	}
	return res, err
}

// missed reports whether the first step of a Vivify op found no key.
func missed(kind Kind, res Result) bool {
	switch kind {
	case OpAppend:
		return res.Status == NotStored
	case OpIncrUnsigned:
		return res.Status == NotFound
	}
	return !res.Found
}

// vivify creates the key first missed, or, when another client created it
// meanwhile, reads it (first a read) or runs first once more (first a write).
func (s *multiStep) vivify(first Op) (Result, error) {
	op := s.op
	value := op.Value
	if op.Kind == OpIncrUnsigned {
		value = strconv.AppendUint(nil, op.Initial, 10)
	}
	r, err := s.run(Op{Kind: OpSet, Key: op.Key, Value: value, Flags: op.Flags, Expiry: op.VivifyExpiry, Cond: CondNX})
	switch {
	case err != nil:
		return Result{}, err
	case r.Status == Stored:
		res := Result{Status: Stored, Created: true, Found: true, CAS: r.CAS,
			Item: Item{Value: value, Flags: op.Flags, Expiry: op.VivifyExpiry, CAS: r.CAS, Siblings: 1}}
		switch op.Kind {
		case OpAppend:
			res.Int = int64(len(value))
		case OpIncrUnsigned:
			res.Uint = op.Initial
		}
		return res, nil
	case first.Kind == OpGet || first.Kind == OpGetEx:
		return s.run(Op{Kind: OpGet, Key: op.Key})
	}
	return s.run(first)
}

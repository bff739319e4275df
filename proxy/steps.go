package proxy

import (
	"context"
	"strconv"
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
// The Result is Durable only when every step that wrote was (a step that only read
// needs no Sync, as a plain read does not); a step runs with Last only while every
// step before it was durable, as a front end would have sent it.

// multiStep is the state of one op run in steps.
type multiStep struct {
	p       *Proxy
	ctx     context.Context
	op      Op
	durable bool // every step so far that may write was durable
}

// steps runs op (Vivify, or OpIncrUnsigned with SetExpiry) in its steps.
func (p *Proxy) steps(ctx context.Context, op Op) (Result, error) {
	s := &multiStep{p: p, ctx: ctx, op: op, durable: true}
	first := op
	first.Vivify = false
	first.SetExpiry = op.SetExpiry && op.Kind != OpIncrUnsigned
	res, err := s.run(first)
	if err == nil && op.Vivify && missed(first.Kind, res) {
		res, err = s.vivify(first)
	}
	if err != nil {
		return Result{}, err
	}
	if op.Kind == OpIncrUnsigned && op.SetExpiry && res.Status == Stored && !res.Created {
		t, err := s.run(Op{Kind: OpGetEx, Key: op.Key, SetExpiry: true, Expiry: op.Expiry, Persist: op.Persist})
		if err != nil {
			return Result{}, err
		}
		if t.Status == Stored {
			res.CAS = t.CAS
		}
	}
	res.Durable = s.durable
	return res, nil
}

// run runs one step. It takes op's quorum, durability and time.
func (s *multiStep) run(step Op) (Result, error) {
	step.R, step.W, step.DeferSync, step.Accepted = s.op.R, s.op.W, s.op.DeferSync, s.op.Accepted
	step.DeferSync = step.DeferSync && step.Writes()
	step.Last = s.op.Last && step.DeferSync && s.durable
	res, err := s.p.run(s.ctx, step)
	if step.DeferSync && (err != nil || !res.Durable) {
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

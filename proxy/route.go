package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/dynakv/dynakv/coordinator"
)

// ErrRunLocally, wrapped by an error from Router.Forward, means the node could not be
// reached (or refused the op) and the op should run on this node instead: Dynamo
// stays writable, the local coordinator writing to fallbacks if need be.
var ErrRunLocally = errors.New("proxy: run locally")

// ErrOutcomeUnknown: the node an op was forwarded to failed before answering, and the
// op is not one that may safely run twice (see Op.Idempotent): it may or may not
// have been applied.
var ErrOutcomeUnknown = errors.New("proxy: the coordinating node failed before answering; the write may or may not have been applied")

// ErrMayHaveRun, wrapped with ErrRunLocally by Router.Forward, says the node the
// op was forwarded to may have run it (no answer came): the op is idempotent, so
// it runs here too, but its reply here is given only where the first run cannot
// have changed it (rerunReplyHolds).
var ErrMayHaveRun = errors.New("proxy: the node the op was forwarded to may have run it")

// Router decides where an operation on a key is coordinated.
type Router interface {
	// Route returns "" to run the op on this node, or the name of the node to
	// forward it to. It must be fast and safe for concurrent use.
	Route(key []byte) string
	// Forward runs op on node and returns its outcome. An error wrapping
	// ErrRunLocally means the node could not be reached (or refused) and the op
	// should run here instead (Dynamo stays writable).
	Forward(ctx context.Context, node string, op Op) (Result, error)
}

// NoRouter runs every operation on this node: what a nil Config.Router means.
type NoRouter struct{}

// Route implements Router.
func (NoRouter) Route([]byte) string { return "" }

// Forward implements Router; it is never called, since Route never names a node.
func (NoRouter) Forward(context.Context, string, Op) (Result, error) {
	return Result{}, ErrRunLocally
}

var _ Router = NoRouter{}

// routed reports whether Do asks the router about op: every single-key Kind, except
// a Local DGET, which reads this node's replica by definition. Unknown Kinds run
// here, where they fail with ErrUnknownOp.
func routed(op Op) bool {
	switch op.Kind {
	case OpDGet:
		return !op.Local
	case OpGet, OpSet, OpDelete, OpGetDel, OpGetEx, OpIncr, OpIncrFloat, OpIncrUnsigned,
		OpAppend, OpSetRange, OpExpire, OpDPut, OpDDel, OpSetBit:
		return true
	}
	return false
}

// Do executes op where it belongs and returns once its outcome is durable: a
// session of one op (see Session), flushed before Do returns. When the Router
// names another node for op's key, the op is forwarded there and its outcome
// (result or error) is returned as is; otherwise, and when forwarding fails with
// an error wrapping ErrRunLocally, it runs on this node. Do first sets op.Accepted
// to now, unless it is set: the op keeps that time wherever it runs.
//
// A forwarded op is counted (Stats, Config.OnRead) by the node that executes it, not
// by this one.
func (p *Proxy) Do(ctx context.Context, op Op) (Result, error) {
	return p.once(ctx, op, true)
}

// DoLocal executes op on this node without consulting the router: what a node's
// handler calls for an op another node forwarded to it. The reply to a forwarded op
// must not leave before the write is durable, and the forwarding node's Flush would
// not cover this node's writes, so DoLocal, like Do, returns once the outcome is
// durable. A delayed flush_all pending on this node applies, as to every op this
// node executes.
func (p *Proxy) DoLocal(ctx context.Context, op Op) (Result, error) {
	return p.once(ctx, op, false)
}

// once runs op in a session of its own (routed, or on this node) and flushes it.
func (p *Proxy) once(ctx context.Context, op Op, routed bool) (Result, error) {
	s := Session{p: p}
	res, err := s.do(ctx, op, routed)
	if ferr := s.Flush(ctx); ferr != nil && err == nil {
		return Result{}, ferr
	}
	return res, err
}

// route runs op where it belongs, as Do describes, with durability d for a write
// run here, and reports whether its outcome is durable here: a forwarded op's is
// (the node that ran it made it durable before it answered, and nothing changed
// here).
func (p *Proxy) route(ctx context.Context, op Op, d coordinator.Durability) (Result, bool, error) {
	p.accept(&op)
	if r := p.cfg.Router; r != nil && routed(op) {
		if node := r.Route(op.Key); node != "" {
			res, err := r.Forward(ctx, node, op)
			if !errors.Is(err, ErrRunLocally) {
				return res, true, err
			}
			if errors.Is(err, ErrMayHaveRun) {
				res, durable, err := p.do(ctx, op, d)
				if err == nil && !rerunReplyHolds(op, res) {
					return Result{}, durable, fmt.Errorf("%w: its run here found it done already (%s)", ErrOutcomeUnknown, node)
				}
				return res, durable, err
			}
		}
	}
	return p.do(ctx, op, d)
}

// rerunReplyHolds reports whether res, the outcome of op run here after a node it
// was forwarded to may have run it (ErrMayHaveRun), is the reply a client may be
// given. The data is right either way (op is idempotent); the reply is not when
// the first run could have made it: a DEL (or memcached delete) that finds the
// key gone may have found it gone because the first run deleted it, and so
// would an EXPIRE or PERSIST that finds nothing to do. Such a reply is an
// unknown outcome, as for a non-idempotent op, not a 0 that hides a delete.
func rerunReplyHolds(op Op, res Result) bool {
	switch op.Kind {
	case OpDelete, OpExpire:
		return res.Status == Stored
	case OpSetBit:
		return res.Int != op.Delta // the old bit differs from the new: the first run did not set it
	}
	return true
}

// Idempotent reports whether running op twice leaves the data as running it once
// does, as far as its clients can tell, so that a front door that cannot tell
// whether the node it forwarded op to ran it may run it again (its reply then is
// given only where the first run cannot have made it: rerunReplyHolds). INCR, APPEND, GETDEL and conditional writes are not. Nor is DPUT: run
// twice it gets two dots, and a later DPUT whose context saw only one of them
// leaves the other, so the superseded value reappears as a sibling of its
// successor. A DDEL's twin is a tombstone, which no read shows.
func (op Op) Idempotent() bool {
	switch op.Kind {
	case OpGet:
		return !op.Vivify
	case OpDGet, OpSetRange, OpDDel, OpSetBit:
		return true
	case OpSet:
		return plainSet(op)
	case OpDelete:
		return op.Cond != CondCAS
	case OpExpire:
		return op.Cond == CondNone
	}
	return false
}

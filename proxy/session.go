package proxy

import (
	"bytes"
	"context"
	"reflect"

	"github.com/dynakv/dynakv/coordinator"
)

// Session runs the ops of one client connection and keeps their replies from
// acknowledging anything that is not durable yet. A front end holds one per
// connection, runs every single-key op through Do, and calls Flush before it
// writes replies (once per pipelined batch): Flush makes every write Do ran since
// the last Flush durable with one WAL sync (group commit), or returns the error,
// and then no reply of the batch may leave.
//
// Do runs a write with coordinator.Deferred, so that a batch shares the one sync
// of Flush, except a write that the front end will Flush right after (no write
// before it awaits the Flush and the client sent nothing more): that one runs
// with coordinator.DurableOnReturn, so a lone write costs one synced commit, not
// a write and a separate sync. A write the coordinator made durable anyway (see
// coordinator's package doc on durability), a forwarded op (durable on the node
// that ran it) and a read need no Flush; a write that failed, or decided not to
// write (what it read may be another connection's write not synced yet), does.
//
// A front end that ran a command's op ahead of the command, in a Batch, hands
// its outcome to the session with Preset: the command's handler then runs as
// it always does, and its Do of that op returns the outcome instead of running
// the op again, so the handler answers it with the same reply, the same error
// text and the same counters as if it ran the op itself.
//
// A Session is used by one goroutine at a time (its connection's).
type Session struct {
	p      *Proxy
	more   func() bool
	dirty  bool // a write since the last Flush is not known to be durable
	staged bool // a Try since the last TakeStaged depends on its write set's commit
	pre    *preset
}

// preset is an op's outcome run ahead (Preset), until a Do takes it.
type preset struct {
	op Op
	r  BatchResult
}

// NewSession returns a session for one client connection. more, when not nil,
// reports whether the client has sent commands that the front end will run before
// its next Flush (its read buffer holds more); nil means it never has.
func (p *Proxy) NewSession(more func() bool) *Session {
	return &Session{p: p, more: more}
}

// Do executes op as Proxy.Do does, but its outcome may be durable only once
// Flush has returned nil.
func (s *Session) Do(ctx context.Context, op Op) (Result, error) {
	return s.do(ctx, op, true)
}

// Preset makes the session's next Do return r, without running anything, if
// its op is op (the same but for Accepted); r is DoBatch's outcome for op, which
// a front end ran ahead of the command that issues it. A Do of any other op
// drops r and runs as usual. TakePreset drops an r that no Do took.
func (s *Session) Preset(op Op, r BatchResult) { s.pre = &preset{op: op, r: r} }

// TakePreset drops the Preset outcome that no Do took yet, and reports whether
// there was one (false on a nil Session).
func (s *Session) TakePreset() bool {
	if s == nil {
		return false
	}
	had := s.pre != nil
	s.pre = nil
	return had
}

// HasPreset reports whether a Preset outcome waits for its Do (false on a nil
// Session).
func (s *Session) HasPreset() bool { return s != nil && s.pre != nil }

// do runs op, routed or on this node.
func (s *Session) do(ctx context.Context, op Op, routed bool) (Result, error) {
	writes := op.Writes()
	if pre := s.pre; pre != nil {
		s.pre = nil
		if sameOp(pre.op, op) {
			// Durable when DoBatch returned, unless it failed: a failed
			// write may have written here, as Do's do (see above).
			if writes && pre.r.Err != nil {
				s.dirty = true
			}
			return pre.r.Result, pre.r.Err
		}
	}
	d := coordinator.DurableOnReturn
	if writes && (s.dirty || s.more != nil && s.more()) {
		d = coordinator.Deferred
	}
	var res Result
	var durable bool
	var err error
	if routed {
		res, durable, err = s.p.route(ctx, op, d)
	} else {
		s.p.accept(&op) // a forwarded op has the forwarding node's time already
		res, durable, err = s.p.do(ctx, op, d)
	}
	if writes && (err != nil || !durable) {
		s.dirty = true
	}
	return res, err
}

// Flush makes every write Do ran since the last Flush durable (one WAL sync, none
// when there is nothing to sync). After an error the writes may not be durable:
// the front end answers none of them as done.
func (s *Session) Flush(ctx context.Context) error {
	if !s.dirty {
		return nil
	}
	s.dirty = false
	return s.p.co.Sync(ctx)
}

// sameOp reports whether a and b are the same op but for Accepted (the time a
// Batch or Do gives it).
func sameOp(a, b Op) bool {
	if !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Value, b.Value) {
		return false
	}
	a.Key, a.Value, a.Accepted = nil, nil, 0
	b.Key, b.Value, b.Accepted = nil, nil, 0
	return reflect.DeepEqual(a, b)
}

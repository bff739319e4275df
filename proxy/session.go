package proxy

import (
	"context"

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
// A Session is used by one goroutine at a time (its connection's).
type Session struct {
	p      *Proxy
	more   func() bool
	dirty  bool // a write since the last Flush is not known to be durable
	staged bool // a Try since the last TakeStaged depends on its write set's commit
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

// do runs op, routed or on this node.
func (s *Session) do(ctx context.Context, op Op, routed bool) (Result, error) {
	writes := op.Writes()
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

package peer

import (
	"context"
	"errors"
	"fmt"
)

// ErrBadMessage is wrapped by every error about a request or reply that does not
// decode, or that decodes to something its receiver refuses (a partition it does
// not have).
var ErrBadMessage = errors.New("peer: malformed message")

// ErrUnknownType is wrapped (together with ErrBadMessage) by Mux's error for a
// request of a type no handler was registered for.
var ErrUnknownType = errors.New("peer: unknown message type")

// HandlerFunc answers one request of the type it is registered for: from names
// the sending node, req is the request body, which the handler may keep (it is
// the handler's own). ctx carries the caller's deadline.
type HandlerFunc func(ctx context.Context, from string, req []byte) ([]byte, error)

// Mux dispatches requests to the handler registered for their type. It
// implements the cluster transport's Handler interface (ServeCluster), so one Mux
// serves a node's whole protocol.
//
// Handle every type first, then serve: Handle must not run concurrently with
// ServeCluster (register before the transport starts, or before a flag the
// transport's handler checks is set). ServeCluster may be called from any number
// of goroutines at once. The zero value is an empty Mux ready for Handle.
type Mux struct {
	handlers [256]HandlerFunc
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{} }

// Handle registers h for requests of type t. Registering a type twice, or a nil
// handler, is a programming error: it panics.
func (m *Mux) Handle(t MsgType, h HandlerFunc) {
	if h == nil {
		panic(fmt.Sprintf("peer: nil handler for %v", t))
	}
	if m.handlers[t] != nil {
		panic(fmt.Sprintf("peer: second handler for %v", t))
	}
	m.handlers[t] = h
}

// ServeCluster answers a request from node from with the handler of its type; a
// type without one is refused with an error wrapping ErrUnknownType and
// ErrBadMessage.
func (m *Mux) ServeCluster(ctx context.Context, from string, typ uint8, req []byte) ([]byte, error) {
	h := m.handlers[typ]
	if h == nil {
		return nil, fmt.Errorf("%w %d: %w", ErrUnknownType, typ, ErrBadMessage)
	}
	return h(ctx, from, req)
}

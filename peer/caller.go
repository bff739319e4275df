package peer

import "context"

// Caller sends one request to a node and returns its reply: what a transport
// provides (cluster/transport does, through node/, which resolves names;
// peertest.Network does in memory). The error is the transport's, or the text of
// the error the node's handler returned.
type Caller interface {
	Call(ctx context.Context, node string, typ MsgType, req []byte) ([]byte, error)
}

// CallerFunc adapts a function to Caller.
type CallerFunc func(ctx context.Context, node string, typ MsgType, req []byte) ([]byte, error)

// Call implements Caller.
func (f CallerFunc) Call(ctx context.Context, node string, typ MsgType, req []byte) ([]byte, error) {
	return f(ctx, node, typ, req)
}

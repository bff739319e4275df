package proxy

import (
	"context"
	"time"

	"github.com/dynakv/dynakv/peer"
)

// Register registers on m the handler of peer.MsgForward, which runs the ops
// other nodes' routers forward here (Router.Forward sends them): it decodes the
// op (DecodeOp), runs it with DoLocal and answers its outcome (AppendResult),
// the op's own error included. Only a request that does not decode fails.
func (p *Proxy) Register(m *peer.Mux) { m.Handle(peer.MsgForward, p.serveForward) }

// forwardMargin is how much earlier than the forwarding node, whose deadline the
// request carries, a node running a forwarded op stops waiting for its replicas:
// so that the forwarding node gets a NOQUORUM (or the result) rather than its own
// timeout.
const forwardMargin = 50 * time.Millisecond

func (p *Proxy) serveForward(ctx context.Context, _ string, req []byte) ([]byte, error) {
	op, err := DecodeOp(req)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-forwardMargin))
		defer cancel()
	}
	res, err := p.DoLocal(ctx, op)
	return AppendResult(nil, res, err), nil
}

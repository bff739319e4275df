package resp

import "github.com/dynakv/dynakv/proxy"

// dget: DGET key -> *2: the causal context ("" when the key was never written),
// then an array of every live sibling value. The reply is an array in RESP3 too.
func (s *Server) dget(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpDGet, Key: args[1]})
	if !ok {
		return
	}
	c.w.Array(2)
	c.w.BulkString(res.Context)
	c.w.Array(len(res.Values))
	for _, v := range res.Values {
		c.w.Bulk(v)
	}
}

// dput: DPUT key context value [EX seconds | PX milliseconds] -> the new context.
// The write supersedes exactly the siblings the context covers; "" adds a sibling.
func (s *Server) dput(c *client, args [][]byte) {
	op := proxy.Op{Kind: proxy.OpDPut, Key: args[1], Context: string(args[2]), Value: args[3]}
	switch opts := args[4:]; {
	case len(opts) == 0:
	case len(opts) == 2 && (eqFold(cstr(opts[0]), "ex") || eqFold(cstr(opts[0]), "px")):
		flags := optEX
		if eqFold(cstr(opts[0]), "px") {
			flags = optPX
		}
		when, errl := s.expireAt(opts[1], flags, "dput")
		if errl != nil {
			c.w.errorLine(errl)
			return
		}
		op.Expiry = when
	default:
		c.w.errorLine(errSyntax)
		return
	}
	res, ok := s.do(c, op)
	if !ok {
		return
	}
	c.w.BulkString(res.Context)
}

// ddel: DDEL key context -> the new context (a tombstone written with context).
func (s *Server) ddel(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpDDel, Key: args[1], Context: string(args[2])})
	if !ok {
		return
	}
	c.w.BulkString(res.Context)
}

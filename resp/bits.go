package resp

import (
	"github.com/dynakv/dynakv/internal/num"
	"github.com/dynakv/dynakv/proxy"
)

var (
	errBitOffset = errLine("ERR bit offset is not an integer or out of range")
	errBitValue  = errLine("ERR bit is not an integer or out of range")
)

// bitOffset parses a SETBIT/GETBIT offset as bitops.c's getBitOffsetFromArgument:
// an integer from 0 to below proto-max-bulk-len bytes.
func (s *Server) bitOffset(b []byte) (int64, bool) {
	off, ok := num.ParseInt(b)
	if !ok || off < 0 || off>>3 >= s.cfg.ProtoMaxBulkLen {
		return 0, false
	}
	return off, true
}

// setbit: SETBIT key offset 0|1; answers the previous bit. The string grows
// (zero-padded) to hold the offset.
func (s *Server) setbit(c *client, args [][]byte) {
	off, ok := s.bitOffset(args[2])
	if !ok {
		c.w.errorLine(errBitOffset)
		return
	}
	bit, ok := num.ParseInt(args[3])
	if !ok || bit&^1 != 0 {
		c.w.errorLine(errBitValue)
		return
	}
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpSetBit, Key: args[1], Offset: off, Delta: bit})
	if !ok {
		return
	}
	c.w.Int(res.Int)
}

// getbit: GETBIT key offset; 0 past the end of the string or for a missing key.
func (s *Server) getbit(c *client, args [][]byte) {
	off, ok := s.bitOffset(args[2])
	if !ok {
		c.w.errorLine(errBitOffset)
		return
	}
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: args[1]})
	if !ok {
		return
	}
	v := res.Item.Value
	c.w.Int(b2i(off>>3 < int64(len(v)) && v[off>>3]&(1<<(7-off&7)) != 0))
}

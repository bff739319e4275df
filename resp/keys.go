package resp

import (
	"bytes"
	"math"
	"strconv"

	"github.com/dynakv/dynakv/internal/num"
	"github.com/dynakv/dynakv/proxy"
)

// del answers DEL and UNLINK: the number of keys that existed.
func (s *Server) del(c *client, args [][]byte) {
	var n int64
	for _, key := range args[1:] {
		res, ok := s.do(c, proxy.Op{Kind: proxy.OpDelete, Key: key})
		if !ok {
			return
		}
		if res.Status == proxy.Stored {
			n++
		}
	}
	c.w.Int(n)
}

// exists answers EXISTS and TOUCH: how many of the keys exist, a key named twice
// counting twice.
func (s *Server) exists(c *client, args [][]byte) {
	var n int64
	for _, key := range args[1:] {
		res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: key})
		if !ok {
			return
		}
		if res.Found {
			n++
		}
	}
	c.w.Int(n)
}

// EXPIRE options.
const (
	expNX = 1 << iota
	expXX
	expGT
	expLT
)

func (s *Server) expire(c *client, args [][]byte) {
	s.expireGeneric(c, args, "expire", s.nowMs(), false)
}

func (s *Server) pexpire(c *client, args [][]byte) {
	s.expireGeneric(c, args, "pexpire", s.nowMs(), true)
}

func (s *Server) expireat(c *client, args [][]byte) {
	s.expireGeneric(c, args, "expireat", 0, false)
}

func (s *Server) pexpireat(c *client, args [][]byte) {
	s.expireGeneric(c, args, "pexpireat", 0, true)
}

// expireGeneric is expire.c's expireGenericCommand: options first, then the time
// (relative to base, in seconds unless ms), with its overflow checks. A time at or
// before now deletes the key.
func (s *Server) expireGeneric(c *client, args [][]byte, name string, base int64, ms bool) {
	flags := 0
	for _, a := range args[3:] {
		opt := cstr(a)
		switch {
		case eqFold(opt, "nx"):
			flags |= expNX
		case eqFold(opt, "xx"):
			flags |= expXX
		case eqFold(opt, "gt"):
			flags |= expGT
		case eqFold(opt, "lt"):
			flags |= expLT
		default:
			c.w.Error("ERR Unsupported option " + string(opt))
			return
		}
	}
	if flags&expNX != 0 && flags&(expXX|expGT|expLT) != 0 {
		c.w.errorLine(errNXXXGTLT)
		return
	}
	if flags&expGT != 0 && flags&expLT != 0 {
		c.w.errorLine(errGTLT)
		return
	}
	when, ok := num.ParseInt(args[2])
	if !ok {
		c.w.errorLine(errNotInteger)
		return
	}
	if !ms {
		if when > math.MaxInt64/1000 || when < math.MinInt64/1000 {
			c.w.errorLine(invalidExpire(name))
			return
		}
		when *= 1000
	}
	if when > math.MaxInt64-base {
		c.w.errorLine(invalidExpire(name))
		return
	}
	when += base
	op := proxy.Op{Kind: proxy.OpExpire, Key: args[1], Expiry: when}
	switch {
	case flags&expNX != 0:
		op.Cond = proxy.CondNX
	case flags&expGT != 0:
		op.Cond = proxy.CondGT // GT fails without an expiry, so XX adds nothing
	case flags&expLT != 0:
		op.Cond = proxy.CondLT
		if flags&expXX != 0 && c.try {
			c.notInline() // a read, then the write: not inline (command.loop)
			return
		}
		if flags&expXX != 0 {
			// proxy has no XX+LT condition: check XX first. Not atomic: an
			// expiry removed concurrently lets LT set one.
			res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: args[1]})
			if !ok {
				return
			}
			if !res.Found || res.Item.Expiry == 0 {
				c.w.Int(0)
				return
			}
		}
	case flags&expXX != 0:
		op.Cond = proxy.CondXX
	}
	if op.Expiry == 0 {
		op.Expiry = -1 // 0 is a valid time in the past here, not "no expiry"
	}
	res, ok := s.do(c, op)
	if !ok {
		return
	}
	c.w.Int(b2i(res.Status == proxy.Stored))
}

// TTL variants: output in ms or s, relative or absolute.
func (s *Server) ttl(c *client, args [][]byte)         { s.ttlGeneric(c, args[1], false, false) }
func (s *Server) pttl(c *client, args [][]byte)        { s.ttlGeneric(c, args[1], true, false) }
func (s *Server) expiretime(c *client, args [][]byte)  { s.ttlGeneric(c, args[1], false, true) }
func (s *Server) pexpiretime(c *client, args [][]byte) { s.ttlGeneric(c, args[1], true, true) }

// ttlGeneric answers -2 for a missing key, -1 for a key without expiry, else the
// time left (or the expiry time), seconds rounded as Redis does.
func (s *Server) ttlGeneric(c *client, key []byte, ms, abs bool) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: key})
	if !ok {
		return
	}
	switch {
	case !res.Found:
		c.w.Int(-2)
		return
	case res.Item.Expiry == 0:
		c.w.Int(-1)
		return
	}
	t := res.Item.Expiry
	if !abs {
		t -= s.nowMs()
	}
	t = max(t, 0)
	if !ms {
		t = (t + 500) / 1000
	}
	c.w.Int(t)
}

func (s *Server) persist(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpExpire, Key: args[1], Persist: true})
	if !ok {
		return
	}
	c.w.Int(b2i(res.Status == proxy.Stored))
}

func (s *Server) typeCmd(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: args[1]})
	if !ok {
		return
	}
	if res.Found {
		c.w.Simple("string")
	} else {
		c.w.Simple("none")
	}
}

func (s *Server) dbsize(c *client, _ [][]byte) {
	n, err := s.px.DBSize(s.ctx)
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.w.Int(n)
}

func (s *Server) keys(c *client, args [][]byte) {
	keys, err := s.px.Keys(s.ctx, string(args[1]))
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.w.Array(len(keys))
	for _, k := range keys {
		c.w.Bulk(k)
		s.spill(c)
	}
}

// scan: SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. The cursor is
// proxy's, an opaque uint64; every key present for the whole iteration is
// returned at least once.
func (s *Server) scan(c *client, args [][]byte) {
	cursor, ok := parseCursor(args[1])
	if !ok {
		c.w.errorLine(errInvalidCursor)
		return
	}
	count := int64(10)
	var pattern, typ []byte
	for i := 2; i < len(args); {
		opt, more := cstr(args[i]), len(args)-i
		switch {
		case eqFold(opt, "count") && more >= 2:
			n, ok := num.ParseInt(args[i+1])
			if !ok {
				c.w.errorLine(errNotInteger)
				return
			}
			if n < 1 {
				c.w.errorLine(errSyntax)
				return
			}
			count = n
		case eqFold(opt, "match") && more >= 2:
			pattern = args[i+1]
		case eqFold(opt, "type") && more >= 2:
			typ = args[i+1]
		default:
			c.w.errorLine(errSyntax)
			return
		}
		i += 2
	}
	next, keys, err := s.px.Scan(s.ctx, cursor, string(pattern), int(min(count, math.MaxInt32)))
	if err != nil {
		s.replyErr(c, err)
		return
	}
	if typ != nil && !eqFold(cstr(typ), "string") {
		keys = nil // every dynakv value is a string
	}
	var buf [20]byte
	c.w.Array(2)
	c.w.Bulk(strconv.AppendUint(buf[:0], next, 10))
	c.w.Array(len(keys))
	for _, k := range keys {
		c.w.Bulk(k)
		s.spill(c)
	}
}

func (s *Server) randomkey(c *client, _ [][]byte) {
	key, ok, err := s.px.RandomKey(s.ctx)
	if err != nil {
		s.replyErr(c, err)
		return
	}
	if !ok {
		c.w.Null()
		return
	}
	c.w.Bulk(key)
}

// flushall answers FLUSHALL and FLUSHDB [ASYNC|SYNC]; both flush at once.
func (s *Server) flushall(c *client, args [][]byte) {
	if len(args) > 2 || (len(args) == 2 && !eqFold(cstr(args[1]), "sync") && !eqFold(cstr(args[1]), "async")) {
		c.w.errorLine(errSyntax)
		return
	}
	if err := s.px.FlushAll(s.ctx, 0); err != nil {
		s.replyErr(c, err)
		return
	}
	c.w.OK()
}

// rename answers RENAME and RENAMENX (nx) through proxy.Copy: not atomic across
// the two keys (see proxy.Copy).
func (s *Server) rename(c *client, args [][]byte) { s.renameGeneric(c, args, false) }

func (s *Server) renamenx(c *client, args [][]byte) { s.renameGeneric(c, args, true) }

func (s *Server) renameGeneric(c *client, args [][]byte, nx bool) {
	moved, err := s.px.Copy(s.ctx, bytes.Clone(args[1]), bytes.Clone(args[2]), proxy.CopyOptions{Move: true, Replace: !nx})
	switch {
	case err != nil:
		s.replyErr(c, err)
	case nx:
		c.w.Int(b2i(moved))
	default:
		c.w.OK()
	}
}

// copyCmd: COPY source destination [DB destination-db] [REPLACE]. Only DB 0 exists.
func (s *Server) copyCmd(c *client, args [][]byte) {
	replace := false
	for j := 3; j < len(args); j++ {
		opt := cstr(args[j])
		switch {
		case eqFold(opt, "replace"):
			replace = true
		case eqFold(opt, "db") && j+1 < len(args):
			db, ok := num.ParseInt(args[j+1])
			if !ok || db < math.MinInt32 || db > math.MaxInt32 {
				c.w.errorLine(errNotInteger)
				return
			}
			if db != 0 {
				c.w.errorLine(errDBIndex)
				return
			}
			j++
		default:
			c.w.errorLine(errSyntax)
			return
		}
	}
	copied, err := s.px.Copy(s.ctx, bytes.Clone(args[1]), bytes.Clone(args[2]), proxy.CopyOptions{Replace: replace})
	if err != nil {
		s.replyErr(c, err)
		return
	}
	c.w.Int(b2i(copied))
}

package resp

import (
	"math"

	"github.com/dynakv/dynakv/internal/num"
	"github.com/dynakv/dynakv/proxy"
)

// do runs op in the connection's session (flushed by wire.Write before the
// batch's replies leave), answering its error if it fails.
//
// In try mode (the loop driver's inline commands) it runs op with Session.Try
// instead, without owned: the op's key and value are not kept past the call
// (the write set and the record cache copy what they stage, and nothing runs
// in the background for a single node). An op that would block answers
// nothing: the handler returns, its reply is dropped, and the command runs
// again on a handoff.
func (s *Server) do(c *client, op proxy.Op) (proxy.Result, bool) {
	var res proxy.Result
	var err error
	if c.try {
		res, err = s.try(c, op)
	} else {
		res, err = c.sess.Do(s.ctx, owned(op))
	}
	if err != nil {
		if c.blocked == "" {
			s.replyErr(c, err)
		}
		return res, false
	}
	return res, true
}

// try runs op in try mode: Session.Try in the loop's write set. After a
// would-block (c.blocked set) every later op fails at once.
func (s *Server) try(c *client, op proxy.Op) (proxy.Result, error) {
	if c.blocked != "" {
		return proxy.Result{}, proxy.ErrWouldBlock
	}
	var res proxy.Result
	var err error
	if h := s.testHookTry; h != nil {
		err = h(c, op)
	}
	if err == nil {
		res, err = c.sess.Try(s.ctx, op, c.ws)
	}
	if r := proxy.BlockReason(err); r != "" {
		c.blocked = r
	}
	return res, err
}

// readOp runs a read outside the session (it needs no flush), or in try mode.
func (s *Server) readOp(c *client, op proxy.Op) (proxy.Result, error) {
	if c.try {
		return s.try(c, op)
	}
	return s.px.Do(s.ctx, owned(op))
}

// owned gives op its own copy of its key and value, in one allocation. Arguments
// alias the connection's input buffer, which the next read overwrites, while the
// coordinator's background work (replica writes past W, hints, read repair) may
// use an op's key, and the record built from its value, after the op returned.
// Everything resp hands the proxy goes through it (or is a string: a copy).
func owned(op proxy.Op) proxy.Op {
	if len(op.Key)+len(op.Value) == 0 {
		return op
	}
	b := make([]byte, len(op.Key)+len(op.Value))
	n := copy(b, op.Key)
	copy(b[n:], op.Value)
	if op.Key != nil {
		op.Key = b[:n:n]
	}
	if op.Value != nil {
		op.Value = b[n:]
	}
	return op
}

// replyErr answers err through the error table, logging errors it does not know.
func (s *Server) replyErr(c *client, err error) {
	line, known := errorReply(err)
	if !known {
		name := "?"
		if cmd := c.lastCmd.Load(); cmd != nil {
			name = cmd.name
		}
		s.cfg.Logger.Error("command failed", "cmd", name, "addr", c.addr, "err", err)
	}
	c.w.errorLine(line)
}

func (s *Server) nowMs() int64 { return s.cfg.Now().UnixMilli() }

// Options of SET and GETEX (t_string.c's OBJ_* flags).
const (
	optNX = 1 << iota
	optXX
	optEX
	optPX
	optKeepTTL
	optGet
	optEXAT
	optPXAT
	optPersist
)

// parseStringOpts parses SET's (isSet) or GETEX's options with the exclusion
// rules of Redis 7.2's parseExtendedStringArgumentsOrReply. It returns the flags
// and the expire argument, or false for a syntax error.
func parseStringOpts(opts [][]byte, isSet bool) (flags int, expire []byte, ok bool) {
	for j := 0; j < len(opts); j++ {
		opt := cstr(opts[j]) // C compares up to the first NUL
		hasNext := j+1 < len(opts)
		switch {
		case eqFold(opt, "nx") && flags&optXX == 0 && isSet:
			flags |= optNX
		case eqFold(opt, "xx") && flags&optNX == 0 && isSet:
			flags |= optXX
		case eqFold(opt, "get") && isSet:
			flags |= optGet
		case eqFold(opt, "keepttl") && flags&(optPersist|optEX|optEXAT|optPX|optPXAT) == 0 && isSet:
			flags |= optKeepTTL
		case eqFold(opt, "persist") && !isSet && flags&(optEX|optEXAT|optPX|optPXAT|optKeepTTL) == 0:
			flags |= optPersist
		case eqFold(opt, "ex") && flags&(optKeepTTL|optPersist|optEXAT|optPX|optPXAT) == 0 && hasNext:
			flags |= optEX
			expire = opts[j+1]
			j++
		case eqFold(opt, "px") && flags&(optKeepTTL|optPersist|optEX|optEXAT|optPXAT) == 0 && hasNext:
			flags |= optPX
			expire = opts[j+1]
			j++
		case eqFold(opt, "exat") && flags&(optKeepTTL|optPersist|optEX|optPX|optPXAT) == 0 && hasNext:
			flags |= optEXAT
			expire = opts[j+1]
			j++
		case eqFold(opt, "pxat") && flags&(optKeepTTL|optPersist|optEX|optEXAT|optPX) == 0 && hasNext:
			flags |= optPXAT
			expire = opts[j+1]
			j++
		default:
			return 0, nil, false
		}
	}
	return flags, expire, true
}

// expireAt turns an EX/PX/EXAT/PXAT argument into an absolute unix ms time, as
// Redis's getExpireMillisecondsOrReply: positive, no overflow. On failure it returns
// the error line to answer (name is the command, for "invalid expire time in
// '<name>' command").
func (s *Server) expireAt(arg []byte, flags int, name string) (int64, []byte) {
	ms, ok := num.ParseInt(arg)
	if !ok {
		return 0, errNotInteger
	}
	seconds := flags&(optEX|optEXAT) != 0
	if ms <= 0 || (seconds && ms > math.MaxInt64/1000) {
		return 0, invalidExpire(name)
	}
	if seconds {
		ms *= 1000
	}
	if flags&(optEX|optPX) != 0 {
		ms += s.nowMs() // wraps negative on overflow, caught below as in Redis
	}
	if ms <= 0 {
		return 0, invalidExpire(name)
	}
	return ms, nil
}

func invalidExpire(name string) []byte {
	return errLine("ERR invalid expire time in '" + name + "' command")
}

func (s *Server) get(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: args[1]})
	if !ok {
		return
	}
	if !res.Found {
		c.w.Null()
		return
	}
	c.w.Bulk(res.Item.Value)
}

// set: SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
func (s *Server) set(c *client, args [][]byte) {
	flags, exp, ok := parseStringOpts(args[3:], true)
	if !ok {
		c.w.errorLine(errSyntax)
		return
	}
	s.setGeneric(c, args[1], args[2], flags, exp, "set")
}

// setGeneric is t_string.c's setGenericCommand: the expiry is validated first,
// then the write happens unless NX or XX says otherwise; GET answers the old value
// either way.
func (s *Server) setGeneric(c *client, key, value []byte, flags int, exp []byte, name string) {
	op := proxy.Op{Kind: proxy.OpSet, Key: key, Value: value, KeepTTL: flags&optKeepTTL != 0, ReturnOld: flags&optGet != 0}
	if exp != nil {
		when, errl := s.expireAt(exp, flags, name)
		if errl != nil {
			c.w.errorLine(errl)
			return
		}
		op.Expiry = when
	}
	switch {
	case flags&optNX != 0:
		op.Cond = proxy.CondNX
	case flags&optXX != 0:
		op.Cond = proxy.CondXX
	}
	res, ok := s.do(c, op)
	if !ok {
		return
	}
	switch {
	case flags&optGet != 0 && res.Found:
		c.w.Bulk(res.Item.Value)
	case flags&optGet != 0:
		c.w.Null()
	case res.Status == proxy.Stored:
		c.w.OK()
	default:
		c.w.Null()
	}
}

func (s *Server) setnx(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpSet, Key: args[1], Value: args[2], Cond: proxy.CondNX})
	if !ok {
		return
	}
	c.w.Int(b2i(res.Status == proxy.Stored))
}

func (s *Server) setex(c *client, args [][]byte) {
	s.setGeneric(c, args[1], args[3], optEX, args[2], "setex")
}

func (s *Server) psetex(c *client, args [][]byte) {
	s.setGeneric(c, args[1], args[3], optPX, args[2], "psetex")
}

func (s *Server) getset(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpSet, Key: args[1], Value: args[2], ReturnOld: true})
	if !ok {
		return
	}
	s.bulkOrNull(c, res)
}

func (s *Server) bulkOrNull(c *client, res proxy.Result) {
	if !res.Found {
		c.w.Null()
		return
	}
	c.w.Bulk(res.Item.Value)
}

func (s *Server) getdel(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpGetDel, Key: args[1]})
	if !ok {
		return
	}
	s.bulkOrNull(c, res)
}

// getex: GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
func (s *Server) getex(c *client, args [][]byte) {
	flags, exp, ok := parseStringOpts(args[2:], false)
	if !ok {
		c.w.errorLine(errSyntax)
		return
	}
	op := proxy.Op{Kind: proxy.OpGetEx, Key: args[1]}
	switch {
	case exp != nil:
		when, errl := s.expireAt(exp, flags, "getex")
		if errl != nil {
			// Redis looks the key up before it validates the time: a missing
			// key answers nil whatever the time.
			res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: args[1]})
			if !ok {
				return
			}
			if !res.Found {
				c.w.Null()
				return
			}
			c.w.errorLine(errl)
			return
		}
		op.SetExpiry, op.Expiry = true, when
	case flags&optPersist != 0:
		op.SetExpiry, op.Persist = true, true
	}
	res, ok := s.do(c, op)
	if !ok {
		return
	}
	s.bulkOrNull(c, res)
}

// mget answers the values in turn (read in batches in a cluster: mgetReader).
// Its reply can be far larger than the output buffer limit: past it, the part
// built so far is written out first (spill), and a key that fails after that
// ends the connection instead of replacing the reply by an error.
func (s *Server) mget(c *client, args [][]byte) {
	m := c.w.mark()
	c.w.Array(len(args) - 1)
	rd := mgetReader{s: s, c: c, keys: args[1:]}
	for i := range rd.keys {
		res, err := rd.get(i)
		if c.blocked != "" {
			return // handed off: the reply is dropped
		}
		if err != nil {
			c.w.truncate(m)
			s.replyErr(c, err)
			return
		}
		s.bulkOrNull(c, res)
		if s.spill(c); c.closing || c.blocked != "" {
			return // the client stopped reading: it is being dropped; or handed off
		}
	}
}

// mset sets each pair in turn. Unlike Redis's, it is not atomic across keys: each
// key is its own Dynamo object.
func (s *Server) mset(c *client, args [][]byte) {
	if len(args)%2 == 0 {
		c.w.errorLine(s.cmds.byName["mset"].arityErr)
		return
	}
	for i := 1; i < len(args); i += 2 {
		if _, ok := s.do(c, proxy.Op{Kind: proxy.OpSet, Key: args[i], Value: args[i+1]}); !ok {
			return
		}
	}
	c.w.OK()
}

// msetnx sets the pairs only if none of the keys exists. It checks first, then
// writes each key with NX; a key created concurrently between the two makes it
// answer 0 with the other keys possibly written (no cross-key atomicity).
func (s *Server) msetnx(c *client, args [][]byte) {
	if len(args)%2 == 0 {
		c.w.errorLine(s.cmds.byName["msetnx"].arityErr)
		return
	}
	for i := 1; i < len(args); i += 2 {
		res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: args[i]})
		if !ok {
			return
		}
		if res.Found {
			c.w.Int(0)
			return
		}
	}
	// Redis sets the keys in order: the last value of a key named twice wins.
	last := make(map[string]int, (len(args)-1)/2)
	for i := 1; i < len(args); i += 2 {
		last[string(args[i])] = i
	}
	all := true
	for i := 1; i < len(args); i += 2 {
		if last[bstr(args[i])] != i {
			continue
		}
		res, ok := s.do(c, proxy.Op{Kind: proxy.OpSet, Key: args[i], Value: args[i+1], Cond: proxy.CondNX})
		if !ok {
			return
		}
		all = all && res.Status == proxy.Stored
	}
	c.w.Int(b2i(all))
}

func (s *Server) incrBy(c *client, key []byte, delta int64) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpIncr, Key: key, Delta: delta})
	if !ok {
		return
	}
	c.w.Int(res.Int)
}

func (s *Server) incr(c *client, args [][]byte) { s.incrBy(c, args[1], 1) }
func (s *Server) decr(c *client, args [][]byte) { s.incrBy(c, args[1], -1) }

func (s *Server) incrby(c *client, args [][]byte) {
	n, ok := num.ParseInt(args[2])
	if !ok {
		c.w.errorLine(errNotInteger)
		return
	}
	s.incrBy(c, args[1], n)
}

func (s *Server) decrby(c *client, args [][]byte) {
	n, ok := num.ParseInt(args[2])
	if !ok {
		c.w.errorLine(errNotInteger)
		return
	}
	if n == math.MinInt64 {
		c.w.errorLine(errDecrOverflow)
		return
	}
	s.incrBy(c, args[1], -n)
}

func (s *Server) incrbyfloat(c *client, args [][]byte) {
	f, ok := num.ParseFloat(args[2])
	if !ok {
		c.w.errorLine(errNotFloat)
		return
	}
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpIncrFloat, Key: args[1], Float: f})
	if !ok {
		return
	}
	c.w.Bulk(res.Float)
}

func (s *Server) appendCmd(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpAppend, Key: args[1], Value: args[2]})
	if !ok {
		return
	}
	c.w.Int(res.Int)
}

func (s *Server) strlen(c *client, args [][]byte) {
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: args[1]})
	if !ok {
		return
	}
	c.w.Int(int64(len(res.Item.Value)))
}

// getrange: GETRANGE key start end, with Redis 7.2's index rules.
func (s *Server) getrange(c *client, args [][]byte) {
	start, ok1 := num.ParseInt(args[2])
	end, ok2 := num.ParseInt(args[3])
	if !ok1 || !ok2 {
		c.w.errorLine(errNotInteger)
		return
	}
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: args[1]})
	if !ok {
		return
	}
	v := res.Item.Value
	c.w.Bulk(substr(v, start, end))
}

// substr is GETRANGE's slicing: negative indexes count from the end, the range is
// clamped, and an empty range gives "".
func substr(v []byte, start, end int64) []byte {
	n := int64(len(v))
	if start < 0 && end < 0 && start > end {
		return nil
	}
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	start, end = max(start, 0), max(end, 0)
	if end >= n {
		end = n - 1
	}
	if start > end || n == 0 {
		return nil
	}
	return v[start : end+1]
}

func (s *Server) setrange(c *client, args [][]byte) {
	off, ok := num.ParseInt(args[2])
	if !ok {
		c.w.errorLine(errNotInteger)
		return
	}
	if off < 0 {
		c.w.errorLine(errOffset)
		return
	}
	res, ok := s.do(c, proxy.Op{Kind: proxy.OpSetRange, Key: args[1], Offset: off, Value: args[3]})
	if !ok {
		return
	}
	c.w.Int(res.Int)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

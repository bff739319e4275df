package memcache

import (
	"math"
	"time"

	"github.com/dynakv/dynakv/proxy"
)

// setNoreplyMaybe is memcached's set_noreply_maybe: a last token "noreply" silences
// the reply, error lines included.
func (c *conn) setNoreplyMaybe(toks [][]byte) bool {
	if string(toks[len(toks)-1]) == "noreply" {
		c.noreply, c.hideErrors = true, true
	}
	return c.noreply
}

// cmdGet answers get, gets (withCAS), gat and gats (touch): "gat <exptime> <key>*".
// rest holds the keys past the tokenizer's limit.
func (c *conn) cmdGet(toks [][]byte, rest []byte, withCAS, touch bool) {
	if len(toks) < 2 {
		c.fail(lineError)
		return
	}
	keys := toks[1:]
	var exp int64
	if touch {
		e, ok := parseInt32(toks[1])
		if !ok {
			c.fail(lineBadExptime)
			return
		}
		exp = expiry(e, c.now())
		keys = toks[2:]
	}
	// memcached discards a partial reply when it meets an overlong key and answers
	// only the error: check every key first.
	for _, k := range keys {
		if !c.validKey(k) {
			c.fail(lineBadFormat)
			return
		}
	}
	for r := rest; ; {
		var k []byte
		if k, r = nextToken(r); len(k) == 0 {
			break
		}
		if !c.validKey(k) {
			c.fail(lineBadFormat)
			return
		}
	}
	var n getCounts
	defer c.countGets(&n, touch)
	for _, k := range keys {
		if !c.getOne(k, withCAS, touch, exp, &n) {
			return
		}
	}
	for r := rest; ; {
		var k []byte
		if k, r = nextToken(r); len(k) == 0 {
			break
		}
		if !c.getOne(k, withCAS, touch, exp, &n) {
			return
		}
	}
	c.w.WriteString("END\r\n")
}

// getCounts are a retrieval command's hits and misses, counted once it ran.
type getCounts struct{ hits, misses uint64 }

// countGets adds a retrieval command's counts to the stats, unless it would
// block (it runs again on a handoff, which counts it).
func (c *conn) countGets(n *getCounts, touch bool) {
	if c.blocked != "" {
		return
	}
	st := &c.s.stats
	cmd, hits, misses := &st.cmdGet, &st.getHits, &st.getMisses
	if touch {
		cmd, hits, misses = &st.cmdTouch, &st.touchHits, &st.touchMisses
	}
	cmd.Add(n.hits + n.misses)
	hits.Add(n.hits)
	misses.Add(n.misses)
}

// getOne writes the VALUE block of one key of a retrieval command, if it exists,
// and counts it in n. On a proxy error it writes the error line in place of END
// and returns false; in try mode also when the replies pass inlineMax (the
// command is handed off: c.blocked).
func (c *conn) getOne(k []byte, withCAS, touch bool, exp int64, n *getCounts) bool {
	op := proxy.Op{Kind: proxy.OpGet, Key: c.own(k)}
	if touch {
		op = proxy.Op{Kind: proxy.OpGetEx, Key: op.Key, SetExpiry: true, Expiry: exp, Persist: exp == 0}
	}
	res, err := c.do(op)
	if err != nil {
		c.failErr(err)
		return false
	}
	if !res.Found {
		n.misses++
		return true
	}
	n.hits++
	it := res.Item
	cas := it.CAS
	if res.Status == proxy.Stored {
		cas = res.CAS // the touch wrote a new version
	}
	b := append(c.out[:0], "VALUE "...)
	b = append(b, k...)
	b = append(b, ' ')
	b = appendUint(b, uint64(it.Flags))
	b = append(b, ' ')
	b = appendInt(b, int64(len(it.Value)))
	if withCAS {
		b = append(b, ' ')
		b = appendUint(b, cas)
	}
	b = append(b, "\r\n"...)
	c.out = b
	c.w.Write(b)
	c.w.Write(it.Value)
	c.w.WriteString("\r\n")
	if c.try && c.inlineOut+len(c.tryBuf.b) > inlineMax {
		c.blocked = reasonOutput
		return false
	}
	return true
}

// updateLine is a storage command line:
// "<cmd> <key> <flags> <exptime> <bytes> [<cas unique>] [noreply]".
type updateLine struct {
	key     []byte
	flags   uint32
	exptime int32
	vlen    int
	cas     uint64
}

// parseUpdate parses a storage command line of a valid token count. ok is false
// for memcached's "bad command line format", after which no data block is read.
func (c *conn) parseUpdate(toks [][]byte, withCAS bool) (u updateLine, ok bool) {
	u.key = toks[1]
	if !c.validKey(u.key) {
		return u, false
	}
	var ok1, ok2, ok3 bool
	var vlen int32
	u.flags, ok1 = parseUint32(toks[2])
	u.exptime, ok2 = parseInt32(toks[3])
	vlen, ok3 = parseInt32(toks[4])
	if !ok1 || !ok2 || !ok3 {
		return u, false
	}
	if withCAS {
		if u.cas, ok = parseUint64(toks[5]); !ok {
			return u, false
		}
	}
	if vlen < 0 || vlen > math.MaxInt32-2 {
		return u, false
	}
	u.vlen = int(vlen)
	return u, true
}

// updateBlock is blockFor for a storage command line.
func (c *conn) updateBlock(toks [][]byte, withCAS bool) blockSpec {
	u, ok := c.parseUpdate(toks, withCAS)
	if !ok {
		return blockSpec{}
	}
	return blockSpec{size: u.vlen + 2, swallow: u.vlen > c.s.cfg.MaxValueBytes}
}

// cmdUpdate answers set, add, replace, append, prepend and (withCAS) cas, whose
// data block (or its refusal) the reader gave with the line.
func (c *conn) cmdUpdate(toks [][]byte, cmd command, withCAS bool) {
	c.setNoreplyMaybe(toks)
	kind := string(toks[0])
	u, ok := c.parseUpdate(toks, withCAS)
	if !ok {
		c.fail(lineBadFormat)
		return
	}
	exp := expiry(u.exptime, c.now())
	key := c.own(u.key)
	if cmd.swallowed {
		c.refuseTooLarge(key, kind == "set", c.fail)
		return
	}
	if !cmd.blockOK {
		c.s.stats.cmdSet.Add(1)
		c.fail(lineBadChunk)
		return
	}
	data := cmd.block
	op := proxy.Op{Kind: proxy.OpSet, Key: key, Value: data, Flags: u.flags, Expiry: exp}
	switch kind {
	case "add":
		op.Cond = proxy.CondNX
	case "replace":
		op.Cond = proxy.CondXX
	case "append", "prepend":
		op = proxy.Op{Kind: proxy.OpAppend, Key: key, Value: data, Cond: proxy.CondXX, Prepend: kind == "prepend"}
	case "cas":
		op.Cond, op.CAS = proxy.CondCAS, u.cas
	}
	res, err := c.do(op)
	if c.blocked != "" {
		return // it runs again on a handoff
	}
	c.s.stats.cmdSet.Add(1)
	if err != nil {
		c.failErr(err)
		return
	}
	if withCAS {
		c.countCAS(res.Status)
	}
	switch res.Status {
	case proxy.Stored:
		c.s.stats.totalItems.Add(1)
		c.reply("STORED")
	case proxy.NotStored:
		c.reply("NOT_STORED")
	case proxy.Exists:
		c.reply("EXISTS")
	case proxy.NotFound:
		c.reply("NOT_FOUND")
	}
}

// refuseTooLarge answers a data block over the value limit as memcached does: the
// error line, and the old value of the key deleted when del; the reader swallows
// the block as it streams in, and the reply leaves before the server waits for it,
// so a client need not send the block to hear it.
func (c *conn) refuseTooLarge(key []byte, del bool, fail func(string)) {
	if del {
		// memcached unlinks the old item so a failed set leaves no stale value.
		_, err := c.do(proxy.Op{Kind: proxy.OpDelete, Key: key})
		if c.blocked != "" {
			return // it runs again on a handoff
		}
		if err != nil {
			c.s.cfg.Logger.Debug("memcache: delete after oversized set", "err", err)
		}
	}
	c.s.stats.storeTooLarge.Add(1)
	fail(lineTooLarge)
}

func (c *conn) countCAS(st proxy.Status) {
	switch st {
	case proxy.Stored:
		c.s.stats.casHits.Add(1)
	case proxy.Exists:
		c.s.stats.casBadval.Add(1)
	case proxy.NotFound:
		c.s.stats.casMisses.Add(1)
	}
}

// cmdArithmetic answers "incr|decr <key> <delta> [noreply]": unsigned 64-bit, incr
// wraps, decr stops at 0.
func (c *conn) cmdArithmetic(toks [][]byte, incr bool) {
	c.setNoreplyMaybe(toks)
	if !c.validKey(toks[1]) {
		c.fail(lineBadFormat)
		return
	}
	delta, ok := parseUint64(toks[2])
	if !ok {
		c.fail(lineBadDelta)
		return
	}
	res, err := c.do(proxy.Op{Kind: proxy.OpIncrUnsigned, Key: c.own(toks[1]), UDelta: delta, Decr: !incr})
	if err != nil {
		c.failErr(err)
		return
	}
	st := &c.s.stats
	hits, misses := &st.incrHits, &st.incrMisses
	if !incr {
		hits, misses = &st.decrHits, &st.decrMisses
	}
	if res.Status != proxy.Stored {
		misses.Add(1)
		c.reply("NOT_FOUND")
		return
	}
	hits.Add(1)
	c.replyBytes(appendUint(c.out[:0], res.Uint))
}

// cmdDelete answers "delete <key> [0] [noreply]" (the 0 is the legacy hold time).
func (c *conn) cmdDelete(toks [][]byte) {
	if n := len(toks); n > 2 {
		holdIsZero := string(toks[2]) == "0"
		noreply := c.setNoreplyMaybe(toks)
		if !(n == 3 && (holdIsZero || noreply)) && !(n == 4 && holdIsZero && noreply) {
			c.fail(lineDeleteUsage)
			return
		}
	}
	if !c.validKey(toks[1]) {
		c.fail(lineBadFormat)
		return
	}
	res, err := c.do(proxy.Op{Kind: proxy.OpDelete, Key: c.own(toks[1])})
	if err != nil {
		c.failErr(err)
		return
	}
	if res.Status == proxy.Stored {
		c.s.stats.deleteHits.Add(1)
		c.reply("DELETED")
		return
	}
	c.s.stats.deleteMisses.Add(1)
	c.reply("NOT_FOUND")
}

// cmdTouch answers "touch <key> <exptime> [noreply]".
func (c *conn) cmdTouch(toks [][]byte) {
	c.setNoreplyMaybe(toks)
	if !c.validKey(toks[1]) {
		c.fail(lineBadFormat)
		return
	}
	e, ok := parseInt32(toks[2])
	if !ok {
		c.fail(lineBadExptime)
		return
	}
	exp := expiry(e, c.now())
	res, err := c.do(proxy.Op{Kind: proxy.OpGetEx, Key: c.own(toks[1]), SetExpiry: true, Expiry: exp, Persist: exp == 0})
	if err != nil {
		c.failErr(err)
		return
	}
	st := &c.s.stats
	st.cmdTouch.Add(1)
	hitMiss(res.Found, &st.touchHits, &st.touchMisses)
	if res.Found {
		c.reply("TOUCHED")
	} else {
		c.reply("NOT_FOUND")
	}
}

// cmdFlushAll answers "flush_all [delay] [noreply]".
func (c *conn) cmdFlushAll(toks [][]byte) {
	c.setNoreplyMaybe(toks)
	c.s.stats.cmdFlush.Add(1)
	want := 1
	if c.noreply {
		want = 2
	}
	var e int32
	if len(toks) != want {
		var ok bool
		if e, ok = parseInt32(toks[1]); !ok {
			c.fail(lineBadExptime)
			return
		}
	}
	var delay time.Duration
	if e > 0 {
		now := c.now()
		delay = max(time.Duration(expiry(e, now)-now.UnixMilli())*time.Millisecond, 0)
	}
	if err := c.s.px.FlushAll(c.ctx, delay); err != nil {
		c.failErr(err)
		return
	}
	c.reply("OK")
}

// cmdVerbosity answers "verbosity <level> [noreply]"; the level is only remembered.
func (c *conn) cmdVerbosity(toks [][]byte) {
	c.setNoreplyMaybe(toks)
	level, ok := parseUint32(toks[1])
	if !ok {
		c.fail(lineBadFormat)
		return
	}
	c.s.verbosity.Store(min(level, 2))
	c.reply("OK")
}

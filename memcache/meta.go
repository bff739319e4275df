package memcache

import (
	"encoding/base64"
	"math"
	"time"

	"github.com/dynakv/dynakv/proxy"
)

// Meta protocol limits (memcached's MFLAG_MAX_OPT_LENGTH, MFLAG_MAX_OPAQUE_LENGTH).
const (
	metaMaxTokens   = 20 // counting memcached's terminal token
	metaMaxOpaque   = 32 // counting the 'O'
	metaMaxFlagChar = 127
)

// metaReq is a meta command's key and flags, as memcached's _meta_flag_preparse
// reads them.
type metaReq struct {
	key    []byte   // the key, base64-decoded when binary
	binary bool     // b: the key came base64-encoded
	flags  [][]byte // the flag tokens, in request order

	quiet, value bool
	hasCAS       bool
	cas          uint64 // C
	hasTTL       bool
	ttl          int32 // T
	vivify       bool
	vivTTL       int32 // N
	tAfterN      bool  // T comes after N (it then sets a created item's TTL)
	clientFlags  uint32
	mode         byte
	delta        uint64 // D, default 1
	initial      uint64 // J
}

// parseMeta reads a meta command's key and flag tokens. errLine is "" on success.
// Like memcached, a duplicate or unknown flag stops at once; other bad tokens are
// reported after every flag was read, the last one's message winning.
func parseMeta(key []byte, flags [][]byte) (m metaReq, errLine string) {
	m = metaReq{key: key, flags: flags, delta: 1}
	var seen [metaMaxFlagChar]bool
	for _, f := range flags {
		o := f[0]
		if o >= metaMaxFlagChar || seen[o] {
			return m, lineMetaDupFlag
		}
		seen[o] = true
		arg := f[1:]
		switch o {
		case 'b':
			k, ok := decodeKey(key)
			if !ok {
				errLine = lineMetaBadKey
				break
			}
			m.key, m.binary = k, true
		case 'N':
			v, ok := parseInt32(arg)
			if !ok {
				errLine = lineMetaBadToken
				break
			}
			m.vivify, m.vivTTL = true, v
		case 'T':
			v, ok := parseInt32(arg)
			if !ok {
				errLine = lineMetaBadToken
				break
			}
			m.hasTTL, m.ttl, m.tAfterN = true, v, m.vivify
		case 'R':
			// Early recache: accepted, never wins (no per-item token state).
			if _, ok := parseInt32(arg); !ok {
				errLine = lineMetaBadToken
			}
		case 'O', 'P', 'L', 'k', 's', 't', 'c', 'f', 'u', 'I':
		case 'v':
			m.value = true
		case 'q':
			m.quiet = true
		case 'F':
			v, ok := parseUint32(arg)
			if !ok {
				if errLine == "" {
					errLine = lineBadFormat
				}
				break
			}
			m.clientFlags = v
		case 'C':
			v, ok := parseUint64(arg)
			if !ok {
				errLine = lineMetaBadToken
				break
			}
			m.hasCAS, m.cas = true, v
		case 'M':
			if len(f) != 2 {
				errLine = lineMetaBadMLen
				break
			}
			m.mode = f[1]
		case 'J':
			v, ok := parseUint64(arg)
			if !ok {
				errLine = lineMetaBadInitial
				break
			}
			m.initial = v
		case 'D':
			v, ok := parseUint64(arg)
			if !ok {
				errLine = lineMetaBadDeltaVal
				break
			}
			m.delta = v
		default:
			// Includes E, h, l and x, which dynakv cannot honour (see the package doc).
			return m, lineMetaBadFlag
		}
	}
	return m, errLine
}

// vivifyExpiry is the expiry N gives an item it creates: N's TTL, or T's (tExp)
// when T comes after N.
func (m *metaReq) vivifyExpiry(tExp int64, now time.Time) int64 {
	if m.tAfterN {
		return tExp
	}
	return expiry(m.vivTTL, now)
}

// opaqueTooLong reports an O token over memcached's limit.
func (m *metaReq) opaqueTooLong() bool {
	for _, f := range m.flags {
		if f[0] == 'O' && len(f) > metaMaxOpaque {
			return true
		}
	}
	return false
}

// appendEcho appends the O and k flags every meta reply echoes.
func (m *metaReq) appendEcho(b []byte) []byte {
	for _, f := range m.flags {
		switch f[0] {
		case 'O':
			b = append(append(b, ' '), f...)
		case 'k':
			b = appendKey(b, m.key, m.binary)
		}
	}
	return b
}

// metaPrologue checks what every meta command but ms checks first: arity, key
// length, the number of flags. It answers the error itself and reports whether to
// go on. tooLong is the message for too many flags, which differs between commands.
func (c *conn) metaPrologue(toks [][]byte, tooLong string) bool {
	switch {
	case len(toks) < 2:
		c.fail(lineError)
	case !c.validKey(toks[1]):
		c.failAlways(lineBadFormat)
	case len(toks)+1 > metaMaxTokens:
		c.failAlways(tooLong)
	default:
		return true
	}
	return false
}

// metaGet answers "mg <key> <flags>*".
func (c *conn) metaGet(toks [][]byte) {
	if !c.metaPrologue(toks, lineMetaGetTooLong) {
		return
	}
	m, errLine := parseMeta(toks[1], toks[2:])
	if errLine != "" {
		c.failAlways(errLine)
		return
	}
	now := c.now()
	key := c.own(m.key)
	var tExp int64
	op := proxy.Op{Kind: proxy.OpGet, Key: key}
	if m.hasTTL {
		tExp = expiry(m.ttl, now)
		op = proxy.Op{Kind: proxy.OpGetEx, Key: key, SetExpiry: true, Expiry: tExp, Persist: tExp == 0}
	}
	if m.vivify {
		// Vivify on miss: create an empty item; its creator wins the recache (W).
		op.Vivify, op.Value, op.VivifyExpiry = true, []byte{}, m.vivifyExpiry(tExp, now)
	}
	res, err := c.do(op)
	if err != nil {
		c.failAlways(errorLine(err))
		return
	}
	found, it, cas, created := res.Found, res.Item, res.Item.CAS, res.Created
	if res.Status == proxy.Stored {
		cas = res.CAS // T wrote a new version, or N created the item
	}
	st := &c.s.stats
	if m.hasTTL {
		st.cmdTouch.Add(1)
		hitMiss(found, &st.touchHits, &st.touchMisses)
	} else {
		st.cmdGet.Add(1)
		hitMiss(found, &st.getHits, &st.getMisses)
	}
	if m.opaqueTooLong() {
		c.failAlways(lineMetaOpaqueLong)
		return
	}
	if !found {
		c.noreply = m.quiet // q hides EN
		c.replyBytes(m.appendEcho(append(c.out[:0], "EN"...)))
		return
	}
	b := c.out[:0]
	if m.value {
		b = appendInt(append(b, "VA "...), int64(len(it.Value)))
	} else {
		b = append(b, "HD"...)
	}
	exp := it.Expiry // the TTL as memcached's flag loop sees it, flag by flag
	if created {
		exp = 0 // until N or T
	}
	for _, f := range m.flags {
		switch f[0] {
		case 'T':
			exp = tExp
		case 'N':
			if created {
				exp = expiry(m.vivTTL, now)
			}
		case 's':
			b = appendInt(append(b, " s"...), int64(len(it.Value)))
		case 't':
			b = appendInt(append(b, " t"...), ttlSeconds(exp, now))
		case 'c':
			b = appendUint(append(b, " c"...), cas)
		case 'f':
			b = appendUint(append(b, " f"...), uint64(it.Flags))
		case 'O':
			b = append(append(b, ' '), f...)
		case 'k':
			b = appendKey(b, m.key, m.binary)
		}
	}
	if created {
		b = append(b, " W"...)
	}
	c.out = append(b, "\r\n"...)
	c.w.Write(c.out)
	if m.value {
		c.w.Write(it.Value)
		c.w.WriteString("\r\n")
	}
}

// msLine is an ms command line: "ms <key> <datalen> <flags>*".
type msLine struct {
	m       metaReq
	vlen    int
	block   bool   // a data block follows the line (swallowed when errLine is set)
	errLine string // the line's error reply; "" when it is well formed
}

// parseMetaSet parses an ms line as memcached does: a line without a valid length
// has no data block (what follows is read as commands); a line with bad flags has
// one, which is swallowed.
func (c *conn) parseMetaSet(toks [][]byte) (ms msLine) {
	n := len(toks)
	switch {
	case n < 2:
		ms.errLine = lineError
		return ms
	case !c.validKey(toks[1]), n == 2:
		ms.errLine = lineBadFormat
		return ms
	case n+1 > metaMaxTokens:
		ms.errLine = lineMetaTooLong
		return ms
	}
	vlen, ok := parseInt32(toks[2])
	if !ok || vlen < 0 || vlen > math.MaxInt32-2 {
		ms.errLine = lineBadFormat
		return ms
	}
	ms.vlen, ms.block = int(vlen), true
	ms.m, ms.errLine = parseMeta(toks[1], toks[3:])
	if ms.errLine == "" && ms.m.opaqueTooLong() {
		ms.errLine = lineMetaOpaqueLong
	}
	if ms.errLine == "" {
		switch ms.m.mode {
		case 0, 'S', 's', 'E', 'e', 'A', 'a', 'P', 'p', 'R', 'r':
		default:
			ms.errLine = lineMetaBadSetMode
		}
	}
	return ms
}

// metaSet answers an ms line and its data block (or its refusal), which the
// reader gave with the line.
func (c *conn) metaSet(toks [][]byte, cmd command) {
	ms := c.parseMetaSet(toks)
	if ms.errLine != "" {
		// Not hidden: no q flag applies yet. After bad flags the reader swallows
		// the block, as memcached does.
		c.failAlways(ms.errLine)
		return
	}
	m := ms.m
	key := c.own(m.key)
	if cmd.swallowed {
		c.refuseTooLarge(key, true, c.failAlways)
		return
	}
	if !cmd.blockOK {
		c.s.stats.cmdSet.Add(1)
		c.failAlways(lineBadChunk)
		return
	}
	data := cmd.block
	res, err := c.metaStore(&m, key, data)
	if c.blocked != "" {
		return // it runs again on a handoff
	}
	c.s.stats.cmdSet.Add(1)
	if err != nil {
		c.failAlways(errorLine(err))
		return
	}
	b := c.out[:0]
	switch res.Status {
	case proxy.Stored:
		c.s.stats.totalItems.Add(1)
		c.noreply = m.quiet // q hides HD only
		b = append(b, "HD"...)
	case proxy.NotStored:
		b = append(b, "NS"...)
	case proxy.Exists:
		b = append(b, "EX"...)
	case proxy.NotFound:
		b = append(b, "NF"...)
	}
	for _, f := range m.flags {
		switch f[0] {
		case 'O':
			b = append(append(b, ' '), f...)
		case 'k':
			b = appendKey(b, m.key, m.binary)
		case 'c':
			var cas uint64
			if res.Status == proxy.Stored {
				cas = res.CAS
			}
			b = appendUint(append(b, " c"...), cas)
		case 's':
			if res.Status == proxy.Stored {
				b = appendInt(append(b, " s"...), res.Int)
			}
		}
	}
	c.out = b
	c.replyBytes(b)
	return
}

// metaStore executes a meta set in its mode. Result.Int is the stored size.
func (c *conn) metaStore(m *metaReq, key, data []byte) (proxy.Result, error) {
	now := c.now()
	var exp int64
	if m.hasTTL {
		exp = expiry(m.ttl, now)
	}
	op := proxy.Op{Kind: proxy.OpSet, Key: key, Value: data, Flags: m.clientFlags, Expiry: exp}
	switch m.mode {
	case 'E', 'e': // add; a cas value does not matter
		op.Cond = proxy.CondNX
	case 'R', 'r': // replace; with C it is cas
		op.Cond = proxy.CondXX
		if m.hasCAS {
			op.Cond, op.CAS = proxy.CondCAS, m.cas
		}
	case 'A', 'a', 'P', 'p':
		// Append or prepend: NS on a miss unless N vivifies the key with the data;
		// with a non-zero C only while the cas matches (C0 is no condition).
		op = proxy.Op{Kind: proxy.OpAppend, Key: key, Value: data, Flags: m.clientFlags, Cond: proxy.CondXX,
			Prepend: m.mode == 'P' || m.mode == 'p'}
		if m.hasCAS && m.cas != 0 {
			op.Cond, op.CAS = proxy.CondCAS, m.cas
		}
		if m.vivify {
			op.Vivify, op.VivifyExpiry = true, expiry(m.vivTTL, now)
		}
		return c.do(op)
	default: // set; with C it is cas
		if m.hasCAS {
			op.Cond, op.CAS = proxy.CondCAS, m.cas
		}
	}
	res, err := c.do(op)
	if err != nil {
		return res, err
	}
	if op.Cond == proxy.CondCAS {
		c.countCAS(res.Status)
	}
	res.Int = int64(len(data))
	return res, nil
}

// metaDelete answers "md <key> <flags>*". I (invalidate) deletes too.
func (c *conn) metaDelete(toks [][]byte) {
	if !c.metaPrologue(toks, lineMetaTooLong) {
		return
	}
	m, errLine := parseMeta(toks[1], toks[2:])
	if errLine != "" {
		c.failAlways(lineMetaInvalidOrDup)
		return
	}
	if m.opaqueTooLong() {
		c.failAlways(lineMetaOpaqueLong)
		return
	}
	op := proxy.Op{Kind: proxy.OpDelete, Key: c.own(m.key)}
	if m.hasCAS {
		op.Cond, op.CAS = proxy.CondCAS, m.cas
	}
	res, err := c.do(op)
	if err != nil {
		c.failAlways(errorLine(err))
		return
	}
	b := c.out[:0]
	switch res.Status {
	case proxy.Stored:
		c.s.stats.deleteHits.Add(1)
		c.noreply = m.quiet
		b = append(b, "HD"...)
	case proxy.NotFound:
		c.s.stats.deleteMisses.Add(1)
		c.noreply = m.quiet
		b = append(b, "NF"...)
	default:
		c.s.stats.deleteMisses.Add(1)
		b = append(b, "EX"...)
	}
	c.out = m.appendEcho(b)
	c.replyBytes(c.out)
}

// metaArithmetic answers "ma <key> <flags>*": incr (default) or decr by D (default
// 1); N creates a missing key with J (default 0); C is a cas condition; T sets the
// TTL on success.
func (c *conn) metaArithmetic(toks [][]byte) {
	if !c.metaPrologue(toks, lineMetaTooLong) {
		return
	}
	m, errLine := parseMeta(toks[1], toks[2:])
	if errLine != "" {
		c.failAlways(lineMetaInvalidOrDup)
		return
	}
	decr := false
	switch m.mode {
	case 0, 'I', 'i', '+':
	case 'D', 'd', '-':
		decr = true
	default:
		c.failAlways(lineMetaBadArithMode)
		return
	}
	now := c.now()
	op := proxy.Op{Kind: proxy.OpIncrUnsigned, Key: c.own(m.key), UDelta: m.delta, Decr: decr}
	if m.hasCAS && m.cas != 0 { // C0 is no condition
		op.Cond, op.CAS = proxy.CondCAS, m.cas
	}
	var tExp int64
	if m.hasTTL {
		// T: a second write sets the TTL the first kept.
		tExp = expiry(m.ttl, now)
		op.SetExpiry, op.Expiry, op.Persist = true, tExp, tExp == 0
	}
	if m.vivify {
		// Autovivify: a miss creates the key with the initial value.
		op.Vivify, op.Initial, op.VivifyExpiry = true, m.initial, m.vivifyExpiry(tExp, now)
	}
	res, err := c.do(op)
	if err != nil {
		c.failAlways(errorLine(err))
		return
	}
	status, val, exp, cas, created := res.Status, res.Uint, res.Item.Expiry, res.CAS, res.Created
	if created {
		exp = 0 // until N or T
	}
	st := &c.s.stats
	hits, misses := &st.incrHits, &st.incrMisses
	if decr {
		hits, misses = &st.decrHits, &st.decrMisses
	}
	switch {
	case status == proxy.Stored && !created:
		hits.Add(1)
	case status == proxy.NotFound:
		misses.Add(1)
	}
	if m.opaqueTooLong() {
		c.failAlways(lineMetaOpaqueLong)
		return
	}
	b := c.out[:0]
	if status != proxy.Stored {
		if status == proxy.Exists {
			b = append(b, "EX"...)
		} else {
			b = append(b, "NF"...)
		}
		c.out = m.appendEcho(b)
		c.replyBytes(c.out)
		return
	}
	if !created {
		c.noreply = m.quiet // q hides a successful incr/decr
	}
	num := appendUint(nil, val)
	if m.value {
		b = appendInt(append(b, "VA "...), int64(len(num)))
	} else {
		b = append(b, "HD"...)
	}
	for _, f := range m.flags {
		switch f[0] {
		case 'c':
			b = appendUint(append(b, " c"...), cas)
		case 't':
			b = appendInt(append(b, " t"...), ttlSeconds(exp, now))
		case 'T':
			exp = tExp
		case 'N':
			if created {
				exp = expiry(m.vivTTL, now)
			}
		case 'O':
			b = append(append(b, ' '), f...)
		case 'k':
			b = appendKey(b, m.key, m.binary)
		}
	}
	if m.value {
		b = append(append(b, "\r\n"...), num...)
	}
	c.out = b
	c.replyBytes(b)
}

// metaDebug answers "me <key> [b]" with what dynakv knows of the item.
func (c *conn) metaDebug(toks [][]byte) {
	if len(toks) < 2 || !c.validKey(toks[1]) {
		c.failAlways(lineBadFormat)
		return
	}
	key, binary := toks[1], false
	if len(toks) >= 3 && string(toks[2]) == "b" {
		k, ok := decodeKey(key)
		if !ok {
			c.failAlways(lineBadFormat)
			return
		}
		key, binary = k, true
	}
	res, err := c.do(proxy.Op{Kind: proxy.OpGet, Key: c.own(key)})
	if err != nil {
		c.failAlways(errorLine(err))
		return
	}
	if !res.Found {
		c.reply("EN")
		return
	}
	b := append(c.out[:0], "ME "...)
	if binary {
		b = base64.StdEncoding.AppendEncode(b, key)
	} else {
		b = append(b, key...)
	}
	b = appendInt(append(b, " exp="...), ttlSeconds(res.Item.Expiry, c.now()))
	b = appendUint(append(b, " la=0 cas="...), res.Item.CAS)
	b = appendInt(append(b, " fetch=no cls=1 size="...), int64(len(res.Item.Value)))
	c.out = b
	c.replyBytes(b)
}

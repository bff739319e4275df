package resp

import (
	"math"

	"github.com/dynakv/dynakv/internal/num"
	"github.com/dynakv/dynakv/proxy"
)

// lcsRange is one match of LCS ... IDX: [aStart, aEnd] of the first string and
// [bStart, bEnd] of the second hold the same bytes.
type lcsRange struct{ aStart, aEnd, bStart, bEnd int }

// lcsTable is the dynamic-programming table of t_string.c's lcsCommand: at
// i*(len(b)+1)+j, the length of the LCS of a[:i] and b[:j].
func lcsTable(a, b []byte) []uint32 {
	w := len(b) + 1
	t := make([]uint32, (len(a)+1)*w)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				t[i*w+j] = t[(i-1)*w+j-1] + 1
			} else {
				t[i*w+j] = max(t[(i-1)*w+j], t[i*w+j-1])
			}
		}
	}
	return t
}

// lcsWalk walks the table back from the end as Redis does and returns the LCS and
// its matching ranges, last first, as Redis emits them; a range shorter than
// minLen (when minLen > 0) is left out.
func lcsWalk(a, b []byte, t []uint32, minLen int64) ([]byte, []lcsRange) {
	w := len(b) + 1
	n := t[len(a)*w+len(b)]
	out := make([]byte, n)
	var ranges []lcsRange
	idx := n
	alen := len(a)
	cur := lcsRange{aStart: alen} // aStart == alen: no range being tracked
	i, j := len(a), len(b)
	for i > 0 && j > 0 {
		emit := false
		if a[i-1] == b[j-1] {
			out[idx-1] = a[i-1]
			switch {
			case cur.aStart == alen:
				cur = lcsRange{i - 1, i - 1, j - 1, j - 1}
			case cur.aStart == i && cur.bStart == j:
				cur.aStart--
				cur.bStart--
			default:
				emit = true
			}
			if cur.aStart == 0 || cur.bStart == 0 {
				emit = true
			}
			idx--
			i--
			j--
		} else {
			if t[(i-1)*w+j] > t[i*w+j-1] {
				i--
			} else {
				j--
			}
			if cur.aStart != alen {
				emit = true
			}
		}
		if emit {
			if l := int64(cur.aEnd - cur.aStart + 1); minLen == 0 || l >= minLen {
				ranges = append(ranges, cur)
			}
			cur.aStart = alen
		}
	}
	return out, ranges
}

// lcs: LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN], Redis 7's
// replies and limits (the table may not exceed proto-max-bulk-len bytes).
func (s *Server) lcs(c *client, args [][]byte) {
	var vals [2][]byte
	for k := range vals {
		res, ok := s.do(c, proxy.Op{Kind: proxy.OpGet, Key: args[1+k]})
		if !ok {
			return
		}
		vals[k] = res.Item.Value
	}
	var getLen, getIdx, withLen bool
	var minLen int64
	for j := 3; j < len(args); j++ {
		opt := cstr(args[j])
		switch {
		case eqFold(opt, "idx"):
			getIdx = true
		case eqFold(opt, "len"):
			getLen = true
		case eqFold(opt, "withmatchlen"):
			withLen = true
		case eqFold(opt, "minmatchlen") && j+1 < len(args):
			n, ok := num.ParseInt(args[j+1])
			if !ok {
				c.w.errorLine(errNotInteger)
				return
			}
			minLen = max(n, 0)
			j++
		default:
			c.w.errorLine(errSyntax)
			return
		}
	}
	if getLen && getIdx {
		c.w.Error("ERR If you want both the length and indexes, please just use IDX.")
		return
	}
	a, b := vals[0], vals[1]
	if int64(len(a)) >= math.MaxUint32-1 || int64(len(b)) >= math.MaxUint32-1 {
		c.w.Error("ERR String too long for LCS")
		return
	}
	if cells := (int64(len(a)) + 1) * (int64(len(b)) + 1); cells > s.cfg.ProtoMaxBulkLen/4 {
		c.w.Error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
		return
	}
	t := lcsTable(a, b)
	n := int64(t[len(t)-1])
	if getLen {
		c.w.Int(n)
		return
	}
	str, ranges := lcsWalk(a, b, t, minLen)
	if !getIdx {
		c.w.Bulk(str)
		return
	}
	c.w.Map(2)
	c.w.BulkString("matches")
	c.w.Array(len(ranges))
	for _, r := range ranges {
		c.w.Array(2 + int(b2i(withLen)))
		c.w.Array(2)
		c.w.Int(int64(r.aStart))
		c.w.Int(int64(r.aEnd))
		c.w.Array(2)
		c.w.Int(int64(r.bStart))
		c.w.Int(int64(r.bEnd))
		if withLen {
			c.w.Int(int64(r.aEnd - r.aStart + 1))
		}
	}
	c.w.BulkString("len")
	c.w.Int(n)
}

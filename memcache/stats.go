package memcache

import (
	"os"
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/dynakv/dynakv/internal/loopcommit"
)

// Stat is one "STAT <Name> <Value>" line.
type Stat struct{ Name, Value string }

// counters are the server's memcached-style statistics.
type counters struct {
	totalConns, rejectedConns           atomic.Uint64
	cmdGet, cmdSet, cmdTouch, cmdFlush  atomic.Uint64
	getHits, getMisses                  atomic.Uint64
	deleteHits, deleteMisses            atomic.Uint64
	incrHits, incrMisses                atomic.Uint64
	decrHits, decrMisses                atomic.Uint64
	casHits, casMisses, casBadval       atomic.Uint64
	touchHits, touchMisses              atomic.Uint64
	totalItems, storeTooLarge, metaCmds atomic.Uint64
	bytesRead, bytesWritten             atomic.Uint64
	authCmds, authErrors                atomic.Uint64
	// The loop driver's fast path: commands run inline, handoffs by reason
	// (newHandoffs). The commits are the loops' (Server.commits).
	inline   atomic.Uint64
	handoffs *loopcommit.Handoffs
}

// reset zeroes the counters "stats reset" clears (all of them: curr_connections is
// not a counter; the loops' commits are not the server's).
func (c *counters) reset() {
	for _, p := range c.all() {
		p.Store(0)
	}
	c.handoffs.Reset()
}

// all returns every counter.
func (c *counters) all() []*atomic.Uint64 {
	all := []*atomic.Uint64{
		&c.totalConns, &c.rejectedConns, &c.cmdGet, &c.cmdSet, &c.cmdTouch, &c.cmdFlush,
		&c.getHits, &c.getMisses, &c.deleteHits, &c.deleteMisses, &c.incrHits,
		&c.incrMisses, &c.decrHits, &c.decrMisses, &c.casHits, &c.casMisses,
		&c.casBadval, &c.touchHits, &c.touchMisses, &c.totalItems, &c.storeTooLarge,
		&c.metaCmds, &c.bytesRead, &c.bytesWritten, &c.authCmds, &c.authErrors,
		&c.inline,
	}
	return all
}

// hitMiss counts a hit or a miss.
func hitMiss(hit bool, hits, misses *atomic.Uint64) {
	if hit {
		hits.Add(1)
	} else {
		misses.Add(1)
	}
}

// cmdStats answers "stats [subcommand]".
func (c *conn) cmdStats(toks [][]byte) {
	if len(toks) == 1 {
		c.writeStats(c.s.generalStats(c))
		return
	}
	switch string(toks[1]) {
	case "reset":
		c.s.stats.reset()
		c.reply("RESET")
	case "settings":
		c.writeStats(c.s.settingsStats())
	case "items":
		c.writeStats(nil)
	case "slabs":
		c.writeStats([]Stat{{"active_slabs", "0"}, {"total_malloced", "0"}})
	case "sizes":
		c.writeStats([]Stat{{"sizes_status", "disabled"}})
	default:
		c.fail(lineError)
	}
}

func (c *conn) writeStats(stats []Stat) {
	for _, st := range stats {
		c.w.WriteString("STAT ")
		c.w.WriteString(st.Name)
		c.w.WriteByte(' ')
		c.w.WriteString(st.Value)
		c.w.WriteString("\r\n")
	}
	c.w.WriteString("END\r\n")
}

func u64(n uint64) string { return strconv.FormatUint(n, 10) }

// generalStats is the plain "stats" answer: memcached's general statistics, then the
// node's extra lines (which replace same-named ones).
func (s *Server) generalStats(c *conn) []Stat {
	now := s.cfg.Now()
	st := &s.stats
	items := "0"
	if n, err := s.px.DBSize(c.ctx); err == nil {
		items = strconv.FormatInt(n, 10)
	}
	uptime := max(now.Unix()-s.started.Unix(), 0)
	out := []Stat{
		{"pid", strconv.Itoa(os.Getpid())},
		{"uptime", strconv.FormatInt(uptime, 10)},
		{"time", strconv.FormatInt(now.Unix(), 10)},
		{"version", s.cfg.Version},
		{"pointer_size", strconv.Itoa(strconv.IntSize)},
		{"max_connections", strconv.Itoa(s.cfg.MaxClients)},
		{"curr_connections", strconv.Itoa(s.Clients())},
		{"total_connections", u64(st.totalConns.Load())},
		{"rejected_connections", u64(st.rejectedConns.Load())},
		{"connection_structures", strconv.Itoa(s.Clients())},
		{"cmd_get", u64(st.cmdGet.Load())},
		{"cmd_set", u64(st.cmdSet.Load())},
		{"cmd_flush", u64(st.cmdFlush.Load())},
		{"cmd_touch", u64(st.cmdTouch.Load())},
		{"cmd_meta", u64(st.metaCmds.Load())},
		{"get_hits", u64(st.getHits.Load())},
		{"get_misses", u64(st.getMisses.Load())},
		{"get_expired", "0"},
		{"get_flushed", "0"},
		{"delete_misses", u64(st.deleteMisses.Load())},
		{"delete_hits", u64(st.deleteHits.Load())},
		{"incr_misses", u64(st.incrMisses.Load())},
		{"incr_hits", u64(st.incrHits.Load())},
		{"decr_misses", u64(st.decrMisses.Load())},
		{"decr_hits", u64(st.decrHits.Load())},
		{"cas_misses", u64(st.casMisses.Load())},
		{"cas_hits", u64(st.casHits.Load())},
		{"cas_badval", u64(st.casBadval.Load())},
		{"touch_hits", u64(st.touchHits.Load())},
		{"touch_misses", u64(st.touchMisses.Load())},
		{"store_too_large", u64(st.storeTooLarge.Load())},
		{"auth_cmds", u64(st.authCmds.Load())},
		{"auth_errors", u64(st.authErrors.Load())},
		{"bytes_read", u64(st.bytesRead.Load())},
		{"bytes_written", u64(st.bytesWritten.Load())},
		{"limit_maxbytes", "0"},
		{"threads", strconv.Itoa(runtime.GOMAXPROCS(0))},
		{"bytes", "0"},
		{"curr_items", items},
		{"total_items", u64(st.totalItems.Load())},
		{"evictions", "0"},
		{"reclaimed", "0"},
	}
	out = s.loopStats(out)
	return withExtra(out, s.cfg.Stats)
}

// withExtra returns out with the lines extra returns (extra may be nil): a line
// named like one of out's replaces its value in place, others are appended.
func withExtra(out []Stat, extra func() []Stat) []Stat {
	if extra == nil {
		return out
	}
	for _, e := range extra() {
		replaced := false
		for i := range out {
			if out[i].Name == e.Name {
				out[i].Value, replaced = e.Value, true
				break
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}

// settingsStats is "stats settings": memcached's settings, then the node's
// extra lines (Config.Settings), which replace same-named ones.
func (s *Server) settingsStats() []Stat {
	return withExtra([]Stat{
		{"maxbytes", "0"},
		{"maxconns", strconv.Itoa(s.cfg.MaxClients)},
		{"verbosity", strconv.FormatUint(uint64(s.verbosity.Load()), 10)},
		{"evictions", "off"},
		{"cas_enabled", "yes"},
		{"flush_enabled", "yes"},
		{"binding_protocol", "ascii"},
		{"item_size_max", strconv.Itoa(s.cfg.MaxValueBytes)},
		{"key_size_max", strconv.Itoa(s.cfg.MaxKeyBytes)},
		{"meta_response_old", "no"},
	}, s.cfg.Settings)
}

// loopStats adds the loop driver's fast path counters, as RESP's INFO has them:
// commands run inline, handoffs by reason (one per handed-off batch, named for
// its first command's reason), and the commits of the loops' write sets with
// the writes they applied (loop_commit_writes / loop_commits is the mean commit
// size; the loops' commits are shared with the RESP front on the same loops,
// and "stats reset" leaves them).
func (s *Server) loopStats(out []Stat) []Stat {
	if s.commits == nil {
		return out
	}
	st := &s.stats
	out = append(out, Stat{"loop_inline_cmds", u64(st.inline.Load())})
	st.handoffs.Each(func(name string, n int64) {
		out = append(out, Stat{"loop_handoffs_" + name, strconv.FormatInt(n, 10)})
	})
	commits, writes := s.commits.Stats()
	return append(out, Stat{"loop_commits", strconv.FormatInt(commits, 10)}, Stat{"loop_commit_writes", strconv.FormatInt(writes, 10)})
}

// LoopStats reports the fast path's counters (stats' loop_*): commands run
// inline, and through handoff each reason with its handed-off batches. Both
// are zero when the server has no loops; stats reset zeroes them.
func (s *Server) LoopStats(handoff func(reason string, n int64)) (inline int64) {
	s.stats.handoffs.Each(handoff)
	return int64(s.stats.inline.Load())
}

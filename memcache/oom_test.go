package memcache

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dynakv/dynakv/proxy"
)

// fullMemory is a node's memory gate: refuses growing ops while full is set.
type fullMemory struct{ full atomic.Bool }

func (m *fullMemory) Admit(context.Context) error {
	if m.full.Load() {
		return proxy.ErrOOM
	}
	return nil
}

const lineOOM = "SERVER_ERROR out of memory storing object"

// TestOutOfMemory: over maxmemory every storage command and incr/decr (classic and
// meta, and autovivifying reads) answers memcached's out-of-memory error, while
// get, delete and touch run and the connection stays usable.
func TestOutOfMemory(t *testing.T) {
	mem := &fullMemory{}
	ts := startServer(t, serverOptions{memory: mem})
	c := dialRaw(t, ts.addr)
	c.roundTrip("set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\n", "STORED", "STORED")
	c.send("gets a\r\n")
	cas := strings.Fields(c.line())[4]
	c.expect("1", "END")
	mem.full.Store(true)
	for _, cmd := range []string{
		"set a 0 0 1\r\nx\r\n", "add n 0 0 1\r\nx\r\n", "replace a 0 0 1\r\nx\r\n",
		"append a 0 0 1\r\nx\r\n", "prepend a 0 0 1\r\nx\r\n", "cas a 0 0 1 " + cas + "\r\nx\r\n",
		"incr a 1\r\n", "decr a 1\r\n", "ms a 1\r\nx\r\n", "ma a\r\n", "mg n v N30\r\n",
	} {
		c.roundTrip(cmd, lineOOM)
	}
	c.roundTrip("get a n\r\n", "VALUE a 0 1", "1", "END")
	c.roundTrip("touch a 100\r\n", "TOUCHED")
	c.roundTrip("delete b\r\n", "DELETED")
	mem.full.Store(false)
	c.roundTrip("set a 0 0 1\r\ny\r\n", "STORED")
}

// TestStatsSettingsExtra: the node's "stats settings" lines replace memcached's
// (maxbytes, evictions) in place; others are appended.
func TestStatsSettingsExtra(t *testing.T) {
	ts := startServer(t, serverOptions{cfg: Config{Settings: func() []Stat {
		return []Stat{{"maxbytes", "67108864"}, {"evictions", "on"}, {"maxmemory_policy", "allkeys-lru"}}
	}}})
	c := dialRaw(t, ts.addr)
	c.send("stats settings\r\n")
	got := map[string]int{}
	vals := map[string]string{}
	for l := c.line(); l != "END\r\n"; l = c.line() {
		f := strings.Fields(l)
		got[f[1]]++
		vals[f[1]] = f[2]
	}
	for name, want := range map[string]string{"maxbytes": "67108864", "evictions": "on", "maxmemory_policy": "allkeys-lru"} {
		if got[name] != 1 || vals[name] != want {
			t.Errorf("stats settings %s: %d lines, value %q; want one, %q", name, got[name], vals[name], want)
		}
	}
}

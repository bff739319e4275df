package resp

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/proxy"
)

// fullSwitch is a node's memory state: full or not, for both the front's OOM
// check and the proxy's gate.
type fullSwitch struct{ full atomic.Bool }

func (f *fullSwitch) Admit(context.Context) error {
	if f.full.Load() {
		return proxy.ErrOOM
	}
	return nil
}

func withFull(f *fullSwitch) serverOpt {
	return func(c *Config, o *testnode.Options) { c.OOM, o.Memory = f.full.Load, f }
}

const oomLine = "-OOM command not allowed when used memory > 'maxmemory'.\r\n"

// TestOOMRefusesGrowingCommands: over maxmemory, every command Redis flags denyoom
// is refused with Redis's -OOM text before it runs (MSET and COPY whole), while
// deletes, expiry changes and reads run and the connection stays usable.
func TestOOMRefusesGrowingCommands(t *testing.T) {
	f := &fullSwitch{}
	s := startServer(t, withFull(f))
	rc := dialRaw(t, s.addr)
	rc.do("SET", "k", "1")
	rc.do("SET", "gone", "x")
	f.full.Store(true)
	for _, cmd := range [][]string{
		{"SET", "k", "2"}, {"SETNX", "n", "1"}, {"SETEX", "n", "10", "1"}, {"PSETEX", "n", "10", "1"},
		{"GETSET", "k", "2"}, {"MSET", "a", "1", "b", "2"}, {"MSETNX", "a", "1"}, {"INCR", "k"},
		{"DECR", "k"}, {"INCRBY", "k", "2"}, {"DECRBY", "k", "2"}, {"INCRBYFLOAT", "k", "1.5"},
		{"APPEND", "k", "x"}, {"SETRANGE", "k", "0", "x"}, {"SETBIT", "k", "1", "1"},
		{"COPY", "k", "c"}, {"DPUT", "k", "", "v"},
	} {
		if got := rc.do(cmd...); got != oomLine {
			t.Errorf("%v on a full node: %q", cmd, got)
		}
	}
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"GET", "k"}, "$1\r\n1\r\n"},
		{[]string{"EXPIRE", "k", "100"}, ":1\r\n"},
		{[]string{"PERSIST", "k"}, ":1\r\n"},
		{[]string{"GETDEL", "gone"}, "$1\r\nx\r\n"},
		{[]string{"DEL", "k"}, ":1\r\n"},
		{[]string{"EXISTS", "a", "c", "n"}, ":0\r\n"},
	} {
		if got := rc.do(tc.cmd...); got != tc.want {
			t.Errorf("%v on a full node: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	f.full.Store(false)
	if got := rc.do("SET", "k", "3"); got != "+OK\r\n" {
		t.Errorf("SET once there is room: %q", got)
	}
}

// TestOOMFromProxy: an ErrOOM from where the op executed (say a forwarded op on
// a full replica) is answered with the same -OOM text.
func TestOOMFromProxy(t *testing.T) {
	if line, ok := errorReply(errors.Join(errors.New("forwarded"), proxy.ErrOOM)); !ok || string(line) != oomLine {
		t.Errorf("errorReply(ErrOOM) = %q, %v", line, ok)
	}
	f := &fullSwitch{}
	s := startServer(t, func(_ *Config, o *testnode.Options) { o.Memory = f })
	f.full.Store(true)
	rc := dialRaw(t, s.addr)
	if got := rc.do("SET", "k", "1"); got != oomLine {
		t.Errorf("SET through a full proxy: %q", got)
	}
	if got := rc.do("PING"); got != "+PONG\r\n" {
		t.Errorf("PING after -OOM: %q", got)
	}
}

// TestDenyOOMFlags: the commands refused over maxmemory are exactly Redis 7.2's
// denyoom commands among dynakv's (DEL, GETDEL, GETEX, EXPIRE, RENAME are write
// without denyoom there).
func TestDenyOOMFlags(t *testing.T) {
	want := []string{"append", "copy", "decr", "decrby", "dput", "getset", "incr", "incrby",
		"incrbyfloat", "mset", "msetnx", "psetex", "set", "setbit", "setex", "setnx", "setrange"}
	var got []string
	for _, c := range newTable().list {
		if c.denyOOM {
			got = append(got, c.name)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("denyoom commands = %v, want %v", got, want)
	}
}

// fakeTunables is a node's maxmemory settings; Set refuses evicting policies.
type fakeTunables struct {
	mu   sync.Mutex
	vals map[string]string
}

func (f *fakeTunables) Get(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vals[name]
	return v, ok
}

func (f *fakeTunables) Set(name, v string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "maxmemory-policy" && v != "noeviction" {
		return errors.New(v + ": eviction is not available yet; only noeviction")
	}
	f.vals[name] = v
	return nil
}

// TestConfigTunables: CONFIG GET shows the node's maxmemory settings, CONFIG SET
// changes them through the node at once, and a refused value answers Redis's
// CONFIG SET error with the node's reason and changes nothing.
func TestConfigTunables(t *testing.T) {
	tun := &fakeTunables{vals: map[string]string{"maxmemory": "1000", "maxmemory-policy": "noeviction"}}
	s := startServer(t, func(c *Config, _ *testnode.Options) { c.Tunables = tun })
	rc := dialRaw(t, s.addr)
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"CONFIG", "GET", "maxmemory"}, "*2\r\n$9\r\nmaxmemory\r\n$4\r\n1000\r\n"},
		{[]string{"CONFIG", "SET", "maxmemory", "64mb"}, "+OK\r\n"},
		{[]string{"CONFIG", "GET", "maxmemory"}, "*2\r\n$9\r\nmaxmemory\r\n$8\r\n67108864\r\n"},
		{[]string{"CONFIG", "SET", "maxmemory", "-1"}, "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n"},
		{[]string{"CONFIG", "SET", "maxmemory-policy", "NoEviction"}, "+OK\r\n"},
		{[]string{"CONFIG", "SET", "maxmemory", "1kb", "maxmemory-policy", "allkeys-lru"},
			"-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - allkeys-lru: eviction is not available yet; only noeviction\r\n"},
		{[]string{"CONFIG", "GET", "maxmemory", "maxmemory-policy"}, "*4\r\n$9\r\nmaxmemory\r\n$8\r\n67108864\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n"},
		{[]string{"CONFIG", "SET", "maxmemory-policy", "lru"}, "-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction\r\n"},
	} {
		if got := rc.do(tc.cmd...); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	if v, _ := tun.Get("maxmemory"); v != "67108864" {
		t.Errorf("the node's maxmemory is %s after a refused CONFIG SET, want 67108864", v)
	}
}

// TestInfoNodeFieldsReplace: a node field named like one of INFO's own replaces
// it in place, so no section shows a key twice; others are appended.
func TestInfoNodeFieldsReplace(t *testing.T) {
	info := func(string) []InfoField {
		return []InfoField{
			{"memory", "used_memory", "12345"}, {"memory", "maxmemory", "999"},
			{"memory", "used_memory_graves", "7"}, {"server", "dynakv_version", "9.9"},
			{"stats", "evicted_keys", "0"},
		}
	}
	s := startServer(t, func(c *Config, _ *testnode.Options) { c.Info = info })
	rc := dialRaw(t, s.addr)
	for _, words := range [][]string{{"INFO"}, {"INFO", "memory"}, {"INFO", "all"}, {"INFO", "memory", "memory"}} {
		out := rc.do(words...)
		seen := map[string]string{}
		section := ""
		for _, line := range strings.Split(out, "\r\n") {
			if strings.HasPrefix(line, "# ") {
				section = line
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if _, dup := seen[section+k]; dup {
				t.Errorf("%v: %s %s shown twice", words, section, k)
			}
			seen[section+k] = v
		}
		for k, want := range map[string]string{"# Memoryused_memory": "12345", "# Memorymaxmemory": "999", "# Memoryused_memory_graves": "7"} {
			if seen[k] != want {
				t.Errorf("%v: %s = %q, want %q", words, k, seen[k], want)
			}
		}
	}
}

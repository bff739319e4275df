package resp

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/proxy"
)

// loopSamples are invocations of every command that may run inline
// (command.loop), covering their handlers' branches that run ops.
var loopSamples = map[string][][]string{
	"ping": {{"ping"}}, "echo": {{"echo", "x"}}, "select": {{"select", "0"}}, "time": {{"time"}},
	"client|setname": {{"client", "setname", "n"}}, "client|getname": {{"client", "getname"}},
	"client|setinfo": {{"client", "setinfo", "lib-name", "x"}}, "client|id": {{"client", "id"}},
	"client|info": {{"client", "info"}}, "client|help": {{"client", "help"}},
	"get":   {{"get", "s"}, {"get", "none"}},
	"set":   {{"set", "s", "v"}, {"set", "s", "v", "nx", "get", "ex", "10"}, {"set", "s", "v", "xx", "keepttl"}, {"set", "s", "v", "ex", "-1"}},
	"setnx": {{"setnx", "s", "v"}}, "setex": {{"setex", "s", "10", "v"}}, "psetex": {{"psetex", "s", "10", "v"}},
	"getset": {{"getset", "s", "v"}}, "getdel": {{"getdel", "s"}},
	"getex": {{"getex", "s"}, {"getex", "s", "ex", "10"}, {"getex", "s", "persist"}, {"getex", "s", "ex", "-5"}, {"getex", "none", "ex", "-5"}},
	"mget":  {{"mget", "s", "n", "none"}},
	"incr":  {{"incr", "n"}}, "decr": {{"decr", "n"}}, "incrby": {{"incrby", "n", "2"}}, "decrby": {{"decrby", "n", "2"}},
	"incrbyfloat": {{"incrbyfloat", "n", "1.5"}}, "append": {{"append", "s", "x"}}, "strlen": {{"strlen", "s"}},
	"getrange": {{"getrange", "s", "0", "-1"}}, "substr": {{"substr", "s", "0", "1"}}, "setrange": {{"setrange", "s", "1", "x"}},
	"setbit": {{"setbit", "b", "7", "1"}}, "getbit": {{"getbit", "b", "7"}},
	"exists": {{"exists", "s", "n", "none"}}, "touch": {{"touch", "s", "none"}},
	"del": {{"del", "s"}}, "unlink": {{"unlink", "s"}},
	"expire":  {{"expire", "s", "10"}, {"expire", "s", "10", "nx"}, {"expire", "s", "10", "xx", "lt"}, {"expire", "s", "-1"}},
	"pexpire": {{"pexpire", "s", "100", "gt"}}, "expireat": {{"expireat", "s", "1"}}, "pexpireat": {{"pexpireat", "s", "99999999999999"}},
	"expiretime": {{"expiretime", "s"}}, "pexpiretime": {{"pexpiretime", "s"}}, "ttl": {{"ttl", "s"}}, "pttl": {{"pttl", "s"}},
	"persist": {{"persist", "s"}}, "type": {{"type", "s"}},
}

// TestLoopHandlers runs every command that may run inline (command.loop) in try
// mode, recording its ops, and fails when a handler issues a write after
// another op; then, for each op of each run, makes that op would-block and
// checks that the handler stopped, staged nothing and left its reply to the
// handoff. Every inline command must have samples here.
func TestLoopHandlers(t *testing.T) {
	ts := startServer(t)
	s := ts.Server
	var ops []proxy.Op
	blockAt := -1
	s.testHookTry = func(_ *client, op proxy.Op) error {
		ops = append(ops, op)
		if len(ops)-1 == blockAt {
			return &proxy.WouldBlock{Reason: "test"}
		}
		return nil
	}
	defer func() { s.testHookTry = nil }()
	run := func(args []string) (*client, *proxy.WriteSet) {
		c := &client{authed: true, sess: s.px.NewSession(nil)}
		c.setProto(2)
		ws := s.px.NewWriteSet()
		argv := make([][]byte, len(args))
		for i, a := range args {
			argv[i] = []byte(a)
		}
		c.try, c.ws = true, ws
		s.exec(c, argv)
		c.try = false
		return c, ws
	}
	seen := map[string]bool{}
	for _, cmd := range s.cmds.list {
		for _, c := range append([]*command{cmd}, cmd.subs...) {
			if c.loop != loopNever {
				seen[c.name] = false
			}
		}
	}
	for name, samples := range loopSamples {
		if _, ok := seen[name]; !ok {
			t.Errorf("%s: sampled but not inline", name)
		}
		seen[name] = true
		for _, args := range samples {
			// Data for the reads to find.
			for _, set := range [][]string{{"set", "s", "hello"}, {"set", "n", "5"}, {"expire", "s", "100"}} {
				if _, err := s.px.Do(context.Background(), proxy.Op{Kind: proxy.OpSet, Key: []byte(set[1]), Value: []byte(set[2])}); err != nil && set[0] == "set" {
					t.Fatal(err)
				}
			}
			ops, blockAt = nil, -1
			c, ws := run(args)
			if c.blocked == reasonNotLoop {
				ws.Discard()
				continue // handed off before any op (EXPIRE XX LT)
			}
			if c.blocked != "" {
				t.Errorf("%v: blocked (%s) with no lock busy", args, c.blocked)
			}
			if msg := proxy.RerunSafe(ops); msg != "" {
				t.Errorf("%v: %s: %+v", args, msg, ops)
			}
			ws.Discard()
			n := len(ops)
			for k := range n {
				ops, blockAt = nil, k
				c, ws := run(args)
				if c.blocked != "test" || len(ops) != k+1 || ws.Len() != 0 {
					t.Errorf("%v: a would-block at op %d: blocked %q, %d ops, %d staged", args, k, c.blocked, len(ops), ws.Len())
				}
				ws.Discard()
			}
		}
	}
	for name, ok := range seen {
		if !ok {
			t.Errorf("%s runs inline but has no sample in loopSamples", name)
		}
	}
}

// loopOnly skips a test that needs the loop driver.
func loopOnly(t *testing.T) {
	if !evloop.Supported() || testIOModel != IOLoop {
		t.Skip("the loop driver's fast path")
	}
}

// info returns the value of an INFO stats field.
func infoField(t *testing.T, rc *rawConn, key string) string {
	t.Helper()
	for _, l := range strings.Split(rc.do("INFO", "stats"), "\r\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO stats has no %s", key)
	return ""
}

// TestFastPathInline: a pipeline of inline commands is answered from the loop,
// with one commit, and a command that is not inline hands off the rest in order.
func TestFastPathInline(t *testing.T) {
	loopOnly(t)
	ts := startServer(t)
	rc := dialRaw(t, ts.addr)
	rc.send(encode("SET", "k", "v") + encode("GET", "k") + encode("INCR", "n") + encode("MSET", "a", "1") + encode("GET", "a") + encode("PING"))
	for _, want := range []string{"+OK\r\n", "$1\r\nv\r\n", ":1\r\n", "+OK\r\n", "$1\r\n1\r\n", "+PONG\r\n"} {
		if got := rc.read(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	// Committed after OnData returned: what was staged is a copy, not the
	// loop's read buffer (which -tags poison overwrites).
	if got := rc.do("GET", "k"); got != "$1\r\nv\r\n" {
		t.Fatalf("GET k after the commit: %q", got)
	}
	info := rc.do("INFO", "stats") // handed off: counted before it runs
	for _, want := range []string{"loop_inline_commands:4\r\n", "loop_handoffs_not_loop:2\r\n", "loop_commits:1\r\n", "loop_commit_writes:2\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO stats lacks %q:\n%s", want, info)
		}
	}
}

// stuckMemory is an evicting node over its limit: Check says wait, and Admit
// waits until released.
type stuckMemory struct {
	full    atomic.Bool
	release chan struct{}
	waiting chan struct{}
}

func (m *stuckMemory) Admit(ctx context.Context) error {
	if !m.full.Load() {
		return nil
	}
	m.waiting <- struct{}{}
	select {
	case <-m.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *stuckMemory) Check() (bool, error) { return !m.full.Load(), nil }

// TestStuckEvictorHandsOff: a growing write that Admit would keep waiting
// (an evicting policy over maxmemory) is handed off, and another connection
// on the same loop gets PONG meanwhile; the write completes once the evictor
// lets it.
func TestStuckEvictorHandsOff(t *testing.T) {
	loopOnly(t)
	mem := &stuckMemory{release: make(chan struct{}), waiting: make(chan struct{}, 1)}
	ts := startServer(t, func(c *Config, o *testnode.Options) { o.Memory, c.IOLoops = mem, 1 })
	a, b := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	mem.full.Store(true)
	a.send(encode("SET", "k", "v") + encode("GET", "k"))
	select {
	case <-mem.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the SET never reached Admit")
	}
	if got := b.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING while a SET waits for the evictor: %q", got)
	}
	if v := infoField(t, b, "loop_handoffs_oom_wait"); v != "1" {
		t.Errorf("loop_handoffs_oom_wait = %s, want 1", v)
	}
	mem.full.Store(false)
	close(mem.release)
	if got := a.read(); got != "+OK\r\n" {
		t.Fatalf("SET = %q", got)
	}
	if got := a.read(); got != "$1\r\nv\r\n" {
		t.Fatalf("GET after the SET = %q", got)
	}
	// The SET began on the loop and ran again on the handoff: it counts once.
	stats := b.do("INFO", "commandstats")
	if !strings.Contains(stats, "cmdstat_set:calls=1,") {
		t.Errorf("a handed-off SET counted other than once:\n%s", stats)
	}
}

// TestFailedCommitFailsStagedReplies: when a loop's write set commit fails,
// exactly the replies that depended on it (the staged writes, and a read of a
// key the set held) become the error; the others stand, and nothing staged
// was applied.
func TestFailedCommitFailsStagedReplies(t *testing.T) {
	loopOnly(t)
	ts := startServer(t)
	rc := dialRaw(t, ts.addr)
	rc.do("SET", "b", "old")
	var fail atomic.Bool
	fail.Store(true)
	hook := func(ws *proxy.WriteSet) error {
		if fail.Load() {
			ws.Discard()
			return errors.New("injected commit failure")
		}
		return ws.Commit()
	}
	ts.commits.SetCommitHook(hook)
	rc.send(encode("SET", "a", "1") + encode("GET", "b") + encode("PING") + encode("GET", "a") + encode("INCR", "c"))
	internal := "-ERR internal error\r\n"
	for _, want := range []string{internal, "$3\r\nold\r\n", "+PONG\r\n", internal, internal} {
		if got := rc.read(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	fail.Store(false)
	if got := rc.do("MGET", "a", "c"); got != "*2\r\n$-1\r\n$-1\r\n" {
		t.Fatalf("after the failed commit: %q", got)
	}
}

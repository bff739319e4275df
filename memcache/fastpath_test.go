package memcache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dynakv/dynakv/proxy"
)

// loopSamples are invocations of every command that may run inline
// (inlineVerbs), covering their handlers' branches that run ops: each is the
// text of a command, its data block included. The server's value limit is 100
// bytes (the last set sample is refused, and deletes the key).
var loopSamples = map[string][]string{
	"get": {"get s", "get s n none"}, "bget": {"bget s"}, "gets": {"gets s n"},
	"gat": {"gat 100 s", "gat 0 none"}, "gats": {"gats 100 s"},
	"set":     {"set s 0 0 1\r\nv", "set s 0 0 1 noreply\r\nv", "set s 0 0 1\r\nvxx", "set s 0 0 200\r\n" + strings.Repeat("x", 200)},
	"add":     {"add s 0 0 1\r\nv", "add new 0 0 1\r\nv"},
	"replace": {"replace s 0 0 1\r\nv"}, "append": {"append s 0 0 1\r\nv"}, "prepend": {"prepend none 0 0 1\r\nv"},
	"cas":  {"cas s 0 0 1 123\r\nv"},
	"incr": {"incr n 2"}, "decr": {"decr n 1 noreply"}, "delete": {"delete s", "delete none noreply"},
	"touch": {"touch s 10"},
	"mg":    {"mg s v f t c k", "mg none q", "mg s T30 v"},
	"ms":    {"ms s 1 T0 F5 c\r\nv", "ms s 1 MA\r\nv", "ms s 1 ME q\r\nv", "ms s 1 MR C1\r\nv", "ms s 200\r\n" + strings.Repeat("x", 200)},
	"md":    {"md s q", "md none C5"},
	"ma":    {"ma n", "ma n MD D2 v", "ma none q", "ma n C1"},
	"me":    {"me s"}, "mn": {"mn"}, "version": {"version"},
}

// counterValues reads every counter.
func counterValues(c *counters) []uint64 {
	var v []uint64
	for _, p := range c.all() {
		v = append(v, p.Load())
	}
	c.handoffs.Each(func(_ string, n int64) { v = append(v, uint64(n)) })
	return v
}

// TestLoopHandlers runs every command that may run inline in try mode,
// recording its ops, and fails when a handler issues a write after another
// op; then, for each op of each run, makes that op would-block and checks that
// the handler stopped, staged nothing and moved no counter (the handoff runs
// it again and counts it). Every inline command must have samples here.
func TestLoopHandlers(t *testing.T) {
	ts := startServer(t, serverOptions{maxValueBytes: 100})
	s := ts.Server
	var ops []proxy.Op
	blockAt := -1
	s.testHookTry = func(op proxy.Op) error {
		ops = append(ops, op)
		if len(ops)-1 == blockAt {
			return &proxy.WouldBlock{Reason: "test"}
		}
		return nil
	}
	defer func() { s.testHookTry = nil }()
	run := func(text string) (*conn, *proxy.WriteSet) {
		c := s.newEngine()
		c.authed = true
		cmd, _, ok, err := c.in.next([]byte(text + "\r\n"))
		if !ok || err != nil {
			t.Fatalf("%q: not a whole command (%v)", text, err)
		}
		ws := s.px.NewWriteSet()
		c.try, c.ws, c.w = true, ws, &c.tryBuf
		c.dispatch(cmd)
		c.try = false
		return c, ws
	}
	for verb := range inlineVerbs {
		if _, ok := loopSamples[verb]; !ok {
			t.Errorf("%s runs inline but has no sample in loopSamples", verb)
		}
	}
	for verb, samples := range loopSamples {
		if inlineVerbs[verb] == inlineNever {
			t.Errorf("%s: sampled but not inline", verb)
		}
		for _, text := range samples {
			for k, v := range map[string]string{"s": "hello", "n": "5"} {
				if _, err := s.px.Do(context.Background(), proxy.Op{Kind: proxy.OpSet, Key: []byte(k), Value: []byte(v)}); err != nil {
					t.Fatal(err)
				}
			}
			ops, blockAt = nil, -1
			c, ws := run(text)
			if c.blocked != "" {
				t.Errorf("%q: blocked (%s) with no lock busy", text, c.blocked)
			}
			if msg := proxy.RerunSafe(ops); msg != "" {
				t.Errorf("%q: %s: %+v", text, msg, ops)
			}
			ws.Discard()
			for k := range len(ops) {
				ops, blockAt = nil, k
				before := counterValues(&s.stats)
				c, ws := run(text)
				if c.blocked != "test" || len(ops) != k+1 || ws.Len() != 0 {
					t.Errorf("%q: a would-block at op %d: blocked %q, %d ops, %d staged", text, k, c.blocked, len(ops), ws.Len())
				}
				if after := counterValues(&s.stats); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("%q: a would-block at op %d moved counters:\n%v\n%v", text, k, before, after)
				}
				ws.Discard()
			}
		}
	}
	// gat and gats write once per key: inline with one key only.
	for _, line := range []string{"gat 10 a b", "gats 10 a " + strings.Repeat("k ", 30)} {
		toks, rest := tokenize(nil, []byte(line))
		if inlineCommand(toks, rest) {
			t.Errorf("%q runs inline", line)
		}
	}
}

// loopOnlyFast skips a test that needs the loop driver's fast path.
func loopOnlyFast(t *testing.T) {
	t.Helper()
	needLoops(t)
}

// TestFastPathInline: a pipeline of inline commands is answered from the loop,
// with one commit, and a command that is not inline hands off the rest in order.
func TestFastPathInline(t *testing.T) {
	loopOnlyFast(t)
	ts := startServer(t, serverOptions{})
	r := dialRaw(t, ts.addr)
	r.send("set k 0 0 1\r\nv\r\nget k\r\nincr k 1\r\nset n 0 0 1 noreply\r\n5\r\nms m 2 q\r\nmm\r\nverbosity 1\r\nget n\r\nmn\r\n")
	r.expect("STORED", "VALUE k 0 1", "v", "END", "CLIENT_ERROR cannot increment or decrement non-numeric value", "OK", "VALUE n 0 1", "5", "END", "MN")
	// Committed after OnData returned: what was staged is a copy, not the
	// loop's read buffer (which -tags poison overwrites).
	r.roundTrip("get k m\r\n", "VALUE k 0 1", "v", "VALUE m 0 2", "mm", "END")
	st := readStats(r) // handed off: counted before it runs
	for k, want := range map[string]string{
		"loop_inline_cmds": "6", "loop_handoffs_not_loop": "2", "loop_commits": "1", "loop_commit_writes": "4",
		"cmd_get": "4", "cmd_set": "3", "cmd_meta": "1",
	} {
		if st[k] != want {
			t.Errorf("stats %s = %s, want %s", k, st[k], want)
		}
	}
}

// TestFailedCommitFailsStagedReplies: when a loop's write set commit fails,
// exactly the replies that depended on it (the staged writes, a quiet meta
// write whose reply was hidden, and a read of a key the set held) become
// SERVER_ERROR; the others stand (a classic noreply stays silent), and nothing
// staged was applied.
func TestFailedCommitFailsStagedReplies(t *testing.T) {
	loopOnlyFast(t)
	ts := startServer(t, serverOptions{})
	r := dialRaw(t, ts.addr)
	r.roundTrip("set b 0 0 3\r\nold\r\n", "STORED")
	var fail atomic.Bool
	fail.Store(true)
	ts.commits.SetCommitHook(func(ws *proxy.WriteSet) error {
		if fail.Load() {
			ws.Discard()
			return errors.New("injected commit failure")
		}
		return ws.Commit()
	})
	r.send("set a 0 0 1\r\n1\r\nget b\r\nversion\r\nget a\r\nincr c 1\r\nms q 1 q\r\nx\r\nset d 0 0 1 noreply\r\n1\r\nmn\r\n")
	failed := "SERVER_ERROR injected commit failure"
	r.expect(failed, "VALUE b 0 3", "old", "END", "VERSION dynakv", failed, failed, failed, "MN")
	fail.Store(false)
	r.roundTrip("get a q d c\r\n", "END")
}

// TestMixedPipelineOrder: inline commands, then one that would block in try
// mode (ma with N: several writes), then commands that could run inline:
// every reply in order, the handed-off command seeing the writes before it and
// the later commands (handed off with it) its own.
func TestMixedPipelineOrder(t *testing.T) {
	loopOnlyFast(t)
	ts := startServer(t, serverOptions{})
	r := dialRaw(t, ts.addr)
	r.send("set k 0 0 1\r\n1\r\nincr k 2\r\nma k N0 J0 D4 v\r\nget k\r\nincr k 1\r\nma new N0 J7 v\r\nget new\r\n")
	r.expect("STORED", "3", "VA 1", "7", "VALUE k 0 1", "7", "END", "8", "VA 1", "7", "VALUE new 0 1", "7", "END")
	st := readStats(r)
	if st["loop_handoffs_steps"] != "1" || st["loop_inline_cmds"] != "2" {
		t.Errorf("handoffs for steps %s, inline %s; want 1, 2", st["loop_handoffs_steps"], st["loop_inline_cmds"])
	}
}

package resp

import (
	"regexp"
	"strings"
	"testing"
)

// Fixes found by Redis 7's own Tcl suite (scripts/redis-suite.sh); the expected
// replies are real redis-server 7's.

func TestSuiteFunctionFlush(t *testing.T) {
	ts := startServer(t)
	runSteps(t, dialRaw(t, ts.addr), []step{
		cmd(ok, "FUNCTION", "FLUSH"),
		cmd(ok, "function", "flush", "async"),
		cmd(ok, "FUNCTION", "FLUSH", "SYNC"),
		cmd("-ERR FUNCTION FLUSH only supports SYNC|ASYNC option\r\n", "FUNCTION", "FLUSH", "foo"),
		cmd("-ERR unknown subcommand or wrong number of arguments for 'flush'. Try FUNCTION HELP.\r\n", "FUNCTION", "flush", "a", "b"),
		cmd("-ERR unknown subcommand 'LOAD'. Try FUNCTION HELP.\r\n", "FUNCTION", "LOAD", "x"),
	})
}

func TestSuiteMSETNXSameKeyTwice(t *testing.T) {
	ts := startServer(t)
	runSteps(t, dialRaw(t, ts.addr), []step{
		cmd(":1\r\n", "MSETNX", "x1", "xxx", "x1", "yyy"),
		cmd(bulk("yyy"), "GET", "x1"),
		cmd(":0\r\n", "MSETNX", "x1", "xxx", "x1", "zzz"),
		cmd(bulk("yyy"), "GET", "x1"),
		cmd(":1\r\n", "MSETNX", "a", "1", "b", "2", "a", "3"),
		cmd("*2\r\n"+bulk("3")+bulk("2"), "MGET", "a", "b"),
	})
}

func TestSuiteRenameCopy(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	runSteps(t, c, []step{
		cmd("-ERR no such key\r\n", "RENAME", "nokey", "b"),
		cmd("-ERR no such key\r\n", "RENAMENX", "nokey", "b"),
		cmd("-ERR no such key\r\n", "RENAME", "nokey", "nokey"),
		cmd(ok, "SET", "a", "1"),
		cmd(ok, "RENAME", "a", "a"),
		cmd(":0\r\n", "RENAMENX", "a", "a"),
		cmd(bulk("1"), "GET", "a"),
		cmd(ok, "RENAME", "a", "b"),
		cmd(":0\r\n", "EXISTS", "a"),
		cmd(bulk("1"), "GET", "b"),
		cmd(ok, "SET", "c", "3"),
		cmd(":0\r\n", "RENAMENX", "b", "c"),
		cmd(bulk("3"), "GET", "c"),
		cmd(":1\r\n", "RENAMENX", "b", "d"),
		cmd("*2\r\n"+nil2+bulk("1"), "MGET", "b", "d"),
		// The TTL moves with the key; the target's TTL is not inherited.
		cmd(ok, "SET", "v", "x", "EX", "100"),
		cmd(ok, "SET", "w", "y", "EX", "200"),
		cmd(ok, "RENAME", "v", "w"),
		cmd(":100\r\n", "TTL", "w"),
		cmd(ok, "SET", "p", "x"),
		cmd(ok, "RENAME", "p", "w"),
		cmd(":-1\r\n", "TTL", "w"),
		cmd(arity("rename"), "RENAME", "a"),
		// COPY.
		cmd("-ERR source and destination objects are the same\r\n", "COPY", "c", "c"),
		cmd(":0\r\n", "COPY", "nokey", "e"),
		cmd(":1\r\n", "COPY", "c", "e"),
		cmd(bulk("3"), "GET", "e"),
		cmd(bulk("3"), "GET", "c"),
		cmd(":0\r\n", "COPY", "d", "e"),
		cmd(":1\r\n", "COPY", "d", "e", "REPLACE"),
		cmd(bulk("1"), "GET", "e"),
		cmd(ok, "SET", "t", "x", "PX", "50000"),
		cmd(":1\r\n", "COPY", "t", "e", "replace", "DB", "0"),
		cmd(":50000\r\n", "PTTL", "e"),
		cmd(":1\r\n", "COPY", "c", "e", "REPLACE"),
		cmd(":-1\r\n", "PTTL", "e"),
		cmd(errNotInt, "COPY", "c", "f", "DB", "notanumber"),
		cmd("-ERR DB index is out of range\r\n", "COPY", "c", "f", "DB", "1"),
		cmd(errSyn, "COPY", "c", "f", "DB"),
		cmd(errSyn, "COPY", "c", "f", "DB", "0", "foo"),
		cmd(arity("copy"), "COPY", "c"),
		cmd("*2\r\n"+bulk("c")+bulk("f"), "COMMAND", "GETKEYS", "COPY", "c", "f", "REPLACE"),
	})
}

func TestSuiteLCS(t *testing.T) {
	ts := startServer(t)
	idx := "*4\r\n" + bulk("matches") + "*2\r\n" +
		"*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n" +
		"*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n" +
		bulk("len") + ":6\r\n"
	runSteps(t, dialRaw(t, ts.addr), []step{
		cmd(ok, "MSET", "key1", "ohmytext", "key2", "mynewtext"),
		cmd(bulk("mytext"), "LCS", "key1", "key2"),
		cmd(":6\r\n", "LCS", "key1", "key2", "LEN"),
		cmd(idx, "LCS", "key1", "key2", "IDX"),
		cmd("*4\r\n"+bulk("matches")+"*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n"+bulk("len")+":6\r\n",
			"LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"),
		cmd("-ERR If you want both the length and indexes, please just use IDX.\r\n", "LCS", "key1", "key2", "LEN", "IDX"),
		cmd(errNotInt, "LCS", "key1", "key2", "MINMATCHLEN", "x"),
		cmd(errSyn, "LCS", "key1", "key2", "foo"),
		cmd(bulk(""), "LCS", "key1", "nokey"),
		cmd(":0\r\n", "LCS", "nokey", "nokey", "LEN"),
		cmd(arity("lcs"), "LCS", "key1"),
	})
	// RESP3: IDX answers a map.
	c := dialRaw(t, ts.addr)
	c.do("HELLO", "3")
	if got, want := c.do("LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4"), "%2\r\n"+bulk("matches")+"*1\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n"+bulk("len")+":6\r\n"; got != want {
		t.Errorf("RESP3 LCS IDX: got %q, want %q", got, want)
	}
}

// TestSuiteLCSFuzz checks LCS's length and string against a simple recursive LCS
// length on random short strings.
func TestSuiteLCSFuzz(t *testing.T) {
	ref := func(a, b []byte) int {
		memo := map[[2]int]int{}
		var f func(i, j int) int
		f = func(i, j int) int {
			if i == len(a) || j == len(b) {
				return 0
			}
			if v, ok := memo[[2]int{i, j}]; ok {
				return v
			}
			v := max(f(i+1, j), f(i, j+1))
			if a[i] == b[j] {
				v = max(v, 1+f(i+1, j+1))
			}
			memo[[2]int{i, j}] = v
			return v
		}
		return f(0, 0)
	}
	isSubseq := func(s, of []byte) bool {
		i := 0
		for j := 0; j < len(of) && i < len(s); j++ {
			if s[i] == of[j] {
				i++
			}
		}
		return i == len(s)
	}
	seed := uint64(1)
	next := func() uint64 { seed = seed*6364136223846793005 + 1442695040888963407; return seed >> 33 }
	for n := 0; n < 500; n++ {
		a, b := make([]byte, next()%12), make([]byte, next()%12)
		for i := range a {
			a[i] = 'a' + byte(next()%3)
		}
		for i := range b {
			b[i] = 'a' + byte(next()%3)
		}
		tbl := lcsTable(a, b)
		str, ranges := lcsWalk(a, b, tbl, 0)
		if int(tbl[len(tbl)-1]) != ref(a, b) || len(str) != ref(a, b) || !isSubseq(str, a) || !isSubseq(str, b) {
			t.Fatalf("LCS(%q, %q) = %q (len %d), want length %d", a, b, str, tbl[len(tbl)-1], ref(a, b))
		}
		for _, r := range ranges {
			if string(a[r.aStart:r.aEnd+1]) != string(b[r.bStart:r.bEnd+1]) {
				t.Fatalf("LCS(%q, %q): range %+v does not match", a, b, r)
			}
		}
	}
}

func TestSuiteRandomKeySeesEveryKey(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	c.do("MSET", "foo", "x", "bar", "y", "baz", "z")
	seen := map[string]bool{}
	for i := 0; i < 200 && len(seen) < 3; i++ {
		seen[c.do("RANDOMKEY")] = true
	}
	if len(seen) != 3 {
		t.Fatalf("RANDOMKEY over 200 calls returned only %v", seen)
	}
}

func TestSuiteInfoCPUAndCommandStats(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	c.do("SET", "k", "v")
	c.do("GET", "k")
	c.do("GET")       // rejected: arity
	c.do("INCR", "k") // failed: not an integer
	c.do("CONFIG", "GET", "hz")
	cpu := c.do("INFO", "cpu")
	for _, want := range []string{"# CPU\r\n", "\r\nused_cpu_user:", "\r\nused_cpu_sys:", "\r\nused_cpu_user_children:"} {
		if !strings.Contains(cpu, want) {
			t.Errorf("INFO cpu lacks %q: %q", want, cpu)
		}
	}
	if strings.Contains(cpu, "used_memory") || strings.Contains(cpu, "rejected_calls") {
		t.Errorf("INFO cpu shows other sections: %q", cpu)
	}
	stats := c.do("INFO", "commandSTATS")
	for _, re := range []string{
		`\r\ncmdstat_get:calls=1,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=1,failed_calls=0\r\n`,
		`\r\ncmdstat_set:calls=1,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=0,failed_calls=0\r\n`,
		`\r\ncmdstat_incr:calls=1,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=0,failed_calls=1\r\n`,
		`\r\ncmdstat_config\|get:calls=1,`,
	} {
		if !regexp.MustCompile(re).MatchString(stats) {
			t.Errorf("INFO commandstats does not match %s: %q", re, stats)
		}
	}
	if def := c.do("INFO"); !strings.Contains(def, "used_cpu_user") || strings.Contains(def, "rejected_calls") {
		t.Errorf("INFO default: want cpu and no commandstats: %q", def)
	}
	if all := c.do("INFO", "all"); !strings.Contains(all, "used_cpu_user") || !strings.Contains(all, "rejected_calls") {
		t.Errorf("INFO all: want cpu and commandstats: %q", all)
	}
	c.do("CONFIG", "RESETSTAT")
	if got := c.do("INFO", "commandstats"); strings.Contains(got, "cmdstat_get") {
		t.Errorf("CONFIG RESETSTAT kept commandstats: %q", got)
	}
}

func TestSuiteSetbitGetbit(t *testing.T) {
	ts := startServer(t)
	runSteps(t, dialRaw(t, ts.addr), []step{
		cmd(":0\r\n", "SETBIT", "b", "1", "1"),
		cmd(bulk("@"), "GET", "b"),
		cmd(":1\r\n", "SETBIT", "b", "1", "1"),
		cmd(":1\r\n", "SETBIT", "b", "1", "0"),
		cmd(":0\r\n", "GETBIT", "b", "1"),
		cmd(":0\r\n", "SETBIT", "b", "20", "0"),
		cmd(":3\r\n", "STRLEN", "b"),
		cmd(":0\r\n", "GETBIT", "b", "100"),
		cmd(":0\r\n", "GETBIT", "nokey", "3"),
		cmd(":0\r\n", "SETBIT", "z", "7", "0"), // creates the key, zero-padded
		cmd(bulk("\x00"), "GET", "z"),
		cmd(ok, "SET", "n", "5"),
		cmd(":0\r\n", "SETBIT", "n", "6", "1"),
		cmd(bulk("7"), "GET", "n"),
		cmd(":1\r\n", "GETBIT", "n", "7"),
		cmd("-ERR bit offset is not an integer or out of range\r\n", "SETBIT", "b", "-1", "1"),
		cmd("-ERR bit offset is not an integer or out of range\r\n", "SETBIT", "b", "x", "1"),
		cmd("-ERR bit offset is not an integer or out of range\r\n", "SETBIT", "b", "4294967296", "1"),
		cmd("-ERR bit offset is not an integer or out of range\r\n", "GETBIT", "b", "4294967296"),
		cmd("-ERR bit is not an integer or out of range\r\n", "SETBIT", "b", "1", "2"),
		cmd("-ERR bit is not an integer or out of range\r\n", "SETBIT", "b", "1", "-1"),
		cmd(arity("setbit"), "SETBIT", "b", "1"),
		cmd(arity("getbit"), "GETBIT", "b"),
	})
}

// unit/maxmemory's "Don't rehash ..." test (unit/dynakv/maxmemory) starts with
// CONFIG SET latency-tracking no: accepted and stored without effect, as other
// parameters dynakv has no use for.
func TestSuiteConfigLatencyTracking(t *testing.T) {
	ts := startServer(t)
	runSteps(t, dialRaw(t, ts.addr), []step{
		cmd("*2\r\n"+bulk("latency-tracking")+bulk("yes"), "CONFIG", "GET", "latency-tracking"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'latency-tracking') - argument must be 'yes' or 'no'\r\n", "CONFIG", "SET", "latency-tracking", "maybe"),
		cmd(ok, "CONFIG", "SET", "latency-tracking", "no"),
		cmd("*2\r\n"+bulk("latency-tracking")+bulk("no"), "CONFIG", "GET", "latency-tracking"),
	})
}

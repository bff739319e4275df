package resp

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// step is one exchange: send args as a RESP command (or raw bytes when raw is
// set), expect exactly want back.
type step struct {
	args []string
	raw  string
	want string
}

func cmd(want string, args ...string) step { return step{args: args, want: want} }
func raw(want, bytes string) step          { return step{raw: bytes, want: want} }

func runSteps(t *testing.T, c *rawConn, steps []step) {
	t.Helper()
	for _, s := range steps {
		var got string
		if s.raw != "" {
			c.send(s.raw)
			got = c.read()
		} else {
			got = c.do(s.args...)
		}
		if got != s.want {
			t.Errorf("%q%q:\n got %q\nwant %q", s.args, s.raw, got, s.want)
		}
	}
}

const (
	errArity  = "-ERR wrong number of arguments for '%s' command\r\n"
	errSyn    = "-ERR syntax error\r\n"
	errNotInt = "-ERR value is not an integer or out of range\r\n"
	nil2      = "$-1\r\n"
	nil3      = "_\r\n"
	ok        = "+OK\r\n"
)

func arity(name string) string { return strings.Replace(errArity, "%s", name, 1) }

func bulk(s string) string { return "$" + itoa(len(s)) + "\r\n" + s + "\r\n" }

func itoa(n int) string { return strconv.Itoa(n) }

func formatInt(n int) string { return strconv.Itoa(n) }

func TestRawReplies(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	long := strings.Repeat("x", 200)
	tm := newFakeClock().Now()
	timeReply := "*2\r\n" + bulk(strconv.FormatInt(tm.Unix(), 10)) + bulk(strconv.Itoa(tm.Nanosecond()/1000))
	runSteps(t, c, []step{
		// Connection.
		cmd("+PONG\r\n", "PING"),
		cmd(bulk("hello"), "ping", "hello"),
		cmd(arity("ping"), "PING", "a", "b"),
		cmd(arity("echo"), "ECHO"),
		cmd(bulk(""), "ECHO", ""),
		cmd(ok, "SELECT", "0"),
		cmd("-ERR DB index is out of range\r\n", "SELECT", "1"),
		cmd(errNotInt, "SELECT", "x"),
		cmd("-ERR value is out of range, value must between -2147483648 and 2147483647\r\n", "SELECT", "99999999999"),
		cmd("-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n", "AUTH", "x"),
		cmd(ok, "AUTH", "default", "anything"),
		cmd("-WRONGPASS invalid username-password pair or user is disabled.\r\n", "AUTH", "bob", "x"),
		cmd(errSyn, "AUTH", "a", "b", "c"),
		// Unknown commands and arity, Redis 7.2's exact text.
		cmd("-ERR unknown command 'foo', with args beginning with: \r\n", "foo"),
		cmd("-ERR unknown command 'FOO', with args beginning with: 'a' 'b c' \r\n", "FOO", "a", "b c"),
		cmd("-ERR unknown command 'lpush', with args beginning with: '"+long[:128]+"' \r\n", "lpush", long, "more"),
		cmd("-ERR unknown command 'x', with args beginning with: '"+long[:100]+"' '"+long[:25]+"' \r\n", "x", long[:100], long),
		cmd("-ERR unknown command 'x', with args beginning with: 'a  b' 'c' \r\n", "x", "a\r\nb", "c\x00d"),
		cmd(arity("get"), "GET"),
		cmd(arity("get"), "get", "a", "b"),
		cmd(arity("set"), "SET", "a"),
		cmd(arity("config"), "CONFIG"),
		cmd("-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n", "CONFIG", "FOO"),
		cmd("-ERR unknown subcommand 'kill'. Try CLIENT HELP.\r\n", "client", "kill", "x"),
		cmd(arity("config|get"), "config", "get"),
		cmd(arity("client|setname"), "CLIENT", "SETNAME"),
		// Strings.
		cmd(nil2, "GET", "k"),
		cmd(ok, "SET", "k", "v"),
		cmd(bulk("v"), "GET", "k"),
		cmd(nil2, "SET", "k", "v2", "NX"),
		cmd(ok, "SET", "k", "v2", "XX"),
		cmd(nil2, "SET", "nokey", "v", "XX"),
		cmd(errSyn, "SET", "k", "v", "NX", "XX"),
		cmd(errSyn, "SET", "k", "v", "XX", "NX"),
		cmd(errSyn, "SET", "k", "v", "EX"),
		cmd(errSyn, "SET", "k", "v", "EX", "10", "PX", "10"),
		cmd(errSyn, "SET", "k", "v", "KEEPTTL", "EX", "10"),
		cmd(errSyn, "SET", "k", "v", "EX", "10", "KEEPTTL"),
		cmd(errSyn, "SET", "k", "v", "PERSIST"),
		cmd(errSyn, "SET", "k", "v", "BOGUS"),
		cmd("-ERR invalid expire time in 'set' command\r\n", "SET", "k", "v", "EX", "0"),
		cmd("-ERR invalid expire time in 'set' command\r\n", "SET", "k", "v", "PX", "-5"),
		cmd("-ERR invalid expire time in 'set' command\r\n", "SET", "k", "v", "EX", "9223372036854775807"),
		cmd("-ERR invalid expire time in 'set' command\r\n", "SET", "k", "v", "PX", "9223372036854775807"),
		cmd(errNotInt, "SET", "k", "v", "EX", "1.5"),
		cmd(errNotInt, "SET", "k", "v", "EX", " 1"),
		cmd(bulk("v2"), "SET", "k", "v3", "GET"),
		cmd(bulk("v3"), "SET", "k", "v4", "NX", "GET"), // 7.0+: NX and GET together
		cmd(bulk("v3"), "GET", "k"),
		cmd(nil2, "SET", "g", "1", "NX", "GET"),
		cmd(bulk("1"), "GET", "g"),
		cmd(nil2, "SET", "k", "v", "ex", "100", "nx\x00junk"), // C compares options up to a NUL
		cmd(ok, "SET", "past", "v", "PXAT", "1"),
		cmd(nil2, "GET", "past"),
		cmd(":0\r\n", "SETNX", "k", "x"),
		cmd(":1\r\n", "SETNX", "k2", "x"),
		cmd("-ERR invalid expire time in 'setex' command\r\n", "SETEX", "k", "0", "v"),
		cmd("-ERR invalid expire time in 'psetex' command\r\n", "PSETEX", "k", "-1", "v"),
		cmd(errNotInt, "SETEX", "k", "x", "v"),
		cmd(ok, "SETEX", "k", "100", "v"),
		cmd(bulk("v"), "GETSET", "k", "w"),
		cmd(nil2, "GETSET", "k3", "w"),
		cmd(bulk("w"), "GETDEL", "k3"),
		cmd(nil2, "GETDEL", "k3"),
		cmd(errSyn, "GETEX", "k", "PERSIST", "EX", "1"),
		cmd(errSyn, "GETEX", "k", "NX"),
		cmd(nil2, "GETEX", "missing", "EX", "0"),
		cmd("-ERR invalid expire time in 'getex' command\r\n", "GETEX", "k", "EX", "0"),
		cmd(errNotInt, "GETEX", "k", "EX", "x"),
		cmd(bulk("w"), "GETEX", "k", "PERSIST"),
		cmd(":-1\r\n", "TTL", "k"),
		cmd(bulk("w"), "GETEX", "k", "EX", "50"),
		cmd(":50\r\n", "TTL", "k"),
		cmd(bulk("w"), "GETEX", "k", "EXAT", "1"), // a past time deletes
		cmd(":-2\r\n", "TTL", "k"),
		cmd(ok, "SET", "n", "abc"),
		cmd(errNotInt, "INCR", "n"),
		cmd(ok, "SET", "n", "9223372036854775806"),
		cmd(":9223372036854775807\r\n", "INCR", "n"),
		cmd("-ERR increment or decrement would overflow\r\n", "INCR", "n"),
		cmd("-ERR decrement would overflow\r\n", "DECRBY", "n", "-9223372036854775808"),
		cmd(errNotInt, "INCRBY", "n", "1.5"),
		cmd(":-1\r\n", "DECR", "fresh"),
		cmd(":9\r\n", "INCRBY", "fresh", "10"),
		cmd(":4\r\n", "DECRBY", "fresh", "5"),
		cmd(bulk("10.5"), "INCRBYFLOAT", "f", "10.5"),
		cmd(bulk("10.6"), "INCRBYFLOAT", "f", "0.1"),
		cmd("-ERR value is not a valid float\r\n", "INCRBYFLOAT", "f", "abc"),
		cmd("-ERR value is not a valid float\r\n", "INCRBYFLOAT", "f", " 1"),
		cmd("-ERR value is not a valid float\r\n", "INCRBYFLOAT", "f", "1_0"),
		cmd("-ERR increment would produce NaN or Infinity\r\n", "INCRBYFLOAT", "f", "inf"),
		cmd("-ERR value is not a valid float\r\n", "INCRBYFLOAT", "n2", "nan"),
		cmd(":5\r\n", "APPEND", "ap", "hello"),
		cmd(":11\r\n", "APPEND", "ap", " world"),
		cmd(":11\r\n", "STRLEN", "ap"),
		cmd(":0\r\n", "STRLEN", "nokey"),
		cmd(bulk("hello"), "GETRANGE", "ap", "0", "4"),
		cmd(bulk("world"), "GETRANGE", "ap", "-5", "-1"),
		cmd(bulk("hello world"), "GETRANGE", "ap", "0", "-1"),
		cmd(bulk("hello world"), "GETRANGE", "ap", "-100", "100"),
		cmd(bulk(""), "GETRANGE", "ap", "5", "3"),
		cmd(bulk(""), "GETRANGE", "ap", "-1", "-5"),
		cmd(bulk(""), "GETRANGE", "nokey", "0", "-1"),
		cmd(bulk("d"), "SUBSTR", "ap", "-1", "-1"),
		cmd(errNotInt, "GETRANGE", "ap", "a", "1"),
		cmd(":11\r\n", "SETRANGE", "ap", "6", "WORLD"),
		cmd(bulk("hello WORLD"), "GET", "ap"),
		cmd(":8\r\n", "SETRANGE", "sr", "5", "abc"),
		cmd(bulk("\x00\x00\x00\x00\x00abc"), "GET", "sr"),
		cmd(":0\r\n", "SETRANGE", "sr2", "5", ""),
		cmd(":8\r\n", "SETRANGE", "sr", "100", ""),
		cmd("-ERR offset is out of range\r\n", "SETRANGE", "sr", "-1", "x"),
		cmd(errNotInt, "SETRANGE", "sr", "x", "x"),
		cmd("-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n", "SETRANGE", "sr", "2000000", "x"),
		cmd("-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n", "SETRANGE", "sr", "9223372036854775807", "x"),
		cmd(ok, "MSET", "m1", "a", "m2", "b"),
		cmd(arity("mset"), "MSET", "m1"),
		cmd(arity("mset"), "MSET", "m1", "a", "m2"),
		cmd("*3\r\n$1\r\na\r\n$-1\r\n$1\r\nb\r\n", "MGET", "m1", "nokey", "m2"),
		cmd(":0\r\n", "MSETNX", "m1", "x", "m3", "y"),
		cmd(nil2, "GET", "m3"),
		cmd(":1\r\n", "MSETNX", "m3", "x", "m4", "y"),
		cmd(arity("msetnx"), "MSETNX", "m5", "x", "m6"),
		// Keyspace.
		cmd(":2\r\n", "EXISTS", "m1", "m1", "nokey"),
		cmd(":2\r\n", "DEL", "m1", "m1", "m2", "nokey"),
		cmd(":1\r\n", "UNLINK", "m3"),
		cmd(":0\r\n", "EXISTS", "m1"),
		cmd("+string\r\n", "TYPE", "m4"),
		cmd("+none\r\n", "TYPE", "m1"),
		cmd(":-2\r\n", "TTL", "m1"),
		cmd(":-1\r\n", "PTTL", "m4"),
		cmd(":-1\r\n", "EXPIRETIME", "m4"),
		cmd(":0\r\n", "PERSIST", "m4"),
		cmd(":0\r\n", "EXPIRE", "m1", "10"),
		cmd("-ERR NX and XX, GT or LT options at the same time are not compatible\r\n", "EXPIRE", "m4", "10", "NX", "XX"),
		cmd("-ERR NX and XX, GT or LT options at the same time are not compatible\r\n", "EXPIRE", "m4", "10", "GT", "NX"),
		cmd("-ERR GT and LT options at the same time are not compatible\r\n", "EXPIRE", "m4", "10", "GT", "LT"),
		cmd("-ERR Unsupported option FOO\r\n", "EXPIRE", "m4", "10", "FOO"),
		cmd("-ERR Unsupported option FOO\r\n", "EXPIRE", "m4", "x", "FOO"),
		cmd(errNotInt, "EXPIRE", "m4", "x"),
		cmd("-ERR invalid expire time in 'expire' command\r\n", "EXPIRE", "m4", "9223372036854775807"),
		cmd("-ERR invalid expire time in 'pexpire' command\r\n", "PEXPIRE", "m4", "9223372036854775807"),
		cmd("-ERR invalid expire time in 'expireat' command\r\n", "EXPIREAT", "m4", "-9223372036854775808"),
		cmd(":0\r\n", "EXPIRE", "m4", "10", "XX"),
		cmd(":0\r\n", "EXPIRE", "m4", "10", "GT"),
		cmd(":0\r\n", "EXPIRE", "m4", "10", "XX", "LT"),
		cmd(":1\r\n", "EXPIRE", "m4", "100", "LT"),
		cmd(":0\r\n", "EXPIRE", "m4", "200", "LT"),
		cmd(":1\r\n", "EXPIRE", "m4", "50", "xx", "lt"),
		cmd(":1\r\n", "EXPIRE", "m4", "80", "XX", "GT"),
		cmd(":0\r\n", "EXPIRE", "m4", "10", "NX"),
		cmd(":80\r\n", "TTL", "m4"),
		cmd(":80000\r\n", "PTTL", "m4"),
		cmd(":1\r\n", "PERSIST", "m4"),
		cmd(":-1\r\n", "TTL", "m4"),
		cmd(":1\r\n", "EXPIRE", "m4", "-1"), // a past time deletes
		cmd(":0\r\n", "EXISTS", "m4"),
		cmd(ok, "FLUSHALL"),
		cmd(ok, "FLUSHDB", "async"),
		cmd(ok, "FLUSHALL", "SYNC"),
		cmd(errSyn, "FLUSHALL", "FOO"),
		cmd(":0\r\n", "DBSIZE"),
		cmd(nil2, "RANDOMKEY"),
		cmd("*0\r\n", "KEYS", "*"),
		cmd("*2\r\n$1\r\n0\r\n*0\r\n", "SCAN", "0"),
		cmd("-ERR invalid cursor\r\n", "SCAN", "x"),
		cmd("-ERR invalid cursor\r\n", "SCAN", "-1"),
		cmd(errSyn, "SCAN", "0", "COUNT", "0"),
		cmd(errNotInt, "SCAN", "0", "COUNT", "x"),
		cmd(errSyn, "SCAN", "0", "FOO", "x"),
		cmd(errSyn, "SCAN", "0", "MATCH"),
		cmd(ok, "SET", "only", "1"),
		cmd(":1\r\n", "DBSIZE"),
		cmd(bulk("only"), "RANDOMKEY"),
		cmd("*1\r\n$4\r\nonly\r\n", "KEYS", "on*"),
		cmd("*0\r\n", "KEYS", "x*"),
		cmd("*2\r\n$1\r\n0\r\n*1\r\n$4\r\nonly\r\n", "SCAN", "0", "MATCH", "o*", "TYPE", "STRING", "COUNT", "100"),
		cmd("*2\r\n$1\r\n0\r\n*0\r\n", "SCAN", "0", "TYPE", "hash"),
		// Dynamo.
		cmd("*2\r\n$0\r\n\r\n*0\r\n", "DGET", "dk"),
		cmd("-ERR invalid causal context\r\n", "DPUT", "dk", "!!!", "v"),
		cmd("-ERR invalid causal context\r\n", "DDEL", "dk", "not-a-context"),
		cmd(errSyn, "DPUT", "dk", "", "v", "EX"),
		cmd(errSyn, "DPUT", "dk", "", "v", "XX", "1"),
		cmd("-ERR invalid expire time in 'dput' command\r\n", "DPUT", "dk", "", "v", "EX", "0"),
		cmd(arity("dput"), "DPUT", "dk", ""),
		cmd(arity("ddel"), "DDEL", "dk"),
		// Server.
		cmd(arity("time"), "TIME", "x"),
		cmd(timeReply, "TIME"),
		cmd("*1\r\n$-1\r\n", "COMMAND", "INFO", "nosuch"),
		cmd("*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n", "COMMAND", "INFO", "GET"),
		cmd("*1\r\n$1\r\nk\r\n", "COMMAND", "GETKEYS", "GET", "k"),
		cmd("*2\r\n$1\r\na\r\n$1\r\nc\r\n", "COMMAND", "GETKEYS", "MSET", "a", "b", "c", "d"),
		cmd("-ERR The command has no key arguments\r\n", "COMMAND", "GETKEYS", "PING", "x"),
		cmd("-ERR Invalid command specified\r\n", "COMMAND", "GETKEYS", "nosuch", "x"),
		cmd("-ERR Invalid number of arguments specified for command\r\n", "COMMAND", "GETKEYS", "GET", "a", "b"),
		cmd(arity("command|getkeys"), "COMMAND", "GETKEYS", "GET"),
		cmd("*2\r\n$4\r\nsave\r\n$0\r\n\r\n", "CONFIG", "GET", "save"),
		cmd("*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n", "CONFIG", "GET", "SAVE", "appendonly"),
		cmd("*0\r\n", "CONFIG", "GET", "requirepass"),
		cmd("*2\r\n$9\r\ndatabases\r\n$1\r\n1\r\n", "CONFIG", "GET", "datab*"),
		cmd("-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n", "CONFIG", "SET", "foo", "bar"),
		cmd(errSyn, "CONFIG", "SET", "save", "", "hz"),
		cmd(arity("config|set"), "CONFIG", "SET", "save"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n", "CONFIG", "SET", "port", "1"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction\r\n", "CONFIG", "SET", "maxmemory-policy", "bogus"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer\r\n", "CONFIG", "SET", "hz", "x"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument must be 'yes' or 'no'\r\n", "CONFIG", "SET", "appendonly", "maybe"),
		cmd("-ERR CONFIG SET failed (possibly related to argument 'SAVE') - duplicate parameter\r\n", "CONFIG", "SET", "save", "", "SAVE", "1 1"),
		cmd(ok, "CONFIG", "SET", "save", "900 1", "maxmemory-policy", "ALLKEYS-LRU", "maxmemory", "1mb"),
		cmd("*8\r\n$4\r\nsave\r\n$5\r\n900 1\r\n$9\r\nmaxmemory\r\n$7\r\n1048576\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lru\r\n$17\r\nmaxmemory-samples\r\n$1\r\n5\r\n", "CONFIG", "GET", "save", "maxmemory*"),
		cmd(ok, "CONFIG", "RESETSTAT"),
		cmd("-ERR The server is running without a config file\r\n", "CONFIG", "REWRITE"),
		// CLIENT.
		cmd(nil2, "CLIENT", "GETNAME"),
		cmd("-ERR Client names cannot contain spaces, newlines or special characters.\r\n", "CLIENT", "SETNAME", "a b"),
		cmd("-ERR Client names cannot contain spaces, newlines or special characters.\r\n", "CLIENT", "SETNAME", "caf\xc3\xa9"),
		cmd(ok, "CLIENT", "SETNAME", "conn-1"),
		cmd(bulk("conn-1"), "CLIENT", "GETNAME"),
		cmd(ok, "CLIENT", "SETNAME", ""),
		cmd(nil2, "CLIENT", "GETNAME"),
		cmd("-ERR Unrecognized option 'foo'\r\n", "CLIENT", "SETINFO", "foo", "bar"),
		cmd("-ERR LIB-NAME cannot contain spaces, newlines or special characters.\r\n", "CLIENT", "SETINFO", "LIB-NAME", "a b"),
		cmd(ok, "CLIENT", "SETINFO", "LIB-NAME", "go-redis(,go1.26)"),
		cmd(ok, "CLIENT", "SETINFO", "lib-ver", "9.23.0"),
		cmd(arity("client|setinfo"), "CLIENT", "SETINFO", "lib-ver"),
		cmd(":1\r\n", "CLIENT", "ID"),
		cmd("-ERR Unknown client type 'foo'\r\n", "CLIENT", "LIST", "TYPE", "foo"),
		cmd("-ERR Invalid client ID\r\n", "CLIENT", "LIST", "ID", "x"),
		cmd(errSyn, "CLIENT", "LIST", "foo"),
		cmd(bulk(""), "CLIENT", "LIST", "TYPE", "pubsub"),
		cmd(bulk(""), "CLIENT", "LIST", "ID", "99"),
		// HELLO.
		cmd("-NOPROTO unsupported protocol version\r\n", "HELLO", "4"),
		cmd("-NOPROTO unsupported protocol version\r\n", "HELLO", "1"),
		cmd("-ERR Protocol version is not an integer or out of range\r\n", "HELLO", "x"),
		cmd("-ERR Syntax error in HELLO option 'FOO'\r\n", "HELLO", "3", "FOO"),
		cmd("-ERR Syntax error in HELLO option 'AUTH'\r\n", "HELLO", "3", "AUTH", "default"),
		cmd("-WRONGPASS invalid username-password pair or user is disabled.\r\n", "HELLO", "3", "AUTH", "bob", "x"),
		cmd("-ERR Client names cannot contain spaces, newlines or special characters.\r\n", "HELLO", "3", "SETNAME", "a b"),
		cmd(helloReply(2, 1), "HELLO"),
		cmd(helloReply(2, 1), "HELLO", "2", "AUTH", "default", "x", "SETNAME", "me"),
		cmd(bulk("me"), "CLIENT", "GETNAME"),
	})
	if t.Failed() {
		return
	}
	// CLIENT INFO and LIST, whose ages vary.
	info := c.do("CLIENT", "INFO")
	for _, want := range []string{"id=1 addr=", " laddr=" + ts.addr + " ", " name=me ", " cmd=client|info ", " resp=2 ", " lib-name=go-redis(,go1.26) lib-ver=9.23.0\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("CLIENT INFO = %q, missing %q", info, want)
		}
	}
	if list := c.do("CLIENT", "LIST"); !strings.Contains(list, "id=1 ") || strings.Count(list, "\n") != 3 {
		t.Errorf("CLIENT LIST = %q", list)
	}
}

func helloReply(proto, id int) string {
	h := "*14\r\n"
	if proto == 3 {
		h = "%7\r\n"
	}
	return h + bulk("server") + bulk("redis") + bulk("version") + bulk("7.2.0") + bulk("proto") + ":" + itoa(proto) + "\r\n" +
		bulk("id") + ":" + itoa(id) + "\r\n" + bulk("mode") + bulk("standalone") + bulk("role") + bulk("master") + bulk("modules") + "*0\r\n"
}

func TestRawRESP3(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	runSteps(t, c, []step{
		cmd(helloReply(3, 1), "HELLO", "3"),
		cmd(nil3, "GET", "k"),
		cmd(nil3, "SET", "k", "v", "XX"),
		cmd(nil3, "SET", "k", "v", "GET"),
		cmd("*2\r\n_\r\n$1\r\nv\r\n", "MGET", "nokey", "k"),
		cmd("%1\r\n$4\r\nsave\r\n$0\r\n\r\n", "CONFIG", "GET", "save"),
		cmd("*2\r\n$0\r\n\r\n*0\r\n", "DGET", "dk"),
		cmd(nil3, "CLIENT", "GETNAME"),
		cmd(nil3, "GETDEL", "nokey"),
		cmd("*1\r\n_\r\n", "COMMAND", "INFO", "nosuch"),
		cmd("*1\r\n*10\r\n$4\r\nping\r\n:-1\r\n~2\r\n+fast\r\n+sentinel\r\n:0\r\n:0\r\n:0\r\n~2\r\n+@fast\r\n+@connection\r\n~0\r\n*0\r\n*0\r\n", "COMMAND", "INFO", "ping"),
		cmd("+PONG\r\n", "PING"),
		cmd(":-2\r\n", "TTL", "nokey"),
		cmd("=18\r\ntxt:# Errorstats\r\n\r\n", "INFO", "errorstats"),
		cmd("=4\r\ntxt:\r\n", "CLIENT", "LIST", "TYPE", "master"),
		cmd("-ERR unknown command 'foo', with args beginning with: \r\n", "foo"),
		cmd(helloReply(2, 1), "HELLO", "2"),
		cmd(nil2, "GET", "k2"),
	})
	c.send(encode("HELLO", "3"))
	c.read()
	c.send(encode("FLUSHALL"))
	c.read()
	if got := c.do("RANDOMKEY"); got != nil3 {
		t.Errorf("RANDOMKEY on an empty store = %q", got)
	}
}

func TestRawQuitAndSecurity(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	// Commands after QUIT in the same batch are not run.
	c.send(encode("SET", "q", "1") + encode("QUIT") + encode("SET", "q", "2"))
	if got := c.read(); got != ok {
		t.Fatalf("SET = %q", got)
	}
	if got := c.read(); got != ok {
		t.Fatalf("QUIT = %q", got)
	}
	c.expectClosed()
	c2 := dialRaw(t, ts.addr)
	if got := c2.do("GET", "q"); got != bulk("1") {
		t.Errorf("GET after QUIT batch = %q", got)
	}
	// An HTTP request: closed without a reply, as Redis does, even to the
	// "GET / HTTP/1.1" line before "Host:".
	for _, req := range []string{"POST / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"} {
		c := dialRaw(t, ts.addr)
		c.send(req)
		c.expectClosed()
	}
}

func TestRawTTLWithFakeClock(t *testing.T) {
	clk := newFakeClock()
	ts := startServer(t, withClock(clk))
	c := dialRaw(t, ts.addr)
	now := clk.Now().UnixMilli()
	runSteps(t, c, []step{
		cmd(ok, "SET", "k", "v", "EX", "10"),
		cmd(":10\r\n", "TTL", "k"),
		cmd(":10000\r\n", "PTTL", "k"),
		cmd(":"+formatInt(int((now+10000+500)/1000))+"\r\n", "EXPIRETIME", "k"),
		cmd(":"+formatInt(int(now+10000))+"\r\n", "PEXPIRETIME", "k"),
	})
	clk.Advance(9400 * time.Millisecond)
	runSteps(t, c, []step{
		cmd(":1\r\n", "TTL", "k"), // 600 ms, rounded
		cmd(":600\r\n", "PTTL", "k"),
		cmd(ok, "SET", "k", "v2", "KEEPTTL"),
		cmd(":600\r\n", "PTTL", "k"),
		cmd(ok, "SET", "k", "v3"),
		cmd(":-1\r\n", "PTTL", "k"),
		cmd(":1\r\n", "PEXPIRE", "k", "500"),
		cmd(ok, "SET", "other", "x", "PXAT", formatInt(int(clk.Now().UnixMilli()+2000))),
		cmd(bulk("1"), "INCRBYFLOAT", "cnt", "1"),
		cmd(":1\r\n", "EXPIRE", "cnt", "1"),
		cmd(bulk("2"), "INCRBYFLOAT", "cnt", "1"),
		cmd(":1000\r\n", "PTTL", "cnt"), // read-modify-writes keep the expiry
	})
	clk.Advance(500 * time.Millisecond)
	runSteps(t, c, []step{
		cmd(nil2, "GET", "k"),
		cmd(":-2\r\n", "TTL", "k"),
		cmd(":0\r\n", "EXISTS", "k"),
		cmd(":1500\r\n", "PTTL", "other"),
		cmd(bulk("x"), "GETEX", "other", "PX", "100"),
		cmd(":100\r\n", "PTTL", "other"),
		cmd(bulk("x"), "GETEX", "other", "PXAT", formatInt(int(clk.Now().UnixMilli()))),
		cmd(":-2\r\n", "PTTL", "other"),
		cmd(":1\r\n", "EXISTS", "cnt"),
		cmd(ok, "SETEX", "se", "2", "v"),
		cmd(ok, "PSETEX", "pse", "1500", "v"),
	})
	if got := c.do("DPUT", "dk", "", "v", "PX", "300"); !strings.HasPrefix(got, "$") {
		t.Fatalf("DPUT = %q", got)
	}
	clk.Advance(1600 * time.Millisecond)
	runSteps(t, c, []step{
		cmd(":1\r\n", "EXISTS", "se"),
		cmd(":0\r\n", "EXISTS", "pse"),
		cmd(":0\r\n", "EXISTS", "dk"),
		cmd(":0\r\n", "EXISTS", "cnt"),
	})
}

package resp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func newGoRedis(t *testing.T, addr string, proto int, opt func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: addr, Protocol: proto, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, PoolSize: 4}
	if opt != nil {
		opt(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// check fails the test when err does not match want: "" for no error, or the
// exact error text go-redis reports.
func check(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case want != "" && err == nil:
		t.Errorf("%s: no error, want %q", what, want)
	case want != "" && err.Error() != want:
		t.Errorf("%s: error %q, want %q", what, err, want)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestGoRedis(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			clk := newFakeClock()
			ts := startServer(t, withClock(clk))
			rdb := newGoRedis(t, ts.addr, proto, nil)
			testGoRedisCommands(t, rdb, clk)
		})
	}
}

func testGoRedisCommands(t *testing.T, rdb *redis.Client, clk *fakeClock) {
	ctx := context.Background()
	const (
		syntax = "ERR syntax error"
		notInt = "ERR value is not an integer or out of range"
	)

	// Connection.
	eq(t, "PING", rdb.Ping(ctx).Val(), "PONG")
	eq(t, "ECHO", rdb.Echo(ctx, "hi").Val(), "hi")
	check(t, "SELECT 0", rdb.Do(ctx, "SELECT", 0).Err(), "")
	check(t, "SELECT 1", rdb.Do(ctx, "SELECT", 1).Err(), "ERR DB index is out of range")
	check(t, "unknown", rdb.Do(ctx, "LPUSH", "l", "a").Err(), "ERR unknown command 'LPUSH', with args beginning with: 'l' 'a' ")
	check(t, "arity", rdb.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")
	id, err := rdb.ClientID(ctx).Result()
	check(t, "CLIENT ID", err, "")
	if id <= 0 {
		t.Errorf("CLIENT ID = %d", id)
	}
	check(t, "CLIENT SETNAME", rdb.Do(ctx, "CLIENT", "SETNAME", "tester").Err(), "")
	eq(t, "CLIENT GETNAME", rdb.Do(ctx, "CLIENT", "GETNAME").String(), "CLIENT GETNAME: tester")
	info, err := rdb.ClientInfo(ctx).Result()
	check(t, "CLIENT INFO", err, "")
	if info != nil {
		eq(t, "CLIENT INFO name", info.Name, "tester")
		eq(t, "CLIENT INFO lib-name", strings.HasPrefix(info.LibName, "go-redis"), true)
		eq(t, "CLIENT INFO id", info.ID, id)
	}
	list, err := rdb.ClientList(ctx).Result()
	check(t, "CLIENT LIST", err, "")
	eq(t, "CLIENT LIST has us", strings.Contains(list, fmt.Sprintf("id=%d ", id)), true)
	tm, err := rdb.Time(ctx).Result()
	check(t, "TIME", err, "")
	eq(t, "TIME", tm.UnixMicro(), clk.Now().UnixMicro())

	// Strings.
	_, err = rdb.Get(ctx, "k").Result()
	eq(t, "GET missing is Nil", errors.Is(err, redis.Nil), true)
	check(t, "SET", rdb.Set(ctx, "k", "v", 0).Err(), "")
	eq(t, "GET", rdb.Get(ctx, "k").Val(), "v")
	eq(t, "SETNX existing", rdb.SetNX(ctx, "k", "x", 0).Val(), false)
	eq(t, "SETNX new", rdb.SetNX(ctx, "k2", "x", time.Minute).Val(), true)
	eq(t, "TTL after SETNX with TTL", rdb.TTL(ctx, "k2").Val(), time.Minute)
	eq(t, "SETXX", rdb.SetXX(ctx, "k", "v2", 0).Val(), true)
	eq(t, "SETXX missing", rdb.SetXX(ctx, "nokey", "v", 0).Val(), false)
	old, err := rdb.SetArgs(ctx, "k", "v3", redis.SetArgs{Get: true, TTL: 10 * time.Second}).Result()
	check(t, "SET GET EX", err, "")
	eq(t, "SET GET old", old, "v2")
	eq(t, "TTL", rdb.TTL(ctx, "k").Val(), 10*time.Second)
	check(t, "SET KEEPTTL", rdb.SetArgs(ctx, "k", "v4", redis.SetArgs{KeepTTL: true}).Err(), "")
	eq(t, "TTL kept", rdb.TTL(ctx, "k").Val(), 10*time.Second)
	check(t, "SET NX XX", rdb.Do(ctx, "SET", "k", "v", "NX", "XX").Err(), syntax)
	check(t, "SET EX 0", rdb.Do(ctx, "SET", "k", "v", "EX", 0).Err(), "ERR invalid expire time in 'set' command")
	check(t, "SET EX x", rdb.Do(ctx, "SET", "k", "v", "EX", "x").Err(), notInt)
	check(t, "SET PXAT", rdb.SetArgs(ctx, "at", "v", redis.SetArgs{ExpireAt: clk.Now().Add(1500 * time.Millisecond)}).Err(), "")
	eq(t, "PTTL after PXAT", rdb.PTTL(ctx, "at").Val(), 1500*time.Millisecond)
	check(t, "SETEX", rdb.SetEx(ctx, "se", "v", time.Hour).Err(), "")
	check(t, "SETEX 0", rdb.Do(ctx, "SETEX", "se", 0, "v").Err(), "ERR invalid expire time in 'setex' command")
	check(t, "PSETEX", rdb.Do(ctx, "PSETEX", "pse", 1500, "v").Err(), "")
	eq(t, "PTTL", rdb.PTTL(ctx, "pse").Val(), 1500*time.Millisecond)
	eq(t, "GETSET", rdb.GetSet(ctx, "k", "v5").Val(), "v4")
	eq(t, "GETDEL", rdb.GetDel(ctx, "k").Val(), "v5")
	eq(t, "GETDEL missing", errors.Is(rdb.GetDel(ctx, "k").Err(), redis.Nil), true)
	rdb.Set(ctx, "gx", "v", 0)
	eq(t, "GETEX EX", rdb.GetEx(ctx, "gx", 5*time.Second).Val(), "v")
	eq(t, "TTL after GETEX", rdb.TTL(ctx, "gx").Val(), 5*time.Second)
	eq(t, "GETEX PERSIST", rdb.GetEx(ctx, "gx", 0).Val(), "v")
	eq(t, "TTL after PERSIST", rdb.TTL(ctx, "gx").Val(), time.Duration(-1))
	check(t, "GETEX bad", rdb.Do(ctx, "GETEX", "gx", "PERSIST", "EX", 1).Err(), syntax)
	check(t, "MSET", rdb.MSet(ctx, "a", "1", "b", "2").Err(), "")
	eq(t, "MGET", fmt.Sprint(rdb.MGet(ctx, "a", "nokey", "b").Val()), "[1 <nil> 2]")
	eq(t, "MSETNX existing", rdb.MSetNX(ctx, "a", "x", "c", "3").Val(), false)
	eq(t, "MSETNX new", rdb.MSetNX(ctx, "c", "3", "d", "4").Val(), true)
	check(t, "MSET odd", rdb.Do(ctx, "MSET", "a").Err(), "ERR wrong number of arguments for 'mset' command")
	eq(t, "INCR", rdb.Incr(ctx, "a").Val(), int64(2))
	eq(t, "DECR", rdb.Decr(ctx, "a").Val(), int64(1))
	eq(t, "INCRBY", rdb.IncrBy(ctx, "a", 41).Val(), int64(42))
	eq(t, "DECRBY", rdb.DecrBy(ctx, "a", 2).Val(), int64(40))
	check(t, "INCR non-int", rdb.Incr(ctx, "gx").Err(), notInt)
	check(t, "INCRBY non-int arg", rdb.Do(ctx, "INCRBY", "a", "x").Err(), notInt)
	rdb.Set(ctx, "big", "9223372036854775807", 0)
	check(t, "INCR overflow", rdb.Incr(ctx, "big").Err(), "ERR increment or decrement would overflow")
	eq(t, "INCRBYFLOAT", rdb.IncrByFloat(ctx, "fl", 2.5).Val(), 2.5)
	eq(t, "INCRBYFLOAT again", rdb.IncrByFloat(ctx, "fl", -0.5).Val(), 2.0)
	check(t, "INCRBYFLOAT bad", rdb.Do(ctx, "INCRBYFLOAT", "fl", "x").Err(), "ERR value is not a valid float")
	check(t, "INCRBYFLOAT non-float", rdb.IncrByFloat(ctx, "gx", 1).Err(), "ERR value is not a valid float")
	eq(t, "APPEND", rdb.Append(ctx, "ap", "foo").Val(), int64(3))
	eq(t, "APPEND", rdb.Append(ctx, "ap", "bar").Val(), int64(6))
	eq(t, "STRLEN", rdb.StrLen(ctx, "ap").Val(), int64(6))
	eq(t, "GETRANGE", rdb.GetRange(ctx, "ap", 1, -2).Val(), "ooba")
	eq(t, "GETRANGE missing", rdb.GetRange(ctx, "nokey", 0, -1).Val(), "")
	eq(t, "SETRANGE", rdb.SetRange(ctx, "ap", 3, "BAR").Val(), int64(6))
	eq(t, "GET after SETRANGE", rdb.Get(ctx, "ap").Val(), "fooBAR")
	check(t, "SETRANGE negative", rdb.SetRange(ctx, "ap", -1, "x").Err(), "ERR offset is out of range")
	check(t, "SET too big", rdb.Set(ctx, "huge", strings.Repeat("x", 2<<20), 0).Err(), "ERR string exceeds maximum allowed size (proto-max-bulk-len)")

	// Keyspace.
	eq(t, "EXISTS", rdb.Exists(ctx, "a", "a", "nokey").Val(), int64(2))
	eq(t, "TOUCH", rdb.Touch(ctx, "a", "b").Val(), int64(2))
	eq(t, "DEL", rdb.Del(ctx, "a", "nokey").Val(), int64(1))
	eq(t, "UNLINK", rdb.Unlink(ctx, "b").Val(), int64(1))
	eq(t, "TYPE", rdb.Type(ctx, "c").Val(), "string")
	eq(t, "TYPE none", rdb.Type(ctx, "a").Val(), "none")
	eq(t, "EXPIRE", rdb.Expire(ctx, "c", time.Minute).Val(), true)
	eq(t, "EXPIRE missing", rdb.Expire(ctx, "a", time.Minute).Val(), false)
	eq(t, "EXPIRE NX", rdb.ExpireNX(ctx, "c", time.Hour).Val(), false)
	eq(t, "EXPIRE XX", rdb.ExpireXX(ctx, "c", 2*time.Minute).Val(), true)
	eq(t, "EXPIRE GT", rdb.ExpireGT(ctx, "c", time.Minute).Val(), false)
	eq(t, "EXPIRE LT", rdb.ExpireLT(ctx, "c", time.Minute).Val(), true)
	eq(t, "TTL", rdb.TTL(ctx, "c").Val(), time.Minute)
	eq(t, "PEXPIRE", rdb.PExpire(ctx, "c", 1500*time.Millisecond).Val(), true)
	eq(t, "PTTL", rdb.PTTL(ctx, "c").Val(), 1500*time.Millisecond)
	at := clk.Now().Add(time.Hour).Truncate(time.Second)
	eq(t, "EXPIREAT", rdb.ExpireAt(ctx, "c", at).Val(), true)
	eq(t, "EXPIRETIME", rdb.ExpireTime(ctx, "c").Val(), time.Duration(at.Unix())*time.Second)
	eq(t, "PEXPIREAT", rdb.PExpireAt(ctx, "c", at.Add(time.Millisecond)).Val(), true)
	eq(t, "PEXPIRETIME", rdb.PExpireTime(ctx, "c").Val(), time.Duration(at.UnixMilli()+1)*time.Millisecond)
	eq(t, "PERSIST", rdb.Persist(ctx, "c").Val(), true)
	eq(t, "PERSIST again", rdb.Persist(ctx, "c").Val(), false)
	eq(t, "TTL none", rdb.TTL(ctx, "c").Val(), time.Duration(-1))
	eq(t, "TTL missing", rdb.TTL(ctx, "a").Val(), time.Duration(-2))
	check(t, "EXPIRE NX XX", rdb.Do(ctx, "EXPIRE", "c", 10, "NX", "XX").Err(), "ERR NX and XX, GT or LT options at the same time are not compatible")
	check(t, "EXPIRE GT LT", rdb.Do(ctx, "EXPIRE", "c", 10, "GT", "LT").Err(), "ERR GT and LT options at the same time are not compatible")
	check(t, "EXPIRE overflow", rdb.Do(ctx, "EXPIRE", "c", "9223372036854775807").Err(), "ERR invalid expire time in 'expire' command")
	clk.Advance(2 * time.Second)
	eq(t, "expired PXAT key", errors.Is(rdb.Get(ctx, "at").Err(), redis.Nil), true)
	eq(t, "expired PSETEX key", rdb.Exists(ctx, "pse").Val(), int64(0))

	n, err := rdb.DBSize(ctx).Result()
	check(t, "DBSIZE", err, "")
	keys, err := rdb.Keys(ctx, "*").Result()
	check(t, "KEYS", err, "")
	// DBSIZE counts expired keys not reaped yet, as Redis's does.
	eq(t, "KEYS vs DBSIZE", int64(len(keys)) <= n, true)
	slices.Sort(keys)
	eq(t, "KEYS", strings.Join(keys, ","), "ap,big,c,d,fl,gx,k2,se")
	sk, cursor, err := rdb.ScanType(ctx, 0, "*", 100, "string").Result()
	check(t, "SCAN", err, "")
	eq(t, "SCAN done", cursor, uint64(0))
	eq(t, "SCAN keys", len(sk), len(keys))
	check(t, "SCAN bad cursor", rdb.Do(ctx, "SCAN", "abc").Err(), "ERR invalid cursor")
	rk, err := rdb.RandomKey(ctx).Result()
	check(t, "RANDOMKEY", err, "")
	eq(t, "RANDOMKEY is a key", slices.Contains(keys, rk), true)

	// Dynamo commands.
	v, err := rdb.Do(ctx, "DGET", "dyn").Slice()
	check(t, "DGET", err, "")
	eq(t, "DGET missing", fmt.Sprint(v), "[ []]")
	c1, err := rdb.Do(ctx, "DPUT", "dyn", "", "one").Text()
	check(t, "DPUT", err, "")
	if c1 == "" {
		t.Error("DPUT returned an empty context")
	}
	_, err = rdb.Do(ctx, "DPUT", "dyn", "", "two").Text() // concurrent: a sibling
	check(t, "DPUT sibling", err, "")
	v, _ = rdb.Do(ctx, "DGET", "dyn").Slice()
	if len(v) != 2 {
		t.Fatalf("DGET = %v", v)
	}
	sibs := fmt.Sprint(v[1])
	eq(t, "DGET siblings", sibs == "[one two]" || sibs == "[two one]", true)
	ctxt := v[0].(string)
	c3, err := rdb.Do(ctx, "DPUT", "dyn", ctxt, "merged", "EX", 100).Text()
	check(t, "DPUT merged", err, "")
	v, _ = rdb.Do(ctx, "DGET", "dyn").Slice()
	eq(t, "DGET after merge", fmt.Sprint(v[1]), "[merged]")
	eq(t, "TTL from DPUT", rdb.TTL(ctx, "dyn").Val(), 100*time.Second)
	eq(t, "GET sees DPUT", rdb.Get(ctx, "dyn").Val(), "merged")
	_, err = rdb.Do(ctx, "DDEL", "dyn", c3).Text()
	check(t, "DDEL", err, "")
	eq(t, "after DDEL", rdb.Exists(ctx, "dyn").Val(), int64(0))
	check(t, "DPUT bad context", rdb.Do(ctx, "DPUT", "dyn", "garbage!", "v").Err(), "ERR invalid causal context")

	// Server.
	infoText, err := rdb.Info(ctx).Result()
	check(t, "INFO", err, "")
	for _, want := range []string{"# Server\r\nredis_version:7.2.0\r\n", "dynakv_version:0.1.0-test\r\n", "# Clients\r\nconnected_clients:", "# Keyspace\r\ndb0:keys="} {
		if !strings.Contains(infoText, want) {
			t.Errorf("INFO lacks %q", want)
		}
	}
	cmds, err := rdb.Command(ctx).Result()
	check(t, "COMMAND", err, "")
	if g := cmds["get"]; g == nil || g.Arity != 2 || !g.ReadOnly || g.FirstKeyPos != 1 {
		t.Errorf("COMMAND get = %+v", g)
	}
	if cmds["dput"] == nil || cmds["config"] == nil {
		t.Errorf("COMMAND lacks dput or config")
	}
	cnt, _ := rdb.Do(ctx, "COMMAND", "COUNT").Int()
	eq(t, "COMMAND COUNT", cnt, len(cmds))
	names, err := rdb.CommandList(ctx, nil).Result()
	check(t, "COMMAND LIST", err, "")
	eq(t, "COMMAND LIST", len(names), cnt)
	docs, err := rdb.Do(ctx, "COMMAND", "DOCS").Result()
	check(t, "COMMAND DOCS", err, "")
	if docs == nil {
		t.Error("COMMAND DOCS is nil")
	}
	gk, err := rdb.CommandGetKeys(ctx, "MSET", "a", "1", "b", "2").Result()
	check(t, "COMMAND GETKEYS", err, "")
	eq(t, "COMMAND GETKEYS", strings.Join(gk, ","), "a,b")
	cfg, err := rdb.ConfigGet(ctx, "*max*").Result()
	check(t, "CONFIG GET", err, "")
	eq(t, "CONFIG GET maxclients", cfg["maxclients"], "10000")
	eq(t, "CONFIG GET maxmemory", cfg["maxmemory"], "0")
	check(t, "CONFIG SET", rdb.ConfigSet(ctx, "maxclients", "500").Err(), "")
	eq(t, "CONFIG GET after SET", rdb.ConfigGet(ctx, "maxclients").Val()["maxclients"], "500")
	check(t, "CONFIG SET unknown", rdb.ConfigSet(ctx, "nosuch", "1").Err(), "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'")
	check(t, "CONFIG RESETSTAT", rdb.ConfigResetStat(ctx).Err(), "")
	check(t, "FLUSHDB", rdb.FlushDB(ctx).Err(), "")
	check(t, "FLUSHALL", rdb.FlushAll(ctx).Err(), "")
	eq(t, "DBSIZE after FLUSHALL", rdb.DBSize(ctx).Val(), int64(0))
	eq(t, "RANDOMKEY empty", errors.Is(rdb.RandomKey(ctx).Err(), redis.Nil), true)
}

// TestGoRedisPipeline sends 10,000 commands in one pipeline.
func TestGoRedisPipeline(t *testing.T) {
	ts := startServer(t)
	for _, proto := range []int{2, 3} {
		rdb := newGoRedis(t, ts.addr, proto, nil)
		ctx := context.Background()
		key := fmt.Sprintf("counter%d", proto)
		pipe := rdb.Pipeline()
		for i := 0; i < 10000; i++ {
			pipe.Incr(ctx, key)
		}
		cmds, err := pipe.Exec(ctx)
		check(t, "pipeline", err, "")
		if len(cmds) != 10000 {
			t.Fatalf("%d replies", len(cmds))
		}
		for i, c := range cmds {
			if v := c.(*redis.IntCmd).Val(); v != int64(i+1) {
				t.Fatalf("reply %d = %d", i, v)
			}
		}
	}
}

// TestRawPipeline writes 10,000 commands at once and reads the replies.
func TestRawPipeline(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	var b strings.Builder
	for i := 0; i < 10000; i++ {
		b.WriteString(encode("SET", fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)))
		b.WriteString(encode("GET", fmt.Sprintf("k%d", i)))
	}
	go c.send(b.String()) // the write may not fit the socket buffers before we read
	for i := 0; i < 10000; i++ {
		if got := c.read(); got != ok {
			t.Fatalf("SET %d = %q", i, got)
		}
		if got, want := c.read(), bulk(fmt.Sprintf("v%d", i)); got != want {
			t.Fatalf("GET %d = %q, want %q", i, got, want)
		}
	}
	if got := c.do("DBSIZE"); got != ":10000\r\n" {
		t.Errorf("DBSIZE = %q", got)
	}
}

// TestGoRedisAuth covers AUTH and HELLO AUTH with both protocols.
func TestGoRedisAuth(t *testing.T) {
	ts := startServer(t, withPass("s3cret"))
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		// Wrong password: HELLO fails with WRONGPASS, and go-redis reports it.
		bad := newGoRedis(t, ts.addr, proto, func(o *redis.Options) { o.Password = "nope"; o.MaxRetries = -1 })
		check(t, "wrong password", bad.Ping(ctx).Err(), "WRONGPASS invalid username-password pair or user is disabled.")
		// No password.
		none := newGoRedis(t, ts.addr, proto, func(o *redis.Options) { o.MaxRetries = -1 })
		check(t, "no password", none.Ping(ctx).Err(), "NOAUTH Authentication required.")
		// Right password, with and without the user name.
		for _, user := range []string{"", "default"} {
			good := newGoRedis(t, ts.addr, proto, func(o *redis.Options) { o.Password = "s3cret"; o.Username = user; o.ClientName = "authed" })
			check(t, "right password", good.Set(ctx, "k", "v", 0).Err(), "")
			eq(t, "GET", good.Get(ctx, "k").Val(), "v")
			eq(t, "CLIENT GETNAME", good.ClientGetName(ctx).Val(), "authed")
		}
	}
}

// TestSCANAll checks that SCAN visits every key at least once.
func TestSCANAll(t *testing.T) {
	ts := startServer(t)
	rdb := newGoRedis(t, ts.addr, 3, nil)
	ctx := context.Background()
	const n = 3000
	want := map[string]bool{}
	pipe := rdb.Pipeline()
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("key:%05d", i)
		want[k] = true
		pipe.Set(ctx, k, i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for _, count := range []int64{1, 7, 10, 100, 5000} {
		seen := map[string]bool{}
		var cursor uint64
		calls := 0
		for {
			keys, next, err := rdb.Scan(ctx, cursor, "", count).Result()
			if err != nil {
				t.Fatal(err)
			}
			calls++
			for _, k := range keys {
				seen[k] = true
			}
			if next == 0 {
				break
			}
			cursor = next
			if calls > 2*n {
				t.Fatal("SCAN does not end")
			}
		}
		if len(seen) != n {
			t.Errorf("COUNT %d: saw %d of %d keys in %d calls", count, len(seen), n, calls)
		}
	}
	// MATCH filters but still iterates.
	seen := 0
	iter := rdb.Scan(ctx, 0, "key:000*", 50).Iterator()
	for iter.Next(ctx) {
		seen++
	}
	check(t, "SCAN MATCH", iter.Err(), "")
	eq(t, "SCAN MATCH keys", seen, 100)
}

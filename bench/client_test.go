package bench

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/internal/testnode"
	mcserver "github.com/dynakv/dynakv/memcache"
	"github.com/dynakv/dynakv/resp"
)

// serve starts an in-process dynakv front end (RESP or memcached) over an in-memory
// node and returns its address; it is closed when the test ends.
func serve(t *testing.T, protocol string) string {
	t.Helper()
	px := testnode.Proxy(t, testnode.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var srv interface {
		Serve(net.Listener) error
		Close() error
	}
	if protocol == ProtoRESP {
		srv = resp.New(resp.Config{}, px)
	} else {
		srv = mcserver.New(mcserver.Config{}, px)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

func smallConfig(protocol, addr string) Config {
	cfg := DefaultConfig()
	cfg.Name, cfg.Target, cfg.Protocol = "test", addr, protocol
	cfg.Conns, cfg.Pipeline, cfg.Requests = 4, 8, 2_000
	cfg.Workload.Keys, cfg.Workload.ValueSize = 100, 37
	cfg.MaxDuration = 20 * time.Second
	return cfg
}

// TestRunAgainstDynakv runs both clients against in-process servers: the prefill
// stores every key (checked with go-redis and gomemcache), and a run completes
// exactly its request count, all of them found, without errors.
func TestRunAgainstDynakv(t *testing.T) {
	for _, proto := range []string{ProtoRESP, ProtoMemcache} {
		t.Run(proto, func(t *testing.T) {
			addr := serve(t, proto)
			cfg := smallConfig(proto, addr)
			ctx := context.Background()
			if err := Prefill(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			want := string(makeValue(cfg.Workload.ValueSize, cfg.Seed))
			for _, k := range []int{0, 57, 99} {
				key := string(cfg.Workload.AppendKey(nil, k))
				if got := getWithClient(t, proto, addr, key); got != want {
					t.Errorf("after prefill %s = %q; want %q", key, got, want)
				}
			}
			res, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for _, s := range res.Ops {
				total += s.Count
				if s.Errors != 0 || s.Count == 0 || s.OpsPerSec <= 0 || s.P50 <= 0 || s.Max < s.P999 || s.P999 < s.P50 {
					t.Errorf("%s: %+v", s.Op, s)
				}
			}
			if total != cfg.Requests || len(res.Ops) != 2 {
				t.Errorf("%d requests in %d ops; want %d in GET and SET", total, len(res.Ops), cfg.Requests)
			}
		})
	}
}

func getWithClient(t *testing.T, proto, addr, key string) string {
	t.Helper()
	if proto == ProtoRESP {
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		v, err := c.Get(context.Background(), key).Result()
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
		return v
	}
	it, err := memcache.New(addr).Get(key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return string(it.Value)
}

// TestRunDuration ends a run bounded only by time, leaving no goroutine behind; a
// cancelled context ends one too.
func TestRunDuration(t *testing.T) {
	testnode.NoLeaks(t, func(t *testing.T) {
		cfg := smallConfig(ProtoRESP, serve(t, ProtoRESP))
		cfg.Requests, cfg.Duration = 0, 300*time.Millisecond
		start := time.Now()
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("a 300ms run took %v", took)
		}
		if res.OpsPerSec <= 0 {
			t.Errorf("no requests: %+v", res)
		}

		cfg.Duration = 0
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := Run(ctx, cfg); err != nil || time.Since(start) > 10*time.Second {
			t.Errorf("cancelled run: %v after %v", err, time.Since(start))
		}
	})
}

// TestRunServerGone ends with an error, not a hang, when the server closes connections.
func TestRunServerGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cfg := smallConfig(ProtoRESP, ln.Addr().String())
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Fatal("a run against a server that hangs up succeeded")
	}
}

func reader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func TestRESPReplies(t *testing.T) {
	for _, tc := range []struct {
		in    string
		reply Reply
	}{
		{"+OK\r\n", ReplyOK},
		{"$-1\r\n", ReplyNil},
		{"_\r\n", ReplyNil},
		{"*-1\r\n", ReplyNil},
		{"$0\r\n\r\n", ReplyOK}, // an empty value is a hit
		{"$5\r\nhello\r\n", ReplyOK},
		{":12\r\n", ReplyOK},
		{"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", ReplyOK},
		{"*1\r\n$-1\r\n", ReplyOK}, // only a null at the top is a miss
		{"%1\r\n+k\r\n+v\r\n", ReplyOK},
		{"-ERR no\r\n", ReplyError},
		{"!3\r\nbad\r\n", ReplyError},
	} {
		r := reader(tc.in + "+NEXT\r\n")
		reply, err := respCodec{}.readReply(r, OpGet)
		if err != nil || reply != tc.reply {
			t.Errorf("%q: reply %v, %v; want %v", tc.in, reply, err, tc.reply)
			continue
		}
		if line, _ := readLine(r); string(line) != "+NEXT" {
			t.Errorf("%q: the reply was not read exactly (next %q)", tc.in, line)
		}
	}
	for _, bad := range []string{"", "?\r\n", "$5\r\nhi\r\n", "$x\r\n", "+OK\n", "$3\r\nabcXY", "*1\r\n", "$-5\r\n",
		strings.Repeat("*1\r\n", 20) + ":1\r\n"} {
		if _, err := (respCodec{}).readReply(reader(bad), OpGet); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestMemcacheReplies(t *testing.T) {
	for _, tc := range []struct {
		in    string
		op    Op
		reply Reply
	}{
		{"STORED\r\n", OpSet, ReplyOK},
		{"END\r\n", OpGet, ReplyNil},
		{"VALUE k 0 5\r\nhello\r\nEND\r\n", OpGet, ReplyOK},
		{"VALUE k 0 0\r\n\r\nEND\r\n", OpGet, ReplyOK}, // an empty value is a hit
		{"VALUE k 0 2 99\r\nhi\r\nVALUE j 1 0\r\n\r\nEND\r\n", OpGet, ReplyOK},
		{"SERVER_ERROR out of memory\r\n", OpSet, ReplyError},
		{"CLIENT_ERROR bad\r\n", OpGet, ReplyError},
		{"ERROR\r\n", OpGet, ReplyError},
	} {
		r := reader(tc.in + "NEXT\r\n")
		reply, err := mcCodec{}.readReply(r, tc.op)
		if err != nil || reply != tc.reply {
			t.Errorf("%q: reply %v, %v; want %v", tc.in, reply, err, tc.reply)
			continue
		}
		if line, _ := readLine(r); string(line) != "NEXT" {
			t.Errorf("%q: the reply was not read exactly (next %q)", tc.in, line)
		}
	}
	for _, tc := range []struct {
		in string
		op Op
	}{{"NOT_STORED\r\n", OpSet}, {"VALUE k 0\r\n", OpGet}, {"VALUE k 0 9\r\nshort\r\nEND\r\n", OpGet}, {"STORED\r\n", OpGet}, {"", OpGet}} {
		_, err := mcCodec{}.readReply(reader(tc.in), tc.op)
		if err == nil {
			t.Errorf("%q parsed", tc.in)
		}
		if tc.in != "" && !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v; want ErrProtocol", tc.in, err)
		}
	}
}

func TestEncode(t *testing.T) {
	if got := string(respCodec{}.appendSet(nil, []byte("k"), []byte("val"))); got != "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nval\r\n" {
		t.Errorf("RESP SET %q", got)
	}
	if got := string(respCodec{}.appendGet(nil, []byte("k"))); got != "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" {
		t.Errorf("RESP GET %q", got)
	}
	if got := string(mcCodec{}.appendSet(nil, []byte("k"), []byte("val"))); got != "set k 0 0 3\r\nval\r\n" {
		t.Errorf("mc set %q", got)
	}
	if got := string(mcCodec{}.appendGet(nil, []byte("k"))); got != "get k\r\n" {
		t.Errorf("mc get %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.EnsureDefaults().Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("no target: %v", err)
	}
	cfg.Target, cfg.Protocol = "x:1", "http"
	if err := cfg.EnsureDefaults().Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("bad protocol: %v", err)
	}
}

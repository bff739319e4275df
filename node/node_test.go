package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

func startTestNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	cfg.Name = "t1"
	cfg.Storage = StorageMemory
	cfg.RESPAddr, cfg.MemcacheAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.GossipAddr, cfg.ClusterAddr = "127.0.0.1:0", "127.0.0.1:0"
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// TestNodeServesAndStops starts a node, uses both fronts' plumbing through RESP,
// checks /healthz, /metrics and INFO cluster, and checks Close leaves no goroutine.
func TestNodeServesAndStops(t *testing.T) {
	defer leaktest.AfterTest(t)()
	n := startTestNode(t, Config{})
	defer n.Close()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: n.RESPAddr()})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Cluster", "cluster_members:1", "cluster_members_alive:1", "n:1", "r:1", "w:1"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO cluster lacks %q:\n%s", want, info)
		}
	}
	if got := httpGet(t, "http://"+n.HTTPAddr()+"/healthz"); got != "ok\n" {
		t.Fatalf("/healthz = %q", got)
	}
	metrics := httpGet(t, "http://"+n.HTTPAddr()+"/metrics")
	for _, want := range []string{
		`dynakv_commands_total{command="set",protocol="resp"} 1`,
		`dynakv_command_duration_seconds_bucket{command="get",protocol="resp"`,
		`dynakv_connections{protocol="resp"} 1`,
		"dynakv_keys 1",
		"dynakv_siblings_per_read_count 1",
		"dynakv_quorum_n 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	c.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestTwoPhase: a node New built serves nothing yet: a forwarded op is sent back
// (ErrRunLocally) and a replica request refused, clients are not answered; Start
// starts it once; Close releases a node that was never started, and every
// goroutine and port with it.
func TestTwoPhase(t *testing.T) {
	defer leaktest.AfterTest(t)()
	cfg := Config{Name: "t1", Storage: StorageMemory, RESPAddr: "127.0.0.1:0", MemcacheAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0"}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	op := proxy.Op{Kind: proxy.OpGet, Key: []byte("k")}
	b, err := n.serveCluster(ctx, "peer", uint8(peer.MsgForward), op.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, opErr, err := proxy.DecodeResult(b); err != nil || !errors.Is(opErr, proxy.ErrRunLocally) {
		t.Fatalf("forwarded op before Start: %v, %v; want ErrRunLocally", opErr, err)
	}
	if _, err := n.serveCluster(ctx, "peer", 1, nil); !errors.Is(err, errStarting) {
		t.Fatalf("replica request before Start: %v, want errStarting", err)
	}
	addrs := []string{n.RESPAddr(), n.MemcacheAddr(), n.HTTPAddr(), n.ClusterAddr()}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", a)
		}
	}
	if err := n.Start(); err == nil {
		t.Fatal("Start after Close succeeded")
	}

	n, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	c := redis.NewClient(&redis.Options{Addr: n.RESPAddr()})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"bad storage", func(c *Config) { c.Storage = "tape" }, "--storage"},
		{"bad name", func(c *Config) { c.Name = "a b" }, "--name"},
		{"zone", func(c *Config) { c.Zone = "eu-central-1a" }, ""},
		{"zone with a space", func(c *Config) { c.Zone = "dc 1" }, "--zone"},
		{"zone too long", func(c *Config) { c.Zone = strings.Repeat("z", 65) }, "--zone"},
		{"r above n", func(c *Config) { c.R = 4 }, "--r"},
		{"w zero", func(c *Config) { c.W = -1 }, "--w"},
		{"partitions", func(c *Config) { c.Partitions = 1000 }, "--partitions"},
		{"bad addr", func(c *Config) { c.RESPAddr = "nope" }, "--resp"},
		{"join", func(c *Config) { c.Join = []string{"127.0.0.1:7946", "nope"} }, "--join"},
		{"request timeout", func(c *Config) { c.RequestTimeout = -1 }, "--request-timeout"},
		{"replica timeout above the request's", func(c *Config) { c.ReplicaTimeout = 2 * time.Second }, "--replica-timeout"},
		{"replica timeout", func(c *Config) { c.ReplicaTimeout = 100 * time.Millisecond }, ""},
		{"max value", func(c *Config) { c.MaxValueBytes = -1 }, "--max-value-bytes"},
		{"fsync", func(c *Config) { c.Fsync = "sometimes" }, "--fsync"},
		{"fsync interval", func(c *Config) { c.FsyncInterval = -time.Second }, "--fsync-interval"},
		{"fsync always", func(c *Config) { c.Fsync = storage.SyncAlways }, ""},
		{"http tls without a certificate", func(c *Config) { c.HTTPTLS = true }, "--http-tls"},
		{"tls key without certificate", func(c *Config) { c.TLSKeyFile = "k.pem" }, "--tls-cert"},
		{"maxmemory", func(c *Config) { c.MaxMemory = 64 << 20 }, ""},
		{"negative maxmemory", func(c *Config) { c.MaxMemory = -1 }, "--maxmemory must not be negative"},
		{"noeviction", func(c *Config) { c.MaxMemoryPolicy = "noeviction" }, ""},
		{"evicting policy", func(c *Config) { c.MaxMemoryPolicy = "allkeys-lru" }, ""},
		{"volatile policy", func(c *Config) { c.MaxMemoryPolicy = "volatile-ttl" }, ""},
		{"samples", func(c *Config) { c.MaxMemorySamples = 64 }, ""},
		{"too many samples", func(c *Config) { c.MaxMemorySamples = 65 }, "--maxmemory-samples must be within 1..64, not 65"},
		{"negative samples", func(c *Config) { c.MaxMemorySamples = -1 }, "--maxmemory-samples"},
		{"unknown policy", func(c *Config) { c.MaxMemoryPolicy = "lru" }, `--maxmemory-policy "lru": must be one of`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Name: "x"}.EnsureDefaults()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

// TestIncarnationAfterUncleanStop: a node restarted on a data directory that was
// not closed (here a copy taken while the node ran, which is what a kill leaves)
// keeps its actor id with --fsync interval, where every write that left the node
// is in the OS, and takes a new one otherwise, since its last writes, and their
// dots, may be lost here while other replicas have them; a clean restart after
// that keeps whatever id it has.
func TestIncarnationAfterUncleanStop(t *testing.T) {
	if bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id"); len(bootID) == 0 {
		t.Skip("no boot id on this system: every unclean stop takes a new actor id")
	}
	for _, tc := range []struct {
		fsync    storage.SyncMode
		newActor bool
	}{{storage.SyncInterval, false}, {storage.SyncAlways, true}, {storage.SyncNone, true}} {
		t.Run(string(tc.fsync), func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Name: "t1", DataDir: dir, Fsync: tc.fsync, RESPAddr: "127.0.0.1:0", MemcacheAddr: "off",
				HTTPAddr: "off", GossipAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0"}
			a, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			actor := a.Actor()
			crashed := t.TempDir()
			if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			a.Close()
			cfg.DataDir = crashed
			b, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := b.Actor()
			b.Close()
			if (got != actor) != tc.newActor {
				t.Fatalf("after an unclean stop with --fsync %s the actor went %s -> %s; want a new one: %v", tc.fsync, actor, got, tc.newActor)
			}
			// A clean stop keeps whatever id the node had.
			c, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Actor() != got {
				t.Fatalf("actor changed across a clean restart: %s -> %s", got, c.Actor())
			}
		})
	}
}

// TestMayHaveLostDots: only an interval-mode stop on the same boot is known to
// have lost nothing that left the node.
func TestMayHaveLostDots(t *testing.T) {
	for _, tc := range []struct {
		stop storage.UncleanStop
		want bool
	}{
		{storage.UncleanStop{Mode: storage.SyncInterval, SameBoot: true}, false},
		{storage.UncleanStop{Mode: storage.SyncInterval}, true}, // rebooted: not fsynced may be gone
		{storage.UncleanStop{Mode: storage.SyncAlways, SameBoot: true}, true},
		{storage.UncleanStop{Mode: storage.SyncNone, SameBoot: true}, true},
		{storage.UncleanStop{SameBoot: true}, true}, // mode unknown
	} {
		if got := mayHaveLostDots(tc.stop); got != tc.want {
			t.Errorf("mayHaveLostDots(%+v) = %v, want %v", tc.stop, got, tc.want)
		}
	}
}

// TestIncarnationPersists: the actor id survives a restart on disk, and fresh data
// gets a new one.
// TestFloorPersists: the coordinator's fresh-counter reservation is kept in the
// data directory, so a restart with the clock set back starts above it; an
// in-memory node keeps none (it is a new actor at every start).
func TestFloorPersists(t *testing.T) {
	var offset atomic.Int64
	cfg := Config{Name: "t1", DataDir: t.TempDir(), RESPAddr: "127.0.0.1:0", MemcacheAddr: "off", HTTPAddr: "off",
		GossipAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0",
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }}
	saved := func(n *Node) uint64 {
		t.Helper()
		v, err := metaFloor{n.store}.Load()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := saved(a)
	if now := uint64(time.Now().UnixMicro()); first < now {
		t.Fatalf("reservation %d below the clock %d µs after start", first, now)
	}
	a.Close()
	offset.Store(int64(-100 * time.Second))
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := saved(b); got <= first {
		t.Fatalf("reservation after a restart 100 s back = %d, not above the last run's %d", got, first)
	}
	res, err := b.co.Modify(context.Background(), []byte("k"), func(cur record.Record) (vclock.Clock, vclock.Value, error) {
		return cur.Str.Join(), vclock.Value{Data: []byte("v")}, nil
	}, coordinator.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Record.Str.Join().Get(b.Actor()); got <= first {
		t.Fatalf("fresh counter after a restart 100 s back = %d, not above the last run's reservation %d", got, first)
	}

	cfg.Storage, cfg.DataDir, cfg.Now = StorageMemory, "", nil
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if v, ok, err := m.store.GetMeta(metaFloorName); err != nil || ok {
		t.Fatalf("in-memory node saved a floor: %v, %v, %v", v, ok, err)
	}
}

func TestIncarnationPersists(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Name: "t1", DataDir: dir, RESPAddr: "127.0.0.1:0", MemcacheAddr: "off", HTTPAddr: "off",
		GossipAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0"}
	a, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	actor := a.Actor()
	a.Close()
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Actor() != actor {
		t.Fatalf("actor changed across restart: %s -> %s", actor, b.Actor())
	}
	cfg.DataDir = t.TempDir()
	cfg.RESPAddr = "127.0.0.1:0"
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Actor() == actor {
		t.Fatal("fresh data reused the old incarnation")
	}
}

// TestFrontsShareLoops: with the loop driver, the RESP and memcached fronts
// serve on one group of event loops (one loop per core, not one per front),
// which the node closes after both.
func TestFrontsShareLoops(t *testing.T) {
	if !evloop.Supported() {
		t.Skip("no event loops on this system")
	}
	defer leaktest.AfterTest(t)()
	n := startTestNode(t, Config{IOModel: "loop", IOLoops: 1})
	defer n.Close()
	if n.loops == nil || len(n.loops.Loops()) != 1 {
		t.Fatalf("node loops: %v", n.loops)
	}
	r, m := dialFronts(t, n)
	for _, tc := range []struct {
		c         net.Conn
		req, want string
	}{{r, "PING\r\n", "+PONG\r\n"}, {m, "version\r\n", "VERSION"}} {
		if _, err := io.WriteString(tc.c, tc.req); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		k, err := tc.c.Read(buf)
		if err != nil || !strings.HasPrefix(string(buf[:k]), tc.want) {
			t.Fatalf("%q: %q, %v", tc.req, buf[:k], err)
		}
	}
	if got := n.loops.Len(); got != 2 {
		t.Fatalf("the shared loops hold %d connections, want both fronts' 2", got)
	}
}

// TestFrontsShareCommit: the RESP and memcached connections of one loop stage
// their writes in the loop's one write set, so an iteration that serves both
// makes one commit of both writes, which both fronts' counters show.
func TestFrontsShareCommit(t *testing.T) {
	if !evloop.Supported() {
		t.Skip("no event loops on this system")
	}
	n := startTestNode(t, Config{IOModel: "loop", IOLoops: 1})
	defer n.Close()
	r, m := dialFronts(t, n)
	read := func(c net.Conn, want string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
			t.Fatalf("read %q, %v; want %q", buf, err, want)
		}
	}
	send := func(c net.Conn, s string) {
		t.Helper()
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
	}
	// Both connections registered with the loop (their first command ran).
	send(r, "PING\r\n")
	read(r, "+PONG\r\n")
	send(m, "version\r\n")
	read(m, "VERSION "+n.cfg.Version+"\r\n")
	// The counters as each front shows them: INFO stats, memcached stats.
	field := func(text, sep, name string) int64 {
		t.Helper()
		for _, l := range strings.Split(text, "\r\n") {
			if v, ok := strings.CutPrefix(l, name+sep); ok {
				i, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return i
			}
		}
		t.Fatalf("no %s in %q", name, text)
		return 0
	}
	readUntil := func(c net.Conn, end string) string {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b []byte
		buf := make([]byte, 4096)
		for !strings.HasSuffix(string(b), end) {
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("read: %v (got %q)", err, b)
			}
			b = append(b, buf[:k]...)
		}
		return string(b)
	}
	commits := func() (int64, int64) {
		t.Helper()
		send(r, "INFO stats\r\n")
		info := readUntil(r, "\r\n\r\n")
		send(m, "stats\r\n")
		st := readUntil(m, "END\r\n")
		c, w := field(info, ":", "loop_commits"), field(info, ":", "loop_commit_writes")
		if mc, mw := field(st, " ", "STAT loop_commits"), field(st, " ", "STAT loop_commit_writes"); mc != c || mw != w {
			t.Fatalf("memcached counts %d commits of %d writes, RESP %d of %d", mc, mw, c, w)
		}
		return c, w
	}
	c0, w0 := commits()
	// Hold the loop while both writes arrive: its next iteration reads both.
	l := n.loops.Loops()[0]
	release := make(chan struct{})
	held := make(chan struct{})
	l.Post(func() { close(held); <-release })
	<-held
	send(r, "SET a 1\r\n")
	send(m, "set b 0 0 1\r\n2\r\n")
	close(release)
	read(r, "+OK\r\n")
	read(m, "STORED\r\n")
	c1, w1 := commits()
	if c1-c0 != 1 || w1-w0 != 2 {
		t.Fatalf("%d commits of %d writes, want 1 of 2 (one write set for both fronts)", c1-c0, w1-w0)
	}
	// Prometheus shows the same figures, and the loop's iterations.
	metrics := httpGet(t, "http://"+n.HTTPAddr()+"/metrics")
	for _, want := range []string{
		fmt.Sprintf("dynakv_loop_commits_total %d", c1),
		fmt.Sprintf("dynakv_loop_commit_writes_total %d", w1),
		`dynakv_loop_inline_commands_total{protocol="memcache"}`,
		`dynakv_loop_inline_commands_total{protocol="resp"}`,
		`dynakv_loop_handoffs_total{protocol="resp",reason="not_loop"}`,
		"dynakv_loop_iteration_seconds_count",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, `dynakv_loop_inline_commands_total{protocol="resp"} `); ok && v == "0" {
			t.Errorf("no RESP command counted inline: %q", l)
		}
	}
}

// dialFronts connects to the node's RESP and memcached fronts; the test's
// cleanup closes both.
func dialFronts(t *testing.T, n *Node) (r, m net.Conn) {
	t.Helper()
	r, err := net.Dial("tcp", n.RESPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	m, err = net.Dial("tcp", n.MemcacheAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return r, m
}

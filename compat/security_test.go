package compat

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/cluster/transport"
	"github.com/dynakv/dynakv/internal/testcerts"
	"github.com/dynakv/dynakv/node"
	"github.com/dynakv/dynakv/peer"
)

// Security tests (issue 6, item 5) on real processes.

// TestRequirePass: with --requirepass, RESP clients get Redis 7's errors until
// they AUTH (or HELLO ... AUTH), and memcached clients until they send memcached
// 1.6's authentication "set"; gomemcache works through a dialer that sends it.
func TestRequirePass(t *testing.T) {
	p := startNode(t, "--storage", "memory", "--requirepass", "pw0rd")
	anon := newRedis(p.RESP, 2)
	defer anon.Close()
	if err := anon.Set(ctx(t), "k", "v", 0).Err(); err == nil || err.Error() != "NOAUTH Authentication required." {
		t.Fatalf("SET before AUTH: %v", err)
	}
	wrong := redis.NewClient(&redis.Options{Addr: p.RESP, Password: "nope", Protocol: 2})
	defer wrong.Close()
	if err := wrong.Ping(ctx(t)).Err(); err == nil || err.Error() != "WRONGPASS invalid username-password pair or user is disabled." {
		t.Fatalf("wrong password: %v", err)
	}
	for _, proto := range []int{2, 3} { // go-redis uses AUTH for 2, HELLO 3 AUTH for 3
		ok := redis.NewClient(&redis.Options{Addr: p.RESP, Password: "pw0rd", Protocol: proto})
		if err := ok.Set(ctx(t), "k", fmt.Sprint(proto), 0).Err(); err != nil {
			t.Fatalf("RESP%d with the password: %v", proto, err)
		}
		ok.Close()
	}
	r := dialRaw(t, p.RESP)
	for _, tc := range []struct{ send, want string }{
		{"GET k\r\n", "-NOAUTH Authentication required.\r\n"},
		{"HELLO 3\r\n", "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"},
		{"AUTH bob pw0rd\r\n", "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{"AUTH default pw0rd\r\n", "+OK\r\n"},
		{"GET k\r\n", "$1\r\n"},
	} {
		r.send(tc.send)
		if got := r.line(); got != tc.want {
			t.Fatalf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}

	// memcached: refused until the authentication set.
	m := dialRaw(t, p.Memcache)
	m.send("get k\r\n")
	if got := m.line(); got != "CLIENT_ERROR unauthenticated\r\n" {
		t.Fatalf("memcached get before auth: %q", got)
	}
	m.send("set auth 0 0 10\r\ndefault no\r\n")
	if got := m.line(); got != "CLIENT_ERROR authentication failure\r\n" {
		t.Fatalf("memcached wrong password: %q", got)
	}
	plain := memcache.New(p.Memcache)
	if _, err := plain.Get("k"); err == nil {
		t.Fatal("gomemcache without authentication read a key")
	}
	mc := memcache.New(p.Memcache)
	mc.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return c, memcacheAuth(c, "default", "pw0rd")
	}
	if err := mc.Set(&memcache.Item{Key: "mk", Value: []byte("mv")}); err != nil {
		t.Fatalf("gomemcache after authenticating: %v", err)
	}
	if it, err := mc.Get("mk"); err != nil || string(it.Value) != "mv" {
		t.Fatalf("gomemcache get: %v %v", it, err)
	}
}

// memcacheAuth sends memcached 1.6's text authentication on c.
func memcacheAuth(c net.Conn, user, pass string) error {
	cred := user + " " + pass
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "set auth 0 0 %d\r\n%s\r\n", len(cred), cred); err != nil {
		return err
	}
	// Read exactly the reply line, byte by byte: gomemcache reads what follows.
	var line []byte
	b := make([]byte, 1)
	for !strings.HasSuffix(string(line), "\r\n") {
		if _, err := c.Read(b); err != nil {
			return err
		}
		line = append(line, b[0])
	}
	if string(line) != "STORED\r\n" {
		return fmt.Errorf("memcached auth: %q", line)
	}
	return nil
}

// TestClusterSecretMismatch: a node with another secret, and one with none,
// cannot join a cluster: gossip refuses them (the cluster keeps its two members
// and they stay alone) and the cluster port refuses a peer that proves another
// secret.
func TestClusterSecretMismatch(t *testing.T) {
	procs := startCluster(t, 2, "--storage", "memory")
	seed := self(t, procs[0]).GossipAddr
	intruders := []*proc{
		startClusterNode(t, "wrong", freeAddr(t), seed, "--storage", "memory", "--secret", "not-the-secret"),
		startClusterNode(t, "none", freeAddr(t), seed, "--storage", "memory", "--secret", ""),
	}
	// Give the intruders' join loops several rounds.
	time.Sleep(3 * time.Second)
	for _, p := range procs {
		if got := info(t, p)["cluster_members"]; got != "2" {
			t.Fatalf("%s sees %s members after intruders tried to join, want 2", p.name, got)
		}
	}
	for _, p := range intruders {
		if got := info(t, p)["cluster_members"]; got != "1" {
			t.Fatalf("intruder %s sees %s members, want itself only", p.name, got)
		}
	}
	// The transport: a peer proving another secret is refused with ErrAuth.
	tr, err := transport.New(transport.Config{
		Name: "intruder", ListenAddr: "127.0.0.1:0", Secret: []byte("not-the-secret"),
		Handler: transport.HandlerFunc(func(context.Context, string, uint8, []byte) ([]byte, error) { return nil, nil }),
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Call(ctx(t), self(t, procs[0]).ClusterAddr, uint8(peer.MsgForward), []byte("x")); !errors.Is(err, transport.ErrAuth) {
		t.Fatalf("call with another secret: %v, want ErrAuth", err)
	}
	eventually(t, 5*time.Second, "the node to count and log the refused connection", func() bool {
		return procs[0].metric(t, "dynakv_transport_refused_handshakes_total") >= 1 &&
			strings.Contains(procs[0].logs.String(), "refused connection")
	})
}

// memberStatus returns the node's /cluster/status.
func memberStatus(t *testing.T, p *proc) node.Status {
	t.Helper()
	resp, err := http.Get("http://" + p.HTTP + "/cluster/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st node.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// self returns the node's own entry of /cluster/status.
func self(t *testing.T, p *proc) node.MemberStatus {
	t.Helper()
	for _, m := range memberStatus(t, p).Members {
		if m.Name == p.name {
			return m
		}
	}
	t.Fatalf("%s not in its own status", p.name)
	return node.MemberStatus{}
}

// TestAdminToken: dynakv admin needs the cluster secret to change the cluster;
// the plain HTTP request without the token is refused.
func TestAdminToken(t *testing.T) {
	p := startNode(t, "--storage", "memory", "--secret", "s3cret")
	resp, err := http.Post("http://"+p.HTTP+"/cluster/leave", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /cluster/leave without a token: %s", resp.Status)
	}
	out, err := exec.Command(binary, "admin", "leave", "--http", p.HTTP, "--secret", "wrong").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "admin token") {
		t.Fatalf("admin leave with a wrong secret: %v\n%s", err, out)
	}
	tok, err := exec.Command(binary, "admin", "token", "--secret", "s3cret").Output()
	if err != nil || strings.TrimSpace(string(tok)) != node.AdminToken("s3cret") {
		t.Fatalf("admin token: %q %v", tok, err)
	}
	cmd := exec.Command(binary, "admin", "remove", "nobody", "--http", p.HTTP)
	cmd.Env = append(cmd.Environ(), "DYNAKV_SECRET=s3cret")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nobody") || strings.Contains(string(out), "admin token") {
		// Authorized, then refused for the unknown name.
		t.Fatalf("admin remove with DYNAKV_SECRET: %v\n%s", err, out)
	}
}

// TestServerDefaultsLoopback: every listener's default address in --help is on
// 127.0.0.1.
func TestServerDefaultsLoopback(t *testing.T) {
	out, err := exec.Command(binary, "server", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, flag := range []string{"resp", "memcache", "http", "gossip", "cluster"} {
		re := regexp.MustCompile(`--` + flag + ` string .*\(default "([^"]*)"\)`)
		m := re.FindSubmatch(out)
		if m == nil {
			t.Fatalf("--%s has no default in --help", flag)
		}
		host, _, err := net.SplitHostPort(string(m[1]))
		if err != nil || host != "127.0.0.1" {
			t.Errorf("--%s defaults to %q, want 127.0.0.1", flag, m[1])
		}
	}
	for _, flag := range []string{"--tls-cert", "--tls-key", "--tls-ca", "--client-output-buffer-limit", "--client-write-timeout"} {
		if !strings.Contains(string(out), flag+" ") {
			t.Errorf("--help does not document %s", flag)
		}
	}
}

// TestTLS: a 3-node cluster with --tls-cert, --tls-key and --tls-ca. Clients
// with a certificate of the CA use RESP (go-redis) and memcached (gomemcache) over
// TLS; writes replicate over the mutual-TLS cluster transport; a plain client, and a
// TLS client without a certificate, fail cleanly and the nodes keep serving.
func TestTLS(t *testing.T) {
	ca, leaf := testcerts.NodeCA(t)
	client, err := ca.Leaf("client")
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--storage", "memory", "--tls-cert", leaf.CertFile, "--tls-key", leaf.KeyFile, "--tls-ca", ca.CertFile}
	seed := freeAddr(t)
	procs := []*proc{startClusterNode(t, "t1", seed, "", flags...)}
	for i := 2; i <= 3; i++ {
		procs = append(procs, startClusterNode(t, fmt.Sprintf("t%d", i), freeAddr(t), seed, flags...))
	}
	for _, p := range procs {
		eventually(t, 30*time.Second, p.name+" to see 3 members alive", func() bool {
			alive := 0
			for _, m := range memberStatus(t, p).Members {
				if m.Alive {
					alive++
				}
			}
			return alive == 3
		})
	}
	tlsCfg := &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{client.Cert}, MinVersion: tls.VersionTLS12}
	rc := func(p *proc) *redis.Client {
		return redis.NewClient(&redis.Options{Addr: p.RESP, TLSConfig: tlsCfg, Protocol: 2, MaxRetries: -1})
	}
	c1, c3 := rc(procs[0]), rc(procs[2])
	defer c1.Close()
	defer c3.Close()
	for i := range 20 {
		if err := c1.Set(ctx(t), fmt.Sprint("tls:", i), fmt.Sprint("v", i), 0).Err(); err != nil {
			t.Fatalf("SET over TLS: %v", err)
		}
	}
	for i := range 20 {
		if v, err := c3.Get(ctx(t), fmt.Sprint("tls:", i)).Result(); err != nil || v != fmt.Sprint("v", i) {
			t.Fatalf("GET over TLS from another node: %q, %v", v, err)
		}
	}
	// Every replica holds the key: the transport between the nodes works.
	for _, p := range procs {
		c := rc(p)
		v, err := c.Do(ctx(t), "DGET", "tls:0", "LOCAL").Slice()
		c.Close()
		if err != nil || len(v) != 2 || fmt.Sprint(v[1]) != "[v0]" {
			t.Fatalf("%s: DGET LOCAL = %v, %v", p.name, v, err)
		}
	}
	if procs[0].metric(t, "dynakv_transport_refused_handshakes_total") != 0 {
		t.Fatal("nodes with certificates of the same CA refused each other")
	}

	mc := memcache.New(procs[1].Memcache)
	mc.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := tls.Dialer{Config: tlsCfg}
		return d.DialContext(ctx, network, addr)
	}
	if err := mc.Set(&memcache.Item{Key: "tls:mc", Value: []byte("over tls")}); err != nil {
		t.Fatalf("gomemcache over TLS: %v", err)
	}
	if v, err := c1.Get(ctx(t), "tls:mc").Result(); err != nil || v != "over tls" {
		t.Fatalf("RESP GET of the memcached key: %q %v", v, err)
	}

	// A plain client gets no reply and is disconnected; so is a TLS client
	// without a certificate.
	raw, err := net.Dial("tcp", procs[0].RESP)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(raw, "PING\r\n")
	got, _ := io.ReadAll(bufio.NewReader(raw))
	raw.Close()
	if strings.Contains(string(got), "PONG") {
		t.Fatalf("plain PING to a TLS port answered %q", got)
	}
	plain := redis.NewClient(&redis.Options{Addr: procs[0].RESP, Protocol: 2, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	if err := plain.Ping(ctx(t)).Err(); err == nil {
		t.Fatal("plain go-redis against a TLS port succeeded")
	}
	plain.Close()
	nocert := redis.NewClient(&redis.Options{Addr: procs[0].RESP, Protocol: 2, MaxRetries: -1,
		TLSConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}})
	if err := nocert.Ping(ctx(t)).Err(); err == nil {
		t.Fatal("TLS client without a certificate was served (--tls-ca requires one)")
	}
	nocert.Close()
	if err := c1.Ping(ctx(t)).Err(); err != nil {
		t.Fatalf("TLS client after the refused ones: %v", err)
	}
}

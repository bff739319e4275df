package transport

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/testcerts"
	"github.com/lni/goutils/leaktest"
)

// trtTLS returns mutual-TLS configs for a node holding leaf, trusting pool.
func trtTLS(leaf *testcerts.Leaf, ca *testcerts.CA) (server, client *tls.Config) {
	server = &tls.Config{Certificates: []tls.Certificate{leaf.Cert}, ClientCAs: ca.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{leaf.Cert}, RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	return server, client
}

// TestMutualTLS: nodes with certificates of the cluster's CA talk over
// TLS (the secret handshake inside it); a node whose certificate another CA signed,
// or that dials without TLS, is refused with ErrAuth and served nothing.
func TestMutualTLS(t *testing.T) {
	defer leaktest.AfterTest(t)()
	dir := t.TempDir()
	ca, err := testcerts.NewCA(dir, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testcerts.NewCA(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	leafA, err := ca.Leaf("a")
	if err != nil {
		t.Fatal(err)
	}
	leafB, err := ca.Leaf("b")
	if err != nil {
		t.Fatal(err)
	}
	leafX, err := other.Leaf("x")
	if err != nil {
		t.Fatal(err)
	}
	cfgA, cfgB := trtConfig("a", nil), trtConfig("b", nil)
	cfgA.ServerTLS, cfgA.ClientTLS = trtTLS(leafA, ca)
	cfgB.ServerTLS, cfgB.ClientTLS = trtTLS(leafB, ca)
	a, b := trtStart(t, cfgA), trtStart(t, cfgB)
	defer a.Close()
	defer b.Close()
	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()
	if got, err := a.Call(ctx, b.Addr(), 7, []byte("over tls")); err != nil || string(got) != "\x07over tls" {
		t.Fatalf("a -> b over TLS: %q, %v", got, err)
	}
	if got, err := b.Call(ctx, a.Addr(), 7, []byte("back")); err != nil || string(got) != "\x07back" {
		t.Fatalf("b -> a over TLS: %q, %v", got, err)
	}

	// Signed by another CA: both directions fail, as authentication failures.
	cfgX := trtConfig("x", nil)
	cfgX.ServerTLS, cfgX.ClientTLS = trtTLS(leafX, other)
	x := trtStart(t, cfgX)
	defer x.Close()
	if _, err := x.Call(ctx, b.Addr(), 1, []byte("hi")); !errors.Is(err, ErrAuth) {
		t.Fatalf("foreign certificate -> b: %v, want ErrAuth", err)
	}
	if _, err := b.Call(ctx, x.Addr(), 1, []byte("hi")); !errors.Is(err, ErrAuth) {
		t.Fatalf("b -> foreign certificate: %v, want ErrAuth", err)
	}
	// Plain TCP against a TLS port, and TLS against a plain one.
	plain := trtStart(t, trtConfig("plain", nil))
	defer plain.Close()
	if _, err := plain.Call(ctx, b.Addr(), 1, []byte("hi")); err == nil {
		t.Fatal("plain dial to a TLS port succeeded")
	}
	if _, err := b.Call(ctx, plain.Addr(), 1, []byte("hi")); !errors.Is(err, ErrAuth) {
		t.Fatalf("TLS dial to a plain port: %v, want ErrAuth", err)
	}
	trtEventually(t, 5*time.Second, "b to count its refusals", func() bool {
		return b.Stats().RefusedHandshakes >= 2
	})
	if s := b.Stats().Served; s != 1 {
		t.Fatalf("b served %d requests, want only a's", s)
	}
}

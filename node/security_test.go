package node

import (
	"crypto/tls"
	"net"
	"net/http"
	"testing"

	"github.com/dynakv/dynakv/internal/testcerts"
)

// TestDefaultsBindLoopback: every listener a node opens by default is on a
// loopback address, so a node started without flags is reachable from this host
// only.
func TestDefaultsBindLoopback(t *testing.T) {
	c := Config{}.EnsureDefaults()
	for name, addr := range map[string]string{"resp": c.RESPAddr, "memcache": c.MemcacheAddr,
		"http": c.HTTPAddr, "gossip": c.GossipAddr, "cluster": c.ClusterAddr} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s default %q: %v", name, addr, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("%s default %q is not a loopback address", name, addr)
		}
	}
}

// the admin endpoints. Without it the port stays plain HTTP.
func TestHTTPTLS(t *testing.T) {
	ca, leaf := testcerts.NodeCA(t)
	n := startTestNode(t, Config{Secret: "s3cret", TLSCertFile: leaf.CertFile, TLSKeyFile: leaf.KeyFile,
		TLSCAFile: ca.CertFile, HTTPTLS: true})
	defer n.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	get := func(c *http.Client, url, token string) (int, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for path, want := range map[string]int{"/healthz": 200, "/metrics": 200, "/cluster/status": 200, "/debug/pprof/cmdline": 401} {
		if got, err := get(hc, "https://"+n.HTTPAddr()+path, ""); err != nil || got != want {
			t.Errorf("GET https %s: %d, %v; want %d", path, got, err, want)
		}
	}
	if got, err := get(hc, "https://"+n.HTTPAddr()+"/debug/pprof/cmdline", AdminToken("s3cret")); err != nil || got != 200 {
		t.Errorf("pprof over https with the token: %d, %v", got, err)
	}
	if got, err := get(http.DefaultClient, "http://"+n.HTTPAddr()+"/healthz", ""); err == nil && got == 200 {
		t.Error("plain HTTP answered on a --http-tls port")
	}
	// A client that does not trust the CA is refused.
	if _, err := get(&http.Client{}, "https://"+n.HTTPAddr()+"/healthz", ""); err == nil {
		t.Error("a client without the CA completed the handshake")
	}

	plain := startTestNode(t, Config{Secret: "s3cret", TLSCertFile: leaf.CertFile, TLSKeyFile: leaf.KeyFile})
	defer plain.Close()
	if got, err := get(http.DefaultClient, "http://"+plain.HTTPAddr()+"/healthz", ""); err != nil || got != 200 {
		t.Errorf("without --http-tls, GET http /healthz: %d, %v", got, err)
	}
}

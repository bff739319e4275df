package node

import (
	"net/http"
	"strings"
	"testing"
)

// TestAdminEndpointsNeedToken: the endpoints that change the cluster and pprof
// answer 401 without the bearer token derived from the secret (or with another
// secret's); /metrics, /healthz and /cluster/status stay open.
func TestAdminEndpointsNeedToken(t *testing.T) {
	n := startTestNode(t, Config{Secret: "s3cret"})
	defer n.Close()
	do := func(method, path, token string) int {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+n.HTTPAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good, wrong := AdminToken("s3cret"), AdminToken("other")
	if good == wrong || good == AdminToken("") || strings.Contains(good, "s3cret") {
		t.Fatalf("tokens do not depend on the secret: %q %q", good, wrong)
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/cluster/remove?name=nobody"},
		{http.MethodPost, "/cluster/leave"},
		{http.MethodGet, "/debug/pprof/cmdline"},
		{http.MethodGet, "/debug/pprof/"},
	} {
		for _, tok := range []string{"", wrong, good + "x"} {
			if got := do(tc.method, tc.path, tok); got != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", tc.method, tc.path, tok, got)
			}
		}
	}
	if got := do(http.MethodGet, "/debug/pprof/cmdline", good); got != http.StatusOK {
		t.Errorf("pprof with the token: %d", got)
	}
	if got := do(http.MethodPost, "/cluster/remove?name=nobody", good); got != http.StatusBadRequest {
		t.Errorf("remove of an unknown node with the token: %d, want 400", got)
	}
	for _, path := range []string{"/metrics", "/healthz", "/cluster/status"} {
		if got := do(http.MethodGet, path, ""); got != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", path, got)
		}
	}
}

// TestHTTPTLS: with --http-tls the HTTP port speaks only TLS, with the node's
// certificate and no client certificate asked for; the admin token still guards

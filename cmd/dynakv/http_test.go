package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/internal/testcerts"
	"github.com/dynakv/dynakv/node"
)

func TestNewNodeHTTP(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcerts.NewCA(dir, "dynakv")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr, ca string
		base     string // "" when refused
	}{
		{"127.0.0.1:9121", "", "http://127.0.0.1:9121"},
		{"http://127.0.0.1:9121", "", "http://127.0.0.1:9121"},
		{"https://node1:9121/", "", "https://node1:9121"},
		{"https://node1:9121", ca.CertFile, "https://node1:9121"},
		{"127.0.0.1:9121", ca.CertFile, ""}, // a CA for plain HTTP
		{"https://node1:9121", dir + "/none.pem", ""},
		{"ftp://node1:21", "", ""},
		{"https://node1:9121/cluster", "", ""},
		{"https://", "", ""},
	} {
		c, err := newNodeHTTP(tc.addr, tc.ca)
		switch {
		case tc.base == "" && err == nil:
			t.Errorf("newNodeHTTP(%q, %q) accepted: %s", tc.addr, tc.ca, c.base)
		case tc.base != "" && (err != nil || c.base != tc.base):
			t.Errorf("newNodeHTTP(%q, %q) = %v, %v; want base %s", tc.addr, tc.ca, c, err, tc.base)
		}
	}
}

// TestStatusOverHTTPS: dynakv status and dynakv admin reach a node started with
// --http-tls through https:// and --tls-ca, and fail without the CA.
func TestStatusOverHTTPS(t *testing.T) {
	ca, leaf := testcerts.NodeCA(t)
	n, err := node.Start(node.Config{Name: "tls1", Storage: node.StorageMemory, Secret: "s3cret",
		RESPAddr: "127.0.0.1:0", MemcacheAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		GossipAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0",
		TLSCertFile: leaf.CertFile, TLSKeyFile: leaf.KeyFile, HTTPTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	run := func(args ...string) (string, error) {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}
	url := "https://" + n.HTTPAddr()
	out, err := run("status", "--http", url, "--tls-ca", ca.CertFile, "--json")
	if err != nil {
		t.Fatalf("status over https: %v\n%s", err, out)
	}
	var st node.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Members) != 1 {
		t.Fatalf("status: %v, %+v", err, st)
	}
	if out, err := run("status", "--http", url); err == nil {
		t.Errorf("status without the CA succeeded:\n%s", out)
	}
	// The admin token goes over TLS: removing an unknown node reaches the node
	// and is refused by it, not by the transport.
	out, err = run("admin", "remove", "nobody", "--http", url, "--tls-ca", ca.CertFile, "--secret", "s3cret")
	if err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("admin remove of an unknown node over https: %v\n%s", err, out)
	}
}

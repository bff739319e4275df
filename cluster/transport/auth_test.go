package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
)

// authTestRW joins a scripted input and a sink into one io.ReadWriter.
type authTestRW struct {
	io.Reader
	io.Writer
}

// authTestNonce is a deterministic nonce source for tests and fuzzing.
func authTestNonce(b byte) io.Reader { return bytes.NewReader(bytes.Repeat([]byte{b}, authNonceLen)) }

// authTestClock is the clock reading of the tests' honest clients.
const authTestClock = 1_700_000_000_000

// authTestNow is a clock reading authTestClock, for authDial.
func authTestNow() time.Time { return time.UnixMilli(authTestClock) }

// authTestClientHello is the bytes an honest client named name sends after a server
// hello carrying nonce ns, using nonce nc and clock reading authTestClock.
func authTestClientHello(secret []byte, ns, nc byte, name string) []byte {
	h := authClientHello{version: authVersion, name: name, clock: authTestClock}
	copy(h.nonce[:], bytes.Repeat([]byte{nc}, authNonceLen))
	var nsArr [authNonceLen]byte
	copy(nsArr[:], bytes.Repeat([]byte{ns}, authNonceLen))
	h.mac = authClientMAC(secret, &nsArr, &h.nonce, h.clock, name)
	return appendClientHello(nil, &h)
}

func TestAuthHandshake(t *testing.T) {
	defer leaktest.AfterTest(t)()
	for _, tc := range []struct {
		name                     string
		serverSecret, clientSecr []byte
		clientName               string
		ok                       bool
	}{
		{"same secret", []byte("s3cret"), []byte("s3cret"), "node-1", true},
		{"both empty", nil, []byte{}, "n", true},
		{"longest name", []byte("k"), []byte("k"), string(bytes.Repeat([]byte("a"), authMaxName)), true},
		{"different secret", []byte("s3cret"), []byte("other"), "node-1", false},
		{"client empty", []byte("s3cret"), nil, "node-1", false},
		{"server empty", nil, []byte("s3cret"), "node-1", false},
		{"empty name", []byte("k"), []byte("k"), "", false},
		{"name too long", []byte("k"), []byte("k"), string(bytes.Repeat([]byte("a"), authMaxName+1)), false},
		{"name not utf8", []byte("k"), []byte("k"), "\xff", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, cc := net.Pipe()
			type result struct {
				name  string
				clock uint64
				err   error
			}
			srv := make(chan result, 1)
			go func() {
				name, clock, err := authServe(sc, tc.serverSecret, authTestNonce(1))
				_ = sc.Close()
				srv <- result{name, clock, err}
			}()
			sent, cerr := authDial(cc, tc.clientSecr, tc.clientName, authTestNonce(2), authTestNow)
			_ = cc.Close()
			s := <-srv
			if tc.ok {
				if cerr != nil || s.err != nil {
					t.Fatalf("client %v, server %v; want success", cerr, s.err)
				}
				if s.name != tc.clientName {
					t.Fatalf("server saw name %q, want %q", s.name, tc.clientName)
				}
				if s.clock != authTestClock || !sent.Equal(authTestNow()) {
					t.Fatalf("server saw clock %d, client sent %v; want %d", s.clock, sent, uint64(authTestClock))
				}
				return
			}
			if !errors.Is(cerr, ErrAuth) {
				t.Fatalf("client error %v, want ErrAuth", cerr)
			}
			if s.err == nil {
				t.Fatalf("server accepted the client")
			}
		})
	}
}

// The name is bound by the client's MAC: a relay that renames the client is refused.
func TestAuthServeRejectsTamperedHello(t *testing.T) {
	secret := []byte("k")
	hello := authTestClientHello(secret, 1, 2, "alpha")
	tampered := bytes.Replace(hello, []byte("alpha"), []byte("omega"), 1)
	var out bytes.Buffer
	name, _, err := authServe(authTestRW{bytes.NewReader(tampered), &out}, secret, authTestNonce(1))
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("authServe(tampered) = %q, %v; want ErrAuth", name, err)
	}
	// The clock reading is bound by the MAC too: a relay cannot shift it.
	shifted := slices.Clone(hello)
	shifted[len(shifted)-authMACLen-1]++
	name, _, err = authServe(authTestRW{bytes.NewReader(shifted), io.Discard}, secret, authTestNonce(1))
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("authServe(shifted clock) = %q, %v; want ErrAuth", name, err)
	}
	if b := out.Bytes(); len(b) != authServerHelloLen+1 || b[authServerHelloLen] != authStatusRefused {
		t.Fatalf("server wrote %x, want its hello then a refusal", b)
	}
	out.Reset()
	name, _, err = authServe(authTestRW{bytes.NewReader(hello), &out}, secret, authTestNonce(1))
	if err != nil || name != "alpha" {
		t.Fatalf("authServe(untampered) = %q, %v", name, err)
	}
	// Replaying the same hello against a fresh server nonce fails.
	name, _, err = authServe(authTestRW{bytes.NewReader(hello), io.Discard}, secret, authTestNonce(9))
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("replayed hello: %q, %v; want ErrAuth", name, err)
	}
}

// A server that cannot prove the secret (here: it accepts anyone and sends a
// garbage proof) is rejected by the client.
func TestAuthDialRejectsBadServer(t *testing.T) {
	hello := appendServerHello(nil, &authServerHello{version: authVersion})
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"bad proof", append(append(append([]byte{}, hello...), authStatusOK), make([]byte, authMACLen)...)},
		{"refused", append(append([]byte{}, hello...), authStatusRefused)},
		{"unknown status", append(append([]byte{}, hello...), 7)},
		{"wrong magic", append([]byte("HTTP"), hello[4:]...)},
		{"wrong version", append(append([]byte(authMagic), authVersion+1), hello[5:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := authDial(authTestRW{bytes.NewReader(tc.in), io.Discard}, []byte("k"), "n", authTestNonce(2), authTestNow)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("authDial = %v, want ErrAuth", err)
			}
		})
	}
	// A stream that ends early is an I/O error, not an authentication failure.
	_, err := authDial(authTestRW{bytes.NewReader(hello[:10]), io.Discard}, []byte("k"), "n", authTestNonce(2), authTestNow)
	if err == nil || errors.Is(err, ErrAuth) {
		t.Fatalf("truncated server hello: %v, want an I/O error", err)
	}
}

// TestAuthOldVersionRefused: a node of the previous protocol version (3, before
// peer.MsgReadBatch), honest and knowing the secret, is refused at the
// handshake both ways: a server does not accept its hello (and sends no
// proof), a client does not answer its server hello; and a running transport
// refuses it, counts it and closes the connection without serving a frame.
func TestAuthOldVersionRefused(t *testing.T) {
	defer leaktest.AfterTest(t)()
	secret := []byte("test-secret")
	old := authVersion - 1
	if old != 3 {
		t.Fatalf("authVersion %d: this test is about the step from 3 to 4", authVersion)
	}
	oldHello := func(ns [authNonceLen]byte) []byte {
		h := authClientHello{version: uint8(old), name: "old", clock: authTestClock}
		copy(h.nonce[:], bytes.Repeat([]byte{7}, authNonceLen))
		h.mac = authClientMAC(secret, &ns, &h.nonce, h.clock, h.name)
		return appendClientHello(nil, &h)
	}
	var ns [authNonceLen]byte
	copy(ns[:], bytes.Repeat([]byte{1}, authNonceLen))
	var sent bytes.Buffer
	name, _, err := authServe(authTestRW{bytes.NewReader(oldHello(ns)), &sent}, secret, authTestNonce(1))
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("authServe(version 3 hello) = %q, %v; want ErrAuth naming version 3", name, err)
	}
	if sent.Len() != authServerHelloLen {
		t.Fatalf("server wrote %d bytes to a version 3 client, want only its hello", sent.Len())
	}

	oldServer := appendServerHello(nil, &authServerHello{version: uint8(old), nonce: ns})
	sent.Reset()
	if _, err := authDial(authTestRW{bytes.NewReader(oldServer), &sent}, secret, "new", authTestNonce(2), authTestNow); !errors.Is(err, ErrAuth) {
		t.Fatalf("authDial to a version 3 server = %v, want ErrAuth", err)
	}
	if sent.Len() != 0 {
		t.Fatalf("client sent %d bytes to a version 3 server", sent.Len())
	}

	served := make(chan struct{}, 1)
	srv := trtStart(t, trtConfig("srv", func(context.Context, string, uint8, []byte) ([]byte, error) {
		served <- struct{}{}
		return nil, nil
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	sh, err := readServerHello(conn)
	if err != nil || sh.version != authVersion {
		t.Fatalf("server hello %+v, %v", sh, err)
	}
	msg := append(oldHello(sh.nonce), appendFrame(nil, &frame{kind: frameKindRequest, id: 1, typ: 1, timeoutMs: 1000})...)
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading until close: %v (got %x)", err, got)
	}
	if len(got) > 0 && got[0] == authStatusOK {
		t.Fatalf("server accepted a version 3 peer: %x", got)
	}
	trtEventually(t, 5*time.Second, "the refusal to be counted", func() bool { return srv.Stats().RefusedHandshakes == 1 })
	select {
	case <-served:
		t.Fatal("server served a frame from a version 3 peer")
	default:
	}
}

package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
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

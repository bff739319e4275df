package transport

import (
	"bytes"
	"crypto/hmac"
	"io"
	"testing"
)

var authFuzzSecret = []byte("fuzz-secret")

// FuzzAuthServe plays arbitrary client bytes against the server side of the
// handshake (server nonce all 1s). It must never panic, and it may accept only a
// hello carrying the correct MAC for its name.
func FuzzAuthServe(f *testing.F) {
	valid := authTestClientHello(authFuzzSecret, 1, 2, "node-a")
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(authTestClientHello([]byte("wrong"), 1, 2, "node-a"))
	f.Add([]byte{authVersion, 0})
	f.Add([]byte{authVersion + 1, 3, 'a', 'b', 'c'})
	f.Add([]byte{authVersion - 1, 3, 'a', 'b', 'c'}) // an older peer
	huge := authTestClientHello(authFuzzSecret, 1, 2, "node-a")
	copy(huge[len(huge)-authMACLen-8:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(huge) // a clock reading beyond clockMaxMs
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		name, clock, err := authServe(authTestRW{bytes.NewReader(data), &out}, authFuzzSecret, authTestNonce(1))
		if err != nil {
			return
		}
		if clock > clockMaxMs {
			t.Fatalf("accepted clock reading %d", clock)
		}
		if !authValidName(name) {
			t.Fatalf("accepted invalid name %q", name)
		}
		h, herr := readClientHello(bytes.NewReader(data))
		if herr != nil || h.name != name || h.clock != clock {
			t.Fatalf("accepted a hello that does not decode: %v", herr)
		}
		var ns [authNonceLen]byte
		copy(ns[:], bytes.Repeat([]byte{1}, authNonceLen))
		want := authClientMAC(authFuzzSecret, &ns, &h.nonce, clock, name)
		if !hmac.Equal(want[:], h.mac[:]) {
			t.Fatalf("accepted a hello with a wrong MAC")
		}
		if out.Len() != authServerHelloLen+1+authMACLen {
			t.Fatalf("server wrote %d bytes on success", out.Len())
		}
	})
}

// FuzzAuthDial plays arbitrary server bytes against the client side of the
// handshake (client nonce all 2s). It must never panic, and it may succeed only
// when the server proved the secret.
func FuzzAuthDial(f *testing.F) {
	sh := authServerHello{version: authVersion}
	copy(sh.nonce[:], bytes.Repeat([]byte{7}, authNonceLen))
	var nc [authNonceLen]byte
	copy(nc[:], bytes.Repeat([]byte{2}, authNonceLen))
	proof := authServerMAC(authFuzzSecret, &nc, &sh.nonce)
	hello := appendServerHello(nil, &sh)
	f.Add(append(append(append([]byte{}, hello...), authStatusOK), proof[:]...))
	f.Add(append(append([]byte{}, hello...), authStatusRefused))
	f.Add(append(append(append([]byte{}, hello...), authStatusOK), make([]byte, authMACLen)...))
	f.Add(hello[:5])
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := authDial(authTestRW{bytes.NewReader(data), io.Discard}, authFuzzSecret, "node-b", authTestNonce(2), authTestNow)
		if err != nil {
			return
		}
		h, herr := readServerHello(bytes.NewReader(data))
		if herr != nil || h.version != authVersion {
			t.Fatalf("succeeded on a bad server hello: %v", herr)
		}
		rest := data[authServerHelloLen:]
		want := authServerMAC(authFuzzSecret, &nc, &h.nonce)
		if len(rest) < 1+authMACLen || rest[0] != authStatusOK || !hmac.Equal(rest[1:1+authMACLen], want[:]) {
			t.Fatalf("succeeded without the server's proof")
		}
	})
}

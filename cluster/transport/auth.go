package transport

// Mutual authentication of an internode connection with the cluster secret, run
// before any frame. Pure functions over an io.ReadWriter (the caller sets the
// connection deadline), so the fuzz targets drive them with byte slices.
//
//	server -> client   "DKVC" | u8 version | Ns[32]
//	client -> server   u8 version | u8 len(name) | name | Nc[32] | u64 clock |
//	                   HMAC-SHA256(secret, "dynakv-client" | Ns | Nc | clock | name)
//	server -> client   u8 authStatusOK | HMAC-SHA256(secret, "dynakv-server" | Nc | Ns)
//	               or  u8 authStatusRefused, then the server closes
//
// Both nonces are fresh random bytes, so a recorded exchange cannot be replayed, and
// the two MACs use different labels, so one side's proof cannot be reflected back as
// the other's. The secret itself never crosses the wire. The name is authenticated
// by the client's MAC; it becomes the `from` of every request on the connection.
// clock is the client's wall clock (unix ms, big-endian, at most clockMaxMs) read
// just before it sent its hello, also under its MAC: the server's first bound of
// the client's clock (clock.go). Version 2 added it. Versions 3 and 4 changed no
// byte of the handshake: they name the messages behind it (3: peer/'s registry,
// forwarded ops in encoding 3; 4: peer.MsgReadBatch, which a coordinator sends
// to every peer without asking whether it knows it), so a node of another
// version is refused here, at connect, not request by request.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

const (
	authMagic         = "DKVC" // dynakv cluster port
	authVersion       = 4
	authNonceLen      = 32
	authMACLen        = sha256.Size
	authMaxName       = 255 // names are length-prefixed with one byte
	authStatusOK      = 0
	authStatusRefused = 1

	authServerHelloLen = len(authMagic) + 1 + authNonceLen
	authClientLabel    = "dynakv-client"
	authServerLabel    = "dynakv-server"
)

// errAuthMalformed reports a handshake message that violates the layout.
var errAuthMalformed = fmt.Errorf("%w: malformed handshake", ErrAuth)

// authServerHello is the server's first message.
type authServerHello struct {
	version uint8
	nonce   [authNonceLen]byte
}

// authClientHello is the client's answer to the server hello.
type authClientHello struct {
	version uint8
	name    string
	nonce   [authNonceLen]byte
	clock   uint64 // unix ms
	mac     [authMACLen]byte
}

func appendServerHello(dst []byte, h *authServerHello) []byte {
	dst = append(dst, authMagic...)
	dst = append(dst, h.version)
	return append(dst, h.nonce[:]...)
}

// readServerHello decodes a server hello. A wrong magic wraps ErrAuth (the address
// is not a dynakv cluster port); the caller checks the version.
func readServerHello(r io.Reader) (authServerHello, error) {
	var b [authServerHelloLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return authServerHello{}, err
	}
	if string(b[:len(authMagic)]) != authMagic {
		return authServerHello{}, fmt.Errorf("%w: bad magic %q (not a dynakv cluster port?)", ErrAuth, b[:len(authMagic)])
	}
	var h authServerHello
	h.version = b[len(authMagic)]
	copy(h.nonce[:], b[len(authMagic)+1:])
	return h, nil
}

func appendClientHello(dst []byte, h *authClientHello) []byte {
	dst = append(dst, h.version, uint8(len(h.name)))
	dst = append(dst, h.name...)
	dst = append(dst, h.nonce[:]...)
	dst = binary.BigEndian.AppendUint64(dst, h.clock)
	return append(dst, h.mac[:]...)
}

// authValidName reports whether name can be sent in a client hello.
func authValidName(name string) bool {
	return len(name) > 0 && len(name) <= authMaxName && utf8.ValidString(name)
}

// readClientHello decodes a client hello; it reads at most 2+255+72 bytes.
func readClientHello(r io.Reader) (authClientHello, error) {
	var h authClientHello
	var b [2 + authMaxName + authNonceLen + 8 + authMACLen]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return h, err
	}
	h.version = b[0]
	if h.version != authVersion {
		return h, fmt.Errorf("%w: client protocol version %d, want %d", ErrAuth, h.version, authVersion)
	}
	n := int(b[1])
	rest := b[2 : 2+n+authNonceLen+8+authMACLen]
	if _, err := io.ReadFull(r, rest); err != nil {
		return h, err
	}
	h.name = string(rest[:n])
	if !authValidName(h.name) {
		return h, fmt.Errorf("%w: bad node name %q", errAuthMalformed, h.name)
	}
	rest = rest[n:]
	copy(h.nonce[:], rest)
	h.clock = binary.BigEndian.Uint64(rest[authNonceLen:])
	if h.clock > clockMaxMs {
		return h, fmt.Errorf("%w: clock reading %d", errAuthMalformed, h.clock)
	}
	copy(h.mac[:], rest[authNonceLen+8:])
	return h, nil
}

// authClientMAC is the client's proof: HMAC(secret, "dynakv-client"|Ns|Nc|clock|name).
func authClientMAC(secret []byte, ns, nc *[authNonceLen]byte, clock uint64, name string) [authMACLen]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(authClientLabel))
	m.Write(ns[:])
	m.Write(nc[:])
	m.Write(binary.BigEndian.AppendUint64(nil, clock))
	m.Write([]byte(name))
	var out [authMACLen]byte
	m.Sum(out[:0])
	return out
}

// authServerMAC is the server's proof: HMAC(secret, "dynakv-server"|Nc|Ns).
func authServerMAC(secret []byte, nc, ns *[authNonceLen]byte) [authMACLen]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(authServerLabel))
	m.Write(nc[:])
	m.Write(ns[:])
	var out [authMACLen]byte
	m.Sum(out[:0])
	return out
}

// authServe runs the server side of the handshake on rw, drawing its nonce from
// rnd, and returns the client's authenticated node name and the clock reading
// (unix ms) it sent. Any error means the connection must be closed; a wrong proof
// is reported to the client before that.
func authServe(rw io.ReadWriter, secret []byte, rnd io.Reader) (string, uint64, error) {
	hello := authServerHello{version: authVersion}
	if _, err := io.ReadFull(rnd, hello.nonce[:]); err != nil {
		return "", 0, fmt.Errorf("transport: handshake nonce: %w", err)
	}
	if _, err := rw.Write(appendServerHello(nil, &hello)); err != nil {
		return "", 0, err
	}
	ch, err := readClientHello(rw)
	if err != nil {
		return "", 0, err
	}
	want := authClientMAC(secret, &hello.nonce, &ch.nonce, ch.clock, ch.name)
	if !hmac.Equal(want[:], ch.mac[:]) {
		_, _ = rw.Write([]byte{authStatusRefused})
		return ch.name, 0, fmt.Errorf("%w: node %q failed to prove the cluster secret", ErrAuth, ch.name)
	}
	proof := authServerMAC(secret, &ch.nonce, &hello.nonce)
	reply := append([]byte{authStatusOK}, proof[:]...)
	if _, err := rw.Write(reply); err != nil {
		return "", 0, err
	}
	return ch.name, ch.clock, nil
}

// authDial runs the client side of the handshake on rw as node name, drawing its
// nonce from rnd and reading its clock from now just before it sends its hello;
// it returns that reading. Protocol and proof failures wrap ErrAuth; I/O errors
// are returned as they are (the caller treats them as an unreachable peer).
func authDial(rw io.ReadWriter, secret []byte, name string, rnd io.Reader, now func() time.Time) (time.Time, error) {
	if !authValidName(name) {
		return time.Time{}, fmt.Errorf("%w: bad node name %q", ErrAuth, name)
	}
	sh, err := readServerHello(rw)
	if err != nil {
		return time.Time{}, err
	}
	if sh.version != authVersion {
		return time.Time{}, fmt.Errorf("%w: peer protocol version %d, want %d", ErrAuth, sh.version, authVersion)
	}
	ch := authClientHello{version: authVersion, name: name}
	if _, err := io.ReadFull(rnd, ch.nonce[:]); err != nil {
		return time.Time{}, fmt.Errorf("transport: handshake nonce: %w", err)
	}
	sent := now()
	ch.clock = uint64(newConnClock(sent).anchorMs)
	ch.mac = authClientMAC(secret, &sh.nonce, &ch.nonce, ch.clock, name)
	if _, err := rw.Write(appendClientHello(nil, &ch)); err != nil {
		return time.Time{}, err
	}
	return sent, authDialFinish(rw, secret, &ch, &sh)
}

// authDialFinish reads and checks the server's answer to the client hello ch.
func authDialFinish(rw io.Reader, secret []byte, ch *authClientHello, sh *authServerHello) error {
	var status [1]byte
	if _, err := io.ReadFull(rw, status[:]); err != nil {
		return err
	}
	switch status[0] {
	case authStatusOK:
	case authStatusRefused:
		return fmt.Errorf("%w: refused by peer (cluster secret mismatch?)", ErrAuth)
	default:
		return fmt.Errorf("%w: status %d", errAuthMalformed, status[0])
	}
	var got [authMACLen]byte
	if _, err := io.ReadFull(rw, got[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	want := authServerMAC(secret, &ch.nonce, &sh.nonce)
	if !hmac.Equal(want[:], got[:]) {
		return fmt.Errorf("%w: peer failed to prove the cluster secret", ErrAuth)
	}
	return nil
}

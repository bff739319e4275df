package cluster

// Mutual authentication of an internode connection with the cluster secret, run
// before any frame. Pure functions over an io.ReadWriter (the caller sets the
// connection deadline), so the fuzz targets drive them with byte slices.
//
//	server -> client   "DKVC" | u8 version | Ns[32]
//	client -> server   u8 version | u8 len(name) | name | Nc[32] |
//	                   HMAC-SHA256(secret, "dynakv-client" | Ns | Nc | name)
//	server -> client   u8 authStatusOK | HMAC-SHA256(secret, "dynakv-server" | Nc | Ns)
//	               or  u8 authStatusRefused, then the server closes
//
// Both nonces are fresh random bytes, so a recorded exchange cannot be replayed, and
// the two MACs use different labels, so one side's proof cannot be reflected back as
// the other's. The secret itself never crosses the wire. The name is authenticated
// by the client's MAC; it becomes the `from` of every request on the connection.

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

const (
	authMagic         = "DKVC" // dynakv cluster port
	authVersion       = 1
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
	return append(dst, h.mac[:]...)
}

// authValidName reports whether name can be sent in a client hello.
func authValidName(name string) bool {
	return len(name) > 0 && len(name) <= authMaxName && utf8.ValidString(name)
}

// readClientHello decodes a client hello; it reads at most 2+255+64 bytes.
func readClientHello(r io.Reader) (authClientHello, error) {
	var h authClientHello
	var b [2 + authMaxName + authNonceLen + authMACLen]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return h, err
	}
	h.version = b[0]
	if h.version != authVersion {
		return h, fmt.Errorf("%w: client protocol version %d, want %d", ErrAuth, h.version, authVersion)
	}
	n := int(b[1])
	rest := b[2 : 2+n+authNonceLen+authMACLen]
	if _, err := io.ReadFull(r, rest); err != nil {
		return h, err
	}
	h.name = string(rest[:n])
	if !authValidName(h.name) {
		return h, fmt.Errorf("%w: bad node name %q", errAuthMalformed, h.name)
	}
	copy(h.nonce[:], rest[n:])
	copy(h.mac[:], rest[n+authNonceLen:])
	return h, nil
}

// authClientMAC is the client's proof: HMAC(secret, "dynakv-client"|Ns|Nc|name).
func authClientMAC(secret []byte, ns, nc *[authNonceLen]byte, name string) [authMACLen]byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(authClientLabel))
	m.Write(ns[:])
	m.Write(nc[:])
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
// rnd, and returns the client's authenticated node name. Any error means the
// connection must be closed; a wrong proof is reported to the client before that.
func authServe(rw io.ReadWriter, secret []byte, rnd io.Reader) (string, error) {
	hello := authServerHello{version: authVersion}
	if _, err := io.ReadFull(rnd, hello.nonce[:]); err != nil {
		return "", fmt.Errorf("cluster: handshake nonce: %w", err)
	}
	if _, err := rw.Write(appendServerHello(nil, &hello)); err != nil {
		return "", err
	}
	ch, err := readClientHello(rw)
	if err != nil {
		return "", err
	}
	want := authClientMAC(secret, &hello.nonce, &ch.nonce, ch.name)
	if !hmac.Equal(want[:], ch.mac[:]) {
		_, _ = rw.Write([]byte{authStatusRefused})
		return ch.name, fmt.Errorf("%w: node %q failed to prove the cluster secret", ErrAuth, ch.name)
	}
	proof := authServerMAC(secret, &ch.nonce, &hello.nonce)
	reply := append([]byte{authStatusOK}, proof[:]...)
	if _, err := rw.Write(reply); err != nil {
		return "", err
	}
	return ch.name, nil
}

// authDial runs the client side of the handshake on rw as node name, drawing its
// nonce from rnd. Protocol and proof failures wrap ErrAuth; I/O errors are returned
// as they are (the caller treats them as an unreachable peer).
func authDial(rw io.ReadWriter, secret []byte, name string, rnd io.Reader) error {
	if !authValidName(name) {
		return fmt.Errorf("%w: bad node name %q", ErrAuth, name)
	}
	sh, err := readServerHello(rw)
	if err != nil {
		return err
	}
	if sh.version != authVersion {
		return fmt.Errorf("%w: peer protocol version %d, want %d", ErrAuth, sh.version, authVersion)
	}
	ch := authClientHello{version: authVersion, name: name}
	if _, err := io.ReadFull(rnd, ch.nonce[:]); err != nil {
		return fmt.Errorf("cluster: handshake nonce: %w", err)
	}
	ch.mac = authClientMAC(secret, &sh.nonce, &ch.nonce, name)
	if _, err := rw.Write(appendClientHello(nil, &ch)); err != nil {
		return err
	}
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

// Package testcerts makes throwaway TLS certificates for tests: a CA, and
// certificates it signs for 127.0.0.1 and localhost, usable by servers and clients
// alike (nodes present theirs in both roles). Keys are ECDSA P-256. Nothing here is
// meant for production; it lives outside _test files only so that several packages'
// tests can share it.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority that signs leaf certificates.
type CA struct {
	// CertFile is the CA certificate in PEM.
	CertFile string
	// Pool holds the CA certificate.
	Pool *x509.CertPool

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

// Leaf is a certificate signed by a CA, with its key.
type Leaf struct {
	// CertFile and KeyFile are the PEM files.
	CertFile, KeyFile string
	// Cert is the loaded key pair.
	Cert tls.Certificate
}

// NewCA makes a CA named name and writes its certificate to dir.
func NewCA(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA certificate: %w", err)
	}
	ca := &CA{CertFile: filepath.Join(dir, name+"-ca.pem"), Pool: x509.NewCertPool(), cert: cert, key: key, dir: dir}
	ca.Pool.AddCert(cert)
	if err := writePEM(ca.CertFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return ca, nil
}

// NodeCA makes, in a temporary directory of t, a CA named "dynakv" and a leaf
// named "node" that it signed; it fails t on an error.
func NodeCA(t testing.TB) (*CA, *Leaf) {
	t.Helper()
	ca, err := NewCA(t.TempDir(), "dynakv")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf("node")
	if err != nil {
		t.Fatal(err)
	}
	return ca, leaf
}

// Leaf makes a certificate for 127.0.0.1, ::1 and localhost named name, for
// server and client authentication, and writes it and its key to the CA's dir.
func (ca *CA) Leaf(name string) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcerts: key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: key: %w", err)
	}
	l := &Leaf{CertFile: filepath.Join(ca.dir, name+".pem"), KeyFile: filepath.Join(ca.dir, name+"-key.pem")}
	if err := writePEM(l.CertFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	if err := writePEM(l.KeyFile, "EC PRIVATE KEY", kder); err != nil {
		return nil, err
	}
	if l.Cert, err = tls.LoadX509KeyPair(l.CertFile, l.KeyFile); err != nil {
		return nil, fmt.Errorf("testcerts: %w", err)
	}
	return l, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func writePEM(path, typ string, der []byte) error {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("testcerts: %w", err)
	}
	return nil
}

package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// What this file guards (README "Deploying safely" tells operators; admin.go guards
// the admin HTTP endpoints):
//
//   - TLS: with TLSCertFile and TLSKeyFile, the RESP and memcached ports and the
//     cluster transport speak TLS 1.2+. With TLSCAFile, the cluster transport is
//     mutual TLS (each node presents its certificate and checks the peer's against
//     the CA; the certificate must allow both server and client authentication),
//     and the client ports require a client certificate signed by the CA unless
//     TLSNoClientCerts. Without TLSCAFile, nodes check each other's
//     certificates against the system's roots. The secret handshake still runs
//     inside TLS; gossip (UDP and TCP) stays encrypted by the secret, not by TLS.

// tlsConfigs are the TLS configurations built from a Config: nil when TLS is off.
type tlsConfigs struct {
	clients       *tls.Config // RESP and memcached listeners
	http          *tls.Config // the HTTP listener, with Config.HTTPTLS
	clusterServer *tls.Config
	clusterClient *tls.Config
}

// loadTLS reads the certificate, key and CA files of c.
func (c Config) loadTLS() (tlsConfigs, error) {
	if c.TLSCertFile == "" {
		return tlsConfigs{}, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return tlsConfigs{}, fmt.Errorf("node: --tls-cert/--tls-key: %w", err)
	}
	var pool *x509.CertPool
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return tlsConfigs{}, fmt.Errorf("node: --tls-ca: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return tlsConfigs{}, fmt.Errorf("node: --tls-ca %s: no PEM certificate in it", c.TLSCAFile)
		}
	}
	base := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	out := tlsConfigs{clients: base.Clone(), clusterServer: base.Clone(), clusterClient: base.Clone()}
	if c.HTTPTLS {
		out.http = base.Clone()
	}
	out.clusterClient.RootCAs = pool // nil: the system's roots
	if pool != nil {
		out.clusterServer.ClientCAs = pool
		out.clusterServer.ClientAuth = tls.RequireAndVerifyClientCert
		if !c.TLSNoClientCerts {
			out.clients.ClientCAs = pool
			out.clients.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return out, nil
}

// validateTLS checks that the TLS fields go together.
func (c Config) validateTLS() error {
	switch {
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.TLSCAFile != "" && c.TLSCertFile == "":
		return errors.New("--tls-ca needs --tls-cert and --tls-key")
	case c.HTTPTLS && c.TLSCertFile == "":
		return errors.New("--http-tls needs --tls-cert and --tls-key")
	}
	return nil
}

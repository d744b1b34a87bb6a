package nbd

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/thinblk/thinblk/block"
	"github.com/thinblk/thinblk/internal/nbdwire"
)

// Target is a parsed NBD URL.
type Target struct {
	Network string // "tcp" or "unix"
	Address string // host:port or socket path
	Host    string // for TLS server name checks
	Export  string
	TLS     bool
	// CertDir is the tls-certificates folder ("" = none given).
	CertDir string
}

// ParseURL parses nbd://, nbd+unix://, nbds:// and nbds+unix:// URLs.
func ParseURL(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("%w: NBD URL %q: %v", block.ErrInvalid, raw, err)
	}
	var t Target
	switch strings.ToLower(u.Scheme) {
	case "nbd", "nbd+tcp":
		t.Network = "tcp"
	case "nbds", "nbds+tcp":
		t.Network, t.TLS = "tcp", true
	case "nbd+unix":
		t.Network = "unix"
	case "nbds+unix":
		t.Network, t.TLS = "unix", true
	default:
		return Target{}, fmt.Errorf("%w: %q is not an NBD URL", block.ErrInvalid, raw)
	}
	t.Export = strings.TrimPrefix(u.Path, "/")
	q := u.Query()
	t.CertDir = q.Get("tls-certificates")
	if t.Network == "unix" {
		if u.Host != "" {
			return Target{}, fmt.Errorf("%w: NBD URL %q: a unix URL has no host", block.ErrInvalid, raw)
		}
		t.Address = q.Get("socket")
		if t.Address == "" {
			return Target{}, fmt.Errorf("%w: NBD URL %q: missing ?socket=PATH", block.ErrInvalid, raw)
		}
		t.Host = "localhost"
		return t, nil
	}
	t.Host = u.Hostname()
	if t.Host == "" {
		t.Host = "localhost"
	}
	port := u.Port()
	if port == "" {
		port = strconv.Itoa(nbdwire.DefaultPort)
	}
	t.Address = net.JoinHostPort(t.Host, port)
	return t, nil
}

// tlsConfig loads a client TLS configuration from a libnbd-style folder:
// ca-cert.pem (required) and client-cert.pem/client-key.pem (optional).
func (t Target) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: t.Host, MinVersion: tls.VersionTLS12}
	if t.CertDir == "" {
		return cfg, nil // system roots
	}
	pem, err := os.ReadFile(filepath.Join(t.CertDir, "ca-cert.pem"))
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("TLS CA %s: no PEM certificates", t.CertDir)
	}
	cfg.RootCAs = pool
	certFile := filepath.Join(t.CertDir, "client-cert.pem")
	if _, err := os.Stat(certFile); err == nil {
		cert, err := tls.LoadX509KeyPair(certFile, filepath.Join(t.CertDir, "client-key.pem"))
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

package nbd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thinblk/thinblk/internal/testutil"
	"github.com/thinblk/thinblk/protocol/mem"
	client "github.com/thinblk/thinblk/protocol/nbd"
)

// makeTestPKI writes a CA, a server certificate for 127.0.0.1/localhost and
// a client certificate into dir, with the file names qemu and libnbd look
// for (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem,
// client-key.pem).
func makeTestPKI(t *testing.T, dir string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "thinblk test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write("ca-cert.pem", "CERTIFICATE", caDER)
	leaf := func(prefix string, serial int64, usage x509.ExtKeyUsage) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: prefix},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(prefix+"-cert.pem", "CERTIFICATE", der)
		write(prefix+"-key.pem", "PRIVATE KEY", kder)
	}
	leaf("server", 2, x509.ExtKeyUsageServerAuth)
	leaf("client", 3, x509.ExtKeyUsageClientAuth)
}

func TestTLS(t *testing.T) {
	testutil.NeedTool(t, "nbdinfo", "qemu-img")
	pki := t.TempDir()
	makeTestPKI(t, pki)
	cfg, err := LoadTLSConfig(filepath.Join(pki, "server-cert.pem"), filepath.Join(pki, "server-key.pem"), filepath.Join(pki, "ca-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	m := mem.New(1 << 20)
	m.Pwrite([]byte("hello over TLS"), 0, 0)
	s := &Server{Exports: map[string]*Export{"disk": {Name: "disk", Node: m}}, TLSConfig: cfg, Logger: testLogger(t)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	go s.Serve(l)
	t.Cleanup(func() { s.Shutdown(t.Context()) })

	plain := "nbd://127.0.0.1:" + port + "/disk"
	secure := "nbds://127.0.0.1:" + port + "/disk?tls-certificates=" + pki

	// nbdinfo over TLS works and sees the export.
	out, err := exec.Command("nbdinfo", secure).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "export-size: 1048576") {
		t.Fatalf("nbdinfo over TLS: %v\n%s", err, out)
	}
	// qemu-img over TLS.
	out, err = exec.Command("qemu-img", "info",
		"--object", "tls-creds-x509,id=tls0,dir="+pki+",endpoint=client",
		"--image-opts", "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port="+port+",export=disk,tls-creds=tls0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "virtual size: 1 MiB") {
		t.Fatalf("qemu-img info over TLS: %v\n%s", err, out)
	}
	// Our client over TLS reads the data.
	c, err := client.Dial(secure, true)
	if err != nil {
		t.Fatalf("thinblk client over TLS: %v", err)
	}
	p := make([]byte, 14)
	if err := c.Pread(p, 0); err != nil || string(p) != "hello over TLS" {
		t.Fatalf("read over TLS: %q %v", p, err)
	}
	c.Close()

	// Plaintext is refused by every client.
	if out, err := exec.Command("nbdinfo", plain).CombinedOutput(); err == nil {
		t.Fatalf("nbdinfo without TLS connected:\n%s", out)
	}
	if out, err := exec.Command("qemu-img", "info", plain).CombinedOutput(); err == nil {
		t.Fatalf("qemu-img without TLS connected:\n%s", out)
	}
	if _, err := client.Dial(plain, true); err == nil {
		t.Fatal("thinblk client without TLS connected")
	}
	// A client without a certificate is refused (the server requires one).
	noCert := t.TempDir()
	ca, _ := os.ReadFile(filepath.Join(pki, "ca-cert.pem"))
	os.WriteFile(filepath.Join(noCert, "ca-cert.pem"), ca, 0o600)
	if _, err := client.Dial("nbds://127.0.0.1:"+port+"/disk?tls-certificates="+noCert, true); err == nil {
		t.Fatal("client without a certificate connected")
	}
}

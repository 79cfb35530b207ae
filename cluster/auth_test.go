package cluster

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
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/redistest"
)

// TestACLUserAndPassword: a Redis whose default user is off and whose
// app user has a password. The right user connects and shares trips; a
// wrong password is refused, and neither password is shown in the
// status, its error or the logs.
func TestACLUserAndPassword(t *testing.T) {
	const pw, wrong = "s3cret-acl-pw", "n0t-the-pw"
	srv := redistest.StartWith(t, redistest.Options{Args: []string{"--user", "default", "off",
		"--user", "app", "on", ">" + pw, "~*", "&*", "+@all"},
		Ping: func(string) error { return nil }}) // PING needs a user now
	redistest.WaitFor(t, 5*time.Second, "redis to accept connections", func() bool {
		c, err := net.Dial("tcp", srv.Addr())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	good := "redis://app:" + pw + "@" + srv.Addr() + "/0"
	a := newNode(t, good, "a", nodeOpts{})
	b := newNode(t, good, "b", nodeOpts{})
	a.startConnected(t)
	b.startConnected(t)
	trip(t, a.e())
	waitUntil(t, 5*time.Second, "b to apply a's trip", func() bool { return b.e().Status() == breaker.Unavailable })

	bad := newNode(t, "redis://app:"+wrong+"@"+srv.Addr()+"/0", "bad", nodeOpts{})
	bad.c.Start()
	waitUntil(t, 5*time.Second, "the wrong password to be refused", func() bool { return bad.c.Status().LastError != "" })
	for _, n := range []*node{a, bad} {
		st := n.c.Status()
		shown := st.URL + " " + st.LastError + " " + n.logs.String()
		if strings.Contains(shown, pw) || strings.Contains(shown, wrong) {
			t.Errorf("replica %s shows a password: %s", n.c.Replica(), shown)
		}
		if !strings.Contains(st.URL, "app:xxxxx@") {
			t.Errorf("replica %s: got URL %q; want the user shown and the password redacted", n.c.Replica(), st.URL)
		}
	}
	if bad.c.Status().Connected {
		t.Errorf("a wrong password connected")
	}
	t.Logf("refused: %s", bad.c.Status().LastError)
}

// TestTLS: rediss:// to a Redis serving TLS only, with a certificate of
// the test's own CA (trusted through SSL_CERT_FILE, as an operator's
// private CA would be).
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestCA(t, dir)
	t.Setenv("SSL_CERT_FILE", caFile) // read once, at the process's first TLS verification
	port, err := freeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.StartWith(t, redistest.Options{Port: port, Args: []string{"--port", "0", "--tls-port", port2s(port),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no"},
		Ping: func(addr string) error {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		}})
	url := "rediss://localhost:" + port2s(srv.Port()) + "/0"
	a := newNode(t, url, "a", nodeOpts{})
	b := newNode(t, url, "b", nodeOpts{})
	a.startConnected(t)
	b.startConnected(t)
	trip(t, a.e())
	waitUntil(t, 5*time.Second, "b to apply a's trip over TLS", func() bool { return b.e().Status() == breaker.Unavailable })

	plain := newNode(t, "redis://localhost:"+port2s(srv.Port())+"/0", "plain", nodeOpts{})
	plain.c.Start()
	waitUntil(t, 5*time.Second, "plain text to fail against the TLS port", func() bool { return plain.c.Status().LastError != "" })
	if plain.c.Status().Connected {
		t.Errorf("redis:// connected to a TLS-only port")
	}
}

func port2s(p int) string { return strconv.Itoa(p) }

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeTestCA writes a CA and a server certificate for localhost and
// 127.0.0.1 signed by it.
func writeTestCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "healproxy test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER)
}

package management

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newHostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestVerifyHostKey: a known key passes; a different key for a known host
// and a host that is not listed are refused with messages naming the host
// and the offered key's fingerprint.
func TestVerifyHostKey(t *testing.T) {
	known, other := newHostKey(t), newHostKey(t)
	file := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(file, []byte(knownhosts.Line([]string{"10.0.0.2"}, known)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kh, err := knownhosts.New(file)
	if err != nil {
		t.Fatal(err)
	}
	cb := verifyHostKey(&Host{Name: "n2", KnownHosts: file}, kh)
	addr := &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 22}
	if err := cb("10.0.0.2:22", addr, known); err != nil {
		t.Fatalf("the known key was refused: %v", err)
	}
	for _, tc := range []struct {
		name, host string
		key        ssh.PublicKey
		want       []string
	}{
		{"mismatch", "10.0.0.2:22", other, []string{"host n2", "HOST KEY MISMATCH", ssh.FingerprintSHA256(other), ssh.FingerprintSHA256(known)}},
		{"unknown host", "10.0.0.3:22", known, []string{"host n2", "unknown host 10.0.0.3:22", ssh.FingerprintSHA256(known), file}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := cb(tc.host, &net.TCPAddr{IP: net.ParseIP(strings.Split(tc.host, ":")[0]), Port: 22}, tc.key)
			if !errors.Is(err, ErrHostKey) {
				t.Fatalf("got %v, want ErrHostKey", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not name %q", err, w)
				}
			}
		})
	}
}

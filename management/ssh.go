package management

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Errors that classify a host that could not be used.
var (
	// ErrUnreachable: the host's SSH server could not be reached.
	ErrUnreachable = errors.New("management: unreachable")
	// ErrHostKey: the host's key is unknown or does not match known_hosts.
	ErrHostKey = errors.New("management: host key refused")
)

// Runner runs argument vectors on one host. Stdin may be nil.
type Runner interface {
	Run(ctx context.Context, argv []string, stdin io.Reader) (stdout, stderr []byte, err error)
}

// RemoteError is a remote command that ran and failed.
type RemoteError struct {
	Argv   []string
	Status int
	Stderr string
}

func (e *RemoteError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = "no output"
	}
	return fmt.Sprintf("%s exited with %d: %s", e.Argv[0], e.Status, msg)
}

// SSH is a connection to one host.
type SSH struct {
	Host   *Host
	client *ssh.Client
}

// Warnf receives warnings (a host key not verified).
type Warnf func(format string, args ...any)

// Dial connects to the host over SSH within timeout, verifying its host key
// against the host's known_hosts file unless insecure_ignore_host_key is
// set (then warn is told, loudly).
func Dial(ctx context.Context, h *Host, timeout time.Duration, warn Warnf) (*SSH, error) {
	var signers []ssh.Signer
	keyFile := h.KeyFile
	if keyFile == "" { // as ssh does: the user's default keys
		home, _ := os.UserHomeDir()
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if p := filepath.Join(home, ".ssh", k); fileExists(p) {
				keyFile = p
				break
			}
		}
	}
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("host %s: key file: %w", h.Name, err)
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("host %s: key file %s: %w", h.Name, keyFile, err)
		}
		signers = append(signers, s)
	} else {
		return nil, fmt.Errorf("host %s: key_file is not set and there is no ~/.ssh/id_ed25519, id_ecdsa or id_rsa", h.Name)
	}
	var cb ssh.HostKeyCallback
	if h.InsecureIgnoreHostKey {
		warn("WARNING: host %s: insecure_ignore_host_key is set: its SSH host key is NOT verified; anyone on the path can impersonate it", h.Name)
		cb = ssh.InsecureIgnoreHostKey() //nolint:gosec // asked for in the fleet file, and said loudly
	} else {
		kh, err := knownhosts.New(h.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("host %s: known_hosts: %w", h.Name, err)
		}
		cb = verifyHostKey(h, kh)
	}
	addr := net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
	cfg := &ssh.ClientConfig{
		User:            h.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: cb,
		Timeout:         timeout,
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("host %s: ssh %s: %w: %w", h.Name, addr, ErrUnreachable, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		var hk *hostKeyError
		if errors.As(err, &hk) {
			return nil, hk // without the ssh package's "handshake failed" around it
		}
		return nil, fmt.Errorf("host %s: ssh %s: %w", h.Name, addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return &SSH{Host: h, client: ssh.NewClient(c, chans, reqs)}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// hostKeyError is a refused host key; it is ErrHostKey.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string        { return e.msg }
func (e *hostKeyError) Is(target error) bool { return target == ErrHostKey }

// verifyHostKey turns knownhosts' answers into messages that name the host
// and the key's fingerprint.
func verifyHostKey(h *Host, kh ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := kh(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			fp := ssh.FingerprintSHA256(key)
			if len(ke.Want) == 0 {
				return &hostKeyError{fmt.Sprintf("host %s: host key refused: unknown host %s: its %s key %s is not in %s (check the fingerprint and add it, e.g. with ssh-keyscan)", h.Name, hostname, key.Type(), fp, h.KnownHosts)}
			}
			var known []string
			for _, w := range ke.Want {
				known = append(known, fmt.Sprintf("%s at %s:%d", ssh.FingerprintSHA256(w.Key), w.Filename, w.Line))
			}
			return &hostKeyError{fmt.Sprintf("host %s: host key refused: HOST KEY MISMATCH for %s: it offers %s key %s, known_hosts has %s", h.Name, hostname, key.Type(), fp, strings.Join(known, ", "))}
		}
		if err != nil {
			return &hostKeyError{fmt.Sprintf("host %s: host key refused: %v", h.Name, err)}
		}
		return nil
	}
}

// Close closes the connection.
func (s *SSH) Close() error { return s.client.Close() }

// Run runs argv on the host, each argument quoted for the remote shell.
func (s *SSH) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	sess, err := s.client.NewSession()
	if err != nil {
		return nil, nil, fmt.Errorf("host %s: new session: %w: %w", s.Host.Name, ErrUnreachable, err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr, sess.Stdin = &out, &errb, stdin
	done := make(chan error, 1)
	go func() { done <- sess.Run(Command(argv)) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		<-done
		return out.Bytes(), errb.Bytes(), fmt.Errorf("host %s: %s: %w", s.Host.Name, argv[0], ctx.Err())
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return out.Bytes(), errb.Bytes(), &RemoteError{Argv: argv, Status: ee.ExitStatus(), Stderr: errb.String()}
	}
	if err != nil {
		return out.Bytes(), errb.Bytes(), fmt.Errorf("host %s: %s: %w", s.Host.Name, argv[0], err)
	}
	return out.Bytes(), errb.Bytes(), nil
}

// DialContext opens a TCP connection from the host to addr (SSH port
// forwarding), so that `manage` reaches a control plane listening on the
// host's loopback.
func (s *SSH) DialContext(_ context.Context, _, addr string) (net.Conn, error) {
	return s.client.Dial("tcp", addr)
}

// FileSHA256 is the hex SHA-256 of a local file.
func FileSHA256(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Upload copies the local file to remote over SFTP (through a temporary
// file renamed into place, mode 0755) unless the remote copy's SHA-256 is
// already sum. It says whether it copied.
func (s *SSH) Upload(ctx context.Context, local, remote, sum string) (bool, error) {
	out, _, err := s.Run(ctx, []string{"sha256sum", remote}, nil)
	if err == nil && strings.HasPrefix(string(out), sum+" ") {
		return false, nil
	}
	c, err := sftp.NewClient(s.client)
	if err != nil {
		return false, fmt.Errorf("host %s: sftp: %w", s.Host.Name, err)
	}
	defer c.Close()
	if err := c.MkdirAll(path.Dir(remote)); err != nil {
		return false, fmt.Errorf("host %s: sftp mkdir %s: %w", s.Host.Name, path.Dir(remote), err)
	}
	src, err := os.Open(local)
	if err != nil {
		return false, err
	}
	defer src.Close()
	tmp := remote + ".upload"
	dst, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return false, fmt.Errorf("host %s: sftp create %s: %w", s.Host.Name, tmp, err)
	}
	if _, err := dst.ReadFrom(src); err != nil {
		dst.Close()
		return false, fmt.Errorf("host %s: sftp write %s: %w", s.Host.Name, tmp, err)
	}
	if err := dst.Close(); err != nil {
		return false, fmt.Errorf("host %s: sftp write %s: %w", s.Host.Name, tmp, err)
	}
	if err := c.Chmod(tmp, 0o755); err != nil {
		return false, fmt.Errorf("host %s: sftp chmod: %w", s.Host.Name, err)
	}
	if err := c.PosixRename(tmp, remote); err != nil {
		return false, fmt.Errorf("host %s: sftp rename %s: %w", s.Host.Name, remote, err)
	}
	return true, nil
}

// WriteFile writes data to a remote file (mode 0600) over SFTP.
func (s *SSH) WriteFile(remote string, data []byte) error {
	c, err := sftp.NewClient(s.client)
	if err != nil {
		return fmt.Errorf("host %s: sftp: %w", s.Host.Name, err)
	}
	defer c.Close()
	if err := c.MkdirAll(path.Dir(remote)); err != nil {
		return err
	}
	f, err := c.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("host %s: sftp create %s: %w", s.Host.Name, remote, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

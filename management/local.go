package management

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// localConn is this machine as a Conn, for a control plane that runs
// where `manage` runs.
type localConn struct{}

var _ Conn = localConn{}

func (localConn) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.Bytes(), errb.Bytes(), &RemoteError{Argv: argv, Status: ee.ExitCode(), Stderr: errb.String()}
	}
	if err != nil {
		return out.Bytes(), errb.Bytes(), fmt.Errorf("%s: %w", argv[0], err)
	}
	return out.Bytes(), errb.Bytes(), nil
}

// Upload is never needed locally: the control plane runs this binary.
func (localConn) Upload(context.Context, string, string, string) (bool, error) { return false, nil }

func (localConn) WriteFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

func (localConn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func (localConn) Close() error { return nil }

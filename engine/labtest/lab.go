// Package labtest owns the multi-host lab of the tests: it brings up N real
// hosts with scripts/lab.sh (one network namespace, Docker Engine and sshd
// each) once per test package, under a prefix and directory of its own so
// that several packages' labs can run side by side, reaches into the hosts
// (engines, processes, TCP connections into a host's network namespace), and
// tears the lab down when the package's tests end. It also owns the
// invariant the multi-host tests check after every operation (Check).
//
// Tests that need the lab are named Test...Lab... and call Get; a package
// using it calls Shutdown from its TestMain after m.Run.
package labtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine"
)

// Host is one lab host, as `lab.sh ls` describes it.
type Host struct {
	Name       string // host name, also its network namespace's name
	Addr       string // its address on the lab LAN
	DockerHost string // its engine (unix socket, reachable from the test process)
	SSHPort    int
	Engine     *engine.Client
}

// Lab is a running lab.
type Lab struct {
	Dir, Prefix string
	Script      string // scripts/lab.sh
	Hosts       []*Host
}

var (
	mu      sync.Mutex
	current *Lab
	failure error
	tried   int // the largest N asked for so far
)

// Get returns this package's lab with at least n hosts, bringing it up on
// first use. When the lab cannot be built (not root, no network
// namespaces, no dockerd) the test is skipped with the reason, or fails
// under RSWARM_REQUIRE=all.
func Get(t testing.TB, n int) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test (skipped by -short)")
	}
	mu.Lock()
	defer mu.Unlock()
	if failure == nil && (current == nil || len(current.Hosts) < n) && n > tried {
		tried = n
		l := current
		if l == nil {
			l, failure = newLab()
		}
		if failure == nil {
			failure = l.up(n)
			current = l
		}
	}
	if failure == nil && len(current.Hosts) < n {
		failure = fmt.Errorf("the lab has %d hosts, %d needed", len(current.Hosts), n)
	}
	apitest.Need(t, "lab", failure)
	return current
}

// Fresh brings up a lab of n hosts of its own (not the package's shared
// one), taken down when the test or benchmark ends; for measuring the
// bring-up itself. It skips, or fails, as Get does.
func Fresh(tb testing.TB, n int) *Lab {
	tb.Helper()
	l, err := newLab()
	if err == nil {
		tb.Cleanup(func() {
			if out, err := l.script(context.Background(), "down"); err != nil {
				tb.Errorf("lab.sh down: %v\n%s", err, out)
			}
			for _, h := range l.Hosts {
				h.Engine.Close()
			}
			os.RemoveAll(l.Dir)
		})
		err = l.up(n)
	}
	apitest.Need(tb, "lab", err)
	return l
}

// Shutdown takes this package's lab down, if one was brought up.
func Shutdown() {
	mu.Lock()
	defer mu.Unlock()
	if current == nil {
		return
	}
	if out, err := current.script(context.Background(), "down"); err != nil {
		fmt.Fprintf(os.Stderr, "labtest: lab.sh down: %v\n%s", err, out)
	}
	for _, h := range current.Hosts {
		h.Engine.Close()
	}
	os.RemoveAll(current.Dir)
	current = nil
}

func newLab() (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (network namespaces, dockerd)")
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return nil, errors.New("cannot locate scripts/lab.sh")
	}
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "lab.sh")
	if _, err := os.Stat(script); err != nil {
		return nil, err
	}
	sweep(script)
	var b [3]byte
	_, _ = rand.Read(b[:])
	prefix := "t" + hex.EncodeToString(b[:])
	dir, err := os.MkdirTemp("", labDirPattern)
	if err != nil {
		return nil, err
	}
	owner := fmt.Sprintf("%d %s\n", os.Getpid(), prefix)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600); err != nil {
		return nil, err
	}
	return &Lab{Dir: dir, Prefix: prefix, Script: script}, nil
}

const (
	labDirPattern = "rslab-"
	ownerFile     = "owner" // "<pid> <prefix>" of the test process that made the lab
)

// sweep takes down labs left by test processes that died without taking
// theirs down (a panic, a kill): their owner PID no longer runs. Labs of
// live processes, and labs not made by this package, are left alone.
func sweep(script string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), labDirPattern+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		var pid int
		var prefix string
		if _, err := fmt.Sscan(string(b), &pid, &prefix); err != nil || pid <= 0 || prefix == "" {
			continue
		}
		if unix.Kill(pid, 0) == nil || !errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			continue // still running (or not ours to judge)
		}
		cmd := exec.Command(script, "down")
		cmd.Env = append(os.Environ(), "RSWARM_LAB_DIR="+dir, "RSWARM_LAB_PREFIX="+prefix)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "labtest: taking down the stale lab %s: %v\n%s", dir, err, out)
			continue
		}
		os.RemoveAll(dir)
	}
}

// env is the environment lab.sh runs with: this lab's directory and prefix.
func (l *Lab) env() []string {
	return append(os.Environ(), "RSWARM_LAB_DIR="+l.Dir, "RSWARM_LAB_PREFIX="+l.Prefix)
}

func (l *Lab) script(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, l.Script, args...)
	cmd.Env = l.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return append(out.Bytes(), errb.Bytes()...), fmt.Errorf("lab.sh %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func (l *Lab) up(n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := l.script(ctx, "up", strconv.Itoa(n))
	if err != nil {
		_, _ = l.script(context.Background(), "down")
		return err
	}
	hosts, err := ParseHosts(out)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		if h.Engine, err = engine.New(h.DockerHost); err != nil {
			return err
		}
	}
	for _, h := range l.Hosts {
		h.Engine.Close()
	}
	l.Hosts = hosts
	return nil
}

// ParseHosts reads `lab.sh ls` lines: NAME ADDRESS DOCKER_HOST SSH_PORT.
func ParseHosts(out []byte) ([]*Host, error) {
	var hosts []*Host
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("lab.sh: a host line has %d fields, want 4: %q", len(f), sc.Text())
		}
		port, err := strconv.Atoi(f[3])
		if err != nil || net.ParseIP(f[1]) == nil {
			return nil, fmt.Errorf("lab.sh: bad host line %q", sc.Text())
		}
		hosts = append(hosts, &Host{Name: f[0], Addr: f[1], DockerHost: f[2], SSHPort: port})
	}
	if len(hosts) == 0 {
		return nil, errors.New("lab.sh: no hosts listed")
	}
	return hosts, nil
}

// Host returns host i (1-based), as lab.sh numbers them.
func (l *Lab) Host(i int) *Host { return l.Hosts[i-1] }

// ByName returns the host named name, or nil.
func (l *Lab) ByName(name string) *Host {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Command returns a command that runs argv on host h (`lab.sh exec`), with
// DOCKER_HOST set to its engine.
func (l *Lab) Command(ctx context.Context, h *Host, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, l.Script, append([]string{"exec", h.Name}, argv...)...)
	cmd.Env = l.env()
	return cmd
}

// Run runs argv on h to completion and returns its combined output.
func (l *Lab) Run(ctx context.Context, h *Host, argv ...string) (string, error) {
	out, err := l.Command(ctx, h, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w: %s", h.Name, strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

// Proc is a process started on a lab host by Start.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited returns a channel that delivers the process's end.
func (p *Proc) Exited() <-chan error { return p.done }

// Stop interrupts the process (SIGINT, as Ctrl-C) and waits for it to end,
// killing it after timeout. It returns the process's exit error.
func (p *Proc) Stop(timeout time.Duration) error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("%s did not stop within %v of SIGINT; killed", p.Name, timeout)
	}
}

// Start starts argv on host h in the background. It is stopped (SIGINT,
// then killed) when the test ends, and its output is logged if the test
// failed. nsenter execs argv in place, so the PID is argv's own.
func (l *Lab) Start(t testing.TB, h *Host, name string, argv ...string) *Proc {
	t.Helper()
	cmd := exec.Command(l.Script, append([]string{"exec", h.Name}, argv...)...)
	cmd.Env = l.env()
	p := &Proc{Name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s on %s: %v", name, h.Name, err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := p.Stop(30 * time.Second); err != nil && !isInterrupt(err) {
			t.Errorf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("---- output of %s on %s ----\n%s", name, h.Name, p.Output())
		}
	})
	return p
}

func isInterrupt(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && (ee.ExitCode() == 130 || strings.Contains(ee.Error(), "interrupt"))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// DialContext opens a connection from inside h's network namespace (the
// lab has no route to the test process's own): the socket is created on
// an OS thread moved into that namespace, and belongs to it from then on.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, err, restored := dialIn(ctx, "/run/netns/"+h.Name, network, addr)
		if restored {
			runtime.UnlockOSThread()
		} // else the thread ends with this goroutine, never to be reused in the wrong namespace
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func dialIn(ctx context.Context, nsPath, network, addr string) (c net.Conn, err error, restored bool) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err, true
	}
	defer self.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("lab host namespace: %w", err), true
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter %s: %w", nsPath, err), true
	}
	var d net.Dialer
	c, err = d.DialContext(ctx, network, addr)
	return c, err, unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil
}

// Forward listens on a loopback port of the test process and forwards
// every connection to addr as dialled from inside h's network namespace,
// so that ordinary clients (api.Client) reach servers on lab addresses.
// It returns the loopback host:port; forwarding stops when the test ends.
func (h *Host) Forward(t testing.TB, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.pipe(ctx, c, addr)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// pipe copies between c and a connection to addr in h's namespace until
// either side closes or ctx ends.
func (h *Host) pipe(ctx context.Context, c net.Conn, addr string) {
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	r, err := h.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return
	}
	defer r.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(r, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, r); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	c.Close()
	r.Close()
	<-done
}

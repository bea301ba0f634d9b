package management

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file is the host side: what the uploaded binary does on each host
// when `manage` runs `rswarm manage host ...` there over SSH.

// Engine is what the host side needs of the host's Docker Engine.
type Engine interface {
	// Info says whether the engine answers, and who it is.
	Info(ctx context.Context) (EngineInfo, error)
	// RemoveLabelled removes every container that carries the label
	// rswarm.job or rswarm.task (and no other) and returns their names.
	RemoveLabelled(ctx context.Context) ([]string, error)
	// LeaveSwarm takes the engine out of its swarm unless it is a manager
	// (the control plane's own engine) or in no swarm; it says whether it left.
	LeaveSwarm(ctx context.Context) (bool, error)
}

// CleanResult is the host side's answer to stop and clean.
type CleanResult struct {
	PID     int      `json:"pid,omitempty"`
	Stopped bool     `json:"stopped,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Left    bool     `json:"left,omitempty"`
}

// CleanHost removes the host's RSwarm containers and, with leave, takes a
// worker's engine out of the swarm.
func CleanHost(ctx context.Context, eng Engine, leave bool) (CleanResult, error) {
	var r CleanResult
	var err error
	if r.Removed, err = eng.RemoveLabelled(ctx); err != nil {
		return r, err
	}
	if leave {
		r.Left, err = eng.LeaveSwarm(ctx)
	}
	return r, err
}

// EngineInfo is the engine's answer to Info.
type EngineInfo struct {
	Hostname   string `json:"hostname"`
	Version    string `json:"version"`
	NodeID     string `json:"node_id,omitempty"`
	SwarmState string `json:"swarm_state"`
	Manager    bool   `json:"manager"`
	NCPU       int    `json:"ncpu"`
	MemTotal   int64  `json:"mem_total"`
}

// Probe is a host's report of what it has.
type Probe struct {
	Hostname string `json:"hostname"`
	// Docker is the engine's answer, or nil with DockerError.
	Docker      *EngineInfo `json:"docker,omitempty"`
	DockerError string      `json:"docker_error,omitempty"`
	Qdiscs      Qdiscs      `json:"qdiscs"`
	// TC says whether the tc program is on the host's PATH.
	TC bool `json:"tc"`
	// Running maps the names of the processes started by `manage`
	// (control, worker) to their PIDs, for those still running.
	Running map[string]int `json:"running"`
}

// ProbeHost describes the host the binary runs on. eng may be nil.
func ProbeHost(ctx context.Context, workdir string, eng Engine) Probe {
	p := Probe{Running: map[string]int{}}
	p.Hostname, _ = os.Hostname()
	if eng != nil {
		info, err := eng.Info(ctx)
		if err != nil {
			p.DockerError = err.Error()
		} else {
			p.Docker = &info
		}
	} else {
		p.DockerError = "no Docker Engine client"
	}
	p.Qdiscs = kernelQdiscs()
	if _, err := exec.LookPath("tc"); err == nil {
		p.TC = true
	}
	for _, name := range []string{"control", "worker"} {
		if pid, ok := alivePID(PIDFile(workdir, name)); ok {
			p.Running[name] = pid
		}
	}
	return p
}

func kernelQdiscs() Qdiscs {
	var config string
	if f, err := os.Open("/proc/config.gz"); err == nil {
		if z, err := gzip.NewReader(f); err == nil {
			b, _ := io.ReadAll(z)
			config = string(b)
		}
		f.Close()
	}
	var sys, files []string
	if ents, err := os.ReadDir("/sys/module"); err == nil {
		for _, e := range ents {
			sys = append(sys, e.Name())
		}
	}
	var uts syscall.Utsname
	if syscall.Uname(&uts) == nil {
		rel := utsString(uts.Release[:])
		_ = filepath.WalkDir(filepath.Join("/lib/modules", rel, "kernel", "net", "sched"), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, d.Name())
			}
			return nil
		})
	}
	return ParseQdiscs(config, sys, files)
}

func utsString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// PIDFile and LogFile are where a process started by `manage` records its
// PID and writes its log on its host.
func PIDFile(workdir, name string) string { return filepath.Join(workdir, "run", name+".pid") }

// LogFile is the log of a process started by `manage`.
func LogFile(workdir, name string) string { return filepath.Join(workdir, "log", name+".log") }

// BinaryPath is where `manage` puts the rswarm binary on a host.
func BinaryPath(workdir string) string { return filepath.Join(workdir, "bin", "rswarm") }

// alivePID reads a PID file and says whether that process runs an rswarm
// binary (so that a PID reused by another program is never signalled).
func alivePID(pidfile string) (int, bool) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return pid, false
	}
	argv0, _, _ := bytes.Cut(cmd, []byte{0})
	if !strings.HasPrefix(filepath.Base(string(argv0)), "rswarm") {
		return pid, false
	}
	// A zombie still has a cmdline until reaped; its state says Z.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return pid, false
		}
	}
	return pid, true
}

// Spawn starts argv detached from the SSH session (own session, stdin from
// /dev/null, output appended to logfile), records its PID in pidfile and
// returns it. If the process of pidfile already runs with the same
// arguments and binary, it starts nothing and returns that PID with
// started false; one that runs other arguments, or a binary since replaced
// (a new upload), is stopped and started again (restarted true).
func Spawn(pidfile, logfile string, argv []string) (pid int, started, restarted bool, err error) {
	if pid, ok := alivePID(pidfile); ok {
		if current(pid, argv) {
			return pid, false, false, nil
		}
		if _, err := StopPID(pidfile, 20*time.Second); err != nil && !errors.Is(err, ErrNotRunning) {
			return pid, false, false, err
		}
		restarted = true
	}
	for _, d := range []string{filepath.Dir(pidfile), filepath.Dir(logfile)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, false, false, err
		}
	}
	logf, err := os.OpenFile(logfile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, false, false, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s started by rswarm manage: %q\n", time.Now().UTC().Format(time.RFC3339), argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, false, false, err
	}
	pid = cmd.Process.Pid
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return 0, false, false, err
	}
	_ = cmd.Process.Release()
	return pid, true, restarted, nil
}

// current says whether process pid runs argv from a binary that was not
// replaced since it started.
func current(pid int, argv []string) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	if string(cmd) != strings.Join(argv, "\x00")+"\x00" {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && !strings.HasSuffix(exe, " (deleted)")
}

// ErrNotRunning says a PID file named no running rswarm process.
var ErrNotRunning = errors.New("not running")

// StopPID stops the process of pidfile: SIGTERM, then SIGKILL after
// timeout. It returns ErrNotRunning when there was none (and removes a
// stale PID file).
func StopPID(pidfile string, timeout time.Duration) (int, error) {
	pid, ok := alivePID(pidfile)
	if !ok {
		_ = os.Remove(pidfile)
		return pid, ErrNotRunning
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return pid, fmt.Errorf("signal %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, ok := alivePID(pidfile); !ok {
			_ = os.Remove(pidfile)
			return pid, nil
		}
		time.Sleep(50 * time.Millisecond) // polling another process's exit: there is no wait for non-children
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = os.Remove(pidfile)
	return pid, nil
}

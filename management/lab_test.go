package management

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine/labtest"
)

// The lab tests use the package's lab of three hosts (engine/labtest:
// scripts/lab.sh under a prefix of its own, once per package), build the
// rswarm binary once, and run `rswarm manage` from the lab's first host, as
// a user would: the lab's SSH servers are reachable from inside the lab
// only. Host 1 runs the control plane, hosts 2 and 3 a Docker worker each.

type labEnv struct {
	lab *labtest.Lab
	dir string // lab directory
	bin string // the rswarm binary built for the tests
}

var (
	binOnce sync.Once
	binTmp  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	labtest.Shutdown()
	if binTmp != "" {
		os.RemoveAll(binTmp)
	}
	os.Exit(code)
}

// cmd runs lab.sh with this lab's directory and prefix.
func (l *labEnv) cmd(args ...string) *exec.Cmd {
	c := exec.Command(l.lab.Script, args...)
	c.Env = append(os.Environ(), "RSWARM_LAB_DIR="+l.lab.Dir, "RSWARM_LAB_PREFIX="+l.lab.Prefix)
	return c
}

func (l *labEnv) name(i int) string { return l.lab.Host(i).Name }
func (l *labEnv) addr(i int) string { return l.lab.Host(i).Addr }

// needLab returns the package's lab with the rswarm binary built, or skips
// (fails under RSWARM_REQUIRE=all).
func needLab(t *testing.T) *labEnv {
	t.Helper()
	lab := labtest.Get(t, 3)
	binOnce.Do(func() {
		if binTmp, binErr = os.MkdirTemp("", "rswarm-manage-test"); binErr != nil {
			return
		}
		if out, err := exec.Command("go", "build", "-o", filepath.Join(binTmp, "rswarm"), "../cmd/rswarm").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build rswarm: %v\n%s", err, out)
		}
	})
	apitest.Need(t, "rswarm binary", binErr)
	for _, p := range []string{"curl", "tc", "busybox"} {
		if _, err := exec.LookPath(p); err != nil {
			apitest.Need(t, p, err)
		}
	}
	return &labEnv{lab: lab, dir: lab.Dir, bin: filepath.Join(binTmp, "rswarm")}
}

// fleet writes a fleet file: control plane on host 1, workers on hosts
// 2 and 3, with edit applied to the text.
func (l *labEnv) fleet(t *testing.T, knownHosts string, timeout string) string {
	t.Helper()
	if knownHosts == "" {
		knownHosts = filepath.Join(l.dir, "ssh", "known_hosts")
	}
	text := fmt.Sprintf(`control_plane:
  host: %[1]s
defaults:
  key_file: %[4]s
  known_hosts: %[5]s
timeout: %[6]s
hosts:
  - {name: %[1]s, address: %[7]s, count: 0}
  - {name: %[2]s, address: %[8]s}
  - {name: %[3]s, address: %[9]s}
`, l.name(1), l.name(2), l.name(3), filepath.Join(l.dir, "ssh", "id_ed25519"), knownHosts, timeout, l.addr(1), l.addr(2), l.addr(3))
	f := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// manage runs `rswarm manage ARGS...` on host 1 and returns its stdout,
// stderr and exit code.
func (l *labEnv) manage(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	c := l.cmd(append([]string{"exec", l.name(1), l.bin, "manage"}, args...)...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("manage %v: %v", args, err)
	}
	t.Logf("manage %s (exit %d)\n%s%s", strings.Join(args, " "), code, errb.String(), out.String())
	return out.String(), errb.String(), code
}

// report runs a manage subcommand with -o json and decodes its report.
func (l *labEnv) report(t *testing.T, args ...string) (*FleetReport, int) {
	t.Helper()
	out, _, code := l.manage(t, append(args, "-o", "json")...)
	var rep FleetReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("manage %v: not a JSON report: %v\n%s", args, err, out)
	}
	return &rep, code
}

func hostOf(t *testing.T, rep *FleetReport, name string) *HostReport {
	t.Helper()
	for _, h := range rep.Hosts {
		if h.Host == name {
			return h
		}
	}
	t.Fatalf("no host %s in the report", name)
	return nil
}

// on runs a command on a lab host and returns its output.
func (l *labEnv) on(t *testing.T, host string, args ...string) string {
	t.Helper()
	out, err := l.cmd(append([]string{"exec", host}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %v\n%s", host, args, err, out)
	}
	return string(out)
}

var pidRE = regexp.MustCompile(`started \(pid (\d+)`)

func startedPIDs(rep *FleetReport) []int {
	var pids []int
	for _, h := range rep.Hosts {
		for _, n := range h.Notes {
			if m := pidRE.FindStringSubmatch(n); m != nil {
				p, _ := strconv.Atoi(m[1])
				pids = append(pids, p)
			}
		}
	}
	return pids
}

func TestManageLabUpJobStatusDown(t *testing.T) {
	l := needLab(t)
	fleet := l.fleet(t, "", "60s")
	n1, n2, n3 := l.name(1), l.name(2), l.name(3)
	// A container that is not RSwarm's: down must leave it alone.
	l.on(t, n2, "docker", "run", "-d", "--name", "fm-handmade", "rswarm/busybox:latest", "sleep", "3600")
	t.Cleanup(func() { _ = l.cmd("exec", n2, "docker", "rm", "-f", "fm-handmade").Run() })

	rep, code := l.report(t, "up", "-f", fleet)
	if code != 0 {
		t.Fatalf("manage up exited %d", code)
	}
	for _, n := range []string{n2, n3} {
		h := hostOf(t, rep, n)
		if h.State != StateReady || h.NodeID == "" || h.Cores < 1 || h.Memory <= 0 {
			t.Errorf("%s after up: %+v", n, h)
		}
	}
	pids := startedPIDs(rep)
	if len(pids) != 3 {
		t.Fatalf("want 3 started processes (control plane, 2 workers), got %v", pids)
	}
	cores := hostOf(t, rep, n2).Cores

	// Idempotent: a second up changes nothing and says so.
	out, _, code := l.manage(t, "up", "-f", fleet)
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("second up (exit %d) did not say nothing changed:\n%s", code, out)
	}

	// A job whose two tasks cannot both fit on one worker runs across both.
	job := apitest.Job("fmjob1", 2, cores, "sleep 2")
	body, _ := json.Marshal(job)
	jf := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(jf, body, 0o644); err != nil {
		t.Fatal(err)
	}
	l.on(t, n1, "curl", "-sf", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@"+jf, "http://127.0.0.1:5001/api/v1/jobs")
	var nodes map[string]bool
	apitest.Eventually(t, 60*time.Second, func() error {
		var j struct {
			Status string `json:"status"`
			Info   struct {
				Tasks map[string]struct {
					Node   string `json:"node"`
					Status string `json:"status"`
				} `json:"tasks"`
			} `json:"job_info"`
		}
		out, err := l.cmd("exec", n1, "curl", "-sf", "http://127.0.0.1:5001/api/v1/jobs/fmjob1").Output()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(out, &j); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if j.Status != "Down" {
			return fmt.Errorf("job is %s: %s", j.Status, out)
		}
		nodes = map[string]bool{}
		for _, tk := range j.Info.Tasks {
			nodes[tk.Node] = true
		}
		return nil
	})
	if !nodes[hostOf(t, rep, n2).NodeID] || !nodes[hostOf(t, rep, n3).NodeID] {
		t.Errorf("the job's tasks ran on %v, want both workers %s and %s", nodes, hostOf(t, rep, n2).NodeID, hostOf(t, rep, n3).NodeID)
	}

	st, code := l.report(t, "status", "-f", fleet)
	if code != 0 || st.Frontend == "" {
		t.Errorf("status exited %d, frontend %q", code, st.Frontend)
	}
	for _, n := range []string{n2, n3} {
		if h := hostOf(t, st, n); h.State != StateReady || h.NodeID != hostOf(t, rep, n).NodeID || h.Cores != cores {
			t.Errorf("%s in status: %+v", n, h)
		}
	}

	// An RSwarm container left on a worker (as by a crash) goes with down.
	l.on(t, n3, "docker", "run", "-d", "--name", "fmjob2_leftover", "--label", "rswarm.job=fmjob2", "--label", "rswarm.task=fmjob2_leftover", "rswarm/busybox:latest", "sleep", "3600")

	if _, code := l.report(t, "down", "-f", fleet); code != 0 {
		t.Fatalf("manage down exited %d", code)
	}
	apitest.Eventually(t, 30*time.Second, func() error {
		for _, p := range pids {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err == nil {
				return fmt.Errorf("process %d still runs", p)
			}
		}
		return nil
	})
	for _, n := range []string{n2, n3} {
		if c := strings.TrimSpace(l.on(t, n, "docker", "ps", "-aq", "--filter", "label=rswarm.job")); c != "" {
			t.Errorf("%s keeps RSwarm containers: %s", n, c)
		}
		if s := strings.TrimSpace(l.on(t, n, "docker", "info", "-f", "{{.Swarm.LocalNodeState}}")); s != "inactive" {
			t.Errorf("%s is still in the swarm: %s", n, s)
		}
	}
	if running := strings.TrimSpace(l.on(t, n2, "docker", "inspect", "-f", "{{.State.Running}}", "fm-handmade")); running != "true" {
		t.Errorf("the hand-started container is not running after down: %s", running)
	}
	if ls := l.on(t, n1, "docker", "node", "ls", "--format", "{{.Hostname}}"); strings.Contains(ls, n2) || strings.Contains(ls, n3) {
		t.Errorf("the swarm still lists the workers:\n%s", ls)
	}
}

func TestManageLabWrongKnownHosts(t *testing.T) {
	l := needLab(t)
	n2, n3 := l.name(2), l.name(3)
	// A known_hosts in which host 3's names carry host 2's key.
	b, err := os.ReadFile(filepath.Join(l.dir, "ssh", "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	var key2 string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && strings.Contains(f[0], n2) {
			key2 = f[1] + " " + f[2]
		}
	}
	var kh []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && strings.Contains(f[0], n3) {
			line = f[0] + " " + key2
		}
		kh = append(kh, line)
	}
	khFile := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(khFile, []byte(strings.Join(kh, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	fleet := l.fleet(t, khFile, "60s")
	t.Cleanup(func() { l.manage(t, "down", "-f", fleet) })
	rep, code := l.report(t, "up", "-f", fleet)
	if code == 0 {
		t.Error("up succeeded with a wrong host key")
	}
	h3 := hostOf(t, rep, n3)
	if h3.State != StateRefused || !strings.Contains(h3.Error, "HOST KEY MISMATCH") || !strings.Contains(h3.Error, n3) || !strings.Contains(h3.Error, "SHA256:") {
		t.Errorf("%s: want refused with the mismatch and fingerprint, got %+v", n3, h3)
	}
	if h2 := hostOf(t, rep, n2); h2.State != StateReady {
		t.Errorf("%s should come up beside the refused host: %+v", n2, h2)
	}
}

func TestManageLabUnreachable(t *testing.T) {
	l := needLab(t)
	n2, n3 := l.name(2), l.name(3)
	fleet := l.fleet(t, "", "30s")
	pidFile := filepath.Join(l.dir, n3, "sshd.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	stopProcess(t, pid)
	t.Cleanup(func() {
		if out, err := l.cmd("up", "3").CombinedOutput(); err != nil { // starts host 3's sshd again
			t.Errorf("lab up: %v\n%s", err, out)
		}
	})
	rep, code := l.report(t, "up", "-f", fleet)
	if code == 0 {
		t.Error("up succeeded with a host unreachable")
	}
	if h3 := hostOf(t, rep, n3); h3.State != StateUnreachable || !strings.Contains(h3.Error, n3) {
		t.Errorf("%s: want unreachable, got %+v", n3, h3)
	}
	if h2 := hostOf(t, rep, n2); h2.State != StateReady {
		t.Errorf("%s: %+v", n2, h2)
	}
	rep, code = l.report(t, "down", "-f", fleet)
	if code != 0 {
		t.Errorf("down exited %d with a host unreachable", code)
	}
	if h3 := hostOf(t, rep, n3); h3.State != StateUnreachable {
		t.Errorf("down: %s: %+v", n3, h3)
	}
	if h2 := hostOf(t, rep, n2); h2.State != StateStopped {
		t.Errorf("down: %s: %+v", n2, h2)
	}
}

// stopProcess ends a process this test's lab started and waits for it.
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, 10*time.Second, func() error {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			return fmt.Errorf("process %d still runs", pid)
		}
		return nil
	})
}

// transferRate sends n bytes with busybox nc from host a to host b and
// returns the rate the receiver saw, in bit/s.
func (l *labEnv) transferRate(t *testing.T, a, b string, bAddr string, n int) float64 {
	t.Helper()
	recv := l.cmd("exec", b, "busybox", "nc", "-l", "-p", "5555")
	stdin, err := recv.StdinPipe() // held open: busybox nc stops at the end of its input
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := recv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = recv.Process.Kill(); _ = recv.Wait() }()
	apitest.Eventually(t, 10*time.Second, func() error {
		if out := l.on(t, b, "busybox", "netstat", "-ltn"); !strings.Contains(out, ":5555 ") {
			return errors.New("nc does not listen yet")
		}
		return nil
	})
	send := l.cmd("exec", a, "busybox", "nc", bAddr, "5555")
	send.Stdin = bytes.NewReader(make([]byte, n))
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = send.Process.Kill(); _ = send.Wait() }()
	buf := make([]byte, 64<<10)
	var got int
	var first time.Time
	var firstBytes int
	for got < n {
		k, err := stdout.Read(buf)
		if first.IsZero() && k > 0 {
			first, firstBytes = time.Now(), k
		}
		got += k
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got < n {
		t.Fatalf("received %d of %d bytes", got, n)
	}
	return float64(got-firstBytes) * 8 / time.Since(first).Seconds()
}

func TestManageLabNetRate(t *testing.T) {
	l := needLab(t)
	n2, n3 := l.name(2), l.name(3)
	fleet := l.fleet(t, "", "60s")
	t.Cleanup(func() { l.manage(t, "net", "-f", fleet, "clear") })
	if _, _, code := l.manage(t, "net", "-f", fleet, "rate", "--host", n2, "--to", n3, "--rate", "10mbit"); code != 0 {
		t.Fatalf("net rate exited %d", code)
	}
	out, _, _ := l.manage(t, "net", "-f", fleet, "show", n2)
	if !strings.Contains(out, "rate 10Mbit") || !strings.Contains(out, "flowid 1:") {
		t.Errorf("show does not list the rule:\n%s", out)
	}
	rate := l.transferRate(t, n2, n3, l.addr(3), 3_000_000)
	t.Logf("net rate --rate 10mbit: measured %.2f Mbit/s (3 MB with busybox nc, %s to %s)", rate/1e6, n2, n3)
	if rate < 9e6 || rate > 11e6 {
		t.Errorf("measured %.2f Mbit/s, want 10 Mbit/s within 10%%", rate/1e6)
	}
	if _, _, code := l.manage(t, "net", "-f", fleet, "clear", n2); code != 0 {
		t.Errorf("net clear exited %d", code)
	}
	if out, _, _ := l.manage(t, "net", "-f", fleet, "show", n2); strings.Contains(out, "htb") {
		t.Errorf("clear left rules:\n%s", out)
	}
}

func TestManageLabNetDelay(t *testing.T) {
	l := needLab(t)
	n2, n3 := l.name(2), l.name(3)
	fleet := l.fleet(t, "", "60s")
	t.Cleanup(func() { l.manage(t, "net", "-f", fleet, "clear") })
	var p Probe
	if err := json.Unmarshal([]byte(l.on(t, n2, l.bin, "manage", "host", "probe")), &p); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := l.manage(t, "net", "-f", fleet, "delay", "--host", n2, "--to", n3, "--delay", "50ms", "--jitter", "5ms", "--distribution", "normal")
	if !p.Qdiscs["netem"] {
		if code == 0 || !strings.Contains(stderr, n2) || !strings.Contains(stderr, "netem") {
			t.Errorf("a delay on a kernel without netem: want an error naming %s and netem, got exit %d: %s", n2, code, stderr)
		}
		t.Skipf("this kernel has no sch_netem (qdiscs: %s): the delay was refused with: %s", p.Qdiscs, strings.TrimSpace(stderr))
	}
	if code != 0 {
		t.Fatalf("net delay exited %d: %s", code, stderr)
	}
	out := l.on(t, n2, "busybox", "ping", "-c", "5", l.addr(3))
	t.Logf("ping with --delay 50ms --jitter 5ms:\n%s", out)
	m := regexp.MustCompile(`= [\d.]+/([\d.]+)/`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ping summary:\n%s", out)
	}
	if avg, _ := strconv.ParseFloat(m[1], 64); avg < 40 {
		t.Errorf("average round trip %.1f ms, want the 50 ms delay in it", avg)
	}
}

// TestManageLabSimulated spreads simulated workers over two lab hosts,
// with the control plane on the first.
func TestManageLabSimulated(t *testing.T) {
	l := needLab(t)
	n1, n2, n3 := l.name(1), l.name(2), l.name(3)
	text := fmt.Sprintf(`control_plane: {host: %[1]s, insecure: true}
defaults: {key_file: %[4]s, known_hosts: %[5]s, runtime: sim, workdir: /var/lib/rswarm/sim}
hosts:
  - {name: %[1]s, address: %[6]s, count: 0}
  - {name: %[2]s, address: %[7]s, count: 40}
  - {name: %[3]s, address: %[8]s, count: 60}
`, n1, n2, n3, filepath.Join(l.dir, "ssh", "id_ed25519"), filepath.Join(l.dir, "ssh", "known_hosts"), l.addr(1), l.addr(2), l.addr(3))
	fleet := filepath.Join(t.TempDir(), "sim.yaml")
	if err := os.WriteFile(fleet, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.manage(t, "down", "-f", fleet) })
	rep, code := l.report(t, "up", "-f", fleet)
	if code != 0 {
		t.Fatalf("up exited %d", code)
	}
	for _, c := range []struct {
		host string
		n    int
	}{{n2, 40}, {n3, 60}} {
		if h := hostOf(t, rep, c.host); h.State != StateReady || h.Workers != c.n || h.NodeID != c.host+"-0000" || h.Cores != 16*c.n {
			t.Errorf("%s: want %d simulated workers ready, got %+v", c.host, c.n, h)
		}
	}
	_, code = l.report(t, "down", "-f", fleet)
	if code != 0 {
		t.Fatalf("down exited %d", code)
	}
	st, _ := l.report(t, "status", "-f", fleet)
	for _, n := range []string{n2, n3} {
		if h := hostOf(t, st, n); h.State != StateDown || h.Workers != 0 {
			t.Errorf("%s after down: %+v", n, h)
		}
	}
}

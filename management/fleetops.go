package management

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Conn is a connection to one host: SSH, or this machine for a local
// control plane.
type Conn interface {
	Runner
	// Upload copies a local file to the host unless the host's copy has
	// the SHA-256 sum; it says whether it copied.
	Upload(ctx context.Context, local, remote, sum string) (bool, error)
	// WriteFile writes a small private file on the host.
	WriteFile(remote string, data []byte) error
	// DialContext opens a TCP connection from the host.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	Close() error
}

// Options are how a Manager reaches hosts and reports.
type Options struct {
	// Binary is the local rswarm executable copied to the hosts.
	Binary string
	// Progress receives one line of news about a host ("" for the fleet).
	Progress func(host, msg string)
	// Warn receives loud warnings (host keys not verified).
	Warn Warnf
	// Dial connects to a host; default: SSH with Dial.
	Dial func(ctx context.Context, h *Host, timeout time.Duration) (Conn, error)
	// ConnectTimeout bounds one SSH connection (default 10s).
	ConnectTimeout time.Duration
	// Poll is how often registration is checked (default 250ms).
	Poll time.Duration
}

// Manager brings a fleet up, reports it, and takes it down.
type Manager struct {
	f *Fleet
	o Options
}

// New returns a Manager of the fleet.
func New(f *Fleet, o Options) *Manager {
	if o.Progress == nil {
		o.Progress = func(string, string) {}
	}
	if o.Warn == nil {
		o.Warn = func(string, ...any) {}
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.Poll == 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Dial == nil {
		o.Dial = func(ctx context.Context, h *Host, timeout time.Duration) (Conn, error) {
			return Dial(ctx, h, timeout, o.Warn)
		}
	}
	return &Manager{f: f, o: o}
}

// Fleet is the manager's fleet.
func (m *Manager) Fleet() *Fleet { return m.f }

// session is one operation's connections, opened once per host.
type session struct {
	m     *Manager
	mu    sync.Mutex
	conns map[string]Conn
	errs  map[string]error
}

func (m *Manager) newSession() *session {
	return &session{m: m, conns: map[string]Conn{}, errs: map[string]error{}}
}

// conn connects to a host once ("local" is this machine).
// reach connects to a host for down, or records in r why it could not:
// an unreachable host is noted (down succeeds there), any other failure
// is the host's error.
func (s *session) reach(ctx context.Context, name string, r *HostReport) (Conn, bool) {
	c, err := s.conn(ctx, name)
	if err == nil {
		return c, true
	}
	r.State = connState(err)
	if r.State == StateUnreachable {
		r.Notes = append(r.Notes, "unreachable: nothing done there")
	} else {
		r.Error = err.Error()
	}
	return nil, false
}

func (s *session) conn(ctx context.Context, name string) (Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.conns[name]; ok {
		return c, nil
	}
	if err, ok := s.errs[name]; ok {
		return nil, err
	}
	var c Conn
	var err error
	if s.m.isLocal(name) {
		c = localConn{}
	} else {
		s.m.o.Progress(name, "connecting")
		c, err = s.m.o.Dial(ctx, s.m.f.Host(name), s.m.o.ConnectTimeout)
	}
	if err != nil {
		s.errs[name] = err
		return nil, err
	}
	s.conns[name] = c
	return c, nil
}

func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// isLocal says whether a host is this machine: the local control plane,
// or a host whose address is "local" (simulated workers here).
func (m *Manager) isLocal(name string) bool {
	if name == Local {
		return true
	}
	h := m.f.Host(name)
	return h != nil && h.Address == Local
}

// binary is where rswarm is on a host.
func (m *Manager) binary(name string) string {
	if m.isLocal(name) {
		return m.o.Binary
	}
	return BinaryPath(m.f.Host(name).Workdir)
}

func (m *Manager) workdir(name string) string {
	if name == Local {
		return m.f.ControlPlane.Workdir
	}
	return m.f.Host(name).Workdir
}

// agent runs `rswarm manage host ARGS...` on a host and decodes its JSON.
func (m *Manager) agent(ctx context.Context, c Conn, name string, out any, args ...string) error {
	argv := append([]string{m.binary(name), "manage", "host"}, args...)
	stdout, stderr, err := c.Run(ctx, argv, nil)
	if err != nil {
		if strings.Contains(string(stderr), "libzmq") {
			return fmt.Errorf("host %s: libzmq is missing (install Debian's libzmq5): %s", name, strings.TrimSpace(string(stderr)))
		}
		return fmt.Errorf("host %s: manage host %s: %w", name, args[0], err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		return fmt.Errorf("host %s: manage host %s: bad answer %q: %w", name, args[0], strings.TrimSpace(string(stdout)), err)
	}
	return nil
}

// prepare uploads the binary when it differs and probes the host.
func (m *Manager) prepare(ctx context.Context, c Conn, name, sum string, r *HostReport) (*Probe, error) {
	if !m.isLocal(name) {
		m.o.Progress(name, "checking the rswarm binary")
		copied, err := c.Upload(ctx, m.o.Binary, m.binary(name), sum)
		if err != nil {
			return nil, err
		}
		if copied {
			r.Notes = append(r.Notes, "binary uploaded")
			m.o.Progress(name, "binary uploaded")
		}
	}
	var p Probe
	if err := m.agent(ctx, c, name, &p, "probe", "--workdir", m.workdir(name)); err != nil {
		return nil, err
	}
	r.Qdiscs = p.Qdiscs
	return &p, nil
}

// controlArgv is the control plane's command line.
func (m *Manager) controlArgv(name string) []string {
	cp := m.f.ControlPlane
	wd := m.workdir(name)
	argv := []string{m.binary(name), "up", "--workers", "0",
		"--strategy", cp.Strategy,
		"--frontend-addr", cp.Listen.Frontend,
		"--globalmanager-addr", cp.Listen.Globalmanager,
		"--globalmanager-bus", m.busURL(cp.Listen.BusPort),
		"--discovery-bus", m.busURL(cp.Listen.DiscoveryPort),
		"--advertise-addr", cp.Address,
	}
	if cp.Store == "sqlite" {
		argv = append(argv, "--data-dir", wd+"/data")
	} else {
		argv = append(argv, "--mongo-uri", cp.Store)
	}
	if cp.TokenFile != "" {
		argv = append(argv, "--api-token-file", wd+"/api-token")
	}
	if cp.Insecure {
		// With the authenticated bus (CURVE, on by default where it is
		// built) this also needs --bus-auth=false.
		argv = append(argv, m.insecureFlags()...)
	}
	if !m.hasDocker() {
		argv = append(argv, "--no-swarm")
	}
	// Many simulated workers beat late under load: widen the grace as
	// `rswarm up --runtime sim` does, unless the options set it.
	if n := m.simWorkers(); n > 200 && !hasFlag(cp.Options, "--heartbeat-grace") {
		argv = append(argv, "--heartbeat-grace", max(5*time.Second, time.Duration(n)*15*time.Millisecond).String())
	}
	return append(argv, cp.Options...)
}

// simWorkers counts the fleet's simulated workers.
func (m *Manager) simWorkers() int {
	n := 0
	for _, h := range m.f.Hosts {
		if h.Runtime == "sim" {
			n += h.Workers()
		}
	}
	return n
}

func hasFlag(opts []string, flag string) bool {
	for _, o := range opts {
		if o == flag || strings.HasPrefix(o, flag+"=") {
			return true
		}
	}
	return false
}

// insecureFlags turn the bus's CURVE authentication off (control_plane.
// insecure); otherwise up distributes the bus keys.
func (m *Manager) insecureFlags() []string {
	return []string{"--insecure", "--bus-auth=false"}
}

func (m *Manager) hasDocker() bool {
	for _, h := range m.f.Hosts {
		if h.Runtime == "docker" && h.Workers() > 0 {
			return true
		}
	}
	return false
}

func (m *Manager) busURL(port int) string {
	return "tcp://" + net.JoinHostPort(m.f.ControlPlane.Address, strconv.Itoa(port))
}

// workerArgv is a host's worker command line.
func (m *Manager) workerArgv(h *Host) []string {
	argv := []string{m.binary(h.Name), "worker", "--runtime", h.Runtime,
		"--globalmanager-bus", m.busURL(m.f.ControlPlane.Listen.BusPort),
		"--discovery-bus", m.busURL(m.f.ControlPlane.Listen.DiscoveryPort),
	}
	if h.Runtime == "docker" {
		argv = append(argv, "--advertise-addr", h.Address)
	} else {
		argv = append(argv, "--sim-id", h.Name, "--workers", strconv.Itoa(h.Workers()))
		// and they beat less often (as `rswarm up --runtime sim` does).
		if n := m.simWorkers(); n > 500 && !hasFlag(h.Options, "--heartbeat") {
			argv = append(argv, "--heartbeat", max(time.Second, time.Duration(n)*2*time.Millisecond).String())
		}
	}
	if m.f.ControlPlane.Insecure {
		argv = append(argv, m.insecureFlags()...)
	}
	return append(argv, h.Options...)
}

// spawnResult is the agent's answer to spawn.
type spawnResult struct {
	PID       int  `json:"pid"`
	Started   bool `json:"started"`
	Restarted bool `json:"restarted"`
	// StartedAt is the host's clock (epoch seconds) when it started the
	// process: a worker counts as registered by this start only when its
	// record was refreshed since (a record left by an earlier run is not).
	StartedAt float64 `json:"started_at"`
}

// freshSlack allows for clocks of the hosts that differ a little.
const freshSlack = 1.0

// client is the control plane's REST API as reached from here: through the
// control plane host's SSH connection (so a frontend listening on that
// host's loopback is reachable), or directly when it is local.
func (m *Manager) client(c Conn, addr string) (*api.Client, error) {
	token := ""
	if tf := m.f.ControlPlane.TokenFile; tf != "" {
		b, err := os.ReadFile(tf)
		if err != nil {
			return nil, fmt.Errorf("control_plane.token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	tr := &http.Transport{DialContext: c.DialContext, MaxIdleConnsPerHost: 4}
	return api.NewClientHTTP("http://"+addr, token, &http.Client{Transport: tr, Timeout: 15 * time.Second}), nil
}

// workersOf picks a host's registered workers out of the globalmanager's
// list; with since > 0, only those registered or heartbeating since then.
func workersOf(h *Host, p *Probe, ws []*api.Worker, since float64) []*api.Worker {
	var out []*api.Worker
	for _, w := range ws {
		if w.Status != api.WorkerReady && w.Status != api.WorkerDrained {
			continue
		}
		if since > 0 && w.LastHeartbeat < since-freshSlack {
			continue
		}
		switch h.Runtime {
		case "docker":
			if w.Runtime == "docker" && (w.Address == h.Address || (p != nil && p.Docker != nil && w.Host == p.Docker.Hostname)) {
				out = append(out, w)
			}
		case "sim":
			if w.Runtime == "sim" && strings.HasPrefix(w.ID, h.Name+"-") {
				out = append(out, w)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func fill(r *HostReport, ws []*api.Worker) {
	r.Workers = len(ws)
	r.Cores, r.Memory = 0, 0
	if len(ws) > 0 {
		r.NodeID = ws[0].ID
	}
	for _, w := range ws {
		r.Cores += w.Cores
		r.Memory += w.MemTotal
	}
}

// controlPlane is the state of the control plane during an operation.
type controlPlane struct {
	ready  chan struct{}
	conn   Conn        // to the control plane's host
	client *api.Client // the frontend
	gm     *api.Client // the globalmanager
	// keys are the bus servers' CURVE public keys by role (globalmanager,
	// discovery), when the bus is authenticated.
	keys map[string]string
	err  error
}

// Up brings the fleet up: every host in parallel, the control plane first
// where the file says, then each worker, waiting until it registered. It
// returns one report per host (the control plane's host first when it is
// local) and whether all succeeded.
func (m *Manager) Up(ctx context.Context) (*FleetReport, bool) {
	sum, err := FileSHA256(m.o.Binary)
	s := m.newSession()
	defer s.close()
	rep := &FleetReport{ControlPlane: m.f.ControlPlane.Host, Frontend: m.f.ControlPlane.Listen.Frontend}
	cp := &controlPlane{ready: make(chan struct{})}
	names := m.names()
	reports := make([]*HostReport, len(names))
	for i, n := range names {
		reports[i] = &HostReport{Host: n, State: StateFailed}
		if n != Local {
			reports[i].Address = m.f.Host(n).Address
		}
	}
	rep.Hosts = reports
	if err != nil {
		for _, r := range reports {
			r.Error = fmt.Sprintf("the rswarm binary %s: %v", m.o.Binary, err)
		}
		return rep, false
	}
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			m.upHost(ctx, s, n, sum, cp, reports[i])
			reports[i].Took = time.Since(start)
			reports[i].Seconds = reports[i].Took.Seconds()
			if reports[i].Error != "" {
				m.o.Progress(n, "FAILED: "+reports[i].Error)
			} else {
				m.o.Progress(n, "done: "+reports[i].State)
			}
		}()
	}
	wg.Wait()
	ok := true
	for _, r := range reports {
		ok = ok && r.OK()
	}
	return rep, ok
}

// names lists the hosts of an operation: "local" first when the control
// plane runs here, then the hosts in file order.
func (m *Manager) names() []string {
	var out []string
	if m.f.ControlPlane.Host == Local {
		out = append(out, Local)
	}
	for _, h := range m.f.Hosts {
		out = append(out, h.Name)
	}
	return out
}

func (m *Manager) upHost(ctx context.Context, s *session, name, sum string, cp *controlPlane, r *HostReport) {
	isCP := name == m.f.ControlPlane.Host
	fail := func(state string, err error) {
		r.State, r.Error = state, err.Error()
		if isCP {
			cp.err = fmt.Errorf("control plane on %s: %s", name, err)
			close(cp.ready)
		}
	}
	deadline := time.Duration(m.f.Timeout)
	hctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	c, err := s.conn(hctx, name)
	if err != nil {
		fail(connState(err), err)
		return
	}
	p, err := m.prepare(hctx, c, name, sum, r)
	if err != nil {
		fail(StateFailed, err)
		return
	}
	var h *Host
	if name != Local {
		h = m.f.Host(name)
		if h.Runtime == "docker" && p.Docker == nil {
			fail(StateFailed, fmt.Errorf("no Docker Engine answers on %s: %s", name, p.DockerError))
			return
		}
		if !p.TC {
			r.Notes = append(r.Notes, "no tc (net unavailable)")
		}
		r.Notes = append(r.Notes, "qdiscs: "+p.Qdiscs.String())
	}
	changed := strings.Contains(strings.Join(r.Notes, " "), "uploaded")
	if isCP {
		r.State = StateControl
		if err := m.startControl(hctx, c, name, p, r); err != nil {
			fail(StateFailed, err)
			return
		}
		if !m.f.ControlPlane.Insecure {
			keys, err := m.serverKeys(hctx, c, name)
			if err != nil {
				fail(StateFailed, err)
				return
			}
			cp.keys = keys
		}
		cp.conn = c
		cp.client, _ = m.client(c, m.f.ControlPlane.Listen.Frontend)
		cp.gm, _ = m.client(c, m.f.ControlPlane.Listen.Globalmanager)
		close(cp.ready)
		changed = changed || r.State != StateControl
	}
	if h == nil || h.Workers() == 0 {
		if isCP && !changed {
			r.State = StateUnchanged
		} else if isCP {
			r.State = StateControl
		}
		return
	}
	select {
	case <-cp.ready:
	case <-hctx.Done():
		fail(StateFailed, fmt.Errorf("timed out waiting for the control plane"))
		return
	}
	if cp.err != nil {
		fail(StateFailed, cp.err)
		return
	}
	workerArgv := m.workerArgv(h)
	if cp.keys != nil {
		if err := m.authorize(hctx, c, cp, h); err != nil {
			fail(StateFailed, err)
			return
		}
		workerArgv = append(workerArgv, "--data-dir", h.Workdir+"/data",
			"--globalmanager-key", cp.keys["globalmanager"], "--discovery-key", cp.keys["discovery"])
	}
	m.o.Progress(name, "starting the worker")
	var sp spawnResult
	argv := append([]string{"spawn", "--pidfile", PIDFile(h.Workdir, "worker"), "--log", LogFile(h.Workdir, "worker"), "--"}, workerArgv...)
	if err := m.agent(hctx, c, name, &sp, argv...); err != nil {
		fail(StateFailed, err)
		return
	}
	if sp.Started {
		changed = true
		r.Notes = append(r.Notes, fmt.Sprintf("worker %s (pid %d, log %s)", startedWord(sp), sp.PID, LogFile(h.Workdir, "worker")))
	}
	m.o.Progress(name, fmt.Sprintf("worker pid %d: waiting for its registration", sp.PID))
	want := h.Workers()
	for {
		ws, err := cp.client.Workers(hctx)
		if err == nil {
			since := 0.0
			if sp.Started {
				since = sp.StartedAt
			}
			mine := workersOf(h, p, ws, since)
			if len(mine) >= want {
				fill(r, mine)
				r.State = StateReady
				if !changed {
					r.State = StateUnchanged
				}
				return
			}
			if h.Runtime == "sim" && len(mine) > 0 {
				m.o.Progress(name, fmt.Sprintf("%d of %d workers registered", len(mine), want))
			}
		}
		select {
		case <-hctx.Done():
			fail(StateFailed, fmt.Errorf("the worker did not register within %s (see %s on the host)", deadline, LogFile(h.Workdir, "worker")))
			return
		case <-time.After(m.o.Poll):
		}
	}
}

// Bus keys (ZeroMQ CURVE). Each role keeps its key pair in
// <data-dir>/bus/<role>.{key,pub}, made on first use and printed by
// `rswarm keys [--role R] --data-dir D`; the bus servers accept the client
// keys found in <data-dir>/bus/authorized/*.pub, re-read when an unknown
// key shows up. So manage reads the control plane's server keys, puts each
// worker host's public key into the control plane's authorised directory,
// and starts the worker with the servers' keys.

// serverKeys reads the control plane's bus server keys.
func (m *Manager) serverKeys(ctx context.Context, c Conn, name string) (map[string]string, error) {
	keys := map[string]string{}
	for _, role := range []string{"globalmanager", "discovery"} {
		k, err := m.busKey(ctx, c, name, m.workdir(name)+"/data", role)
		if err != nil {
			return nil, err
		}
		keys[role] = k
	}
	return keys, nil
}

// busKey prints a role's public bus key on a host (the worker's when role is "").
func (m *Manager) busKey(ctx context.Context, c Conn, name, dataDir, role string) (string, error) {
	argv := []string{m.binary(name), "keys", "--data-dir", dataDir}
	if role != "" {
		argv = append(argv, "--role", role)
	}
	out, _, err := c.Run(ctx, argv, nil)
	if err != nil {
		return "", fmt.Errorf("host %s: read the %s bus key (control_plane.insecure: true runs without CURVE): %w", name, firstStr(role, "worker"), err)
	}
	k := strings.TrimSpace(string(out))
	if len(k) != 40 || strings.ContainsAny(k, " \n") {
		return "", fmt.Errorf("host %s: %q is not a CURVE public key (40 Z85 characters)", name, k)
	}
	return k, nil
}

// authorize puts a worker host's public bus key into the control plane's
// authorised keys.
func (m *Manager) authorize(ctx context.Context, c Conn, cp *controlPlane, h *Host) error {
	k, err := m.busKey(ctx, c, h.Name, h.Workdir+"/data", "")
	if err != nil {
		return err
	}
	dir := m.workdir(m.f.ControlPlane.Host) + "/data/bus/authorized"
	return cp.conn.WriteFile(dir+"/manage-"+h.Name+".pub", []byte(k+" worker on "+h.Name+" (rswarm manage)\n"))
}

// startControl starts the control plane on its host unless it runs, and
// waits until its frontend answers.
func (m *Manager) startControl(ctx context.Context, c Conn, name string, p *Probe, r *HostReport) error {
	wd := m.workdir(name)
	if tf := m.f.ControlPlane.TokenFile; tf != "" {
		b, err := os.ReadFile(tf)
		if err != nil {
			return fmt.Errorf("control_plane.token_file: %w", err)
		}
		if err := c.WriteFile(wd+"/api-token", b); err != nil {
			return err
		}
	}
	m.o.Progress(name, "starting the control plane")
	var sp spawnResult
	argv := append([]string{"spawn", "--pidfile", PIDFile(wd, "control"), "--log", LogFile(wd, "control"), "--"}, m.controlArgv(name)...)
	if err := m.agent(ctx, c, name, &sp, argv...); err != nil {
		return err
	}
	if sp.Started {
		r.State = StateStarting
		r.Notes = append(r.Notes, fmt.Sprintf("control plane %s (pid %d, log %s)", startedWord(sp), sp.PID, LogFile(wd, "control")))
	}
	cl, err := m.client(c, m.f.ControlPlane.Listen.Frontend)
	if err != nil {
		return err
	}
	for {
		if _, err := cl.Workers(ctx); err == nil {
			m.o.Progress(name, "control plane answers at "+m.f.ControlPlane.Listen.Frontend)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the control plane did not answer within %s (see %s on %s)", time.Duration(m.f.Timeout), LogFile(wd, "control"), name)
		case <-time.After(m.o.Poll):
		}
	}
}

func startedWord(sp spawnResult) string {
	if sp.Restarted {
		return "restarted: its binary or arguments changed; started"
	}
	return "started"
}

func connState(err error) string {
	switch {
	case errors.Is(err, ErrHostKey):
		return StateRefused
	case errors.Is(err, ErrUnreachable):
		return StateUnreachable
	}
	return StateFailed
}

// Status reports the fleet from the live system.
func (m *Manager) Status(ctx context.Context) (*FleetReport, bool) {
	s := m.newSession()
	defer s.close()
	rep := &FleetReport{ControlPlane: m.f.ControlPlane.Host, Frontend: m.f.ControlPlane.Listen.Frontend}
	names := m.names()
	probes := make([]*Probe, len(names))
	rep.Hosts = make([]*HostReport, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		r := &HostReport{Host: n, State: StateDown}
		if n != Local {
			r.Address = m.f.Host(n).Address
		}
		rep.Hosts[i] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			hctx, cancel := context.WithTimeout(ctx, m.o.ConnectTimeout+10*time.Second)
			defer cancel()
			c, err := s.conn(hctx, n)
			if err != nil {
				r.State, r.Error = connState(err), err.Error()
				return
			}
			var p Probe
			if err := m.agent(hctx, c, n, &p, "probe", "--workdir", m.workdir(n)); err != nil {
				r.State, r.Error = StateFailed, err.Error()
				return
			}
			probes[i], r.Qdiscs = &p, p.Qdiscs
		}()
	}
	wg.Wait()
	var ws []*api.Worker
	var cpErr error
	if c, err := s.conn(ctx, m.f.ControlPlane.Host); err == nil {
		cl, err := m.client(c, m.f.ControlPlane.Listen.Frontend)
		if err == nil {
			ws, err = cl.Workers(ctx)
		}
		cpErr = err
	} else {
		cpErr = err
	}
	ok := true
	for i, n := range names {
		r, p := rep.Hosts[i], probes[i]
		if p == nil {
			ok = false
			continue
		}
		if n == m.f.ControlPlane.Host {
			if _, run := p.Running["control"]; run && cpErr == nil {
				r.State = StateControl
			} else if run {
				r.State, r.Error = StateStarting, "control plane runs but does not answer: "+cpErr.Error()
			} else {
				r.Error = "the control plane is not running"
			}
		}
		if n == Local {
			continue
		}
		h := m.f.Host(n)
		if h.Workers() == 0 {
			continue
		}
		mine := workersOf(h, p, ws, 0)
		_, run := p.Running["worker"]
		switch {
		case run && len(mine) >= h.Workers():
			r.State = StateReady
			r.Error = ""
		case run:
			r.State = StateStarting
		default:
			r.State = StateDown
		}
		fill(r, mine)
		if r.State != StateReady {
			ok = false
		}
	}
	return rep, ok
}

// Down takes the fleet down: each worker leaves the swarm (through the
// globalmanager), is stopped by its recorded PID, and its host's RSwarm
// containers are removed and its tc rules cleared; then the control plane
// stops. Hosts already down or unreachable are reported and do not make
// it fail.
func (m *Manager) Down(ctx context.Context) (*FleetReport, bool) {
	s := m.newSession()
	defer s.close()
	rep := &FleetReport{ControlPlane: m.f.ControlPlane.Host, Frontend: m.f.ControlPlane.Listen.Frontend}
	names := m.names()
	rep.Hosts = make([]*HostReport, len(names))
	for i, n := range names {
		rep.Hosts[i] = &HostReport{Host: n, State: StateStopped}
		if n != Local {
			rep.Hosts[i].Address = m.f.Host(n).Address
		}
	}
	// The globalmanager's list, to make each worker leave the swarm.
	var gm, fe *api.Client
	var ws []*api.Worker
	if c, err := s.conn(ctx, m.f.ControlPlane.Host); err == nil {
		fe, _ = m.client(c, m.f.ControlPlane.Listen.Frontend)
		gm, _ = m.client(c, m.f.ControlPlane.Listen.Globalmanager)
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ws, err = fe.Workers(lctx)
		cancel()
		if err != nil {
			gm = nil
		}
	}
	var wg sync.WaitGroup
	for i, n := range names {
		if n == Local || m.f.Host(n).Workers() == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			m.downWorker(ctx, s, m.f.Host(n), gm, ws, rep.Hosts[i])
			rep.Hosts[i].Took = time.Since(start)
		}()
	}
	wg.Wait()
	for i, n := range names {
		if n != m.f.ControlPlane.Host {
			if n != Local && m.f.Host(n).Workers() == 0 {
				m.clearHost(ctx, s, n, rep.Hosts[i])
			}
			continue
		}
		start := time.Now()
		m.downControl(ctx, s, n, rep.Hosts[i])
		rep.Hosts[i].Took = time.Since(start)
	}
	ok := true
	for _, r := range rep.Hosts {
		ok = ok && r.OK()
	}
	return rep, ok
}

func (m *Manager) downWorker(ctx context.Context, s *session, h *Host, gm *api.Client, ws []*api.Worker, r *HostReport) {
	hctx, cancel := context.WithTimeout(ctx, time.Duration(m.f.Timeout))
	defer cancel()
	c, ok := s.reach(hctx, h.Name, r)
	if !ok {
		return
	}
	var p Probe
	if err := m.agent(hctx, c, h.Name, &p, "probe", "--workdir", h.Workdir); err != nil {
		r.State, r.Error = StateFailed, err.Error()
		return
	}
	if gm != nil {
		for _, w := range workersOf(h, &p, ws, 0) {
			m.o.Progress(h.Name, "worker "+w.ID+" leaves the swarm")
			if err := gm.Do(hctx, http.MethodPost, "/api/v1/workers/"+w.ID+"/leave", nil, nil); err != nil {
				r.Notes = append(r.Notes, fmt.Sprintf("leave %s: %v", w.ID, err))
			} else {
				r.NodeID = w.ID
			}
		}
	}
	var st CleanResult
	if err := m.agent(hctx, c, h.Name, &st, "stop", "--pidfile", PIDFile(h.Workdir, "worker")); err != nil {
		r.State, r.Error = StateFailed, err.Error()
		return
	}
	if st.Stopped {
		r.Notes = append(r.Notes, fmt.Sprintf("worker pid %d stopped", st.PID))
	} else {
		r.State = StateDown
		r.Notes = append(r.Notes, "no worker was running")
	}
	m.clearHost(hctx, s, h.Name, r, "--leave")
}

// clearHost removes a host's RSwarm containers (and leaves the swarm with
// --leave) and clears its tc rules.
func (m *Manager) clearHost(ctx context.Context, s *session, name string, r *HostReport, extra ...string) {
	c, ok := s.reach(ctx, name, r)
	if !ok {
		return
	}
	if h := m.f.Host(name); h != nil && h.Runtime == "docker" {
		var st CleanResult
		if err := m.agent(ctx, c, name, &st, append([]string{"clean"}, extra...)...); err != nil {
			r.Error = err.Error()
			return
		}
		if len(st.Removed) > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("removed %d RSwarm containers", len(st.Removed)))
		}
		if st.Left {
			r.Notes = append(r.Notes, "left the swarm")
		}
	}
	if h := m.f.Host(name); h != nil {
		if _, _, err := c.Run(ctx, ClearArgs(h.Device), nil); err == nil {
			r.Notes = append(r.Notes, "tc rules cleared")
		}
	}
}

func (m *Manager) downControl(ctx context.Context, s *session, name string, r *HostReport) {
	hctx, cancel := context.WithTimeout(ctx, time.Duration(m.f.Timeout))
	defer cancel()
	c, ok := s.reach(hctx, name, r)
	if !ok {
		return
	}
	var st CleanResult
	if err := m.agent(hctx, c, name, &st, "stop", "--pidfile", PIDFile(m.workdir(name), "control")); err != nil {
		r.State, r.Error = StateFailed, err.Error()
		return
	}
	if st.Stopped {
		r.Notes = append(r.Notes, fmt.Sprintf("control plane pid %d stopped", st.PID))
	} else {
		r.State = StateDown
		r.Notes = append(r.Notes, "no control plane was running")
	}
	if name != Local {
		m.clearHost(hctx, s, name, r)
	}
}

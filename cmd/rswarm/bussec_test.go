package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/bus"
)

// attackWait bounds each request of the attacker: a refused peer never
// connects, so its requests can only time out; the figure bounds the test.
const attackWait = time.Second

// proc is a role started by startProc.
type proc struct {
	cmd  *exec.Cmd
	done chan error
	out  *syncBuffer
	name string
}

// syncBuffer is a bytes.Buffer the process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (p *proc) output() string {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	return p.out.b.String()
}

// startProc runs `rswarm args...`; stop interrupts it and waits (also at
// the end of the test).
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan error, 1), out: new(syncBuffer), name: name}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("---- output of %s ----\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 30 s of SIGINT", p.name)
	}
}

// simSystem starts every role as its own process, on one simulated worker
// with 4 cores, all sharing one data directory.
func simSystem(t *testing.T, extra ...string) (*system, map[string]*proc, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test (skipped by -short)")
	}
	sys := newSystem(t)
	f := append(sys.flags(), extra...)
	procs := map[string]*proc{}
	for _, role := range []string{"jobmanager", "discovery", "frontend"} {
		args := append([]string{role}, f...)
		if role == "jobmanager" {
			// The jobmanager hands placed jobs to the globalmanager over its
			// bus only: with no globalmanager REST API where it is told one
			// is, every job these tests run still deploys.
			args = append(args, "--globalmanager-addr", freeAddr(t))
		}
		procs[role] = startProc(t, "rswarm "+role, args...)
	}
	procs["globalmanager"] = startProc(t, "rswarm globalmanager", append([]string{"globalmanager", "--no-swarm"}, f...)...)
	node := fmt.Sprintf("sim-sec-%d", os.Getpid())
	procs["worker"] = startProc(t, "rswarm worker", append([]string{"worker", "--runtime", "sim", "--sim-id", node, "--cores", "4"}, f...)...)
	waitWorkers(t, sys.client(), 1)
	return sys, procs, node
}

// refused checks that a request of a peer without credentials got nowhere.
func refused(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, bus.ErrTimeout) {
		t.Errorf("%s: err = %v, want a timeout (the peer is never let in)", what, err)
	}
}

func attackCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), attackWait)
}

// TestBusRefusesPeersWithoutKeys tries, as a local process with the
// project's bus package and no credentials, the five attacks of issue 10.
func TestBusRefusesPeersWithoutKeys(t *testing.T) {
	sys, procs, node := simSystem(t)
	c := sys.client()

	// 1. tasks_done to the jobmanager (would free a running task's cores).
	jm, err := bus.Dial(sys.jmBus, "attacker-jm", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer jm.Close()
	ctx, cancel := attackCtx()
	refused(t, "tasks_done to the jobmanager", jm.Request(ctx, api.KindTasksDone, api.TasksDone{Tasks: []api.TaskRef{{Job: "j", Task: "j_0"}}}, nil))
	cancel()

	// 2. A forged task status to discovery.
	dc, err := bus.Dial(sys.dcBus, "attacker-dc", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	ctx, cancel = attackCtx()
	refused(t, "task_statuses to discovery", dc.Request(ctx, api.KindTaskStatuses, api.TaskStatuses{Statuses: []api.TaskStatus{{Node: node, Job: "j", Task: "j_0", State: api.Down}}}, nil))
	cancel()

	// 3. Connect under the worker's identity and wait for its run_task.
	var stolen atomic.Int64
	imp, err := bus.Dial(sys.gmBus, node, func(context.Context, string, string, []byte) (any, error) {
		stolen.Add(1)
		return "accepted", nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	// 4. Register a fake 64-core worker.
	fake, err := bus.Dial(sys.gmBus, "fake-64", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	ctx, cancel = attackCtx()
	refused(t, "register with the globalmanager", fake.Request(ctx, api.KindRegister, api.Register{NodeID: "fake-64", Runtime: "sim", Cores: 64, MemTotal: 1 << 40}, nil))
	cancel()

	// 4b. Hand the globalmanager a placed job, which it would deploy as it
	// is: without keys the peer is never let in; with a key the bus
	// accepts (the worker's own), the globalmanager refuses it, since only
	// the jobmanager's key may deploy.
	evilJob := apitest.Job("evil", 1, 1, "sleep 60")
	evilJob.Info.Tasks[0].Node, evilJob.Info.Tasks[0].CpusetCpus, evilJob.Info.Tasks[0].Status = node, "0", api.Scheduled
	evilJob.Info.Tasks[0].Volumes = map[string]api.Volume{"/": {Bind: "/host"}}
	ctx, cancel = attackCtx()
	refused(t, "deploy_job without keys", fake.Request(ctx, api.KindDeployJob, api.DeployJob{Job: evilJob}, nil))
	cancel()
	secret, err := os.ReadFile(filepath.Join(sys.dataDir, "bus", "worker.key"))
	if err != nil {
		t.Fatal(err)
	}
	workerKey, err := bus.KeyPairOf(strings.TrimSpace(string(secret)))
	if err != nil {
		t.Fatal(err)
	}
	gmPub, err := os.ReadFile(filepath.Join(sys.dataDir, "bus", "globalmanager.pub"))
	if err != nil {
		t.Fatal(err)
	}
	asWorker, err := bus.Dial(sys.gmBus, "jobmanager-"+node, nil, nil, bus.WithCurveClient(strings.TrimSpace(string(gmPub)), workerKey))
	if err != nil {
		t.Fatal(err)
	}
	defer asWorker.Close()
	for _, tc := range []struct {
		kind string
		body any
	}{
		{api.KindDeployJob, api.DeployJob{Job: evilJob}},
		{api.KindStopJob, api.StopJob{Job: "any", Reason: "forged"}},
	} {
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		var rep api.JobReply
		err := asWorker.Request(ctx, tc.kind, tc.body, &rep)
		cancel()
		var re *bus.RemoteError
		if !errors.As(err, &re) || !strings.Contains(re.Msg, "only the jobmanager's key") {
			t.Errorf("%s under the worker's key: err = %v, reply %+v; want the globalmanager's refusal", tc.kind, err, rep)
		}
	}

	// The real worker still runs jobs, and nobody else got them.
	j := apitest.Job(fmt.Sprintf("sec%d", time.Now().UnixNano()), 1, 1, "sleep 0.1")
	submitOriginal(t, sys, j)
	done := waitJob(t, c, j.Name, 60*time.Second, final)
	if done.Status != api.Down {
		t.Errorf("job %s ended %s (%s), want Down", j.Name, done.Status, done.Error)
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the impostor of %s received %d commands", node, n)
	}
	ws, err := c.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].ID != node {
		ids := []string{}
		for _, w := range ws {
			ids = append(ids, w.ID)
		}
		t.Errorf("workers %q, want only %s", ids, node)
	}
	allFree(t, c)

	// 5. Bind the globalmanager's port while it is down and send the worker
	// a task that mounts the host's root.
	procs["globalmanager"].stop(t)
	var fakeGM *bus.Server
	apitest.Eventually(t, 30*time.Second, func() error {
		var err error
		fakeGM, err = bus.Listen(sys.gmBus, nil, nil)
		return err
	})
	defer fakeGM.Close()
	evil := api.RunTask{Job: "evil", Task: api.Task{ContainerName: "evil_0", Image: "rswarm/busybox:latest", ReqCores: 1,
		Volumes: map[string]api.Volume{"/": {Bind: "/host"}}}}
	// The worker reconnects every 100 ms: for a whole window (an assertion
	// that something never happens, not a synchronisation), it must never
	// be reachable from the fake.
	for end := time.Now().Add(attackWait); time.Now().Before(end); {
		ctx, cancel = attackCtx()
		err := fakeGM.Request(ctx, node, api.KindRunTask, evil, nil)
		cancel()
		if !errors.Is(err, bus.ErrUnknownPeer) {
			t.Fatalf("run_task from a fake globalmanager: err = %v, want ErrUnknownPeer (the worker never connects to it)", err)
		}
		<-time.After(attackWait / 10)
	}

	// A peer with a key of its own, not authorised, is refused and logged.
	jmPub, err := os.ReadFile(filepath.Join(sys.dataDir, "bus", "jobmanager.pub"))
	if err != nil {
		t.Fatal(err)
	}
	mine, err := bus.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := bus.Dial(sys.jmBus, "attacker-key", nil, nil, bus.WithCurveClient(strings.TrimSpace(string(jmPub)), mine))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel = attackCtx()
	refused(t, "tasks_done with an unauthorised key", kc.Request(ctx, api.KindTasksDone, api.TasksDone{}, nil))
	cancel()
	apitest.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(procs["jobmanager"].output(), mine.Public) {
			return errors.New("the jobmanager has not logged the refused key")
		}
		// ... and so are the peers without CURVE of attacks 1 and 2.
		for _, role := range []string{"jobmanager", "discovery"} {
			if !strings.Contains(procs[role].output(), "handshake failed") {
				return fmt.Errorf("%s has not logged the peer without CURVE", role)
			}
		}
		return nil
	})
}

// TestBusWithoutAuthLetsAttackersIn shows what the test above guards
// against: with --bus-auth=false the same fake registration succeeds.
func TestBusWithoutAuthLetsAttackersIn(t *testing.T) {
	sys, _, _ := simSystem(t, "--bus-auth=false")
	fake, err := bus.Dial(sys.gmBus, "fake-64", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var reply api.RegisterReply
	if err := fake.Request(ctx, api.KindRegister, api.Register{NodeID: "fake-64", Runtime: "sim", Cores: 64, MemTotal: 1 << 40}, &reply); err != nil {
		t.Fatalf("register without auth: %v", err)
	}
	waitWorkers(t, sys.client(), 2)
}

func TestBusKeysLayout(t *testing.T) {
	dir := t.TempDir()
	a, err := ensureKey(dir, "worker")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ensureKey(dir, "worker")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("second ensureKey made another pair")
	}
	st, err := os.Stat(filepath.Join(dir, "worker.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("worker.key: %v, mode %v; want 0600", err, st.Mode())
	}
	pub, err := os.ReadFile(filepath.Join(dir, "worker.pub"))
	if err != nil || strings.TrimSpace(string(pub)) != a.Public {
		t.Fatalf("worker.pub = %q, %v; want %q", pub, err, a.Public)
	}
	// A copied public key (of a server on another host) is never replaced.
	copied, _ := bus.NewKeyPair()
	if err := os.WriteFile(filepath.Join(dir, "globalmanager.pub"), []byte(copied.Public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureKey(dir, "globalmanager"); err == nil {
		t.Error("ensureKey made a key pair over a copied public key")
	}
	e := &endpoints{busKeysDir: dir, serverKeys: map[string]string{}}
	if got, err := e.serverPublic("globalmanager"); err != nil || got != copied.Public {
		t.Errorf("serverPublic = %q, %v; want the copied key", got, err)
	}
	// The ring accepts the local key and an authorised one, re-reading on a miss.
	auth := filepath.Join(dir, "authorized")
	ring := newKeyRing(slog.New(slog.DiscardHandler), dir, auth)
	if _, ok := ring.Authorize(a.Public); !ok {
		t.Error("local key refused")
	}
	other, _ := bus.NewKeyPair()
	if _, ok := ring.Authorize(other.Public); ok {
		t.Error("unknown key accepted")
	}
	if err := os.MkdirAll(auth, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(auth, "host2.pub"), []byte(other.Public+"  worker on host2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if name, ok := ring.Authorize(other.Public); !ok || filepath.Base(name) != "host2.pub" {
		t.Errorf("authorised key: %q, %v", name, ok)
	}
	// Removing the file revokes the key at once.
	if err := os.Remove(filepath.Join(auth, "host2.pub")); err != nil {
		t.Fatal(err)
	}
	if _, ok := ring.Authorize(other.Public); ok {
		t.Error("a removed key is still accepted")
	}
}

func TestHealthProbe(t *testing.T) {
	sys, _, _ := simSystem(t)
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"frontend readyz", []string{"http://" + sys.fe + "/readyz"}, true},
		{"globalmanager healthz", []string{"http://" + sys.gm + "/healthz"}, true},
		{"jobmanager bus", []string{"--bus", sys.jmBus, "--role", "jobmanager", "--data-dir", sys.dataDir}, true},
		{"discovery bus", []string{"--bus", sys.dcBus, "--role", "discovery", "--data-dir", sys.dataDir}, true},
		{"nothing listening", []string{"http://" + freeAddr(t) + "/healthz"}, false},
		{"bus nobody serves", []string{"--bus", "tcp://" + freeAddr(t), "--role", "jobmanager", "--data-dir", sys.dataDir, "--timeout", "1s"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(binary, append([]string{"health"}, tc.args...)...).CombinedOutput()
			if (err == nil) != tc.ok {
				t.Errorf("rswarm health %q: err %v, want ok=%v\n%s", tc.args, err, tc.ok, out)
			}
		})
	}
}

func TestBusWithoutCurveBindsOnlyLoopback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		addr     string
		busAuth  bool
		insecure bool
		ok       bool
	}{
		{"CURVE on every interface", "tcp://*:0", true, false, true},
		{"no CURVE on loopback", "tcp://127.0.0.1:0", false, false, true},
		{"no CURVE on every interface", "tcp://*:0", false, false, false},
		{"no CURVE on an address", "tcp://0.0.0.0:0", false, false, false},
		{"no CURVE on every interface with --insecure", "tcp://*:0", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &endpoints{dataDir: t.TempDir(), busAuth: tc.busAuth, insecure: tc.insecure, serverKeys: map[string]string{}}
			srv, err := e.listenBus("jobmanager", tc.addr, nil, nil)
			if srv != nil {
				_ = srv.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("listenBus(%s, bus-auth=%v, insecure=%v) = %v, want ok=%v", tc.addr, tc.busAuth, tc.insecure, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "--insecure") {
				t.Errorf("refusal %q does not say how to proceed", err)
			}
		})
	}
}

// TestEnsureKeyConcurrently: processes that share a data directory start
// at once and each may make a role's key pair (a client makes its server's
// pair when missing). Every caller must end with the one pair; a caller
// that saw the public key before the secret once took it for a copied key
// and refused to start.
func TestEnsureKeyConcurrently(t *testing.T) {
	for round := range 50 {
		dir := t.TempDir()
		const callers = 8
		pubs := make([]string, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				kp, err := ensureKey(dir, "jobmanager")
				pubs[i], errs[i] = kp.Public, err
			}()
		}
		wg.Wait()
		for i := range callers {
			if errs[i] != nil {
				t.Fatalf("round %d, caller %d: %v", round, i, errs[i])
			}
			if pubs[i] != pubs[0] {
				t.Fatalf("round %d: callers got different keys %q and %q", round, pubs[0], pubs[i])
			}
		}
	}
}

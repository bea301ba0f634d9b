package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// Tests of the worker Agent over the simulated runtime (Sim) and
// hand-written Links that record every request: the globalmanager's side
// answers registration, the test plays its commands by calling the handler
// the Agent gave the globalmanager's dialer, and discovery's side records
// statuses and heartbeats (and can refuse the first few statuses).
//
// The tests are in package worker so that a simulated task can be ended
// at a chosen moment (Sim.finish, as if its container exited), which makes
// the order of reported states deterministic.

const wait = 5 * time.Second // polling deadline; never reached when things work

// request is one request a fake Link received.
type request struct {
	kind string
	body any
}

// fakeLink is a Link that records requests. As the globalmanager it
// answers register with RegisterReply{NodeID: nodeIDs[i]} (the last one
// repeated); as discovery it fails the first failStatuses task statuses.
type fakeLink struct {
	mu           sync.Mutex
	reqs         []request
	nodeIDs      []string
	joinToken    string // when set, a register without a node ID is told to join
	registers    int
	failStatuses int
	statusTries  int
	closed       int
	// hold, when set, keeps the first status report waiting until it is closed.
	hold chan struct{}
	// stops are handed out in the next heartbeat reply (reconciliation).
	stops []api.StopTask
}

func (l *fakeLink) Request(_ context.Context, kind string, body, reply any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch kind {
	case api.KindRegister:
		if l.joinToken != "" && body.(api.Register).NodeID == "" {
			*reply.(*api.RegisterReply) = api.RegisterReply{JoinToken: l.joinToken, ManagerAddr: "10.0.0.1:2377"}
			break
		}
		id := l.nodeIDs[min(l.registers, len(l.nodeIDs)-1)]
		l.registers++
		reply.(*api.RegisterReply).NodeID = id
	case api.KindTaskStatuses:
		if h := l.hold; h != nil {
			l.hold = nil
			l.mu.Unlock()
			<-h
			l.mu.Lock()
		}
		l.statusTries++
		if l.failStatuses > 0 {
			l.failStatuses--
			l.reqs = append(l.reqs, request{kind: "refused " + kind, body: body})
			return fmt.Errorf("discovery: not now: %w", api.ErrUnavailable)
		}
	}
	if kind == api.KindHeartbeat && reply != nil {
		reply.(*api.HeartbeatReply).Stop, l.stops = l.stops, nil
	}
	l.reqs = append(l.reqs, request{kind: kind, body: body})
	return nil
}

func (l *fakeLink) stopInNextReply(st api.StopTask) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stops = append(l.stops, st)
}

func (l *fakeLink) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed++
	return nil
}

// statuses returns the acknowledged task statuses, in delivery order.
func (l *fakeLink) statuses() []api.TaskStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []api.TaskStatus
	for _, r := range l.reqs {
		if r.kind == api.KindTaskStatuses {
			out = append(out, r.body.(api.TaskStatuses).Statuses...)
		}
	}
	return out
}

// statusesOf returns the acknowledged statuses of one task.
func (l *fakeLink) statusesOf(task string) []api.TaskStatus {
	var out []api.TaskStatus
	for _, s := range l.statuses() {
		if s.Task == task {
			out = append(out, s)
		}
	}
	return out
}

func (l *fakeLink) heartbeats() []api.Heartbeat {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []api.Heartbeat
	for _, r := range l.reqs {
		if r.kind == api.KindHeartbeat {
			out = append(out, r.body.(api.Heartbeat))
		}
	}
	return out
}

func (l *fakeLink) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.reqs {
		out = append(out, r.kind)
	}
	return out
}

// agentEnv is one running Agent with its simulated host and fake peers.
type agentEnv struct {
	agent  *Agent
	sim    *Sim
	gm, dc *fakeLink

	mu         sync.Mutex
	handler    Handler
	identities []string // identities the dialers were called with: "gm:<id>", "dc:<id>"

	cancel context.CancelFunc
	done   chan error
}

type envOption func(*Config, *agentEnv)

// startAgent runs an Agent on a simulated host "sim1" with 4 cores and
// 1 GiB until the test ends, and waits until it is registered.
func startAgent(t *testing.T, rt func(*Sim) Runtime, opts ...envOption) *agentEnv {
	t.Helper()
	e := &agentEnv{
		sim:  NewSim("sim1", 4, 1<<30, 1),
		gm:   &fakeLink{nodeIDs: []string{"sim1"}},
		dc:   &fakeLink{},
		done: make(chan error, 1),
	}
	cfg := DefaultConfig()
	cfg.HeartbeatPeriod = time.Hour // heartbeats only where a test asks for them
	cfg.RequestTimeout = time.Second
	cfg.StopGrace = 0
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, o := range opts {
		o(&cfg, e)
	}
	var runtime Runtime = e.sim
	if rt != nil {
		runtime = rt(e.sim)
	}
	dialGM := func(identity string, h Handler) (Link, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.handler = h
		e.identities = append(e.identities, "gm:"+identity)
		return e.gm, nil
	}
	dialDC := func(identity string, _ Handler) (Link, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.identities = append(e.identities, "dc:"+identity)
		return e.dc, nil
	}
	a, err := New(cfg, runtime, dialGM, dialDC)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- a.Run(ctx) }()
	t.Cleanup(func() { e.stop(t) })
	select {
	case <-a.Ready():
	case err := <-e.done:
		t.Fatalf("Run returned before registering: %v", err)
	case <-time.After(wait):
		t.Fatal("the agent did not register")
	}
	return e
}

// stop cancels the agent and waits for Run to return nil; idempotent.
func (e *agentEnv) stop(t *testing.T) {
	t.Helper()
	e.cancel()
	if err, ok := <-e.done; ok {
		close(e.done)
		if err != nil {
			t.Errorf("Run returned %v, want nil on cancellation", err)
		}
	}
}

// command plays the globalmanager: it sends kind with body to the agent.
func (e *agentEnv) command(kind string, body any) (any, error) {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	e.mu.Lock()
	h := e.handler
	e.mu.Unlock()
	return h(context.Background(), "globalmanager", kind, b)
}

func runTask(name string, cores int) api.RunTask {
	return api.RunTask{Job: "j", Network: "rsnet_j", Task: api.Task{
		ContainerName: name, Image: "rswarm/busybox:latest", Command: "sleep 3600",
		ReqCores: cores, MemLimit: "16m", Node: "sim1",
	}}
}

// states returns the states in ss.
func states(ss []api.TaskStatus) []api.State {
	var out []api.State
	for _, s := range ss {
		out = append(out, s.State)
	}
	return out
}

// reported polls until task's acknowledged states are want.
func (e *agentEnv) reported(t *testing.T, task string, want ...api.State) []api.TaskStatus {
	t.Helper()
	var got []api.TaskStatus
	apitest.Eventually(t, wait, func() error {
		got = e.dc.statusesOf(task)
		if !slices.Equal(states(got), want) {
			return fmt.Errorf("%s reported %v, want %v", task, states(got), want)
		}
		return nil
	})
	return got
}

func TestRegister(t *testing.T) {
	e := startAgent(t, nil)
	if got := e.agent.NodeID(); got != "sim1" {
		t.Errorf("NodeID() = %q, want sim1", got)
	}
	// The globalmanager is dialled under the host's node ID, then discovery under the registered one.
	e.mu.Lock()
	ids := slices.Clone(e.identities)
	e.mu.Unlock()
	if want := []string{"gm:sim1", "dc:sim1"}; !slices.Equal(ids, want) {
		t.Errorf("dialled %v, want %v", ids, want)
	}
	reqs := e.gm.kinds()
	if !slices.Equal(reqs, []string{api.KindRegister}) {
		t.Fatalf("globalmanager got %v, want one register", reqs)
	}
	e.gm.mu.Lock()
	reg := e.gm.reqs[0].body.(api.Register)
	e.gm.mu.Unlock()
	if reg.NodeID != "sim1" || reg.Runtime != "sim" || reg.Cores != 4 || reg.MemTotal != 1<<30 || reg.Checkpoint {
		t.Errorf("register = %+v, want sim1, sim, 4 cores, 1 GiB, no checkpoints", reg)
	}
}

func TestRegisterRetriesUntilTheNodeMatches(t *testing.T) {
	// The globalmanager first answers with another node's ID (a stale
	// registration): the agent refuses it, closes the link and tries again.
	e := startAgent(t, nil, func(_ *Config, e *agentEnv) { e.gm.nodeIDs = []string{"other", "sim1"} })
	if got := e.agent.NodeID(); got != "sim1" {
		t.Errorf("NodeID() = %q, want sim1", got)
	}
	e.gm.mu.Lock()
	registers, closed := e.gm.registers, e.gm.closed
	e.gm.mu.Unlock()
	if registers != 2 || closed != 1 {
		t.Errorf("registers = %d, links closed = %d; want 2 and 1", registers, closed)
	}
}

func TestRegisterJoinsTheSwarmWhenTold(t *testing.T) {
	// A host outside the swarm registers without a node ID; the
	// globalmanager answers with a join token; the host joins, and
	// registers again under the node ID it now has.
	var rt *joiningSim
	e := startAgent(t, func(s *Sim) Runtime { rt = &joiningSim{Sim: s}; return rt },
		func(_ *Config, e *agentEnv) { e.gm.joinToken = "SWMTKN-1-x" })
	if got := e.agent.NodeID(); got != "sim1" {
		t.Errorf("NodeID() = %q, want sim1", got)
	}
	rt.mu.Lock()
	joins := slices.Clone(rt.joins)
	rt.mu.Unlock()
	if want := []string{"10.0.0.1:2377 SWMTKN-1-x"}; !slices.Equal(joins, want) {
		t.Errorf("joins = %v, want %v", joins, want)
	}
	e.mu.Lock()
	ids := slices.Clone(e.identities)
	e.mu.Unlock()
	if len(ids) != 3 || !strings.HasPrefix(ids[0], "gm:joining-sim1-") || ids[1] != "gm:sim1" || ids[2] != "dc:sim1" {
		t.Errorf("dialled %v, want a joining identity, then gm:sim1 and dc:sim1", ids)
	}
}

// joiningSim is the simulation of a host that is not in the swarm until it joins.
type joiningSim struct {
	*Sim
	mu    sync.Mutex
	joins []string
}

func (j *joiningSim) Host(ctx context.Context) (api.Register, error) {
	reg, err := j.Sim.Host(ctx)
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.joins) == 0 {
		reg.NodeID = ""
	}
	return reg, err
}

func (j *joiningSim) Join(_ context.Context, addr, token string) (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.joins = append(j.joins, addr+" "+token)
	return j.ID, nil
}

func TestTaskLifecycle(t *testing.T) {
	const name = "j_task1"
	tests := []struct {
		name string
		// end ends the running task: the container exits, or the globalmanager stops it.
		end       func(t *testing.T, e *agentEnv)
		wantState api.State
		wantExit  *int
		wantErr   string
	}{
		{
			name:      "exit 0 is reported Running then Down",
			end:       func(t *testing.T, e *agentEnv) { e.sim.finish(name, 0) },
			wantState: api.Down, wantExit: intp(0),
		},
		{
			name:      "a non-zero exit is reported Failed with its code",
			end:       func(t *testing.T, e *agentEnv) { e.sim.finish(name, 3) },
			wantState: api.Failed, wantExit: intp(3), wantErr: "exited with code 3",
		},
		{
			// The runtime reports the kill as exit 137; the agent reports what was asked for.
			name: "stop_task is reported Cancelled with the reason",
			end: func(t *testing.T, e *agentEnv) {
				got, err := e.command(api.KindStopTask, api.StopTask{Job: "j", Task: name, Reason: "cancelled by user"})
				if err != nil || got != "stopped" {
					t.Fatalf("stop_task = %v, %v; want stopped", got, err)
				}
			},
			wantState: api.Cancelled, wantExit: intp(137), wantErr: "cancelled by user",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startAgent(t, nil)
			got, err := e.command(api.KindRunTask, runTask(name, 1))
			if err != nil || got != "accepted" {
				t.Fatalf("run_task = %v, %v; want accepted", got, err)
			}
			e.reported(t, name, api.Running)
			tt.end(t, e)
			ss := e.reported(t, name, api.Running, tt.wantState)
			last := ss[1]
			if last.Job != "j" || last.Node != "sim1" {
				t.Errorf("status names job %q node %q, want j, sim1", last.Job, last.Node)
			}
			if (last.ExitCode == nil) != (tt.wantExit == nil) || (last.ExitCode != nil && *last.ExitCode != *tt.wantExit) {
				t.Errorf("exit code = %v, want %v", deref(last.ExitCode), deref(tt.wantExit))
			}
			if last.Error != tt.wantErr {
				t.Errorf("error = %q, want %q", last.Error, tt.wantErr)
			}
			if ss[0].Time <= 0 || last.Time < ss[0].Time {
				t.Errorf("times = %v then %v, want increasing epoch seconds", ss[0].Time, last.Time)
			}
			// The task is gone: a stop now finds nothing.
			if got, err := e.command(api.KindStopTask, api.StopTask{Task: name}); err != nil || got != "not running" {
				t.Errorf("second stop_task = %v, %v; want not running", got, err)
			}
		})
	}
}

// TestMigratingStopIsNotReported: the globalmanager records Migrating
// itself and the task lives on elsewhere; a report from the old worker,
// arriving after the new worker's Running, would move it back.
func TestMigratingStopIsNotReported(t *testing.T) {
	const name = "j_task1"
	e := startAgent(t, nil)
	if got, err := e.command(api.KindRunTask, runTask(name, 1)); err != nil || got != "accepted" {
		t.Fatalf("run_task = %v, %v; want accepted", got, err)
	}
	e.reported(t, name, api.Running)
	got, err := e.command(api.KindStopTask, api.StopTask{Job: "j", Task: name, Reason: "migrating to w2", Migrating: true})
	if err != nil || got != "stopped" {
		t.Fatalf("stop_task = %v, %v; want stopped", got, err)
	}
	apitest.Eventually(t, wait, func() error {
		if got, err := e.command(api.KindStopTask, api.StopTask{Task: name}); err != nil || got != "not running" {
			return fmt.Errorf("task still known to the worker: %v, %v", got, err)
		}
		return nil
	})
	if got := states(e.dc.statusesOf(name)); !slices.Equal(got, []api.State{api.Running}) {
		t.Fatalf("reported %v, want only Running", got)
	}
}

func intp(v int) *int { return &v }

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestSimulatedTaskEndsByItself(t *testing.T) {
	// One second scaled by 0.01: the task ends on its own after 10 ms.
	// (Only the end is checked here; the order against Running is
	// TestTaskLifecycle's, where the end comes at a chosen moment.)
	e := startAgent(t, nil, func(_ *Config, e *agentEnv) { e.sim.TimeScale = 0.01 })
	rt := runTask("j_task1", 1)
	rt.Task.Command, rt.Task.Duration = "", 1
	if _, err := e.command(api.KindRunTask, rt); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, wait, func() error {
		got := states(e.dc.statusesOf("j_task1"))
		if !slices.Contains(got, api.Running) || !slices.Contains(got, api.Down) {
			return fmt.Errorf("reported %v, want Running and Down", got)
		}
		return nil
	})
}

func TestRunTaskRetryIsIdempotent(t *testing.T) {
	e := startAgent(t, nil)
	const name = "j_task1"
	if got, err := e.command(api.KindRunTask, runTask(name, 1)); err != nil || got != "accepted" {
		t.Fatalf("run_task = %v, %v", got, err)
	}
	e.reported(t, name, api.Running)
	// The globalmanager did not see the ack and sends the command again.
	if got, err := e.command(api.KindRunTask, runTask(name, 1)); err != nil || got != "already running" {
		t.Fatalf("retried run_task = %v, %v; want already running", got, err)
	}
	if _, err := e.command(api.KindStopTask, api.StopTask{Task: name, Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	// Statuses are delivered in order: had the retry started the task
	// again, a second Running would come before the Cancelled.
	e.reported(t, name, api.Running, api.Cancelled)
}

func TestStartFailureIsReported(t *testing.T) {
	e := startAgent(t, func(s *Sim) Runtime { return failingRun{s} })
	if got, err := e.command(api.KindRunTask, runTask("j_task1", 1)); err != nil || got != "accepted" {
		t.Fatalf("run_task = %v, %v; want accepted (the start's outcome goes to discovery)", got, err)
	}
	ss := e.reported(t, "j_task1", api.Failed)
	if !strings.Contains(ss[0].Error, "image not found") {
		t.Errorf("error = %q, want the runtime's reason", ss[0].Error)
	}
	// The task is not held: the same command may be retried.
	if got, err := e.command(api.KindStopTask, api.StopTask{Task: "j_task1"}); err != nil || got != "not running" {
		t.Errorf("stop_task = %v, %v; want not running", got, err)
	}
}

// failingRun is the simulation with a start that always fails.
type failingRun struct{ *Sim }

func (failingRun) Run(context.Context, api.RunTask) error {
	return errors.New("image not found: rswarm/busybox:latest")
}

func TestCommands(t *testing.T) {
	const name = "j_task1"
	tests := []struct {
		name    string
		kind    string
		body    any
		want    any
		wantErr error // an error kind, or errAny
	}{
		{name: "task logs", kind: api.KindTaskLogs, body: api.TaskLogs{Task: name, Tail: 10}, want: []string{"simulated task j_task1"}},
		{name: "checkpoint is refused by the simulation", kind: api.KindCheckpoint, body: api.Checkpoint{Task: name, Name: "cp1"}, wantErr: api.ErrUnavailable},
		{name: "update a running task", kind: api.KindUpdateTask, body: api.UpdateTask{Task: name, CpusetCpus: "0-2", MemLimit: "32m"}, want: "updated"},
		{name: "update a task that is not here", kind: api.KindUpdateTask, body: api.UpdateTask{Task: "j_task9", CpusetCpus: "0"}, wantErr: api.ErrNotFound},
		{name: "update with a bad cpuset", kind: api.KindUpdateTask, body: api.UpdateTask{Task: name, CpusetCpus: "x"}, wantErr: api.ErrInvalid},
		{name: "update with a bad memory limit", kind: api.KindUpdateTask, body: api.UpdateTask{Task: name, CpusetCpus: "0", MemLimit: "lots"}, wantErr: api.ErrInvalid},
		{name: "stop a task that is not here", kind: api.KindStopTask, body: api.StopTask{Task: "j_task9"}, want: "not running"},
		{name: "malformed run_task", kind: api.KindRunTask, body: "not an object", wantErr: errAny},
		{name: "malformed stop_task", kind: api.KindStopTask, body: 5, wantErr: errAny},
		{name: "unknown command", kind: "reboot", body: struct{}{}, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startAgent(t, nil)
			if _, err := e.command(api.KindRunTask, runTask(name, 1)); err != nil {
				t.Fatal(err)
			}
			e.reported(t, name, api.Running)
			got, err := e.command(tt.kind, tt.body)
			switch {
			case tt.wantErr == errAny:
				if err == nil {
					t.Fatalf("%s = %v, want an error", tt.kind, got)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("%s error = %v, want %v", tt.kind, err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("%s: %v", tt.kind, err)
			}
			if tt.wantErr == nil && fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("%s = %v, want %v", tt.kind, got, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestHeartbeats(t *testing.T) {
	e := startAgent(t, nil, func(c *Config, _ *agentEnv) { c.HeartbeatPeriod = 10 * time.Millisecond })
	// With nothing running: the host's size, nothing busy.
	apitest.Eventually(t, wait, func() error {
		hbs := e.dc.heartbeats()
		if len(hbs) == 0 {
			return errors.New("no heartbeat yet")
		}
		hb := hbs[0]
		if hb.Node != "sim1" || hb.Cores != 4 || hb.MemTotal != 1<<30 || hb.CoresBusy != 0 || hb.Tasks != 0 || hb.Time <= 0 {
			return fmt.Errorf("first heartbeat = %+v, want sim1 with 4 idle cores", hb)
		}
		return nil
	})
	if _, err := e.command(api.KindRunTask, runTask("j_task1", 2)); err != nil {
		t.Fatal(err)
	}
	// A two-core task with a 16m limit: 2 cores and 16 MiB busy, one task.
	apitest.Eventually(t, wait, func() error {
		hbs := e.dc.heartbeats()
		hb := hbs[len(hbs)-1]
		if hb.CoresBusy != 2 || hb.MemUsed != 16<<20 || hb.Tasks != 1 {
			return fmt.Errorf("last heartbeat = %+v, want 2 cores and 16 MiB busy, 1 task", hb)
		}
		return nil
	})
	// Resized in place to three cores: the heartbeats follow.
	if _, err := e.command(api.KindUpdateTask, api.UpdateTask{Task: "j_task1", CpusetCpus: "0-2", MemLimit: "32m"}); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, wait, func() error {
		hbs := e.dc.heartbeats()
		hb := hbs[len(hbs)-1]
		if hb.CoresBusy != 3 || hb.MemUsed != 32<<20 {
			return fmt.Errorf("last heartbeat = %+v, want 3 cores and 32 MiB busy", hb)
		}
		return nil
	})
}

func TestShutdownFailsRunningTasks(t *testing.T) {
	e := startAgent(t, nil)
	for _, n := range []string{"j_task1", "j_task2"} {
		if _, err := e.command(api.KindRunTask, runTask(n, 1)); err != nil {
			t.Fatal(err)
		}
		e.reported(t, n, api.Running)
	}
	// Run returns once the last statuses are delivered.
	e.stop(t)
	for _, n := range []string{"j_task1", "j_task2"} {
		ss := e.dc.statusesOf(n)
		if len(ss) < 2 {
			t.Fatalf("%s reported %v, want Running then Failed", n, states(ss))
		}
		// The first final status is the one discovery keeps.
		if end := ss[1]; end.State != api.Failed || end.Error != "worker shut down" {
			t.Errorf("%s ended %v %q, want Failed \"worker shut down\"", n, end.State, end.Error)
		}
		if len(ss) > 2 {
			t.Logf("%s: %d statuses after its end (%v); discovery ignores them", n, len(ss)-2, states(ss[2:]))
		}
	}
	// A command arriving after the shutdown is refused, not silently dropped.
	if _, err := e.command(api.KindRunTask, runTask("j_task3", 1)); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("run_task after shutdown = %v, want ErrUnavailable", err)
	}
}

func TestLeaveFailsRunningTasks(t *testing.T) {
	e := startAgent(t, nil)
	if _, err := e.command(api.KindRunTask, runTask("j_task1", 1)); err != nil {
		t.Fatal(err)
	}
	e.reported(t, "j_task1", api.Running)
	if got, err := e.command(api.KindLeave, struct{}{}); err != nil || got != "leaving" {
		t.Fatalf("leave = %v, %v", got, err)
	}
	// The first final status is the one discovery keeps. (The runtime's own
	// report of the kill may follow it; discovery ignores a second end.)
	apitest.Eventually(t, wait, func() error {
		ss := e.dc.statusesOf("j_task1")
		if len(ss) < 2 || ss[1].State != api.Failed || ss[1].Error != "worker left the swarm" {
			return fmt.Errorf("reported %+v, want Running then Failed \"worker left the swarm\"", ss)
		}
		return nil
	})
}

func TestReporterRetriesUntilAcknowledged(t *testing.T) {
	// Discovery refuses the first two reports: the Running status is sent
	// three times, then acknowledged once, and the next status follows it.
	e := startAgent(t, nil, func(_ *Config, e *agentEnv) { e.dc.failStatuses = 2 })
	if _, err := e.command(api.KindRunTask, runTask("j_task1", 1)); err != nil {
		t.Fatal(err)
	}
	e.reported(t, "j_task1", api.Running)
	e.sim.finish("j_task1", 0)
	e.reported(t, "j_task1", api.Running, api.Down)
	want := []string{"refused task_statuses", "refused task_statuses", api.KindTaskStatuses, api.KindTaskStatuses}
	if got := e.dc.kinds(); !slices.Equal(got, want) {
		t.Errorf("discovery got %v, want %v", got, want)
	}
}

func TestReportsBatchWhatQueuedMeanwhile(t *testing.T) {
	// Discovery holds the first report (one task Running): the statuses of
	// the three tasks that start meanwhile go together in the next one.
	hold := make(chan struct{})
	e := startAgent(t, nil, func(_ *Config, e *agentEnv) { e.dc.hold = hold })
	for i := 1; i <= 4; i++ {
		if _, err := e.command(api.KindRunTask, runTask(fmt.Sprintf("j_task%d", i), 1)); err != nil {
			t.Fatal(err)
		}
		if i > 1 {
			continue
		}
		apitest.Eventually(t, wait, func() error { // the first report is held
			e.dc.mu.Lock()
			defer e.dc.mu.Unlock()
			if e.dc.hold != nil {
				return errors.New("no report yet")
			}
			return nil
		})
	}
	apitest.Eventually(t, wait, func() error {
		if p := e.agent.pending.Load(); p != 4 {
			return fmt.Errorf("%d statuses waiting, want 4", p)
		}
		return nil
	})
	close(hold)
	e.reported(t, "j_task4", api.Running)
	var got [][]string
	e.dc.mu.Lock()
	for _, r := range e.dc.reqs {
		if r.kind == api.KindTaskStatuses {
			var names []string
			for _, st := range r.body.(api.TaskStatuses).Statuses {
				names = append(names, st.Task)
			}
			got = append(got, names)
		}
	}
	e.dc.mu.Unlock()
	if len(got) != 2 || len(got[0]) != 1 || len(got[1]) != 3 {
		t.Fatalf("reports %v, want one status, then the other three together", got)
	}
	all := append(got[0], got[1]...)
	slices.Sort(all)
	if want := []string{"j_task1", "j_task2", "j_task3", "j_task4"}; !reflect.DeepEqual(all, want) {
		t.Errorf("reported %v, want %v", all, want)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr bool
	}{
		{"defaults", func(*Config) {}, false},
		{"zero heartbeat period", func(c *Config) { c.HeartbeatPeriod = 0 }, true},
		{"negative request timeout", func(c *Config) { c.RequestTimeout = -1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			if err := cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if _, err := New(cfg, NewSim("s", 1, 1, 1), nil, nil); (err != nil) != tt.wantErr {
				t.Errorf("New() error = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestSimDuration(t *testing.T) {
	tests := []struct {
		name     string
		duration float64
		command  string
		want     time.Duration
	}{
		{name: "duration field", duration: 2.5, command: "sleep 9", want: 2500 * time.Millisecond},
		{name: "sleep N", command: "sleep 3", want: 3 * time.Second},
		{name: "fractional sleep", command: "sleep 0.25", want: 250 * time.Millisecond},
		{name: "quoted argument", command: `sleep "2"`, want: 2 * time.Second},
		{name: "sleep 0", command: "sleep 0", want: 0},
		// Anything else runs for the default second.
		{name: "no command", want: time.Second},
		{name: "another program", command: "echo 5", want: time.Second},
		{name: "sleep without N", command: "sleep", want: time.Second},
		{name: "sleep with two arguments", command: "sleep 1 2", want: time.Second},
		{name: "sleep with a unit", command: "sleep 5s", want: time.Second},
		{name: "negative sleep", command: "sleep -1", want: time.Second},
		{name: "unbalanced quote", command: `sleep "2`, want: time.Second},
		{name: "negative duration falls back to the command", duration: -1, command: "sleep 4", want: 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SimDuration(&api.Task{Duration: tt.duration, Command: tt.command})
			if got != tt.want {
				t.Errorf("SimDuration(duration %v, %q) = %v, want %v", tt.duration, tt.command, got, tt.want)
			}
		})
	}
}

func TestSimDurationNeverNegative(t *testing.T) {
	// Regression (was a bug in worker/sim.go SimDuration): a value too large for a
	// time.Duration (1e10 s is 1e19 ns > MaxInt64, and +Inf) overflows the
	// float-to-int conversion, which gives math.MinInt64 on amd64: the task
	// "runs" for a negative time, so it ends at once instead of (about)
	// never. Expected: a positive duration (for example capped).
	tests := []struct {
		name     string
		duration float64
		command  string
	}{
		{name: "huge sleep", command: "sleep 1e10"},
		{name: "infinite sleep", command: "sleep inf"},
		{name: "huge duration field", duration: 1e10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SimDuration(&api.Task{Duration: tt.duration, Command: tt.command}); got <= 0 {
				t.Errorf("SimDuration(duration %v, %q) = %v, want a positive duration", tt.duration, tt.command, got)
			}
		})
	}
}

func TestSim(t *testing.T) {
	s := NewSim("s1", 8, 1<<30, 0)
	reg, err := s.Host(context.Background())
	if err != nil || reg.NodeID != "s1" || reg.Cores != 8 || reg.Runtime != "sim" || reg.CheckpointError == "" {
		t.Errorf("Host() = %+v, %v", reg, err)
	}
	if _, err := s.Join(context.Background(), "127.0.0.1:2377", "token"); err == nil {
		t.Errorf("Join() succeeded; a simulated worker is not a swarm node")
	}
	if err := s.Update(context.Background(), "nope", "0", 0); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Update(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.Leave(context.Background()); err != nil {
		t.Errorf("Leave() = %v", err)
	}
	// Stopping a task that is not running reports nothing.
	ctx, cancel := context.WithCancel(context.Background())
	out := s.Watch(ctx)
	if err := s.Stop(ctx, "nope", 0); err != nil {
		t.Errorf("Stop(unknown) = %v", err)
	}
	// Run twice is one task; its stop is one status.
	rt := runTask("j_t", 1)
	if err := s.Run(ctx, rt); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx, rt); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx, "j_t", 0); err != nil {
		t.Fatal(err)
	}
	st := <-out
	if st.Task != "j_t" || st.Job != "j" || st.State != api.Failed || st.ExitCode == nil || *st.ExitCode != 137 {
		t.Errorf("stopped task reported %+v, want Failed with 137", st)
	}
	// Watch closes its channel when ctx ends.
	cancel()
	for range out {
		t.Errorf("a second status was reported for one task")
	}
}

func TestRunTaskRefusesWhatTheFrontendRefuses(t *testing.T) {
	e := startAgent(t, nil)
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"host path volume", func() api.RunTask {
			rt := runTask("j_evil1", 1)
			rt.Task.Volumes = map[string]api.Volume{"/": {Bind: "/host"}}
			return rt
		}(), "volumes"},
		{"privileged setting", map[string]any{"job": "j", "network": "rsnet_j", "task": map[string]any{
			"container_name": "j_evil2", "image": "rswarm/busybox:latest", "req_cores": 1, "node": "sim1", "privileged": true}}, "privileged"},
		{"cores above the cap", runTask("j_evil3", 5000), "req_cores"},
		{"shell in the image", func() api.RunTask {
			rt := runTask("j_evil4", 1)
			rt.Task.Image = "busybox;rm -rf /"
			return rt
		}(), "image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.command(api.KindRunTask, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("run_task = %v, want a refusal naming %s", err, tc.field)
			}
		})
	}
	if n := len(e.dc.statuses()); n != 0 {
		t.Errorf("%d statuses reported; a refused task must not start", n)
	}
}

// A runtime holding more than its tasks' containers (a Releaser) is told
// to let it go once, as the worker stops, after its tasks were stopped.
func TestShutdownReleasesAfterStopping(t *testing.T) {
	var rt *releasingSim
	e := startAgent(t, func(s *Sim) Runtime { rt = &releasingSim{Sim: s}; return rt })
	for _, n := range []string{"j_task1", "j_task2"} {
		if _, err := e.command(api.KindRunTask, runTask(n, 1)); err != nil {
			t.Fatal(err)
		}
		e.reported(t, n, api.Running)
	}
	e.stop(t)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.released != 1 || rt.stopsBefore != 2 {
		t.Errorf("released %d times, after %d stops; want once, after both tasks' stops", rt.released, rt.stopsBefore)
	}
}

// releasingSim counts its stops and releases.
type releasingSim struct {
	*Sim
	mu                    sync.Mutex
	stops                 int
	released, stopsBefore int
}

func (r *releasingSim) Stop(ctx context.Context, task string, grace time.Duration) error {
	r.mu.Lock()
	r.stops++
	r.mu.Unlock()
	return r.Sim.Stop(ctx, task, grace)
}

func (r *releasingSim) Release(context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released++
	r.stopsBefore = r.stops
}

// A task whose container is still being started is held (its cores are
// taken) but says so in the heartbeat: discovery does not take it for
// running before the start's own report (found by bench latency: overlay
// tasks were marked Running seconds before their containers ran).
func TestHeartbeatSaysWhichTasksAreStarting(t *testing.T) {
	gate := make(chan struct{})
	e := startAgent(t, func(s *Sim) Runtime { return gatedRun{s, gate} })
	if got, err := e.command(api.KindRunTask, runTask("j_task1", 1)); err != nil || got != "accepted" {
		t.Fatalf("run_task = %v, %v; want accepted", got, err)
	}
	hb := e.agent.usage()
	if len(hb.Running) != 1 || !hb.Running[0].Starting || hb.Running[0].Cores != 1 {
		t.Fatalf("while its start waits: held %+v, want j_task1 holding 1 core, starting", hb.Running)
	}
	close(gate)
	e.reported(t, "j_task1", api.Running)
	if hb := e.agent.usage(); len(hb.Running) != 1 || hb.Running[0].Starting {
		t.Errorf("once started: held %+v, want j_task1 not starting", hb.Running)
	}
}

// gatedRun is the simulation with a start that waits for gate.
type gatedRun struct {
	*Sim
	gate chan struct{}
}

func (g gatedRun) Run(ctx context.Context, rt api.RunTask) error {
	<-g.gate
	return g.Sim.Run(ctx, rt)
}

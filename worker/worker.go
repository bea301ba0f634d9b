package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Runtime runs containers on this host. Implementations: the Docker Engine
// (engine.Runtime) and the simulation (Sim).
type Runtime interface {
	// Host describes this host; NodeID is its Swarm node ID, or empty when
	// the host is not in a swarm yet.
	Host(ctx context.Context) (api.Register, error)
	// Join makes the host join the swarm at addr and returns its node ID.
	Join(ctx context.Context, addr, token string) (string, error)
	// Run creates and starts a task's container; it returns once the
	// container runs, or with the reason it could not start.
	Run(ctx context.Context, rt api.RunTask) error
	// Stop stops a task's container, killing it after grace (at once when 0);
	// its end is then reported through Watch.
	Stop(ctx context.Context, task string, grace time.Duration) error
	// Logs returns the last tail lines a task printed.
	Logs(ctx context.Context, task string, tail int) ([]string, error)
	// Checkpoint saves a task's container state (CRIU) under name.
	Checkpoint(ctx context.Context, task, name string, leaveRunning bool) error
	// Update changes a running task's cores and memory limit in place.
	Update(ctx context.Context, task, cpuset string, mem int64) error
	// Leave takes the host out of the swarm.
	Leave(ctx context.Context) error
	// Watch delivers, until ctx ends, the end of every task this runtime
	// runs: Down or Failed with exit code, error and last log lines.
	Watch(ctx context.Context) <-chan api.TaskStatus
}

// ClusterScoper is a Runtime that one host may share with other RSwarm
// clusters (a Docker Engine): once registered, the worker tells it its
// cluster, and it then watches and removes only that cluster's containers.
type ClusterScoper interface {
	SetCluster(cluster string)
}

// Adopter is a Runtime that can list the tasks running on the host, so
// that a worker restarted while its tasks ran (Docker containers outlive
// the agent) holds them again instead of losing them. The simulation's
// tasks die with the process: it has nothing to adopt.
type Adopter interface {
	// Held lists the tasks of cluster (api.RegisterReply.Cluster) running.
	Held(ctx context.Context, cluster string) ([]api.HeldTask, error)
}

// Releaser is a Runtime that holds something on the host besides its
// tasks' containers (the Docker runtime's networks made ahead): the worker
// lets it go as it stops, once its own tasks are stopped.
type Releaser interface {
	Release(ctx context.Context)
}

// Link is a connection to a peer on the bus. Request is safe for concurrent use.
type Link interface {
	Request(ctx context.Context, kind string, body, reply any) error
	Close() error
}

// Handler serves a request arriving on a Link.
type Handler func(ctx context.Context, from, kind string, body []byte) (any, error)

// Dialer opens a link under identity to a peer (the globalmanager or discovery).
type Dialer func(identity string, h Handler) (Link, error)

// Config configures a worker.
type Config struct {
	// HeartbeatPeriod is the mean time between heartbeats (each is jittered by ±10%).
	HeartbeatPeriod time.Duration
	// RequestTimeout bounds one request to the globalmanager or discovery.
	RequestTimeout time.Duration
	// StopOnExit stops this worker's containers when it shuts down.
	StopOnExit bool
	// StopGrace is how long containers get to stop when the worker shuts down.
	StopGrace time.Duration
	// TransferListen is where the worker receives moved tasks' state
	// (host:port; "" = it does not). TransferAdvertise is the address other
	// workers reach it at; "" = the registered address with the listening port.
	TransferListen    string
	TransferAdvertise string
	// Limits are the rules every task must pass before it runs here, as at
	// the frontend (host paths only when allowed).
	Limits api.Limits
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: a heartbeat every second.
func DefaultConfig() Config {
	return Config{HeartbeatPeriod: time.Second, RequestTimeout: 3 * time.Second, StopOnExit: true, StopGrace: 2 * time.Second}
}

// Validate returns the first problem with the configuration.
func (c Config) Validate() error {
	if c.HeartbeatPeriod <= 0 || c.RequestTimeout <= 0 {
		return errors.New("worker: heartbeat period and request timeout must be positive")
	}
	return nil
}

// Agent is one worker.
type Agent struct {
	cfg    Config
	rt     Runtime
	dialGM Dialer
	dialDC Dialer
	log    *slog.Logger

	omu     sync.Mutex       // guards outbox
	outbox  []api.TaskStatus // statuses not sent yet, in order
	wake    chan struct{}    // a status was queued (capacity 1)
	pending atomic.Int64     // statuses queued or in flight, not yet acknowledged
	ready   chan struct{}

	mu       sync.Mutex
	node     string
	cluster  string // the control plane's name, from the registration
	cores    int
	memTotal int64
	closing  bool              // Run is shutting down
	tasks    map[string]*local // live tasks by name
	done     map[string]int    // attempt of each task that ended lately (a bounded memory, see forget)
	doneFIFO []string          // their names, oldest first
	wg       sync.WaitGroup    // task starts in flight
	runCtx   context.Context

	ln   net.Listener // transfer port, nil when not listening
	xfer transfers
}

type local struct {
	job       string
	adopted   bool // found running at start (see adopt)
	attempt   int
	cores     int
	mem       int64
	starting  bool // its container is being made and started (Run or a move's start)
	stopping  bool
	stopState api.State // the state a stopped task is reported in
	reason    string
}

// New returns an agent that runs tasks through rt and reaches the
// globalmanager and discovery through the dialers.
func New(cfg Config, rt Runtime, dialGM, dialDC Dialer) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, rt: rt, dialGM: dialGM, dialDC: dialDC, log: cfg.Logger,
		wake: make(chan struct{}, 1), ready: make(chan struct{}), tasks: map[string]*local{}, done: map[string]int{},
		xfer: transfers{expect: map[string]*expected{}}}, nil
}

// NodeID returns the worker's node ID once registered, else "".
func (a *Agent) NodeID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.node
}

// Ready is closed once the worker is registered and reporting.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run registers the worker, then serves commands and reports until ctx is
// cancelled. On the way out it stops its own containers (when configured)
// and reports them Failed, so that no job is left without a final state.
func (a *Agent) Run(ctx context.Context) error {
	a.runCtx = ctx
	var xwg sync.WaitGroup
	defer xwg.Wait()
	if _, ok := a.mover(); ok && a.cfg.TransferListen != "" {
		ln, err := net.Listen("tcp", a.cfg.TransferListen)
		if err != nil {
			return fmt.Errorf("worker: transfer port: %w", err)
		}
		a.ln = ln
		xctx, stop := context.WithCancel(ctx)
		defer stop()
		xwg.Add(1)
		go func() { defer xwg.Done(); a.serveTransfers(xctx, ln) }()
		a.log.Info("listening for transfers", "addr", ln.Addr().String())
	}
	gm, node, err := a.register(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer gm.Close()
	dc, err := a.dialDC(node, nil)
	if err != nil {
		return fmt.Errorf("worker: connect to discovery: %w", err)
	}
	defer dc.Close()
	log := a.log.With("node_id", node)
	log.Info("worker registered")
	a.adopt(ctx, log)
	close(a.ready)

	var wg sync.WaitGroup
	repCtx, stopReporting := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(2)
	go func() { defer wg.Done(); a.report(repCtx, dc) }()
	go func() { defer wg.Done(); a.heartbeat(ctx, dc) }()
	watchCtx, stopWatch := context.WithCancel(ctx)
	ended := a.rt.Watch(watchCtx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for st := range ended {
			a.ended(st)
		}
	}()

	<-ctx.Done()
	a.mu.Lock()
	a.closing = true // no start or leave may join a.wg from now on
	a.mu.Unlock()
	a.wg.Wait() // starts in flight
	if a.cfg.StopOnExit {
		a.stopAll(log, "worker shut down")
	}
	if rl, ok := a.rt.(Releaser); ok {
		rl.Release(context.WithoutCancel(ctx))
	}
	stopWatch()
	// Let the reporter deliver the last statuses (bounded: discovery may be gone).
	deadline := time.Now().Add(2 * a.cfg.RequestTimeout)
	for a.pending.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stopReporting()
	wg.Wait()
	return nil
}

// adopt holds again the tasks the runtime still runs from before a
// restart; they go into the first heartbeat, and reconciliation keeps or
// stops each.
func (a *Agent) adopt(ctx context.Context, log *slog.Logger) {
	ad, ok := a.rt.(Adopter)
	if !ok {
		return
	}
	a.mu.Lock()
	cluster := a.cluster
	a.mu.Unlock()
	held, err := ad.Held(ctx, cluster)
	if err != nil {
		log.Warn("listing the tasks running from before; reconciliation will find them failed", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range held {
		if _, ok := a.tasks[h.Task]; !ok {
			a.tasks[h.Task] = &local{job: h.Job, attempt: h.Attempt, cores: h.Cores, adopted: true}
		}
	}
	if len(held) > 0 {
		log.Info("adopted the tasks running from before", "count", len(held))
	}
}

// register introduces the worker to the globalmanager, joining the swarm
// first when told to, and returns the link open under the node's ID.
func (a *Agent) register(ctx context.Context) (Link, string, error) {
	backoff := 100 * time.Millisecond
	for {
		link, node, err := a.tryRegister(ctx)
		if err == nil {
			return link, node, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		// Jittered, so that many workers that lost the globalmanager
		// together do not come back in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		a.log.Warn("registration failed; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (a *Agent) tryRegister(ctx context.Context) (Link, string, error) {
	info, err := a.rt.Host(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("describe host: %w", err)
	}
	info.TransferAddr = a.transferAddr(info.Address)
	identity := info.NodeID
	if identity == "" {
		identity = fmt.Sprintf("joining-%s-%d", info.Host, os.Getpid())
	}
	link, err := a.dialGM(identity, a.handle)
	if err != nil {
		return nil, "", fmt.Errorf("connect to globalmanager: %w", err)
	}
	var reply api.RegisterReply
	rctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout*3)
	err = link.Request(rctx, api.KindRegister, info, &reply)
	cancel()
	if err != nil {
		link.Close()
		return nil, "", fmt.Errorf("register: %w", err)
	}
	if reply.JoinToken != "" {
		link.Close()
		a.log.Info("joining the swarm", "manager", reply.ManagerAddr)
		if _, err := a.rt.Join(ctx, reply.ManagerAddr, reply.JoinToken); err != nil {
			return nil, "", fmt.Errorf("join swarm at %s: %w", reply.ManagerAddr, err)
		}
		return a.tryRegister(ctx)
	}
	if reply.NodeID != identity {
		link.Close()
		return nil, "", fmt.Errorf("globalmanager registered node %q, expected %q", reply.NodeID, identity)
	}
	a.mu.Lock()
	a.node, a.cores, a.memTotal, a.cluster = reply.NodeID, info.Cores, info.MemTotal, reply.Cluster
	a.mu.Unlock()
	if cs, ok := a.rt.(ClusterScoper); ok && reply.Cluster != "" {
		cs.SetCluster(reply.Cluster)
	}
	return link, reply.NodeID, nil
}

// transferAddr is the address other workers send moved tasks to, or "".
func (a *Agent) transferAddr(registered string) string {
	if a.ln == nil {
		return ""
	}
	if a.cfg.TransferAdvertise != "" {
		return a.cfg.TransferAdvertise
	}
	_, port, _ := net.SplitHostPort(a.ln.Addr().String())
	host, _, err := net.SplitHostPort(registered)
	if err != nil {
		host = registered
	}
	if host == "" {
		return ""
	}
	return net.JoinHostPort(host, port)
}

// handle serves the globalmanager's commands. Run commands are acknowledged
// at once and started in the background; the start's outcome is reported
// to discovery.
func (a *Agent) handle(ctx context.Context, _ string, kind string, body []byte) (any, error) {
	switch kind {
	case api.KindRunTask:
		// Checked here too, whatever the sender: unknown settings (such as
		// privileged) and what the frontend refuses (host paths unless
		// allowed, cores above the cap, ...) are refused.
		var rt api.RunTask
		if err := api.DecodeStrict(body, &rt); err != nil {
			a.log.Warn("refusing run_task", "err", err)
			return nil, fmt.Errorf("worker: bad run_task: %w", err)
		}
		if err := api.CheckTask(rt.Job, rt.Task, a.cfg.Limits); err != nil {
			a.log.Warn("refusing run_task", "job_id", rt.Job, "task_id", rt.Task.ContainerName, "err", err)
			return nil, fmt.Errorf("worker: refusing task: %w", err)
		}
		return a.start(rt)
	case api.KindStopTask:
		var st api.StopTask
		if err := json.Unmarshal(body, &st); err != nil {
			return nil, fmt.Errorf("worker: bad stop_task: %w", err)
		}
		return a.stop(ctx, st)
	case api.KindCheckpoint:
		var cp api.Checkpoint
		if err := json.Unmarshal(body, &cp); err != nil {
			return nil, fmt.Errorf("worker: bad checkpoint: %w", err)
		}
		if err := a.rt.Checkpoint(ctx, cp.Task, cp.Name, cp.LeaveRunning); err != nil {
			return nil, err
		}
		return cp.Name, nil
	case api.KindUpdateTask:
		var up api.UpdateTask
		if err := json.Unmarshal(body, &up); err != nil {
			return nil, fmt.Errorf("worker: bad update_task: %w", err)
		}
		return a.update(ctx, up)
	case api.KindLeave:
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.closing {
			return nil, fmt.Errorf("worker: shutting down: %w", api.ErrUnavailable)
		}
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.leave() }()
		return "leaving", nil
	case api.KindReceiveTask:
		var rt api.ReceiveTask
		if err := json.Unmarshal(body, &rt); err != nil {
			return nil, fmt.Errorf("worker: bad receive_task: %w", err)
		}
		return a.receive(rt)
	case api.KindSendTask:
		var st api.SendTask
		if err := json.Unmarshal(body, &st); err != nil {
			return nil, fmt.Errorf("worker: bad send_task: %w", err)
		}
		return a.send(ctx, st)
	case api.KindTaskLogs:
		var tl api.TaskLogs
		if err := json.Unmarshal(body, &tl); err != nil {
			return nil, fmt.Errorf("worker: bad task_logs: %w", err)
		}
		return a.rt.Logs(ctx, tl.Task, tl.Tail)
	}
	return nil, fmt.Errorf("worker: unknown command %q", kind)
}

func (a *Agent) start(rt api.RunTask) (any, error) {
	name := rt.Task.ContainerName
	a.mu.Lock()
	if a.runCtx == nil || a.closing {
		a.mu.Unlock()
		return nil, fmt.Errorf("worker: shutting down: %w", api.ErrUnavailable)
	}
	if at, ran := a.done[name]; ran && at >= rt.Attempt {
		a.mu.Unlock()
		return "already ran", nil // a command repeated after the task ended: not run twice
	}
	if l, dup := a.tasks[name]; dup {
		if l.attempt >= rt.Attempt {
			a.mu.Unlock()
			return "already running", nil // a retried command: idempotent
		}
		// The copy of an earlier attempt (its job was restarted) still
		// runs here: stop it without a word; the sender tries again.
		a.mu.Unlock()
		if _, err := a.stop(a.runCtx, api.StopTask{Job: l.job, Task: name, Orphan: true, Attempt: l.attempt}); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("worker: attempt %d of task %s is stopping: %w", l.attempt, name, api.ErrUnavailable)
	}
	mem, _ := api.ParseMem(rt.Task.MemLimit)
	if rt.Task.MemLimit == "" {
		mem = 0
	}
	l := &local{job: rt.Job, attempt: rt.Attempt, cores: rt.Task.ReqCores, mem: mem, starting: true}
	a.tasks[name] = l
	node := a.node
	rt.Cluster = a.cluster
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		err := a.rt.Run(a.runCtx, rt)
		now := nowSec()
		if err != nil {
			a.log.Warn("task did not start", "job_id", rt.Job, "task_id", name, "err", err)
			a.mu.Lock()
			delete(a.tasks, name)
			a.mu.Unlock()
			a.enqueue(api.TaskStatus{Node: node, Job: rt.Job, Task: name, State: api.Failed, Error: err.Error(), Time: now, Attempt: rt.Attempt})
			return
		}
		a.mu.Lock()
		l.starting = false
		a.mu.Unlock()
		a.log.Debug("task started", "job_id", rt.Job, "task_id", name, "attempt", rt.Attempt)
		a.enqueue(api.TaskStatus{Node: node, Job: rt.Job, Task: name, State: api.Running, Time: now, Attempt: rt.Attempt})
	}()
	return "accepted", nil
}

func (a *Agent) update(ctx context.Context, up api.UpdateTask) (any, error) {
	var mem int64
	if up.MemLimit != "" {
		var err error
		if mem, err = api.ParseMem(up.MemLimit); err != nil {
			return nil, api.Invalid("mem_limit", "%v", err)
		}
	}
	cores, err := api.ParseCpuset(up.CpusetCpus)
	if err != nil {
		return nil, api.Invalid("cpuset_cpus", "%v", err)
	}
	a.mu.Lock()
	l := a.tasks[up.Task]
	a.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("worker: task %s is not running here: %w", up.Task, api.ErrNotFound)
	}
	if err := a.rt.Update(ctx, up.Task, up.CpusetCpus, mem); err != nil {
		return nil, err
	}
	a.mu.Lock()
	l.cores = len(cores)
	if mem > 0 {
		l.mem = mem
	}
	a.mu.Unlock()
	return "updated", nil
}

// leave stops every task (reported Failed: the worker left) and takes the
// host out of the swarm; the worker keeps running but gets no new work.
func (a *Agent) leave() {
	log := a.log.With("node_id", a.NodeID())
	a.stopAll(log, "worker left the swarm")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.rt.Leave(ctx); err != nil {
		log.Warn("leaving the swarm", "err", err)
		return
	}
	log.Info("left the swarm")
}

// forget drops an adopted task whose job the control plane does not know
// from what the worker holds, leaving its container alone: it may belong
// to another RSwarm on the same engine. It reports whether it did; a task
// this agent started itself is stopped instead.
func (a *Agent) forget(task string, attempt int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.tasks[task]
	if l == nil || l.attempt != attempt || !l.adopted {
		return false
	}
	delete(a.tasks, task)
	a.log.Info("forgetting a task of a job this control plane does not know", "task_id", task)
	return true
}

// orphaned is the stop state of a task the control plane does not want:
// its end is not reported.
const orphaned = api.State(255)

func (a *Agent) stop(ctx context.Context, st api.StopTask) (any, error) {
	a.mu.Lock()
	l := a.tasks[st.Task]
	if l != nil && st.Orphan && l.attempt != st.Attempt {
		l = nil // another attempt than the one judged an orphan
	}
	if l != nil && (!l.stopping || st.Orphan) { // the first stop says what the end means
		l.stopping, l.stopState, l.reason = true, api.Cancelled, st.Reason
		switch {
		case st.Orphan:
			l.stopState = orphaned
		case st.Migrating:
			l.stopState = api.Migrating
		}
	}
	a.mu.Unlock()
	if l == nil {
		return "not running", nil
	}
	if err := a.rt.Stop(ctx, st.Task, time.Duration(st.Grace*float64(time.Second))); err != nil {
		return nil, fmt.Errorf("worker: stop %s: %w", st.Task, err)
	}
	return "stopped", nil
}

// ended turns a runtime's report of a task's end into a status, replacing
// it by Cancelled when the task was stopped on purpose.
func (a *Agent) ended(st api.TaskStatus) {
	a.mu.Lock()
	l := a.tasks[st.Task]
	delete(a.tasks, st.Task)
	if l != nil && !(l.stopping && l.stopState == orphaned) {
		// (an orphan may be wanted here again, placed anew: not remembered)
		a.remember(st.Task, l.attempt)
	}
	st.Node = a.node
	a.mu.Unlock()
	if l != nil {
		st.Job, st.Attempt = l.job, l.attempt
		if l.stopping {
			st.State = l.stopState
			st.Error = l.reason
		}
	}
	if st.Job == "" {
		return // not one of ours
	}
	a.log.Debug("task ended", "job_id", st.Job, "task_id", st.Task, "attempt", st.Attempt, "orphan", st.State == orphaned)
	if st.State == orphaned {
		return // not wanted any more: nothing to report
	}
	if st.State == api.Migrating {
		// The globalmanager recorded the move itself; a late report from
		// here could undo the new worker's Running.
		return
	}
	a.enqueue(st)
}

// doneMemory is how many ended tasks a worker remembers, so that a run
// command repeated after a task's end (its report not stored yet when the
// command was sent again) does not start it a second time.
const doneMemory = 4096

// remember records that attempt of task ended; a.mu is held.
func (a *Agent) remember(task string, attempt int) {
	if _, ok := a.done[task]; !ok {
		a.doneFIFO = append(a.doneFIFO, task)
	}
	a.done[task] = attempt
	if len(a.doneFIFO) > doneMemory {
		delete(a.done, a.doneFIFO[0])
		a.doneFIFO = a.doneFIFO[1:]
	}
}

// enqueue queues a status for the reporter. The queue is not bounded: a
// worker has a few statuses per task it runs, and a status dropped would
// leave a job without its final state.
func (a *Agent) enqueue(st api.TaskStatus) {
	a.pending.Add(1)
	a.omu.Lock()
	a.outbox = append(a.outbox, st)
	a.omu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// maxReport bounds the statuses sent in one message.
const maxReport = 256

// minReportTimeout is the least a report waits for its acknowledgement:
// discovery answers once the statuses are stored, which on a loaded host
// takes seconds, and sending the report again then only adds to the load.
const minReportTimeout = 10 * time.Second

// report delivers statuses to discovery in order: whatever queued up while
// the previous report was in flight goes in one message, retried until
// acknowledged.
func (a *Agent) report(ctx context.Context, dc Link) {
	for {
		a.omu.Lock()
		n := min(len(a.outbox), maxReport)
		batch := slices.Clone(a.outbox[:n])
		a.omu.Unlock()
		if n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-a.wake:
			}
			continue
		}
		backoff := 50 * time.Millisecond
		for {
			rctx, cancel := context.WithTimeout(ctx, max(a.cfg.RequestTimeout, minReportTimeout))
			err := dc.Request(rctx, api.KindTaskStatuses, api.TaskStatuses{Statuses: batch}, nil)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("reporting statuses failed; retrying", "statuses", n, "task_id", batch[0].Task, "state", batch[0].State, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff/2 + rand.N(backoff/2+1)): // jittered
			}
			backoff = min(2*backoff, 2*time.Second)
		}
		a.omu.Lock()
		a.outbox = a.outbox[n:]
		if len(a.outbox) == 0 {
			a.outbox = nil // let the array go
		}
		a.omu.Unlock()
		a.pending.Add(int64(-n))
	}
}

func (a *Agent) heartbeat(ctx context.Context, dc Link) {
	for {
		jitter := 0.9 + 0.2*rand.Float64()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(float64(a.cfg.HeartbeatPeriod) * jitter)):
		}
		hb := a.usage()
		var reply api.HeartbeatReply
		rctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
		if err := dc.Request(rctx, api.KindHeartbeat, hb, &reply); err != nil && ctx.Err() == nil {
			a.log.Debug("heartbeat not acknowledged", "err", err)
		}
		cancel()
		for _, st := range reply.Stop {
			// Reconciliation: a task the control plane does not want.
			if st.Forget && a.forget(st.Task, st.Attempt) {
				continue
			}
			st.Orphan = true
			a.log.Info("stopping a task the control plane does not want", "job_id", st.Job, "task_id", st.Task, "attempt", st.Attempt, "reason", st.Reason)
			if _, err := a.stop(ctx, st); err != nil && ctx.Err() == nil {
				a.log.Warn("stopping an unwanted task", "task_id", st.Task, "err", err)
			}
		}
	}
}

// usage is the heartbeat: the worker's use, and every task it holds
// (running, starting, or ended with the end not delivered yet), sorted.
func (a *Agent) usage() api.Heartbeat {
	a.mu.Lock()
	hb := api.Heartbeat{Node: a.node, Tasks: len(a.tasks), Running: make([]api.HeldTask, 0, len(a.tasks))}
	for n, l := range a.tasks {
		hb.CoresBusy += l.cores
		hb.MemUsed += l.mem
		hb.Running = append(hb.Running, api.HeldTask{Job: l.job, Task: n, Attempt: l.attempt, Cores: l.cores, Starting: l.starting})
	}
	hb.Cores, hb.MemTotal = a.cores, a.memTotal
	a.mu.Unlock()
	a.omu.Lock()
	for _, st := range a.outbox {
		if st.State.Final() {
			hb.Running = append(hb.Running, api.HeldTask{Job: st.Job, Task: st.Task, Attempt: st.Attempt})
		}
	}
	a.omu.Unlock()
	slices.SortFunc(hb.Running, func(x, y api.HeldTask) int { return strings.Compare(x.Task, y.Task) })
	hb.Time = nowSec() // when it is sent
	return hb
}

// stopAll stops every live task and reports it Failed with reason: the worker is going away.
func (a *Agent) stopAll(log *slog.Logger, reason string) {
	a.mu.Lock()
	names := make([]string, 0, len(a.tasks))
	for n, l := range a.tasks {
		l.stopping, l.stopState, l.reason = true, api.Failed, reason
		names = append(names, n)
	}
	a.mu.Unlock()
	if len(names) == 0 {
		return
	}
	log.Info("stopping this worker's containers", "count", len(names))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.rt.Stop(ctx, n, a.cfg.StopGrace); err != nil {
				log.Warn("stopping container", "task_id", n, "err", err)
			}
			a.mu.Lock()
			l := a.tasks[n]
			delete(a.tasks, n)
			node := a.node
			a.mu.Unlock()
			if l != nil {
				a.enqueue(api.TaskStatus{Node: node, Job: l.job, Task: n, State: api.Failed, Error: reason, Time: nowSec(), Attempt: l.attempt})
			}
		}()
	}
	wg.Wait()
}

func nowSec() float64 { return float64(time.Now().UnixNano()) / 1e9 }

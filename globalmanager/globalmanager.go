package globalmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Swarm is the Docker Engine of the manager node.
type Swarm interface {
	SwarmInit(ctx context.Context, advertiseAddr, listenAddr string) (string, error)
	JoinToken(ctx context.Context) (token, managerAddr string, err error)
	Nodes(ctx context.Context) ([]api.SwarmNode, error)
	Node(ctx context.Context, id string) (api.SwarmNode, json.RawMessage, error)
	RemoveNode(ctx context.Context, id string, force bool) error
	CreateNetwork(ctx context.Context, name, subnet string, labels map[string]string) (api.NetworkInfo, error)
	Networks(ctx context.Context, labels map[string]string) ([]api.NetworkInfo, error)
	RemoveNetwork(ctx context.Context, nameOrID string) error
}

// Workers reaches exactly one worker on the bus and waits for its reply.
type Workers interface {
	Request(ctx context.Context, to, kind string, body, reply any) error
}

// State is the durable state the globalmanager reads and writes.
//
// Who writes what (the single-writer rule): the globalmanager writes a
// worker's membership (host, address, runtime, checkpoint probe, transfer
// address, status, join time, last heartbeat at registration) and its size
// as the worker reports it (cores, mem_total); a job's and its tasks'
// statuses as deployments, moves and stops progress, its deploy time and
// its notes; and new jobs (request_new_task), whose node and cpuset_cpus
// are then the client's pin, a request. It never writes a worker's
// allocation (CPUs, core_tasks, mem_allocated, MemFree) nor a placed
// task's node or cpuset_cpus: those are the jobmanager's core's effects,
// and the globalmanager asks for them through Notifier (WorkerRegistered,
// Commit, Resized, Unplace) and waits for the answer. The tests run every
// globalmanager operation over a store that fails them if it does.
type State interface {
	CreateJob(ctx context.Context, j *api.Job) error
	ListJobs(ctx context.Context, f api.JobFilter) ([]*api.Job, error)
	GetJob(ctx context.Context, name string) (*api.Job, error)
	UpdateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error)
	GetWorker(ctx context.Context, id string) (*api.Worker, error)
	PutWorker(ctx context.Context, w *api.Worker) error
	UpdateWorker(ctx context.Context, id string, fn func(*api.Worker) error) (*api.Worker, error)
	ListWorkers(ctx context.Context) ([]*api.Worker, error)
}

// Notifier is the jobmanager as the globalmanager sees it: it is told of
// new jobs and workers, it holds the cores of tasks that move or resize,
// and it writes what only it writes (see State).
type Notifier interface {
	WorkersChanged(ctx context.Context) error
	JobSubmitted(ctx context.Context, names ...string) error
	TasksDone(ctx context.Context, tasks []api.TaskRef) error
	Reserve(ctx context.Context, r api.Reservation) ([]int, error)
	// Commit ends a move: the task holds the reserved cores, and its
	// record (r.Job) says it runs on r.Node with them.
	Commit(ctx context.Context, r api.Reservation) error
	Abort(ctx context.Context, task string) error
	Reallocate(ctx context.Context, r api.Reservation) error
	// WorkerRegistered: a worker registered (again) with this size; it
	// returns once the worker's allocation is written to match it.
	WorkerRegistered(ctx context.Context, s api.WorkerSize) error
	// Resized: a task's worker applied the cores a Reallocate gave it;
	// its record is written with them (and r.MemLimit).
	Resized(ctx context.Context, r api.Reservation) error
	// Unplace puts a job whose tasks were stopped back in the queue,
	// reset to Ready and unplaced (see api.Unplace).
	Unplace(ctx context.Context, u api.Unplace) error
}

// Config configures the globalmanager.
type Config struct {
	// AdvertiseAddr is the address the swarm manager advertises (default 127.0.0.1).
	AdvertiseAddr string
	// CommandTimeout bounds how long a worker has to acknowledge a command.
	CommandTimeout time.Duration
	// PruneInterval is how often networks of finished jobs are removed.
	PruneInterval time.Duration
	// NoSwarm skips swarm initialisation (simulated clusters only).
	NoSwarm bool
	// JoinTimeout bounds how long request_join waits for a host to join.
	JoinTimeout time.Duration
	// MoveTimeout bounds a migration's transfer between workers; it is
	// longer than the workers' own bound on a transfer (4 minutes), so that
	// the globalmanager never gives up on a move its workers still make.
	MoveTimeout time.Duration
	// Limits bound what request_new_task accepts, as the frontend's do.
	Limits api.Limits
	// Cluster names this control plane to its workers (see api.RegisterReply).
	Cluster string
	Logger  *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{AdvertiseAddr: "127.0.0.1", CommandTimeout: 10 * time.Second, PruneInterval: time.Second, JoinTimeout: 30 * time.Second, MoveTimeout: 5 * time.Minute,
		Limits: api.DefaultLimits()}
}

// Validate returns the first problem with the configuration.
func (c Config) Validate() error {
	if c.CommandTimeout <= 0 || c.PruneInterval <= 0 {
		return errors.New("globalmanager: command timeout and prune interval must be positive")
	}
	return nil
}

// Manager is the globalmanager.
type Manager struct {
	cfg     Config
	swarm   Swarm
	workers Workers
	st      State
	nt      Notifier
	log     *slog.Logger

	initMu sync.Mutex
	nodeID string

	runtimes sync.Map // worker ID -> runtime ("docker", "sim"): asked once per worker

	metrics *metrics
}

// New returns a globalmanager.
func New(cfg Config, sw Swarm, ws Workers, st State, nt Notifier) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = "127.0.0.1"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, swarm: sw, workers: ws, st: st, nt: nt, log: cfg.Logger}
	m.metrics = newMetrics(m)
	return m, nil
}

// SetWorkers sets the bus used to reach workers (it is created after the
// manager, because its handler is the manager's).
func (m *Manager) SetWorkers(ws Workers) { m.workers = ws }

// Init makes the local engine a swarm manager, or confirms it is one. It
// is idempotent and returns the manager's node ID.
func (m *Manager) Init(ctx context.Context) (string, error) {
	m.initMu.Lock()
	defer m.initMu.Unlock()
	if m.cfg.NoSwarm {
		return "", nil
	}
	id, err := m.swarm.SwarmInit(ctx, m.cfg.AdvertiseAddr, m.cfg.AdvertiseAddr+":2377")
	if err != nil {
		return "", fmt.Errorf("globalmanager: swarm init: %w", err)
	}
	m.nodeID = id
	return id, nil
}

// Run initialises the swarm and prunes finished jobs' networks until ctx is cancelled.
func (m *Manager) Run(ctx context.Context) error {
	if id, err := m.Init(ctx); err != nil {
		return err
	} else if id != "" {
		m.log.Info("swarm manager ready", "node_id", id)
	}
	if m.cfg.NoSwarm {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(m.cfg.PruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			m.prune(ctx)
		}
	}
}

// netLabels are the labels of a job's network (all of this cluster's
// networks when job is ""): with a cluster name, another RSwarm on the same
// engine never prunes this one's networks, nor this one theirs.
func (m *Manager) netLabels(job string) map[string]string {
	l := map[string]string{api.LabelManaged: "1"}
	if job != "" {
		l[api.LabelJob] = job
	}
	if m.cfg.Cluster != "" {
		l[api.LabelCluster] = m.cfg.Cluster
	}
	return l
}

// prune removes the networks of jobs that are final or gone. A network
// still in use is tried again on the next tick.
func (m *Manager) prune(ctx context.Context) {
	nets, err := m.swarm.Networks(ctx, m.netLabels(""))
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("listing networks", "err", err)
		}
		return
	}
	for _, n := range nets {
		job := n.Labels[api.LabelJob]
		j, err := m.st.GetJob(ctx, job)
		if err == nil && !j.Status.Final() {
			continue
		}
		if err != nil && !errors.Is(err, api.ErrNotFound) {
			continue
		}
		if err := m.swarm.RemoveNetwork(ctx, n.ID); err != nil {
			m.log.Debug("network not removed yet", "network", n.Name, "job_id", job, "err", err)
			continue
		}
		m.log.Info("network pruned", "network", n.Name, "job_id", job)
	}
}

// Register serves a worker's registration: a host outside the swarm gets
// the join token; a swarm node (or a simulated worker) is recorded.
func (m *Manager) Register(ctx context.Context, r api.Register) (api.RegisterReply, error) {
	if r.Cores < 1 {
		return api.RegisterReply{}, api.Invalid("cores", "a worker needs at least one core, got %d", r.Cores)
	}
	if r.Runtime != "sim" {
		if m.cfg.NoSwarm {
			return api.RegisterReply{}, fmt.Errorf("globalmanager runs without a swarm: only simulated workers can register: %w", api.ErrInvalid)
		}
		known := false
		if r.NodeID != "" {
			nodes, err := m.swarm.Nodes(ctx)
			if err != nil {
				return api.RegisterReply{}, fmt.Errorf("list swarm nodes: %w", err)
			}
			for _, n := range nodes {
				if n.ID == r.NodeID {
					known = true
				}
			}
		}
		if !known {
			token, addr, err := m.swarm.JoinToken(ctx)
			if err != nil {
				return api.RegisterReply{}, fmt.Errorf("join token: %w", err)
			}
			m.log.Info("worker outside the swarm: sending the join token", "host", r.Host, "address", r.Address)
			return api.RegisterReply{JoinToken: token, ManagerAddr: addr}, nil
		}
	}
	now := float64(time.Now().UnixNano()) / 1e9
	_, err := m.st.UpdateWorker(ctx, r.NodeID, func(w *api.Worker) error {
		fill(w, r, now)
		return nil
	})
	if errors.Is(err, api.ErrNotFound) {
		w := &api.Worker{ID: r.NodeID, JoinTime: now}
		fill(w, r, now)
		err = m.st.PutWorker(ctx, w)
	}
	if err != nil {
		return api.RegisterReply{}, fmt.Errorf("record worker %s: %w", r.NodeID, err)
	}
	m.log.Info("worker registered", "node_id", r.NodeID, "host", r.Host, "cores", r.Cores, "runtime", r.Runtime)
	// Its allocation is the jobmanager's to write (for a new worker, or one
	// back with another size): asked, and waited for.
	if err := m.nt.WorkerRegistered(ctx, api.WorkerSize{Worker: r.NodeID, Cores: r.Cores, MemTotal: r.MemTotal}); err != nil {
		m.log.Warn("the jobmanager did not take the registered worker's size; its resync will read it", "node_id", r.NodeID, "err", err)
	}
	return api.RegisterReply{NodeID: r.NodeID, Cluster: m.cfg.Cluster}, nil
}

// fill writes what the globalmanager owns of a registering worker's
// record: its membership and its size as reported. Its allocation (CPUs,
// core_tasks, mem_allocated, MemFree) is the jobmanager's (see State).
func fill(w *api.Worker, r api.Register, now float64) {
	w.Host, w.Address, w.Runtime = r.Host, r.Address, r.Runtime
	w.Checkpoint, w.CheckpointError = r.Checkpoint, r.CheckpointError
	w.TransferAddr = r.TransferAddr
	w.Status = api.WorkerReady
	w.LastHeartbeat = now
	w.Cores, w.MemTotal = r.Cores, r.MemTotal
}

// Deploy deploys a job given over the REST API (the original's
// request_new_job path, kept for its clients; the jobmanager uses
// DeployPlaced). The body is a client's word, so the job must be in the
// store and not ended, and the tasks the store has past Scheduled are not
// sent again. Otherwise as DeployPlaced.
func (m *Manager) Deploy(ctx context.Context, j *api.Job) error {
	start := time.Now()
	err := m.deployStored(ctx, j)
	m.metrics.observeDeploy(start, err)
	return err
}

func (m *Manager) deployStored(ctx context.Context, j *api.Job) error {
	if len(j.Info.Tasks) == 0 {
		return api.Invalid("job_info.tasks", "required")
	}
	// Only jobs the store knows are deployed: their tasks' ends must have a record to land in.
	stored, err := m.st.GetJob(ctx, j.Name)
	if err != nil {
		return fmt.Errorf("deploy job %s: %w", j.Name, err)
	}
	if stored.Status.Final() {
		return &api.FieldError{Field: "job_name", Kind: api.ErrConflict, Reason: fmt.Sprintf("job %s is %s", j.Name, stored.Status)}
	}
	return m.deploy(ctx, j, stored)
}

// DeployPlaced creates the job's network and sends every task to its
// worker. It returns once every worker has acknowledged; if one does not,
// the error names the worker and is ErrUnavailable. A deployment may be
// repeated: a worker acknowledges a task it already runs without starting
// it again, so the jobmanager sends a job again after such an error, and
// the tasks already delivered are left running (they are stopped by
// reconciliation if the job is placed elsewhere or given up).
//
// j is the job as the jobmanager sent it over the bus (only the
// jobmanager's key may), and it is used as it is, not read back from the
// store: the jobmanager is the one writer of placements, and j is the
// record it has just written (or, for a retry, read again). What a read
// would guard against is guarded otherwise, off the hot path:
//   - a task j shows past Scheduled was delivered by an earlier attempt and
//     is not sent again; one delivered and ended since j was read is sent,
//     and its worker, which remembers the tasks it ran (by attempt),
//     does not run it twice;
//   - a job cancelled (or deleted) while on its way is seen by the one
//     read-modify-write every deployment makes anyway, the one that marks
//     its tasks Deployed, and what started is stopped at once. The price is
//     that, in that rare race, containers start and are stopped, rather
//     than a store read for every job deployed.
func (m *Manager) DeployPlaced(ctx context.Context, j *api.Job) error {
	start := time.Now()
	var err error
	if len(j.Info.Tasks) == 0 {
		err = api.Invalid("job_info.tasks", "required")
	} else {
		err = m.deploy(ctx, j, j)
	}
	m.metrics.observeDeploy(start, err)
	return err
}

// deploy sends j's tasks that known (the latest record of j the caller
// has) shows not yet delivered, and marks them Deployed.
func (m *Manager) deploy(ctx context.Context, j, known *api.Job) error {
	needNet := false
	for _, t := range j.Info.Tasks {
		if t.Node == "" || t.CpusetCpus == "" {
			return api.Invalid("job_info.tasks."+t.ContainerName, "not placed: node and cpuset_cpus are required")
		}
		rt, ok := m.runtimes.Load(t.Node)
		if !ok {
			w, err := m.st.GetWorker(ctx, t.Node)
			if err != nil {
				return fmt.Errorf("task %s: worker %s: %w", t.ContainerName, t.Node, err)
			}
			rt = w.Runtime
			m.runtimes.Store(t.Node, rt)
		}
		if rt != "sim" {
			needNet = true
		}
	}
	network := j.Info.Network.Name
	driver, err := j.PlacedNetworkDriver()
	if err != nil {
		return fmt.Errorf("deploy job %s: %w", j.Name, err)
	}
	if needNet && driver == api.DriverOverlay {
		_, err := m.swarm.CreateNetwork(ctx, network, j.Info.Network.Subnet,
			m.netLabels(j.Name))
		if err != nil {
			return fmt.Errorf("create network %s: %w", network, err)
		}
	}
	type result struct {
		task string
		err  error
	}
	// A task the store has past Scheduled was delivered by an earlier
	// attempt, and may have ended since: it is not sent again.
	var send []*api.Task
	for _, t := range j.Info.Tasks {
		if st := known.Info.Tasks.Get(t.ContainerName); st == nil || st.Status <= api.Scheduled {
			send = append(send, t)
		}
	}
	results := make(chan result, len(send))
	for _, t := range send {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
			defer cancel()
			err := m.sendUntilConnected(cctx, t.Node, api.KindRunTask, api.RunTask{Job: j.Name, Network: network, NetworkDriver: driver, NetworkSubnet: j.Info.Network.Subnet, Task: *t, Attempt: known.Restarts, Alone: len(j.Info.Tasks) == 1})
			if err != nil {
				err = fmt.Errorf("worker %s did not accept task %s: %w", t.Node, t.ContainerName, err)
			}
			results <- result{t.ContainerName, err}
		}()
	}
	var firstErr error
	for range send {
		if r := <-results; r.err != nil && firstErr == nil {
			firstErr = r.err
		}
	}
	if firstErr != nil {
		return fmt.Errorf("%w: %w", api.ErrUnavailable, firstErr)
	}
	now := float64(time.Now().UnixNano()) / 1e9
	cancelled := false
	_, err = m.st.UpdateJob(ctx, j.Name, func(sj *api.Job) error {
		cancelled = sj.Status == api.Cancelled
		for _, t := range sj.Info.Tasks {
			if api.CanTransition(t.Status, api.Deployed) {
				t.Status = api.Deployed
			}
		}
		if sj.DeployTime == 0 {
			sj.DeployTime = now
		}
		sj.Refresh(now)
		return nil
	})
	if errors.Is(err, api.ErrNotFound) {
		// Deleted while its run commands were on their way (cancelled,
		// then deleted): stop what started, from the job in hand.
		return errors.Join(fmt.Errorf("mark job %s deployed: %w", j.Name, err), m.stopTasks(ctx, j, "job deleted"))
	}
	if err != nil {
		return fmt.Errorf("mark job %s deployed: %w", j.Name, err)
	}
	if cancelled {
		// Cancelled while its run commands were on their way: stop what started.
		return m.Stop(ctx, j.Name, "cancelled by user")
	}
	return nil
}

// sendUntilConnected sends a command to a worker, sending it again while
// the worker is not connected (it reconnects by itself, for example after
// missing the bus's own heartbeats on a loaded host) until ctx ends. Only a
// command that was never delivered is sent again: after a timeout the
// worker may have it, and the caller decides.
func (m *Manager) sendUntilConnected(ctx context.Context, node, kind string, body any) error {
	for {
		err := m.workers.Request(ctx, node, kind, body, nil)
		if !errors.Is(err, api.ErrUnknownPeer) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(reconnectWait):
		}
	}
}

// reconnectWait is how long a command waits before it is sent again to a
// worker that is not connected.
const reconnectWait = 100 * time.Millisecond

// Stop stops every task of a job that has not ended yet.
func (m *Manager) Stop(ctx context.Context, job, reason string) error {
	j, err := m.st.GetJob(ctx, job)
	if err != nil {
		return err
	}
	return m.stopTasks(ctx, j, reason)
}

// stopTasks stops the tasks of j, as j records them, that have not ended.
func (m *Manager) stopTasks(ctx context.Context, j *api.Job, reason string) error {
	job := j.Name
	var errs []error
	for _, t := range j.Info.Tasks {
		// A cancelled task is final in the store before its container is stopped.
		if t.Node == "" || t.Status < api.Scheduled || (t.Status.Final() && t.Status != api.Cancelled) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
		err := m.workers.Request(cctx, t.Node, api.KindStopTask, api.StopTask{Job: job, Task: t.ContainerName, Reason: reason}, nil)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("stop %s on %s: %w", t.ContainerName, t.Node, err))
		}
	}
	return errors.Join(errs...)
}

// Logs asks a task's worker for its last tail lines.
func (m *Manager) Logs(ctx context.Context, job, task string, tail int) ([]string, error) {
	j, err := m.st.GetJob(ctx, job)
	if err != nil {
		return nil, err
	}
	t := j.Info.Tasks.Get(task)
	if t == nil {
		return nil, fmt.Errorf("job %s has no task %s: %w", job, task, api.ErrNotFound)
	}
	lines := []string{}
	if t.Status.Final() || t.Node == "" {
		lines = append(lines, t.Logs...)
	} else {
		cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
		defer cancel()
		if err := m.workers.Request(cctx, t.Node, api.KindTaskLogs, api.TaskLogs{Task: task, Tail: tail}, &lines); err != nil {
			return nil, err
		}
	}
	if tail > 0 && len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	return lines, nil
}

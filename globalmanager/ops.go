package globalmanager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Cluster operations behind the original RESTfulSwarm GM endpoints:
// join, single tasks, leave, checkpoints, updates and migrations.

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// worker finds a registered worker by node ID, address or host name.
func (m *Manager) worker(ctx context.Context, field, ref string) (*api.Worker, error) {
	if ref == "" {
		return nil, api.Invalid(field, "required")
	}
	if w, err := m.st.GetWorker(ctx, ref); err == nil {
		return w, nil
	}
	ws, err := m.st.ListWorkers(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range ws {
		if w.Address == ref || w.Host == ref {
			return w, nil
		}
	}
	return nil, &api.FieldError{Field: field, Kind: api.ErrNotFound, Reason: fmt.Sprintf("%q is not a registered worker (give its node ID, address or host name)", ref)}
}

// JoinRequest is the original request_join body.
type JoinRequest struct {
	Hostname string `json:"hostname"`
	Address  string `json:"address"`
	CPUs     int    `json:"CPUs"`
	MemFree  string `json:"MemFree"`
}

// Join records a host that joins the swarm by itself: it waits (polling,
// never spinning) until a swarm node with the given address appears, at
// most JoinTimeout, then registers it. Hosts running `rswarm worker`
// register themselves over the bus and need no call.
func (m *Manager) Join(ctx context.Context, r JoinRequest) (api.RegisterReply, error) {
	if r.Address == "" {
		return api.RegisterReply{}, api.Invalid("address", "required: the IP address of the joining node")
	}
	if m.cfg.NoSwarm {
		return api.RegisterReply{}, fmt.Errorf("globalmanager runs without a swarm: %w", api.ErrUnavailable)
	}
	deadline := time.NewTimer(m.cfg.JoinTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		nodes, err := m.swarm.Nodes(ctx)
		if err != nil {
			return api.RegisterReply{}, err
		}
		for _, n := range nodes {
			if n.Addr != r.Address {
				continue
			}
			// A worker already registered (by `rswarm worker`, which reports
			// its own memory and checkpoint probe) keeps its record.
			if w, err := m.st.GetWorker(ctx, n.ID); err == nil && w.Status != api.WorkerLeft {
				m.log.Info("request_join for a registered worker: record kept", "node_id", n.ID, "host", w.Host)
				return api.RegisterReply{NodeID: n.ID}, nil
			}
			mem := n.MemBytes
			if r.MemFree != "" {
				if b, err := api.ParseMem(strings.TrimSuffix(strings.ReplaceAll(r.MemFree, " ", ""), "B")); err == nil {
					mem = b
				}
			}
			cores := r.CPUs
			if cores <= 0 {
				cores = n.NCPU
			}
			return m.Register(ctx, api.Register{NodeID: n.ID, Host: firstNonEmpty(r.Hostname, n.Hostname), Address: r.Address,
				Runtime: "docker", Cores: cores, MemTotal: mem, CheckpointError: "not probed (joined without rswarm worker)"})
		}
		select {
		case <-ctx.Done():
			return api.RegisterReply{}, ctx.Err()
		case <-deadline.C:
			return api.RegisterReply{}, fmt.Errorf("no swarm node with address %s joined within %v; run `rswarm worker --globalmanager-bus tcp://<this host>:3100` on that host, which joins by itself: %w",
				r.Address, m.cfg.JoinTimeout, api.ErrUnavailable)
		case <-tick.C:
		}
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// TaskRequest is the original request_new_task body: one task, with its network.
type TaskRequest struct {
	api.Task
	Network string `json:"network"`
}

// SubmitTask submits one task as a job of its own, named after the task's
// <job>_ prefix, through the same queue as every job (so its cores are
// accounted for). Its node and cpuset are honoured under no-scheduler.
func (m *Manager) SubmitTask(ctx context.Context, r TaskRequest) (string, error) {
	t := r.Task
	i := strings.LastIndexByte(t.ContainerName, '_')
	if i <= 0 {
		return "", api.Invalid("container_name", "%q must be <job>_<task>", t.ContainerName)
	}
	j := &api.Job{Name: t.ContainerName[:i]}
	j.Info.Network.Name = r.Network
	j.Info.Tasks = api.Tasks{&t}
	if err := j.Validate(m.cfg.Limits); err != nil {
		return "", err
	}
	if t.CpusetCpus != "" {
		w, err := m.worker(ctx, "node", t.Node)
		if err != nil {
			return "", err
		}
		if cores, _ := api.ParseCpuset(t.CpusetCpus); cores[len(cores)-1] >= w.Cores {
			return "", api.Invalid("cpuset_cpus", "core %d does not exist on node %s, which has cores 0-%d", cores[len(cores)-1], w.ID, w.Cores-1)
		}
		j.Info.Tasks[0].Node = w.ID
	}
	j.SubmitTime = now()
	if err := m.st.CreateJob(ctx, j); err != nil {
		if errors.Is(err, api.ErrConflict) {
			return "", &api.FieldError{Field: "container_name", Kind: api.ErrConflict, Reason: fmt.Sprintf("a job named %q exists already", j.Name)}
		}
		return "", err
	}
	if err := m.nt.JobSubmitted(ctx, j.Name); err != nil {
		m.log.Warn("telling the jobmanager of a new task; its resync will find it", "job_id", j.Name, "err", err)
	}
	return j.Name, nil
}

// Leave takes a worker out: its tasks fail ("worker left"), the jobmanager
// forgets its cores, the worker stops its containers and leaves the swarm,
// and the node is removed. The swarm manager itself cannot leave.
func (m *Manager) Leave(ctx context.Context, ref string) (*api.Worker, error) {
	w, err := m.worker(ctx, "hostname", ref)
	if err != nil {
		return nil, err
	}
	if w.ID == m.nodeID {
		return nil, api.Invalid("hostname", "node %s is the swarm manager (the globalmanager's own engine): it cannot leave", w.ID)
	}
	if w.TransferAddr != "" && w.Status != api.WorkerLeft {
		// Drain first: tasks that can move with their state do; the rest fail below.
		if _, err := m.Drain(ctx, w.ID); err != nil {
			m.log.Warn("draining a leaving worker", "node_id", w.ID, "err", err)
		}
	}
	if _, err := m.st.UpdateWorker(ctx, w.ID, func(w *api.Worker) error {
		w.Status = api.WorkerLeft
		return nil
	}); err != nil {
		return nil, err
	}
	if err := m.nt.WorkersChanged(ctx); err != nil {
		m.log.Warn("telling the jobmanager a worker left", "node_id", w.ID, "err", err)
	}
	if done := m.failTasksOn(ctx, w.ID, fmt.Sprintf("worker %s left the swarm", w.ID)); len(done) > 0 {
		if err := m.nt.TasksDone(ctx, done); err != nil {
			m.log.Warn("telling the jobmanager tasks ended", "err", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	if err := m.workers.Request(cctx, w.ID, api.KindLeave, struct{}{}, nil); err != nil {
		m.log.Warn("worker did not acknowledge leave; removing its node anyway", "node_id", w.ID, "err", err)
	}
	cancel()
	if w.Runtime != "sim" && !m.cfg.NoSwarm {
		if err := m.swarm.RemoveNode(ctx, w.ID, true); err != nil && !errors.Is(err, api.ErrNotFound) {
			return nil, fmt.Errorf("remove node %s: %w", w.ID, err)
		}
	}
	m.log.Info("worker left", "node_id", w.ID)
	return m.st.GetWorker(ctx, w.ID)
}

// failTasksOn fails every unfinished task on node and returns them.
func (m *Manager) failTasksOn(ctx context.Context, node, reason string) []api.TaskRef {
	jobs, err := m.st.ListJobs(ctx, api.JobFilter{Node: node, Status: []api.State{api.Ready, api.Deployed, api.Running}})
	if err != nil {
		m.log.Warn("listing the tasks of a leaving worker", "node_id", node, "err", err)
		return nil
	}
	var done []api.TaskRef
	t := now()
	for _, j := range jobs {
		_, err := m.st.UpdateJob(ctx, j.Name, func(j *api.Job) error {
			for _, task := range j.Info.Tasks {
				if task.Node == node && !task.Status.Final() && task.Status >= api.Scheduled {
					if _, err := j.ApplyStatus(api.TaskStatus{Node: node, Job: j.Name, Task: task.ContainerName, State: api.Failed, Error: reason, Time: t, Attempt: j.Restarts}); err != nil {
						return err
					}
					done = append(done, api.TaskRef{Job: j.Name, Task: task.ContainerName, Node: node, State: api.Failed})
				}
			}
			return nil
		})
		if err != nil {
			m.log.Warn("failing a leaving worker's task", "job_id", j.Name, "err", err)
		}
	}
	return done
}

// CheckpointRequest is one item of the original checkpoint_cons body.
type CheckpointRequest struct {
	Node       string   `json:"node"`
	Containers []string `json:"containers"`
}

// CheckpointResult is the outcome of one container's checkpoint.
type CheckpointResult struct {
	Node       string `json:"node"`
	Container  string `json:"container"`
	Checkpoint string `json:"checkpoint,omitempty"`
	Error      string `json:"error,omitempty"`
}

// ErrCheckpoint classifies a checkpoint that the engine refused or CRIU failed.
var ErrCheckpoint = api.NewKind("globalmanager: checkpoint failed", api.ErrUnprocessable)

// Checkpoint checkpoints containers (leaving them running) on their nodes.
// Every node is checked before anything is sent. The results say, per
// container, the checkpoint's name or why it failed (on hosts where CRIU
// does not work, its own words).
func (m *Manager) Checkpoint(ctx context.Context, reqs []CheckpointRequest) ([]CheckpointResult, error) {
	if len(reqs) == 0 {
		return nil, api.Invalid("", "a list of {node, containers} is required")
	}
	nodes := make([]*api.Worker, len(reqs))
	for i, r := range reqs {
		w, err := m.worker(ctx, fmt.Sprintf("[%d].node", i), r.Node)
		if err != nil {
			return nil, err
		}
		if len(r.Containers) == 0 {
			return nil, api.Invalid(fmt.Sprintf("[%d].containers", i), "at least one container is required")
		}
		nodes[i] = w
	}
	var out []CheckpointResult
	failed := 0
	for i, r := range reqs {
		for _, c := range r.Containers {
			res := CheckpointResult{Node: nodes[i].ID, Container: c}
			name := fmt.Sprintf("%s_%d", c, time.Now().UnixMilli())
			cctx, cancel := context.WithTimeout(ctx, 2*m.cfg.CommandTimeout)
			var got string
			err := m.workers.Request(cctx, nodes[i].ID, api.KindCheckpoint, api.Checkpoint{Task: c, Name: name, LeaveRunning: true}, &got)
			cancel()
			if err != nil {
				res.Error, failed = err.Error(), failed+1
			} else {
				res.Checkpoint = got
			}
			out = append(out, res)
		}
	}
	if failed > 0 {
		return out, fmt.Errorf("%w: %d of %d checkpoints failed (first: %s on %s: %s)", ErrCheckpoint, failed, len(out), firstFailed(out).Container, firstFailed(out).Node, firstFailed(out).Error)
	}
	return out, nil
}

func firstFailed(rs []CheckpointResult) CheckpointResult {
	for _, r := range rs {
		if r.Error != "" {
			return r
		}
	}
	return CheckpointResult{}
}

// UpdateRequest is the original request_update_container body.
type UpdateRequest struct {
	Job           string `json:"job"`
	Node          string `json:"node"`
	ContainerName string `json:"container_name"`
	CpusetCpus    string `json:"cpuset_cpus"`
	MemLimit      string `json:"mem_limit"`
}

// runningTask loads a job's task and checks it runs.
func (m *Manager) runningTask(ctx context.Context, job, task string) (*api.Job, *api.Task, error) {
	if job == "" {
		return nil, nil, api.Invalid("job", "required")
	}
	j, err := m.st.GetJob(ctx, job)
	if err != nil {
		if errors.Is(err, api.ErrNotFound) {
			return nil, nil, &api.FieldError{Field: "job", Kind: api.ErrNotFound, Reason: fmt.Sprintf("no job named %q", job)}
		}
		return nil, nil, err
	}
	t := j.Info.Tasks.Get(task)
	if t == nil {
		return nil, nil, &api.FieldError{Field: "container", Kind: api.ErrNotFound, Reason: fmt.Sprintf("job %s has no task %q", job, task)}
	}
	if t.Status != api.Running && t.Status != api.Deployed {
		return nil, nil, &api.FieldError{Field: "container", Kind: api.ErrConflict, Reason: fmt.Sprintf("task %s is %s, not running", task, t.Status)}
	}
	return j, t, nil
}

// Update changes a running task's cores and memory limit in place. The
// jobmanager must grant the new cores (free, or the task's own) first.
func (m *Manager) Update(ctx context.Context, r UpdateRequest) (*api.Task, error) {
	_, t, err := m.runningTask(ctx, r.Job, r.ContainerName)
	if err != nil {
		return nil, err
	}
	if r.Node != "" {
		w, err := m.worker(ctx, "node", r.Node)
		if err != nil {
			return nil, err
		}
		if w.ID != t.Node {
			return nil, &api.FieldError{Field: "node", Kind: api.ErrConflict, Reason: fmt.Sprintf("task %s runs on %s, not %s", t.ContainerName, t.Node, w.ID)}
		}
	}
	if r.CpusetCpus == "" {
		r.CpusetCpus = t.CpusetCpus
	}
	cores, err := api.ParseCpuset(r.CpusetCpus)
	if err != nil {
		return nil, api.Invalid("cpuset_cpus", "%v", err)
	}
	if r.MemLimit == "" {
		r.MemLimit = t.MemLimit
	}
	newMem, oldMem := int64(0), int64(0)
	if r.MemLimit != "" {
		if newMem, err = api.ParseMem(r.MemLimit); err != nil {
			return nil, api.Invalid("mem_limit", "%v", err)
		}
	}
	if t.MemLimit != "" {
		oldMem, _ = api.ParseMem(t.MemLimit)
	}
	oldCores, _ := api.ParseCpuset(t.CpusetCpus)
	if err := m.nt.Reallocate(ctx, api.Reservation{Task: t.ContainerName, Node: t.Node, Cpuset: cores, Mem: newMem, PrevMem: oldMem}); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	err = m.workers.Request(cctx, t.Node, api.KindUpdateTask, api.UpdateTask{Task: t.ContainerName, CpusetCpus: r.CpusetCpus, MemLimit: r.MemLimit}, nil)
	cancel()
	if err != nil {
		if rerr := m.nt.Reallocate(ctx, api.Reservation{Task: t.ContainerName, Node: t.Node, Cpuset: oldCores, Mem: oldMem, PrevMem: newMem}); rerr != nil {
			m.log.Error("undoing a failed update's allocation", "task_id", t.ContainerName, "err", rerr)
		}
		return nil, fmt.Errorf("update %s on %s: %w", t.ContainerName, t.Node, refused(err))
	}
	j, err := m.st.UpdateJob(ctx, r.Job, func(j *api.Job) error {
		tk := j.Info.Tasks.Get(r.ContainerName)
		tk.CpusetCpus, tk.MemLimit, tk.ReqCores = api.FormatCpuset(cores), r.MemLimit, len(cores)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return j.Info.Tasks.Get(r.ContainerName), nil
}

// MigrateRequest is the original request_migrate body. From and To name
// workers by node ID, address or host name.
type MigrateRequest struct {
	Job       string `json:"job"`
	Container string `json:"container"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Mode is live, cold or auto (the default): see MigrateResult.Mode.
	Mode string       `json:"mode,omitempty" enums:"live,cold,auto"`
	Info *MigrateInfo `json:"info,omitempty"`
}

// MigrateInfo is the task as the original's clients describe it in a
// migration (its SampleMigration.json): a task with the job's network and,
// in group migrations, the original Swagger's cpu_count. It is informative:
// the task is moved as the store knows it.
type MigrateInfo struct {
	api.Task
	Network  string `json:"network,omitempty"`
	CPUCount int    `json:"cpu_count,omitempty"`
}

// MigrateResult says how a task moved.
type MigrateResult struct {
	Job        string `json:"job"`
	Container  string `json:"container"`
	From       string `json:"from"`
	To         string `json:"to"`
	CpusetCpus string `json:"cpuset_cpus"`
	// Mode is how the task moved. "live": checkpointed with CRIU, the
	// checkpoint and its filesystem changes streamed to To and restored
	// there. "cold": frozen, its filesystem changes and named volumes
	// streamed to To, and started there on top of them. Workers that cannot
	// stream state (simulated ones) restart the task on To. Note says why
	// this mode was chosen.
	Mode  string `json:"mode"`
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
	// Bytes and SHA256 describe the state streamed from worker to worker;
	// DowntimeSeconds is how long the task did not run.
	Bytes           int64   `json:"bytes,omitempty"`
	SHA256          string  `json:"sha256,omitempty"`
	DowntimeSeconds float64 `json:"downtime_seconds,omitempty"`
	// The downtime's parts (see api.Sent): freeze (live: the checkpoint),
	// transfer, start (live: the restore).
	FreezeSeconds   float64 `json:"freeze_seconds,omitempty"`
	TransferSeconds float64 `json:"transfer_seconds,omitempty"`
	StartSeconds    float64 `json:"start_seconds,omitempty"`
}

// moveMode decides how a task moves from src to dst: the mode asked for
// (live, cold, auto or "" for auto) and what the two hosts can do. It
// returns the mode and why, or refuses a live move a host cannot make.
func moveMode(asked string, src, dst *api.Worker) (mode, why string, err error) {
	cannot := func(w *api.Worker) string {
		reason := w.CheckpointError
		if reason == "" {
			reason = "no reason reported"
		}
		return fmt.Sprintf("checkpoints do not work on %s (%s): %s", w.ID, w.Host, reason)
	}
	switch asked {
	case api.ModeLive:
		for _, w := range []*api.Worker{src, dst} {
			if !w.Checkpoint {
				return "", "", &api.FieldError{Field: "mode", Kind: api.ErrUnprocessable, Reason: "live migration impossible: " + cannot(w)}
			}
		}
		return api.ModeLive, "live, as asked", nil
	case api.ModeCold:
		return api.ModeCold, "cold, as asked", nil
	case "", api.ModeAuto:
		switch {
		case !src.Checkpoint:
			return api.ModeCold, "cold: " + cannot(src), nil
		case !dst.Checkpoint:
			return api.ModeCold, "cold: " + cannot(dst), nil
		}
		return api.ModeLive, "live: both hosts can checkpoint", nil
	}
	return "", "", api.Invalid("mode", "%q is not a migration mode (live, cold or auto)", asked)
}

// movableNetwork refuses to move a task of a job on a local bridge network
// away from siblings that still run: they would no longer reach each other.
// A job on a local network moves as a whole (a one-task job moves freely;
// its network is made on the new worker); a job whose tasks must move apart
// is submitted with the overlay driver.
func movableNetwork(j *api.Job, t *api.Task) error {
	if d, err := j.PlacedNetworkDriver(); err != nil || d != api.DriverBridge {
		return nil
	}
	for _, o := range j.Info.Tasks {
		if o.ContainerName != t.ContainerName && !o.Status.Final() && o.Status >= api.Scheduled {
			return &api.FieldError{Field: "container", Kind: api.ErrConflict, Reason: fmt.Sprintf(
				"job %s runs on a local bridge network on %s: task %s cannot move away from %s, which would no longer reach it (submit the job with network driver \"overlay\" to move its tasks apart)",
				j.Name, t.Node, t.ContainerName, o.ContainerName)}
		}
	}
	return nil
}

// runTask is the command that starts task of job j on a worker, with the
// job's network as it was deployed (decided from where its tasks are: j is
// the job as stored, before the move).
func (m *Manager) runTask(j *api.Job, task api.Task) api.RunTask {
	d, _ := j.PlacedNetworkDriver()
	return api.RunTask{Job: j.Name, Network: j.Info.Network.Name, NetworkDriver: d, NetworkSubnet: j.Info.Network.Subnet, Task: task,
		Attempt: j.Restarts, Cluster: m.cfg.Cluster}
}

// Migrate moves a running task to another worker: the jobmanager reserves
// cores there, the task is stopped on its worker, started on the new one,
// and only then are its old cores freed. If the start fails the task is
// started again where it was.
func (m *Manager) Migrate(ctx context.Context, r MigrateRequest) (MigrateResult, error) {
	res := MigrateResult{Job: r.Job, Container: r.Container, Mode: "cold"}
	j, t, err := m.runningTask(ctx, r.Job, r.Container)
	if err != nil {
		return res, err
	}
	if err := movableNetwork(j, t); err != nil {
		return res, err
	}
	src, err := m.worker(ctx, "from", r.From)
	if err != nil {
		return res, err
	}
	dst, err := m.worker(ctx, "to", r.To)
	if err != nil {
		return res, err
	}
	res.From, res.To = src.ID, dst.ID
	if src.ID != t.Node {
		return res, &api.FieldError{Field: "from", Kind: api.ErrConflict, Reason: fmt.Sprintf("task %s runs on %s, not %s", t.ContainerName, t.Node, src.ID)}
	}
	if dst.ID == src.ID {
		return res, api.Invalid("to", "the task already runs on %s", dst.ID)
	}
	if dst.Status != api.WorkerReady {
		return res, &api.FieldError{Field: "to", Kind: api.ErrConflict, Reason: fmt.Sprintf("worker %s is %s", dst.ID, dst.Status)}
	}
	mode, why, err := moveMode(r.Mode, src, dst)
	if err != nil {
		return res, err
	}
	if src.TransferAddr != "" && dst.TransferAddr != "" {
		return m.move(ctx, r, t, src, dst, mode, why)
	}
	if mode == api.ModeLive {
		return res, &api.FieldError{Field: "mode", Kind: api.ErrUnprocessable,
			Reason: fmt.Sprintf("live migration impossible: %s or %s does not stream task state (no transfer port)", src.ID, dst.ID)}
	}
	switch {
	case !src.Checkpoint:
		res.Note = fmt.Sprintf("checkpoints do not work on %s (%s): the container was restarted on %s", src.ID, src.CheckpointError, dst.ID)
	case !dst.Checkpoint:
		res.Note = fmt.Sprintf("checkpoints do not work on %s (%s): the container was restarted there", dst.ID, dst.CheckpointError)
	default:
		res.Note = "these workers do not stream task state (no transfer port): the container was restarted on " + dst.ID
	}
	mem := int64(0)
	if t.MemLimit != "" {
		mem, _ = api.ParseMem(t.MemLimit)
	}
	cores, err := m.nt.Reserve(ctx, api.Reservation{Task: t.ContainerName, Node: dst.ID, Cores: t.ReqCores, Mem: mem})
	if err != nil {
		return res, err
	}
	abort := func(cause error) (MigrateResult, error) {
		if err := m.nt.Abort(context.WithoutCancel(ctx), t.ContainerName); err != nil {
			m.log.Error("giving back reserved cores", "task_id", t.ContainerName, "err", err)
		}
		return res, cause
	}
	moving, err := m.st.UpdateJob(ctx, r.Job, func(j *api.Job) error {
		tk := j.Info.Tasks.Get(r.Container)
		if !api.CanTransition(tk.Status, api.Migrating) {
			return &api.FieldError{Field: "container", Kind: api.ErrConflict, Reason: fmt.Sprintf("task %s is %s", tk.ContainerName, tk.Status)}
		}
		tk.Status = api.Migrating
		return nil
	})
	if err != nil {
		return abort(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*m.cfg.CommandTimeout)
	err = m.workers.Request(cctx, src.ID, api.KindStopTask, api.StopTask{Job: r.Job, Task: r.Container, Reason: "migrating to " + dst.ID, Grace: 2, Migrating: true}, nil)
	cancel()
	if err != nil {
		m.restore(ctx, r.Job, r.Container, api.Running, nil)
		return abort(fmt.Errorf("stop %s on %s: %w", r.Container, src.ID, refused(err)))
	}
	task := *moving.Info.Tasks.Get(r.Container)
	task.Node, task.CpusetCpus = dst.ID, api.FormatCpuset(cores)
	cctx, cancel = context.WithTimeout(ctx, m.cfg.CommandTimeout)
	err = m.workers.Request(cctx, dst.ID, api.KindRunTask, m.runTask(moving, task), nil)
	cancel()
	if err != nil {
		// Put it back where it was.
		back := *moving.Info.Tasks.Get(r.Container)
		cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
		rerr := m.workers.Request(cctx, src.ID, api.KindRunTask, m.runTask(moving, back), nil)
		cancel()
		if rerr != nil {
			m.restore(ctx, r.Job, r.Container, api.Failed, fmt.Errorf("migration to %s failed (%v) and the restart on %s failed: %w", dst.ID, err, src.ID, rerr))
		}
		return abort(fmt.Errorf("start %s on %s: %w", r.Container, dst.ID, refused(err)))
	}
	if _, err := m.st.UpdateJob(ctx, r.Job, func(j *api.Job) error {
		tk := j.Info.Tasks.Get(r.Container)
		tk.Node, tk.CpusetCpus = dst.ID, task.CpusetCpus
		return nil
	}); err != nil {
		return res, err
	}
	if err := m.nt.Commit(ctx, api.Reservation{Task: t.ContainerName, Node: dst.ID, Mem: mem}); err != nil {
		return res, fmt.Errorf("commit the move of %s: %w", t.ContainerName, err)
	}
	res.CpusetCpus = task.CpusetCpus
	m.log.Info("task migrated", "task_id", r.Container, "from", src.ID, "to", dst.ID, "mode", res.Mode)
	return res, nil
}

// move moves a running task with its state: the jobmanager reserves cores
// on dst, dst is told to expect the task under a one-time token, and src
// streams it there (see worker's transfer port). The task's old cores are
// freed only once it runs on dst; if anything fails it runs on where it
// was and the reservation is given back.
func (m *Manager) move(ctx context.Context, r MigrateRequest, t *api.Task, src, dst *api.Worker, mode, why string) (MigrateResult, error) {
	res := MigrateResult{Job: r.Job, Container: r.Container, From: src.ID, To: dst.ID, Mode: mode, Note: why}
	mem := int64(0)
	if t.MemLimit != "" {
		mem, _ = api.ParseMem(t.MemLimit)
	}
	cores, err := m.nt.Reserve(ctx, api.Reservation{Task: t.ContainerName, Node: dst.ID, Cores: t.ReqCores, Mem: mem})
	if err != nil {
		return res, err
	}
	fail := func(cause error) (MigrateResult, error) {
		m.restore(ctx, r.Job, r.Container, api.Running, nil)
		if err := m.nt.Abort(context.WithoutCancel(ctx), t.ContainerName); err != nil {
			m.log.Error("giving back reserved cores", "task_id", t.ContainerName, "err", err)
		}
		return res, cause
	}
	moving, err := m.st.UpdateJob(ctx, r.Job, func(j *api.Job) error {
		tk := j.Info.Tasks.Get(r.Container)
		if !api.CanTransition(tk.Status, api.Migrating) {
			return &api.FieldError{Field: "container", Kind: api.ErrConflict, Reason: fmt.Sprintf("task %s is %s", tk.ContainerName, tk.Status)}
		}
		tk.Status = api.Migrating
		return nil
	})
	if err != nil {
		if abErr := m.nt.Abort(context.WithoutCancel(ctx), t.ContainerName); abErr != nil {
			m.log.Error("giving back reserved cores", "task_id", t.ContainerName, "err", abErr)
		}
		return res, err
	}
	task := *moving.Info.Tasks.Get(r.Container)
	task.Node, task.CpusetCpus, task.Status = dst.ID, api.FormatCpuset(cores), api.Running
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	err = m.workers.Request(cctx, dst.ID, api.KindReceiveTask,
		api.ReceiveTask{RunTask: m.runTask(moving, task), Token: token, Mode: mode}, nil)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("prepare %s to receive %s: %w", dst.ID, r.Container, refused(err)))
	}
	var sent api.Sent
	cctx, cancel = context.WithTimeout(ctx, max(m.cfg.MoveTimeout, 2*m.cfg.CommandTimeout))
	err = m.workers.Request(cctx, src.ID, api.KindSendTask,
		api.SendTask{Job: r.Job, Task: r.Container, To: dst.TransferAddr, Token: token, Mode: mode}, &sent)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("move %s from %s to %s (%s): %w", r.Container, src.ID, dst.ID, mode, refused(err)))
	}
	if _, err := m.st.UpdateJob(ctx, r.Job, func(j *api.Job) error {
		tk := j.Info.Tasks.Get(r.Container)
		tk.Node, tk.CpusetCpus = dst.ID, task.CpusetCpus
		if tk.Status == api.Migrating {
			tk.Status = api.Running
		}
		return nil
	}); err != nil {
		return res, err
	}
	if err := m.nt.Commit(ctx, api.Reservation{Task: t.ContainerName, Node: dst.ID, Mem: mem}); err != nil {
		return res, fmt.Errorf("commit the move of %s: %w", t.ContainerName, err)
	}
	res.CpusetCpus, res.Bytes, res.SHA256, res.DowntimeSeconds = task.CpusetCpus, sent.Bytes, sent.SHA256, sent.Downtime
	res.FreezeSeconds, res.TransferSeconds, res.StartSeconds = sent.Freeze, sent.Transfer, sent.Start
	if sent.Note != "" {
		res.Note += "; " + sent.Note
	}
	m.log.Info("task migrated", "task_id", r.Container, "from", src.ID, "to", dst.ID, "mode", mode, "bytes", sent.Bytes, "downtime_s", sent.Downtime)
	return res, nil
}

// restore puts a task that did not move back into state (Running, or
// Failed with cause).
func (m *Manager) restore(ctx context.Context, job, task string, state api.State, cause error) {
	_, err := m.st.UpdateJob(context.WithoutCancel(ctx), job, func(j *api.Job) error {
		tk := j.Info.Tasks.Get(task)
		if tk.Status != api.Migrating {
			return nil
		}
		if state == api.Failed {
			_, err := j.ApplyStatus(api.TaskStatus{Job: job, Task: task, State: api.Failed, Error: cause.Error(), Time: now(), Attempt: j.Restarts})
			return err
		}
		tk.Status = state
		return nil
	})
	if err != nil {
		m.log.Error("restoring a task after a failed migration", "task_id", task, "err", err)
	}
}

// MigrateGroup migrates each item in turn and reports each outcome; one
// failure does not stop the others.
func (m *Manager) MigrateGroup(ctx context.Context, rs []MigrateRequest) ([]MigrateResult, error) {
	if len(rs) == 0 {
		return nil, api.Invalid("", "a list of migrations is required")
	}
	out := make([]MigrateResult, len(rs))
	failed := 0
	for i, r := range rs {
		res, err := m.Migrate(ctx, r)
		if err != nil {
			res.Error, failed = err.Error(), failed+1
		}
		out[i] = res
	}
	if failed > 0 {
		return out, fmt.Errorf("%d of %d migrations failed: %w", failed, len(rs), api.ErrUnprocessable)
	}
	return out, nil
}

// SetDrained stops (or resumes) placing new tasks on a worker; its running
// tasks are left alone.
func (m *Manager) SetDrained(ctx context.Context, ref string, drained bool) (*api.Worker, error) {
	w, err := m.worker(ctx, "id", ref)
	if err != nil {
		return nil, err
	}
	w, err = m.st.UpdateWorker(ctx, w.ID, func(w *api.Worker) error {
		switch {
		case w.Status == api.WorkerLeft:
			return &api.FieldError{Field: "id", Kind: api.ErrConflict, Reason: fmt.Sprintf("worker %s has left", w.ID)}
		case drained:
			w.Status = api.WorkerDrained
		case w.Status == api.WorkerDrained:
			w.Status = api.WorkerReady
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := m.nt.WorkersChanged(ctx); err != nil {
		m.log.Warn("telling the jobmanager a worker changed", "node_id", w.ID, "err", err)
	}
	return w, nil
}

// refused classifies a worker's answer to a command: a worker that could
// not be reached stays unavailable (503); one that refused makes the
// operation unprocessable (422).
func refused(err error) error {
	if errors.Is(err, api.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, api.ErrUnprocessable) {
		return err
	}
	return fmt.Errorf("%w: %w", api.ErrUnprocessable, err)
}

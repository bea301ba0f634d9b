package globalmanager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/rswarm/rswarm/api"
)

// Migration of running tasks from worker to worker: the mode (cold, live,
// auto), the jobmanager's reservation of the destination's cores, the
// streamed hand-over, and putting a task back when a move fails.

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
	cores, mem, moving, err := m.reserveMove(ctx, r, t, dst)
	if err != nil {
		return res, err
	}
	abort := func(cause error) (MigrateResult, error) {
		m.giveBack(ctx, t.ContainerName)
		return res, cause
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
	if err := m.commitMove(ctx, r.Job, t.ContainerName, dst.ID, mem); err != nil {
		return res, err
	}
	res.CpusetCpus = task.CpusetCpus
	m.log.Info("task migrated", "task_id", r.Container, "from", src.ID, "to", dst.ID, "mode", res.Mode)
	return res, nil
}

// reserveMove has the jobmanager reserve the task's cores (and memory) on
// dst and marks the task Migrating; when the mark fails the reservation is
// given back. It returns the reserved cores, the memory and the job as
// marked.
func (m *Manager) reserveMove(ctx context.Context, r MigrateRequest, t *api.Task, dst *api.Worker) ([]int, int64, *api.Job, error) {
	mem := int64(0)
	if t.MemLimit != "" {
		mem, _ = api.ParseMem(t.MemLimit)
	}
	cores, err := m.nt.Reserve(ctx, api.Reservation{Task: t.ContainerName, Node: dst.ID, Cores: t.ReqCores, Mem: mem})
	if err != nil {
		return nil, 0, nil, err
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
		m.giveBack(ctx, t.ContainerName)
		return nil, 0, nil, err
	}
	return cores, mem, moving, nil
}

// giveBack returns a move's reserved cores to the jobmanager.
func (m *Manager) giveBack(ctx context.Context, task string) {
	if err := m.nt.Abort(context.WithoutCancel(ctx), task); err != nil {
		m.log.Error("giving back reserved cores", "task_id", task, "err", err)
	}
}

// move moves a running task with its state: the jobmanager reserves cores
// on dst, dst is told to expect the task under a one-time token, and src
// streams it there (see worker's transfer port). The task's old cores are
// freed only once it runs on dst; if anything fails it runs on where it
// was and the reservation is given back.
func (m *Manager) move(ctx context.Context, r MigrateRequest, t *api.Task, src, dst *api.Worker, mode, why string) (MigrateResult, error) {
	res := MigrateResult{Job: r.Job, Container: r.Container, From: src.ID, To: dst.ID, Mode: mode, Note: why}
	cores, mem, moving, err := m.reserveMove(ctx, r, t, dst)
	if err != nil {
		return res, err
	}
	fail := func(cause error) (MigrateResult, error) {
		m.restore(ctx, r.Job, r.Container, api.Running, nil)
		m.giveBack(ctx, t.ContainerName)
		return res, cause
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
	if err := m.commitMove(ctx, r.Job, t.ContainerName, dst.ID, mem); err != nil {
		return res, err
	}
	// Its node and cpuset are written (the jobmanager's); its status is ours.
	if _, err := m.st.UpdateJob(ctx, r.Job, func(j *api.Job) error {
		if tk := j.Info.Tasks.Get(r.Container); tk.Status == api.Migrating {
			tk.Status = api.Running
		}
		return nil
	}); err != nil {
		return res, err
	}
	res.CpusetCpus, res.Bytes, res.SHA256, res.DowntimeSeconds = task.CpusetCpus, sent.Bytes, sent.SHA256, sent.Downtime
	res.FreezeSeconds, res.TransferSeconds, res.StartSeconds = sent.Freeze, sent.Transfer, sent.Start
	if sent.Note != "" {
		res.Note += "; " + sent.Note
	}
	m.log.Info("task migrated", "task_id", r.Container, "from", src.ID, "to", dst.ID, "mode", mode, "bytes", sent.Bytes, "downtime_s", sent.Downtime)
	return res, nil
}

// commitMove has the jobmanager end a move that happened: the task holds
// its reserved cores on dst, and the jobmanager writes its record's node
// and cpuset_cpus (the globalmanager does not write them). The task runs
// on dst already, so the commit is asked for even if the caller has gone,
// and one that did not get through (the jobmanager unreachable) is asked
// again, a few times; a refusal is not. A refusal after an attempt whose
// answer was lost is the first attempt's success when the record says the
// task is on dst.
func (m *Manager) commitMove(ctx context.Context, job, task, dst string, mem int64) error {
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := 0; attempt < commitAttempts; attempt++ {
		err = m.nt.Commit(ctx, api.Reservation{Job: job, Task: task, Node: dst, Mem: mem})
		var fe *api.FieldError
		refusal := errors.As(err, &fe) || errors.Is(err, api.ErrNotFound)
		if refusal && attempt > 0 {
			if j, gerr := m.st.GetJob(ctx, job); gerr == nil {
				if t := j.Info.Tasks.Get(task); t != nil && t.Node == dst {
					err = nil
				}
			}
		}
		if err == nil || refusal {
			break
		}
		m.log.Warn("committing a move; asking again", "task_id", task, "to", dst, "attempt", attempt+1, "err", err)
	}
	if err != nil {
		return fmt.Errorf("commit the move of %s to %s: %w", task, dst, err)
	}
	return nil
}

// commitAttempts bounds how often a move's commit is asked for.
const commitAttempts = 3

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

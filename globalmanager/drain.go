package globalmanager

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/rswarm/rswarm/api"
)

// Draining a worker: it takes no new tasks, and its running tasks move to
// other workers (migrated with mode auto) where one has room for them now.
// A task that cannot move (no other worker has room, or every move failed)
// does not stay: its whole job goes back to the queue (placement is per
// job, so the jobmanager's requeue is of jobs): its tasks are stopped
// wherever they run, the job is Ready again with a note saying why, its
// cores are freed and the jobmanager queues it. It is never lost.

// DrainResult is a drained worker and what became of its tasks.
type DrainResult struct {
	api.Worker
	// Moved are the tasks migrated away; Requeued the tasks that could not
	// move, whose jobs went back to the queue, with why; Remaining those
	// still on the worker (their job could not be requeued), with why.
	Moved     []MigrateResult `json:"moved,omitempty"`
	Requeued  []Stuck         `json:"requeued,omitempty"`
	Remaining []Stuck         `json:"remaining,omitempty"`
	// Empty is true once no live task is left on the worker: it is drained.
	Empty bool `json:"empty"`
}

// Stuck is a task a drain could not move.
type Stuck struct {
	Job    string `json:"job"`
	Task   string `json:"task"`
	Reason string `json:"reason"`
}

// Drain stops placing tasks on a worker and moves its running tasks to
// the other ready workers, the ones with the most free cores first. The
// jobs of tasks that cannot move are requeued (see the top of this file).
func (m *Manager) Drain(ctx context.Context, ref string) (DrainResult, error) {
	w, err := m.SetDrained(ctx, ref, true)
	if err != nil {
		return DrainResult{}, err
	}
	res := DrainResult{Worker: *w}
	moved, stuck, err := m.evacuate(ctx, w)
	if err != nil {
		return res, err
	}
	res.Moved = moved
	requeued := map[string]error{}
	for _, s := range stuck {
		err, done := requeued[s.Job]
		if !done {
			err = m.requeueJob(ctx, s.Job, fmt.Sprintf("task %s could not leave drained worker %s: %s", s.Task, w.ID, s.Reason))
			requeued[s.Job] = err
		}
		if err != nil {
			s.Reason += "; requeueing its job failed: " + err.Error()
			res.Remaining = append(res.Remaining, s)
		} else {
			res.Requeued = append(res.Requeued, s)
		}
	}
	left, err := m.liveTasks(ctx, w.ID)
	if err != nil {
		return res, err
	}
	res.Empty = len(left) == 0
	if fresh, err := m.st.GetWorker(ctx, w.ID); err == nil {
		res.Worker = *fresh
	}
	return res, nil
}

type liveTask struct {
	job string
	t   *api.Task
}

// liveTasks are the tasks placed on node that have not ended.
func (m *Manager) liveTasks(ctx context.Context, node string) ([]liveTask, error) {
	jobs, err := m.st.ListJobs(ctx, api.JobFilter{Node: node, Status: []api.State{api.Ready, api.Scheduled, api.Deployed, api.Running, api.Migrating}})
	if err != nil {
		return nil, err
	}
	var out []liveTask
	for _, j := range jobs {
		for _, t := range j.Info.Tasks {
			if t.Node == node && t.Status >= api.Scheduled && !t.Status.Final() {
				out = append(out, liveTask{j.Name, t})
			}
		}
	}
	return out, nil
}

// evacuate moves every running task off w, as Drain describes.
func (m *Manager) evacuate(ctx context.Context, w *api.Worker) ([]MigrateResult, []Stuck, error) {
	tasks, err := m.liveTasks(ctx, w.ID)
	if err != nil {
		return nil, nil, err
	}
	var moved []MigrateResult
	var stuck []Stuck
	for _, lt := range tasks {
		if lt.t.Status != api.Running {
			stuck = append(stuck, Stuck{Job: lt.job, Task: lt.t.ContainerName, Reason: fmt.Sprintf("task is %s, not running", lt.t.Status)})
			continue
		}
		targets, err := m.targets(ctx, w.ID, lt.t)
		if err != nil {
			return moved, stuck, err
		}
		if len(targets) == 0 {
			stuck = append(stuck, Stuck{Job: lt.job, Task: lt.t.ContainerName,
				Reason: fmt.Sprintf("no other ready worker has %d free cores now", lt.t.ReqCores)})
			continue
		}
		var errs []error
		done := false
		for _, to := range targets {
			r, err := m.Migrate(ctx, MigrateRequest{Job: lt.job, Container: lt.t.ContainerName, From: w.ID, To: to, Mode: api.ModeAuto})
			if err == nil {
				moved = append(moved, r)
				done = true
				break
			}
			errs = append(errs, fmt.Errorf("to %s: %w", to, err))
		}
		if !done {
			stuck = append(stuck, Stuck{Job: lt.job, Task: lt.t.ContainerName, Reason: errors.Join(errs...).Error()})
		}
	}
	if len(moved) > 0 {
		m.log.Info("worker drained", "node_id", w.ID, "moved", len(moved), "remaining", len(stuck))
	}
	return moved, stuck, nil
}

// targets are the ready workers other than from with room for t now
// (by the store's allocation; the jobmanager has the last word), the
// ones with the most free cores first.
func (m *Manager) targets(ctx context.Context, from string, t *api.Task) ([]string, error) {
	ws, err := m.st.ListWorkers(ctx)
	if err != nil {
		return nil, err
	}
	type cand struct {
		id   string
		free int
	}
	var cs []cand
	for _, w := range ws {
		if w.ID == from || w.Status != api.WorkerReady {
			continue
		}
		free := w.Cores - len(w.BusyCores())
		if free >= t.ReqCores {
			cs = append(cs, cand{w.ID, free})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].free > cs[j].free })
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.id
	}
	return out, nil
}

// requeueJob puts a running job back in the queue: its live tasks are
// stopped where they run (as for a move: their ends are not reported), the
// job and its tasks are Ready again, unplaced (a no-scheduler job keeps its
// pins), with reason in its notes, their cores are freed and the jobmanager
// queues it.
func (m *Manager) requeueJob(ctx context.Context, job, reason string) error {
	j, err := m.st.GetJob(ctx, job)
	if err != nil {
		return err
	}
	if j.Status.Final() {
		return fmt.Errorf("job %s has ended (%s)", job, j.Status)
	}
	var stopped []api.TaskRef
	for _, t := range j.Info.Tasks {
		if t.Node == "" || t.Status < api.Scheduled || t.Status.Final() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
		err := m.workers.Request(cctx, t.Node, api.KindStopTask,
			api.StopTask{Job: job, Task: t.ContainerName, Reason: "requeued: " + reason, Grace: 2, Migrating: true}, nil)
		cancel()
		if err != nil {
			err = fmt.Errorf("stop %s on %s: %w", t.ContainerName, t.Node, err)
			m.failStopped(ctx, job, stopped, fmt.Sprintf("stopped to requeue job %s, but it could not be: %v", job, err))
			return err
		}
		stopped = append(stopped, api.TaskRef{Job: job, Task: t.ContainerName, Node: t.Node, State: api.Failed})
	}
	// Resetting the job unplaces its tasks (their nodes and cpusets):
	// the jobmanager's write, asked for, with the cores freed and the job
	// queued in the same step.
	tasks := make([]string, 0, len(j.Info.Tasks))
	for _, t := range j.Info.Tasks {
		tasks = append(tasks, t.ContainerName)
	}
	if err := m.nt.Unplace(ctx, api.Unplace{Job: job, Tasks: tasks, Note: "requeued: " + reason}); err != nil {
		return fmt.Errorf("requeue job %s: %w", job, err)
	}
	m.log.Info("job requeued", "job_id", job, "reason", reason)
	return nil
}

// failStopped records tasks stopped for a requeue that could not go on as
// Failed, with why, and tells the jobmanager (which stops the rest of
// their job, as for any failed task): their containers no longer run, and
// a stop for a move is not reported by the workers.
func (m *Manager) failStopped(ctx context.Context, job string, stopped []api.TaskRef, why string) {
	if len(stopped) == 0 {
		return
	}
	t := now()
	_, err := m.st.UpdateJob(ctx, job, func(j *api.Job) error {
		for _, r := range stopped {
			if _, err := j.ApplyStatus(api.TaskStatus{Node: r.Node, Job: job, Task: r.Task, State: api.Failed, Error: why, Time: t}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.log.Warn("recording tasks stopped for a requeue that failed", "job_id", job, "err", err)
		return
	}
	if err := m.nt.TasksDone(ctx, stopped); err != nil {
		m.log.Warn("telling the jobmanager tasks ended", "job_id", job, "err", err)
	}
}

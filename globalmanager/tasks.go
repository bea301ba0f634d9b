package globalmanager

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rswarm/rswarm/api"
)

// Single tasks: the original request_new_task, and in-place updates of a
// running task's cores and memory (request_update_container).

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
		// The client's pin, by node ID, in a job not yet placed: a request
		// (the frontend records pins the same way); the jobmanager places
		// the job and writes its allocation.
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
	// The task's record (cpuset_cpus, req_cores, mem_limit) is the
	// jobmanager's to write.
	if err := m.nt.Resized(ctx, api.Reservation{Job: r.Job, Task: t.ContainerName, Node: t.Node, Cpuset: cores, Mem: newMem, MemLimit: r.MemLimit}); err != nil {
		return nil, fmt.Errorf("record the update of %s: %w", t.ContainerName, err)
	}
	j, err := m.st.GetJob(ctx, r.Job)
	if err != nil {
		return nil, err
	}
	return j.Info.Tasks.Get(r.ContainerName), nil
}

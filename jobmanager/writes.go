package jobmanager

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/rswarm/rswarm/api"
)

// The shell's side of the single-writer rule (core_writes.go): what the
// globalmanager asks for instead of writing it, carried out here.

// heldWrites are the allocations of the workers that registered during
// one burst of events, and the answers waiting for their write: a
// thousand workers registering at once cost one write, not a thousand.
type heldWrites struct {
	allocs  []Allocation
	replies []chan error
}

// WorkerRegistered tells the jobmanager a worker registered (again) with
// this size; it returns once the worker's allocation is written (its
// record's core map then matches its size), or with why the size was
// refused. The globalmanager writes the rest of the record (address,
// status, ...), never the allocation.
func (m *Manager) WorkerRegistered(ctx context.Context, s api.WorkerSize) error {
	reply := make(chan error, 1)
	return m.ask(ctx, workerRegistered{size: s, reply: reply}, reply)
}

// registered steps a registration; its allocation write is held for the
// end of the burst (writeHeld), and so is its answer.
func (m *Manager) registered(ctx context.Context, ev workerRegistered) {
	m.registering = true
	r := m.step(ctx, WorkerRegistered{Worker: ev.size.Worker, Cores: ev.size.Cores, Mem: ev.size.MemTotal})
	m.registering = false
	if r.Err != nil {
		ev.reply <- r.Err
		return
	}
	m.held.replies = append(m.held.replies, ev.reply)
}

// writeHeld writes the held allocations in one batch (the last of each
// worker's) and answers the registrations that wait for it.
func (m *Manager) writeHeld(ctx context.Context) {
	if len(m.held.replies) == 0 && len(m.held.allocs) == 0 {
		return
	}
	last := map[string]Allocation{}
	for _, a := range m.held.allocs {
		last[a.Worker] = a
	}
	allocs := make([]Allocation, 0, len(last))
	for _, id := range slices.Sorted(maps.Keys(last)) {
		allocs = append(allocs, last[id])
	}
	err := m.writeAllocationsErr(ctx, allocs)
	if err != nil {
		err = fmt.Errorf("write the allocation: %w", err)
	}
	for _, r := range m.held.replies {
		r <- err
	}
	m.held = heldWrites{}
}

// Resized records a task's new cores (given by Reallocate, now applied by
// its worker) and memory limit in its job's record: r.Job, r.Task,
// r.Node, r.Cpuset, r.MemLimit.
func (m *Manager) Resized(ctx context.Context, r api.Reservation) error {
	return m.call(ctx, func() error {
		o := m.stepAll(ctx, TaskResized{R: r})
		if o.reply.Err != nil {
			return o.reply.Err
		}
		return o.err
	})
}

// Unplace puts a job back in the queue to be placed from scratch (see
// api.Unplace): its tasks' cores are freed, its record reset, and it is
// queued.
func (m *Manager) Unplace(ctx context.Context, u api.Unplace) error {
	if u.Job == "" {
		return api.Invalid("job", "required")
	}
	return m.call(ctx, func() error {
		o := m.stepAll(ctx, Unplace{Job: u.Job, Tasks: u.Tasks, Note: u.Note})
		m.writeWorkers(ctx)
		if o.reply.Err != nil {
			return o.reply.Err
		}
		return o.err
	})
}

// writeTask carries out a WriteTask effect.
func (m *Manager) writeTask(ctx context.Context, w WriteTask) error {
	_, err := m.st.UpdateJob(ctx, w.Job, func(j *api.Job) error {
		t := j.Info.Tasks.Get(w.Task)
		if t == nil {
			return fmt.Errorf("job %s has no task %s: %w", w.Job, w.Task, api.ErrNotFound)
		}
		t.Node, t.CpusetCpus = w.Node, api.FormatCpuset(w.Cores)
		if w.Resize {
			t.ReqCores, t.MemLimit = len(w.Cores), w.MemLimit
		}
		return nil
	})
	if err != nil {
		m.log.Warn("writing where a task runs", "job_id", w.Job, "task_id", w.Task, "node_id", w.Node, "err", err)
	}
	return err
}

// unplaceJob carries out an UnplaceJob effect and queues the job.
func (m *Manager) unplaceJob(ctx context.Context, u UnplaceJob) error {
	j, err := m.st.UpdateJob(ctx, u.Job, func(j *api.Job) error {
		if j.Status.Final() {
			return &api.FieldError{Field: "job", Kind: api.ErrConflict, Reason: fmt.Sprintf("job %s has ended (%s)", j.Name, j.Status)}
		}
		j.Status, j.StartTime = api.Ready, 0
		if u.Note != "" {
			j.Notes = append(j.Notes, u.Note)
		}
		for _, t := range j.Info.Tasks {
			t.Status, t.StartTime, t.EndTime, t.ExitCode, t.Error = api.Ready, 0, 0, nil, ""
			if j.Strategy != "no-scheduler" {
				t.Node, t.CpusetCpus = "", ""
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	m.enqueue(ctx, j)
	return nil
}

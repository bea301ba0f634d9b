package jobmanager

import (
	"context"
	"errors"

	"github.com/rswarm/rswarm/api"
)

// Moving tasks (migration) and resizing them (update) change allocations
// outside a placement round. They run on the Run goroutine like everything
// else that touches the cluster view, as core events (core.go).

// call runs fn on the Run goroutine and returns its error.
func (m *Manager) call(ctx context.Context, fn func() error) error {
	reply := make(chan error, 1)
	return m.ask(ctx, loopCall{fn: fn, reply: reply}, reply)
}

// Reserve holds cores on r.Node for a task about to move there, keeping its
// current cores until Commit (or Abort). It returns the core ids held.
func (m *Manager) Reserve(ctx context.Context, r api.Reservation) ([]int, error) {
	var cores []int
	err := m.call(ctx, func() error {
		if !m.core.Known(r.Node) && m.workersStale {
			// A worker that registered a moment ago: its announcement is
			// waiting out the re-read coalescing (see Run). Read now.
			m.workersStale, m.workersRead = false, m.cfg.Now()
			if err := m.syncWorkers(ctx); err != nil {
				return err
			}
		}
		rep := m.step(ctx, ReserveMove{R: r})
		cores = rep.Cores
		return rep.Err
	})
	return cores, err
}

// Commit ends a move: the task's old cores are freed and it holds the
// reserved ones (with r.Mem of memory); with r.Job, the task's record is
// written with its new node and cpuset_cpus (the globalmanager does not
// write them).
func (m *Manager) Commit(ctx context.Context, r api.Reservation) error {
	return m.call(ctx, func() error {
		o := m.stepAll(ctx, CommitMove{R: r})
		rep := o.reply
		if rep.Err != nil && errors.Is(rep.Err, api.ErrNotFound) {
			return rep.Err
		}
		m.writeWorkers(ctx)
		if rep.Err != nil {
			return rep.Err
		}
		return o.err
	})
}

// Abort gives back the cores reserved for a move.
func (m *Manager) Abort(ctx context.Context, task string) error {
	return m.call(ctx, func() error {
		return m.step(ctx, AbortMove{Task: task}).Err
	})
}

// Reallocate changes the cores (and memory) a task holds on its node, for
// an update in place: the new cores must be free or already the task's.
func (m *Manager) Reallocate(ctx context.Context, r api.Reservation) error {
	return m.call(ctx, func() error {
		if err := m.step(ctx, Reallocate{R: r}).Err; err != nil {
			return err
		}
		m.writeWorkers(ctx)
		return nil
	})
}

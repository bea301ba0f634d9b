package jobmanager

import (
	"context"
	"fmt"
	"slices"

	"github.com/rswarm/rswarm/api"
)

// Moving tasks (migration) and resizing them (update) change allocations
// outside a placement round. They run on the Run goroutine like everything
// else that touches the cluster view.

// moveKey is the name under which a migrating task's destination cores are
// held until the move is committed or aborted.
func moveKey(task string) string { return task + "#moving" }

// call runs fn on the Run goroutine and returns its error.
func (m *Manager) call(ctx context.Context, fn func() error) error {
	reply := make(chan error, 1)
	if err := m.send(ctx, event{kind: "call", fn: fn, reply: reply}); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reserve holds cores on r.Node for a task about to move there, keeping its
// current cores until Commit (or Abort). It returns the core ids held.
func (m *Manager) Reserve(ctx context.Context, r api.Reservation) ([]int, error) {
	var cores []int
	err := m.call(ctx, func() error {
		v, ok := m.cluster.Worker(r.Node)
		if !ok && m.workersStale {
			// A worker that registered a moment ago: its announcement is
			// waiting out the re-read coalescing (see Run). Read now.
			m.workersStale, m.workersRead = false, m.cfg.Now()
			if err := m.syncWorkers(ctx); err != nil {
				return err
			}
			v, ok = m.cluster.Worker(r.Node)
		}
		if !ok {
			return fmt.Errorf("node %s is not a registered worker: %w", r.Node, api.ErrNotFound)
		}
		if !v.Up {
			return fmt.Errorf("node %s is down: %w", r.Node, api.ErrUnavailable)
		}
		if r.Mem > v.MemFree {
			return &api.FieldError{Field: "to", Kind: api.ErrConflict,
				Reason: fmt.Sprintf("node %s has %d bytes of memory free, task %s needs %d", r.Node, v.MemFree, r.Task, r.Mem)}
		}
		want := slices.Clone(r.Cpuset)
		if len(want) == 0 {
			picked, free, err := m.cluster.PickFree(r.Node, r.Cores)
			if err != nil {
				return &api.FieldError{Field: "to", Kind: api.ErrConflict, Reason: err.Error()}
			}
			if picked == nil {
				return &api.FieldError{Field: "to", Kind: api.ErrConflict,
					Reason: fmt.Sprintf("node %s has %d free cores, task %s needs %d", r.Node, free, r.Task, r.Cores)}
			}
			want = picked
		}
		if err := m.cluster.Allocate(moveKey(r.Task), r.Node, want, r.Mem); err != nil {
			return &api.FieldError{Field: "to", Kind: api.ErrConflict, Reason: err.Error()}
		}
		m.touched[r.Node] = true
		cores = want
		return nil
	})
	return cores, err
}

// Commit ends a move: the task's old cores are freed and it holds the
// reserved ones (with r.Mem of memory).
func (m *Manager) Commit(ctx context.Context, r api.Reservation) error {
	return m.call(ctx, func() error {
		node, cores, ok := m.cluster.Release(moveKey(r.Task))
		if !ok {
			return fmt.Errorf("task %s has no cores reserved: %w", r.Task, api.ErrNotFound)
		}
		if old, _, ok := m.cluster.Release(r.Task); ok {
			m.touched[old] = true
		}
		m.touched[node] = true
		m.dirty = true
		err := m.cluster.Allocate(r.Task, node, cores, r.Mem)
		m.writeWorkers(ctx)
		return err
	})
}

// Abort gives back the cores reserved for a move.
func (m *Manager) Abort(ctx context.Context, task string) error {
	return m.call(ctx, func() error {
		if node, _, ok := m.cluster.Release(moveKey(task)); ok {
			m.touched[node] = true
			m.dirty = true
		}
		return nil
	})
}

// Reallocate changes the cores (and memory) a task holds on its node, for
// an update in place: the new cores must be free or already the task's.
func (m *Manager) Reallocate(ctx context.Context, r api.Reservation) error {
	return m.call(ctx, func() error {
		oldNode, oldCores, held := m.cluster.Release(r.Task)
		if err := m.cluster.Allocate(r.Task, r.Node, r.Cpuset, r.Mem); err != nil {
			if held {
				_ = m.cluster.Allocate(r.Task, oldNode, oldCores, r.PrevMem)
			}
			return &api.FieldError{Field: "cpuset_cpus", Kind: api.ErrConflict, Reason: err.Error()}
		}
		m.touched[r.Node] = true
		if held {
			m.touched[oldNode] = true
		}
		m.dirty = true
		m.writeWorkers(ctx)
		return nil
	})
}

package worker

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Sim is a simulated runtime: it "runs" each task for its duration, or the
// N of a `sleep N` command, scaled by TimeScale, and speaks every protocol
// exactly as a Docker worker does. It lets a strategy be tried on a
// thousand workers on one machine.
type Sim struct {
	ID        string
	Cores     int
	Mem       int64
	TimeScale float64 // 0 or 1 = real time; 0.1 = ten times faster

	mu     sync.Mutex
	timers map[string]*time.Timer
	jobs   map[string]string
	// ended holds the ends Watch has not delivered yet (guarded by mu),
	// and wake tells it of new ones. A list that grows as needed, not a
	// channel buffer: ten thousand workers in one process each held a
	// buffer of 1,024 statuses, 1.3 GB in all, which the collector scanned.
	ended []api.TaskStatus
	wake  chan struct{}
}

var _ Runtime = (*Sim)(nil)

// NewSim returns a simulated host named id with the given cores and memory.
func NewSim(id string, cores int, mem int64, scale float64) *Sim {
	return &Sim{ID: id, Cores: cores, Mem: mem, TimeScale: scale,
		timers: map[string]*time.Timer{}, jobs: map[string]string{}, wake: make(chan struct{}, 1)}
}

// Host describes the simulated host; its node ID is its name.
func (s *Sim) Host(context.Context) (api.Register, error) {
	return api.Register{NodeID: s.ID, Host: s.ID, Address: "sim", Runtime: "sim", Cores: s.Cores, MemTotal: s.Mem,
		CheckpointError: "simulated worker: no checkpoints"}, nil
}

// Join is refused: simulated workers are not swarm nodes.
func (s *Sim) Join(context.Context, string, string) (string, error) {
	return "", fmt.Errorf("worker: a simulated worker cannot join a swarm")
}

// SimDuration is how long a simulated task runs: its duration, else the N
// of a "sleep N" command, else one second.
// Durations are capped at a year, so that no input overflows.
func SimDuration(t *api.Task) time.Duration {
	seconds := 1.0
	if t.Duration > 0 {
		seconds = t.Duration
	} else if w, err := api.SplitCommand(t.Command); err == nil && len(w) == 2 && w[0] == "sleep" {
		if f, err := strconv.ParseFloat(w[1], 64); err == nil && f >= 0 {
			seconds = f
		}
	}
	const year = 365 * 24 * 3600
	if math.IsNaN(seconds) || seconds > year {
		seconds = year
	}
	return time.Duration(seconds * float64(time.Second))
}

// Run starts the simulated task.
func (s *Sim) Run(_ context.Context, rt api.RunTask) error {
	d := SimDuration(&rt.Task)
	if s.TimeScale > 0 {
		d = time.Duration(float64(d) * s.TimeScale)
	}
	name := rt.Task.ContainerName
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.timers[name]; ok {
		return nil
	}
	s.jobs[name] = rt.Job
	s.timers[name] = time.AfterFunc(d, func() { s.finish(name, 0) })
	return nil
}

func (s *Sim) finish(name string, code int) {
	s.mu.Lock()
	t, ok := s.timers[name]
	job := s.jobs[name]
	delete(s.timers, name)
	delete(s.jobs, name)
	s.mu.Unlock()
	if !ok {
		return
	}
	t.Stop()
	st := api.TaskStatus{Job: job, Task: name, State: api.Down, ExitCode: &code, Time: float64(time.Now().UnixNano()) / 1e9}
	if code != 0 {
		st.State = api.Failed
		st.Error = fmt.Sprintf("exited with code %d", code)
	}
	s.mu.Lock()
	s.ended = append(s.ended, st)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // Watch has been told already
	}
}

// Stop ends a simulated task as if killed.
func (s *Sim) Stop(_ context.Context, task string, _ time.Duration) error {
	s.finish(task, 137)
	return nil
}

// Checkpoint is refused: a simulated task has no state to save.
func (s *Sim) Checkpoint(context.Context, string, string, bool) error {
	return fmt.Errorf("worker: simulated worker %s cannot checkpoint: %w", s.ID, api.ErrUnavailable)
}

// Update accepts the new size; a simulated task does not care.
func (s *Sim) Update(_ context.Context, task, _ string, _ int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.timers[task]; !ok {
		return fmt.Errorf("worker: task %s is not running: %w", task, api.ErrNotFound)
	}
	return nil
}

// Leave does nothing: a simulated worker is not in a swarm.
func (s *Sim) Leave(context.Context) error { return nil }

// Logs returns a line saying the task is simulated.
func (s *Sim) Logs(_ context.Context, task string, _ int) ([]string, error) {
	return []string{"simulated task " + task}, nil
}

// Watch delivers the end of each simulated task until ctx ends, then stops every timer.
func (s *Sim) Watch(ctx context.Context) <-chan api.TaskStatus {
	out := make(chan api.TaskStatus)
	go func() {
		defer close(out)
		defer func() {
			s.mu.Lock()
			for n, t := range s.timers {
				t.Stop()
				delete(s.timers, n)
			}
			s.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			s.mu.Lock()
			batch := s.ended
			s.ended = nil
			s.mu.Unlock()
			for _, st := range batch {
				select {
				case out <- st:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

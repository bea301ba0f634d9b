package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rswarm/rswarm/api"
)

// State is the durable state discovery writes. UpdateJob and UpdateWorker
// are atomic read-modify-writes; fn may run more than once.
type State interface {
	UpdateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error)
	ListJobs(ctx context.Context, f api.JobFilter) ([]*api.Job, error)
	UpdateWorker(ctx context.Context, id string, fn func(*api.Worker) error) (*api.Worker, error)
	ListWorkers(ctx context.Context) ([]*api.Worker, error)
	AppendUsage(ctx context.Context, pts []api.UsagePoint) error
}

// Notifier tells the jobmanager what discovery learnt. Calls may fail (the
// jobmanager is down): the jobmanager's resync catches up.
type Notifier interface {
	TasksDone(ctx context.Context, tasks []api.TaskRef) error
	WorkersChanged(ctx context.Context) error
}

// Config configures discovery.
type Config struct {
	// HeartbeatGrace is how long a worker may stay silent before it is down.
	HeartbeatGrace time.Duration
	// LostTaskGrace is how long after a worker goes down its tasks are failed.
	CheckInterval time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

// DefaultConfig returns the defaults: a worker is down after 5 s without a heartbeat.
func DefaultConfig() Config {
	return Config{HeartbeatGrace: 5 * time.Second, CheckInterval: time.Second}
}

// Validate returns the first problem with the configuration.
func (c Config) Validate() error {
	if c.HeartbeatGrace <= 0 || c.CheckInterval <= 0 {
		return errors.New("discovery: heartbeat grace and check interval must be positive")
	}
	return nil
}

// Service is discovery.
type Service struct {
	cfg Config
	st  State
	nt  Notifier
	log *slog.Logger

	mu        sync.Mutex
	table     *Table
	lastRatio map[string]float64
}

// New returns a discovery service writing to st and notifying nt.
func New(cfg Config, st State, nt Notifier) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, st: st, nt: nt, log: cfg.Logger,
		table: NewTable(cfg.HeartbeatGrace.Seconds()), lastRatio: map[string]float64{}}, nil
}

func (s *Service) now() float64 { return float64(s.cfg.Now().UnixNano()) / 1e9 }

// TaskStatus applies one task status to its job. Applying a status twice,
// or a stale one, changes nothing.
func (s *Service) TaskStatus(ctx context.Context, st api.TaskStatus) error {
	if st.Time == 0 {
		st.Time = s.now()
	}
	var changed bool
	_, err := s.st.UpdateJob(ctx, st.Job, func(j *api.Job) error {
		var err error
		changed, err = j.ApplyStatus(st)
		if err == nil && !changed {
			return errUnchanged
		}
		return err
	})
	switch {
	case errors.Is(err, errUnchanged):
		return nil
	case errors.Is(err, api.ErrNotFound):
		// The job was deleted (a cancelled job's record removed): nothing to record.
		s.log.Debug("status for an unknown job or task", "job_id", st.Job, "task_id", st.Task)
		return nil
	case err != nil:
		return fmt.Errorf("apply status of %s: %w", st.Task, err)
	}
	s.log.Debug("task status", "job_id", st.Job, "task_id", st.Task, "node_id", st.Node, "state", st.State)
	if st.State.Final() {
		if err := s.nt.TasksDone(ctx, []api.TaskRef{{Job: st.Job, Task: st.Task, Node: st.Node}}); err != nil {
			s.log.Warn("telling the jobmanager a task ended; its resync will catch up", "task_id", st.Task, "err", err)
		}
	}
	return nil
}

var errUnchanged = errors.New("discovery: unchanged")

// Heartbeat records a worker's heartbeat, its use, and a utilisation point
// when its busy-core ratio changed.
func (s *Service) Heartbeat(ctx context.Context, hb api.Heartbeat) error {
	now := s.now()
	if hb.Time == 0 {
		hb.Time = now
	}
	s.mu.Lock()
	up := s.table.Observe(hb.Node, now)
	ratio := 0.0
	if hb.Cores > 0 {
		ratio = float64(hb.CoresBusy) / float64(hb.Cores)
	}
	last, seen := s.lastRatio[hb.Node]
	s.lastRatio[hb.Node] = ratio
	s.mu.Unlock()

	var wasDown bool
	_, err := s.st.UpdateWorker(ctx, hb.Node, func(w *api.Worker) error {
		wasDown = w.Status == api.WorkerDown
		if w.Status == api.WorkerDown || w.Status == "" {
			w.Status = api.WorkerReady
		}
		w.LastHeartbeat = hb.Time
		w.CoresBusy = hb.CoresBusy
		w.MemUsed = hb.MemUsed
		return nil
	})
	if err != nil {
		if errors.Is(err, api.ErrNotFound) {
			return fmt.Errorf("heartbeat from unregistered worker %s: %w", hb.Node, err)
		}
		return err
	}
	if !seen || last != ratio {
		if err := s.st.AppendUsage(ctx, []api.UsagePoint{{Node: hb.Node, Time: hb.Time, Ratio: ratio}}); err != nil {
			s.log.Warn("appending usage", "node_id", hb.Node, "err", err)
		}
	}
	if up && wasDown {
		s.log.Info("worker is back", "node_id", hb.Node)
		if err := s.nt.WorkersChanged(ctx); err != nil {
			s.log.Warn("telling the jobmanager", "err", err)
		}
	}
	return nil
}

// Run watches heartbeats until ctx is cancelled: a worker silent for longer
// than the grace period is marked down and its tasks are failed.
func (s *Service) Run(ctx context.Context) error {
	// Workers registered before this process started are watched from now on.
	if ws, err := s.st.ListWorkers(ctx); err == nil {
		s.mu.Lock()
		now := s.now()
		for _, w := range ws {
			if w.Status == api.WorkerReady {
				s.table.Observe(w.ID, now)
			}
		}
		s.mu.Unlock()
	}
	tick := time.NewTicker(s.cfg.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.mu.Lock()
			expired := s.table.Expired(s.now())
			s.mu.Unlock()
			for _, n := range expired {
				if err := s.workerLost(ctx, n); err != nil && ctx.Err() == nil {
					s.log.Warn("marking worker down", "node_id", n, "err", err)
				}
			}
		}
	}
}

// workerLost marks a worker down and fails the tasks it was running.
func (s *Service) workerLost(ctx context.Context, node string) error {
	s.log.Warn("worker missed its heartbeats: marking it down", "node_id", node, "grace", s.cfg.HeartbeatGrace)
	_, err := s.st.UpdateWorker(ctx, node, func(w *api.Worker) error {
		if w.Status == api.WorkerReady {
			w.Status = api.WorkerDown
		}
		return nil
	})
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return err
	}
	jobs, err := s.st.ListJobs(ctx, api.JobFilter{Node: node, Status: []api.State{api.Ready, api.Deployed, api.Running}})
	if err != nil {
		return err
	}
	now := s.now()
	for _, j := range jobs {
		for _, t := range j.Info.Tasks {
			if t.Node != node || t.Status.Final() || t.Status < api.Deployed {
				continue
			}
			st := api.TaskStatus{Node: node, Job: j.Name, Task: t.ContainerName, State: api.Failed,
				Error: fmt.Sprintf("worker %s lost (no heartbeat for %v)", node, s.cfg.HeartbeatGrace), Time: now}
			if err := s.TaskStatus(ctx, st); err != nil {
				return err
			}
		}
	}
	return s.nt.WorkersChanged(ctx)
}

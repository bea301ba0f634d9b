package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/rswarm/rswarm/api"
)

// State is the durable state discovery writes. UpdateJob and UpdateWorker
// are atomic read-modify-writes; fn may run more than once.
type State interface {
	GetJob(ctx context.Context, name string) (*api.Job, error)
	UpdateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error)
	UpdateJobs(ctx context.Context, names []string, fn func(*api.Job) error) ([]*api.Job, error)
	ListJobs(ctx context.Context, f api.JobFilter) ([]*api.Job, error)
	UpdateWorker(ctx context.Context, id string, fn func(*api.Worker) error) (*api.Worker, error)
	UpdateWorkers(ctx context.Context, ids []string, fn func(*api.Worker) error) ([]*api.Worker, error)
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
	// CheckInterval is how often silent workers are looked for and
	// utilisation samples are written.
	CheckInterval time.Duration
	// HeartbeatWrite is how often a live worker's heartbeat figures are
	// written to the store (its expiry is tracked in memory at every beat).
	HeartbeatWrite time.Duration
	// ReconcileInterval is how often the tasks the workers report are
	// compared with the store (see Reconciler).
	ReconcileInterval time.Duration
	Logger            *slog.Logger
	Now               func() time.Time
}

// DefaultConfig returns the defaults: a worker is down after 3 s without a
// heartbeat; workers are reconciled every 5 s.
func DefaultConfig() Config {
	return Config{HeartbeatGrace: 3 * time.Second, CheckInterval: time.Second, HeartbeatWrite: 5 * time.Second,
		ReconcileInterval: 5 * time.Second}
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

	statuses chan statusReq

	rec *Reconciler // owned by Run

	mu        sync.Mutex
	reports   map[string]Report         // latest task list of each worker
	stops     map[string][]api.StopTask // tasks to stop, sent in the next heartbeat reply
	table     *Table
	lastRatio map[string]float64
	beats     map[string]api.Heartbeat // latest heartbeat not written yet
	cameUp    map[string]bool          // workers heard from again after silence
	usage     []api.UsagePoint         // samples not written yet

	statsMu sync.Mutex
	stats   api.StatusStats
}

type statusReq struct {
	sts  []api.TaskStatus // in the order they happened
	at   float64          // when they arrived (see api.Gaps)
	done chan error
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
	if cfg.HeartbeatWrite <= 0 {
		cfg.HeartbeatWrite = DefaultConfig().HeartbeatWrite
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = DefaultConfig().ReconcileInterval
	}
	// A check that runs more than half a grace late means discovery itself
	// stalled: its workers get a fresh grace (see Table).
	table := NewTable(cfg.HeartbeatGrace.Seconds()).WithStall(max(cfg.HeartbeatGrace.Seconds()/2, 2*cfg.CheckInterval.Seconds()))
	return &Service{cfg: cfg, st: st, nt: nt, log: cfg.Logger, statuses: make(chan statusReq, 1<<16),
		rec: NewReconciler(), reports: map[string]Report{}, stops: map[string][]api.StopTask{},
		table: table, lastRatio: map[string]float64{}, beats: map[string]api.Heartbeat{}, cameUp: map[string]bool{},
		stats: api.StatusStats{ApplyGaps: api.NewGaps()}}, nil
}

// Stats returns a snapshot of discovery's figures.
func (s *Service) Stats() api.StatusStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	st := s.stats
	st.ApplyGaps = st.ApplyGaps.Clone()
	return st
}

func (s *Service) now() float64 { return float64(s.cfg.Now().UnixNano()) / 1e9 }

// TaskStatus applies one task status to its job and returns once it is
// stored (Run applies statuses in batches, so Run must be running).
// Applying a status twice, or a stale one, changes nothing; a status for a
// job that no longer exists (deleted) is dropped.
func (s *Service) TaskStatus(ctx context.Context, st api.TaskStatus) error {
	return s.TaskStatuses(ctx, []api.TaskStatus{st})
}

// TaskStatuses applies statuses in order, as TaskStatus does each, and
// returns once they are all stored.
func (s *Service) TaskStatuses(ctx context.Context, sts []api.TaskStatus) error {
	if len(sts) == 0 {
		return nil
	}
	now := s.now()
	for i := range sts {
		if sts[i].Time == 0 {
			sts[i].Time = now
		}
	}
	r := statusReq{sts: sts, at: now, done: make(chan error, 1)}
	select {
	case s.statuses <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errUnchanged = errors.New("discovery: unchanged")

// maxBatchStatuses bounds the statuses applied in one write.
const maxBatchStatuses = 2048

// applyStatuses writes statuses as they come, in batches: whatever arrived
// while the previous batch was being written goes in one transaction, and
// the statuses of one job are applied to it in one write.
func (s *Service) applyStatuses(ctx context.Context) {
	batch := make([]statusReq, 0, 512)
	for {
		batch = batch[:0]
		n := 0
		select {
		case <-ctx.Done():
			return
		case r := <-s.statuses:
			batch = append(batch, r)
			n += len(r.sts)
		}
		// A transaction of bounded size: every report in it waits for all
		// of it, and the store's other writers wait behind it.
	drain:
		for len(batch) < cap(batch) && n < maxBatchStatuses {
			select {
			case r := <-s.statuses:
				batch = append(batch, r)
				n += len(r.sts)
			default:
				break drain
			}
		}
		s.statsMu.Lock()
		for _, r := range batch {
			s.stats.ApplyGaps.Waiting(r.at)
		}
		s.statsMu.Unlock()
		s.applyBatch(ctx, batch)
		// A batch is served once written and announced to the jobmanager:
		// a write, or an announcement, that hangs shows as a gap.
		s.statsMu.Lock()
		s.stats.ApplyGaps.Served(s.now(), len(s.statuses) > 0)
		s.stats.Applied += uint64(n)
		s.statsMu.Unlock()
	}
}

func (s *Service) applyBatch(ctx context.Context, batch []statusReq) {
	var sts []api.TaskStatus
	for _, r := range batch {
		sts = append(sts, r.sts...)
	}
	byJob := map[string][]int{}
	var names []string
	for i, st := range sts {
		if _, ok := byJob[st.Job]; !ok {
			names = append(names, st.Job)
		}
		byJob[st.Job] = append(byJob[st.Job], i)
	}
	changed := make([]bool, len(sts))
	written, err := s.st.UpdateJobs(ctx, names, func(j *api.Job) error {
		any := false
		for _, i := range byJob[j.Name] {
			c, err := j.ApplyStatus(sts[i])
			changed[i] = c && err == nil
			any = any || changed[i]
		}
		if !any {
			return errUnchanged
		}
		return nil
	})
	ended := map[string]bool{}
	for _, j := range written {
		ended[j.Name] = j.Status.Final()
	}
	var done []api.TaskRef
	for i, st := range sts {
		if err == nil && changed[i] {
			s.log.Debug("task status", "job_id", st.Job, "task_id", st.Task, "node_id", st.Node, "state", st.State)
			if st.State.Final() {
				done = append(done, api.TaskRef{Job: st.Job, Task: st.Task, Node: st.Node, State: st.State, JobEnded: ended[st.Job]})
			}
		}
	}
	if len(done) > 0 {
		if err := s.nt.TasksDone(ctx, done); err != nil {
			s.log.Warn("telling the jobmanager tasks ended; its resync will catch up", "tasks", len(done), "err", err)
		}
	}
	if err != nil {
		err = fmt.Errorf("apply %d statuses: %w", len(sts), err)
	}
	for _, r := range batch {
		r.done <- err
	}
}

// Heartbeat records a worker's heartbeat in memory: its expiry clock (by
// the time the heartbeat was sent, see Table), its use, the tasks it holds
// for the next reconciliation, and a utilisation sample when its busy-core
// ratio changed. Nothing waits on the store here, so a busy store cannot
// make heartbeats late and workers falsely lost: Run writes the figures in
// batches (a worker that comes back at the next tick, the others every
// HeartbeatWrite). The reply holds the tasks reconciliation found the
// worker should not run.
func (s *Service) Heartbeat(ctx context.Context, hb api.Heartbeat) (api.HeartbeatReply, error) {
	now := s.now()
	sent := hb.Time
	if hb.Time == 0 {
		hb.Time = now
	}
	running := hb.Running
	hb.Running = nil // kept in reports
	s.mu.Lock()
	back := s.table.ObserveSent(hb.Node, now, sent)
	if back {
		s.cameUp[hb.Node] = true
	}
	// The report is as old as the heartbeat: one that waited in a queue
	// must not confirm missing a task placed after it was made.
	s.reports[hb.Node] = Report{Read: s.table.SentAt(hb.Node, now, sent), Running: running}
	reply := api.HeartbeatReply{Stop: s.stops[hb.Node]}
	delete(s.stops, hb.Node)
	ratio := 0.0
	if hb.Cores > 0 {
		ratio = float64(hb.CoresBusy) / float64(hb.Cores)
	}
	if last, seen := s.lastRatio[hb.Node]; !seen || last != ratio {
		s.usage = append(s.usage, api.UsagePoint{Node: hb.Node, Time: hb.Time, Ratio: ratio})
	}
	s.lastRatio[hb.Node] = ratio
	s.beats[hb.Node] = hb
	s.mu.Unlock()
	if back && len(running) > 0 {
		// A worker back after it was declared lost (paused, cut off) still
		// holds tasks that were failed and placed elsewhere meanwhile: they
		// are stopped in this very reply, not at the next pass, so that the
		// two copies run side by side as briefly as possible.
		reply.Stop = append(reply.Stop, s.unwantedNow(ctx, hb.Node, running)...)
	}
	return reply, nil
}

// flushHeartbeats writes the latest heartbeat of each worker that came
// back up, or of every worker when all is true, in one batch; it tells the
// jobmanager when a worker that was down is back.
func (s *Service) flushHeartbeats(ctx context.Context, all bool) {
	s.mu.Lock()
	beats := map[string]api.Heartbeat{}
	for n, hb := range s.beats {
		if all || s.cameUp[n] {
			beats[n] = hb
			delete(s.beats, n)
		}
	}
	s.cameUp = map[string]bool{}
	s.mu.Unlock()
	if len(beats) == 0 {
		return
	}
	ids := make([]string, 0, len(beats))
	for n := range beats {
		ids = append(ids, n)
	}
	sort.Strings(ids)
	var back []string
	_, err := s.st.UpdateWorkers(ctx, ids, func(w *api.Worker) error {
		hb := beats[w.ID]
		if w.Status == api.WorkerDown || w.Status == "" {
			w.Status = api.WorkerReady
			back = append(back, w.ID)
		}
		w.LastHeartbeat, w.CoresBusy, w.MemUsed = hb.Time, hb.CoresBusy, hb.MemUsed
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("writing heartbeats; they are written again at the next beat", "workers", len(ids), "err", err)
		}
		return
	}
	if len(back) > 0 {
		s.log.Info("workers are back", "count", len(back), "node_id", back[0])
		if err := s.nt.WorkersChanged(ctx); err != nil {
			s.log.Warn("telling the jobmanager", "err", err)
		}
	}
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
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); s.applyStatuses(ctx) }()
	tick := time.NewTicker(s.cfg.CheckInterval)
	defer tick.Stop()
	recTick := time.NewTicker(s.cfg.ReconcileInterval)
	defer recTick.Stop()
	lastAll := time.Now()
	for {
		select {
		case <-recTick.C:
			if err := s.watchRegistered(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reading workers", "err", err)
			}
			if err := s.reconcile(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reconciling workers; trying again at the next pass", "err", err)
			}
		case <-ctx.Done():
			s.flushUsage(context.WithoutCancel(ctx))
			s.flushHeartbeats(context.WithoutCancel(ctx), true)
			return nil
		case <-tick.C:
			s.flushUsage(ctx)
			all := time.Since(lastAll) >= s.cfg.HeartbeatWrite
			if all {
				lastAll = time.Now()
			}
			s.flushHeartbeats(ctx, all)
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
	s.mu.Lock()
	// Its last report is stale, and what it should stop is judged afresh
	// when it comes back (see Heartbeat).
	delete(s.reports, node)
	delete(s.stops, node)
	s.mu.Unlock()
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
			st := api.TaskStatus{Node: node, Job: j.Name, Task: t.ContainerName, State: api.Failed, Attempt: j.Restarts,
				Error: fmt.Sprintf("%s: %s sent no heartbeat for %v", api.WorkerLost, node, s.cfg.HeartbeatGrace), Time: now}
			if err := s.TaskStatus(ctx, st); err != nil {
				return err
			}
		}
	}
	return s.nt.WorkersChanged(ctx)
}

// flushUsage writes the utilisation samples gathered since the last call.
func (s *Service) flushUsage(ctx context.Context) {
	s.mu.Lock()
	pts := s.usage
	s.usage = nil
	s.mu.Unlock()
	if len(pts) == 0 {
		return
	}
	if err := s.st.AppendUsage(ctx, pts); err != nil {
		s.log.Warn("writing utilisation samples", "samples", len(pts), "err", err)
	}
}

// reconcile runs one reconciliation pass (see Reconciler) over the live
// workers' latest reports: it queues the stops for their next heartbeat
// replies and applies the statuses of adopted and lost tasks.
func (s *Service) reconcile(ctx context.Context) error {
	s.mu.Lock()
	reports := map[string]Report{}
	for _, n := range s.table.Up() {
		if r, ok := s.reports[n]; ok {
			reports[n] = r
		}
	}
	s.mu.Unlock()
	if len(reports) == 0 {
		return nil
	}
	// The store is read after the reports were: whatever a worker ran when
	// it reported was placed in the store before (see Reconciler.Pass).
	jobs, err := s.st.ListJobs(ctx, api.JobFilter{Status: []api.State{api.Deployed, api.Running}})
	if err != nil {
		return err
	}
	want := map[string]Placement{}
	add := func(j *api.Job) {
		for _, t := range j.Info.Tasks {
			want[t.ContainerName] = Placement{Job: j.Name, Node: t.Node, State: t.Status, Attempt: j.Restarts}
		}
	}
	listed := map[string]bool{}
	for _, j := range jobs {
		listed[j.Name] = true
		add(j)
	}
	// Jobs the workers name that are not placed-and-deployed: being
	// deployed (Ready), ended or deleted. Read one by one: a few.
	for _, r := range reports {
		for _, h := range r.Running {
			if listed[h.Job] {
				continue
			}
			listed[h.Job] = true
			j, err := s.st.GetJob(ctx, h.Job)
			if errors.Is(err, api.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			add(j)
		}
	}
	v := s.rec.Pass(s.now(), reports, want)
	s.mu.Lock()
	for n, st := range v.Stop {
		s.stops[n] = append(s.stops[n], st...)
	}
	s.mu.Unlock()
	for n, st := range v.Stop {
		s.log.Info("reconciliation: stopping tasks the worker should not run", "node_id", n, "count", len(st), "task_id", st[0].Task, "reason", st[0].Reason)
	}
	for _, st := range v.Lost {
		s.log.Warn("reconciliation: a task is missing from its worker", "node_id", st.Node, "job_id", st.Job, "task_id", st.Task)
	}
	return s.TaskStatuses(ctx, append(v.Adopt, v.Lost...))
}

// unwantedNow reads the jobs of the tasks a worker holds and returns the
// stops for those the store does not want there. On a read error it
// returns what it has: the next pass catches the rest.
func (s *Service) unwantedNow(ctx context.Context, node string, running []api.HeldTask) []api.StopTask {
	want := map[string]Placement{}
	read := map[string]bool{}
	for _, h := range running {
		if read[h.Job] {
			continue
		}
		read[h.Job] = true
		j, err := s.st.GetJob(ctx, h.Job)
		if errors.Is(err, api.ErrNotFound) {
			continue
		}
		if err != nil {
			s.log.Warn("reconciling a worker that came back; the next pass will", "node_id", node, "err", err)
			return nil
		}
		for _, t := range j.Info.Tasks {
			want[t.ContainerName] = Placement{Job: j.Name, Node: t.Node, State: t.Status, Attempt: j.Restarts}
		}
	}
	stops := Unwanted(node, running, want)
	if len(stops) > 0 {
		s.log.Info("worker came back holding tasks placed elsewhere meanwhile: stopping them", "node_id", node, "count", len(stops))
	}
	return stops
}

// watchRegistered starts the expiry clock of the workers registered (by
// the globalmanager) that sent no heartbeat since: one that died right
// after registering, or after registering again once declared down, is
// declared down a grace later, not left ready.
func (s *Service) watchRegistered(ctx context.Context) error {
	ws, err := s.st.ListWorkers(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range ws {
		if w.Status == api.WorkerReady && !s.table.Watching(w.ID) {
			s.table.Observe(w.ID, now)
		}
	}
	return nil
}

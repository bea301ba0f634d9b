package jobmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/placement"
)

// State is the durable state the jobmanager reads and writes. UpdateJob(s)
// and UpdateWorker are atomic read-modify-writes; fn may run more than once.
type State interface {
	GetJob(ctx context.Context, name string) (*api.Job, error)
	ListJobs(ctx context.Context, f api.JobFilter) ([]*api.Job, error)
	UpdateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error)
	UpdateJobs(ctx context.Context, names []string, fn func(*api.Job) error) ([]*api.Job, error)
	ListWorkers(ctx context.Context) ([]*api.Worker, error)
	UpdateWorkers(ctx context.Context, ids []string, fn func(*api.Worker) error) ([]*api.Worker, error)
}

// Dispatcher deploys a placed job (every task has its node and cores). It
// returns once each task's worker has acknowledged its run command, or with
// an error when the job could not be deployed; it may be called from
// several goroutines at once.
type Dispatcher interface {
	Deploy(ctx context.Context, j *api.Job) error
	// Stop stops a job's remaining containers (cancel, or a failed gang member).
	Stop(ctx context.Context, job string, reason string) error
}

// Config configures the jobmanager.
type Config struct {
	// Strategy is the placement strategy's name (see placement.Names).
	Strategy string
	// SortBatch makes the decreasing strategies sort the whole waiting batch.
	SortBatch bool
	// Policy is "backfill" (default) or "fifo".
	Policy string
	// MaxWait bounds a head-of-line job's wait under backfill (seconds).
	MaxWait float64
	// ResyncInterval is how often the store is re-read to catch lost notifications.
	ResyncInterval time.Duration
	// Dispatchers is how many jobs may be deploying at once.
	Dispatchers int
	// DispatchTimeout bounds one deployment.
	DispatchTimeout time.Duration
	// WorkerWrite is how often changed worker allocations are written to the store.
	WorkerWrite time.Duration
	Logger      *slog.Logger
	// Now returns the time; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults: best fit, backfill, resync every 2 s.
func DefaultConfig() Config {
	return Config{Strategy: "best-fit", Policy: "backfill", ResyncInterval: 2 * time.Second, Dispatchers: 256,
		DispatchTimeout: 30 * time.Second, WorkerWrite: 500 * time.Millisecond}
}

// Validate returns the first problem with the configuration.
func (c Config) Validate() error {
	if _, err := placement.New(c.Strategy, placement.Options{}); err != nil {
		return err
	}
	if _, err := placement.ParsePolicy(c.Policy); err != nil {
		return err
	}
	if c.ResyncInterval <= 0 || c.Dispatchers <= 0 || c.DispatchTimeout <= 0 || c.WorkerWrite <= 0 {
		return errors.New("jobmanager: resync interval, worker write interval, dispatchers and dispatch timeout must be positive")
	}
	return nil
}

// Manager is the jobmanager. Its state (cluster view, queue, strategy) is
// owned by the Run goroutine; everything else talks to it through events.
type Manager struct {
	cfg      Config
	st       State
	dispatch Dispatcher
	log      *slog.Logger
	events   chan event

	// owned by Run
	cluster  *placement.Cluster
	strategy placement.Strategy
	qopts    placement.QueueOptions
	queue    map[string]*queued // waiting jobs by name
	seq      uint64
	inflight map[string]bool // jobs being deployed
	touched  map[string]bool // workers whose allocation changed since the last write
	dirty    bool
	wg       sync.WaitGroup // dispatches and stops in flight, joined by Run

	stopped      map[string]bool // jobs whose remaining tasks were told to stop
	workersStale bool            // a worker changed: re-read them
	workersRead  time.Time       // when they were last read

	mu    sync.Mutex // guards stats
	stats api.SchedulerStats
}

type queued struct {
	job  placement.Job
	rsn  string // last waiting reason written
	full *api.Job
}

type event struct {
	kind  string
	jobs  []string
	tasks []api.TaskRef
	name  string
	reply chan error
	job   *api.Job // for dispatch results
	err   error
	fn    func() error // for calls run on the loop
}

// New returns a jobmanager over st that deploys through d.
func New(cfg Config, st State, d Dispatcher) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, _ := placement.New(cfg.Strategy, placement.Options{SortBatch: cfg.SortBatch})
	pol, _ := placement.ParsePolicy(cfg.Policy)
	return &Manager{
		stats: api.SchedulerStats{
			RoundSeconds:   api.NewHistogram(1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1),
			PlacementDelay: api.NewHistogram(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300),
		},
		cfg: cfg, st: st, dispatch: d, log: cfg.Logger,
		events:   make(chan event, 4096),
		cluster:  placement.NewCluster(),
		strategy: s,
		qopts:    placement.QueueOptions{Policy: pol, MaxWait: cfg.MaxWait},
		queue:    map[string]*queued{},
		inflight: map[string]bool{},
		stopped:  map[string]bool{},
		touched:  map[string]bool{},
	}, nil
}

// Stats returns a snapshot of the counters.
func (m *Manager) Stats() api.SchedulerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.RoundSeconds = s.RoundSeconds.Clone()
	s.PlacementDelay = s.PlacementDelay.Clone()
	return s
}

func (m *Manager) send(ctx context.Context, ev event) error {
	select {
	case m.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// JobSubmitted tells the jobmanager a new job is in the store.
func (m *Manager) JobSubmitted(ctx context.Context, names ...string) error {
	return m.send(ctx, event{kind: api.KindJobSubmitted, jobs: names})
}

// JobCancelled tells the jobmanager a job was cancelled: it leaves the
// queue and its cores are freed. It returns once the freed cores are
// recorded, so a caller that then reads the workers sees them free.
func (m *Manager) JobCancelled(ctx context.Context, name string) error {
	return m.call(ctx, func() error {
		m.apply(ctx, event{kind: api.KindJobCancelled, jobs: []string{name}})
		m.writeWorkers(ctx)
		return nil
	})
}

// TasksDone tells the jobmanager tasks reached a final state.
func (m *Manager) TasksDone(ctx context.Context, tasks []api.TaskRef) error {
	return m.send(ctx, event{kind: api.KindTasksDone, tasks: tasks})
}

// WorkersChanged tells the jobmanager to re-read the workers.
func (m *Manager) WorkersChanged(ctx context.Context) error {
	return m.send(ctx, event{kind: api.KindWorkersChanged})
}

// SwitchStrategy changes the placement strategy between rounds; every
// queued job stays queued. An unknown name is refused with the valid ones.
func (m *Manager) SwitchStrategy(ctx context.Context, name string) error {
	if _, err := placement.New(name, placement.Options{}); err != nil {
		return api.Invalid("strategy", "%v", err)
	}
	reply := make(chan error, 1)
	if err := m.send(ctx, event{kind: api.KindSwitchStrategy, name: name, reply: reply}); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Strategy returns the current strategy's name and every strategy with its description.
func (m *Manager) Strategy() api.StrategyInfo {
	m.mu.Lock()
	name := m.stats.Strategy
	m.mu.Unlock()
	if name == "" {
		name = m.cfg.Strategy
	}
	return api.StrategyInfo{Name: name, Strategies: placement.Describe()}
}

// Run recovers the queue and allocations from the store, then schedules
// until ctx is cancelled. It returns after every dispatch it started has
// returned.
func (m *Manager) Run(ctx context.Context) error {
	wg := &m.wg
	defer wg.Wait()
	sem := make(chan struct{}, m.cfg.Dispatchers)
	m.setStrategyStat()
	if err := m.resync(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("initial resync failed; retrying on the next tick", "err", err)
	}
	tick := time.NewTicker(m.cfg.ResyncInterval)
	defer tick.Stop()
	// Worker allocations are written at most once per WorkerWrite: the
	// truth is in memory, the records are for people and other processes.
	flush := time.NewTicker(m.cfg.WorkerWrite)
	defer flush.Stop()
	// Workers are re-read at most every 100 ms however often they change.
	workersDue := time.NewTimer(time.Hour)
	defer workersDue.Stop()
	for {
		if m.workersStale {
			if wait := 100*time.Millisecond - time.Since(m.workersRead); wait > 0 {
				workersDue.Reset(wait)
			} else {
				m.workersStale = false
				m.workersRead = time.Now()
				if err := m.syncWorkers(ctx); err != nil && ctx.Err() == nil {
					m.log.Warn("reading workers failed", "err", err)
				}
			}
		}
		if m.dirty {
			m.round(ctx, wg, sem)
		}
		select {
		case <-workersDue.C:
		case <-ctx.Done():
			return nil
		case ev := <-m.events:
			m.apply(ctx, ev)
			// Drain what else has arrived, so one round serves a burst.
			for n := 0; n < 4096; n++ {
				select {
				case ev := <-m.events:
					m.apply(ctx, ev)
					continue
				default:
				}
				break
			}
		case <-flush.C:
			m.writeWorkers(ctx)
		case <-tick.C:
			if err := m.resync(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("resync failed", "err", err)
			}
		}
	}
}

func (m *Manager) setStrategyStat() {
	m.mu.Lock()
	m.stats.Strategy = m.strategy.Name()
	m.mu.Unlock()
}

func (m *Manager) apply(ctx context.Context, ev event) {
	switch ev.kind {
	case api.KindJobSubmitted:
		for _, name := range ev.jobs {
			if m.queue[name] != nil || m.inflight[name] {
				continue
			}
			j, err := m.st.GetJob(ctx, name)
			if err != nil {
				m.log.Warn("submitted job not readable; the resync will retry", "job_id", name, "err", err)
				continue
			}
			m.enqueue(j)
		}
	case api.KindJobCancelled:
		for _, name := range ev.jobs {
			delete(m.queue, name)
			j, err := m.st.GetJob(ctx, name)
			if err == nil {
				for _, t := range j.Info.Tasks {
					m.release(t.ContainerName)
				}
			}
			m.dirty = true
		}
	case api.KindTasksDone:
		for _, t := range ev.tasks {
			m.release(t.Task)
		}
		m.failGangs(ctx, ev.tasks)
	case api.KindWorkersChanged:
		// Coalesced: a thousand workers registering must not mean a
		// thousand reads of every worker (see Run).
		m.workersStale = true
	case api.KindSwitchStrategy:
		s, err := placement.New(ev.name, placement.Options{SortBatch: m.cfg.SortBatch})
		if err == nil {
			m.strategy = s
			m.setStrategyStat()
			m.dirty = true
			m.log.Info("strategy switched", "strategy", ev.name, "queued", len(m.queue))
		}
		ev.reply <- err
	case "call":
		ev.reply <- ev.fn()
	case "dispatched":
		delete(m.inflight, ev.job.Name)
		if ev.err != nil {
			m.log.Warn("deploy failed; freeing its cores", "job_id", ev.job.Name, "err", ev.err)
			now := m.now()
			_, err := m.st.UpdateJob(ctx, ev.job.Name, func(j *api.Job) error {
				j.Finish(api.Failed, "deploy: "+ev.err.Error(), now)
				return nil
			})
			if err != nil {
				m.log.Warn("marking job failed", "job_id", ev.job.Name, "err", err)
			}
			for _, t := range ev.job.Info.Tasks {
				m.release(t.ContainerName)
			}
		}
	}
}

// failGangs stops the rest of a job one of whose tasks failed: a job is a
// gang, and its other tasks would hold cores for nothing.
func (m *Manager) failGangs(ctx context.Context, tasks []api.TaskRef) {
	seen := map[string]bool{}
	for _, t := range tasks {
		if seen[t.Job] || m.stopped[t.Job] {
			continue
		}
		seen[t.Job] = true
		j, err := m.st.GetJob(ctx, t.Job)
		if err != nil || j.Status.Final() {
			continue
		}
		var failed *api.Task
		for _, tk := range j.Info.Tasks {
			if tk.Status == api.Failed {
				failed = tk
				break
			}
		}
		if failed == nil {
			continue
		}
		reason := fmt.Sprintf("stopped because task %s failed", failed.ContainerName)
		m.stopped[j.Name] = true
		m.wg.Add(1)
		go func(name string) {
			defer m.wg.Done()
			sctx, cancel := context.WithTimeout(ctx, m.cfg.DispatchTimeout)
			defer cancel()
			if err := m.dispatch.Stop(sctx, name, reason); err != nil {
				m.log.Warn("stopping the rest of a failed job", "job_id", name, "err", err)
			}
		}(j.Name)
	}
}

func (m *Manager) now() float64 { return float64(m.cfg.Now().UnixNano()) / 1e9 }

func (m *Manager) enqueue(j *api.Job) {
	if j.Status != api.Ready || m.queue[j.Name] != nil || m.inflight[j.Name] {
		return
	}
	for _, t := range j.Info.Tasks {
		if t.Status != api.Ready {
			return
		}
	}
	m.seq++
	m.queue[j.Name] = &queued{job: toPlacement(j, m.seq), rsn: j.WaitingReason, full: j}
	m.dirty = true
}

func toPlacement(j *api.Job, seq uint64) placement.Job {
	pj := placement.Job{Name: j.Name, Priority: j.Priority, Submitted: j.SubmitTime, Seq: seq}
	for _, t := range j.Info.Tasks {
		mem, _ := api.ParseMem(t.MemLimit)
		if t.MemLimit == "" {
			mem = 0
		}
		pt := placement.Task{Name: t.ContainerName, Cores: t.ReqCores, Mem: mem}
		if t.CpusetCpus != "" {
			pt.Node = t.Node
			pt.Cpuset, _ = api.ParseCpuset(t.CpusetCpus)
		}
		if t.Deadline > 0 && (pj.Deadline == 0 || t.Deadline < pj.Deadline) {
			pj.Deadline = t.Deadline
		}
		pj.Tasks = append(pj.Tasks, pt)
	}
	return pj
}

func (m *Manager) release(task string) {
	if w, _, ok := m.cluster.Release(task); ok {
		m.touched[w] = true
		m.dirty = true
	}
}

// round runs the strategy over the queue, persists the decisions and the
// waiting reasons, and starts the deployments.
func (m *Manager) round(ctx context.Context, wg *sync.WaitGroup, sem chan struct{}) {
	m.dirty = false
	start := time.Now()
	queue := make([]placement.Job, 0, len(m.queue))
	submitted := make(map[string]float64, len(m.queue))
	for _, q := range m.queue {
		queue = append(queue, q.job)
		submitted[q.job.Name] = q.job.Submitted
	}
	sort.Slice(queue, func(a, b int) bool { return queue[a].Seq < queue[b].Seq })
	now := m.now()
	placed, waiting := placement.Schedule(m.cluster, m.strategy, queue, now, m.qopts)
	elapsed := time.Since(start)

	if len(placed) > 0 {
		m.commit(ctx, placed, wg, sem)
	}
	var changed []string
	reasons := map[string]string{}
	for _, w := range waiting {
		q := m.queue[w.Job]
		if q != nil && q.rsn != w.Reason {
			q.rsn = w.Reason
			changed = append(changed, w.Job)
			reasons[w.Job] = w.Reason
		}
	}
	if len(changed) > 0 {
		_, err := m.st.UpdateJobs(ctx, changed, func(j *api.Job) error {
			if j.Status != api.Ready {
				return errors.New("no longer waiting")
			}
			j.WaitingReason = reasons[j.Name]
			return nil
		})
		if err != nil {
			m.log.Warn("writing waiting reasons", "err", err)
		}
	}
	free, total := m.cluster.FreeCores()
	m.mu.Lock()
	m.stats.Rounds++
	m.stats.Placed += uint64(len(placed))
	m.stats.Queued = len(m.queue)
	m.stats.RoundSeconds.Observe(elapsed.Seconds())
	for _, d := range placed {
		if q := submitted[d.Job]; q > 0 {
			m.stats.PlacementDelay.Observe(max(0, now-q))
		}
	}
	m.stats.FreeCores, m.stats.TotalCores = free, total
	m.mu.Unlock()
}

// commit writes placed jobs to the store and starts their deployment. A
// job the store refuses (cancelled meanwhile) gives its cores back.
func (m *Manager) commit(ctx context.Context, placed []placement.Decision, wg *sync.WaitGroup, sem chan struct{}) {
	byJob := make(map[string]placement.Decision, len(placed))
	names := make([]string, 0, len(placed))
	for _, d := range placed {
		byJob[d.Job] = d
		names = append(names, d.Job)
		delete(m.queue, d.Job)
		for _, a := range d.Assignments {
			m.touched[a.Worker] = true
		}
	}
	strategy := m.strategy.Name()
	written, err := m.st.UpdateJobs(ctx, names, func(j *api.Job) error {
		if j.Status != api.Ready {
			return fmt.Errorf("job %s is %s", j.Name, j.Status)
		}
		d := byJob[j.Name]
		for _, a := range d.Assignments {
			t := j.Info.Tasks.Get(a.Task)
			if t == nil {
				return fmt.Errorf("job %s lost task %s", j.Name, a.Task)
			}
			t.Node = a.Worker
			t.CpusetCpus = api.FormatCpuset(a.Cores)
			t.Status = api.Scheduled
		}
		j.Strategy = strategy
		j.WaitingReason = ""
		return nil
	})
	if err != nil {
		m.log.Warn("writing placements failed; freeing their cores", "err", err)
	}
	ok := map[string]*api.Job{}
	for _, j := range written {
		ok[j.Name] = j
	}
	for _, d := range placed {
		j := ok[d.Job]
		if j == nil {
			for _, a := range d.Assignments {
				m.release(a.Task)
			}
			continue
		}
		m.inflight[j.Name] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, m.cfg.DispatchTimeout)
			err := m.dispatch.Deploy(dctx, j)
			cancel()
			if ctx.Err() != nil {
				return
			}
			_ = m.send(ctx, event{kind: "dispatched", job: j, err: err})
		}()
	}
}

// writeWorkers persists, in one batch, the allocation of every worker
// touched since the last write.
func (m *Manager) writeWorkers(ctx context.Context) {
	if len(m.touched) == 0 {
		return
	}
	views := make(map[string]placement.WorkerView, len(m.touched))
	ids := make([]string, 0, len(m.touched))
	for id := range m.touched {
		delete(m.touched, id)
		if v, ok := m.cluster.Worker(id); ok {
			views[id] = v
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	_, err := m.st.UpdateWorkers(ctx, ids, func(w *api.Worker) error {
		v := views[w.ID]
		w.SetAllocation(v.Busy, v.MemTotal-v.MemFree)
		return nil
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("writing worker allocations", "workers", len(ids), "err", err)
	}
}

// syncWorkers brings the cluster view in line with the registered workers.
func (m *Manager) syncWorkers(ctx context.Context) error {
	ws, err := m.st.ListWorkers(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, w := range ws {
		seen[w.ID] = true
		if w.Status == api.WorkerLeft {
			for _, t := range m.cluster.RemoveWorker(w.ID) {
				m.log.Info("worker left; task lost its cores", "node_id", w.ID, "task_id", t)
			}
			m.dirty = true
			continue
		}
		if v, ok := m.cluster.Worker(w.ID); !ok || v.Cores != w.Cores || v.MemTotal != w.MemTotal {
			// New, or registered again with another size (allocations kept).
			if err := m.cluster.AddWorker(w.ID, w.Cores, w.MemTotal); err != nil {
				m.log.Warn("adding worker", "node_id", w.ID, "cores", w.Cores, "err", err)
				continue
			}
			m.touched[w.ID] = true
			m.dirty = true
		}
		v, _ := m.cluster.Worker(w.ID)
		up := w.Status == api.WorkerReady
		if v.Up != up {
			m.cluster.SetUp(w.ID, up)
			m.dirty = true
		}
	}
	for _, v := range m.cluster.Workers() {
		if !seen[v.ID] {
			m.cluster.RemoveWorker(v.ID)
			m.dirty = true
		}
	}
	return nil
}

// resync re-reads workers and live jobs: it queues Ready jobs whose
// notification was lost, re-creates allocations of placed tasks (at start),
// and frees the cores of tasks that ended without a notification.
func (m *Manager) resync(ctx context.Context) error {
	if err := m.syncWorkers(ctx); err != nil {
		return err
	}
	jobs, err := m.st.ListJobs(ctx, api.JobFilter{Status: []api.State{api.Ready, api.Deployed, api.Running}})
	if err != nil {
		return err
	}
	live := map[string]bool{}
	ready, listed := map[string]bool{}, map[string]bool{}
	var requeue []string
	for _, j := range jobs {
		listed[j.Name] = true
		if j.Status == api.Ready {
			ready[j.Name] = true
		}
		if m.inflight[j.Name] {
			for _, t := range j.Info.Tasks {
				live[t.ContainerName] = true
			}
			continue
		}
		if j.Status == api.Ready && m.queue[j.Name] == nil {
			placedBefore := false
			for _, t := range j.Info.Tasks {
				if t.Status != api.Ready {
					placedBefore = true
				}
			}
			if placedBefore {
				// Placed but never deployed (the jobmanager stopped mid-way):
				// place it again from scratch.
				requeue = append(requeue, j.Name)
				continue
			}
			m.enqueue(j)
			continue
		}
		for _, t := range j.Info.Tasks {
			if t.Status.Final() || t.Status == api.Ready || t.Node == "" {
				continue
			}
			live[t.ContainerName] = true
			if _, ok := m.cluster.Worker(t.Node); !ok {
				continue
			}
			cores, err := api.ParseCpuset(t.CpusetCpus)
			if err != nil {
				continue
			}
			mem, _ := api.ParseMem(t.MemLimit)
			if t.MemLimit == "" {
				mem = 0
			}
			if err := m.cluster.Allocate(t.ContainerName, t.Node, cores, mem); err == nil {
				m.touched[t.Node] = true
			}
		}
	}
	// A queued job that is no longer Ready (cancelled, and the notification
	// lost) leaves the queue.
	for name := range m.queue {
		if !ready[name] {
			delete(m.queue, name)
			m.dirty = true
		}
	}
	for name := range m.stopped {
		if !listed[name] { // ended
			delete(m.stopped, name)
		}
	}
	for _, v := range m.cluster.Workers() {
		for _, task := range v.Busy {
			if !live[task] && !strings.HasSuffix(task, "#moving") {
				m.release(task)
			}
		}
	}
	if len(requeue) > 0 {
		reset, err := m.st.UpdateJobs(ctx, requeue, func(j *api.Job) error {
			if j.Status != api.Ready {
				return errors.New("moved on")
			}
			for _, t := range j.Info.Tasks {
				if t.Status == api.Scheduled {
					t.Status = api.Ready
					if t.Node != "" && t.CpusetCpus != "" && j.Strategy != "no-scheduler" {
						t.Node, t.CpusetCpus = "", ""
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, j := range reset {
			m.enqueue(j)
		}
	}
	if len(m.touched) > 0 {
		m.writeWorkers(ctx)
	}
	return nil
}

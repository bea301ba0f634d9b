package jobmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
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
	// JobsChangedSince is the change feed: the jobs written after sequence
	// number after, in write order, and the number to ask from next time;
	// with after < 0, only the current head.
	JobsChangedSince(ctx context.Context, after int64, limit int) ([]*api.Job, int64, error)
}

// Dispatcher deploys a placed job (every task has its node and cores). j is
// the record the jobmanager has just written (or, for a retry, read again):
// the dispatcher hands it over whole, and the globalmanager deploys it as
// it is, without reading it back. It returns once each task's worker has
// acknowledged its run command, or with an error when the job could not be
// deployed, judged by judgeDeploy (retry.go); it may be called from several
// goroutines at once.
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
	// ResyncInterval is how often the jobs written since the last pass are
	// read back, to catch lost notifications.
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
		DispatchTimeout: 30 * time.Second, WorkerWrite: 2 * time.Second}
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
	events   chan loopEvent

	// owned by Run
	core  *Core // the allocations and the strategy (core.go)
	qopts placement.QueueOptions
	sem   chan struct{} // bounds the deployments at once
	dirty bool
	wg    sync.WaitGroup // dispatches and stops in flight, joined by Run

	synced       bool      // the first, full resync is done
	passes       int       // resync passes begun
	nextRound    time.Time // rounds are spaced (see Run)
	cursor       int64     // change feed position of the next resync
	workersStale bool      // a worker changed: re-read them
	workersRead  time.Time // when they were last read
	registering  bool      // WriteAllocations effects are held for the burst's write (see held)
	held         heldWrites

	mu    sync.Mutex // guards stats
	stats api.SchedulerStats
}

// loopEvent is what reaches the Run goroutine; its concrete types follow.
type loopEvent interface{ loopEvent() }

type (
	jobsSubmitted struct {
		names []string
		at    time.Time // when they were announced (see api.Gaps)
	}
	tasksDone      struct{ tasks []api.TaskRef }
	workersChanged struct{}
	strategySwitch struct {
		name  string
		reply chan error
	}
	// loopCall runs fn on the loop and sends its error to reply.
	loopCall struct {
		fn    func() error
		reply chan error
	}
	// redeployDue: a job's retry delay is over.
	redeployDue struct{ job *api.Job }
	// deployResult: one deployment attempt returned.
	deployResult struct {
		job *api.Job
		err error
	}
	// workerRegistered: the globalmanager asks for a registered worker's
	// size and allocation (see WorkerRegistered).
	workerRegistered struct {
		size  api.WorkerSize
		reply chan error
	}
)

func (jobsSubmitted) loopEvent()    {}
func (tasksDone) loopEvent()        {}
func (workersChanged) loopEvent()   {}
func (strategySwitch) loopEvent()   {}
func (loopCall) loopEvent()         {}
func (redeployDue) loopEvent()      {}
func (deployResult) loopEvent()     {}
func (workerRegistered) loopEvent() {}

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
			RoundGaps:      api.NewGaps(),
		},
		cfg: cfg, st: st, dispatch: d, log: cfg.Logger,
		events: make(chan loopEvent, 4096),
		core:   NewCore(s, cfg.SortBatch),
		qopts:  placement.QueueOptions{Policy: pol, MaxWait: cfg.MaxWait},
		sem:    make(chan struct{}, cfg.Dispatchers),
	}, nil
}

// Stats returns a snapshot of the counters.
func (m *Manager) Stats() api.SchedulerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.RoundSeconds = s.RoundSeconds.Clone()
	s.PlacementDelay = s.PlacementDelay.Clone()
	s.RoundGaps = s.RoundGaps.Clone()
	return s
}

func (m *Manager) send(ctx context.Context, ev loopEvent) error {
	select {
	case m.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ask sends ev, which answers on reply, to the Run goroutine and waits for
// the answer or for ctx to end.
func (m *Manager) ask(ctx context.Context, ev loopEvent, reply <-chan error) error {
	if err := m.send(ctx, ev); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// JobSubmitted tells the jobmanager a new job is in the store.
func (m *Manager) JobSubmitted(ctx context.Context, names ...string) error {
	return m.send(ctx, jobsSubmitted{names: names, at: m.cfg.Now()})
}

// JobCancelled tells the jobmanager a job was cancelled: it leaves the
// queue and its cores are freed. It returns once the freed cores are
// recorded, so a caller that then reads the workers sees them free.
func (m *Manager) JobCancelled(ctx context.Context, name string) error {
	return m.call(ctx, func() error {
		m.cancelled(ctx, name)
		m.writeWorkers(ctx)
		return nil
	})
}

// TasksDone tells the jobmanager tasks reached a final state.
func (m *Manager) TasksDone(ctx context.Context, tasks []api.TaskRef) error {
	return m.send(ctx, tasksDone{tasks: tasks})
}

// WorkersChanged tells the jobmanager to re-read the workers.
func (m *Manager) WorkersChanged(ctx context.Context) error {
	return m.send(ctx, workersChanged{})
}

// SwitchStrategy changes the placement strategy between rounds; every
// queued job stays queued. An unknown name is refused with the valid ones.
func (m *Manager) SwitchStrategy(ctx context.Context, name string) error {
	if _, err := placement.New(name, placement.Options{}); err != nil {
		return api.Invalid("strategy", "%v", err)
	}
	reply := make(chan error, 1)
	return m.ask(ctx, strategySwitch{name: name, reply: reply}, reply)
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
	sem := m.sem
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
	reasons := time.NewTicker(reasonAfter / 2)
	defer reasons.Stop()
	// Workers are re-read at most every 100 ms however often they change.
	workersDue := time.NewTimer(time.Hour)
	defer workersDue.Stop()
	roundDue := time.NewTimer(time.Hour)
	defer roundDue.Stop()
	// workersWaited is set when workersDue fired: the wait is over even
	// if Config.Now did not move (a test's clock).
	workersWaited := false
	for {
		if m.workersStale {
			if wait := 100*time.Millisecond - m.cfg.Now().Sub(m.workersRead); wait > 0 && !workersWaited {
				workersDue.Reset(wait)
			} else {
				m.workersStale, workersWaited = false, false
				m.workersRead = m.cfg.Now()
				if err := m.syncWorkers(ctx); err != nil && ctx.Err() == nil {
					m.log.Warn("reading workers failed", "err", err)
				}
			}
		}
		if m.dirty {
			// A round costs in proportion to the queue: with thousands of
			// jobs waiting, a round for every burst of events would leave
			// the loop no time for the events themselves (the ends that
			// free the cores), so rounds are spaced by four times the last
			// one's decision time (nothing when the queue is short), at
			// most maxRoundSpacing.
			if wait := m.nextRound.Sub(m.cfg.Now()); wait > 0 {
				roundDue.Reset(wait)
			} else {
				m.round(ctx, wg, sem)
			}
		}
		select {
		case <-roundDue.C:
		case <-workersDue.C:
			workersWaited = m.workersStale
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
			// The allocations of the workers that registered in the
			// burst, in one write, then their answers.
			m.writeHeld(ctx)
		case <-flush.C:
			m.writeWorkers(ctx)
		case <-reasons.C:
			m.writeReasons(ctx, m.cfg.Now())
		case <-tick.C:
			if err := m.resync(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("resync failed", "err", err)
			}
		}
	}
}

func (m *Manager) setStrategyStat() {
	m.mu.Lock()
	m.stats.Strategy = m.core.StrategyName()
	m.mu.Unlock()
}

func (m *Manager) apply(ctx context.Context, ev loopEvent) {
	switch ev := ev.(type) {
	case jobsSubmitted:
		for _, name := range ev.names {
			if m.core.Queued(name) || m.core.InFlight(name) {
				continue
			}
			j, err := m.st.GetJob(ctx, name)
			if err != nil {
				m.log.Warn("submitted job not readable; the resync will retry", "job_id", name, "err", err)
				continue
			}
			m.enqueueSince(ctx, j, ev.at)
		}
	case tasksDone:
		m.tasksDone(ctx, ev.tasks)
	case workersChanged:
		// Coalesced: a thousand workers registering must not mean a
		// thousand reads of every worker (see Run).
		m.workersStale = true
	case strategySwitch:
		r := m.step(ctx, SwitchStrategy{Name: ev.name})
		if r.Err == nil {
			m.setStrategyStat()
			m.log.Info("strategy switched", "strategy", ev.name, "queued", m.core.QueueLen())
		}
		ev.reply <- r.Err
	case loopCall:
		ev.reply <- ev.fn()
	case redeployDue:
		m.redeploy(ctx, ev.job.Name)
	case deployResult:
		m.step(ctx, DeployDone{Job: ev.job, Err: ev.err, Now: m.cfg.Now(), Jitter: rand.Float64()})
	case workerRegistered:
		m.registered(ctx, ev)
	default:
		panic(fmt.Sprintf("jobmanager: loop event %T not handled", ev))
	}
}

// cancelled takes a cancelled job out of the queue and frees its cores.
func (m *Manager) cancelled(ctx context.Context, name string) {
	m.step(ctx, Dequeue{Jobs: []string{name}})
	if j, err := m.st.GetJob(ctx, name); err == nil {
		m.releaseJob(ctx, j)
	}
	m.dirty = true
}

// tasksDone frees the cores of ended tasks, stops the rest of failed
// gangs and restarts the jobs that failed as their policy allows.
func (m *Manager) tasksDone(ctx context.Context, tasks []api.TaskRef) {
	m.step(ctx, TasksEnded{Tasks: tasks})
}

// step runs one event through the core and carries out its effects; it
// returns the core's reply, and a round's outcome when there is one.
func (m *Manager) step(ctx context.Context, ev Event) Reply {
	return m.stepAll(ctx, ev).reply
}

// outcome is what the shell keeps of a step's effects for its caller.
type outcome struct {
	reply   Reply
	placed  Placed
	requeue []string
	err     error // of the task writes (WriteTask, UnplaceJob)
}

func (m *Manager) stepAll(ctx context.Context, ev Event) outcome {
	var o outcome
	for _, e := range m.core.Step(ev) {
		switch e := e.(type) {
		case Reply:
			o.reply = e
		case Placed:
			o.placed = e
		case RequeueJobs:
			o.requeue = append(o.requeue, e.Jobs...)
		case Reschedule:
			m.dirty = true
		case WriteAllocations:
			if m.registering {
				m.held.allocs = append(m.held.allocs, e.Workers...)
				continue
			}
			m.writeAllocations(ctx, e.Workers)
		case WriteTask:
			o.err = errors.Join(o.err, m.writeTask(ctx, e))
		case UnplaceJob:
			o.err = errors.Join(o.err, m.unplaceJob(ctx, e))
		case CoresLost:
			for _, t := range e.Tasks {
				m.log.Info("worker left; task lost its cores", "node_id", e.Worker, "task_id", t)
			}
		case WorkerRefused:
			m.log.Warn("adding worker", "node_id", e.Worker, "err", e.Err)
		case Deploy:
			m.deploy(ctx, e.Job)
		case RetryAt:
			m.retryAt(ctx, e)
		case FailJob:
			m.failRefused(ctx, e.Job, e.Cause)
		case WriteReasons:
			m.writeReasonsNow(ctx, e.Reasons)
		case StopJob:
			m.stopJob(ctx, e.Job, e.Reason)
		case LoseUndelivered:
			m.loseUndelivered(ctx, e.Job)
		case RestartJobs:
			m.restart(ctx, e.Jobs)
		default:
			panic(fmt.Sprintf("jobmanager: core effect %T not handled", e))
		}
	}
	return o
}

// releaseJob frees the cores of every task of j.
func (m *Manager) releaseJob(ctx context.Context, j *api.Job) {
	names := make([]string, 0, len(j.Info.Tasks))
	for _, t := range j.Info.Tasks {
		names = append(names, t.ContainerName)
	}
	m.step(ctx, Release{Tasks: names})
}

// failRefused fails a job whose deployment was refused for good (its cores
// are freed by the core). A task delivered before the refusal is stopped
// by reconciliation.
func (m *Manager) failRefused(ctx context.Context, job *api.Job, cause error) {
	m.log.Warn("deploy refused; failing the job and freeing its cores", "job_id", job.Name, "err", cause)
	now := m.now()
	_, err := m.st.UpdateJob(ctx, job.Name, func(j *api.Job) error {
		j.Finish(api.Failed, "deploy: "+cause.Error(), now)
		return nil
	})
	if err != nil {
		m.log.Warn("marking job failed", "job_id", job.Name, "err", err)
	}
}

// stopJob carries out a StopJob effect: the rest of a job one of whose
// tasks failed is stopped (a job is a gang, and its other tasks would hold
// cores for nothing). The globalmanager skips tasks that already ended.
func (m *Manager) stopJob(ctx context.Context, name, reason string) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		sctx, cancel := context.WithTimeout(ctx, m.cfg.DispatchTimeout)
		defer cancel()
		if err := m.dispatch.Stop(sctx, name, reason); err != nil {
			m.log.Warn("stopping the rest of a failed job", "job_id", name, "err", err)
		}
	}()
}

func (m *Manager) now() float64 { return unixSeconds(m.cfg.Now()) }

func (m *Manager) enqueue(ctx context.Context, j *api.Job) {
	m.enqueueSince(ctx, j, m.cfg.Now())
}

// enqueueSince queues j, which has waited for a round since at (see
// SchedulerStats.RoundGaps).
func (m *Manager) enqueueSince(ctx context.Context, j *api.Job, at time.Time) {
	m.step(ctx, Enqueue{Job: j, Now: m.cfg.Now()})
	if m.core.Queued(j.Name) {
		m.mu.Lock()
		m.stats.RoundGaps.Waiting(unixSeconds(at))
		m.mu.Unlock()
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// ToPlacement is placement's view of a job, the seq'th to arrive: its
// tasks' cores and memory, the client's pins, and the earliest of its
// tasks' deadlines. It is pure; `rswarm simulate` queues jobs through it too.
func ToPlacement(j *api.Job, seq uint64) placement.Job {
	pj := placement.Job{Name: j.Name, Priority: j.Priority, Submitted: j.SubmitTime, Seq: seq,
		Tasks: make([]placement.Task, 0, len(j.Info.Tasks))}
	for _, t := range j.Info.Tasks {
		pt := placement.Task{Name: t.ContainerName, Cores: t.ReqCores, Mem: taskMem(t)}
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

// taskMem is the memory a task asks for, in bytes; 0 (no constraint) when
// it sets no mem_limit.
func taskMem(t *api.Task) int64 {
	if t.MemLimit == "" {
		return 0
	}
	mem, _ := api.ParseMem(t.MemLimit)
	return mem
}

// maxRoundSpacing caps the pause after a round. The decision time is read
// on the wall clock, so a process starved of CPU by other work sees a
// round of milliseconds take seconds; spaced by four times that, the next
// round came up to 10 s later with cores free and jobs waiting (the stall
// in the README). A quarter of a second still leaves the loop most of its
// time for events when rounds are truly slow.
const maxRoundSpacing = 250 * time.Millisecond

// roundSpacing is how long after a round's start the next may run, given
// how long the round took to decide.
func roundSpacing(elapsed time.Duration) time.Duration {
	return min(4*elapsed, maxRoundSpacing)
}

// round runs the strategy over the queue, persists the decisions and the
// waiting reasons, and starts the deployments.
func (m *Manager) round(ctx context.Context, wg *sync.WaitGroup, sem chan struct{}) {
	m.dirty = false
	start := m.cfg.Now()
	now := m.now()
	if m.core.QueueLen() > 0 {
		// Jobs queued otherwise than by a submission (recovery, resync,
		// restart) wait from this round at the latest.
		m.mu.Lock()
		m.stats.RoundGaps.Waiting(unixSeconds(start))
		m.mu.Unlock()
	}
	out := m.stepAll(ctx, Round{Now: now, Opts: m.qopts}).placed
	placed := out.Decisions
	elapsed := m.cfg.Now().Sub(start)
	m.nextRound = start.Add(roundSpacing(elapsed))

	if len(placed) > 0 {
		m.commit(ctx, placed, wg, sem)
	}
	free, total := m.core.FreeCores()
	m.mu.Lock()
	m.stats.Rounds++
	m.stats.Placed += uint64(len(placed))
	m.stats.Queued = m.core.QueueLen()
	m.stats.RoundSeconds.Observe(elapsed.Seconds())
	for _, q := range out.Submitted {
		if q > 0 {
			m.stats.PlacementDelay.Observe(max(0, now-q))
		}
	}
	m.stats.FreeCores, m.stats.TotalCores = free, total
	// Rounds are timed from their starts: a round held up in its store
	// write shows as the gap to the next.
	m.stats.RoundGaps.Served(unixSeconds(start), m.stats.Queued > 0)
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
	}
	strategy := m.core.StrategyName()
	placedAt := m.now()
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
		j.PlaceTime = placedAt
		return nil
	})
	if err != nil {
		m.log.Warn("writing placements failed; freeing their cores", "err", err)
	}
	m.step(ctx, PlacementsWritten{Placed: placed, Written: written})
}

// deploy carries out a Deploy effect: the job goes to the dispatcher in
// the background; the outcome comes back to the loop as a deployResult.
func (m *Manager) deploy(ctx context.Context, j *api.Job) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case m.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-m.sem }()
		dctx, cancel := context.WithTimeout(ctx, m.cfg.DispatchTimeout)
		err := m.dispatch.Deploy(dctx, j)
		cancel()
		if ctx.Err() != nil {
			return
		}
		_ = m.send(ctx, deployResult{job: j, err: err})
	}()
}

// retryAt carries out a RetryAt effect: the job is read again and sent at
// r.At (see redeploy).
func (m *Manager) retryAt(ctx context.Context, r RetryAt) {
	j := r.Job
	d := max(0, r.At.Sub(m.cfg.Now()))
	m.log.Warn("deploy not delivered; retrying", "job_id", j.Name, "attempt", r.Attempt, "retry_in", d, "err", r.Cause)
	m.mu.Lock()
	m.stats.DeployRetries++
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			_ = m.send(ctx, redeployDue{job: j})
		case <-ctx.Done():
		}
	}()
}

// redeploy sends a job again after a failed attempt, from its current
// record: not at all when it was cancelled or ended meanwhile, placed anew
// when one of its workers is gone (see judgeRedeploy).
func (m *Manager) redeploy(ctx context.Context, name string) {
	j, err := m.st.GetJob(ctx, name)
	o := m.stepAll(ctx, RedeployRead{Name: name, Job: j, Err: err, Now: m.cfg.Now(), Jitter: rand.Float64()})
	if len(o.requeue) > 0 {
		m.log.Info("deploy target gone; placing the job again", "job_id", name)
		if err := m.requeue(ctx, o.requeue); err != nil {
			m.log.Warn("re-queueing a job; the resync will retry", "job_id", name, "err", err)
		}
	}
}

// loseUndelivered fails, as lost with their worker, the tasks of a job
// that never reached a worker now down, while its other tasks run: the job
// then fails as a gang and its restart policy applies.
func (m *Manager) loseUndelivered(ctx context.Context, j *api.Job) {
	now := m.now()
	var refs []api.TaskRef
	written, err := m.st.UpdateJob(ctx, j.Name, func(sj *api.Job) error {
		refs = refs[:0]
		for _, t := range sj.Info.Tasks {
			if t.Status != api.Scheduled {
				continue
			}
			if m.core.Up(t.Node) {
				continue
			}
			st := api.TaskStatus{Node: t.Node, Job: sj.Name, Task: t.ContainerName, State: api.Failed, Time: now, Attempt: sj.Restarts,
				Error: fmt.Sprintf("%s: %s went down before the task reached it", api.WorkerLost, t.Node)}
			if _, err := sj.ApplyStatus(st); err != nil {
				return err
			}
			refs = append(refs, api.TaskRef{Job: sj.Name, Task: t.ContainerName, Node: t.Node, State: api.Failed})
		}
		return nil
	})
	if err != nil {
		m.log.Warn("failing the undelivered tasks of a job; the next retry will", "job_id", j.Name, "err", err)
		return
	}
	for i := range refs {
		refs[i].JobEnded = written.Status.Final()
	}
	m.tasksDone(ctx, refs)
}

// Waiting reasons are for people: a job that waits a moment does not need
// one, and a reason that changes every round (the free cores move with
// every task that ends) must not turn ten thousand waiting jobs into ten
// thousand writes per round. So a reason is written once the job has waited
// reasonAfter, rewritten at most every reasonEvery while it changes, and at
// most reasonBudget reasons go out per pass, those never written first.
const (
	reasonAfter  = time.Second
	reasonEvery  = 10 * time.Second
	reasonBudget = 50
)

// writeReasons writes the waiting reasons that are due (see reasonAfter).
func (m *Manager) writeReasons(ctx context.Context, now time.Time) {
	m.step(ctx, ReasonsDue{Now: now})
}

// writeReasonsNow carries out a WriteReasons effect.
func (m *Manager) writeReasonsNow(ctx context.Context, reasons map[string]string) {
	names := slices.Sorted(maps.Keys(reasons))
	_, err := m.st.UpdateJobs(ctx, names, func(j *api.Job) error {
		if j.Status != api.Ready {
			return errors.New("no longer waiting")
		}
		j.WaitingReason = reasons[j.Name]
		return nil
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("writing waiting reasons", "jobs", len(names), "err", err)
	}
}

// writeWorkers persists, in one batch, the allocation of every worker
// touched since the last write.
func (m *Manager) writeWorkers(ctx context.Context) { m.step(ctx, Flush{}) }

// writeAllocations carries out a WriteAllocations effect.
func (m *Manager) writeAllocations(ctx context.Context, allocs []Allocation) {
	if err := m.writeAllocationsErr(ctx, allocs); err != nil && ctx.Err() == nil {
		m.log.Warn("writing worker allocations", "workers", len(allocs), "err", err)
	}
}

// writeAllocationsErr writes allocations (one per worker) in one batch.
func (m *Manager) writeAllocationsErr(ctx context.Context, allocs []Allocation) error {
	byID := make(map[string]Allocation, len(allocs))
	ids := make([]string, 0, len(allocs))
	for _, a := range allocs {
		byID[a.Worker] = a
		ids = append(ids, a.Worker)
	}
	_, err := m.st.UpdateWorkers(ctx, ids, func(w *api.Worker) error {
		a := byID[w.ID]
		w.SetAllocation(a.Busy, a.Mem)
		return nil
	})
	return err
}

// syncWorkers brings the cluster view in line with the registered workers.
func (m *Manager) syncWorkers(ctx context.Context) error {
	ws, err := m.st.ListWorkers(ctx)
	if err != nil {
		return err
	}
	m.step(ctx, WorkersListed{Workers: ws})
	return nil
}

// resync brings the jobmanager in line with the store, to catch what a lost
// notification would otherwise leave behind. The first pass (at start)
// reads every live job: it re-creates the allocations of placed tasks,
// queues Ready jobs, and frees cores no live task holds. Later passes read
// only the jobs written since the pass before, from the store's change
// feed, so that a pass costs what changed rather than what is live (with
// ten thousand jobs waiting, re-reading them all every two seconds was
// most of the jobmanager's work).
func (m *Manager) resync(ctx context.Context) error {
	full := !m.synced
	// Workers announce their changes (WorkersChanged); re-reading them all
	// is only a safety net, so later passes do it one time in five.
	if m.passes++; full || m.passes%5 == 0 {
		if err := m.syncWorkers(ctx); err != nil {
			return err
		}
	}
	var jobs []*api.Job
	if full {
		_, head, err := m.st.JobsChangedSince(ctx, -1, 0)
		if err != nil {
			return err
		}
		if jobs, err = m.st.ListJobs(ctx, api.JobFilter{Status: []api.State{api.Ready, api.Deployed, api.Running}}); err != nil {
			return err
		}
		// Jobs written between the two reads come again from the feed:
		// reconciling a job twice changes nothing.
		m.cursor = head
		// A job that failed by losing a worker while this process was
		// down is not live: the recent writes are read for those to restart.
		recent, err := m.recentlyFailed(ctx, head)
		if err != nil {
			return err
		}
		jobs = append(jobs, recent...)
	} else {
		for {
			page, next, err := m.st.JobsChangedSince(ctx, m.cursor, changesPage)
			if err != nil {
				return err
			}
			m.cursor = next
			jobs = append(jobs, page...)
			if len(page) < changesPage {
				break
			}
		}
	}
	var requeue, restart []string
	for _, j := range jobs {
		requeue = append(requeue, m.stepAll(ctx, JobRead{Job: j, Now: m.cfg.Now()}).requeue...)
		if j.CanRestart() {
			restart = append(restart, j.Name)
		}
	}
	if len(requeue) > 0 {
		if err := m.requeue(ctx, requeue); err != nil {
			return err
		}
	}
	if full {
		m.dropUnlisted(ctx, jobs)
		m.synced = true
	}
	if len(restart) > 0 {
		m.restart(ctx, restart) // after dropUnlisted, which knows them as Failed
	}
	if full {
		m.writeWorkers(ctx) // what recovery found, at once
	}
	return nil
}

// changesPage is how many changed jobs one read of the change feed returns.
const changesPage = 1000

// restartLookback is how many of the store's last write transactions the
// first pass reads for jobs to restart (see recentlyFailed).
const restartLookback = 10000

// recentlyFailed returns the jobs among the last restartLookback writes
// before head that their restart policy restarts.
func (m *Manager) recentlyFailed(ctx context.Context, head int64) ([]*api.Job, error) {
	var out []*api.Job
	for at := max(0, head-restartLookback); at < head; {
		page, next, err := m.st.JobsChangedSince(ctx, at, changesPage)
		if err != nil {
			return nil, err
		}
		for _, j := range page {
			if j.CanRestart() {
				out = append(out, j)
			}
		}
		if len(page) < changesPage || next <= at {
			break
		}
		at = next
	}
	return out, nil
}

// restart puts the jobs that failed by losing a worker back in the queue,
// as their restart policy allows (api.Job.CanRestart). Their tasks ended,
// so their cores are free already.
func (m *Manager) restart(ctx context.Context, names []string) {
	written, err := m.st.UpdateJobs(ctx, names, func(j *api.Job) error {
		if !j.CanRestart() {
			return errors.New("not restartable")
		}
		j.Requeue()
		return nil
	})
	if err != nil && ctx.Err() == nil && len(written) == 0 {
		m.log.Debug("restarting jobs", "jobs", len(names), "err", err)
	}
	if len(written) > 0 {
		// Discovery marks a lost worker down before it fails its tasks:
		// read the workers now, lest the restarted job go back to it.
		m.workersStale, m.workersRead = false, m.cfg.Now()
		if err := m.syncWorkers(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("reading workers failed", "err", err)
		}
	}
	for _, j := range written {
		m.releaseJob(ctx, j)
		m.step(ctx, ForgetStops{Jobs: []string{j.Name}})
		m.log.Info("job lost a worker: restarting it", "job_id", j.Name, "restart", j.Restarts, "policy", j.Restart)
		m.mu.Lock()
		m.stats.Restarts++
		m.mu.Unlock()
		m.enqueue(ctx, j)
	}
}

// dropUnlisted, after the full pass over every live job, drops what no
// live job accounts for: queued jobs that are no longer Ready, stop marks
// of jobs that ended, and cores held by tasks that are not live.
func (m *Manager) dropUnlisted(ctx context.Context, jobs []*api.Job) {
	live := map[string]bool{}
	ready, listed := map[string]bool{}, map[string]bool{}
	for _, j := range jobs {
		listed[j.Name] = true
		if j.Status == api.Ready {
			ready[j.Name] = true
		}
		for _, t := range j.Info.Tasks {
			placed := j.Status != api.Ready && !t.Status.Final() && t.Status != api.Ready && t.Node != ""
			if m.core.InFlight(j.Name) || placed {
				live[t.ContainerName] = true
			}
		}
	}
	m.step(ctx, QueueOnly{Ready: ready})
	m.step(ctx, StopsOnly{Listed: listed})
	m.step(ctx, KeepOnly{Live: live})
}

// requeue resets jobs that were placed but never deployed to Ready, with
// their placements forgotten (pins kept), and queues them again.
func (m *Manager) requeue(ctx context.Context, names []string) error {
	reset, err := m.st.UpdateJobs(ctx, names, func(j *api.Job) error {
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
		m.enqueue(ctx, j)
	}
	return nil
}

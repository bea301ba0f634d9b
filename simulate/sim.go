package simulate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/jobmanager"
	"github.com/rswarm/rswarm/placement"
	"github.com/rswarm/rswarm/report"
	"github.com/rswarm/rswarm/stressclient"
	"github.com/rswarm/rswarm/worker"
)

// Source gives the workload's arrivals in order of their offsets:
// a *stressclient.Stream, or a Replay of a real run's jobs.csv.
type Source interface {
	Next() (stressclient.Arrival, bool)
}

// DefaultEpoch is the epoch second virtual time 0 stands for in jobs.csv
// (2026-01-01T00:00:00Z): a fixed instant, so that runs compare byte for byte.
const DefaultEpoch = 1767225600

// Config is one simulated run: the cluster, the strategy and queue policy,
// the delays the real system adds around a decision, and the seed.
type Config struct {
	Workers int   // identical workers, named w000001...
	Cores   int   // per worker
	Memory  int64 // bytes per worker
	// Strategy is a placement strategy name (placement.Names), built with
	// Options; Queue is the policy and backfill bound of every round.
	Strategy string
	Options  placement.Options
	Queue    placement.QueueOptions
	// TaskDuration, when set, draws each task's running time; otherwise a
	// task runs as a simulated worker runs it (worker.SimDuration: the
	// shape's duration, else the N of "sleep N").
	TaskDuration *Dist
	// DeployDelay is drawn per job, from its decision to the dispatch of its
	// tasks; StartDelay per task, from dispatch to running; ReleaseDelay per
	// task, from its end to the return of its cores to the jobmanager.
	DeployDelay, StartDelay, ReleaseDelay Dist
	// RoundInterval, when positive, spaces rounds by at least that many
	// virtual seconds (the jobmanager spaces them under load); 0 runs a
	// round at every instant with news.
	RoundInterval float64
	// FailureMTBF, when positive, is the mean virtual seconds between
	// failures of one worker (failures are a Poisson process over the
	// cluster, each hitting a worker drawn uniformly; one that is down
	// already is spared). A failed worker takes no task until it is
	// repaired, after a time drawn from Repair (the zero Dist: never);
	// the jobs with a task on it fail, as the jobmanager fails a job one
	// of whose tasks failed, and give back all their cores at once.
	FailureMTBF float64
	Repair      Dist
	Seed        uint64
	// Epoch is the epoch second of virtual time 0 in rows (0: DefaultEpoch).
	Epoch float64
	// Session is the session column of the rows (default: the strategy).
	Session string
	// Bin is the width in seconds of the utilisation series (0: 60 s).
	Bin float64
}

// Progress is reported about once a second of wall time.
type Progress struct {
	Strategy string
	Virtual  float64 // virtual seconds reached
	Events   uint64
	Jobs     uint64 // jobs arrived
	Queued   int
	Wall     time.Duration
}

// Result is what one run measured.
type Result struct {
	Strategy string
	Arrived  int // jobs that arrived
	Done     int // jobs that ended (Down)
	Failed   int // jobs that failed with a worker
	Failures int // worker failures
	Queued   int // jobs left in the queue: no worker could ever take them
	// Waiting, Execution and Total are over the jobs that ended: the
	// percentiles from an HDR histogram (three significant digits), the
	// mean and maximum exact.
	Waiting, Execution, Total report.Stats
	// Hists are the histograms behind them, in microseconds, for CDFs.
	Hists [3]*hdrhistogram.Histogram
	// LongestWait is the longest waiting time, of job LongestJob; Reason
	// is what the last round that left it waiting said (empty when no
	// round did: its wait was the delays).
	LongestWait float64
	LongestJob  string
	Reason      string
	// Util is the mean fraction of cores allocated in each bin of Bin
	// seconds from virtual time 0; Mean over the run, Peak the largest bin.
	Util       []float64
	Bin        float64
	Mean, Peak float64
	// Heat is the share of cores held per group of consecutive workers
	// (rows, at most HeatRows), sampled at the start of every Bin: the
	// heat map of the report.
	Heat    *report.Grid
	Events  uint64
	Rounds  uint64
	Virtual float64 // virtual seconds at the last event
	Wall    time.Duration
	// CPU is the process's user and system time over the run (garbage
	// collection included): on a shared machine it says more than Wall.
	CPU time.Duration
}

type jobRec struct {
	name        string
	seq         uint64
	submit      float64
	deploy      float64
	start, end  float64
	left        int32
	cores       int32
	tasks       []int32
	reason      string
	waitedRound bool
	failed      bool
}

type taskRec struct {
	name    string // "t" and its slot: unique among the tasks in the system
	job     int32
	handle  placement.Handle // its record in the cluster once placed
	run     float64          // seconds it runs
	start   float64          // delay from dispatch to running
	release float64          // delay from its end to its cores' return
	// relT and relSeq are its release event's time and order, once placed:
	// a worker failure releases the cores of the tasks whose release event
	// comes after it (the release path itself never reads the task).
	relT   float64
	relSeq uint64
}

// Streams of a seed, one per kind of draw.
const (
	streamDurations = 0x647572 // "dur"
	streamDelays    = 0x646c79 // "dly"
	streamFailures  = 0x66616c // "fal"
)

type sim struct {
	cfg  Config
	src  Source
	rows func(report.Row) error
	// core is the jobmanager's core: it holds the queue and the cluster and
	// makes every decision, driven here with virtual time.
	core    *jobmanager.Core
	workers []*api.Worker // as the store lists them, for WorkersListed
	relBuf  []placement.Handle
	bySeq   []int32 // the job record of each arrival (by Seq), while it waits
	ev      *calendar
	now     float64
	evSeq   uint64 // the order of the event being handled

	pending    stressclient.Arrival
	hasPending bool
	lastAt     float64

	jobs  []jobRec
	freeJ []int32
	tasks []taskRec
	freeT map[int][]int32 // blocks of task slots given back, by size: their first slot

	durRng, delayRng, failRng *rand.Rand
	workerIDs                 []string
	running                   int // tasks placed whose cores are not back
	failPending               bool
	scratch                   api.Job
	scratchTasks              []api.Task
	memStr                    string
	memMB                     int
	nameBuf                   []byte

	dirty     bool
	nextRound float64
	roundDue  bool

	total  int
	heat   heatMap
	res    *Result
	sums   [3]float64
	maxes  [3]float64
	bins   []float64 // core-seconds allocated per bin
	seq    uint64
	errRow error
}

// Run simulates the workload of src on cfg's cluster and returns what it
// measured. Each ended job is passed to rows (which may be nil), in the
// order jobs end; progress (which may be nil) is called about once a
// second of wall time.
// It stops early, with ctx's error, when ctx is done.
func Run(ctx context.Context, cfg Config, src Source, rows func(report.Row) error, progress func(Progress)) (*Result, error) {
	if cfg.Workers < 1 {
		return nil, invalid("workers must be at least 1, got %d", cfg.Workers)
	}
	if cfg.Cores < 1 || cfg.Cores > placement.MaxWorkerCores {
		return nil, invalid("cores per worker must be between 1 and %d, got %d", placement.MaxWorkerCores, cfg.Cores)
	}
	if cfg.Memory < 0 {
		return nil, invalid("memory per worker must not be negative")
	}
	strategy, err := placement.New(cfg.Strategy, cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	core := jobmanager.NewCore(strategy, cfg.Options.SortBatch)
	core.Untracked() // no store here to write allocations to
	if cfg.Epoch == 0 {
		cfg.Epoch = DefaultEpoch
	}
	if cfg.Bin <= 0 {
		cfg.Bin = 60
	}
	if cfg.Session == "" {
		cfg.Session = cfg.Strategy
	}
	s := &sim{
		cfg: cfg, src: src, rows: rows, core: core,
		durRng:   rand.New(rand.NewPCG(cfg.Seed, streamDurations)),
		delayRng: rand.New(rand.NewPCG(cfg.Seed, streamDelays)),
		failRng:  rand.New(rand.NewPCG(cfg.Seed, streamFailures)),
		res:      &Result{Strategy: cfg.Strategy, Bin: cfg.Bin},
		memMB:    -1,
		freeT:    map[int][]int32{},
		ev:       newCalendar(1),
	}
	for k := range s.res.Hists {
		s.res.Hists[k] = hdrhistogram.New(1, 1e13, 3)
	}
	width := len(strconv.Itoa(cfg.Workers))
	for i := range cfg.Workers {
		id := fmt.Sprintf("w%0*d", width, i+1)
		s.workerIDs = append(s.workerIDs, id)
		s.workers = append(s.workers, &api.Worker{ID: id, Cores: cfg.Cores, MemTotal: cfg.Memory, Status: api.WorkerReady})
	}
	for _, e := range core.Step(jobmanager.WorkersListed{Workers: s.workers}) {
		if r, ok := e.(jobmanager.WorkerRefused); ok {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, r.Err)
		}
	}
	_, s.total = core.FreeCores()
	s.heat = newHeatMap(s.workerIDs, cfg.Cores)
	begin, cpu := time.Now(), cpuTime()
	if err := s.run(ctx, progress, begin); err != nil {
		return nil, err
	}
	s.finish(begin)
	s.res.CPU = cpuTime() - cpu
	return s.res, nil
}

// pull takes the next arrival from the source and schedules it.
func (s *sim) pull() error {
	a, ok := s.src.Next()
	if !ok {
		s.hasPending = false
		return nil
	}
	at := a.Offset.Seconds()
	if at < s.lastAt {
		return invalid("arrival %d at %.6f s comes before the previous one at %.6f s: a source must be in order", a.Seq, at, s.lastAt)
	}
	s.lastAt = at
	s.pending, s.hasPending = a, true
	s.ev.push(at, evArrival, 0)
	return nil
}

func (s *sim) run(ctx context.Context, progress func(Progress), begin time.Time) error {
	if err := s.pull(); err != nil {
		return err
	}
	lastReport, check := begin, uint64(1<<16)
	instants := 0
	for s.ev.len() > 0 {
		t := s.ev.peek().t
		s.advance(t)
		// Every event of this instant, then one round.
		for s.ev.len() > 0 && s.ev.peek().t == t {
			e := s.ev.pop()
			if e.kind != evEnd { // a job's end is bookkeeping of its tasks' events
				s.res.Events++
			}
			s.evSeq = e.seq
			switch e.kind {
			case evArrival:
				if err := s.arrive(); err != nil {
					return err
				}
				if err := s.pull(); err != nil {
					return err
				}
			case evRelease:
				s.release(e.id, placement.Handle(e.h))
			case evFree:
				s.relBuf = append(s.relBuf, placement.Handle(e.h))
				s.running--
				s.dirty = true
			case evEnd:
				s.end(e.id)
			case evRound:
				s.roundDue = false
			case evFailure:
				s.failPending = false
				s.fail(int(e.id))
			case evRepair:
				s.flushReleases()
				s.workers[e.id].Status = api.WorkerReady
				s.core.Step(jobmanager.WorkersListed{Workers: s.workers})
				s.dirty = true
			}
		}
		s.flushReleases()
		if s.errRow != nil {
			return s.errRow
		}
		// Failures go on while there is work: arrivals to come or tasks
		// holding cores.
		if s.cfg.FailureMTBF > 0 && !s.failPending && (s.hasPending || s.running > 0) {
			s.failPending = true
			next := s.now + s.failRng.ExpFloat64()*s.cfg.FailureMTBF/float64(s.cfg.Workers)
			s.ev.push(next, evFailure, int32(s.failRng.IntN(s.cfg.Workers)))
		}
		if s.dirty && s.core.QueueLen() > 0 {
			if t >= s.nextRound {
				s.round()
			} else if !s.roundDue {
				s.roundDue = true
				s.ev.push(s.nextRound, evRound, 0)
			}
		}
		// The clock and the context are read every 65,536 events, or every
		// 64 instants when rounds are long (a queue of thousands).
		if instants++; s.res.Events < check && (s.core.QueueLen() < 1024 || instants&63 != 0) {
			continue
		}
		check = s.res.Events + 1<<16
		if err := ctx.Err(); err != nil {
			return err
		}
		if now := time.Now(); progress != nil && now.Sub(lastReport) >= time.Second {
			lastReport = now
			progress(Progress{Strategy: s.cfg.Strategy, Virtual: s.now, Events: s.res.Events,
				Jobs: uint64(s.res.Arrived), Queued: s.core.QueueLen(), Wall: now.Sub(begin)})
		}
	}
	if progress != nil {
		progress(Progress{Strategy: s.cfg.Strategy, Virtual: s.now, Events: s.res.Events,
			Jobs: uint64(s.res.Arrived), Queued: s.core.QueueLen(), Wall: time.Since(begin)})
	}
	return nil
}

// advance moves the clock to t, adding the cores allocated meanwhile to
// the utilisation bins.
func (s *sim) advance(t float64) {
	if t <= s.now {
		return
	}
	s.heat.sample(s, t)
	free, total := s.core.FreeCores()
	if busy := float64(total - free); busy > 0 {
		bin := s.cfg.Bin
		a := s.now
		for a < t {
			k := int(a / bin)
			b := min(t, float64(k+1)*bin)
			for len(s.bins) <= k {
				s.bins = append(s.bins, 0)
			}
			s.bins[k] += busy * (b - a)
			a = b
		}
	}
	s.now = t
}

func (s *sim) newJob() int32 {
	if n := len(s.freeJ); n > 0 {
		j := s.freeJ[n-1]
		s.freeJ = s.freeJ[:n-1]
		return j
	}
	s.jobs = append(s.jobs, jobRec{})
	return int32(len(s.jobs) - 1)
}

// newTasks returns the first of n consecutive task slots: a job's tasks
// side by side, so that starting it reads one or two cache lines, not one
// per task. A job's block goes back whole when it ends (freeJob).
func (s *sim) newTasks(n int) int32 {
	if free := s.freeT[n]; len(free) > 0 {
		t := free[len(free)-1]
		s.freeT[n] = free[:len(free)-1]
		return t
	}
	first := int32(len(s.tasks))
	s.tasks = append(s.tasks, make([]taskRec, n)...)
	return first
}

// arrive queues the pending arrival, drawing its durations and delays.
func (s *sim) arrive() error {
	a := &s.pending
	s.seq++
	s.res.Arrived++
	ji := s.newJob()
	j := &s.jobs[ji]
	j.name = "job" + strconv.FormatUint(s.seq, 10)
	j.seq = s.seq
	j.submit = s.now
	j.deploy = s.cfg.DeployDelay.Draw(s.delayRng)
	j.start, j.end = math.Inf(1), 0
	j.left = int32(a.Shape.Tasks)
	j.cores = int32(a.Shape.Tasks * a.Shape.Cores)
	j.tasks = j.tasks[:0]
	j.reason, j.waitedRound, j.failed = "", false, false

	// The job as the jobmanager reads it from the store, and placement's
	// view of it through the jobmanager's own conversion.
	if a.Shape.MemMB != s.memMB {
		s.memMB, s.memStr = a.Shape.MemMB, ""
		if a.Shape.MemMB > 0 {
			s.memStr = strconv.Itoa(a.Shape.MemMB) + "m"
		}
	}
	var base float64
	if s.cfg.TaskDuration == nil {
		base = worker.SimDuration(&api.Task{Duration: a.Shape.Duration, Command: a.Shape.Command}).Seconds()
	}
	for len(s.scratchTasks) < a.Shape.Tasks {
		s.scratchTasks = append(s.scratchTasks, api.Task{})
	}
	s.scratch = api.Job{Name: j.name, Status: api.Ready, SubmitTime: s.cfg.Epoch + s.now}
	s.scratch.Info.Tasks = s.scratch.Info.Tasks[:0]
	first := s.newTasks(a.Shape.Tasks)
	for k := 0; k < a.Shape.Tasks; k++ {
		ti := first + int32(k)
		t := &s.tasks[ti]
		// Its name is its job's and its index ("job12-3"): unique while
		// it holds cores, whatever slot it has (a job's slots go back at
		// its start when no worker fails), and it leads back to its job.
		s.nameBuf = strconv.AppendInt(append(append(s.nameBuf[:0], j.name...), '-'), int64(k), 10)
		t.name = string(s.nameBuf)
		t.job = ji
		t.handle = -1
		t.run = base
		if s.cfg.TaskDuration != nil {
			t.run = s.cfg.TaskDuration.Draw(s.durRng)
		}
		t.start = s.cfg.StartDelay.Draw(s.delayRng)
		t.release = s.cfg.ReleaseDelay.Draw(s.delayRng)
		j = &s.jobs[ji]
		j.tasks = append(j.tasks, ti)
		st := &s.scratchTasks[k]
		*st = api.Task{ContainerName: t.name, ReqCores: a.Shape.Cores, MemLimit: s.memStr, Status: api.Ready, Deadline: float64(a.Shape.Deadline)}
		s.scratch.Info.Tasks = append(s.scratch.Info.Tasks, st)
	}
	for uint64(len(s.bySeq)) <= s.seq {
		s.bySeq = append(s.bySeq, -1)
	}
	s.bySeq[s.seq] = ji
	sec := math.Floor(s.cfg.Epoch + s.now)
	at := time.Unix(int64(sec), int64((s.cfg.Epoch+s.now-sec)*1e9))
	if stepReply(s.core.Step(jobmanager.Enqueue{Job: &s.scratch, Now: at})).OK {
		s.dirty = true
	}
	return nil
}

// stepReply returns the Reply among a step's effects (the zero Reply if none).
func stepReply(effects []jobmanager.Effect) jobmanager.Reply {
	for _, e := range effects {
		if r, ok := e.(jobmanager.Reply); ok {
			return r
		}
	}
	return jobmanager.Reply{}
}

// flushReleases hands the core the cores of the tasks that ended at this
// instant.
func (s *sim) flushReleases() {
	if len(s.relBuf) > 0 {
		s.core.Step(jobmanager.ReleaseHandles{Handles: s.relBuf})
		s.relBuf = s.relBuf[:0]
	}
}

// round has the jobmanager's core run a round at this virtual instant and
// starts the jobs it placed.
func (s *sim) round() {
	s.dirty = false
	s.res.Rounds++
	if s.cfg.RoundInterval > 0 {
		s.nextRound = s.now + s.cfg.RoundInterval
	}
	for _, e := range s.core.Step(jobmanager.Round{Now: s.cfg.Epoch + s.now, Opts: s.cfg.Queue}) {
		p, ok := e.(jobmanager.Placed)
		if !ok {
			continue
		}
		for i, d := range p.Decisions {
			seq, _ := strconv.ParseUint(d.Job[len("job"):], 10, 64)
			ji := s.bySeq[seq]
			if p.Waited[i] != "" {
				s.jobs[ji].reason, s.jobs[ji].waitedRound = p.Waited[i], true
			}
			s.start(ji, d.Assignments)
		}
	}
}

// start dispatches a placed job: each task runs after the job's deploy
// delay and its own start delay, and gives its cores back after its run
// and its release delay.
func (s *sim) start(ji int32, as []placement.Assignment) {
	j := &s.jobs[ji]
	last := math.Inf(-1)
	for k, ti := range j.tasks {
		t := &s.tasks[ti]
		// The handle releases the task later without hashing and
		// comparing its name again; the event carries it and the job, so
		// that the release does not read the task.
		t.handle = as[k].Handle
		begin := s.now + j.deploy + t.start
		end := begin + t.run
		j.start = min(j.start, begin)
		j.end = max(j.end, end)
		t.relT = end + t.release
		if s.cfg.FailureMTBF > 0 {
			t.relSeq = s.ev.pushHandle(t.relT, evRelease, ji, int32(t.handle))
		} else {
			s.ev.pushHandle(t.relT, evFree, ji, int32(t.handle))
			last = max(last, t.relT)
		}
		s.running++
	}
	if len(j.tasks) == 0 { // a job with no task ends when placed
		j.start, j.end = s.now+j.deploy, s.now+j.deploy
		s.end(ji)
		return
	}
	if s.cfg.FailureMTBF <= 0 {
		// Without failures a job ends when its last task's cores are back,
		// known now: one event ends it after them (made after them, so it
		// comes after them at the same instant), and a task's own event
		// does not read the job, nor its task records, which go back now.
		s.ev.push(last, evEnd, ji)
		s.freeT[len(j.tasks)] = append(s.freeT[len(j.tasks)], j.tasks[0])
	}
}

// release gives a task of job ji its cores back (h: its handle), and ends
// the job after its last task.
func (s *sim) release(ji int32, h placement.Handle) {
	j := &s.jobs[ji]
	if !j.failed { // a failed job's cores went back at the failure
		s.relBuf = append(s.relBuf, h)
	}
	s.dirty = true
	s.running--
	if j.left--; j.left == 0 {
		s.end(ji)
	}
}

// end records an ended job and frees its record.
func (s *sim) end(ji int32) {
	j := &s.jobs[ji]
	wait, exec, total := j.start-j.submit, j.end-j.start, j.end-j.submit
	if j.failed {
		s.endFailed(ji)
		return
	}
	s.res.Done++
	for k, v := range [3]float64{wait, exec, total} {
		s.sums[k] += v
		s.maxes[k] = max(s.maxes[k], v)
		_ = s.res.Hists[k].RecordValue(int64(math.Round(v * 1e6)))
	}
	if wait > s.res.LongestWait || s.res.LongestJob == "" {
		s.res.LongestWait, s.res.LongestJob, s.res.Reason = wait, j.name, ""
		if j.waitedRound {
			s.res.Reason = j.reason
		}
	}
	if s.rows != nil && s.errRow == nil {
		e := s.cfg.Epoch
		s.errRow = s.rows(report.Row{Job: j.name, Session: s.cfg.Session, Strategy: s.cfg.Strategy, Status: api.Down,
			Submit: e + j.submit, Start: e + j.start, End: e + j.end, Waiting: wait, Execution: exec, Total: total,
			Tasks: len(j.tasks), Cores: int(j.cores)})
	}
	s.freeJob(ji)
}

// freeJob gives a job's record and its tasks' slots back: a slot is
// reused only once its whole job ended, so that a job's tasks stay its own.
func (s *sim) freeJob(ji int32) {
	j := &s.jobs[ji]
	if n := len(j.tasks); n > 0 && s.cfg.FailureMTBF > 0 { // without failures they went back at its start
		s.freeT[n] = append(s.freeT[n], j.tasks[0])
	}
	j.name, j.reason, j.failed = "", "", false
	s.freeJ = append(s.freeJ, ji)
}

// fail takes worker i down: its jobs fail, and it comes back after a
// repair time, if any.
func (s *sim) fail(i int) {
	id := s.workerIDs[i]
	if !s.core.Up(id) {
		return
	}
	s.flushReleases()
	s.res.Failures++
	s.workers[i].Status = api.WorkerDown
	s.core.Step(jobmanager.WorkersListed{Workers: s.workers})
	if !s.cfg.Repair.Zero() {
		s.ev.push(s.now+s.cfg.Repair.Draw(s.failRng), evRepair, int32(i))
	}
	// The jobs with a task there, in arrival order.
	var seqs []uint64
	for _, name := range s.core.WorkerTasks(id) {
		job, _, _ := strings.Cut(name, "-")
		if seq, err := strconv.ParseUint(strings.TrimPrefix(job, "job"), 10, 64); err == nil {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		ji := s.bySeq[seq]
		j := &s.jobs[ji]
		if j.failed {
			continue
		}
		j.failed = true
		j.end = s.now
		// Its tasks whose release event comes after this failure still
		// hold their cores: they go back now.
		for _, ti := range j.tasks {
			if t := &s.tasks[ti]; t.relT > s.now || (t.relT == s.now && t.relSeq > s.evSeq) {
				s.relBuf = append(s.relBuf, t.handle)
			}
		}
		s.dirty = true
	}
	s.flushReleases()
}

// endFailed records a job that failed with a worker, once the release
// events of all its tasks have passed (its cores went back at the failure).
func (s *sim) endFailed(ji int32) {
	j := &s.jobs[ji]
	s.res.Failed++
	if s.rows != nil && s.errRow == nil {
		e, nan := s.cfg.Epoch, math.NaN()
		r := report.Row{Job: j.name, Session: s.cfg.Session, Strategy: s.cfg.Strategy, Status: api.Failed,
			Submit: e + j.submit, Start: nan, End: e + j.end, Waiting: nan, Execution: nan, Total: j.end - j.submit,
			Tasks: len(j.tasks), Cores: int(j.cores)}
		if j.start <= j.end {
			r.Start, r.Waiting, r.Execution = e+j.start, j.start-j.submit, j.end-j.start
		}
		s.errRow = s.rows(r)
	}
	s.freeJob(ji)
}

func (s *sim) finish(begin time.Time) {
	r := s.res
	r.Wall = time.Since(begin)
	r.Virtual = s.now
	r.Queued = s.core.QueueLen()
	r.Heat = s.heat.grid(s)
	for k, st := range []*report.Stats{&r.Waiting, &r.Execution, &r.Total} {
		h := r.Hists[k]
		nan := math.NaN()
		*st = report.Stats{Mean: nan, P50: nan, P90: nan, P99: nan, Max: nan}
		if r.Done == 0 {
			continue
		}
		q := func(p float64) float64 { return float64(h.ValueAtQuantile(p)) / 1e6 }
		*st = report.Stats{N: r.Done, Mean: s.sums[k] / float64(r.Done), P50: q(50), P90: q(90), P99: q(99), Max: s.maxes[k]}
	}
	r.Util = make([]float64, len(s.bins))
	var busy float64
	for k, v := range s.bins {
		width := min(s.cfg.Bin, s.now-float64(k)*s.cfg.Bin)
		if width > 0 && s.total > 0 {
			r.Util[k] = v / (width * float64(s.total))
		}
		r.Peak = max(r.Peak, r.Util[k])
		busy += v
	}
	if s.now > 0 && s.total > 0 {
		r.Mean = busy / (s.now * float64(s.total))
	}
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func parseDuration(s string) (float64, error) {
	d, err := time.ParseDuration(s)
	return d.Seconds(), err
}

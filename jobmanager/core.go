package jobmanager

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/placement"
)

// Core is the jobmanager's pure allocation state: the cluster view (which
// task holds which cores of which worker), the cores reserved for moves,
// and the placement strategy. It is driven by Step, one typed event at a
// time, and answers with typed effects that the shell (Manager) carries
// out; it does no I/O and reads no clock (a round's time comes in with
// its event). Every core choice is placement's: rounds through
// placement.Schedule, moves through Cluster.PickFree.
//
// The invariant, checked by the tests after every step: no core is held
// by two tasks, and a core is held only by a task some event gave it to
// and no later event took it from (nothing leaks).
type Core struct {
	cluster   *placement.Cluster
	strategy  placement.Strategy
	sortBatch bool
	touched   map[string]bool     // workers whose allocation changed since the last Flush
	inflight  map[string][]string // jobs being deployed, or waiting to be sent again: their tasks
	attempts  map[string]int      // failed deployment attempts of the jobs in flight
	queue     map[string]*queued  // waiting jobs by name
	seq       uint64              // arrivals so far: the queue's order
	stopped   map[string]bool     // jobs whose remaining tasks were told to stop

	// order is the queue in arrival order (Seq); jobs that left it are
	// marked out and swept once they are half of it (gone counts them).
	order []*queued
	gone  int
	// Jobs' shapes (see placement.Round): the id of each shape queued, how
	// many queued jobs have it, and how many shapes have any.
	shapes     map[string]int32
	shapeCount []int
	liveShapes int
	keyBuf     []byte
	// tail: the last round stopped before the jobs of Seq tailSeq to
	// tailEnd, which wait with tailWhy (a job that holds the rest), or else
	// with the reason their shape failed in that round (shapeWhy).
	tailSeq, tailEnd uint64
	tailWhy          string
	shapeWhy         []string
	shapeRound       []uint64 // the round a shape last failed in for good
	rounds           uint64
	memText          string // the last mem_limit parsed, and its bytes
	memBytes         int64
	spare            []*queued // records swept out of the order, for reuse
	untracked        bool      // no store: the allocations changed by rounds and releases are not tracked (Untracked)
}

// Untracked tells the core that no store will be written: rounds and
// ReleaseHandles stop tracking which workers' allocations changed, and
// Flush has nothing to write. For the simulator, to which that tracking
// was a map write per task released and nothing more. Its cluster keeps
// no index of task names either (placement.Cluster.NoNames): the caller
// releases tasks by handle only (ReleaseHandles) and keeps task names
// unique; events that name tasks to release or move (Release, Unplace,
// Reallocate, a deployment's end) are refused by the cluster. It must be
// called before any task is placed.
func (c *Core) Untracked() {
	c.untracked = true
	c.cluster.NoNames()
}

// queued is a waiting job.
type queued struct {
	job   placement.Job
	rsn   string    // last waiting reason written
	want  string    // the reason of the last round
	since time.Time // when it was queued
	wrote time.Time // when rsn was written
	shape int32     // its shape's id (Core.shapes)
	out   bool      // it left the queue (Core.order keeps it until a sweep)
}

// NewCore returns a core with no workers, placing with strategy s.
func NewCore(s placement.Strategy, sortBatch bool) *Core {
	return &Core{cluster: placement.NewCluster(), strategy: s, sortBatch: sortBatch, touched: map[string]bool{},
		inflight: map[string][]string{}, attempts: map[string]int{}, queue: map[string]*queued{},
		stopped: map[string]bool{}, shapes: map[string]int32{}}
}

// Event is what happened, as the core sees it. Its concrete types are the
// ones in this file; the method only closes the union.
type Event interface{ coreEvent() }

// Events.
type (
	// WorkersListed is every registered worker as just read from the store:
	// new workers are added, resized ones resized (allocations kept), down
	// ones no longer placed on, departed (Left) or unlisted ones removed
	// with their tasks' cores.
	WorkersListed struct{ Workers []*api.Worker }
	// Hold records the cores a placed task holds (recovery from the store's
	// records), unless it holds them already. Cpuset is the task's
	// cpuset_cpus.
	Hold struct {
		Task, Node, Cpuset string
		Mem                int64
	}
	// Release frees the cores of tasks that were cancelled, or whose
	// placement was undone.
	Release struct{ Tasks []string }
	// TasksEnded: tasks reached a final state (discovery). Their cores are
	// freed; a job one of whose tasks failed while others live is stopped
	// (a job is a gang), once; the jobs that ended Failed are handed to
	// their restart policy.
	TasksEnded struct{ Tasks []api.TaskRef }
	// ForgetStops forgets that jobs were stopped (they ended, or restart).
	ForgetStops struct{ Jobs []string }
	// StopsOnly forgets the stop marks of every job not in Listed (the
	// sweep after a full recovery pass).
	StopsOnly struct{ Listed map[string]bool }
	// KeepOnly frees the cores of every task not in Live, except cores
	// reserved for moves (the sweep after a full recovery pass).
	KeepOnly struct{ Live map[string]bool }
	// Enqueue queues Job, arrived at Now, if it waits to be placed (Ready,
	// every task Ready) and is neither queued nor being deployed.
	Enqueue struct {
		Job *api.Job
		Now time.Time
	}
	// JobRead is Job's record as just read from the store (resync,
	// recovery, at Now): the queue and the allocations are brought in line
	// with it (see reconcile).
	JobRead struct {
		Job *api.Job
		Now time.Time
	}
	// Dequeue takes jobs out of the queue (cancelled, or moved on).
	Dequeue struct{ Jobs []string }
	// QueueOnly takes every job not in Ready out of the queue (the sweep
	// after a full recovery pass).
	QueueOnly struct{ Ready map[string]bool }
	// Round runs the strategy over the queue (in arrival order) at time
	// Now (seconds since the epoch) with the queue options; the jobs
	// placed leave the queue.
	Round struct {
		Now  float64
		Opts placement.QueueOptions
	}
	// ReasonsDue asks, at Now, for the waiting reasons due to be written
	// (see reasonAfter).
	ReasonsDue struct{ Now time.Time }
	// SwitchStrategy changes the strategy for the next rounds.
	SwitchStrategy struct{ Name string }
	// ReserveMove holds cores on R.Node for a task about to move there
	// (R.Cpuset, or R.Cores chosen by placement), its current cores kept.
	ReserveMove struct{ R api.Reservation }
	// CommitMove ends a move: the old cores are freed, the reserved ones
	// become the task's, and (R.Job given) the task's record is written
	// with its new node and cpuset_cpus (WriteTask).
	CommitMove struct{ R api.Reservation }
	// AbortMove gives back the cores reserved for Task's move.
	AbortMove struct{ Task string }
	// Reallocate changes the cores of a task on its node (update in place).
	Reallocate struct{ R api.Reservation }
	// Flush asks for the allocations changed since the last Flush.
	Flush struct{}
	// PlacementsWritten: a round's decisions, and the jobs the store took
	// them for (as written). Those are deployed; the others (cancelled
	// meanwhile, or the write failed) give their cores back.
	PlacementsWritten struct {
		Placed  []placement.Decision
		Written []*api.Job
	}
	// DeployStart: a placed job (written to the store) is to be deployed.
	DeployStart struct{ Job *api.Job }
	// DeployDone: one deployment attempt of Job returned Err (nil:
	// delivered), at Now. Jitter, in [0, 1), spreads the retry (retryDelay).
	DeployDone struct {
		Job    *api.Job
		Err    error
		Now    time.Time
		Jitter float64
	}
	// RetryDeploy: Job could not be sent again (its record unreadable):
	// retry later whatever the cause.
	RetryDeploy struct {
		Job    *api.Job
		Cause  error
		Now    time.Time
		Jitter float64
	}
	// RedeployRead: the record of Job, due to be sent again after a failed
	// attempt, as just read: Job nil and Err wrapping api.ErrNotFound when
	// it is gone, another Err when the store could not be read. What
	// follows depends on the record (judgeRedeploy).
	RedeployRead struct {
		Name   string
		Job    *api.Job
		Err    error
		Now    time.Time
		Jitter float64
	}
	// DeployForget: Job is no longer being deployed (sent, dropped or
	// requeued after a retry).
	DeployForget struct{ Job string }
	// ReleaseHandles frees the cores of tasks by the handles their
	// assignments carried (placement.Assignment.Handle), as Release does by
	// name, for a caller that kept them: the simulator, which ends millions
	// of tasks and would otherwise hash each name again.
	ReleaseHandles struct{ Handles []placement.Handle }
)

func (WorkersListed) coreEvent()     {}
func (Hold) coreEvent()              {}
func (Release) coreEvent()           {}
func (TasksEnded) coreEvent()        {}
func (ForgetStops) coreEvent()       {}
func (StopsOnly) coreEvent()         {}
func (KeepOnly) coreEvent()          {}
func (Round) coreEvent()             {}
func (Enqueue) coreEvent()           {}
func (JobRead) coreEvent()           {}
func (Dequeue) coreEvent()           {}
func (QueueOnly) coreEvent()         {}
func (ReasonsDue) coreEvent()        {}
func (SwitchStrategy) coreEvent()    {}
func (ReserveMove) coreEvent()       {}
func (CommitMove) coreEvent()        {}
func (AbortMove) coreEvent()         {}
func (Reallocate) coreEvent()        {}
func (Flush) coreEvent()             {}
func (DeployStart) coreEvent()       {}
func (PlacementsWritten) coreEvent() {}
func (DeployDone) coreEvent()        {}
func (RetryDeploy) coreEvent()       {}
func (DeployForget) coreEvent()      {}
func (RedeployRead) coreEvent()      {}
func (ReleaseHandles) coreEvent()    {}

// Effect is what the shell must do. Its concrete types are the ones in
// this file.
type Effect interface{ coreEffect() }

// Effects.
type (
	// WriteAllocations writes these workers' allocations to the store.
	WriteAllocations struct{ Workers []Allocation }
	// Reschedule says capacity or the queue changed: a round is due.
	Reschedule struct{}
	// Placed is a round's outcome: the jobs placed (their cores now held,
	// out of the queue; Submitted[i] is Decisions[i]'s submit time, and
	// Waited[i] the reason the last round that left it waiting gave, "" if
	// none did) and why the others wait. A round in arrival order stops at
	// the first job that holds all those after it (fifo, or the backfill
	// limit), or once every shape of job queued failed for want of cores:
	// then Waiting lists the jobs it visited, and the rest wait with Rest's
	// reason, or with their shape's (the core keeps them: Reason). The
	// shell writes the placed jobs and starts their deployment
	// (DeployStart), or releases them if the store refuses.
	Placed struct {
		Decisions []placement.Decision
		Submitted []float64
		Waited    []string
		Waiting   []placement.Waiting
		Rest      string
	}
	// WriteReasons writes these jobs' waiting reasons (job -> reason).
	WriteReasons struct{ Reasons map[string]string }
	// CoresLost reports tasks that lost their cores with their worker.
	CoresLost struct {
		Worker string
		Tasks  []string
	}
	// WorkerRefused reports a worker record the cluster cannot take (its
	// size is invalid); it is left out.
	WorkerRefused struct {
		Worker string
		Err    error
	}
	// Deploy sends Job (placed: every task has its node and cores) to the
	// dispatcher; its outcome comes back as DeployDone.
	Deploy struct{ Job *api.Job }
	// RetryAt sends Job again at At (its attempt-th failed attempt); its
	// record is read again first (redeploy).
	RetryAt struct {
		Job     *api.Job
		At      time.Time
		Attempt int
		Cause   error
	}
	// FailJob marks Job failed: its deployment was refused for good. Its
	// cores are free already.
	FailJob struct {
		Job   *api.Job
		Cause error
	}
	// RequeueJobs resets jobs placed but never deployed, that cannot be
	// sent as placed, to Ready with their placements forgotten (pins
	// kept); the shell then queues them (Enqueue).
	RequeueJobs struct{ Jobs []string }
	// LoseUndelivered fails, as lost with their worker, the tasks of Job
	// that never reached a worker now down, while its other tasks run.
	LoseUndelivered struct{ Job *api.Job }
	// StopJob stops the remaining tasks of Job, for Reason.
	StopJob struct{ Job, Reason string }
	// RestartJobs hands jobs that ended Failed to their restart policy
	// (the shell reads and requeues those it allows, then Enqueue).
	RestartJobs struct{ Jobs []string }
	// Reply answers the event that asked: an error, the cores chosen
	// (ReserveMove), or whether a Hold holds.
	Reply struct {
		Err   error
		Cores []int
		OK    bool
	}
)

func (WriteAllocations) coreEffect() {}
func (Reschedule) coreEffect()       {}
func (Placed) coreEffect()           {}
func (WriteReasons) coreEffect()     {}
func (CoresLost) coreEffect()        {}
func (WorkerRefused) coreEffect()    {}
func (Reply) coreEffect()            {}
func (StopJob) coreEffect()          {}
func (LoseUndelivered) coreEffect()  {}
func (RequeueJobs) coreEffect()      {}
func (RestartJobs) coreEffect()      {}
func (Deploy) coreEffect()           {}
func (RetryAt) coreEffect()          {}
func (FailJob) coreEffect()          {}

// Allocation is one worker's allocation: which task holds each busy core,
// and the memory its tasks hold.
type Allocation struct {
	Worker string
	Busy   map[int]string
	Mem    int64
}

// Up reports whether node is a registered worker that is up.
func (c *Core) Up(node string) bool { v, ok := c.cluster.Worker(node); return ok && v.Up }

// Known reports whether node is a registered worker.
func (c *Core) Known(node string) bool { _, ok := c.cluster.Worker(node); return ok }

// FreeCores returns the free and total cores of the workers that are up.
func (c *Core) FreeCores() (free, total int) { return c.cluster.FreeCores() }

// BusyCores appends to buf the cores held on each worker, in the order
// they were registered (see placement.Cluster.BusyCores).
func (c *Core) BusyCores(buf []int32) []int32 { return c.cluster.BusyCores(buf) }

// WorkerTasks returns the tasks holding cores on worker id, sorted.
func (c *Core) WorkerTasks(id string) []string {
	v, ok := c.cluster.Worker(id)
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range v.Busy {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// InFlight reports whether job is being deployed or waiting to be sent again.
func (c *Core) InFlight(job string) bool { _, ok := c.inflight[job]; return ok }

// Queued reports whether job is in the queue.
func (c *Core) Queued(job string) bool { return c.queue[job] != nil }

// QueueLen returns how many jobs wait.
func (c *Core) QueueLen() int { return len(c.queue) }

// StrategyName returns the current strategy's name.
func (c *Core) StrategyName() string { return c.strategy.Name() }

// Step applies one event and returns what the shell must do.
func (c *Core) Step(ev Event) []Effect {
	switch ev := ev.(type) {
	case WorkersListed:
		return c.workersListed(ev.Workers)
	case Hold:
		return c.hold(ev)
	case Release:
		if c.release(ev.Tasks...) {
			return []Effect{Reschedule{}}
		}
		return nil
	case TasksEnded:
		return c.tasksEnded(ev.Tasks)
	case ForgetStops:
		for _, j := range ev.Jobs {
			delete(c.stopped, j)
		}
		return nil
	case StopsOnly:
		for j := range c.stopped {
			if !ev.Listed[j] {
				delete(c.stopped, j)
			}
		}
		return nil
	case KeepOnly:
		var drop []string
		for _, v := range c.cluster.Workers() {
			for _, task := range v.Busy {
				if !ev.Live[task] && !strings.HasSuffix(task, moveSuffix) {
					drop = append(drop, task)
				}
			}
		}
		if c.release(drop...) {
			return []Effect{Reschedule{}}
		}
		return nil
	case Round:
		return c.round(ev)
	case JobRead:
		return c.reconcile(ev.Job, ev.Now)
	case Enqueue:
		if c.enqueue(ev.Job, ev.Now) {
			return []Effect{Reply{OK: true}, Reschedule{}}
		}
		return nil
	case Dequeue:
		n := len(c.queue)
		for _, name := range ev.Jobs {
			c.unqueue(name)
		}
		if len(c.queue) != n {
			return []Effect{Reschedule{}}
		}
		return nil
	case QueueOnly:
		n := len(c.queue)
		for name := range c.queue {
			if !ev.Ready[name] {
				c.unqueue(name)
			}
		}
		if len(c.queue) != n {
			return []Effect{Reschedule{}}
		}
		return nil
	case ReasonsDue:
		if r := c.reasonsDue(ev.Now); len(r) > 0 {
			return []Effect{WriteReasons{Reasons: r}}
		}
		return nil
	case SwitchStrategy:
		s, err := placement.New(ev.Name, placement.Options{SortBatch: c.sortBatch})
		if err != nil {
			return []Effect{Reply{Err: err}}
		}
		c.strategy = s
		return []Effect{Reply{OK: true}, Reschedule{}}
	case ReserveMove:
		return c.reserve(ev.R)
	case CommitMove:
		node, cores, ok := c.cluster.Release(moveKey(ev.R.Task))
		if !ok {
			return []Effect{Reply{Err: fmt.Errorf("task %s has no cores reserved: %w", ev.R.Task, api.ErrNotFound)}}
		}
		c.release(ev.R.Task)
		c.touched[node] = true
		err := c.cluster.Allocate(ev.R.Task, node, cores, ev.R.Mem)
		out := []Effect{Reply{Err: err, OK: err == nil}, Reschedule{}}
		if err == nil && ev.R.Job != "" {
			// The task runs there now: its record says so (single writer).
			out = append(out, WriteTask{Job: ev.R.Job, Task: ev.R.Task, Node: node, Cores: cores})
		}
		return out
	case AbortMove:
		if c.release(moveKey(ev.Task)) {
			return []Effect{Reply{OK: true}, Reschedule{}}
		}
		return []Effect{Reply{OK: true}}
	case Reallocate:
		r := ev.R
		oldNode, oldCores, held := c.cluster.Release(r.Task)
		if err := c.cluster.Allocate(r.Task, r.Node, r.Cpuset, r.Mem); err != nil {
			if held {
				_ = c.cluster.Allocate(r.Task, oldNode, oldCores, r.PrevMem)
			}
			return []Effect{Reply{Err: &api.FieldError{Field: "cpuset_cpus", Kind: api.ErrConflict, Reason: err.Error()}}}
		}
		c.touched[r.Node] = true
		if held {
			c.touched[oldNode] = true
		}
		return []Effect{Reply{OK: true}, Reschedule{}}
	case Flush:
		if c.untracked {
			return nil
		}
		if w := c.flush(); len(w) > 0 {
			return []Effect{WriteAllocations{Workers: w}}
		}
		return nil
	case PlacementsWritten:
		written := make(map[string]*api.Job, len(ev.Written))
		for _, j := range ev.Written {
			written[j.Name] = j
		}
		var out []Effect
		for _, d := range ev.Placed {
			if j := written[d.Job]; j != nil {
				c.inflight[j.Name] = jobTasks(j)
				out = append(out, Deploy{Job: j})
				continue
			}
			tasks := make([]string, 0, len(d.Assignments))
			for _, a := range d.Assignments {
				tasks = append(tasks, a.Task)
			}
			if c.release(tasks...) {
				out = append(out, Reschedule{})
			}
		}
		return out
	case DeployStart:
		c.inflight[ev.Job.Name] = jobTasks(ev.Job)
		return []Effect{Deploy(ev)}
	case DeployDone:
		switch judgeDeploy(ev.Err) {
		case retry:
			return c.retry(ev.Job, ev.Err, ev.Now, ev.Jitter)
		case refused:
			c.forget(ev.Job.Name)
			out := []Effect{FailJob{Job: ev.Job, Cause: ev.Err}}
			if c.release(jobTasks(ev.Job)...) {
				out = append(out, Reschedule{})
			}
			return out
		}
		c.forget(ev.Job.Name)
		return nil
	case RetryDeploy:
		return c.retry(ev.Job, ev.Cause, ev.Now, ev.Jitter)
	case DeployForget:
		c.forget(ev.Job)
		return nil
	case RedeployRead:
		return c.redeploy(ev)
	case WorkerRegistered:
		return c.workerRegistered(ev)
	case TaskResized:
		return c.taskResized(ev)
	case Unplace:
		return c.unplace(ev)
	case ReleaseHandles:
		any := false
		for _, h := range ev.Handles {
			if w, ok := c.cluster.ReleaseHandleWorker(h); ok {
				if !c.untracked {
					c.touched[w] = true
				}
				any = true
			}
		}
		if any {
			return []Effect{Reschedule{}}
		}
		return nil
	}
	panic(fmt.Sprintf("jobmanager: core event %T not handled", ev))
}

func (c *Core) enqueue(j *api.Job, now time.Time) bool {
	if j.Status != api.Ready || c.queue[j.Name] != nil || c.InFlight(j.Name) {
		return false
	}
	for _, t := range j.Info.Tasks {
		if t.Status != api.Ready {
			return false
		}
	}
	c.sweep()
	c.seq++
	// A record swept out of the order is reused, its tasks' array too: a
	// job the size of the last ones costs no allocation.
	var q *queued
	var buf []placement.Task
	if n := len(c.spare); n > 0 {
		q, c.spare = c.spare[n-1], c.spare[:n-1]
		buf = q.job.Tasks[:0]
	} else {
		q = new(queued)
	}
	pj := c.toPlacement(j, c.seq, buf)
	*q = queued{job: pj, rsn: j.WaitingReason, want: j.WaitingReason, since: now, shape: c.shapeOf(&pj)}
	c.queue[j.Name] = q
	c.order = append(c.order, q)
	if c.shapeCount[q.shape]++; c.shapeCount[q.shape] == 1 {
		c.liveShapes++
	}
	return true
}

// toPlacement is ToPlacement into tasks' array (when large enough),
// parsing a run of equal mem_limits once.
func (c *Core) toPlacement(j *api.Job, seq uint64, tasks []placement.Task) placement.Job {
	if cap(tasks) < len(j.Info.Tasks) {
		tasks = make([]placement.Task, 0, len(j.Info.Tasks))
	}
	pj := placement.Job{Name: j.Name, Priority: j.Priority, Submitted: j.SubmitTime, Seq: seq, Tasks: tasks[:0]}
	for _, t := range j.Info.Tasks {
		pt := placement.Task{Name: t.ContainerName, Cores: t.ReqCores}
		if t.MemLimit != "" {
			if t.MemLimit != c.memText {
				c.memText, c.memBytes = t.MemLimit, taskMem(t)
			}
			pt.Mem = c.memBytes
		}
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

// shapeOf returns the id of j's shape: its tasks' cores, memory and pins,
// in order (names aside), given one the first time it is seen.
func (c *Core) shapeOf(j *placement.Job) int32 {
	b := c.keyBuf[:0]
	for _, t := range j.Tasks {
		b = strconv.AppendInt(b, int64(t.Cores), 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, t.Mem, 10)
		if t.Node != "" || len(t.Cpuset) > 0 {
			b = append(append(b, '@'), t.Node...)
			for _, k := range t.Cpuset {
				b = strconv.AppendInt(append(b, ':'), int64(k), 10)
			}
		}
		b = append(b, ';')
	}
	c.keyBuf = b
	if id, ok := c.shapes[string(b)]; ok {
		return id
	}
	id := int32(len(c.shapeCount))
	c.shapes[string(b)] = id
	c.shapeCount = append(c.shapeCount, 0)
	c.shapeWhy = append(c.shapeWhy, "")
	c.shapeRound = append(c.shapeRound, 0)
	return id
}

// unqueue takes job name out of the queue, if it is there.
func (c *Core) unqueue(name string) {
	q := c.queue[name]
	if q == nil {
		return
	}
	delete(c.queue, name)
	c.drop(q)
}

// drop marks q out of the order (already out of c.queue).
func (c *Core) drop(q *queued) {
	q.out = true
	if c.shapeCount[q.shape]--; c.shapeCount[q.shape] == 0 {
		c.liveShapes--
	}
	c.gone++
}

// sweep drops from the order the jobs that left the queue, once they are
// half of it (never during a round: it walks the order).
func (c *Core) sweep() {
	if c.gone > 64 && 2*c.gone > len(c.order) {
		keep := c.order[:0]
		for _, q := range c.order {
			if !q.out {
				keep = append(keep, q)
			} else if len(c.spare) < 1024 {
				c.spare = append(c.spare, q)
			}
		}
		clear(c.order[len(keep):])
		c.order, c.gone = keep, 0
	}
}

// Reason returns the reason job waits for, as the last round said ("" when
// it is not queued, or no round has visited it).
func (c *Core) Reason(job string) string {
	if q := c.queue[job]; q != nil {
		return c.want(q)
	}
	return ""
}

// want is q's waiting reason: its own, or the tail's when the last round
// stopped before it (see Placed).
func (c *Core) want(q *queued) string {
	if c.tailSeq != 0 && q.job.Seq >= c.tailSeq && q.job.Seq <= c.tailEnd {
		if c.tailWhy != "" {
			return c.tailWhy
		}
		return c.shapeWhy[q.shape]
	}
	return q.want
}

func (c *Core) round(ev Round) []Effect {
	c.rounds++
	c.sweep()
	if c.strategy != nil && placement.ArrivalOrder(c.strategy) {
		return c.roundInOrder(ev)
	}
	queue := make([]placement.Job, 0, len(c.queue))
	for _, q := range c.order {
		if !q.out {
			queue = append(queue, q.job)
		}
	}
	placed, waiting := placement.Schedule(c.cluster, c.strategy, queue, ev.Now, ev.Opts)
	submitted := make([]float64, len(placed))
	waited := make([]string, len(placed))
	for i, d := range placed {
		if q := c.queue[d.Job]; q != nil {
			submitted[i], waited[i] = q.job.Submitted, c.want(q)
			delete(c.queue, d.Job)
			c.drop(q)
		}
		for _, a := range d.Assignments {
			c.touched[a.Worker] = true
		}
	}
	for _, w := range waiting {
		if q := c.queue[w.Job]; q != nil {
			q.want = w.Reason
		}
	}
	c.tailSeq = 0
	return []Effect{Placed{Decisions: placed, Submitted: submitted, Waited: waited, Waiting: waiting}}
}

// roundInOrder is a round for a strategy that visits the queue in arrival
// order: it walks c.order through a placement.Round and stops at the first
// job that holds the rest, or once every shape queued has failed for want
// of cores; the jobs after wait with the same outcome without being
// visited, so that under overload a round costs what changed, not the
// length of the queue.
func (c *Core) roundInOrder(ev Round) []Effect {
	r := placement.NewRound(c.cluster, c.strategy, ev.Now, ev.Opts)
	var out Placed
	failed := 0 // shapes that failed for good this round
	var tailSeq uint64
	for _, q := range c.order {
		if q.out {
			continue
		}
		if why := r.Blocked(); why != "" || (failed > 0 && failed == c.liveShapes) {
			tailSeq, out.Rest = q.job.Seq, why
			break
		}
		as, reason, ok := r.Place(q.job, q.shape)
		if ok {
			out.Decisions = append(out.Decisions, placement.Decision{Job: q.job.Name, Assignments: as})
			out.Submitted = append(out.Submitted, q.job.Submitted)
			out.Waited = append(out.Waited, c.want(q)) // the tail is still the last round's
			delete(c.queue, q.job.Name)
			c.drop(q)
			for last, k := "", 0; k < len(as) && !c.untracked; k++ {
				if w := as[k].Worker; w != last { // a job's tasks often share a worker
					c.touched[w], last = true, w
				}
			}
			continue
		}
		q.want = reason
		out.Waiting = append(out.Waiting, placement.Waiting{Job: q.job.Name, Reason: reason})
		if why, settled := r.Settled(q.shape); settled && c.shapeRound[q.shape] != c.rounds {
			c.shapeRound[q.shape], c.shapeWhy[q.shape] = c.rounds, why
			failed++
		}
	}
	c.tailSeq, c.tailEnd, c.tailWhy = tailSeq, c.seq, out.Rest
	return []Effect{out}
}

// reasonsDue returns the waiting reasons due at now (see reasonAfter) and
// records them as written.
func (c *Core) reasonsDue(now time.Time) map[string]string {
	var first, again []string
	for name, q := range c.queue {
		if c.want(q) == q.rsn || now.Sub(q.since) < reasonAfter {
			continue
		}
		switch {
		case q.rsn == "":
			first = append(first, name)
		case now.Sub(q.wrote) >= reasonEvery:
			again = append(again, name)
		}
	}
	// The longest waiting first; then the rest at later passes.
	bySince := func(a, b string) int {
		if d := c.queue[a].since.Compare(c.queue[b].since); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	}
	slices.SortFunc(first, bySince)
	slices.SortFunc(again, bySince)
	names := append(first, again...)
	names = names[:min(len(names), reasonBudget)]
	out := make(map[string]string, len(names))
	for _, name := range names {
		q := c.queue[name]
		q.rsn, q.wrote = c.want(q), now
		out[name] = q.rsn
	}
	return out
}

func (c *Core) tasksEnded(tasks []api.TaskRef) []Effect {
	var out []Effect
	names := make([]string, 0, len(tasks))
	for _, t := range tasks {
		names = append(names, t.Task)
	}
	if c.release(names...) {
		out = append(out, Reschedule{})
	}
	var ended []string
	for _, t := range tasks {
		if t.State != api.Failed {
			continue
		}
		if t.JobEnded {
			ended = append(ended, t.Job)
			continue
		}
		if !c.stopped[t.Job] {
			c.stopped[t.Job] = true
			out = append(out, StopJob{Job: t.Job, Reason: fmt.Sprintf("stopped because task %s failed", t.Task)})
		}
	}
	if len(ended) > 0 {
		out = append(out, RestartJobs{Jobs: ended})
	}
	return out
}

// redeploy decides what a job whose deployment is to be retried needs,
// from its record (see judgeRedeploy).
func (c *Core) redeploy(ev RedeployRead) []Effect {
	j := ev.Job
	if ev.Err != nil {
		if !errors.Is(ev.Err, api.ErrNotFound) {
			// The store is unreachable: try again later, as for the dispatcher.
			return c.retry(&api.Job{Name: ev.Name}, ev.Err, ev.Now, ev.Jitter)
		}
		j = nil
	}
	var out []Effect
	switch judgeRedeploy(j, c.Up) {
	case redeploySend:
		c.inflight[j.Name] = jobTasks(j)
		return []Effect{Deploy{Job: j}}
	case redeployRequeue:
		c.release(jobTasks(j)...)
		out = []Effect{Reschedule{}, RequeueJobs{Jobs: []string{ev.Name}}}
	case redeployLost:
		out = []Effect{LoseUndelivered{Job: j}}
	case redeployDrop:
		// Deleted: the tasks it was deployed with.
		tasks := c.inflight[ev.Name]
		if j != nil {
			tasks = jobTasks(j)
		}
		if c.release(tasks...) {
			out = []Effect{Reschedule{}}
		}
	}
	c.forget(ev.Name)
	return out
}

// retry schedules job's next deployment attempt; it stays in flight,
// placed, its cores held.
func (c *Core) retry(job *api.Job, cause error, now time.Time, jitter float64) []Effect {
	n := c.attempts[job.Name]
	c.attempts[job.Name] = n + 1
	if !c.InFlight(job.Name) {
		c.inflight[job.Name] = jobTasks(job)
	}
	return []Effect{RetryAt{Job: job, At: now.Add(retryDelay(n, jitter)), Attempt: n + 1, Cause: cause}}
}

func (c *Core) forget(job string) {
	delete(c.inflight, job)
	delete(c.attempts, job)
}

// jobTasks returns the names of j's tasks.
func jobTasks(j *api.Job) []string {
	out := make([]string, 0, len(j.Info.Tasks))
	for _, t := range j.Info.Tasks {
		out = append(out, t.ContainerName)
	}
	return out
}

// moveSuffix marks the name under which a migrating task's destination
// cores are held until the move is committed or aborted (moveKey).
const moveSuffix = "#moving"

// moveKey is the name holding task's reserved destination cores.
func moveKey(task string) string { return task + moveSuffix }

// release frees tasks' cores; it reports whether any were held.
func (c *Core) release(tasks ...string) bool {
	any := false
	for _, task := range tasks {
		if w, _, ok := c.cluster.Release(task); ok {
			c.touched[w] = true
			any = true
		}
	}
	return any
}

func (c *Core) workersListed(ws []*api.Worker) []Effect {
	var out []Effect
	changed := false
	seen := map[string]bool{}
	for _, w := range ws {
		seen[w.ID] = true
		if w.Status == api.WorkerLeft {
			if _, ok := c.cluster.Worker(w.ID); ok {
				if lost := c.cluster.RemoveWorker(w.ID); len(lost) > 0 {
					out = append(out, CoresLost{Worker: w.ID, Tasks: lost})
				}
				changed = true
			}
			continue
		}
		if v, ok := c.cluster.Worker(w.ID); !ok || v.Cores != w.Cores || v.MemTotal != w.MemTotal {
			// New, or registered again with another size (allocations kept).
			if err := c.cluster.AddWorker(w.ID, w.Cores, w.MemTotal); err != nil {
				out = append(out, WorkerRefused{Worker: w.ID, Err: err})
				continue
			}
			c.touched[w.ID] = true
			changed = true
		}
		v, _ := c.cluster.Worker(w.ID)
		if up := w.Status == api.WorkerReady; v.Up != up {
			c.cluster.SetUp(w.ID, up)
			changed = true
		}
	}
	for _, v := range c.cluster.Workers() {
		if !seen[v.ID] {
			if lost := c.cluster.RemoveWorker(v.ID); len(lost) > 0 {
				out = append(out, CoresLost{Worker: v.ID, Tasks: lost})
			}
			delete(c.touched, v.ID)
			changed = true
		}
	}
	if changed {
		out = append(out, Reschedule{})
	}
	return out
}

// reconcile brings the queue and the allocations in line with one job's
// record: a Ready job is queued (unless it is already), a job that is no
// longer Ready leaves the queue, the cores of its ended tasks are freed and
// those of its live tasks recorded (recovery). A job placed whose
// deployment may have been cut short (the jobmanager stopped mid-way) is
// sent again with the same placement, since a deployment may be repeated
// (see retry.go); one that cannot be is requeued (placed again from
// scratch). Jobs being deployed are the dispatcher's.
func (c *Core) reconcile(j *api.Job, now time.Time) []Effect {
	if c.InFlight(j.Name) {
		return nil
	}
	requeue := []Effect{RequeueJobs{Jobs: []string{j.Name}}}
	if j.Status == api.Ready {
		if c.queue[j.Name] != nil {
			return nil
		}
		unplaced := true
		for _, t := range j.Info.Tasks {
			if t.Status != api.Ready {
				unplaced = false
			}
		}
		if unplaced {
			if c.enqueue(j, now) {
				return []Effect{Reschedule{}}
			}
			return nil
		}
		if judgeRedeploy(j, c.Up) != redeploySend {
			return requeue
		}
		for i, t := range j.Info.Tasks {
			if !c.holdTask(t) {
				for _, u := range j.Info.Tasks[:i] {
					c.release(u.ContainerName)
				}
				return requeue
			}
		}
		// Placed before a restart: deploy it again.
		c.inflight[j.Name] = jobTasks(j)
		return []Effect{Deploy{Job: j}}
	}
	var out []Effect
	if c.queue[j.Name] != nil {
		// Cancelled, and the notification lost.
		c.unqueue(j.Name)
		out = append(out, Reschedule{})
	}
	if j.Status.Final() {
		delete(c.stopped, j.Name)
	}
	undelivered := false
	for _, t := range j.Info.Tasks {
		switch {
		case t.Status.Final():
			if c.release(t.ContainerName) && len(out) == 0 {
				out = append(out, Reschedule{})
			}
		case t.Status == api.Ready || t.Node == "":
		default:
			c.holdTask(t)
			undelivered = undelivered || t.Status == api.Scheduled
		}
	}
	if undelivered && !j.Status.Final() {
		// Part of it runs, part was never delivered (a deployment cut
		// short): send it again; its workers skip what they already run.
		c.inflight[j.Name] = jobTasks(j)
		out = append(out, Deploy{Job: j})
	}
	return out
}

// holdTask records the cores placed task t holds (see Hold) and reports
// whether it holds them now.
func (c *Core) holdTask(t *api.Task) bool {
	return replyOf(c.hold(Hold{Task: t.ContainerName, Node: t.Node, Cpuset: t.CpusetCpus, Mem: taskMem(t)})).OK
}

func (c *Core) hold(h Hold) []Effect {
	if _, ok := c.cluster.Worker(h.Node); !ok {
		return []Effect{Reply{}}
	}
	if _, _, held := c.cluster.Holds(h.Task); held {
		return []Effect{Reply{OK: true}}
	}
	cores, err := api.ParseCpuset(h.Cpuset)
	if err != nil {
		return []Effect{Reply{Err: err}}
	}
	if err := c.cluster.Allocate(h.Task, h.Node, cores, h.Mem); err != nil {
		return []Effect{Reply{Err: err}}
	}
	c.touched[h.Node] = true
	return []Effect{Reply{OK: true}}
}

func (c *Core) reserve(r api.Reservation) []Effect {
	fail := func(err error) []Effect { return []Effect{Reply{Err: err}} }
	v, ok := c.cluster.Worker(r.Node)
	if !ok {
		return fail(fmt.Errorf("node %s is not a registered worker: %w", r.Node, api.ErrNotFound))
	}
	if !v.Up {
		return fail(fmt.Errorf("node %s is down: %w", r.Node, api.ErrUnavailable))
	}
	if r.Mem > v.MemFree {
		return fail(&api.FieldError{Field: "to", Kind: api.ErrConflict,
			Reason: fmt.Sprintf("node %s has %d bytes of memory free, task %s needs %d", r.Node, v.MemFree, r.Task, r.Mem)})
	}
	want := slices.Clone(r.Cpuset)
	if len(want) == 0 {
		picked, free, err := c.cluster.PickFree(r.Node, r.Cores)
		if err != nil {
			return fail(&api.FieldError{Field: "to", Kind: api.ErrConflict, Reason: err.Error()})
		}
		if picked == nil {
			return fail(&api.FieldError{Field: "to", Kind: api.ErrConflict,
				Reason: fmt.Sprintf("node %s has %d free cores, task %s needs %d", r.Node, free, r.Task, r.Cores)})
		}
		want = picked
	}
	if err := c.cluster.Allocate(moveKey(r.Task), r.Node, want, r.Mem); err != nil {
		return fail(&api.FieldError{Field: "to", Kind: api.ErrConflict, Reason: err.Error()})
	}
	c.touched[r.Node] = true
	return []Effect{Reply{OK: true, Cores: want}}
}

// flush returns the allocation of every worker touched since the last
// flush, by worker id.
func (c *Core) flush() []Allocation {
	out := make([]Allocation, 0, len(c.touched))
	for id := range c.touched {
		delete(c.touched, id)
		if v, ok := c.cluster.Worker(id); ok {
			out = append(out, Allocation{Worker: id, Busy: v.Busy, Mem: v.MemTotal - v.MemFree})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Worker < out[b].Worker })
	return out
}

// replyOf returns the Reply among effects (the zero Reply if none).
func replyOf(effects []Effect) Reply {
	for _, e := range effects {
		if r, ok := e.(Reply); ok {
			return r
		}
	}
	return Reply{}
}

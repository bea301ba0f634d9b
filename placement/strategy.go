package placement

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Strategy names, as the original spelled them (without its
// "best-fir-decreasing" typo).
const (
	FirstFit           = "first-fit"
	BestFit            = "best-fit"
	FirstFitDecreasing = "first-fit-decreasing"
	BestFitDecreasing  = "best-fit-decreasing"
	NoScheduler        = "no-scheduler"
	Priority           = "priority"

	// Default is the strategy a jobmanager starts with unless told otherwise.
	Default = BestFit
)

// ErrUnknownStrategy: a strategy name that is not one of Names().
var ErrUnknownStrategy = errors.New("placement: unknown strategy")

// Task is placement's view of one task: its name (unique in the cluster),
// the cores and memory (bytes; 0 = no constraint) it asks for, and, for the
// no-scheduler strategy, the node and core ids the client pinned it to.
// Other strategies ignore Node and Cpuset and choose for themselves.
type Task struct {
	Name   string
	Cores  int
	Mem    int64
	Node   string
	Cpuset []int
}

// Job is placement's view of a queued job: its tasks in order, its priority
// (higher first), deadline (epoch seconds, 0 = none), submission time
// (epoch seconds) and arrival sequence number.
type Job struct {
	Name      string
	Tasks     []Task
	Priority  int
	Deadline  float64
	Submitted float64
	Seq       uint64
}

// Assignment is where one task goes: a worker and concrete core ids,
// ascending. Strategies other than no-scheduler give the lowest free ids.
type Assignment struct {
	Task   string
	Worker string
	Cores  []int
	// Handle is the task's record in the cluster, for Cluster.ReleaseHandle
	// (valid until the task is released); callers that release by name
	// ignore it.
	Handle Handle
}

// Decision is a placed job: one assignment per task, in the job's task order.
type Decision struct {
	Job         string
	Assignments []Assignment
}

// Waiting is a job left in the queue, with the reason in plain words.
type Waiting struct {
	Job    string
	Reason string
}

// Strategy places one job all-or-nothing. On success the cores (and memory)
// are allocated in c and the assignments returned in the job's task order;
// on failure c is exactly as before and reason says why, in plain words.
// A job with no tasks is placed with no assignments.
type Strategy interface {
	Name() string
	// Description is one line on what the strategy does.
	Description() string
	Place(c *Cluster, j Job) (as []Assignment, reason string, ok bool)
}

// Orderer is implemented by strategies that choose the order in which a
// round visits the queue. Order returns a permutation of the indexes of
// queue. Strategies without it visit jobs in arrival order (Seq).
type Orderer interface {
	Order(queue []Job, now float64) []int
}

// Options tune the strategies New builds. The zero value gives the defaults.
type Options struct {
	// SortBatch makes the decreasing strategies order the whole waiting
	// batch by size (total cores, largest first; ties keep arrival order)
	// before placing, instead of only sorting tasks within each job.
	SortBatch bool
	// AgeingInterval is, for the priority strategy, the seconds of waiting
	// (since submission) that raise a job's effective priority by one, so no
	// job waits forever behind later, higher-priority ones. 0 means
	// DefaultAgeingInterval; a negative value turns ageing off.
	AgeingInterval float64
}

// DefaultAgeingInterval is the priority strategy's default ageing: one level
// of priority per 30 s of waiting.
const DefaultAgeingInterval = 30.0

type constructor struct {
	desc string
	make func(Options) Strategy
}

// strategies maps each name to its constructor, as Nomad's BuiltinSchedulers.
var strategies = map[string]constructor{
	FirstFit: {"places each task on the lowest-index worker with enough free cores and memory, tasks in job order",
		func(Options) Strategy { return &packer{name: FirstFit, first: true} }},
	BestFit: {"places each task on the worker that leaves the fewest free cores (ties to the lowest index), tasks in job order",
		func(Options) Strategy { return &packer{name: BestFit} }},
	FirstFitDecreasing: {"first fit with each job's tasks placed largest first (with SortBatch, the whole batch ordered by job size)",
		func(o Options) Strategy {
			return &packer{name: FirstFitDecreasing, first: true, decreasing: true, sortBatch: o.SortBatch}
		}},
	BestFitDecreasing: {"best fit with each job's tasks placed largest first (with SortBatch, the whole batch ordered by job size)",
		func(o Options) Strategy {
			return &packer{name: BestFitDecreasing, decreasing: true, sortBatch: o.SortBatch}
		}},
	NoScheduler: {"places each task on the node and cores the client pinned (node, cpuset_cpus); a job waits while any of them is held",
		func(Options) Strategy { return pinned{} }},
	Priority: {"orders the queue by priority (higher first), then deadline, then submission, raising priority by one per ageing interval waited; places with best fit",
		func(o Options) Strategy {
			a := o.AgeingInterval
			if a == 0 {
				a = DefaultAgeingInterval
			}
			return &priority{packer: packer{name: Priority}, ageing: a}
		}},
}

// New returns the named strategy; an unknown name gives ErrUnknownStrategy
// with the valid names listed.
func New(name string, o Options) (Strategy, error) {
	k, ok := strategies[name]
	if !ok {
		return nil, fmt.Errorf("%w %q: valid strategies are %s", ErrUnknownStrategy, name, strings.Join(Names(), ", "))
	}
	return k.make(o), nil
}

// Names returns the valid strategy names, sorted.
func Names() []string {
	names := make([]string, 0, len(strategies))
	for n := range strategies {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Describe returns one line per strategy on what it does.
func Describe() map[string]string {
	out := make(map[string]string, len(strategies))
	for n, k := range strategies {
		out[n] = k.desc
	}
	return out
}

// packer is the bin-packing family: first fit or best fit, optionally
// placing each job's tasks largest first.
type packer struct {
	name       string
	first      bool
	decreasing bool
	sortBatch  bool
}

func (p *packer) Name() string { return p.name }

func (p *packer) Description() string {
	d := strategies[p.name].desc
	if p.sortBatch {
		d += "; SortBatch on"
	}
	return d
}

// Place places the job's tasks one by one (largest first when decreasing,
// stable), each on the worker the rule picks among those with enough free
// cores and memory, at its lowest free core ids. If a task does not fit,
// the tasks placed before it are released.
func (p *packer) Place(c *Cluster, j Job) ([]Assignment, string, bool) {
	as, reason, ok, _ := p.placeCap(c, j)
	return as, reason, ok
}

// placeCap is Place, also saying whether a failure was for want of a
// worker with room (see Round).
func (p *packer) placeCap(c *Cluster, j Job) ([]Assignment, string, bool, bool) {
	n := len(j.Tasks)
	if n == 0 {
		return nil, "", true, false
	}
	// total is the cores asked for, to give all the assignments one slice;
	// each task counts at most one more than the free cores, so that a job
	// that cannot fit does not make Place allocate what it asks for.
	total := 0
	for i := range j.Tasks {
		t := &j.Tasks[i]
		if r := badTask(t); r != "" {
			return nil, r, false, false
		}
		total += min(t.Cores, c.upFree+1)
	}
	var buf [16]int
	var order []int // placement order for the decreasing strategies
	if p.decreasing && n > 1 {
		order = decreasingOrder(j.Tasks, buf[:0])
	}
	as, cores := newAssignments(n, total, c.upFree)
	for k := 0; k < n; k++ {
		ti := k
		if order != nil {
			ti = order[k]
		}
		t := &j.Tasks[ti]
		// The name is looked up before the search for a worker, which does
		// not depend on it, so that the two can overlap; a task that holds
		// cores is reported only once a worker is found, as before.
		h, at := c.placeLookup(t.Name)
		var w int
		if p.first {
			w = c.firstFit(t.Cores, t.Mem)
		} else {
			w = c.bestFit(t.Cores, t.Mem)
		}
		if w < 0 {
			memShort := c.freshTree().maxFree() >= t.Cores
			rollback(c, as)
			return nil, explainPacking(c, j, t, memShort), false, true
		}
		if h >= 0 {
			reason := heldReason(c, t.Name, h) // before rollback, which may free h
			rollback(c, as)
			return nil, reason, false, false
		}
		a := &as[ti]
		if len(cores) >= t.Cores {
			a.Cores, cores = cores[:t.Cores:t.Cores], cores[t.Cores:]
		} else {
			a.Cores = make([]int, t.Cores)
		}
		a.Handle = c.take(t.Name, at, w, a.Cores, t.Mem)
		a.Task, a.Worker = t.Name, c.workers[w].id
	}
	return as, "", true, false
}

// oneTask holds what placing a job of one task of up to 8 cores returns,
// so that it costs one allocation.
type oneTask struct {
	as    [1]Assignment
	cores [8]int
}

// newAssignments returns the assignments of a job of n tasks that ask for
// total cores, and a slice of total cores for them to share, in as few
// allocations as it can: one for a job of one small task. When more cores
// are asked for than free (the job cannot be placed) it gives no cores.
func newAssignments(n, total, free int) ([]Assignment, []int) {
	if n == 1 && total <= len(oneTask{}.cores) {
		o := new(oneTask)
		return o.as[:], o.cores[:]
	}
	if total > free {
		return make([]Assignment, n), nil
	}
	return make([]Assignment, n), make([]int, total)
}

// feasible reports whether each task of j fits some up worker when empty;
// a job that does not cannot hold the queue (see Schedule).
func (p *packer) feasible(c *Cluster, j Job) bool {
	for i := range j.Tasks {
		if t := &j.Tasks[i]; badTask(t) != "" || !c.couldFit(t.Cores, t.Mem) {
			return false
		}
	}
	return true
}

// decreasingOrder appends to buf the task indexes in placement order for
// the decreasing strategies: cores descending, ties in job order.
func decreasingOrder(ts []Task, buf []int) []int {
	for i := range ts {
		buf = append(buf, i)
	}
	if len(ts) > 32 {
		slices.SortStableFunc(buf, func(a, b int) int { return ts[b].Cores - ts[a].Cores })
		return buf
	}
	for i := 1; i < len(buf); i++ { // insertion sort: stable, no allocation
		for k := i; k > 0 && ts[buf[k]].Cores > ts[buf[k-1]].Cores; k-- {
			buf[k], buf[k-1] = buf[k-1], buf[k]
		}
	}
	return buf
}

// rollback releases the tasks already assigned in as (by task index), by
// their handles (a cluster without names has no other way).
func rollback(c *Cluster, as []Assignment) {
	for i := range as {
		if as[i].Worker != "" {
			c.ReleaseHandle(as[i].Handle)
		}
	}
}

// heldReason says that task, with record h, already holds cores.
func heldReason(c *Cluster, task string, h int32) string {
	r := &c.recs[h]
	return fmt.Sprintf("task %s already holds cores %s on worker %s", task, formatCores(r.cores(nil)), c.workers[r.worker].id)
}

// badTask says what is wrong with a task no strategy can place, or "".
func badTask(t *Task) string {
	switch {
	case t.Name == "":
		return "a task has no name"
	case t.Cores < 1:
		return fmt.Sprintf("task %s asks for %d cores; it needs at least 1", t.Name, t.Cores)
	case t.Mem < 0:
		return fmt.Sprintf("task %s asks for negative memory (%d bytes)", t.Name, t.Mem)
	}
	return ""
}

// pinned is the no-scheduler strategy: the client chose node and cores.
type pinned struct{}

func (pinned) Name() string        { return NoScheduler }
func (pinned) Description() string { return strategies[NoScheduler].desc }

// Place allocates exactly the pinned cores of every task, or none. Two jobs
// (or two tasks) naming the same core cannot both have it: the first
// allocated holds it and the other waits.
func (pinned) Place(c *Cluster, j Job) ([]Assignment, string, bool) {
	as := make([]Assignment, len(j.Tasks))
	for ti := range j.Tasks {
		t := &j.Tasks[ti]
		if r := pinnedProblem(c, t); r != "" {
			rollback(c, as)
			return nil, r, false
		}
		i := c.byID[t.Node]
		cores := slices.Clone(t.Cpuset)
		slices.Sort(cores)
		h := c.commit(t.Name, i, cores, t.Mem) // keeps no reference to cores
		as[ti] = Assignment{Task: t.Name, Worker: t.Node, Cores: cores, Handle: h}
	}
	return as, "", true
}

// feasible reports whether every pinned task names an up node, cores it
// has and memory it has: such a job waits only for cores or memory held by
// others, and may hold the queue (see Schedule).
func (pinned) feasible(c *Cluster, j Job) bool {
	for _, t := range j.Tasks {
		i, ok := c.byID[t.Node]
		if !ok || t.Name == "" || len(t.Cpuset) == 0 || (t.Cores > 0 && t.Cores != len(t.Cpuset)) || t.Mem < 0 {
			return false
		}
		w := &c.workers[i]
		if w.removed || !w.up || t.Mem > w.memTotal {
			return false
		}
		for k, core := range t.Cpuset {
			if core < 0 || core >= int(w.cores) || slices.Contains(t.Cpuset[:k], core) {
				return false
			}
		}
	}
	return true
}

// pinnedProblem says why a pinned task cannot be placed now, or "".
func pinnedProblem(c *Cluster, t *Task) string {
	if t.Name == "" {
		return "a task has no name"
	}
	if t.Node == "" || len(t.Cpuset) == 0 {
		return fmt.Sprintf("task %s names no node and cpuset; no-scheduler places only pinned tasks", t.Name)
	}
	if t.Cores > 0 && t.Cores != len(t.Cpuset) {
		return fmt.Sprintf("task %s asks for %d cores but its cpuset names %d", t.Name, t.Cores, len(t.Cpuset))
	}
	if t.Mem < 0 {
		return fmt.Sprintf("task %s asks for negative memory (%d bytes)", t.Name, t.Mem)
	}
	i, ok := c.byID[t.Node]
	if !ok || c.workers[i].removed {
		return fmt.Sprintf("node %s is not registered", t.Node)
	}
	w := &c.workers[i]
	if !w.up {
		return fmt.Sprintf("node %s is down", t.Node)
	}
	if h, _ := c.placeLookup(t.Name); h >= 0 {
		return heldReason(c, t.Name, h)
	}
	for k, core := range t.Cpuset {
		if core < 0 || core >= int(w.cores) {
			return fmt.Sprintf("pinned core %d on node %s does not exist (it has %s)", core, t.Node, plural(int(w.cores), "core"))
		}
		if slices.Contains(t.Cpuset[:k], core) {
			return fmt.Sprintf("task %s names core %d twice", t.Name, core)
		}
		if holder := c.holder(w, core); holder != "" {
			return fmt.Sprintf("pinned core %d on node %s is held by task %s", core, t.Node, holder)
		}
	}
	if t.Mem > 0 && w.memFree() < t.Mem {
		return fmt.Sprintf("task %s needs %s of memory; node %s has %s free", t.Name, formatMem(t.Mem), t.Node, formatMem(w.memFree()))
	}
	return ""
}

// priority orders the queue by effective priority, then deadline, then
// submission, and places each job with best fit.
type priority struct {
	packer
	ageing float64 // seconds per level of priority; <= 0: off
}

func (p *priority) Description() string {
	if p.ageing <= 0 {
		return strategies[Priority].desc + " (ageing off)"
	}
	return fmt.Sprintf("%s (every %g s)", strategies[Priority].desc, p.ageing)
}

// effective returns a job's priority after ageing: its priority plus one per
// ageing interval it has waited since submission.
func (p *priority) effective(j *Job, now float64) float64 {
	e := float64(j.Priority)
	if p.ageing > 0 && now > j.Submitted {
		e += float64(int64((now - j.Submitted) / p.ageing))
	}
	return e
}

// Order sorts by effective priority (higher first), then deadline (earlier
// first; none last), then submission, then arrival, then queue position.
func (p *priority) Order(queue []Job, now float64) []int {
	idx := identity(len(queue))
	eff := make([]float64, len(queue))
	for i := range queue {
		eff[i] = p.effective(&queue[i], now)
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := &queue[idx[a]], &queue[idx[b]]
		if ex, ey := eff[idx[a]], eff[idx[b]]; ex != ey {
			return ex > ey
		}
		if dx, dy := deadlineKey(x.Deadline), deadlineKey(y.Deadline); dx != dy {
			return dx < dy
		}
		if x.Submitted != y.Submitted {
			return x.Submitted < y.Submitted
		}
		return x.Seq < y.Seq
	})
	return idx
}

func deadlineKey(d float64) float64 {
	if d <= 0 {
		return math.Inf(1)
	}
	return d
}

// Order, for a decreasing strategy with SortBatch, visits the largest jobs
// (total cores) first, ties by largest task, then arrival; otherwise arrival.
func (p *packer) Order(queue []Job, _ float64) []int {
	if !p.sortBatch {
		return arrivalOrder(queue)
	}
	idx := identity(len(queue))
	total := make([]int, len(queue))
	largest := make([]int, len(queue))
	for i := range queue {
		for _, t := range queue[i].Tasks {
			total[i] += t.Cores
			largest[i] = max(largest[i], t.Cores)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := idx[a], idx[b]
		if total[x] != total[y] {
			return total[x] > total[y]
		}
		if largest[x] != largest[y] {
			return largest[x] > largest[y]
		}
		return queue[x].Seq < queue[y].Seq
	})
	return idx
}

// arrivalOrder returns the queue's indexes by Seq, ties in queue order.
func arrivalOrder(queue []Job) []int {
	idx := identity(len(queue))
	sort.SliceStable(idx, func(a, b int) bool { return queue[idx[a]].Seq < queue[idx[b]].Seq })
	return idx
}

func identity(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

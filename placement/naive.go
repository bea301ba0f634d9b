package placement

import (
	"errors"
	"fmt"
	"sort"
)

// ErrNoNaive: a strategy the naive reference does not decide as (the
// client-pinned no-scheduler: it takes no decision to compare).
var ErrNoNaive = errors.New("placement: no naive reference for this strategy")

// Naive is the naive reference placement: every decision scans every
// worker, the plainest correct scan (the original RESTfulSwarm's method,
// stopping early only where the answer cannot change). The property tests
// hold it to the same decisions as the indexed strategies; it is exported
// as the baseline that benchmarks (rswarm bench placement) measure the
// index against, and nothing else should place with it. It does not check
// its input as Cluster does.
type Naive struct {
	n                 *naiveCluster
	first, decreasing bool
}

// NewNaive returns an empty naive reference that decides as the strategy
// named: first fit, best fit or their decreasing variants; priority decides
// as best fit for a job taken alone. Unknown names wrap ErrUnknownStrategy,
// no-scheduler ErrNoNaive.
func NewNaive(strategy string) (*Naive, error) {
	nv := &Naive{n: newNaiveCluster()}
	switch strategy {
	case FirstFit:
		nv.first = true
	case BestFit, Priority:
	case FirstFitDecreasing:
		nv.first, nv.decreasing = true, true
	case BestFitDecreasing:
		nv.decreasing = true
	default:
		if _, err := New(strategy, Options{}); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s does not take unpinned requests", ErrNoNaive, strategy)
	}
	return nv, nil
}

// AddWorker registers a worker of cores cores and mem bytes of memory, or
// resizes it.
func (nv *Naive) AddWorker(id string, cores int, mem int64) { nv.n.addWorker(id, cores, mem) }

// Place places a job all-or-nothing, as the strategy does; the assignments
// come back in job order.
func (nv *Naive) Place(j Job) ([]Assignment, bool) { return nv.n.place(nv.first, nv.decreasing, j) }

// Release frees a task's cores and memory; false if it holds none.
func (nv *Naive) Release(task string) bool { return nv.n.release(task) }

// naiveCluster is the reference implementation behind Naive: the original
// RESTfulSwarm's method of looking at every worker for every decision. It
// is written to be obviously right rather than fast, and serves as the
// oracle of the property test and the baseline of benchmarks.
type naiveCluster struct {
	workers []naiveWorker
	byID    map[string]int
	tasks   map[string]naiveAlloc
}

type naiveWorker struct {
	id       string
	owner    []string // core -> task, "" when free
	free     int
	memTotal int64
	memUsed  int64
	up       bool
	removed  bool
}

type naiveAlloc struct {
	worker int
	cores  []int
	mem    int64
}

func newNaiveCluster() *naiveCluster {
	return &naiveCluster{byID: map[string]int{}, tasks: map[string]naiveAlloc{}}
}

// addWorker registers or resizes a worker, as Cluster.AddWorker (without
// its checks: callers give valid input).
func (n *naiveCluster) addWorker(id string, cores int, mem int64) {
	i, ok := n.byID[id]
	if !ok {
		i = len(n.workers)
		n.byID[id] = i
		n.workers = append(n.workers, naiveWorker{id: id, removed: true})
	}
	w := &n.workers[i]
	if w.removed {
		*w = naiveWorker{id: id, up: true}
	}
	owner := make([]string, cores)
	copy(owner, w.owner)
	w.owner = owner
	w.free = 0
	for _, t := range owner {
		if t == "" {
			w.free++
		}
	}
	w.memTotal = mem
}

func (n *naiveCluster) setUp(id string, up bool) {
	if i, ok := n.byID[id]; ok && !n.workers[i].removed {
		n.workers[i].up = up
	}
}

func (n *naiveCluster) removeWorker(id string) {
	i, ok := n.byID[id]
	if !ok {
		return
	}
	for _, t := range n.workers[i].owner {
		delete(n.tasks, t)
	}
	n.workers[i] = naiveWorker{id: id, removed: true}
}

func (n *naiveCluster) release(task string) bool {
	a, ok := n.tasks[task]
	if !ok {
		return false
	}
	delete(n.tasks, task)
	w := &n.workers[a.worker]
	for _, c := range a.cores {
		w.owner[c] = ""
	}
	w.free += len(a.cores)
	w.memUsed -= a.mem
	return true
}

// pick scans every worker for one request: the first that fits (first
// fit) or the one with the smallest leftover, lowest index on ties (best
// fit). -1 when none fits. Best fit stops at an exact fit: no leftover is
// smaller, and no earlier worker ties with it.
func (n *naiveCluster) pick(first bool, cores int, mem int64) int {
	best := -1
	for i := range n.workers {
		w := &n.workers[i]
		if !w.up || w.removed || w.free < cores || w.memTotal-w.memUsed < mem {
			continue
		}
		if first {
			return i
		}
		if w.free == cores {
			return i
		}
		if best < 0 || w.free < n.workers[best].free {
			best = i
		}
	}
	return best
}

// place places a job all-or-nothing: tasks in job order, or largest first
// (stable) when decreasing, each at the lowest free core ids of the worker
// picked. Assignments come back in job order.
func (n *naiveCluster) place(first, decreasing bool, j Job) ([]Assignment, bool) {
	order := identity(len(j.Tasks))
	if decreasing {
		sort.SliceStable(order, func(a, b int) bool { return j.Tasks[order[a]].Cores > j.Tasks[order[b]].Cores })
	}
	as := make([]Assignment, len(j.Tasks))
	var done []string
	for _, ti := range order {
		t := j.Tasks[ti]
		_, held := n.tasks[t.Name]
		i := n.pick(first, t.Cores, t.Mem)
		if i < 0 || held || t.Cores < 1 || t.Name == "" {
			for _, d := range done {
				n.release(d)
			}
			return nil, false
		}
		w := &n.workers[i]
		var cores []int
		for c, owner := range w.owner {
			if owner == "" && len(cores) < t.Cores {
				cores = append(cores, c)
				w.owner[c] = t.Name
			}
		}
		w.free -= t.Cores
		w.memUsed += t.Mem
		n.tasks[t.Name] = naiveAlloc{worker: i, cores: cores, mem: t.Mem}
		done = append(done, t.Name)
		as[ti] = Assignment{Task: t.Name, Worker: w.id, Cores: append([]int(nil), cores...)}
	}
	return as, true
}

package placement

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Errors returned by Cluster. They are wrapped with the worker, task or core
// concerned; compare with errors.Is.
var (
	// ErrInvalidWorker: an empty worker id, or negative cores or memory.
	ErrInvalidWorker = errors.New("placement: invalid worker")
	// ErrUnknownWorker: the worker is not registered (or was removed).
	ErrUnknownWorker = errors.New("placement: unknown worker")
	// ErrInvalidAllocation: an empty task name, no cores, a core listed twice, or negative memory.
	ErrInvalidAllocation = errors.New("placement: invalid allocation")
	// ErrCoreOutOfRange: a core id the worker does not have.
	ErrCoreOutOfRange = errors.New("placement: core id out of range")
	// ErrCoreHeld: the core is held by another task.
	ErrCoreHeld = errors.New("placement: core held by another task")
	// ErrTaskHoldsCores: the task already holds cores.
	ErrTaskHoldsCores = errors.New("placement: task already holds cores")
)

// MaxWorkerCores is the most cores a worker may have.
const MaxWorkerCores = 1 << 20

// worker is one registered worker and what its tasks hold. The fields every
// decision on the worker touches come first, so that they share one cache
// line; the struct is padded to two lines.
type worker struct {
	free    int32 // free cores
	up      bool
	removed bool
	mfree   int64    // memory not held by its tasks: memTotal minus their mem
	bits0   uint64   // bit c set = core c free, for cores 0..63
	id      string   // read for every assignment
	owner   []string // core -> task, "" when free

	cores    int
	memTotal int64
	moreBits []uint64 // free bits for cores 64.., 64 a word
	_        [24]byte
}

// word returns the word of free bits holding core.
func (w *worker) word(core int) *uint64 {
	if core < 64 {
		return &w.bits0
	}
	return &w.moreBits[(core>>6)-1]
}

func (w *worker) isFree(core int) bool { return *w.word(core)&(1<<(uint(core)&63)) != 0 }
func (w *worker) setFree(core int)     { *w.word(core) |= 1 << (uint(core) & 63) }
func (w *worker) setBusy(core int)     { *w.word(core) &^= 1 << (uint(core) & 63) }

func (w *worker) memFree() int64 { return w.mfree }
func (w *worker) memUsed() int64 { return w.memTotal - w.mfree }

// indexed reports whether the worker takes new tasks, and so sits in the indexes.
func (w *worker) indexed() bool { return w.up && !w.removed }

// allocation is what one task holds.
type allocation struct {
	worker int32
	mem    int64
	cores  []int // ascending
}

// Cluster is the jobmanager's view of capacity: workers in registration
// order, each with whole cores (ids 0..n-1) that are free or held by one
// task, and memory in bytes. It indexes free capacity so that best-fit and
// first-fit decisions cost O(log workers) rather than a scan. The zero value
// is not ready for use; call NewCluster.
type Cluster struct {
	workers []worker
	byID    map[string]int
	tasks   map[string]allocation

	// Best-fit index: byFree[f] holds the up workers with exactly f free
	// cores, count[f] how many, and freeVals the f with count[f] > 0.
	byFree   []*idxset
	count    []int
	freeVals *idxset
	// First-fit index and maxima.
	tree maxtree
	// sizes holds the total cores and memory of up workers, to tell a
	// task that waits for capacity from one no worker could ever take.
	sizes maxtree
	capN  int // capacity of the worker-indexed sets

	upFree, upTotal int // free and total cores over up workers
	upN, live       int // workers up, and registered (not removed)
}

// NewCluster returns an empty cluster.
func NewCluster() *Cluster {
	return &Cluster{
		byID:     make(map[string]int),
		tasks:    make(map[string]allocation),
		freeVals: newIdxset(64),
	}
}

// AddWorker registers a worker with cores (ids 0..cores-1) and mem bytes of
// memory, up. If the worker is present it is resized in place, keeping its
// allocations and its up state; shrinking below a held core is refused. The
// order of first addition is the worker's index, which breaks ties; a worker
// removed and added again takes back its first index.
func (c *Cluster) AddWorker(id string, cores int, mem int64) error {
	if id == "" || cores < 0 || cores > MaxWorkerCores || mem < 0 {
		return fmt.Errorf("add worker %q with %d cores and %d bytes: %w", id, cores, mem, ErrInvalidWorker)
	}
	i, ok := c.byID[id]
	if !ok {
		i = len(c.workers)
		c.byID[id] = i
		c.workers = append(c.workers, worker{id: id, removed: true})
		c.ensureWorkers(len(c.workers))
	}
	c.ensureFreeValues(cores)
	w := &c.workers[i]
	if w.removed {
		c.unindex(i)
		*w = worker{id: id, up: true}
		c.live++
		w.resize(cores)
		w.memTotal, w.mfree = mem, mem
		c.index(i)
		return nil
	}
	for core := cores; core < w.cores; core++ {
		if t := w.owner[core]; t != "" {
			return fmt.Errorf("resize worker %s to %d cores: core %d is held by task %s: %w", id, cores, core, t, ErrCoreHeld)
		}
	}
	c.unindex(i)
	w.resize(cores)
	w.memTotal, w.mfree = mem, mem-w.memUsed()
	c.index(i)
	return nil
}

// resize sets the number of cores; cores beyond the new size must be free.
func (w *worker) resize(cores int) {
	owner := make([]string, cores)
	copy(owner, w.owner)
	w.owner = owner
	w.bits0, w.moreBits = 0, nil
	if cores > 64 {
		w.moreBits = make([]uint64, (cores-1)/64)
	}
	w.free = 0
	for core, t := range owner {
		if t == "" {
			w.setFree(core)
			w.free++
		}
	}
	w.cores = cores
}

// SetUp marks a worker available or not; unavailable workers keep their
// allocations but get no new tasks. Unknown workers are ignored.
func (c *Cluster) SetUp(id string, up bool) {
	i, ok := c.byID[id]
	if !ok || c.workers[i].removed || c.workers[i].up == up {
		return
	}
	c.unindex(i)
	c.workers[i].up = up
	c.index(i)
}

// RemoveWorker drops a worker and the allocations on it, and returns the
// tasks that held cores there, in the order of their lowest core. Unknown
// workers give nil.
func (c *Cluster) RemoveWorker(id string) []string {
	i, ok := c.byID[id]
	if !ok || c.workers[i].removed {
		return nil
	}
	c.unindex(i)
	w := &c.workers[i]
	var held []string
	for core, t := range w.owner {
		if t != "" && c.tasks[t].cores[0] == core { // a task's lowest core: once per task
			held = append(held, t)
		}
	}
	for _, t := range held {
		delete(c.tasks, t)
	}
	*w = worker{id: id, removed: true}
	c.live--
	return held
}

// Allocate records that task holds cores and mem bytes on worker. It refuses
// an unknown worker, an empty task name, an empty or repeated core list, a
// core id out of range or held by another task, and a task that already
// holds cores. It does not check memory or whether the worker is up:
// recovery records what is, and strategies check fit before allocating.
func (c *Cluster) Allocate(task, workerID string, cores []int, mem int64) error {
	i, ok := c.byID[workerID]
	if !ok || c.workers[i].removed {
		return fmt.Errorf("allocate task %s on worker %s: %w", task, workerID, ErrUnknownWorker)
	}
	if err := c.check(task, i, cores, mem); err != nil {
		return err
	}
	own := slices.Clone(cores)
	slices.Sort(own)
	c.commit(task, i, own, mem)
	return nil
}

// check validates an allocation of cores on worker i without changing anything.
func (c *Cluster) check(task string, i int, cores []int, mem int64) error {
	w := &c.workers[i]
	if task == "" {
		return fmt.Errorf("allocate on worker %s: empty task name: %w", w.id, ErrInvalidAllocation)
	}
	if len(cores) == 0 {
		return fmt.Errorf("allocate task %s on worker %s: no cores: %w", task, w.id, ErrInvalidAllocation)
	}
	if mem < 0 {
		return fmt.Errorf("allocate task %s on worker %s: negative memory %d: %w", task, w.id, mem, ErrInvalidAllocation)
	}
	if a, held := c.tasks[task]; held {
		return fmt.Errorf("allocate task %s on worker %s: it holds cores %v on worker %s: %w",
			task, w.id, a.cores, c.workers[a.worker].id, ErrTaskHoldsCores)
	}
	for k, core := range cores {
		if core < 0 || core >= w.cores {
			return fmt.Errorf("allocate task %s: core %d on worker %s (it has %d cores): %w", task, core, w.id, w.cores, ErrCoreOutOfRange)
		}
		if t := w.owner[core]; t != "" {
			return fmt.Errorf("allocate task %s: core %d on worker %s is held by task %s: %w", task, core, w.id, t, ErrCoreHeld)
		}
		if slices.Contains(cores[:k], core) {
			return fmt.Errorf("allocate task %s: core %d on worker %s listed twice: %w", task, core, w.id, ErrInvalidAllocation)
		}
	}
	return nil
}

// commit records a checked allocation; cores are ascending and owned by c.
func (c *Cluster) commit(task string, i int, cores []int, mem int64) {
	w := &c.workers[i]
	old := int(w.free)
	for _, core := range cores {
		w.owner[core] = task
		w.setBusy(core)
	}
	w.free -= int32(len(cores))
	w.mfree -= mem
	c.tasks[task] = allocation{worker: int32(i), mem: mem, cores: cores}
	c.moved(i, old)
}

// takeLowest allocates the k lowest free cores of worker i to task (which
// must hold none, and k <= free) and returns them, ascending, in a slice the
// caller may keep: the cluster keeps its own copy.
func (c *Cluster) takeLowest(task string, i, k int, mem int64) []int {
	w := &c.workers[i]
	both := make([]int, 0, 2*k) // one allocation: the cluster's copy, then the caller's
	word := w.bits0
	for wi := 0; ; wi++ {
		for word != 0 && len(both) < k {
			both = append(both, wi<<6|bits.TrailingZeros64(word))
			word &= word - 1
		}
		if len(both) == k || wi >= len(w.moreBits) {
			break
		}
		word = w.moreBits[wi]
	}
	both = append(both, both...)
	c.commit(task, i, both[:k:k], mem)
	return both[k:]
}

// Release frees everything task holds and returns where it was. It is
// idempotent: ok is false when the task held nothing.
func (c *Cluster) Release(task string) (workerID string, cores []int, ok bool) {
	a, ok := c.tasks[task]
	if !ok {
		return "", nil, false
	}
	delete(c.tasks, task)
	i := int(a.worker)
	w := &c.workers[i]
	old := int(w.free)
	for _, core := range a.cores {
		w.owner[core] = ""
		w.setFree(core)
	}
	w.free += int32(len(a.cores))
	w.mfree += a.mem
	c.moved(i, old)
	return w.id, a.cores, true
}

// Holds returns the worker and cores a task holds.
func (c *Cluster) Holds(task string) (workerID string, cores []int, ok bool) {
	a, ok := c.tasks[task]
	if !ok {
		return "", nil, false
	}
	return c.workers[a.worker].id, slices.Clone(a.cores), true
}

// WorkerView is a read-only snapshot of one worker.
type WorkerView struct {
	ID       string
	Cores    int // total cores, ids 0..Cores-1
	Free     int // free cores
	MemTotal int64
	MemFree  int64 // MemTotal minus the memory of the tasks it holds; may be negative after a shrink
	Up       bool
	Busy     map[int]string // core -> task
}

func (c *Cluster) view(i int) WorkerView {
	w := &c.workers[i]
	v := WorkerView{ID: w.id, Cores: w.cores, Free: int(w.free), MemTotal: w.memTotal, MemFree: w.memFree(), Up: w.up,
		Busy: make(map[int]string, w.cores-int(w.free))}
	for core, t := range w.owner {
		if t != "" {
			v.Busy[core] = t
		}
	}
	return v
}

// Workers returns a snapshot of every registered worker, in registration order.
func (c *Cluster) Workers() []WorkerView {
	out := make([]WorkerView, 0, len(c.workers))
	for i := range c.workers {
		if !c.workers[i].removed {
			out = append(out, c.view(i))
		}
	}
	return out
}

// Worker returns a snapshot of one worker.
func (c *Cluster) Worker(id string) (WorkerView, bool) {
	i, ok := c.byID[id]
	if !ok || c.workers[i].removed {
		return WorkerView{}, false
	}
	return c.view(i), true
}

// FreeCores returns the free and total cores of the workers that are up.
func (c *Cluster) FreeCores() (free, total int) { return c.upFree, c.upTotal }

// Tasks returns how many tasks hold cores.
func (c *Cluster) Tasks() int { return len(c.tasks) }

// ensureWorkers makes the worker-indexed sets hold n workers.
func (c *Cluster) ensureWorkers(n int) {
	if n <= c.capN {
		return
	}
	capN := max(64, c.capN)
	for capN < n {
		capN *= 2
	}
	c.capN = capN
	for _, s := range c.byFree {
		if s != nil {
			s.grow(capN)
		}
	}
	c.tree.grow(capN)
	c.sizes.grow(capN)
}

// ensureFreeValues makes the best-fit index hold free counts up to cores.
func (c *Cluster) ensureFreeValues(cores int) {
	if cores < len(c.byFree) {
		return
	}
	n := max(cores+1, 2*len(c.byFree))
	byFree := make([]*idxset, n)
	copy(byFree, c.byFree)
	count := make([]int, n)
	copy(count, c.count)
	c.byFree, c.count = byFree, count
	c.freeVals.grow(n)
}

// index adds worker i to the indexes if it takes new tasks.
func (c *Cluster) index(i int) {
	w := &c.workers[i]
	if !w.indexed() {
		return
	}
	c.bucketAdd(i, int(w.free))
	c.tree.set(i, w.free, w.memFree())
	c.sizes.set(i, int32(min(w.cores, math.MaxInt32)), w.memTotal)
	c.upFree += int(w.free)
	c.upTotal += w.cores
	c.upN++
}

// unindex removes worker i from the indexes if it is there.
func (c *Cluster) unindex(i int) {
	w := &c.workers[i]
	if !w.indexed() {
		return
	}
	c.bucketRemove(i, int(w.free))
	c.tree.set(i, absentFree, absentMem)
	c.sizes.set(i, absentFree, absentMem)
	c.upFree -= int(w.free)
	c.upTotal -= w.cores
	c.upN--
}

// moved updates the indexes after worker i's free cores went from old to
// its current count (and its memory may have changed).
func (c *Cluster) moved(i, old int) {
	w := &c.workers[i]
	if !w.indexed() {
		return
	}
	if free := int(w.free); old != free {
		c.bucketRemove(i, old)
		c.bucketAdd(i, free)
		c.upFree += free - old
	}
	c.tree.set(i, w.free, w.memFree())
}

func (c *Cluster) bucketAdd(i, f int) {
	s := c.byFree[f]
	if s == nil {
		s = newIdxset(c.capN)
		c.byFree[f] = s
	}
	s.add(i)
	c.count[f]++
	if c.count[f] == 1 {
		c.freeVals.add(f)
	}
}

func (c *Cluster) bucketRemove(i, f int) {
	c.byFree[f].remove(i)
	c.count[f]--
	if c.count[f] == 0 {
		c.freeVals.remove(f)
	}
}

// bestFit returns the up worker with the fewest free cores >= k and free
// memory >= mem, the lowest index among equals; -1 when none fits.
func (c *Cluster) bestFit(k int, mem int64) int {
	for f := c.freeVals.next(k); f >= 0; f = c.freeVals.next(f + 1) {
		s := c.byFree[f]
		for i := s.next(0); i >= 0; i = s.next(i + 1) {
			if c.workers[i].memFree() >= mem {
				return i
			}
		}
	}
	return -1
}

// couldFit reports whether some up worker is large enough for a task of k
// cores and mem bytes when empty.
func (c *Cluster) couldFit(k int, mem int64) bool {
	return k <= math.MaxInt32 && c.sizes.first(int32(k), mem) >= 0
}

// firstFit returns the lowest-index up worker with free cores >= k and free
// memory >= mem; -1 when none fits.
func (c *Cluster) firstFit(k int, mem int64) int {
	if k > int(^uint32(0)>>1) {
		return -1
	}
	return c.tree.first(int32(k), mem)
}

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
	// ErrNoNames: a call by task name on a cluster that keeps no name
	// index (NoNames).
	ErrNoNames = errors.New("placement: cluster keeps no task names (NoNames): use handles")
)

// MaxWorkerCores is the most cores a worker may have.
const MaxWorkerCores = 1 << 20

// worker is one registered worker and what its tasks hold, in two cache
// lines: the first holds the free cores and memory, the id and the rest of
// what a decision reads; the second lists the tasks it holds (which core a
// task holds is in the task's record). Placing or releasing a task on a
// worker writes these two lines, the task's record and the indexes; many
// processors fetch an aligned pair of lines together, and c.workers, once
// large, is page-aligned. (A per-core owner slice, written for every task,
// cost a cache miss on most decisions.)
type worker struct {
	free     int32 // free cores
	cores    int32
	mfree    int64  // memory not held by its tasks: memTotal minus their mem
	bits0    uint64 // bit c set = core c free, for cores 0..63
	id       string // read for every assignment
	memTotal int64
	more     *workerMore // nil unless it has more than 64 cores or inlineTasks tasks
	up       bool
	removed  bool
	stale    bool // its leaf of the max tree is out of date (listed in Cluster.stale)
	_        [5]byte

	// tasks[s] is the handle of a task it holds when bit s of used is set.
	tasks [inlineTasks]int32
	used  uint16
	_     uint16
	// moreUsed is the first word of more's used slots (workerMore): here,
	// releasing a task listed in one of them reads no other line.
	moreUsed uint64
}

// inlineTasks is how many tasks a worker lists in its second cache line;
// more go to workerMore.tasks.
const inlineTasks = 13

// workerMore is what a worker holds beyond the common case.
//
// Its task slots are used or free like the inline ones, by bit, so that
// releasing a task of the first 64 slots clears a bit of the worker
// (worker.moreUsed) and reads nothing else: a list compacted by moving its
// last task into the hole read this struct, the slots and the moved task's
// record, cache misses on most releases from a worker of 64 cores full of
// one-core tasks.
type workerMore struct {
	usedHi []uint64 // bit s set = tasks[64+s] lists a task, 64 a word (as long as needed)
	bits   []uint64 // free bits for cores 64.., 64 a word
	tasks  []int32  // handles of the tasks beyond the inline ones, by slot; a slot whose bit is clear is free
}

// usedWord returns word wi of the used bits (0 past the last); used0 is
// the first (worker.moreUsed).
func (m *workerMore) usedWord(used0 uint64, wi int) uint64 {
	if wi == 0 {
		return used0
	}
	if wi-1 < len(m.usedHi) {
		return m.usedHi[wi-1]
	}
	return 0
}

// add lists task h in the first free slot and returns the slot; used0 is
// the first word of used bits.
func (m *workerMore) add(used0 *uint64, h int32) int {
	n := len(m.tasks)
	s := n
	for wi := 0; wi*64 < n; wi++ {
		if z := bits.TrailingZeros64(^m.usedWord(*used0, wi)); z < 64 && wi*64+z < n {
			s = wi*64 + z
			break
		}
	}
	if s == n {
		m.tasks = append(m.tasks, h)
	} else {
		m.tasks[s] = h
	}
	if s < 64 {
		*used0 |= 1 << uint(s)
		return s
	}
	for len(m.usedHi) <= s/64-1 {
		m.usedHi = append(m.usedHi, 0)
	}
	m.usedHi[s/64-1] |= 1 << (uint(s) & 63)
	return s
}

// remove frees slot s; used0 is the first word of used bits.
func (m *workerMore) remove(used0 *uint64, s int) {
	if s < 64 {
		*used0 &^= 1 << uint(s)
		return
	}
	m.usedHi[s/64-1] &^= 1 << (uint(s) & 63)
}

// each appends the handles of the tasks listed to buf; used0 is the first
// word of used bits.
func (m *workerMore) each(used0 uint64, buf []int32) []int32 {
	for wi := 0; wi*64 < len(m.tasks); wi++ {
		for u := m.usedWord(used0, wi); u != 0; u &= u - 1 {
			buf = append(buf, m.tasks[wi*64+bits.TrailingZeros64(u)])
		}
	}
	return buf
}

// word returns the word of free bits holding core.
func (w *worker) word(core int) *uint64 {
	if core < 64 {
		return &w.bits0
	}
	return &w.more.bits[(core>>6)-1]
}

func (w *worker) isFree(core int) bool { return *w.word(core)&(1<<(uint(core)&63)) != 0 }

func (w *worker) memFree() int64 { return w.mfree }
func (w *worker) memUsed() int64 { return w.memTotal - w.mfree }

// moreBits returns the free bits of cores 64 and up.
func (w *worker) moreBits() []uint64 {
	if w.more == nil {
		return nil
	}
	return w.more.bits
}

// indexed reports whether the worker takes new tasks, and so sits in the indexes.
func (w *worker) indexed() bool { return w.up && !w.removed }

// taskRec is what one task holds. Records live in Cluster.recs and are named
// by their index, a handle: the workers and the name table hold handles, not
// pointers, so the garbage collector has little to scan and recording a
// task needs no write barrier. A released record goes on a free list and is
// reused first (its cache line is likely still warm).
type taskRec struct {
	name   string
	mask   uint64 // bit c set = the task holds core c, for cores 0..63
	mem    int64
	worker int32   // worker index; on the free list, the next free record or -1
	pos    int32   // where the worker lists it: < inlineTasks inline, else slot pos-inlineTasks of more
	hash   uint32  // the name's hash in the name table, to find its slot by handle
	high   *[]int  // the cores >= 64 it holds, ascending; nil for most tasks
	_      [8]byte // 64 bytes: a record in one cache line
}

// highCores returns the cores >= 64 the task holds, ascending.
func (r *taskRec) highCores() []int {
	if r.high == nil {
		return nil
	}
	return *r.high
}

// cores appends the task's cores, ascending, to buf.
func (r *taskRec) cores(buf []int) []int {
	for m := r.mask; m != 0; m &= m - 1 {
		buf = append(buf, bits.TrailingZeros64(m))
	}
	return append(buf, r.highCores()...)
}

// ncores returns how many cores the task holds.
func (r *taskRec) ncores() int { return bits.OnesCount64(r.mask) + len(r.highCores()) }

// lowest returns the task's lowest core.
func (r *taskRec) lowest() int {
	if r.mask != 0 {
		return bits.TrailingZeros64(r.mask)
	}
	return (*r.high)[0]
}

// has reports whether the task holds core.
func (r *taskRec) has(core int) bool {
	if core < 64 {
		return r.mask&(1<<uint(core)) != 0
	}
	_, found := slices.BinarySearch(r.highCores(), core)
	return found
}

// Cluster is the jobmanager's view of capacity: workers in registration
// order, each with whole cores (ids 0..n-1) that are free or held by one
// task, and memory in bytes. It indexes free capacity so that best-fit and
// first-fit decisions cost O(log workers) rather than a scan. The zero value
// is not ready for use; call NewCluster.
type Cluster struct {
	workers []worker
	byID    map[string]int
	recs    []taskRec // task records, by handle
	freeRec int32     // the first free record, or -1
	names   nameTable // task name -> handle (empty when noNames)
	ntasks  int       // records holding cores
	// noNames: tasks are not indexed by name (NoNames); the caller holds
	// handles and keeps names unique itself.
	noNames bool

	// count[f] is how many up workers have exactly f free cores.
	count []int
	// Best-fit index: byFree[f] holds the up workers with exactly f free
	// cores, and freeVals the f with count[f] > 0.
	byFree   []*idxset
	freeVals *idxset
	// First-fit index: the sets of workers with at least 1..fitDepth free
	// cores.
	fit fitIndex
	// The best-fit and first-fit indexes are built by the first search
	// that uses them, and kept from then on (bestOn, firstOn): a cluster
	// placing by one rule does not pay to keep the other rule's index.
	bestOn, firstOn bool
	// tree is a max tree of free cores and memory: first fit when memory
	// is short or a task asks for more than fitDepth cores, and the
	// largest free block for reasons. It is brought up to date only when
	// read (freshTree): the workers whose leaf is out of date are listed in
	// stale, so that decisions that do not read it do not pay for it.
	tree  maxtree
	stale []int32
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
		freeRec:  -1,
		names:    newNameTable(),
		freeVals: newIdxset(64),
	}
}

// NoNames makes the cluster keep no index of task names, for a caller
// that releases tasks by handle only and keeps their names unique itself
// (the simulator): placing a task neither hashes its name nor checks that
// it holds no cores already, and releasing by handle does not look for its
// name. Records still hold names, for views and errors. Calls by name
// (Allocate, Release, Holds, Handle) are refused: Allocate returns
// ErrNoNames, the others panic, as calling them is a programming error.
// It must be called before any task holds cores.
func (c *Cluster) NoNames() {
	if c.ntasks > 0 {
		panic("placement: NoNames on a cluster whose tasks hold cores")
	}
	c.noNames = true
}

// lookup returns the record handle of task, or -1, and where to insert it.
// It panics on a cluster without names: a call by name there is a
// programming error.
func (c *Cluster) lookup(task string) (int32, probe) {
	if c.noNames {
		panic("placement: task " + task + " looked up by name on a cluster without names (NoNames)")
	}
	return c.names.lookup(c.recs, task)
}

// placeLookup is lookup for placing task: on a cluster without names it
// finds nothing, as the caller keeps names unique.
func (c *Cluster) placeLookup(task string) (int32, probe) {
	if c.noNames {
		return -1, probe{}
	}
	return c.names.lookup(c.recs, task)
}

// newRec returns the handle of a record for task, named at p (the probe of
// a lookup that did not find it), for the caller to fill in.
func (c *Cluster) newRec(task string, p probe) int32 {
	h := c.freeRec
	if h >= 0 {
		c.freeRec = c.recs[h].worker
	} else {
		h = int32(len(c.recs))
		c.recs = append(c.recs, taskRec{})
	}
	// Field by field: a free record is zero but for worker, and assigning
	// the whole struct would take the slower path of the write barrier.
	c.recs[h].name = task
	c.ntasks++
	if !c.noNames {
		c.recs[h].hash = p.hash
		c.names.insert(p, h)
	}
	return h
}

// dropRec forgets record h, named at slot (ignored without names).
func (c *Cluster) dropRec(h int32, slot int) {
	if !c.noNames {
		c.names.remove(slot)
	}
	c.ntasks--
	r := &c.recs[h]
	r.name, r.mask, r.mem, r.worker, r.pos, r.hash = "", 0, 0, c.freeRec, 0, 0
	if r.high != nil {
		r.high = nil
	}
	c.freeRec = h
}

// list adds record h to worker i's tasks.
func (c *Cluster) list(i int, h int32) {
	w := &c.workers[i]
	r := &c.recs[h]
	r.worker = int32(i)
	if s := bits.TrailingZeros16(^w.used); s < inlineTasks {
		w.tasks[s] = h
		w.used |= 1 << uint(s)
		r.pos = int32(s)
		return
	}
	if w.more == nil {
		w.more = &workerMore{}
	}
	r.pos = int32(inlineTasks + w.more.add(&w.moreUsed, h))
}

// unlist removes record h from its worker's tasks.
func (c *Cluster) unlist(h int32) {
	r := &c.recs[h]
	w := &c.workers[r.worker]
	if r.pos < inlineTasks {
		w.used &^= 1 << uint(r.pos)
		return
	}
	if s := int(r.pos) - inlineTasks; s < 64 {
		w.moreUsed &^= 1 << uint(s) // not reading w.more: one cache miss fewer
	} else {
		w.more.remove(&w.moreUsed, s)
	}
}

// tasksOf appends the handles of the tasks worker w holds, in no order, to buf.
func (w *worker) tasksOf(buf []int32) []int32 {
	for u := w.used; u != 0; u &= u - 1 {
		buf = append(buf, w.tasks[bits.TrailingZeros16(u)])
	}
	if w.more != nil {
		buf = w.more.each(w.moreUsed, buf)
	}
	return buf
}

// ownerOf returns the handle of the task holding core of worker w, or -1
// when it is free.
func (c *Cluster) ownerOf(w *worker, core int) int32 {
	if w.isFree(core) {
		return -1
	}
	for _, h := range w.tasksOf(nil) {
		if c.recs[h].has(core) {
			return h
		}
	}
	panic(fmt.Sprintf("placement: core %d of worker %s is busy but no task holds it", core, w.id))
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
		*w = worker{id: id, up: true, stale: w.stale}
		c.live++
		w.resize(cores)
		w.memTotal, w.mfree = mem, mem
		c.index(i)
		return nil
	}
	for core := cores; core < int(w.cores); core++ {
		if h := c.ownerOf(w, core); h >= 0 {
			return fmt.Errorf("resize worker %s to %d cores: core %d is held by task %s: %w",
				id, cores, core, c.recs[h].name, ErrCoreHeld)
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
	var more []uint64
	if cores > 64 {
		more = make([]uint64, (cores-1)/64)
		copy(more, w.moreBits())
	}
	if more != nil && w.more == nil {
		w.more = &workerMore{}
	}
	if w.more != nil {
		w.more.bits = more
	}
	for core := int(w.cores); core < cores; core++ { // cores it did not have are free
		*w.word(core) |= 1 << (uint(core) & 63)
	}
	if cores < 64 { // clear the bits of the cores it no longer has
		w.bits0 &= 1<<uint(cores) - 1
	} else if r := cores & 63; r != 0 {
		more[len(more)-1] &= 1<<uint(r) - 1
	}
	w.free = int32(bits.OnesCount64(w.bits0))
	for _, word := range more {
		w.free += int32(bits.OnesCount64(word))
	}
	w.cores = int32(cores)
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
	hs := w.tasksOf(nil)
	slices.SortFunc(hs, func(a, b int32) int { return c.recs[a].lowest() - c.recs[b].lowest() })
	var held []string
	for _, h := range hs {
		held = append(held, c.recs[h].name)
		c.dropRec(h, c.slotOf(h))
	}
	*w = worker{id: id, removed: true, stale: w.stale}
	c.live--
	return held
}

// Allocate records that task holds cores and mem bytes on worker. It refuses
// an unknown worker, an empty task name, an empty or repeated core list, a
// core id out of range or held by another task, and a task that already
// holds cores. It does not check memory or whether the worker is up:
// recovery records what is, and strategies check fit before allocating.
func (c *Cluster) Allocate(task, workerID string, cores []int, mem int64) error {
	if c.noNames {
		return fmt.Errorf("allocate task %s on worker %s: %w", task, workerID, ErrNoNames)
	}
	i, ok := c.byID[workerID]
	if !ok || c.workers[i].removed {
		return fmt.Errorf("allocate task %s on worker %s: %w", task, workerID, ErrUnknownWorker)
	}
	if err := c.check(task, i, cores, mem); err != nil {
		return err
	}
	c.commit(task, i, slices.Sorted(slices.Values(cores)), mem)
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
	if h, _ := c.lookup(task); h >= 0 {
		r := &c.recs[h]
		return fmt.Errorf("allocate task %s on worker %s: it holds cores %v on worker %s: %w",
			task, w.id, r.cores(nil), c.workers[r.worker].id, ErrTaskHoldsCores)
	}
	for k, core := range cores {
		if core < 0 || core >= int(w.cores) {
			return fmt.Errorf("allocate task %s: core %d on worker %s (it has %d cores): %w", task, core, w.id, w.cores, ErrCoreOutOfRange)
		}
		if h := c.ownerOf(w, core); h >= 0 {
			return fmt.Errorf("allocate task %s: core %d on worker %s is held by task %s: %w",
				task, core, w.id, c.recs[h].name, ErrCoreHeld)
		}
		if slices.Contains(cores[:k], core) {
			return fmt.Errorf("allocate task %s: core %d on worker %s listed twice: %w", task, core, w.id, ErrInvalidAllocation)
		}
	}
	return nil
}

// commit records a checked allocation of cores, ascending.
func (c *Cluster) commit(task string, i int, cores []int, mem int64) Handle {
	_, p := c.placeLookup(task)
	h := c.newRec(task, p)
	c.list(i, h)
	r := &c.recs[h]
	w := &c.workers[i]
	old := int(w.free)
	for k, core := range cores {
		*w.word(core) &^= 1 << (uint(core) & 63)
		if core < 64 {
			r.mask |= 1 << uint(core)
		} else if r.high == nil {
			high := slices.Clone(cores[k:])
			r.high = &high
		}
	}
	r.mem = mem
	w.free -= int32(len(cores))
	w.mfree -= mem
	c.moved(i, old)
	return Handle(h)
}

// take allocates the len(cores) lowest free cores of worker i (no more
// than it has free) to task, which the lookup that gave p did not find, and
// writes their ids, ascending, to cores.
func (c *Cluster) take(task string, p probe, i int, cores []int, mem int64) Handle {
	h := c.newRec(task, p)
	c.list(i, h)
	r := &c.recs[h]
	w := &c.workers[i]
	old := int(w.free)
	k := len(cores)
	word := w.bits0
	n := 0
	for ; n < k && word != 0; n++ {
		cores[n] = bits.TrailingZeros64(word)
		word &= word - 1
	}
	r.mask = w.bits0 &^ word
	w.bits0 = word
	if n < k { // the rest from cores 64 and up
		low, more := n, w.more.bits
		for wi := 0; n < k; wi++ {
			word := more[wi]
			for ; n < k && word != 0; n++ {
				cores[n] = (wi+1)<<6 | bits.TrailingZeros64(word)
				word &= word - 1
			}
			more[wi] = word
		}
		high := slices.Clone(cores[low:])
		r.high = &high
	}
	r.mem = mem
	w.free -= int32(k)
	w.mfree -= mem
	c.moved(i, old)
	return Handle(h)
}

// Release frees everything task holds and returns where it was. It is
// idempotent: ok is false when the task held nothing.
func (c *Cluster) Release(task string) (workerID string, cores []int, ok bool) {
	h, p := c.lookup(task)
	if h < 0 {
		return "", nil, false
	}
	r := &c.recs[h]
	w := &c.workers[r.worker]
	cores = r.cores(make([]int, 0, r.ncores()))
	c.free(h, p.slot)
	return w.id, cores, true
}

// free gives back what record h, named at slot, holds and forgets it.
func (c *Cluster) free(h int32, slot int) {
	r := &c.recs[h]
	i := int(r.worker)
	w := &c.workers[i]
	old := int(w.free)
	w.bits0 |= r.mask
	for _, core := range r.highCores() {
		*w.word(core) |= 1 << (uint(core) & 63)
	}
	w.free += int32(r.ncores())
	w.mfree += r.mem
	c.unlist(h)
	c.dropRec(h, slot)
	c.moved(i, old)
}

// Handle names the record of a task that holds cores, for ReleaseHandle:
// a caller that keeps many tasks (the simulator) releases them without
// hashing and comparing their names again. It is valid until the task is
// released, by either call; then the cluster may give it to another task.
type Handle int32

// Handle returns the handle of task while it holds cores.
func (c *Cluster) Handle(task string) (Handle, bool) {
	h, _ := c.lookup(task)
	return Handle(h), h >= 0
}

// ReleaseHandle frees everything the task of handle h holds, as Release
// does for its name, without returning where it was. ok is false when h
// names no task holding cores (a handle out of range or released).
func (c *Cluster) ReleaseHandle(h Handle) (ok bool) {
	if h < 0 || int(h) >= len(c.recs) || c.recs[h].name == "" {
		return false
	}
	c.free(int32(h), c.slotOf(int32(h)))
	return true
}

// ReleaseHandleWorker is ReleaseHandle, also returning the id of the
// worker the task was on ("" when h names no task holding cores).
func (c *Cluster) ReleaseHandleWorker(h Handle) (workerID string, ok bool) {
	if h < 0 || int(h) >= len(c.recs) || c.recs[h].name == "" {
		return "", false
	}
	id := c.workers[c.recs[h].worker].id
	c.free(int32(h), c.slotOf(int32(h)))
	return id, true
}

// slotOf returns the name table slot of record h (-1 without names).
func (c *Cluster) slotOf(h int32) int {
	if c.noNames {
		return -1
	}
	return c.names.slotOf(c.recs[h].hash, h)
}

// BusyCores appends to buf the cores held on each registered worker, in
// registration order (0 for a removed one), for a per-worker view (a heat
// map) that a snapshot of every worker would cost too much for.
func (c *Cluster) BusyCores(buf []int32) []int32 {
	for i := range c.workers {
		w := &c.workers[i]
		if w.removed {
			buf = append(buf, 0)
			continue
		}
		buf = append(buf, w.cores-w.free)
	}
	return buf
}

// Holds returns the worker and cores a task holds.
func (c *Cluster) Holds(task string) (workerID string, cores []int, ok bool) {
	h, _ := c.lookup(task)
	if h < 0 {
		return "", nil, false
	}
	r := &c.recs[h]
	return c.workers[r.worker].id, r.cores(make([]int, 0, r.ncores())), true
}

// holder returns the name of the task holding core of worker w, or "".
func (c *Cluster) holder(w *worker, core int) string {
	if h := c.ownerOf(w, core); h >= 0 {
		return c.recs[h].name
	}
	return ""
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
	v := WorkerView{ID: w.id, Cores: int(w.cores), Free: int(w.free), MemTotal: w.memTotal, MemFree: w.memFree(), Up: w.up,
		Busy: make(map[int]string, int(w.cores)-int(w.free))}
	var buf []int
	for _, h := range w.tasksOf(nil) {
		r := &c.recs[h]
		buf = r.cores(buf[:0])
		for _, core := range buf {
			v.Busy[core] = r.name
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
func (c *Cluster) Tasks() int { return c.ntasks }

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
	c.fit.grow(capN)
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
	c.count[w.free]++
	if c.bestOn {
		c.bucketAdd(i, int(w.free))
	}
	if c.firstOn {
		c.fit.move(i, 0, int(w.free))
	}
	c.treeChanged(i)
	c.sizes.set(i, w.cores, w.memTotal)
	c.upFree += int(w.free)
	c.upTotal += int(w.cores)
	c.upN++
}

// unindex removes worker i from the indexes if it is there.
func (c *Cluster) unindex(i int) {
	w := &c.workers[i]
	if !w.indexed() {
		return
	}
	c.count[w.free]--
	if c.bestOn {
		c.bucketRemove(i, int(w.free))
	}
	if c.firstOn {
		c.fit.move(i, int(w.free), 0)
	}
	c.treeChanged(i)
	c.sizes.set(i, absentFree, absentMem)
	c.upFree -= int(w.free)
	c.upTotal -= int(w.cores)
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
		c.count[old]--
		c.count[free]++
		if c.bestOn {
			c.bucketRemove(i, old)
			c.bucketAdd(i, free)
		}
		if c.firstOn {
			c.fit.move(i, old, free)
		}
		c.upFree += free - old
	}
	c.treeChanged(i)
}

// treeChanged notes that worker i's leaf of the max tree is out of date.
func (c *Cluster) treeChanged(i int) {
	if w := &c.workers[i]; !w.stale {
		w.stale = true
		c.stale = append(c.stale, int32(i))
	}
}

// freshTree brings the max tree up to date and returns it.
func (c *Cluster) freshTree() *maxtree {
	for _, i := range c.stale {
		w := &c.workers[i]
		w.stale = false
		if w.indexed() {
			c.tree.set(int(i), w.free, w.memFree())
		} else {
			c.tree.set(int(i), absentFree, absentMem)
		}
	}
	c.stale = c.stale[:0]
	return &c.tree
}

// bucketAdd puts worker i in the best-fit bucket of f free cores; count[f]
// counts it already.
func (c *Cluster) bucketAdd(i, f int) {
	s := c.byFree[f]
	if s == nil {
		s = newIdxset(c.capN)
		c.byFree[f] = s
	}
	s.add(i)
	if c.count[f] == 1 {
		c.freeVals.add(f)
	}
}

// bucketRemove takes worker i out of the best-fit bucket of f free cores;
// count[f] no longer counts it.
func (c *Cluster) bucketRemove(i, f int) {
	c.byFree[f].remove(i)
	if c.count[f] == 0 {
		c.freeVals.remove(f)
	}
}

// bestIndex builds the best-fit index if it is not kept yet.
func (c *Cluster) bestIndex() {
	if c.bestOn {
		return
	}
	c.bestOn = true
	for i := range c.workers {
		if w := &c.workers[i]; w.indexed() {
			s := c.byFree[w.free]
			if s == nil {
				s = newIdxset(c.capN)
				c.byFree[w.free] = s
			}
			s.add(i)
		}
	}
	for f, n := range c.count {
		if n > 0 {
			c.freeVals.add(f)
		}
	}
}

// firstIndex builds the first-fit index if it is not kept yet.
func (c *Cluster) firstIndex() {
	if c.firstOn {
		return
	}
	c.firstOn = true
	for i := range c.workers {
		if w := &c.workers[i]; w.indexed() {
			c.fit.move(i, 0, int(w.free))
		}
	}
}

// bestFit returns the up worker with the fewest free cores >= k and free
// memory >= mem, the lowest index among equals; -1 when none fits.
func (c *Cluster) bestFit(k int, mem int64) int {
	c.bestIndex()
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
	if k <= fitDepth {
		c.firstIndex()
		i := c.fit.first(k)
		if i < 0 || c.workers[i].memFree() >= mem {
			return i
		}
		// Memory, not cores, is short on the first worker with k free
		// cores: the max tree finds the first with both.
	}
	if k > math.MaxInt32 {
		return -1
	}
	return c.freshTree().first(int32(k), mem)
}

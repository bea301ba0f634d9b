package placement

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"testing"
	"unsafe"
)

const (
	mb = int64(1e6)
	gb = int64(1e9)
)

// spec is a worker for tests: id, cores, memory (0 = 64 GB), cores held by
// a task named "<id>-held", and whether it is down.
type spec struct {
	id    string
	cores int
	mem   int64
	held  []int
	down  bool
}

// newTestCluster builds a cluster from specs, in order.
func newTestCluster(t testing.TB, specs ...spec) *Cluster {
	t.Helper()
	c := NewCluster()
	for _, s := range specs {
		mem := s.mem
		if mem == 0 {
			mem = 64 * gb
		}
		if err := c.AddWorker(s.id, s.cores, mem); err != nil {
			t.Fatal(err)
		}
		if len(s.held) > 0 {
			if err := c.Allocate(s.id+"-held", s.id, s.held, 0); err != nil {
				t.Fatal(err)
			}
		}
		if s.down {
			c.SetUp(s.id, false)
		}
	}
	checkCluster(t, c)
	return c
}

// checkCluster verifies every invariant of c: each core free or held by one
// live task that records it; free + busy == cores on every worker; the
// indexes and totals agree with the workers.
func checkCluster(t testing.TB, c *Cluster) {
	t.Helper()
	if err := clusterProblem(c); err != nil {
		t.Fatal(err)
	}
}

// owners returns, for worker i, the task holding each core ("" when free).
func owners(c *Cluster, i int) []string {
	w := &c.workers[i]
	out := make([]string, int(w.cores))
	for core := range out {
		out[core] = c.holder(w, core)
	}
	return out
}

// liveTasks returns the task records the name table finds, by name (on a
// cluster without names, the records that have one), and checks that the
// table and the free list of records account for every record once.
func liveTasks(c *Cluster) (map[string]*taskRec, error) {
	live := map[string]*taskRec{}
	if c.noNames {
		if c.names.n != 0 || len(c.names.ctrl) != 0 {
			return nil, fmt.Errorf("a cluster without names has %d names in its table", c.names.n)
		}
		for h := range c.recs {
			if r := &c.recs[h]; r.name != "" {
				if live[r.name] != nil {
					return nil, fmt.Errorf("task %s has two records", r.name)
				}
				live[r.name] = r
			}
		}
		if len(live) != c.Tasks() {
			return nil, fmt.Errorf("%d records hold cores, Tasks says %d", len(live), c.Tasks())
		}
	}
	for slot, s := range c.names.entries {
		if s == 0 {
			continue
		}
		h := int32(uint32(s)) - 1
		r := &c.recs[h]
		if got, p := c.lookup(r.name); got != h || p.slot != slot {
			return nil, fmt.Errorf("task %s at slot %d (handle %d): lookup finds handle %d at slot %d", r.name, slot, h, got, p.slot)
		}
		if r.hash != uint32(s>>32) {
			return nil, fmt.Errorf("task %s at slot %d: its record has hash %#x, its entry %#x", r.name, slot, r.hash, uint32(s>>32))
		}
		if live[r.name] != nil {
			return nil, fmt.Errorf("task %s is in the name table twice", r.name)
		}
		live[r.name] = r
	}
	if !c.noNames && (len(live) != c.names.n || len(live) != c.Tasks()) {
		return nil, fmt.Errorf("name table holds %d tasks, counts %d", len(live), c.names.n)
	}
	free := 0
	for h := c.freeRec; h >= 0; h = c.recs[h].worker {
		if r := &c.recs[h]; r.name != "" || r.mask != 0 || r.high != nil {
			return nil, fmt.Errorf("free record %d is not empty: %+v", h, *r)
		}
		if free++; free > len(c.recs) {
			return nil, errors.New("the free list of records loops")
		}
	}
	if free+len(live) != len(c.recs) {
		return nil, fmt.Errorf("%d records: %d live and %d free", len(c.recs), len(live), free)
	}
	return live, nil
}

func clusterProblem(c *Cluster) error {
	tasks, err := liveTasks(c)
	if err != nil {
		return err
	}
	for _, i := range c.stale {
		if !c.workers[i].stale {
			return fmt.Errorf("worker %s is listed as out of date in the max tree but not marked", c.workers[i].id)
		}
	}
	for i := range c.workers {
		if c.workers[i].stale && !slices.Contains(c.stale, int32(i)) {
			return fmt.Errorf("worker %s is marked out of date in the max tree but not listed", c.workers[i].id)
		}
	}
	c.freshTree()
	if err := fitProblem(c); err != nil {
		return err
	}
	onWorker := map[int32]int{} // tasks per worker
	for _, r := range tasks {
		onWorker[r.worker]++
	}
	seen := map[string]bool{}
	upFree, upTotal, upN, live := 0, 0, 0, 0
	counts := make([]int, len(c.count))
	for i := range c.workers {
		w := &c.workers[i]
		if w.removed {
			if w.free != 0 || w.cores != 0 || w.used != 0 || w.more != nil {
				return fmt.Errorf("removed worker %s keeps cores", w.id)
			}
			f, _ := c.tree.leaf(i)
			g, _ := c.sizes.leaf(i)
			if f != absentFree || g != absentFree {
				return fmt.Errorf("removed worker %s is in the max trees", w.id)
			}
			continue
		}
		live++
		if len(w.moreBits()) != max(0, (int(w.cores)-1)/64) {
			return fmt.Errorf("worker %s: %d more words of bits for %d cores", w.id, len(w.moreBits()), w.cores)
		}
		for core := int(w.cores); core < 64*(1+len(w.moreBits())); core++ {
			if w.isFree(core) {
				return fmt.Errorf("worker %s has %d cores, but the bit of core %d is set", w.id, w.cores, core)
			}
		}
		if err := listProblem(c, i, tasks, onWorker); err != nil {
			return err
		}
		free := 0
		var memUsed int64
		for core, task := range owners(c, i) {
			if task == "" {
				free++
				continue
			}
			a, ok := tasks[task]
			if !ok {
				return fmt.Errorf("worker %s core %d: held by %s, which holds nothing", w.id, core, task)
			}
			if int(a.worker) != i || !slices.Contains(a.cores(nil), core) {
				return fmt.Errorf("worker %s core %d: held by %s, which records %v on worker %d", w.id, core, task, a.cores(nil), a.worker)
			}
			if !seen[task] {
				seen[task] = true
				memUsed += a.mem
			}
		}
		if free != int(w.free) {
			return fmt.Errorf("worker %s: %d free cores counted, %d recorded", w.id, free, w.free)
		}
		if memUsed != w.memUsed() {
			return fmt.Errorf("worker %s: %d bytes used counted, %d recorded", w.id, memUsed, w.memUsed())
		}
		leafFree, leafMem := c.tree.leaf(i)
		if w.up {
			upN++
			upFree += int(w.free)
			upTotal += int(w.cores)
			counts[w.free]++
			if c.bestOn && (c.byFree[w.free] == nil || !c.byFree[w.free].has(i)) {
				return fmt.Errorf("up worker %s with %d free is not in its best-fit bucket", w.id, w.free)
			}
			if leafFree != w.free || leafMem != w.memFree() {
				return fmt.Errorf("up worker %s: max tree leaf (%d, %d), want (%d, %d)", w.id, leafFree, leafMem, w.free, w.memFree())
			}
			if cores, mem := c.sizes.leaf(i); cores != w.cores || mem != w.memTotal {
				return fmt.Errorf("up worker %s: sizes leaf (%d, %d), want (%d, %d)", w.id, cores, mem, w.cores, w.memTotal)
			}
		} else if f, _ := c.sizes.leaf(i); leafFree != absentFree || f != absentFree {
			return fmt.Errorf("down worker %s is in the max trees", w.id)
		}
	}
	for task, a := range tasks {
		if !seen[task] {
			return fmt.Errorf("task %s records cores %v on worker %d that do not name it", task, a.cores(nil), a.worker)
		}
		if a.mask == 0 && len(a.highCores()) == 0 {
			return fmt.Errorf("task %s holds no cores", task)
		}
		if high := a.highCores(); !slices.IsSorted(high) || len(high) > 0 && high[0] < 64 {
			return fmt.Errorf("task %s: cores above 63 %v not ascending, or not above 63", task, high)
		}
	}
	for f, n := range counts {
		if !c.bestOn {
			n = 0 // the best-fit index is empty until built
		}
		if c.count[f] != counts[f] || c.freeVals.has(f) != (n > 0) {
			return fmt.Errorf("free value %d: %d workers counted, index says %d (member %v)", f, counts[f], c.count[f], c.freeVals.has(f))
		}
		if s := c.byFree[f]; s != nil {
			members := 0
			for i := s.next(0); i >= 0; i = s.next(i + 1) {
				members++
			}
			if members != n {
				return fmt.Errorf("free value %d: bucket holds %d workers, want %d", f, members, n)
			}
		}
	}
	if upFree != c.upFree || upTotal != c.upTotal || upN != c.upN || live != c.live {
		return fmt.Errorf("totals: free %d/%d, total %d/%d, up %d/%d, live %d/%d (counted/recorded)",
			upFree, c.upFree, upTotal, c.upTotal, upN, c.upN, live, c.live)
	}
	for _, tr := range []*maxtree{&c.tree, &c.sizes} {
		for p := tr.size - 1; p >= 1; p-- {
			if tr.nodes[p] != maxOf(tr.nodes[2*p], tr.nodes[2*p+1]) {
				return fmt.Errorf("max tree node %d is not the max of its children", p)
			}
		}
	}
	return nil
}

// listProblem checks worker i's list of tasks: each listed task records
// the worker and its place in the list, holds cores the worker has and
// marks busy, and no other task's; and every task on the worker is listed.
func listProblem(c *Cluster, i int, tasks map[string]*taskRec, onWorker map[int32]int) error {
	w := &c.workers[i]
	listed := map[int32]bool{}
	check := func(pos int, h int32) error {
		r := &c.recs[h]
		if listed[h] || int(r.worker) != i || int(r.pos) != pos {
			return fmt.Errorf("worker %s lists task %s at %d (twice: %v); it records worker %d at %d", w.id, r.name, pos, listed[h], r.worker, r.pos)
		}
		listed[h] = true
		return nil
	}
	for u := w.used; u != 0; u &= u - 1 {
		s := bits.TrailingZeros16(u)
		if s >= inlineTasks {
			return fmt.Errorf("worker %s uses inline task slot %d", w.id, s)
		}
		if err := check(s, w.tasks[s]); err != nil {
			return err
		}
	}
	if w.more == nil && w.moreUsed != 0 {
		return fmt.Errorf("worker %s marks task slots used beyond the inline ones but has none", w.id)
	}
	if w.more != nil {
		m := w.more
		for s := range m.tasks {
			if m.usedWord(w.moreUsed, s/64)&(1<<(uint(s)&63)) == 0 {
				continue
			}
			if err := check(inlineTasks+s, m.tasks[s]); err != nil {
				return err
			}
		}
		for wi := 0; wi <= len(m.usedHi); wi++ {
			if u := m.usedWord(w.moreUsed, wi); u != 0 && 64*wi+63-bits.LeadingZeros64(u) >= len(m.tasks) {
				return fmt.Errorf("worker %s marks a task slot beyond its %d slots used", w.id, len(m.tasks))
			}
		}
	}
	held := map[int]string{}
	for h := range listed {
		r := &c.recs[h]
		for _, core := range r.cores(nil) {
			if core >= int(w.cores) || w.isFree(core) || held[core] != "" {
				return fmt.Errorf("worker %s core %d: task %s holds it, but the worker has %d cores, its bit is set, or task %q holds it too",
					w.id, core, r.name, w.cores, held[core])
			}
			held[core] = r.name
		}
	}
	for h := range listed {
		if r := &c.recs[h]; tasks[r.name] != r {
			return fmt.Errorf("worker %s lists task %s, which the name table does not find", w.id, r.name)
		}
	}
	if on := onWorker[int32(i)]; on != len(listed) {
		return fmt.Errorf("worker %s lists %d tasks; %d record it", w.id, len(listed), on)
	}
	return nil
}

// fitProblem checks the first-fit index against the workers: an up worker
// with f free cores is in the sets 1..min(f, fitDepth) and no other, and a
// bit above level 0 is set exactly when the word below it is not zero.
func fitProblem(c *Cluster) error {
	f := &c.fit
	for i := range f.cap {
		n := 0
		if c.firstOn && i < len(c.workers) && c.workers[i].indexed() {
			n = min(int(c.workers[i].free), fitDepth)
		}
		for k := 1; k <= fitDepth; k++ {
			if f.has(k, i) != (k <= n) {
				return fmt.Errorf("worker %d with %d free cores (up to the depth): in the set of %d is %v", i, n, k, f.has(k, i))
			}
		}
	}
	for l := 1; l < len(f.levels); l++ {
		for k, word := range f.levels[l-1] {
			w, j := k/fitDepth, k%fitDepth
			if bit := f.levels[l][(w>>6)*fitDepth+j]&(1<<(w&63)) != 0; bit != (word != 0) {
				return fmt.Errorf("first-fit index level %d, word %d of set %d: bit %v for word %#x", l, w, j+1, bit, word)
			}
		}
	}
	return nil
}

func TestClusterAllocate(t *testing.T) {
	tests := []struct {
		name    string
		task    string
		worker  string
		cores   []int
		mem     int64
		wantErr error
	}{
		{name: "free cores", task: "t", worker: "w1", cores: []int{3, 1}},
		{name: "unknown worker", task: "t", worker: "nope", cores: []int{0}, wantErr: ErrUnknownWorker},
		{name: "removed worker", task: "t", worker: "gone", cores: []int{0}, wantErr: ErrUnknownWorker},
		{name: "core out of range", task: "t", worker: "w1", cores: []int{4}, wantErr: ErrCoreOutOfRange},
		{name: "negative core", task: "t", worker: "w1", cores: []int{-1}, wantErr: ErrCoreOutOfRange},
		{name: "core held by another task", task: "t", worker: "w2", cores: []int{1, 2}, wantErr: ErrCoreHeld},
		{name: "task already holds cores", task: "w2-held", worker: "w1", cores: []int{0}, wantErr: ErrTaskHoldsCores},
		{name: "core listed twice", task: "t", worker: "w1", cores: []int{1, 1}, wantErr: ErrInvalidAllocation},
		{name: "no cores", task: "t", worker: "w1", wantErr: ErrInvalidAllocation},
		{name: "empty task name", worker: "w1", cores: []int{0}, wantErr: ErrInvalidAllocation},
		{name: "negative memory", task: "t", worker: "w1", cores: []int{0}, mem: -1, wantErr: ErrInvalidAllocation},
		{name: "down worker still records (recovery)", task: "t", worker: "w3", cores: []int{0}},
		{name: "memory beyond the worker's still records (recovery)", task: "t", worker: "w1", cores: []int{0}, mem: 100 * gb},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, spec{id: "w1", cores: 4}, spec{id: "w2", cores: 4, held: []int{2}},
				spec{id: "w3", cores: 2, down: true}, spec{id: "gone", cores: 2})
			c.RemoveWorker("gone")
			before := c.Workers()
			err := c.Allocate(tc.task, tc.worker, tc.cores, tc.mem)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Allocate error %v, want %v", err, tc.wantErr)
			}
			checkCluster(t, c)
			if err != nil {
				if after := c.Workers(); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Fatalf("a refused allocation changed the cluster:\n%v\n%v", before, after)
				}
				return
			}
			w, cores, ok := c.Holds(tc.task)
			want := slices.Sorted(slices.Values(tc.cores))
			if !ok || w != tc.worker || !slices.Equal(cores, want) {
				t.Fatalf("Holds = %s %v %v, want %s %v", w, cores, ok, tc.worker, want)
			}
		})
	}
}

func TestClusterRelease(t *testing.T) {
	c := newTestCluster(t, spec{id: "w1", cores: 4, mem: 10 * gb})
	if err := c.Allocate("t", "w1", []int{2, 0}, 3*gb); err != nil {
		t.Fatal(err)
	}
	// 4 cores - 2 held = 2 free; 10 GB - 3 GB = 7 GB free.
	if v, _ := c.Worker("w1"); v.Free != 2 || v.MemFree != 7*gb || v.Busy[0] != "t" || v.Busy[2] != "t" || len(v.Busy) != 2 {
		t.Fatalf("after allocate: %+v", v)
	}
	w, cores, ok := c.Release("t")
	if !ok || w != "w1" || !slices.Equal(cores, []int{0, 2}) {
		t.Fatalf("Release = %s %v %v, want w1 [0 2] true", w, cores, ok)
	}
	if _, _, ok := c.Release("t"); ok {
		t.Fatal("second Release reported ok; it must be idempotent")
	}
	if v, _ := c.Worker("w1"); v.Free != 4 || v.MemFree != 10*gb || len(v.Busy) != 0 {
		t.Fatalf("after release: %+v", v)
	}
	checkCluster(t, c)
}

func TestClusterWorkers(t *testing.T) {
	tests := []struct {
		name      string
		do        func(c *Cluster) error
		wantIDs   []string
		wantFree  int // FreeCores over up workers
		wantTotal int
		check     func(t *testing.T, c *Cluster)
	}{
		{
			name:    "registration order",
			do:      func(c *Cluster) error { return nil },
			wantIDs: []string{"a", "b", "c"}, wantFree: 4 + 8 - 1 + 2, wantTotal: 4 + 8 + 2,
		},
		{
			name:    "down workers are listed but not counted free",
			do:      func(c *Cluster) error { c.SetUp("b", false); return nil },
			wantIDs: []string{"a", "b", "c"}, wantFree: 4 + 2, wantTotal: 4 + 2,
			check: func(t *testing.T, c *Cluster) {
				if v, _ := c.Worker("b"); v.Up || v.Busy[0] != "b-held" {
					t.Fatalf("down worker b: %+v", v)
				}
			},
		},
		{
			name: "remove returns the tasks that held cores, lowest core first",
			do: func(c *Cluster) error {
				if err := c.Allocate("x", "b", []int{5, 7}, 0); err != nil {
					return err
				}
				if err := c.Allocate("y", "b", []int{3}, 0); err != nil {
					return err
				}
				if got := c.RemoveWorker("b"); !slices.Equal(got, []string{"b-held", "y", "x"}) {
					return fmt.Errorf("RemoveWorker = %v, want [b-held y x]", got)
				}
				if _, _, ok := c.Release("x"); ok {
					return errors.New("a task of a removed worker still holds cores")
				}
				if c.RemoveWorker("b") != nil || c.RemoveWorker("nope") != nil {
					return errors.New("removing again or an unknown worker should give nil")
				}
				return nil
			},
			wantIDs: []string{"a", "c"}, wantFree: 4 + 2, wantTotal: 4 + 2,
		},
		{
			name: "a removed worker added again takes back its index",
			do: func(c *Cluster) error {
				c.RemoveWorker("a")
				return c.AddWorker("a", 16, gb)
			},
			wantIDs: []string{"a", "b", "c"}, wantFree: 16 + 7 + 2, wantTotal: 16 + 8 + 2,
		},
		{
			name: "resize keeps allocations",
			do: func(c *Cluster) error {
				return c.AddWorker("b", 2, gb) // b holds core 0: 2 cores, 1 free
			},
			wantIDs: []string{"a", "b", "c"}, wantFree: 4 + 1 + 2, wantTotal: 4 + 2 + 2,
			check: func(t *testing.T, c *Cluster) {
				if v, _ := c.Worker("b"); v.Cores != 2 || v.Busy[0] != "b-held" || v.MemTotal != gb {
					t.Fatalf("resized b: %+v", v)
				}
			},
		},
		{
			name: "shrinking below a held core is refused",
			do: func(c *Cluster) error {
				if err := c.Allocate("x", "b", []int{6}, 0); err != nil {
					return err
				}
				if err := c.AddWorker("b", 4, gb); !errors.Is(err, ErrCoreHeld) {
					return fmt.Errorf("shrink error %v, want ErrCoreHeld", err)
				}
				return nil
			},
			wantIDs: []string{"a", "b", "c"}, wantFree: 4 + 6 + 2, wantTotal: 4 + 8 + 2,
		},
		{
			name: "invalid workers are refused",
			do: func(c *Cluster) error {
				for _, err := range []error{c.AddWorker("", 1, 0), c.AddWorker("d", -1, 0), c.AddWorker("d", 1, -1),
					c.AddWorker("d", MaxWorkerCores+1, 0)} {
					if !errors.Is(err, ErrInvalidWorker) {
						return fmt.Errorf("error %v, want ErrInvalidWorker", err)
					}
				}
				return nil
			},
			wantIDs: []string{"a", "b", "c"}, wantFree: 4 + 8 - 1 + 2, wantTotal: 4 + 8 + 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, spec{id: "a", cores: 4}, spec{id: "b", cores: 8, held: []int{0}}, spec{id: "c", cores: 2})
			if err := tc.do(c); err != nil {
				t.Fatal(err)
			}
			checkCluster(t, c)
			var ids []string
			for _, v := range c.Workers() {
				ids = append(ids, v.ID)
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Fatalf("Workers() = %v, want %v", ids, tc.wantIDs)
			}
			if free, total := c.FreeCores(); free != tc.wantFree || total != tc.wantTotal {
				t.Fatalf("FreeCores() = %d, %d, want %d, %d", free, total, tc.wantFree, tc.wantTotal)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestWorkerLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is planned for 64-bit platforms")
	}
	// The fields a decision reads share the first cache line, the task list
	// fills the second, and a task record fills one.
	if s := unsafe.Sizeof(worker{}); s != 128 {
		t.Fatalf("worker is %d bytes, want 128", s)
	}
	if o := unsafe.Offsetof(worker{}.stale) + unsafe.Sizeof(false); o > 64 {
		t.Fatalf("hot fields end at byte %d, want <= 64", o)
	}
	if o := unsafe.Offsetof(worker{}.tasks); o != 64 {
		t.Fatalf("the task list starts at byte %d, want 64 (the second line)", o)
	}
	if s := unsafe.Sizeof(taskRec{}); s != 64 {
		t.Fatalf("a task record is %d bytes, want 64 (one line)", s)
	}
}

package placement

import (
	"errors"
	"fmt"
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

func clusterProblem(c *Cluster) error {
	seen := map[string]bool{}
	upFree, upTotal, upN, live := 0, 0, 0, 0
	counts := make([]int, len(c.count))
	for i := range c.workers {
		w := &c.workers[i]
		if w.removed {
			if w.free != 0 || len(w.owner) != 0 {
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
		if len(w.owner) != w.cores {
			return fmt.Errorf("worker %s: %d owner slots for %d cores", w.id, len(w.owner), w.cores)
		}
		free := 0
		var memUsed int64
		for core, task := range w.owner {
			bit := w.isFree(core)
			if task == "" {
				free++
				if !bit {
					return fmt.Errorf("worker %s core %d: free but its bit is clear", w.id, core)
				}
				continue
			}
			if bit {
				return fmt.Errorf("worker %s core %d: held by %s but its bit is set", w.id, core, task)
			}
			a, ok := c.tasks[task]
			if !ok {
				return fmt.Errorf("worker %s core %d: held by %s, which holds nothing", w.id, core, task)
			}
			if int(a.worker) != i || !slices.Contains(a.cores, core) {
				return fmt.Errorf("worker %s core %d: held by %s, which records %v on worker %d", w.id, core, task, a.cores, a.worker)
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
			upTotal += w.cores
			counts[w.free]++
			if c.byFree[w.free] == nil || !c.byFree[w.free].has(i) {
				return fmt.Errorf("up worker %s with %d free is not in its best-fit bucket", w.id, w.free)
			}
			if leafFree != w.free || leafMem != w.memFree() {
				return fmt.Errorf("up worker %s: max tree leaf (%d, %d), want (%d, %d)", w.id, leafFree, leafMem, w.free, w.memFree())
			}
			if cores, mem := c.sizes.leaf(i); int(cores) != w.cores || mem != w.memTotal {
				return fmt.Errorf("up worker %s: sizes leaf (%d, %d), want (%d, %d)", w.id, cores, mem, w.cores, w.memTotal)
			}
		} else if f, _ := c.sizes.leaf(i); leafFree != absentFree || f != absentFree {
			return fmt.Errorf("down worker %s is in the max trees", w.id)
		}
	}
	for task, a := range c.tasks {
		if !seen[task] {
			return fmt.Errorf("task %s records cores %v on worker %d that do not name it", task, a.cores, a.worker)
		}
		if !slices.IsSorted(a.cores) {
			return fmt.Errorf("task %s: cores %v not ascending", task, a.cores)
		}
	}
	for f, n := range counts {
		if c.count[f] != n || c.freeVals.has(f) != (n > 0) {
			return fmt.Errorf("free value %d: %d workers counted, index says %d (member %v)", f, n, c.count[f], c.freeVals.has(f))
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
	// The fields a decision touches share the first cache line; the struct fills two.
	if s := unsafe.Sizeof(worker{}); s != 128 {
		t.Fatalf("worker is %d bytes, want 128", s)
	}
	if o := unsafe.Offsetof(worker{}.owner) + unsafe.Sizeof([]string{}); o > 64 {
		t.Fatalf("hot fields end at byte %d, want <= 64", o)
	}
}

package placement

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestPropertyAgainstNaive drives the indexed Cluster and the naive
// reference with the same million random operations across thousands of
// workers: jobs of 1-4 tasks placed by the four bin-packing strategies,
// frees, workers going down and up, removed and added back, resized. It
// checks that
//   - both make the same decision every time (worker and core ids, or wait);
//   - a placed task's cores are held by it alone (checked at every step);
//   - no core is lost or double-booked, and the indexes agree with the
//     workers (the full check, every 20,000 steps and at the end).
//
// -short shrinks it to 60,000 operations over 500 workers.
func TestPropertyAgainstNaive(t *testing.T) {
	steps, workers, fullEvery := 1_000_000, 2000, 20_000
	if testing.Short() {
		steps, workers, fullEvery = 60_000, 500, 2_000
	}
	rng := rand.New(rand.NewPCG(20240501, 7))
	c := NewCluster()
	n := newNaiveCluster()
	size := func() (int, int64) {
		return 1 + rng.IntN(64), int64(1+rng.IntN(32)) * gb
	}
	for i := range workers {
		cores, mem := size()
		id := "w" + strconv.Itoa(i)
		if err := c.AddWorker(id, cores, mem); err != nil {
			t.Fatal(err)
		}
		n.addWorker(id, cores, mem)
	}
	type packing struct {
		s                 Strategy
		first, decreasing bool
	}
	var packers []packing
	for _, name := range []string{FirstFit, BestFit, FirstFitDecreasing, BestFitDecreasing} {
		s, _ := New(name, Options{})
		p := s.(*packer)
		packers = append(packers, packing{s: s, first: p.first, decreasing: p.decreasing})
	}

	var live []string // tasks holding cores
	removed := map[string]bool{}
	jobs, placements, waits, frees := 0, 0, 0, 0
	for step := range steps {
		op := rng.IntN(1000)
		// Keep the up cores about 90% busy: mostly placements below, mostly frees above.
		if free, total := c.FreeCores(); free*10 < total && op < 540 {
			op += 540
		} else if op >= 540 && op < 960 && rng.IntN(3) == 0 {
			op -= 420
		}
		switch {
		case op < 540: // place a job
			p := packers[rng.IntN(len(packers))]
			nt := 1
			if rng.IntN(5) == 0 {
				nt = 2 + rng.IntN(3)
			}
			j := Job{Name: "j" + strconv.Itoa(jobs)}
			jobs++
			for k := range nt {
				cores := 1 + rng.IntN(8)
				if rng.IntN(20) == 0 {
					cores = 9 + rng.IntN(60) // sometimes larger than most workers
				}
				var mem int64
				if rng.IntN(3) == 0 {
					mem = int64(1+rng.IntN(8)) * gb
				}
				j.Tasks = append(j.Tasks, Task{Name: j.Name + "-" + strconv.Itoa(k), Cores: cores, Mem: mem})
			}
			as, reason, ok := p.s.Place(c, j)
			want, wantOK := n.place(p.first, p.decreasing, j)
			if ok != wantOK {
				t.Fatalf("step %d, %s, job %+v: indexed ok=%v (%s), naive ok=%v", step, p.s.Name(), j.Tasks, ok, reason, wantOK)
			}
			if !ok {
				if reason == "" {
					t.Fatalf("step %d: a waiting job without a reason", step)
				}
				waits++
				continue
			}
			if !slices.EqualFunc(as, want, func(a, b Assignment) bool {
				return a.Task == b.Task && a.Worker == b.Worker && slices.Equal(a.Cores, b.Cores)
			}) {
				t.Fatalf("step %d, %s: indexed %s, naive %s", step, p.s.Name(), placed(as), placed(want))
			}
			for _, a := range as {
				i := c.byID[a.Worker]
				for _, core := range a.Cores {
					if got := c.holder(&c.workers[i], core); got != a.Task {
						t.Fatalf("step %d: core %d on %s held by %q, just assigned to %s", step, core, a.Worker, got, a.Task)
					}
				}
				live = append(live, a.Task)
			}
			placements++
		case op < 960: // free a random live task
			if len(live) == 0 {
				continue
			}
			k := rng.IntN(len(live))
			task := live[k]
			live[k] = live[len(live)-1]
			live = live[:len(live)-1]
			w, cores, ok := c.Release(task)
			if !ok || !n.release(task) {
				t.Fatalf("step %d: release %s: indexed %v, naive disagreed", step, task, ok)
			}
			i := c.byID[w]
			for _, core := range cores {
				if c.holder(&c.workers[i], core) != "" {
					t.Fatalf("step %d: core %d on %s still held after releasing %s", step, core, w, task)
				}
			}
			frees++
		case op < 985: // a worker goes down or comes back
			id := "w" + strconv.Itoa(rng.IntN(workers))
			up := rng.IntN(4) != 0 // about a quarter of the workers down
			c.SetUp(id, up)
			n.setUp(id, up)
		case op < 993: // a worker leaves, or comes back
			id := "w" + strconv.Itoa(rng.IntN(workers))
			if removed[id] {
				cores, mem := size()
				if err := c.AddWorker(id, cores, mem); err != nil {
					t.Fatal(err)
				}
				n.addWorker(id, cores, mem)
				delete(removed, id)
				continue
			}
			if rng.IntN(4) != 0 {
				continue // removals are rarer than returns: about a fifth of the workers gone
			}
			gone := c.RemoveWorker(id)
			n.removeWorker(id)
			removed[id] = true
			live = slices.DeleteFunc(live, func(task string) bool { return slices.Contains(gone, task) })
		default: // a worker grows (resizing down is refused while cores are held)
			id := "w" + strconv.Itoa(rng.IntN(workers))
			if removed[id] {
				continue
			}
			v, _ := c.Worker(id)
			cores, mem := v.Cores+rng.IntN(4), v.MemTotal+int64(rng.IntN(3))*gb
			if err := c.AddWorker(id, cores, mem); err != nil {
				t.Fatal(err)
			}
			n.addWorker(id, cores, mem)
		}
		if step%fullEvery == fullEvery-1 {
			fullCheck(t, step, c, n, len(live))
		}
	}
	fullCheck(t, steps, c, n, len(live))
	free, total := c.FreeCores()
	t.Logf("%d operations: %d jobs placed, %d waited, %d frees, %d tasks live, %d of %d up cores free",
		steps, placements, waits, frees, len(live), free, total)
	if placements < steps/10 || waits == 0 || frees < steps/10 {
		t.Fatalf("the random walk is not exercising both outcomes: %d placed, %d waited, %d frees", placements, waits, frees)
	}
}

// fullCheck verifies the cluster's invariants and that it holds exactly
// what the naive reference holds.
func fullCheck(t *testing.T, step int, c *Cluster, n *naiveCluster, live int) {
	t.Helper()
	if err := clusterProblem(c); err != nil {
		t.Fatalf("step %d: %v", step, err)
	}
	if c.Tasks() != live || len(n.tasks) != live {
		t.Fatalf("step %d: %d live tasks, cluster holds %d, naive %d", step, live, c.Tasks(), len(n.tasks))
	}
	busy, total := 0, 0
	for i := range c.workers {
		w, nw := &c.workers[i], &n.workers[i]
		if w.id != nw.id || w.removed != nw.removed || w.up != nw.up || !slices.Equal(owners(c, i), nw.owner) || w.memUsed() != nw.memUsed {
			t.Fatalf("step %d: worker %s differs from the naive reference", step, w.id)
		}
		total += int(w.cores)
		busy += int(w.cores) - int(w.free)
	}
	tasks, err := liveTasks(c)
	if err != nil {
		t.Fatalf("step %d: %v", step, err)
	}
	held := 0
	for _, a := range tasks {
		held += a.ncores()
	}
	if held != busy {
		t.Fatalf("step %d: tasks hold %d cores but %d are busy (of %d)", step, held, busy, total)
	}
}

// TestLargeJobsAgainstNaive checks jobs of many tasks (the decreasing
// strategies sort more than 32 tasks another way) against the reference.
func TestLargeJobsAgainstNaive(t *testing.T) {
	for _, name := range []string{FirstFit, BestFit, FirstFitDecreasing, BestFitDecreasing} {
		for _, n := range []int{5, 33, 100} {
			t.Run(name+"/"+strconv.Itoa(n), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(n), 1))
				c, ref := NewCluster(), newNaiveCluster()
				for i := range 50 {
					id, cores := "w"+strconv.Itoa(i), 1+rng.IntN(16)
					if err := c.AddWorker(id, cores, 64*gb); err != nil {
						t.Fatal(err)
					}
					ref.addWorker(id, cores, 64*gb)
				}
				s, _ := New(name, Options{})
				p := s.(*packer)
				placedJobs := 0
				for round := range 20 {
					j := Job{Name: "j" + strconv.Itoa(round)}
					for k := range n {
						j.Tasks = append(j.Tasks, Task{Name: j.Name + "-" + strconv.Itoa(k), Cores: 1 + rng.IntN(6)})
					}
					as, _, ok := s.Place(c, j)
					want, wantOK := ref.place(p.first, p.decreasing, j)
					if ok != wantOK || placed(as) != placed(want) {
						t.Fatalf("round %d: indexed %v %s, naive %v %s", round, ok, placed(as), wantOK, placed(want))
					}
					checkCluster(t, c)
					if ok && rng.IntN(2) == 0 { // the job ends
						for _, a := range as {
							c.Release(a.Task)
							ref.release(a.Task)
						}
						placedJobs++
					}
				}
				if placedJobs == 0 {
					t.Fatal("no job was placed: the test shows nothing")
				}
			})
		}
	}
}

// TestIndexesBuiltOnFirstUse places with one rule long enough for workers
// to move, go down, leave and come back, checks that the other rule's index
// was not kept, then switches rules: the index built late must agree with
// the workers and decide as the naive reference does.
func TestIndexesBuiltOnFirstUse(t *testing.T) {
	tests := []struct {
		name          string
		before, after string
	}{
		{name: "first fit, then best fit", before: FirstFit, after: BestFit},
		{name: "best fit, then first fit", before: BestFit, after: FirstFit},
		{name: "best fit decreasing, then first fit decreasing", before: BestFitDecreasing, after: FirstFitDecreasing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			c, n := NewCluster(), newNaiveCluster()
			for i := range 300 {
				id, cores := "w"+strconv.Itoa(i), 1+rng.IntN(80)
				if err := c.AddWorker(id, cores, 64*gb); err != nil {
					t.Fatal(err)
				}
				n.addWorker(id, cores, 64*gb)
			}
			var live []string
			jobs := 0
			run := func(name string, steps int) {
				t.Helper()
				s, _ := New(name, Options{})
				p := s.(*packer)
				for range steps {
					switch op := rng.IntN(100); {
					case op < 60:
						j := Job{Name: "j" + strconv.Itoa(jobs)}
						jobs++
						for k := range 1 + rng.IntN(3) {
							j.Tasks = append(j.Tasks, Task{Name: j.Name + "-" + strconv.Itoa(k), Cores: 1 + rng.IntN(10), Mem: int64(rng.IntN(3)) * gb})
						}
						as, _, ok := s.Place(c, j)
						want, wantOK := n.place(p.first, p.decreasing, j)
						if ok != wantOK || placed(as) != placed(want) {
							t.Fatalf("%s: indexed %v %s, naive %v %s", name, ok, placed(as), wantOK, placed(want))
						}
						for _, a := range as {
							live = append(live, a.Task)
						}
					case op < 95 && len(live) > 0:
						k := rng.IntN(len(live))
						c.Release(live[k])
						n.release(live[k])
						live[k] = live[len(live)-1]
						live = live[:len(live)-1]
					case op < 98:
						id, up := "w"+strconv.Itoa(rng.IntN(300)), rng.IntN(2) == 0
						c.SetUp(id, up)
						n.setUp(id, up)
					default:
						id := "w" + strconv.Itoa(rng.IntN(300))
						gone := c.RemoveWorker(id)
						n.removeWorker(id)
						live = slices.DeleteFunc(live, func(task string) bool { return slices.Contains(gone, task) })
						cores := 1 + rng.IntN(80)
						if err := c.AddWorker(id, cores, 64*gb); err != nil {
							t.Fatal(err)
						}
						n.addWorker(id, cores, 64*gb)
					}
				}
				checkCluster(t, c)
			}
			run(tc.before, 5000)
			if first := tc.before == FirstFit || tc.before == FirstFitDecreasing; c.bestOn == first || c.firstOn != first {
				t.Fatalf("after %s only: best-fit index kept %v, first-fit index kept %v", tc.before, c.bestOn, c.firstOn)
			}
			run(tc.after, 5000)
			if !c.bestOn || !c.firstOn {
				t.Fatalf("after both rules: best-fit index kept %v, first-fit index kept %v", c.bestOn, c.firstOn)
			}
		})
	}
}

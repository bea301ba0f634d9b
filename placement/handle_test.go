package placement

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
)

// TestHandleAgreesWithName drives two clusters with the same random jobs
// (workers of 16 to 160 cores, so that some tasks hold cores above 63) and
// releases each task by name in one and by its handle (the one its
// assignment gives, which Cluster.Handle finds too) in the other: after
// every release the two hold the same cores, memory and tasks, and both
// keep their invariants (ReleaseHandleWorker, every other release, names
// the worker Release names; BusyCores agrees with the workers' snapshots).
func TestHandleAgreesWithName(t *testing.T) {
	steps := 20_000
	if testing.Short() {
		steps = 4_000
	}
	rng := rand.New(rand.NewPCG(14, 2))
	byName, byHandle := NewCluster(), NewCluster()
	for i := range 40 {
		id, cores := "w"+strconv.Itoa(i), 16+rng.IntN(145)
		for _, c := range []*Cluster{byName, byHandle} {
			if err := c.AddWorker(id, cores, 64*gb); err != nil {
				t.Fatal(err)
			}
		}
	}
	strategies := []Strategy{}
	for _, name := range []string{BestFit, FirstFit} {
		s, _ := New(name, Options{})
		strategies = append(strategies, s)
	}
	type live struct {
		name   string
		handle Handle
	}
	var tasks []live
	for step := range steps {
		if free, _ := byName.FreeCores(); rng.IntN(2) == 0 && free > 0 || len(tasks) == 0 {
			j := Job{Name: "j" + strconv.Itoa(step)}
			for k := range 1 + rng.IntN(3) {
				j.Tasks = append(j.Tasks, Task{Name: j.Name + "-" + strconv.Itoa(k), Cores: 1 + rng.IntN(90), Mem: int64(rng.IntN(4)) * gb})
			}
			s := strategies[rng.IntN(len(strategies))]
			as, _, ok := s.Place(byName, j)
			as2, _, ok2 := s.Place(byHandle, j)
			if ok != ok2 || placed(as) != placed(as2) {
				t.Fatalf("step %d: the two clusters placed %s differently", step, j.Name)
			}
			for _, a := range as {
				h, ok := byHandle.Handle(a.Task)
				if !ok || h != a.Handle {
					t.Fatalf("step %d: %s, just placed, has handle %d (found %v), its assignment says %d", step, a.Task, h, ok, a.Handle)
				}
				tasks = append(tasks, live{a.Task, h})
			}
			continue
		}
		k := rng.IntN(len(tasks))
		task := tasks[k]
		tasks[k] = tasks[len(tasks)-1]
		tasks = tasks[:len(tasks)-1]
		node, _, ok := byName.Release(task.name)
		if !ok {
			t.Fatalf("step %d: release %s by name: it held nothing", step, task.name)
		}
		if step%2 == 0 {
			if !byHandle.ReleaseHandle(task.handle) {
				t.Fatalf("step %d: release %s by handle %d: it held nothing", step, task.name, task.handle)
			}
		} else if w, ok := byHandle.ReleaseHandleWorker(task.handle); !ok || w != node {
			t.Fatalf("step %d: release %s by handle %d: on %q (held %v), by name on %s", step, task.name, task.handle, w, ok, node)
		}
		if byHandle.ReleaseHandle(task.handle) {
			t.Fatalf("step %d: handle %d released twice", step, task.handle)
		}
		if _, _, ok := byHandle.Holds(task.name); ok {
			t.Fatalf("step %d: %s still holds cores after its handle was released", step, task.name)
		}
		if step%500 == 0 || len(tasks) == 0 {
			if !reflect.DeepEqual(byName.Workers(), byHandle.Workers()) {
				t.Fatalf("step %d: releasing by name and by handle left different workers", step)
			}
			busy := byHandle.BusyCores(nil)
			for i, v := range byHandle.Workers() {
				if int(busy[i]) != v.Cores-v.Free {
					t.Fatalf("step %d: BusyCores says %d on %s, it has %d of %d free", step, busy[i], v.ID, v.Free, v.Cores)
				}
			}
			for _, c := range []*Cluster{byName, byHandle} {
				if err := clusterProblem(c); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
			}
		}
	}
	if !reflect.DeepEqual(byName.Workers(), byHandle.Workers()) {
		t.Fatal("releasing by name and by handle left different workers")
	}
	for _, h := range []Handle{-1, Handle(len(byHandle.recs))} {
		if byHandle.ReleaseHandle(h) {
			t.Fatalf("handle %d out of range released something", h)
		}
	}
}

// TestNoNamesAgreesWithNames drives a cluster with names and one without
// (NoNames) with the same random jobs, releasing each task by name in the
// first and by handle in the second: they make the same decisions (a job
// of several tasks that does not fit is rolled back by handle), hold the
// same cores, memory and tasks, and both keep their invariants. Calls by
// name on the cluster without names are refused.
func TestNoNamesAgreesWithNames(t *testing.T) {
	steps := 10_000
	if testing.Short() {
		steps = 2_000
	}
	rng := rand.New(rand.NewPCG(14, 3))
	named, bare := NewCluster(), NewCluster()
	bare.NoNames()
	for i := range 30 {
		id, cores := "w"+strconv.Itoa(i), 16+rng.IntN(145)
		for _, c := range []*Cluster{named, bare} {
			if err := c.AddWorker(id, cores, 64*gb); err != nil {
				t.Fatal(err)
			}
		}
	}
	var strategies []Strategy
	for _, name := range []string{BestFit, FirstFit, BestFitDecreasing} {
		s, err := New(name, Options{})
		if err != nil {
			t.Fatal(err)
		}
		strategies = append(strategies, s)
	}
	type live struct {
		name   string
		handle Handle
	}
	var tasks []live
	for step := range steps {
		if rng.IntN(2) == 0 || len(tasks) == 0 {
			j := Job{Name: "j" + strconv.Itoa(step)}
			for k := range 1 + rng.IntN(4) {
				j.Tasks = append(j.Tasks, Task{Name: j.Name + "-" + strconv.Itoa(k), Cores: 1 + rng.IntN(90), Mem: int64(rng.IntN(8)) * gb})
			}
			s := strategies[rng.IntN(len(strategies))]
			as, why, ok := s.Place(named, j)
			as2, why2, ok2 := s.Place(bare, j)
			if ok != ok2 || why != why2 || !reflect.DeepEqual(as, as2) {
				t.Fatalf("step %d: %s placed %v (%q) with names, %v (%q) without", step, j.Name, as, why, as2, why2)
			}
			for _, a := range as {
				tasks = append(tasks, live{a.Task, a.Handle})
			}
		} else {
			k := rng.IntN(len(tasks))
			task := tasks[k]
			tasks[k] = tasks[len(tasks)-1]
			tasks = tasks[:len(tasks)-1]
			node, _, ok := named.Release(task.name)
			if w, ok2 := bare.ReleaseHandleWorker(task.handle); !ok || !ok2 || w != node {
				t.Fatalf("step %d: release %s: by name on %q (%v), by handle on %q (%v)", step, task.name, node, ok, w, ok2)
			}
			if bare.ReleaseHandle(task.handle) {
				t.Fatalf("step %d: handle %d released twice", step, task.handle)
			}
		}
		if named.Tasks() != bare.Tasks() {
			t.Fatalf("step %d: %d tasks with names, %d without", step, named.Tasks(), bare.Tasks())
		}
		if step%500 == 0 {
			if !reflect.DeepEqual(named.Workers(), bare.Workers()) {
				t.Fatalf("step %d: the clusters with and without names hold different cores", step)
			}
			for _, c := range []*Cluster{named, bare} {
				if err := clusterProblem(c); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
			}
		}
	}
	// A removed worker gives back its tasks' records without names too.
	lost, lost2 := named.RemoveWorker("w3"), bare.RemoveWorker("w3")
	if !reflect.DeepEqual(lost, lost2) {
		t.Fatalf("removing w3 lost %v with names, %v without", lost, lost2)
	}
	for _, c := range []*Cluster{named, bare} {
		if err := clusterProblem(c); err != nil {
			t.Fatalf("after removing w3: %v", err)
		}
	}

	if err := bare.Allocate("x", "w0", []int{0}, 0); !errors.Is(err, ErrNoNames) {
		t.Fatalf("Allocate by name without names: %v, want ErrNoNames", err)
	}
	for name, call := range map[string]func(){
		"Release": func() { bare.Release("x") },
		"Holds":   func() { bare.Holds("x") },
		"Handle":  func() { bare.Handle("x") },
		"NoNames with tasks": func() {
			c := NewCluster()
			if err := c.AddWorker("w", 4, gb); err != nil {
				t.Error(err)
			}
			if err := c.Allocate("t", "w", []int{1}, 0); err != nil {
				t.Error(err)
			}
			c.NoNames()
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s on a cluster without names did not panic", name)
				}
			}()
			call()
		}()
	}
}

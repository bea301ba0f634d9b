package globalmanager_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/globalmanager"
	"github.com/rswarm/rswarm/store"
)

// guardStore is the store as the globalmanager sees it in these tests: it
// records every write of what only the jobmanager writes (the single-writer
// rule, see globalmanager.State): a worker's allocation, and a placed
// task's node or cpuset_cpus. The test that made the globalmanager write
// one fails when it ends.
type guardStore struct {
	*store.SQLite

	mu  sync.Mutex
	bad []string
}

// guard wraps st for a globalmanager under test t.
func guard(t *testing.T, st *store.SQLite) *guardStore {
	g := &guardStore{SQLite: st}
	t.Cleanup(func() {
		for _, b := range g.violations() {
			t.Errorf("single-writer rule broken: the globalmanager wrote %s", b)
		}
	})
	return g
}

func (g *guardStore) violate(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bad = append(g.bad, fmt.Sprintf(format, args...))
}

func (g *guardStore) violations() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.bad)
}

// placements is where each task of j runs: task -> node and cpuset.
func placements(j *api.Job) map[string][2]string {
	out := make(map[string][2]string, len(j.Info.Tasks))
	for _, t := range j.Info.Tasks {
		out[t.ContainerName] = [2]string{t.Node, t.CpusetCpus}
	}
	return out
}

// allocation is the part of a worker's record that is its allocation.
func allocation(w *api.Worker) string {
	return fmt.Sprintf("CPUs=%v core_tasks=%v mem_allocated=%d MemFree=%q", w.CPUs, w.CoreTasks, w.MemAllocated, w.MemFree)
}

func (g *guardStore) UpdateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error) {
	return g.SQLite.UpdateJob(ctx, name, func(j *api.Job) error {
		before := placements(j)
		err := fn(j)
		if after := placements(j); err == nil && !maps.Equal(before, after) {
			g.violate("the placement of job %s's tasks: %v -> %v", name, before, after)
		}
		return err
	})
}

func (g *guardStore) UpdateWorker(ctx context.Context, id string, fn func(*api.Worker) error) (*api.Worker, error) {
	return g.SQLite.UpdateWorker(ctx, id, func(w *api.Worker) error {
		before := allocation(w)
		err := fn(w)
		if after := allocation(w); err == nil && before != after {
			g.violate("worker %s's allocation: %s -> %s", id, before, after)
		}
		return err
	})
}

// PutWorker creates a worker record: with no allocation (the jobmanager
// writes it once it knows the worker).
func (g *guardStore) PutWorker(ctx context.Context, w *api.Worker) error {
	if w.CPUs != nil || w.CoreTasks != nil || w.MemAllocated != 0 || w.MemFree != "" {
		g.violate("new worker %s with an allocation: %s", w.ID, allocation(w))
	}
	return g.SQLite.PutWorker(ctx, w)
}

// CreateJob creates a job: a task may name a node and cores only as the
// client's pin, in a job not yet placed (every task Ready).
func (g *guardStore) CreateJob(ctx context.Context, j *api.Job) error {
	for _, t := range j.Info.Tasks {
		if (t.Node != "" || t.CpusetCpus != "") && (j.Status != api.Ready || t.Status != api.Ready) {
			g.violate("new job %s with task %s placed (%s on %s, %s)", j.Name, t.ContainerName, t.CpusetCpus, t.Node, t.Status)
		}
	}
	return g.SQLite.CreateJob(ctx, j)
}

// TestGuardCatchesWrites: the guard itself sees each kind of write the
// globalmanager must not make (else every test using it proves nothing).
func TestGuardCatchesWrites(t *testing.T) {
	e := newGM(t, nil)
	ctx := context.Background()
	e.worker(t, "w1", "docker")
	e.put(t, placed("g", api.Running, "w1"))
	g := &guardStore{SQLite: e.st}
	writes := []struct {
		name string
		do   func() error
	}{
		{"a task's node", func() error {
			_, err := g.UpdateJob(ctx, "g", func(j *api.Job) error { j.Info.Tasks[0].Node = "w2"; return nil })
			return err
		}},
		{"a task's cpuset", func() error {
			_, err := g.UpdateJob(ctx, "g", func(j *api.Job) error { j.Info.Tasks[0].CpusetCpus = "3"; return nil })
			return err
		}},
		{"a worker's allocation", func() error {
			_, err := g.UpdateWorker(ctx, "w1", func(w *api.Worker) error { w.SetAllocation(map[int]string{1: "g_task1"}, 0); return nil })
			return err
		}},
		{"a new worker's allocation", func() error {
			w := &api.Worker{ID: "w9", Cores: 2}
			w.SetAllocation(nil, 0)
			return g.PutWorker(ctx, w)
		}},
		{"a new job placed", func() error { return g.CreateJob(ctx, placed("h", api.Running, "w1")) }},
	}
	for i, w := range writes {
		if err := w.do(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if n := len(g.violations()); n != i+1 {
			t.Fatalf("%s: %d violations recorded, want %d", w.name, n, i+1)
		}
	}
	// What the globalmanager owns is not a violation.
	if _, err := g.UpdateJob(ctx, "g", func(j *api.Job) error { j.Info.Tasks[0].Status = api.Migrating; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := g.UpdateWorker(ctx, "w1", func(w *api.Worker) error { w.Status, w.Cores = api.WorkerDrained, 8; return nil }); err != nil {
		t.Fatal(err)
	}
	pin := apitest.Job("p", 1, 1, "sleep 1")
	pin.Info.Tasks[0].Node, pin.Info.Tasks[0].CpusetCpus = "w1", "0"
	if err := g.CreateJob(ctx, pin); err != nil {
		t.Fatal(err)
	}
	if n := len(g.violations()); n != len(writes) {
		t.Fatalf("%d violations, want %d: %v", n, len(writes), g.violations())
	}
}

// TestRegisterAsksForTheAllocation: a worker registering, new or again
// with another size, gets its membership and size written by the
// globalmanager and its allocation by the jobmanager, asked (the guard
// fails the test if the globalmanager writes the allocation itself). A
// jobmanager that does not answer does not fail the registration: its
// resync reads the worker later.
func TestRegisterAsksForTheAllocation(t *testing.T) {
	ctx := context.Background()
	reg := func(id string, cores int) api.Register {
		return api.Register{NodeID: id, Host: "host-" + id, Address: "10.0.0.9", Runtime: "sim", Cores: cores, MemTotal: 1 << 30}
	}
	tests := []struct {
		name     string
		before   func(e *gmEnv) // the records before
		nt       func(*fakeNotifier)
		register api.Register
		// want is the record after: its size, its busy cores (core -> task).
		cores int
		busy  map[string]string
		calls []string
	}{
		{name: "a new worker", register: reg("s1", 2), cores: 2, busy: map[string]string{},
			calls: []string{"nt.WorkerRegistered(s1 cores=2 mem=1073741824)"}},
		{name: "again, smaller: the cores gone leave its allocation", register: reg("w1", 2), cores: 2, busy: map[string]string{"0": "a_task1"},
			before: func(e *gmEnv) {
				e.worker(t, "w1", "sim", func(w *api.Worker) { w.SetAllocation(map[int]string{0: "a_task1", 3: "b_task1"}, 0) })
			},
			calls: []string{"nt.WorkerRegistered(w1 cores=2 mem=1073741824)"}},
		{name: "again, larger", register: reg("w1", 6), cores: 6, busy: map[string]string{"3": "b_task1"},
			before: func(e *gmEnv) {
				e.worker(t, "w1", "sim", func(w *api.Worker) { w.SetAllocation(map[int]string{3: "b_task1"}, 0) })
			},
			calls: []string{"nt.WorkerRegistered(w1 cores=6 mem=1073741824)"}},
		{name: "the jobmanager does not answer: registered all the same, allocation untouched", register: reg("w1", 6), cores: 6, busy: map[string]string{"3": "b_task1"},
			before: func(e *gmEnv) {
				e.worker(t, "w1", "sim", func(w *api.Worker) { w.SetAllocation(map[int]string{3: "b_task1"}, 0) })
			},
			nt:    func(n *fakeNotifier) { n.registerErr = fmt.Errorf("jobmanager: %w", api.ErrUnavailable) },
			calls: []string{"nt.WorkerRegistered(w1 cores=6 mem=1073741824)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newGM(t, func(c *globalmanager.Config) { c.NoSwarm = true })
			if tc.before != nil {
				tc.before(e)
			}
			if tc.nt != nil {
				tc.nt(e.nt)
			}
			got, err := e.m.Register(ctx, tc.register)
			if err != nil || got.NodeID != tc.register.NodeID {
				t.Fatalf("Register = %+v, %v", got, err)
			}
			w, err := e.st.GetWorker(ctx, tc.register.NodeID)
			if err != nil {
				t.Fatal(err)
			}
			if w.Cores != tc.cores || w.Status != api.WorkerReady || w.Host != tc.register.Host || w.Runtime != "sim" {
				t.Errorf("record %+v", w)
			}
			if !maps.Equal(w.CoreTasks, tc.busy) {
				t.Errorf("core_tasks %v, want %v", w.CoreTasks, tc.busy)
			}
			if tc.nt == nil && len(w.CPUs) != w.Cores {
				t.Errorf("CPUs has %d entries for %d cores: the allocation was not written for the new size", len(w.CPUs), w.Cores)
			}
			wantCalls(t, e.rec.All(), tc.calls...)
		})
	}
}

// TestSingleWriterStatic reads the globalmanager's source: no function
// given to a store update (UpdateJob(s), UpdateWorker(s)) assigns a task's
// node or cpuset_cpus or a worker's allocation, and nothing calls
// SetAllocation.
// It complements the guard, which sees only the paths the tests take.
func TestSingleWriterStatic(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			if files[name], err = parser.ParseFile(fset, name, nil, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	jobmanagers := map[string]bool{"Node": true, "CpusetCpus": true, "CPUs": true, "CoreTasks": true, "MemAllocated": true, "MemFree": true}
	updates := map[string]bool{"UpdateJob": true, "UpdateJobs": true, "UpdateWorker": true, "UpdateWorkers": true}
	checked := 0
	for name, f := range files {
		{
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if ok && sel.Sel.Name == "SetAllocation" {
					// Nowhere: not even in a helper an update calls.
					t.Errorf("%s: %s computes a worker's allocation, the jobmanager's", name, fset.Position(sel.Pos()))
				}
				if !ok || !updates[sel.Sel.Name] || len(call.Args) == 0 {
					return true
				}
				fn, ok := call.Args[len(call.Args)-1].(*ast.FuncLit)
				if !ok {
					return true
				}
				checked++
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					switch n := n.(type) {
					case *ast.AssignStmt:
						for _, lhs := range n.Lhs {
							if s, ok := lhs.(*ast.SelectorExpr); ok && jobmanagers[s.Sel.Name] {
								t.Errorf("%s: %s writes .%s, the jobmanager's (ask it: see globalmanager.State)", name, fset.Position(s.Pos()), s.Sel.Name)
							}
						}
					}
					return true
				})
				return true
			})
		}
	}
	if checked < 5 {
		t.Fatalf("only %d store updates found in the globalmanager's source: the check reads the wrong files", checked)
	}
}

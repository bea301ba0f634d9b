package jobmanager

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/placement"
)

func newTestCore(t testing.TB) *Core {
	t.Helper()
	s, err := placement.New("best-fit", placement.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return NewCore(s, false)
}

// ready and down are worker records as the store lists them.
func ready(id string, cores int) *api.Worker {
	return &api.Worker{ID: id, Cores: cores, Status: api.WorkerReady}
}

func down(id string, cores int) *api.Worker {
	return &api.Worker{ID: id, Cores: cores, Status: api.WorkerDown}
}

// coreStep is one event and what the core must answer: its reply (error
// matched with errors.Is, or OK and the cores chosen) and the types of its
// other effects in order; alloc, when set, is what a Flush writes.
type coreStep struct {
	ev      Event
	err     error
	ok      bool
	cores   []int
	effects []string
	alloc   map[string]map[int]string
	// task, when set, is the WriteTask among the effects.
	task *WriteTask
}

// effectNames returns the type names of the effects other than Reply.
func effectNames(effects []Effect) []string {
	var out []string
	for _, e := range effects {
		if _, ok := e.(Reply); !ok {
			out = append(out, fmt.Sprintf("%T", e)[len("jobmanager."):])
		}
	}
	return out
}

func TestCoreSequences(t *testing.T) {
	w1, w2 := ready("w1", 4), ready("w2", 4)
	listed := WorkersListed{Workers: []*api.Worker{w1, w2}}
	tests := []struct {
		name  string
		steps []coreStep
	}{
		{name: "recovery holds the stored allocations and a flush writes them once", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "0-1"}, ok: true},
			// Held already: nothing changes, still OK.
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "0-1"}, ok: true},
			// Core 1 is a's: refused.
			{ev: Hold{Task: "b", Node: "w1", Cpuset: "1"}, err: placement.ErrCoreHeld},
			// A worker the cluster does not know: not held, no error.
			{ev: Hold{Task: "c", Node: "w9", Cpuset: "0"}},
			// w1 and w2 were added (touched), w1 holds a.
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "a", 1: "a"}, "w2": {}}},
			// Nothing changed since: no write.
			{ev: Flush{}},
		}},
		{name: "a move reserves the lowest free cores and commit swaps them", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "0-1"}, ok: true},
			{ev: Hold{Task: "x", Node: "w2", Cpuset: "0"}, ok: true},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "a", 1: "a"}, "w2": {0: "x"}}},
			// w2 has 1, 2, 3 free: placement picks 1 and 2.
			{ev: ReserveMove{R: api.Reservation{Task: "a", Node: "w2", Cores: 2}}, ok: true, cores: []int{1, 2}},
			// Core 2 is now reserved: naming it is a conflict.
			{ev: ReserveMove{R: api.Reservation{Task: "y", Node: "w2", Cpuset: []int{2}}}, err: api.ErrConflict},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w2": {0: "x", 1: "a#moving", 2: "a#moving"}}},
			{ev: CommitMove{R: api.Reservation{Task: "a"}}, ok: true, effects: []string{"Reschedule"}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {}, "w2": {0: "x", 1: "a", 2: "a"}}},
			// Nothing reserved any more.
			{ev: CommitMove{R: api.Reservation{Task: "a"}}, err: api.ErrNotFound},
		}},
		{name: "an aborted move gives its cores back and keeps the old ones", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "0"}, ok: true},
			{ev: ReserveMove{R: api.Reservation{Task: "a", Node: "w2", Cpuset: []int{3}}}, ok: true, cores: []int{3}},
			{ev: AbortMove{Task: "a"}, ok: true, effects: []string{"Reschedule"}},
			// Aborting twice is harmless.
			{ev: AbortMove{Task: "a"}, ok: true},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "a"}, "w2": {}}},
		}},
		{name: "a move is refused on an unknown, down or full worker", steps: []coreStep{
			{ev: WorkersListed{Workers: []*api.Worker{ready("w1", 2), down("w2", 4)}}, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "0-1"}, ok: true},
			{ev: ReserveMove{R: api.Reservation{Task: "b", Node: "w9", Cores: 1}}, err: api.ErrNotFound},
			{ev: ReserveMove{R: api.Reservation{Task: "b", Node: "w2", Cores: 1}}, err: api.ErrUnavailable},
			// w1's two cores are a's: 0 free, 1 asked.
			{ev: ReserveMove{R: api.Reservation{Task: "b", Node: "w1", Cores: 1}}, err: api.ErrConflict},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "a", 1: "a"}, "w2": {}}},
		}},
		{name: "a worker that leaves takes its tasks' cores with it", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "2"}, ok: true},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {2: "a"}, "w2": {}}},
			{ev: WorkersListed{Workers: []*api.Worker{{ID: "w1", Cores: 4, Status: api.WorkerLeft}, w2}}, effects: []string{"CoresLost", "Reschedule"}},
			// a holds nothing now: releasing it changes nothing.
			{ev: Release{Tasks: []string{"a"}}},
			// The departed worker is not written.
			{ev: Flush{}},
		}},
		{name: "a refused reallocation keeps the task's cores", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "0"}, ok: true},
			{ev: Hold{Task: "b", Node: "w1", Cpuset: "1"}, ok: true},
			{ev: Reallocate{R: api.Reservation{Task: "a", Node: "w1", Cpuset: []int{1, 2}}}, err: api.ErrConflict},
			{ev: Reallocate{R: api.Reservation{Task: "a", Node: "w1", Cpuset: []int{2, 3}}}, ok: true, effects: []string{"Reschedule"}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {1: "b", 2: "a", 3: "a"}, "w2": {}}},
		}},
		{name: "a round places through the strategy and its cores are written", steps: []coreStep{
			{ev: WorkersListed{Workers: []*api.Worker{ready("w1", 2)}}, effects: []string{"Reschedule"}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {}}},
			{ev: Enqueue{Job: readyJob("j", 1, 1)}, ok: true, effects: []string{"Reschedule"}},
			{ev: Enqueue{Job: readyJob("k", 1)}, ok: true, effects: []string{"Reschedule"}},
			// Queued already: nothing.
			{ev: Enqueue{Job: readyJob("k", 1)}},
			// j came first and takes both cores; k waits.
			{ev: Round{}, effects: []string{"Placed"}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "j-0", 1: "j-1"}}},
			{ev: Release{Tasks: []string{"j-0", "j-1"}}, effects: []string{"Reschedule"}},
			{ev: Dequeue{Jobs: []string{"k"}}, effects: []string{"Reschedule"}},
			{ev: Round{}, effects: []string{"Placed"}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {}}},
		}},
		{name: "the recovery sweep frees what no live task holds but keeps moves", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "0"}, ok: true},
			{ev: Hold{Task: "b", Node: "w1", Cpuset: "1"}, ok: true},
			{ev: ReserveMove{R: api.Reservation{Task: "a", Node: "w2", Cores: 1}}, ok: true, cores: []int{0}},
			{ev: KeepOnly{Live: map[string]bool{"a": true}}, effects: []string{"Reschedule"}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "a"}, "w2": {0: "a#moving"}}},
		}},
		{name: "a failed task stops its gang once and an ended job goes to its restart policy", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "g-0", Node: "w1", Cpuset: "0"}, ok: true},
			{ev: Hold{Task: "g-1", Node: "w1", Cpuset: "1"}, ok: true},
			{ev: Hold{Task: "g-2", Node: "w2", Cpuset: "0"}, ok: true},
			// g-0 failed, the job lives on: its cores are freed and the rest stopped.
			{ev: TasksEnded{Tasks: []api.TaskRef{{Job: "g", Task: "g-0", State: api.Failed}}}, effects: []string{"Reschedule", "StopJob"}},
			// Another failure of the same job: stopped already.
			{ev: TasksEnded{Tasks: []api.TaskRef{{Job: "g", Task: "g-1", State: api.Failed}}}, effects: []string{"Reschedule"}},
			// The last one ends the job Failed: handed to the restart policy.
			{ev: TasksEnded{Tasks: []api.TaskRef{{Job: "g", Task: "g-2", State: api.Failed, JobEnded: true}}}, effects: []string{"Reschedule", "RestartJobs"}},
			// A task that ends well stops nothing; its cores were freed already.
			{ev: TasksEnded{Tasks: []api.TaskRef{{Job: "g", Task: "g-2", State: api.Down}}}},
			// Restarted: a new failure stops it again.
			{ev: ForgetStops{Jobs: []string{"g"}}},
			{ev: TasksEnded{Tasks: []api.TaskRef{{Job: "g", Task: "g-0", State: api.Failed}}}, effects: []string{"StopJob"}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {}, "w2": {}}},
		}},
		{name: "records read at recovery: placed jobs sent again or requeued, live tasks held, ended ones freed", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			// Placed on w1, never delivered (the jobmanager stopped mid-way): held and sent again.
			{ev: JobRead{Job: recorded("p", api.Ready, placedTask{"p-0", "w1", "0", api.Scheduled})}, effects: []string{"Deploy"}},
			// Being deployed: the dispatcher's, left alone.
			{ev: JobRead{Job: recorded("p", api.Ready, placedTask{"p-0", "w1", "0", api.Scheduled})}},
			// Placed on a worker that is gone: placed again from scratch.
			{ev: JobRead{Job: recorded("q", api.Ready, placedTask{"q-0", "w9", "0", api.Scheduled})}, effects: []string{"RequeueJobs"}},
			// Placed on a core p holds: cannot be held, requeued, nothing of it kept.
			{ev: JobRead{Job: recorded("r", api.Ready, placedTask{"r-0", "w2", "0", api.Scheduled}, placedTask{"r-1", "w1", "0", api.Scheduled})}, effects: []string{"RequeueJobs"}},
			// Running: its cores are recorded.
			{ev: JobRead{Job: recorded("s", api.Running, placedTask{"s-0", "w1", "1", api.Running})}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "p-0", 1: "s-0"}, "w2": {}}},
			// Ended: freed.
			{ev: JobRead{Job: recorded("s", api.Down, placedTask{"s-0", "w1", "1", api.Down})}, effects: []string{"Reschedule"}},
			// Waiting: queued; then cancelled: out of the queue.
			{ev: JobRead{Job: readyJob("t", 1)}, effects: []string{"Reschedule"}},
			{ev: JobRead{Job: recorded("t", api.Cancelled, placedTask{"t-0", "", "", api.Cancelled})}, effects: []string{"Reschedule"}},
			// Only w1 changed since the last flush.
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "p-0"}}},
		}},
		{name: "placements the store took are deployed, the others give their cores back", steps: []coreStep{
			{ev: WorkersListed{Workers: []*api.Worker{ready("w1", 2)}}, effects: []string{"Reschedule"}},
			{ev: Enqueue{Job: readyJob("j", 1)}, ok: true, effects: []string{"Reschedule"}},
			{ev: Enqueue{Job: readyJob("k", 1)}, ok: true, effects: []string{"Reschedule"}},
			{ev: Round{}, effects: []string{"Placed"}},
			// j was written; k was cancelled meanwhile (the store refused it).
			{ev: PlacementsWritten{Placed: []placement.Decision{
				{Job: "j", Assignments: []placement.Assignment{{Task: "j-0", Worker: "w1", Cores: []int{0}}}},
				{Job: "k", Assignments: []placement.Assignment{{Task: "k-0", Worker: "w1", Cores: []int{1}}}},
			}, Written: []*api.Job{recorded("j", api.Ready, placedTask{"j-0", "w1", "0", api.Scheduled})}}, effects: []string{"Deploy", "Reschedule"}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "j-0"}}},
			// In flight: a record read now leaves it alone.
			{ev: JobRead{Job: recorded("j", api.Ready, placedTask{"j-0", "w1", "0", api.Scheduled})}},
		}},
		{name: "a worker registering again is resized, its allocation written at once", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "0-1"}, ok: true},
			{ev: Hold{Task: "b", Node: "w1", Cpuset: "3"}, ok: true},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {0: "a", 1: "a", 3: "b"}, "w2": {}}},
			// Back with 8 cores: its tasks keep theirs, 4-7 are new and free.
			{ev: WorkerRegistered{Worker: "w1", Cores: 8}, ok: true, effects: []string{"WriteAllocations", "Reschedule"},
				alloc: map[string]map[int]string{"w1": {0: "a", 1: "a", 3: "b"}}},
			// With 2: core 3 is b's, the size is refused and nothing written.
			{ev: WorkerRegistered{Worker: "w1", Cores: 2}, err: api.ErrConflict},
			{ev: Release{Tasks: []string{"b"}}, effects: []string{"Reschedule"}},
			{ev: WorkerRegistered{Worker: "w1", Cores: 2}, ok: true, effects: []string{"WriteAllocations", "Reschedule"},
				alloc: map[string]map[int]string{"w1": {0: "a", 1: "a"}}},
			// The same size again: written (the record may have lost it), no round due.
			{ev: WorkerRegistered{Worker: "w1", Cores: 2}, ok: true, effects: []string{"WriteAllocations"},
				alloc: map[string]map[int]string{"w1": {0: "a", 1: "a"}}},
			// A new worker; then a worker that was down comes back up.
			{ev: WorkerRegistered{Worker: "w3", Cores: 1}, ok: true, effects: []string{"WriteAllocations", "Reschedule"},
				alloc: map[string]map[int]string{"w3": {}}},
			{ev: WorkersListed{Workers: []*api.Worker{ready("w1", 2), down("w2", 4), ready("w3", 1)}}, effects: []string{"Reschedule"}},
			{ev: WorkerRegistered{Worker: "w2", Cores: 4}, ok: true, effects: []string{"WriteAllocations", "Reschedule"},
				alloc: map[string]map[int]string{"w2": {}}},
			{ev: WorkerRegistered{Worker: "w4", Cores: -1}, err: api.ErrInvalid},
			{ev: Flush{}},
		}},
		{name: "a committed move and an applied resize write the task's record", steps: []coreStep{
			{ev: listed, effects: []string{"Reschedule"}},
			{ev: Hold{Task: "a", Node: "w1", Cpuset: "0"}, ok: true},
			{ev: ReserveMove{R: api.Reservation{Task: "a", Node: "w2", Cores: 1}}, ok: true, cores: []int{0}},
			// The task runs on w2 now: its record says so.
			{ev: CommitMove{R: api.Reservation{Job: "j", Task: "a"}}, ok: true, effects: []string{"Reschedule", "WriteTask"},
				task: &WriteTask{Job: "j", Task: "a", Node: "w2", Cores: []int{0}}},
			{ev: Reallocate{R: api.Reservation{Task: "a", Node: "w2", Cpuset: []int{1, 2}}}, ok: true, effects: []string{"Reschedule"}},
			// Applied by its worker: written, with its memory limit.
			{ev: TaskResized{R: api.Reservation{Job: "j", Task: "a", Node: "w2", Cpuset: []int{2, 1}, MemLimit: "32m"}}, ok: true, effects: []string{"WriteTask"},
				task: &WriteTask{Job: "j", Task: "a", Node: "w2", Cores: []int{1, 2}, Resize: true, MemLimit: "32m"}},
			// Cores it does not hold, another node, no job: refused, nothing written.
			{ev: TaskResized{R: api.Reservation{Job: "j", Task: "a", Node: "w2", Cpuset: []int{3}}}, err: api.ErrConflict},
			{ev: TaskResized{R: api.Reservation{Job: "j", Task: "a", Node: "w1", Cpuset: []int{1, 2}}}, err: api.ErrConflict},
			{ev: TaskResized{R: api.Reservation{Job: "j", Task: "b", Node: "w2", Cpuset: []int{1, 2}}}, err: api.ErrConflict},
			{ev: TaskResized{R: api.Reservation{Task: "a", Node: "w2", Cpuset: []int{1, 2}}}, err: api.ErrInvalid},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {}, "w2": {1: "a", 2: "a"}}},
		}},
		{name: "unplacing a job frees its cores and resets it, in flight or not", steps: []coreStep{
			{ev: WorkersListed{Workers: []*api.Worker{ready("w1", 2)}}, effects: []string{"Reschedule"}},
			{ev: Enqueue{Job: readyJob("j", 1, 1)}, ok: true, effects: []string{"Reschedule"}},
			{ev: Round{}, effects: []string{"Placed"}},
			{ev: DeployStart{Job: readyJob("j", 1, 1)}, effects: []string{"Deploy"}},
			{ev: Unplace{Job: "j", Tasks: []string{"j-0", "j-1"}, Note: "requeued"}, ok: true, effects: []string{"Reschedule", "UnplaceJob"}},
			{ev: Flush{}, effects: []string{"WriteAllocations"}, alloc: map[string]map[int]string{"w1": {}}},
			// Nothing held any more: reset again, no round due.
			{ev: Unplace{Job: "j", Tasks: []string{"j-0", "j-1"}}, ok: true, effects: []string{"UnplaceJob"}},
		}},
		{name: "switching strategy", steps: []coreStep{
			{ev: SwitchStrategy{Name: "no-such"}, err: placement.ErrUnknownStrategy},
			{ev: SwitchStrategy{Name: "first-fit"}, ok: true, effects: []string{"Reschedule"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCore(t)
			store := map[string]map[int]string{}
			for i, s := range tc.steps {
				effects := c.Step(s.ev)
				r := replyOf(effects)
				where := fmt.Sprintf("step %d (%T)", i, s.ev)
				if s.err != nil {
					if !errors.Is(r.Err, s.err) {
						t.Fatalf("%s: err = %v, want %v", where, r.Err, s.err)
					}
				} else if r.Err != nil {
					t.Fatalf("%s: err = %v", where, r.Err)
				}
				if r.OK != s.ok || !slices.Equal(r.Cores, s.cores) {
					t.Fatalf("%s: reply ok=%v cores=%v, want ok=%v cores=%v", where, r.OK, r.Cores, s.ok, s.cores)
				}
				if got := effectNames(effects); !slices.Equal(got, s.effects) {
					t.Fatalf("%s: effects %v, want %v", where, got, s.effects)
				}
				if s.alloc != nil {
					got := map[string]map[int]string{}
					for _, e := range effects {
						if w, ok := e.(WriteAllocations); ok {
							for _, a := range w.Workers {
								got[a.Worker] = a.Busy
							}
						}
					}
					if !reflect.DeepEqual(got, s.alloc) {
						t.Fatalf("%s: wrote %v, want %v", where, got, s.alloc)
					}
				}
				if s.task != nil {
					var got []WriteTask
					for _, e := range effects {
						if w, ok := e.(WriteTask); ok {
							got = append(got, w)
						}
					}
					if len(got) != 1 || !reflect.DeepEqual(got[0], *s.task) {
						t.Fatalf("%s: wrote tasks %+v, want %+v", where, got, *s.task)
					}
				}
				applyWrites(store, effects)
				checkCore(t, c, nil, store)
			}
		})
	}
}

// applyWrites carries out WriteAllocations on a map standing for the store.
func applyWrites(store map[string]map[int]string, effects []Effect) {
	for _, e := range effects {
		if w, ok := e.(WriteAllocations); ok {
			for _, a := range w.Workers {
				store[a.Worker] = maps.Clone(a.Busy)
			}
		}
	}
}

// checkCore checks the invariant: every worker's free count agrees with
// its busy cores, the up totals add up; when model is given, the cores
// held are exactly the model's (none double-booked: the model gives each
// core to one task; none leaked: nothing held that the model freed); and
// right after a Flush (store given with nothing touched), the store agrees
// with the core on every worker.
func checkCore(t *testing.T, c *Core, model *coreModel, store map[string]map[int]string) {
	t.Helper()
	free, total := 0, 0
	held := map[string]map[int]string{}
	for _, v := range c.cluster.Workers() {
		if v.Free != v.Cores-len(v.Busy) {
			t.Fatalf("worker %s: %d free of %d with %d busy", v.ID, v.Free, v.Cores, len(v.Busy))
		}
		for core := range v.Busy {
			if core < 0 || core >= v.Cores {
				t.Fatalf("worker %s: core %d out of range", v.ID, core)
			}
		}
		if v.Up {
			free += v.Free
			total += v.Cores
		}
		held[v.ID] = v.Busy
	}
	if f, tot := c.FreeCores(); f != free || tot != total {
		t.Fatalf("FreeCores = %d/%d, workers say %d/%d", f, tot, free, total)
	}
	// The queue's arrival order and its shape counts agree with the queue:
	// a job taken out of the queue without unqueue would stay in the order
	// (and be placed twice) or leave a shape counted that no job has.
	inOrder, shapes := map[string]bool{}, make([]int, len(c.shapeCount))
	for _, q := range c.order {
		if q.out {
			continue
		}
		if c.queue[q.job.Name] != q || inOrder[q.job.Name] {
			t.Fatalf("job %s is in the arrival order but not (once) in the queue", q.job.Name)
		}
		inOrder[q.job.Name] = true
		shapes[q.shape]++
	}
	if len(inOrder) != len(c.queue) {
		t.Fatalf("%d jobs queued, %d in the arrival order", len(c.queue), len(inOrder))
	}
	live := 0
	for i, n := range shapes {
		if n != c.shapeCount[i] {
			t.Fatalf("shape %d: %d jobs queued, counted %d", i, n, c.shapeCount[i])
		}
		if n > 0 {
			live++
		}
	}
	if live != c.liveShapes {
		t.Fatalf("%d shapes queued, liveShapes %d", live, c.liveShapes)
	}
	if model != nil {
		want := model.busy()
		if !reflect.DeepEqual(held, want) {
			t.Fatalf("held %v\nmodel %v", held, want)
		}
	}
	if store != nil && len(c.touched) == 0 {
		for id, busy := range held {
			if !reflect.DeepEqual(store[id], busy) {
				t.Fatalf("worker %s: store has %v after a flush, core %v", id, store[id], busy)
			}
		}
	}
}

// coreModel is the simplest allocation bookkeeping that can be right: a
// map of workers and a map of task -> (worker, cores).
type coreModel struct {
	workers map[string]*modelWorker
	holds   map[string]modelHold
}

type modelWorker struct {
	cores int
	up    bool
}

type modelHold struct {
	worker string
	cores  []int
}

func (m *coreModel) owner(worker string, core int) string {
	for task, h := range m.holds {
		if h.worker == worker && slices.Contains(h.cores, core) {
			return task
		}
	}
	return ""
}

// fits reports whether cores (distinct, in range, free) can go to task on worker.
func (m *coreModel) fits(task, worker string, cores []int) bool {
	w := m.workers[worker]
	if w == nil || len(cores) == 0 {
		return false
	}
	if _, ok := m.holds[task]; ok {
		return false
	}
	for k, core := range cores {
		if core < 0 || core >= w.cores || m.owner(worker, core) != "" || slices.Contains(cores[:k], core) {
			return false
		}
	}
	return true
}

func (m *coreModel) lowestFree(worker string, n int) []int {
	var out []int
	for core := 0; core < m.workers[worker].cores && len(out) < n; core++ {
		if m.owner(worker, core) == "" {
			out = append(out, core)
		}
	}
	if len(out) < n {
		return nil
	}
	return out
}

// resize gives worker id n cores, unless a core it would lose is held.
func (m *coreModel) resize(id string, n int) bool {
	for _, h := range m.holds {
		if h.worker == id && slices.Max(h.cores) >= n {
			return false
		}
	}
	m.workers[id].cores = n
	return true
}

func (m *coreModel) removeWorker(id string) {
	delete(m.workers, id)
	for task, h := range m.holds {
		if h.worker == id {
			delete(m.holds, task)
		}
	}
}

func (m *coreModel) busy() map[string]map[int]string {
	out := map[string]map[int]string{}
	for id := range m.workers {
		out[id] = map[int]string{}
	}
	for task, h := range m.holds {
		for _, core := range h.cores {
			out[h.worker][core] = task
		}
	}
	return out
}

// TestCoreAgainstModel drives the core with random event sequences (workers
// coming, going down and up, leaving, registering again, resized or not;
// recovery holds; releases; rounds; jobs queued, dequeued and placed by
// rounds, or unplaced; moves reserved, committed (their task's record
// written when the commit names its job), aborted; reallocations and the
// resizes applied after them; recovery sweeps;
// flushes; tasks ended (gangs stopped once); deployments started, delivered, retried, refused) and after every event checks the invariant and that the cores
// held are exactly the model's. Moves that name no cores must get the
// lowest free ones (the model's rule for Cluster.PickFree); rounds are
// checked by applying their decisions to the model, which refuses a core
// already held.
func TestCoreAgainstModel(t *testing.T) {
	steps := 20000
	if testing.Short() {
		steps = 3000
	}
	rng := rand.New(rand.NewPCG(12, 2026))
	c := newTestCore(t)
	m := &coreModel{workers: map[string]*modelWorker{}, holds: map[string]modelHold{}}
	store := map[string]map[int]string{}
	sizes := map[string]int{}
	for i := range 6 {
		sizes["w"+strconv.Itoa(i)] = 1 + rng.IntN(8)
	}
	ids := slices.Sorted(maps.Keys(sizes))
	task := func() string { return "t" + strconv.Itoa(rng.IntN(24)) }
	randCores := func(worker string) []int {
		n := 1 + rng.IntN(3)
		var out []int
		for range n {
			out = append(out, rng.IntN(sizes[worker]+1)) // sometimes out of range
		}
		return out
	}
	jobs, most := 0, 0
	inflight, queued, stopped := map[string]bool{}, map[string]bool{}, map[string]bool{}
	counts := map[string]int{} // events by type
	for step := range steps {
		var ev Event
		switch op := rng.IntN(106); {
		case op < 4: // a worker registers (again), sometimes with another size
			id := ids[rng.IntN(len(ids))]
			if rng.IntN(3) == 0 {
				sizes[id] = 1 + rng.IntN(8)
			}
			ev = WorkerRegistered{Worker: id, Cores: sizes[id]}
		case op < 8: // the workers as listed: each present (ready or down), left, or absent
			var ws []*api.Worker
			for _, id := range ids {
				switch rng.IntN(16) {
				case 0:
					continue
				case 1:
					ws = append(ws, &api.Worker{ID: id, Cores: sizes[id], Status: api.WorkerLeft})
				case 2, 3:
					ws = append(ws, down(id, sizes[id]))
				default:
					ws = append(ws, ready(id, sizes[id]))
				}
			}
			ev = WorkersListed{Workers: ws}
		case op < 25:
			w := ids[rng.IntN(len(ids))]
			ev = Hold{Task: task(), Node: w, Cpuset: api.FormatCpuset(randCores(w))}
		case op < 40:
			ev = Release{Tasks: []string{task(), task()}}
		case op < 48:
			jobs++
			cores := []int{1 + rng.IntN(3)}
			if rng.IntN(2) == 0 {
				cores = append(cores, 1+rng.IntN(3))
			}
			ev = Enqueue{Job: readyJob("j"+strconv.Itoa(jobs), cores...)}
		case op < 50:
			ev = Dequeue{Jobs: []string{"j" + strconv.Itoa(jobs-rng.IntN(5))}}
		case op < 55:
			ev = Round{Now: float64(step)}
		case op < 65:
			w := ids[rng.IntN(len(ids))]
			r := api.Reservation{Task: task(), Node: w, Cores: 1 + rng.IntN(3)}
			if rng.IntN(3) == 0 {
				r.Cpuset = randCores(w)
			}
			ev = ReserveMove{R: r}
		case op < 72:
			r := api.Reservation{Task: task()}
			if rng.IntN(2) == 0 {
				r.Job = "j"
			}
			ev = CommitMove{R: r}
		case op < 78:
			ev = AbortMove{Task: task()}
		case op < 85:
			w := ids[rng.IntN(len(ids))]
			ev = Reallocate{R: api.Reservation{Task: task(), Node: w, Cpuset: randCores(w)}}
		case op < 86:
			var refs []api.TaskRef
			for range 1 + rng.IntN(2) {
				st := []api.State{api.Down, api.Failed}[rng.IntN(2)]
				refs = append(refs, api.TaskRef{Job: "g" + strconv.Itoa(rng.IntN(3)), Task: task(), State: st, JobEnded: rng.IntN(3) == 0})
			}
			ev = TasksEnded{Tasks: refs}
		case op < 87:
			live := map[string]bool{}
			for range 6 {
				live[task()] = true
			}
			ev = KeepOnly{Live: live}
		case op < 90:
			ev = DeployStart{Job: jobOf("d"+strconv.Itoa(rng.IntN(4)), task(), task())}
		case op < 94:
			j := jobOf("d"+strconv.Itoa(rng.IntN(4)), task(), task())
			errs := []error{nil, api.ErrUnavailable, api.ErrInvalid}
			ev = DeployDone{Job: j, Err: errs[rng.IntN(len(errs))], Now: time.Unix(int64(step), 0)}
		case op < 100:
			ev = Flush{}
		case op < 104: // a resize applied: half the time a held task's, with its cores
			tk := task()
			w := ids[rng.IntN(len(ids))]
			r := api.Reservation{Job: "j", Task: tk, Node: w, Cpuset: randCores(w)}
			var heldTasks []string
			for _, k := range slices.Sorted(maps.Keys(m.holds)) {
				if !isMoveKey(k) {
					heldTasks = append(heldTasks, k)
				}
			}
			if len(heldTasks) > 0 && rng.IntN(2) == 0 {
				r.Task = heldTasks[rng.IntN(len(heldTasks))]
				h := m.holds[r.Task]
				r.Node, r.Cpuset = h.worker, slices.Clone(h.cores)
			}
			ev = TaskResized{R: r}
		default: // a job unplaced (drain): one waiting, in flight, or stopped
			job := []string{"j" + strconv.Itoa(jobs-rng.IntN(5)), "d" + strconv.Itoa(rng.IntN(4)), "g" + strconv.Itoa(rng.IntN(3))}[rng.IntN(3)]
			ev = Unplace{Job: job, Tasks: []string{task(), task()}}
		}
		effects := c.Step(ev)
		r := replyOf(effects)
		name := fmt.Sprintf("%T", ev)[len("jobmanager."):]
		counts[name]++
		if r.OK {
			counts[name+" ok"]++
		}
		// The model's answer.
		switch ev := ev.(type) {
		case WorkerRegistered:
			w := m.workers[ev.Worker]
			wantOK := true
			switch {
			case w == nil:
				w = &modelWorker{cores: ev.Cores}
				m.workers[ev.Worker] = w
			case w.cores != ev.Cores:
				wantOK = m.resize(ev.Worker, ev.Cores)
			}
			if r.OK != wantOK {
				t.Fatalf("step %d: %+v: ok=%v (err %v), model says %v", step, ev, r.OK, r.Err, wantOK)
			}
			if wantOK {
				w.up = true
				var wrote []Allocation
				for _, e := range effects {
					if a, ok := e.(WriteAllocations); ok {
						wrote = append(wrote, a.Workers...)
					}
				}
				if want := m.busy()[ev.Worker]; len(wrote) != 1 || wrote[0].Worker != ev.Worker || !maps.Equal(wrote[0].Busy, want) {
					t.Fatalf("step %d: %+v wrote %+v, model %v", step, ev, wrote, want)
				}
			}
		case TaskResized:
			h, held := m.holds[ev.R.Task]
			wantOK := held && h.worker == ev.R.Node && slices.Equal(h.cores, slices.Sorted(slices.Values(ev.R.Cpuset)))
			if r.OK != wantOK {
				t.Fatalf("step %d: %+v: ok=%v (err %v), model says %v", step, ev.R, r.OK, r.Err, wantOK)
			}
			if got := wroteTasks(effects); wantOK != (len(got) == 1) || wantOK && (got[0].Node != h.worker || !slices.Equal(got[0].Cores, h.cores) || !got[0].Resize) {
				t.Fatalf("step %d: %+v wrote %+v, model holds %v", step, ev.R, got, h)
			}
		case Unplace:
			for _, task := range ev.Tasks {
				delete(m.holds, task)
			}
			delete(queued, ev.Job)
			delete(inflight, ev.Job)
			delete(stopped, ev.Job)
			if !r.OK || effectNames(effects)[len(effectNames(effects))-1] != "UnplaceJob" {
				t.Fatalf("step %d: %+v: ok=%v effects %v", step, ev, r.OK, effectNames(effects))
			}
		case WorkersListed:
			seen := map[string]bool{}
			for _, w := range ev.Workers {
				seen[w.ID] = true
				if w.Status == api.WorkerLeft {
					m.removeWorker(w.ID)
					continue
				}
				if m.workers[w.ID] == nil {
					m.workers[w.ID] = &modelWorker{cores: w.Cores}
				} else if m.workers[w.ID].cores != w.Cores && !m.resize(w.ID, w.Cores) {
					// Refused (a held core beyond the new size): left as it was.
					continue
				}
				m.workers[w.ID].up = w.Status == api.WorkerReady
			}
			for id := range m.workers {
				if !seen[id] {
					m.removeWorker(id)
				}
			}
		case Hold:
			cores, _ := api.ParseCpuset(ev.Cpuset)
			_, held := m.holds[ev.Task]
			wantOK := m.workers[ev.Node] != nil && (held || m.fits(ev.Task, ev.Node, cores))
			if r.OK != wantOK {
				t.Fatalf("step %d: %+v: ok=%v (err %v), model says %v", step, ev, r.OK, r.Err, wantOK)
			}
			if wantOK && !held {
				m.holds[ev.Task] = modelHold{ev.Node, slices.Sorted(slices.Values(cores))}
			}
		case Release:
			for _, task := range ev.Tasks {
				delete(m.holds, task)
			}
		case TasksEnded:
			var stops []string
			for _, e := range effects {
				if s, ok := e.(StopJob); ok {
					stops = append(stops, s.Job)
				}
			}
			var want []string
			for _, ref := range ev.Tasks {
				delete(m.holds, ref.Task)
				if ref.State == api.Failed && !ref.JobEnded && !stopped[ref.Job] {
					stopped[ref.Job] = true
					want = append(want, ref.Job)
				}
			}
			if !slices.Equal(stops, want) {
				t.Fatalf("step %d: %+v stopped %v, model %v", step, ev.Tasks, stops, want)
			}
		case KeepOnly:
			for task := range m.holds {
				if !ev.Live[task] && !isMoveKey(task) {
					delete(m.holds, task)
				}
			}
		case Enqueue:
			if !r.OK || queued[ev.Job.Name] {
				t.Fatalf("step %d: job %s not queued (ok=%v, queued before: %v)", step, ev.Job.Name, r.OK, queued[ev.Job.Name])
			}
			queued[ev.Job.Name] = true
		case Dequeue:
			for _, name := range ev.Jobs {
				delete(queued, name)
			}
		case Round:
			var placed Placed
			for _, e := range effects {
				if p, ok := e.(Placed); ok {
					placed = p
				}
			}
			for _, d := range placed.Decisions {
				if !queued[d.Job] {
					t.Fatalf("step %d: job %s placed but not queued", step, d.Job)
				}
				delete(queued, d.Job)
				for _, a := range d.Assignments {
					if w := m.workers[a.Worker]; w == nil || !w.up {
						t.Fatalf("step %d: %s placed on %s, which is not up", step, a.Task, a.Worker)
					}
					if !m.fits(a.Task, a.Worker, a.Cores) {
						t.Fatalf("step %d: %s placed on %s cores %v: not free in the model", step, a.Task, a.Worker, a.Cores)
					}
					m.holds[a.Task] = modelHold{a.Worker, a.Cores}
				}
			}
		case ReserveMove:
			key := moveKey(ev.R.Task)
			w := m.workers[ev.R.Node]
			want := ev.R.Cpuset
			if w != nil && len(want) == 0 {
				want = m.lowestFree(ev.R.Node, ev.R.Cores)
			}
			wantOK := w != nil && w.up && want != nil && m.fits(key, ev.R.Node, want)
			if r.OK != wantOK {
				t.Fatalf("step %d: %+v: ok=%v (err %v), model says %v", step, ev.R, r.OK, r.Err, wantOK)
			}
			if wantOK {
				if len(ev.R.Cpuset) == 0 && !slices.Equal(r.Cores, want) {
					t.Fatalf("step %d: reserved %v, the lowest free are %v", step, r.Cores, want)
				}
				m.holds[key] = modelHold{ev.R.Node, slices.Sorted(slices.Values(want))}
			}
		case CommitMove:
			key := moveKey(ev.R.Task)
			h, ok := m.holds[key]
			if r.OK != ok {
				t.Fatalf("step %d: commit %s: ok=%v (err %v), model says %v", step, ev.R.Task, r.OK, r.Err, ok)
			}
			if ok {
				delete(m.holds, key)
				m.holds[ev.R.Task] = h
			}
			// The moved task's record is written iff the commit names its job.
			got := wroteTasks(effects)
			if want := ok && ev.R.Job != ""; want != (len(got) == 1) || want && (got[0].Node != h.worker || !slices.Equal(got[0].Cores, h.cores) || got[0].Resize) {
				t.Fatalf("step %d: commit %+v wrote %+v, model %v", step, ev.R, got, h)
			}
		case AbortMove:
			delete(m.holds, moveKey(ev.Task))
		case DeployStart:
			inflight[ev.Job.Name] = true
		case DeployDone:
			switch {
			case ev.Err == nil:
				delete(inflight, ev.Job.Name)
			case errors.Is(ev.Err, api.ErrInvalid):
				delete(inflight, ev.Job.Name)
				for _, t := range ev.Job.Info.Tasks {
					delete(m.holds, t.ContainerName)
				}
			default:
				inflight[ev.Job.Name] = true
			}
		case Reallocate:
			old, held := m.holds[ev.R.Task]
			delete(m.holds, ev.R.Task)
			wantOK := m.fits(ev.R.Task, ev.R.Node, ev.R.Cpuset)
			if r.OK != wantOK {
				t.Fatalf("step %d: %+v: ok=%v (err %v), model says %v", step, ev.R, r.OK, r.Err, wantOK)
			}
			switch {
			case wantOK:
				m.holds[ev.R.Task] = modelHold{ev.R.Node, slices.Sorted(slices.Values(ev.R.Cpuset))}
			case held:
				m.holds[ev.R.Task] = old
			}
		}
		applyWrites(store, effects)
		checkCore(t, c, m, store)
		most = max(most, len(m.holds))
		if c.QueueLen() != len(queued) {
			t.Fatalf("step %d: %d jobs queued, model %d", step, c.QueueLen(), len(queued))
		}
		for k := range 4 {
			name := "d" + strconv.Itoa(k)
			if c.InFlight(name) != inflight[name] {
				t.Fatalf("step %d: job %s in flight %v, model %v", step, name, c.InFlight(name), inflight[name])
			}
		}
	}
	free, total := c.FreeCores()
	t.Logf("%d steps, at most %d tasks held at once, %d at the end, %d/%d up cores free; events %v", steps, most, len(m.holds), free, total, counts)
}

// wroteTasks returns the WriteTask effects.
func wroteTasks(effects []Effect) []WriteTask {
	var out []WriteTask
	for _, e := range effects {
		if w, ok := e.(WriteTask); ok {
			out = append(out, w)
		}
	}
	return out
}

func isMoveKey(task string) bool {
	return len(task) > len(moveSuffix) && task[len(task)-len(moveSuffix):] == moveSuffix
}

// readyJob is a job waiting to be placed, with one task per cores given,
// named name-0, name-1, ...
func readyJob(name string, cores ...int) *api.Job {
	j := &api.Job{Name: name, Status: api.Ready}
	for k, n := range cores {
		j.Info.Tasks = append(j.Info.Tasks, &api.Task{ContainerName: name + "-" + strconv.Itoa(k), ReqCores: n, Status: api.Ready})
	}
	return j
}

// placedTask is a task's record: name, node, cpuset_cpus, state.
type placedTask struct {
	name, node, cpuset string
	state              api.State
}

// recorded is a job's record in state st with tasks.
func recorded(name string, st api.State, tasks ...placedTask) *api.Job {
	j := &api.Job{Name: name, Status: st}
	for _, t := range tasks {
		j.Info.Tasks = append(j.Info.Tasks, &api.Task{ContainerName: t.name, Node: t.node, CpusetCpus: t.cpuset, Status: t.state, ReqCores: 1})
	}
	return j
}

// jobOf is a placed job whose tasks are named tasks.
func jobOf(name string, tasks ...string) *api.Job {
	j := &api.Job{Name: name}
	for _, t := range tasks {
		j.Info.Tasks = append(j.Info.Tasks, &api.Task{ContainerName: t})
	}
	return j
}

func TestCoreDeployOutcomes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	setup := func(t *testing.T) *Core {
		c := newTestCore(t)
		c.Step(WorkersListed{Workers: []*api.Worker{ready("w1", 4)}})
		for i, task := range []string{"a", "b"} {
			if r := replyOf(c.Step(Hold{Task: task, Node: "w1", Cpuset: strconv.Itoa(i)})); !r.OK {
				t.Fatalf("hold %s: %v", task, r.Err)
			}
		}
		c.Step(Flush{})
		return c
	}
	only := func(t *testing.T, effects []Effect, want ...string) {
		t.Helper()
		if got := effectNames(effects); !slices.Equal(got, want) {
			t.Fatalf("effects %v, want %v", got, want)
		}
	}
	t.Run("nothing delivered: retried with growing delays, cores kept", func(t *testing.T) {
		c := setup(t)
		j := jobOf("j", "a", "b")
		only(t, c.Step(DeployStart{Job: j}), "Deploy")
		// retryDelay: attempt n waits (200 ms << n)/2 with jitter 0, capped at 5 s.
		for n, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
			effects := c.Step(DeployDone{Job: j, Err: api.ErrUnavailable, Now: t0})
			only(t, effects, "RetryAt")
			r := effects[0].(RetryAt)
			if r.At.Sub(t0) != want || r.Attempt != n+1 {
				t.Fatalf("retry %d at +%v (attempt %d), want +%v", n+1, r.At.Sub(t0), r.Attempt, want)
			}
			if !c.InFlight("j") {
				t.Fatal("a job waiting for its retry is no longer in flight")
			}
		}
		only(t, c.Step(DeployDone{Job: j, Now: t0}))
		if c.InFlight("j") {
			t.Fatal("a delivered job is still in flight")
		}
		// Delivered: its cores stay held (the tasks run).
		if free, _ := c.FreeCores(); free != 2 {
			t.Fatalf("%d cores free after the delivery, want 2 (the job's are held)", free)
		}
		// A new deployment of the same name counts its attempts from 0 again.
		c.Step(DeployStart{Job: j})
		if r := c.Step(DeployDone{Job: j, Err: api.ErrUnavailable, Now: t0})[0].(RetryAt); r.Attempt != 1 {
			t.Fatalf("attempt %d after a fresh start, want 1", r.Attempt)
		}
	})
	t.Run("refused: the job fails and its cores are freed", func(t *testing.T) {
		c := setup(t)
		j := jobOf("j", "a", "b")
		c.Step(DeployStart{Job: j})
		effects := c.Step(DeployDone{Job: j, Err: fmt.Errorf("bad image: %w", api.ErrInvalid), Now: t0})
		only(t, effects, "FailJob", "Reschedule")
		if free, _ := c.FreeCores(); free != 4 {
			t.Fatalf("%d cores free after the refusal, want 4", free)
		}
		if c.InFlight("j") {
			t.Fatal("a refused job is still in flight")
		}
		only(t, c.Step(Flush{}), "WriteAllocations")
	})
	t.Run("record unreadable: retried whatever the cause", func(t *testing.T) {
		c := setup(t)
		effects := c.Step(RetryDeploy{Job: jobOf("j"), Cause: api.ErrInvalid, Now: t0, Jitter: 0.5})
		only(t, effects, "RetryAt")
		// 200 ms: 100 + 0.5 * 100.
		if r := effects[0].(RetryAt); r.At.Sub(t0) != 150*time.Millisecond {
			t.Fatalf("retry at +%v, want +150ms", r.At.Sub(t0))
		}
		only(t, c.Step(DeployForget{Job: "j"}))
		if c.InFlight("j") {
			t.Fatal("a forgotten job is still in flight")
		}
	})
}

func TestCoreWaitingReasons(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newTestCore(t)
	c.Step(WorkersListed{Workers: []*api.Worker{ready("w1", 1)}})
	c.Step(Enqueue{Job: readyJob("big", 2), Now: t0})
	if effects := c.Step(Round{Now: 1}); len(effects[0].(Placed).Decisions) != 0 {
		t.Fatal("a 2-core job placed on a 1-core worker")
	}
	reasons := func(at time.Duration) map[string]string {
		for _, e := range c.Step(ReasonsDue{Now: t0.Add(at)}) {
			if w, ok := e.(WriteReasons); ok {
				return w.Reasons
			}
		}
		return nil
	}
	// reasonAfter is 1 s: not yet at 0.5 s.
	if r := reasons(500 * time.Millisecond); r != nil {
		t.Fatalf("reasons written after 0.5 s: %v", r)
	}
	r := reasons(time.Second)
	if len(r) != 1 || r["big"] == "" {
		t.Fatalf("reasons at 1 s = %v, want one for big", r)
	}
	// Written, and unchanged since: nothing more.
	if r := reasons(20 * time.Second); r != nil {
		t.Fatalf("an unchanged reason written again: %v", r)
	}
	// Placed: out of the queue, no reason ever again.
	c.Step(WorkersListed{Workers: []*api.Worker{ready("w1", 2)}})
	if effects := c.Step(Round{Now: 2}); len(effects[0].(Placed).Decisions) != 1 || c.QueueLen() != 0 {
		t.Fatalf("the job is not placed on the resized worker (%d queued)", c.QueueLen())
	}
}

func TestCoreRedeploy(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		job      *api.Job // the record read; nil: deleted
		err      error
		effects  []string
		inFlight bool
		free     int // of w1's 2 cores afterwards
	}{
		// Still Scheduled on a live worker: sent again, still in flight, cores held.
		{name: "send again", job: recorded("p", api.Ready, placedTask{"p-0", "w1", "0", api.Scheduled}), effects: []string{"Deploy"}, inFlight: true, free: 1},
		// The store did not answer: retried later, cores held.
		{name: "store unreachable", err: api.ErrUnavailable, effects: []string{"RetryAt"}, inFlight: true, free: 1},
		// Deleted meanwhile: forgotten, the cores of the tasks it was deployed with freed.
		{name: "deleted", err: fmt.Errorf("job p: %w", api.ErrNotFound), effects: []string{"Reschedule"}, free: 2},
		// Cancelled meanwhile: forgotten, cores freed.
		{name: "cancelled", job: recorded("p", api.Cancelled, placedTask{"p-0", "w1", "0", api.Cancelled}), effects: []string{"Reschedule"}, free: 2},
		// Its worker went away, nothing started: placed again.
		{name: "worker gone", job: recorded("p", api.Ready, placedTask{"p-0", "w9", "0", api.Scheduled}), effects: []string{"Reschedule", "RequeueJobs"}, free: 2},
		// Its worker went away while another task runs: the undelivered one is lost.
		{name: "worker gone, another task runs", job: recorded("p", api.Running, placedTask{"p-0", "w9", "0", api.Scheduled}, placedTask{"p-1", "w1", "1", api.Running}),
			effects: []string{"LoseUndelivered"}, free: 1},
		// Delivered meanwhile (the reply was lost): nothing to do.
		{name: "delivered", job: recorded("p", api.Running, placedTask{"p-0", "w1", "0", api.Running}), free: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCore(t)
			c.Step(WorkersListed{Workers: []*api.Worker{ready("w1", 2)}})
			c.Step(Hold{Task: "p-0", Node: "w1", Cpuset: "0"})
			c.Step(DeployStart{Job: jobOf("p", "p-0")})
			c.Step(DeployDone{Job: jobOf("p", "p-0"), Err: api.ErrUnavailable, Now: t0})
			effects := c.Step(RedeployRead{Name: "p", Job: tc.job, Err: tc.err, Now: t0})
			if got := effectNames(effects); !slices.Equal(got, tc.effects) {
				t.Fatalf("effects %v, want %v", got, tc.effects)
			}
			if c.InFlight("p") != tc.inFlight {
				t.Fatalf("in flight %v, want %v", c.InFlight("p"), tc.inFlight)
			}
			if free, _ := c.FreeCores(); free != tc.free {
				t.Fatalf("%d cores free, want %d", free, tc.free)
			}
		})
	}
}

package placement

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// tasks builds unpinned tasks named <job>-t0, <job>-t1, ... with the given cores.
func tasks(job string, cores ...int) []Task {
	ts := make([]Task, len(cores))
	for i, c := range cores {
		ts[i] = Task{Name: fmt.Sprintf("%s-t%d", job, i), Cores: c}
	}
	return ts
}

// coreRange returns the core ids from..to-1.
func coreRange(from, to int) []int {
	var ids []int
	for c := from; c < to; c++ {
		ids = append(ids, c)
	}
	return ids
}

// placed writes assignments as "task@worker[cores]" for comparison.
func placed(as []Assignment) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = fmt.Sprintf("%s@%s%v", a.Task, a.Worker, a.Cores)
	}
	return strings.Join(parts, " ")
}

func TestPackers(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
		workers  []spec
		job      Job
		want     string // placed(...) on success
		reason   string // substring of the reason on failure
	}{
		// Best fit: leftover = free - request; smallest wins, ties to the lowest index.
		{
			name: "best fit takes the smallest leftover", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 8}, {id: "w2", cores: 4}, {id: "w3", cores: 6}},
			// leftovers: w1 8-4=4, w2 4-4=0, w3 6-4=2 -> w2
			job:  Job{Name: "j", Tasks: tasks("j", 4)},
			want: "j-t0@w2[0 1 2 3]",
		},
		{
			name: "best fit ties go to the lowest index", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 6}, {id: "w2", cores: 4}, {id: "w3", cores: 4}},
			// leftovers: w1 2, w2 0, w3 0 -> w2 (lowest of the zeros)
			job:  Job{Name: "j", Tasks: tasks("j", 4)},
			want: "j-t0@w2[0 1 2 3]",
		},
		{
			name: "the lowest free core ids", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 6, held: []int{0, 2, 3}}},
			// free ids 1, 4, 5 -> the two lowest are 1 and 4
			job:  Job{Name: "j", Tasks: tasks("j", 2)},
			want: "j-t0@w1[1 4]",
		},
		{
			name: "core ids beyond 64", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 130, held: append(coreRange(0, 100), 101, 129)}},
			// free ids: 100, 102..128 -> the three lowest
			job:  Job{Name: "j", Tasks: tasks("j", 3)},
			want: "j-t0@w1[100 102 103]",
		},
		{
			name: "tasks of a job share the capacity as they go", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 4}, {id: "w2", cores: 8}},
			// t0: leftovers 4-2=2, 8-2=6 -> w1 (now 2 free); t1: 2-2=0, 6 -> w1 again
			job:  Job{Name: "j", Tasks: tasks("j", 2, 2)},
			want: "j-t0@w1[0 1] j-t1@w1[2 3]",
		},
		{
			name: "empty worker list", strategy: BestFit,
			job:    Job{Name: "j", Tasks: tasks("j", 1)},
			reason: "no workers are registered",
		},
		{
			name: "every worker down", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 4, down: true}, {id: "w2", cores: 4, down: true}},
			job:     Job{Name: "j", Tasks: tasks("j", 1)},
			reason:  "no worker is up (2 workers registered, all down)",
		},
		{
			name: "down workers are skipped", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 2, down: true}, {id: "w2", cores: 8}},
			// w1 would leave 0 but is down -> w2
			job:  Job{Name: "j", Tasks: tasks("j", 2)},
			want: "j-t0@w2[0 1]",
		},
		{
			name: "empty job places nothing", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 4}},
			job:     Job{Name: "j"},
			want:    "",
		},
		{
			name: "request larger than any worker", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 4}, {id: "w2", cores: 8}, {id: "w3", cores: 8, held: []int{0}}},
			job:     Job{Name: "j", Tasks: tasks("j", 9)},
			reason:  "task j-t0 needs 9 cores; the largest worker that is up has 8",
		},
		{
			name: "request larger than any free block", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 16, held: coreRange(0, 8)}, {id: "w2", cores: 8}, {id: "w3", cores: 8, held: []int{0}}},
			// free: w1 8, w2 8, w3 7
			job:    Job{Name: "j", Tasks: tasks("j", 9)},
			reason: "needs 1 task of 9 cores; the largest free block is 8 cores on 2 workers",
		},
		{
			name: "request larger than any up worker", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 16, down: true}, {id: "w2", cores: 8}},
			job:     Job{Name: "j", Tasks: tasks("j", 9)},
			reason:  "task j-t0 needs 9 cores; the largest worker that is up has 8",
		},
		{
			name: "memory larger than any worker", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 8, mem: 4 * gb}, {id: "w2", cores: 8, mem: 2 * gb}},
			job:     Job{Name: "j", Tasks: []Task{{Name: "t", Cores: 1, Mem: 5 * gb}}},
			reason:  "task t needs 5 GB of memory; the most any worker that is up has is 4 GB",
		},
		{
			name: "cores and memory on different workers", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 8, mem: 1 * gb}, {id: "w2", cores: 2, mem: 8 * gb}},
			job:     Job{Name: "j", Tasks: []Task{{Name: "t", Cores: 4, Mem: 2 * gb}}},
			reason:  "task t needs 4 cores and 2 GB of memory; no worker that is up has both",
		},
		{
			name: "gang that fits one task at a time but not together", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 8}, {id: "w2", cores: 4}, {id: "w3", cores: 4}, {id: "w4", cores: 4}},
			// t0 takes w1's 8; t1 finds 4 at most
			job:    Job{Name: "j", Tasks: tasks("j", 8, 8)},
			reason: "needs 2 tasks of 8 cores; the largest free block is 8 cores on 1 worker",
		},
		{
			name: "the issue's example wording", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 8, held: coreRange(0, 4)}, {id: "w2", cores: 8, held: coreRange(4, 8)},
				{id: "w3", cores: 4}, {id: "w4", cores: 8, held: coreRange(0, 6)}},
			// free: 4, 4, 4, 2
			job:    Job{Name: "j", Tasks: tasks("j", 8, 8)},
			reason: "needs 2 tasks of 8 cores; the largest free block is 4 cores on 3 workers",
		},
		{
			name: "mixed sizes are described largest first", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 2, held: []int{0, 1}}},
			job:     Job{Name: "j", Tasks: tasks("j", 1, 4, 1)},
			reason:  "needs 1 task of 4 cores and 2 tasks of 1 core; no worker has a free core (1 worker up)",
		},
		{
			name: "memory is a constraint", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 2, mem: 1 * gb}, {id: "w2", cores: 8, mem: 4 * gb}},
			// by cores w1 leaves 0, but it has 1 GB < 2 GB -> w2
			job:  Job{Name: "j", Tasks: []Task{{Name: "t", Cores: 2, Mem: 2 * gb}}},
			want: "t@w2[0 1]",
		},
		{
			name: "memory is a constraint for first fit", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 8, mem: 1 * gb}, {id: "w2", cores: 2, mem: 500 * mb}, {id: "w3", cores: 2, mem: 4 * gb}},
			job:     Job{Name: "j", Tasks: []Task{{Name: "t", Cores: 2, Mem: 2 * gb}}},
			want:    "t@w3[0 1]",
		},
		{
			name: "memory short everywhere", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 8, mem: 1 * gb}, {id: "w2", cores: 2, mem: 1500 * mb}, {id: "w3", cores: 4, mem: 4 * gb, held: coreRange(0, 4)}},
			// w3 could take it when empty, but its cores are held
			job:    Job{Name: "j", Tasks: []Task{{Name: "t", Cores: 2, Mem: 2 * gb}}},
			reason: "task t needs 2 cores and 2 GB of memory; no worker has both free (the most free memory on a worker is 4 GB)",
		},
		{
			name: "memory adds up within a job", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 8, mem: 3 * gb}},
			// t0 takes 2 GB of 3; t1 needs 2 GB more -> rolled back
			job:    Job{Name: "j", Tasks: []Task{{Name: "a", Cores: 1, Mem: 2 * gb}, {Name: "b", Cores: 1, Mem: 2 * gb}}},
			reason: "task b needs 1 core and 2 GB of memory",
		},
		{
			name: "first fit takes the lowest index that fits", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 2}, {id: "w2", cores: 8}, {id: "w3", cores: 3}},
			// w1 2 < 3; w2 8 >= 3 -> w2 (best fit would take w3)
			job:  Job{Name: "j", Tasks: tasks("j", 3)},
			want: "j-t0@w2[0 1 2]",
		},
		{
			name: "first fit keeps job order", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 8}, {id: "w2", cores: 1}},
			// t0 (1) -> w1 (7 left); t1 (8) fits nowhere -> waits
			job:    Job{Name: "j", Tasks: tasks("j", 1, 8)},
			reason: "needs 1 task of 8 cores and 1 task of 1 core; the largest free block is 8 cores on 1 worker",
		},
		{
			name: "first fit decreasing places largest first", strategy: FirstFitDecreasing,
			workers: []spec{{id: "w1", cores: 8}, {id: "w2", cores: 1}},
			// t1 (8) -> w1 (0 left); t0 (1) -> w2; assignments in job order
			job:  Job{Name: "j", Tasks: tasks("j", 1, 8)},
			want: "j-t0@w2[0] j-t1@w1[0 1 2 3 4 5 6 7]",
		},
		{
			name: "first fit decreasing on the original's crash case", strategy: FirstFitDecreasing,
			workers: []spec{{id: "w1", cores: 4}, {id: "w2", cores: 8}},
			// [1, 8]: t1 (8) -> w2 (w1 has 4); t0 (1) -> w1
			job:  Job{Name: "j", Tasks: tasks("j", 1, 8)},
			want: "j-t0@w1[0] j-t1@w2[0 1 2 3 4 5 6 7]",
		},
		{
			name: "best fit decreasing on the original's crash case", strategy: BestFitDecreasing,
			workers: []spec{{id: "w1", cores: 4}, {id: "w2", cores: 8}},
			// t1 (8): only w2 (leftover 0); t0 (1): w1 leftover 3 -> w1
			job:  Job{Name: "j", Tasks: tasks("j", 1, 8)},
			want: "j-t0@w1[0] j-t1@w2[0 1 2 3 4 5 6 7]",
		},
		{
			name: "decreasing is stable on equal sizes", strategy: BestFitDecreasing,
			workers: []spec{{id: "w1", cores: 7}},
			// order t1 (3), t0 (2), t2 (2), placed at the lowest ids as they come: 3+2+2 = 7
			job:  Job{Name: "j", Tasks: tasks("j", 2, 3, 2)},
			want: "j-t0@w1[3 4] j-t1@w1[0 1 2] j-t2@w1[5 6]",
		},
		{
			name: "a task that already holds cores", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 4, held: []int{0}}},
			job:     Job{Name: "j", Tasks: []Task{{Name: "w1-held", Cores: 1}}},
			reason:  "task w1-held already holds cores 0 on worker w1",
		},
		{
			name: "a task named twice in one job", strategy: FirstFit,
			workers: []spec{{id: "w1", cores: 4}},
			job:     Job{Name: "j", Tasks: []Task{{Name: "a", Cores: 1}, {Name: "a", Cores: 1}}},
			reason:  "task a already holds cores 0 on worker w1",
		},
		{
			name: "a task asking for no cores", strategy: BestFit,
			workers: []spec{{id: "w1", cores: 4}},
			job:     Job{Name: "j", Tasks: tasks("j", 0)},
			reason:  "task j-t0 asks for 0 cores; it needs at least 1",
		},
		{
			name: "priority places with best fit", strategy: Priority,
			workers: []spec{{id: "w1", cores: 8}, {id: "w2", cores: 4}},
			job:     Job{Name: "j", Tasks: tasks("j", 4)},
			want:    "j-t0@w2[0 1 2 3]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, tc.workers...)
			s, err := New(tc.strategy, Options{})
			if err != nil {
				t.Fatal(err)
			}
			before := fmt.Sprint(c.Workers())
			as, reason, ok := s.Place(c, tc.job)
			checkCluster(t, c)
			if tc.reason != "" {
				if ok {
					t.Fatalf("placed %s, want a wait with %q", placed(as), tc.reason)
				}
				if !strings.Contains(reason, tc.reason) {
					t.Fatalf("reason %q, want it to contain %q", reason, tc.reason)
				}
				if after := fmt.Sprint(c.Workers()); after != before {
					t.Fatalf("a job that waits changed the cluster (a leak):\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if !ok {
				t.Fatalf("waits (%s), want %s", reason, tc.want)
			}
			if got := placed(as); got != tc.want {
				t.Fatalf("placed %s, want %s", got, tc.want)
			}
			for _, a := range as {
				if w, cores, ok := c.Holds(a.Task); !ok || w != a.Worker || !slices.Equal(cores, a.Cores) {
					t.Fatalf("task %s: cluster holds %s %v %v, assignment says %s %v", a.Task, w, cores, ok, a.Worker, a.Cores)
				}
			}
		})
	}
}

func TestNoScheduler(t *testing.T) {
	pin := func(name, node string, cores ...int) Task {
		return Task{Name: name, Node: node, Cpuset: cores, Cores: len(cores)}
	}
	tests := []struct {
		name    string
		workers []spec
		job     Job
		want    string
		reason  string
	}{
		{
			name: "exactly the pinned cores", workers: []spec{{id: "w1", cores: 4}},
			job:  Job{Name: "j", Tasks: []Task{pin("a", "w1", 3, 1)}},
			want: "a@w1[1 3]",
		},
		{
			name: "tasks of one job on several nodes", workers: []spec{{id: "w1", cores: 4}, {id: "w2", cores: 4}},
			job:  Job{Name: "j", Tasks: []Task{pin("a", "w2", 0), pin("b", "w1", 0, 1)}},
			want: "a@w2[0] b@w1[0 1]",
		},
		{
			name: "a held core makes the job wait", workers: []spec{{id: "w1", cores: 4, held: []int{3}}},
			job:    Job{Name: "j", Tasks: []Task{pin("a", "w1", 2, 3)}},
			reason: "pinned core 3 on node w1 is held by task w1-held",
		},
		{
			name:    "all or nothing: the first task is released when the second waits",
			workers: []spec{{id: "w1", cores: 4}, {id: "w2", cores: 4, held: []int{0}}},
			job:     Job{Name: "j", Tasks: []Task{pin("a", "w1", 0), pin("b", "w2", 0)}},
			reason:  "pinned core 0 on node w2 is held by task w2-held",
		},
		{
			name: "two tasks of one job on the same core", workers: []spec{{id: "w1", cores: 4}},
			job:    Job{Name: "j", Tasks: []Task{pin("a", "w1", 1), pin("b", "w1", 1, 2)}},
			reason: "pinned core 1 on node w1 is held by task a",
		},
		{
			name: "unknown node", workers: []spec{{id: "w1", cores: 4}},
			job:    Job{Name: "j", Tasks: []Task{pin("a", "nope", 0)}},
			reason: "node nope is not registered",
		},
		{
			name: "core out of range", workers: []spec{{id: "w1", cores: 4}},
			job:    Job{Name: "j", Tasks: []Task{pin("a", "w1", 4)}},
			reason: "pinned core 4 on node w1 does not exist (it has 4 cores)",
		},
		{
			name: "down node", workers: []spec{{id: "w1", cores: 4, down: true}},
			job:    Job{Name: "j", Tasks: []Task{pin("a", "w1", 0)}},
			reason: "node w1 is down",
		},
		{
			name: "no cpuset", workers: []spec{{id: "w1", cores: 4}},
			job:    Job{Name: "j", Tasks: []Task{{Name: "a", Node: "w1", Cores: 1}}},
			reason: "task a names no node and cpuset",
		},
		{
			name: "cpuset and req_cores disagree", workers: []spec{{id: "w1", cores: 4}},
			job:    Job{Name: "j", Tasks: []Task{{Name: "a", Node: "w1", Cores: 2, Cpuset: []int{0}}}},
			reason: "task a asks for 2 cores but its cpuset names 1",
		},
		{
			name: "core named twice", workers: []spec{{id: "w1", cores: 4}},
			job:    Job{Name: "j", Tasks: []Task{{Name: "a", Node: "w1", Cpuset: []int{1, 1}}}},
			reason: "task a names core 1 twice",
		},
		{
			name: "memory is a constraint", workers: []spec{{id: "w1", cores: 4, mem: gb}},
			job:    Job{Name: "j", Tasks: []Task{{Name: "a", Node: "w1", Cpuset: []int{0}, Mem: 2 * gb}}},
			reason: "task a needs 2 GB of memory; node w1 has 1 GB free",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, tc.workers...)
			s, err := New(NoScheduler, Options{})
			if err != nil {
				t.Fatal(err)
			}
			before := fmt.Sprint(c.Workers())
			as, reason, ok := s.Place(c, tc.job)
			checkCluster(t, c)
			if tc.reason != "" {
				if ok || !strings.Contains(reason, tc.reason) {
					t.Fatalf("Place = %s, %q, %v; want a wait with %q", placed(as), reason, ok, tc.reason)
				}
				if after := fmt.Sprint(c.Workers()); after != before {
					t.Fatalf("a job that waits changed the cluster:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if !ok || placed(as) != tc.want {
				t.Fatalf("Place = %s, %q, %v; want %s", placed(as), reason, ok, tc.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	want := []string{"best-fit", "best-fit-decreasing", "first-fit", "first-fit-decreasing", "no-scheduler", "priority"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	d := Describe()
	for _, n := range want {
		s, err := New(n, Options{})
		if err != nil {
			t.Fatalf("New(%q): %v", n, err)
		}
		if s.Name() != n || s.Description() == "" || d[n] == "" || strings.Contains(d[n], "\n") {
			t.Fatalf("strategy %q: name %q, description %q, Describe %q", n, s.Name(), s.Description(), d[n])
		}
	}
	_, err := New("best-fir-decreasing", Options{})
	if !errors.Is(err, ErrUnknownStrategy) || !strings.Contains(err.Error(), strings.Join(want, ", ")) {
		t.Fatalf("unknown strategy error %v, want ErrUnknownStrategy listing %v", err, want)
	}
	if len(d) != len(want) {
		t.Fatalf("Describe() has %d entries, want %d", len(d), len(want))
	}
}

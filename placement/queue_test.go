package placement

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// outcome writes a round's result: placed jobs as "job@worker,worker" and
// waiting ones as "job:wait", in the order Schedule returns them.
func outcome(placed []Decision, waiting []Waiting) (string, string) {
	var p, w []string
	for _, d := range placed {
		var ws []string
		for _, a := range d.Assignments {
			ws = append(ws, a.Worker)
		}
		p = append(p, d.Job+"@"+strings.Join(ws, ","))
	}
	for _, x := range waiting {
		w = append(w, x.Job)
	}
	return strings.Join(p, " "), strings.Join(w, " ")
}

// leakCase is the original's capacity leak: w1 = 4 cores, w2 = 8 cores;
// jobs A = [2,2], B = [8,1], C = [3], in that order.
func leakCase() ([]spec, []Job) {
	return []spec{{id: "w1", cores: 4}, {id: "w2", cores: 8}}, []Job{
		{Name: "A", Tasks: tasks("A", 2, 2), Seq: 1},
		{Name: "B", Tasks: tasks("B", 8, 1), Seq: 2},
		{Name: "C", Tasks: tasks("C", 3), Seq: 3},
	}
}

func TestScheduleLeakCase(t *testing.T) {
	// A: 2 -> w1 (best fit leftover 2 vs 6; first fit lowest index), 2 -> w1 (now full).
	// B: 8 -> w2, then 1 finds nothing (w1 0, w2 0) -> B waits and its 8 are released.
	// C: 3 -> w2, which has 8 free again (the original leaked B's 8, so C waited too).
	for _, name := range []string{BestFit, FirstFit, BestFitDecreasing, FirstFitDecreasing, Priority} {
		t.Run(name, func(t *testing.T) {
			workers, queue := leakCase()
			c := newTestCluster(t, workers...)
			s, err := New(name, Options{})
			if err != nil {
				t.Fatal(err)
			}
			placedJobs, waiting := Schedule(c, s, queue, 0, QueueOptions{})
			checkCluster(t, c)
			p, w := outcome(placedJobs, waiting)
			if p != "A@w1,w1 C@w2" || w != "B" {
				t.Fatalf("placed %q waiting %q, want \"A@w1,w1 C@w2\" and \"B\"", p, w)
			}
			if got := placedJobs[1].Assignments[0].Cores; !slices.Equal(got, []int{0, 1, 2}) {
				t.Fatalf("C got cores %v, want [0 1 2]", got)
			}
			// The reason describes the cluster when B was tried: after A, before C.
			if want := "needs 1 task of 8 cores and 1 task of 1 core; the largest free block is 8 cores on 1 worker"; waiting[0].Reason != want {
				t.Fatalf("B's reason %q, want %q", waiting[0].Reason, want)
			}
			if free, total := c.FreeCores(); free != 5 || total != 12 {
				t.Fatalf("FreeCores = %d/%d, want 5/12 (12 - A's 4 - C's 3)", free, total)
			}
		})
	}
}

func TestSchedulePolicies(t *testing.T) {
	tests := []struct {
		name        string
		opts        QueueOptions
		now         float64
		wantPlaced  string
		wantWaiting string
		reasonC     string
	}{
		{
			name: "backfill lets C go ahead of B", opts: QueueOptions{Policy: Backfill}, now: 10,
			wantPlaced: "A@w1,w1 C@w2", wantWaiting: "B",
		},
		{
			name: "fifo: B blocks C", opts: QueueOptions{Policy: FIFO}, now: 10,
			wantPlaced: "A@w1,w1", wantWaiting: "B C",
			reasonC: "queued behind job B, which does not fit (fifo",
		},
		{
			name: "backfill stops behind a job that has waited MaxWait", opts: QueueOptions{Policy: Backfill, MaxWait: 60}, now: 61,
			// B submitted at 0 has waited 61 s >= 60 s: C waits behind it
			wantPlaced: "A@w1,w1", wantWaiting: "B C",
			reasonC: "queued behind job B, which has waited 61 s (the limit is 60 s)",
		},
		{
			name: "MaxWait 0 means the default of 60 s", opts: QueueOptions{Policy: Backfill}, now: 60,
			wantPlaced: "A@w1,w1", wantWaiting: "B C",
		},
		{
			name: "negative MaxWait turns the bound off", opts: QueueOptions{Policy: Backfill, MaxWait: -1}, now: 1e6,
			wantPlaced: "A@w1,w1 C@w2", wantWaiting: "B",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			workers, queue := leakCase()
			c := newTestCluster(t, workers...)
			s, _ := New(BestFit, Options{})
			placedJobs, waiting := Schedule(c, s, queue, tc.now, tc.opts)
			checkCluster(t, c)
			p, w := outcome(placedJobs, waiting)
			if p != tc.wantPlaced || w != tc.wantWaiting {
				t.Fatalf("placed %q waiting %q, want %q and %q", p, w, tc.wantPlaced, tc.wantWaiting)
			}
			if tc.reasonC != "" && !strings.Contains(waiting[1].Reason, tc.reasonC) {
				t.Fatalf("C's reason %q, want it to contain %q", waiting[1].Reason, tc.reasonC)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Policy
		err  error
	}{
		{name: "fifo", in: "fifo", want: FIFO},
		{name: "backfill", in: "backfill", want: Backfill},
		{name: "any case", in: " FIFO ", want: FIFO},
		{name: "empty is the default", in: "", want: Backfill},
		{name: "unknown", in: "lifo", err: ErrUnknownPolicy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePolicy(tc.in)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("ParsePolicy(%q) = %v, %v; want %v, %v", tc.in, got, err, tc.want, tc.err)
			}
			if err == nil {
				if back, _ := ParsePolicy(got.String()); back != got {
					t.Fatalf("%v does not round-trip through String", got)
				}
			}
		})
	}
}

func TestScheduleNoSchedulerConflicts(t *testing.T) {
	pinned := func(name string, seq uint64, cores ...int) Job {
		return Job{Name: name, Seq: seq, Tasks: []Task{{Name: name + "-t", Node: "w1", Cpuset: cores, Cores: len(cores)}}}
	}
	tests := []struct {
		name        string
		queue       []Job
		wantPlaced  string
		wantWaiting string
		reason      string // of the first waiting job
	}{
		{
			name:       "two jobs asking for the same core: the first in queue order wins",
			queue:      []Job{pinned("J1", 1, 0), pinned("J2", 2, 0, 1)},
			wantPlaced: "J1@w1", wantWaiting: "J2",
			reason: "pinned core 0 on node w1 is held by task J1-t",
		},
		{
			name:       "queue order is arrival (Seq), not slice order",
			queue:      []Job{pinned("J2", 2, 0, 1), pinned("J1", 1, 0)},
			wantPlaced: "J1@w1", wantWaiting: "J2",
			reason: "pinned core 0 on node w1 is held by task J1-t",
		},
		{
			name:       "disjoint cores both win",
			queue:      []Job{pinned("J1", 1, 0), pinned("J2", 2, 1, 2), pinned("J3", 3, 3)},
			wantPlaced: "J1@w1 J2@w1 J3@w1",
		},
		{
			name:       "a later job that conflicts does not disturb an earlier winner",
			queue:      []Job{pinned("J1", 1, 0, 1), pinned("J2", 2, 2), pinned("J3", 3, 1, 3)},
			wantPlaced: "J1@w1 J2@w1", wantWaiting: "J3",
			reason: "pinned core 1 on node w1 is held by task J1-t",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, spec{id: "w1", cores: 4})
			s, _ := New(NoScheduler, Options{})
			placedJobs, waiting := Schedule(c, s, tc.queue, 0, QueueOptions{})
			checkCluster(t, c)
			p, w := outcome(placedJobs, waiting)
			if p != tc.wantPlaced || w != tc.wantWaiting {
				t.Fatalf("placed %q waiting %q, want %q and %q", p, w, tc.wantPlaced, tc.wantWaiting)
			}
			if tc.reason != "" && waiting[0].Reason != tc.reason {
				t.Fatalf("reason %q, want %q", waiting[0].Reason, tc.reason)
			}
		})
	}
}

func TestPriorityOrder(t *testing.T) {
	// Effective priority = priority + floor(waited / ageing interval).
	queue := []Job{
		{Name: "low", Priority: 0, Submitted: 90, Seq: 1},
		{Name: "high-late", Priority: 5, Submitted: 95, Seq: 2},
		{Name: "high-deadline-100", Priority: 5, Deadline: 100, Submitted: 99, Seq: 3},
		{Name: "high-deadline-50", Priority: 5, Deadline: 50, Submitted: 99, Seq: 4},
		{Name: "high-early", Priority: 5, Submitted: 91, Seq: 5},
		{Name: "old", Priority: 0, Submitted: 0, Seq: 0},
	}
	tests := []struct {
		name   string
		ageing float64
		now    float64
		want   []string
	}{
		{
			name: "priority, then deadline (none last), then submission", ageing: -1, now: 100,
			want: []string{"high-deadline-50", "high-deadline-100", "high-early", "high-late", "old", "low"},
		},
		{
			name: "ageing lifts a job that has waited", ageing: 10, now: 100,
			// old: 0 + floor(100/10) = 10 > 5; low: 0 + floor(10/10) = 1; the 5s gain 0 (waited < 10 s)
			want: []string{"old", "high-deadline-50", "high-deadline-100", "high-early", "high-late", "low"},
		},
		{
			name: "default ageing is 30 s a level", ageing: 0, now: 100,
			// old: floor(100/30) = 3 < 5; the others waited < 30 s
			want: []string{"high-deadline-50", "high-deadline-100", "high-early", "high-late", "old", "low"},
		},
		{
			name: "ageing is counted in whole intervals", ageing: 20, now: 190,
			// old: 0 + 9 = 9; low: 0 + floor(100/20) = 5; high-late 5 + floor(95/20) = 9; high-early 5 + 4 = 9;
			// deadlines 5 + floor(91/20) = 9. All 9 except low (5): deadline first, then submission.
			want: []string{"high-deadline-50", "high-deadline-100", "old", "high-early", "high-late", "low"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := New(Priority, Options{AgeingInterval: tc.ageing})
			order := s.(Orderer).Order(queue, tc.now)
			var got []string
			for _, i := range order {
				got = append(got, queue[i].Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("order %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPriorityAgeingPreventsStarvation(t *testing.T) {
	// One 4-core worker. "big" (priority 0) waits from t=0. Every 10 s a new
	// priority-3 job arrives and the previous round's job ends. Without
	// ageing the newcomer always goes first; with one level per 10 s, big's
	// effective priority reaches 3 at t=30 s (round 3), ties with the
	// newcomer and wins on earlier submission.
	tests := []struct {
		name     string
		ageing   float64
		wantBig  bool
		maxRound int
	}{
		{name: "ageing on", ageing: 10, wantBig: true, maxRound: 3},
		{name: "ageing off starves", ageing: -1, wantBig: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, spec{id: "w1", cores: 4})
			s, _ := New(Priority, Options{AgeingInterval: tc.ageing})
			queue := []Job{{Name: "big", Tasks: tasks("big", 4), Submitted: 0, Seq: 0}}
			var running []string
			bigAt := -1
			for round := 1; round <= 20 && bigAt < 0; round++ {
				now := float64(10 * round)
				for _, task := range running {
					c.Release(task)
				}
				running = nil
				name := fmt.Sprintf("new%d", round)
				queue = append(queue, Job{Name: name, Priority: 3, Tasks: tasks(name, 4), Submitted: now, Seq: uint64(round)})
				placedJobs, waiting := Schedule(c, s, queue, now, QueueOptions{MaxWait: -1})
				queue = queue[:0]
				for _, w := range waiting {
					queue = append(queue, jobNamed(w.Job))
				}
				for _, d := range placedJobs {
					if d.Job == "big" {
						bigAt = round
					}
					for _, a := range d.Assignments {
						running = append(running, a.Task)
					}
				}
			}
			if tc.wantBig && (bigAt < 0 || bigAt > tc.maxRound) {
				t.Fatalf("big placed in round %d, want by round %d", bigAt, tc.maxRound)
			}
			if !tc.wantBig && bigAt >= 0 {
				t.Fatalf("big placed in round %d without ageing; the test no longer shows starvation", bigAt)
			}
		})
	}
}

// jobNamed rebuilds the starvation test's jobs from their names.
func jobNamed(name string) Job {
	if name == "big" {
		return Job{Name: "big", Tasks: tasks("big", 4), Submitted: 0, Seq: 0}
	}
	var round int
	if _, err := fmt.Sscanf(name, "new%d", &round); err != nil {
		panic(err)
	}
	return Job{Name: name, Priority: 3, Tasks: tasks(name, 4), Submitted: float64(10 * round), Seq: uint64(round)}
}

func TestScheduleSwitchingStrategyKeepsTheQueue(t *testing.T) {
	// Schedule is stateless over the queue: the caller keeps the waiting
	// jobs and may pass them to another strategy next round. One 2-core
	// worker with 2 cores held: nothing fits, whichever strategy runs.
	c := newTestCluster(t, spec{id: "w1", cores: 2, held: []int{0, 1}})
	queue := []Job{
		{Name: "j1", Tasks: tasks("j1", 1), Seq: 1},
		{Name: "j2", Tasks: tasks("j2", 2), Seq: 2},
		{Name: "j3", Tasks: tasks("j3", 1, 1), Seq: 3},
		{Name: "j4", Tasks: tasks("j4", 2), Seq: 4},
	}
	for round, name := range []string{BestFit, FirstFitDecreasing, Priority, FirstFit, BestFitDecreasing} {
		s, _ := New(name, Options{SortBatch: round%2 == 1})
		placedJobs, waiting := Schedule(c, s, queue, float64(round), QueueOptions{})
		if len(placedJobs) != 0 {
			t.Fatalf("round %d (%s): placed %v on a full cluster", round, name, placedJobs)
		}
		var got []string
		for _, w := range waiting {
			got = append(got, w.Job)
		}
		if want := []string{"j1", "j2", "j3", "j4"}; !slices.Equal(got, want) {
			t.Fatalf("round %d (%s): waiting %v, want %v", round, name, got, want)
		}
	}
	// Capacity frees; the next strategy places them in arrival order: j1
	// takes core 0, j2 (2 cores) cannot fit and is skipped, j3 needs 2 more.
	c.Release("w1-held")
	s, _ := New(FirstFit, Options{})
	placedJobs, waiting := Schedule(c, s, queue, 10, QueueOptions{})
	p, w := outcome(placedJobs, waiting)
	if p != "j1@w1" || w != "j2 j3 j4" {
		t.Fatalf("after freeing: placed %q waiting %q, want \"j1@w1\" and \"j2 j3 j4\"", p, w)
	}
	checkCluster(t, c)
}

func TestScheduleOrder(t *testing.T) {
	tests := []struct {
		name        string
		strategy    string
		opts        Options
		queue       []Job
		wantPlaced  string
		wantWaiting string
	}{
		{
			name: "decreasing without SortBatch keeps arrival order", strategy: BestFitDecreasing,
			queue:      []Job{{Name: "small", Tasks: tasks("s", 2), Seq: 1}, {Name: "large", Tasks: tasks("l", 8), Seq: 2}},
			wantPlaced: "small@w1", wantWaiting: "large",
		},
		{
			name: "SortBatch visits the largest job first", strategy: BestFitDecreasing, opts: Options{SortBatch: true},
			queue:      []Job{{Name: "small", Tasks: tasks("s", 2), Seq: 1}, {Name: "large", Tasks: tasks("l", 8), Seq: 2}},
			wantPlaced: "large@w1", wantWaiting: "small",
		},
		{
			name: "SortBatch ranks by total cores", strategy: FirstFitDecreasing, opts: Options{SortBatch: true},
			// wide: 3+3+2 = 8 cores; tall: 7 cores -> wide first
			queue:      []Job{{Name: "tall", Tasks: tasks("t", 7), Seq: 1}, {Name: "wide", Tasks: tasks("w", 3, 3, 2), Seq: 2}},
			wantPlaced: "wide@w1,w1,w1", wantWaiting: "tall",
		},
		{
			name: "SortBatch is ignored by non-decreasing strategies", strategy: BestFit, opts: Options{SortBatch: true},
			queue:      []Job{{Name: "small", Tasks: tasks("s", 2), Seq: 1}, {Name: "large", Tasks: tasks("l", 8), Seq: 2}},
			wantPlaced: "small@w1", wantWaiting: "large",
		},
		{
			name: "results come back in queue order whatever the visiting order", strategy: Priority,
			queue: []Job{{Name: "a", Tasks: tasks("a", 4), Seq: 1}, {Name: "b", Tasks: tasks("b", 4), Seq: 2, Priority: 1},
				{Name: "c", Tasks: tasks("c", 4), Seq: 3, Priority: 2}},
			// visiting c, b, a: c and b fill 8 cores
			wantPlaced: "b@w1 c@w1", wantWaiting: "a",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, spec{id: "w1", cores: 8})
			s, _ := New(tc.strategy, tc.opts)
			p, w := outcome(Schedule(c, s, tc.queue, 0, QueueOptions{}))
			if p != tc.wantPlaced || w != tc.wantWaiting {
				t.Fatalf("placed %q waiting %q, want %q and %q", p, w, tc.wantPlaced, tc.wantWaiting)
			}
		})
	}
}

func TestScheduleEdges(t *testing.T) {
	c := newTestCluster(t, spec{id: "w1", cores: 2})
	if p, w := Schedule(c, nil, nil, 0, QueueOptions{}); p != nil || w != nil {
		t.Fatalf("empty queue: %v %v", p, w)
	}
	_, w := Schedule(c, nil, []Job{{Name: "j", Tasks: tasks("j", 1)}}, 0, QueueOptions{})
	if len(w) != 1 || w[0].Reason != "no placement strategy is set" {
		t.Fatalf("nil strategy: %v", w)
	}
	s, _ := New(BestFit, Options{})
	p, _ := Schedule(c, s, []Job{{Name: "empty"}}, 0, QueueOptions{})
	if len(p) != 1 || p[0].Job != "empty" || p[0].Assignments == nil || len(p[0].Assignments) != 0 {
		t.Fatalf("a job without tasks should be placed with no assignments: %#v", p)
	}
}

func TestScheduleInfeasibleJobsHoldNobody(t *testing.T) {
	// w1 = 8 cores, 8 GB; w2 = 4 cores, down. Each queue: a head job, then
	// "next" asking for 2 cores. A head that waits only for capacity holds
	// "next" (FIFO, or after MaxWait); one no up worker could ever take
	// does not.
	pin := func(node string, cores ...int) []Task {
		return []Task{{Name: "head-t", Node: node, Cpuset: cores, Cores: len(cores)}}
	}
	tests := []struct {
		name     string
		strategy string
		opts     QueueOptions
		head     []Task
		wantNext bool // next placed
	}{
		{name: "fifo: waiting for capacity holds", strategy: BestFit, opts: QueueOptions{Policy: FIFO},
			head: tasks("head", 8, 1), wantNext: false},
		{name: "fifo: larger than any up worker does not hold", strategy: BestFit, opts: QueueOptions{Policy: FIFO},
			head: tasks("head", 9), wantNext: true},
		{name: "fifo: more memory than any worker does not hold", strategy: FirstFit, opts: QueueOptions{Policy: FIFO},
			head: []Task{{Name: "head-t", Cores: 1, Mem: 9 * gb}}, wantNext: true},
		{name: "aged: waiting for capacity holds", strategy: FirstFitDecreasing, opts: QueueOptions{MaxWait: 10},
			head: tasks("head", 8, 1), wantNext: false},
		{name: "aged: larger than any up worker does not hold", strategy: FirstFitDecreasing, opts: QueueOptions{MaxWait: 10},
			head: tasks("head", 1, 5, 9), wantNext: true},
		{name: "fifo: pinned to a held core holds", strategy: NoScheduler, opts: QueueOptions{Policy: FIFO},
			head: pin("w1", 0), wantNext: false},
		{name: "fifo: pinned to an unknown node does not hold", strategy: NoScheduler, opts: QueueOptions{Policy: FIFO},
			head: pin("nope", 0), wantNext: true},
		{name: "fifo: pinned to a down node does not hold", strategy: NoScheduler, opts: QueueOptions{Policy: FIFO},
			head: pin("w2", 0), wantNext: true},
		{name: "fifo: pinned to a core the node lacks does not hold", strategy: NoScheduler, opts: QueueOptions{Policy: FIFO},
			head: pin("w1", 8), wantNext: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, spec{id: "w1", cores: 8, mem: 8 * gb, held: []int{0}}, spec{id: "w2", cores: 4, down: true})
			next := Job{Name: "next", Tasks: tasks("next", 2), Seq: 2, Submitted: 100}
			if tc.strategy == NoScheduler {
				next.Tasks = []Task{{Name: "next-t", Node: "w1", Cpuset: []int{6, 7}, Cores: 2}}
			}
			queue := []Job{{Name: "head", Tasks: tc.head, Seq: 1, Submitted: 0}, next}
			s, _ := New(tc.strategy, Options{})
			placedJobs, waiting := Schedule(c, s, queue, 100, tc.opts)
			checkCluster(t, c)
			if len(waiting) == 0 || waiting[0].Job != "head" {
				t.Fatalf("head should wait: placed %v, waiting %v", placedJobs, waiting)
			}
			if got := len(placedJobs) == 1; got != tc.wantNext {
				t.Fatalf("next placed = %v, want %v (waiting %v)", got, tc.wantNext, waiting)
			}
		})
	}
}

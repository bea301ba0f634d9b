package jobmanager

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/placement"
)

// roundOf returns the Placed effect of a round.
func roundOf(t testing.TB, effects []Effect) Placed {
	t.Helper()
	for _, e := range effects {
		if p, ok := e.(Placed); ok {
			return p
		}
	}
	t.Fatal("a round without its Placed effect")
	return Placed{}
}

func decided(p Placed) []string {
	var out []string
	for _, d := range p.Decisions {
		out = append(out, d.Job)
	}
	return out
}

func visited(p Placed) []string {
	var out []string
	for _, w := range p.Waiting {
		out = append(out, w.Job)
	}
	return out
}

// TestCoreRoundStopsEarly: a round in arrival order stops at the first job
// that holds the rest (fifo), or once every shape queued has failed for
// want of cores (backfill), and the jobs it did not visit keep the reason
// they would have been given.
func TestCoreRoundStopsEarly(t *testing.T) {
	t0 := time.Unix(1000, 0)
	t.Run("fifo", func(t *testing.T) {
		c := newTestCore(t)
		c.Step(WorkersListed{Workers: []*api.Worker{ready("w1", 4)}})
		// a takes the 4 cores; b (4 cores) does not fit and holds c and d.
		for _, j := range []*api.Job{readyJob("a", 1, 1, 1, 1), readyJob("b", 4), readyJob("c", 1), readyJob("d", 1)} {
			c.Step(Enqueue{Job: j, Now: t0})
		}
		p := roundOf(t, c.Step(Round{Now: 1000, Opts: placement.QueueOptions{Policy: placement.FIFO}}))
		if !slices.Equal(decided(p), []string{"a"}) || !slices.Equal(visited(p), []string{"b"}) {
			t.Fatalf("placed %v, visited %v; want a placed and only b visited", decided(p), visited(p))
		}
		if !strings.Contains(p.Rest, "queued behind job b") || c.Reason("c") != p.Rest || c.Reason("d") != p.Rest {
			t.Fatalf("rest %q; c waits for %q, d for %q", p.Rest, c.Reason("c"), c.Reason("d"))
		}
		// a ends: b goes; c does not fit behind it and holds d.
		c.Step(Release{Tasks: []string{"a-0", "a-1", "a-2", "a-3"}})
		p = roundOf(t, c.Step(Round{Now: 1001, Opts: placement.QueueOptions{Policy: placement.FIFO}}))
		if !slices.Equal(decided(p), []string{"b"}) || !slices.Equal(p.Waited, []string{c0(p)}) || !slices.Equal(visited(p), []string{"c"}) {
			t.Fatalf("placed %v (waited %q), visited %v; want b placed, c visited", decided(p), p.Waited, visited(p))
		}
		if !strings.Contains(c.Reason("d"), "queued behind job c") {
			t.Fatalf("d waits for %q", c.Reason("d"))
		}
	})
	t.Run("backfill", func(t *testing.T) {
		c := newTestCore(t)
		c.Step(WorkersListed{Workers: []*api.Worker{ready("w1", 4)}})
		// a fills the worker; b (2 cores) and c (1 core) fail for want of
		// cores: every shape queued has failed, so d and e are not visited.
		for _, j := range []*api.Job{readyJob("a", 4), readyJob("b", 2), readyJob("c", 1), readyJob("d", 2), readyJob("e", 1)} {
			j.SubmitTime = 1000 // waited 0 s: nobody holds the rest (MaxWait)
			c.Step(Enqueue{Job: j, Now: t0})
		}
		p := roundOf(t, c.Step(Round{Now: 1000}))
		if !slices.Equal(decided(p), []string{"a"}) || !slices.Equal(visited(p), []string{"b", "c"}) || p.Rest != "" {
			t.Fatalf("placed %v, visited %v, rest %q; want a placed, b and c visited", decided(p), visited(p), p.Rest)
		}
		if c.Reason("d") != c.Reason("b") || c.Reason("e") != c.Reason("c") || c.Reason("b") == c.Reason("c") {
			t.Fatalf("reasons b %q c %q d %q e %q: d should wait as b, e as c", c.Reason("b"), c.Reason("c"), c.Reason("d"), c.Reason("e"))
		}
		// A job of a new shape arrives: the round goes on to it (d and e
		// are answered from their shapes' failures, without a search).
		f := readyJob("f", 3)
		f.SubmitTime = 1000
		c.Step(Enqueue{Job: f, Now: t0})
		p = roundOf(t, c.Step(Round{Now: 1001}))
		if !slices.Equal(visited(p), []string{"b", "c", "d", "e", "f"}) || p.Rest != "" {
			t.Fatalf("visited %v, want b to f", visited(p))
		}
	})
}

// c0 is the reason the first job placed waited for, as the test expects
// it: the fifo blocker's own reason from the round before.
func c0(p Placed) string { return p.Waited[0] }

// TestCoreRoundMatchesSchedule: on random queues and clusters, under both
// policies, the core's rounds (stopping early) place exactly the jobs
// placement.Schedule places over the whole queue on the same cluster, and
// every job left waits for the reason Schedule gives it.
func TestCoreRoundMatchesSchedule(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 1))
	for trial := range 300 {
		pol := placement.Policy(trial % 2)
		strategy := []string{"best-fit", "first-fit", "best-fit-decreasing"}[trial%3]
		s, _ := placement.New(strategy, placement.Options{})
		c := NewCore(s, false)
		ref := placement.NewCluster()
		var ws []*api.Worker
		for i := range 1 + r.IntN(4) {
			w := ready("w"+strconv.Itoa(i), 1+r.IntN(8))
			ws = append(ws, w)
			if err := ref.AddWorker(w.ID, w.Cores, 0); err != nil {
				t.Fatal(err)
			}
		}
		c.Step(WorkersListed{Workers: ws})
		var queue []placement.Job
		seq := uint64(0)
		held := map[string][]string{} // job -> tasks, placed
		for round := range 6 {
			for range r.IntN(6) {
				seq++
				sizes := make([]int, 1+r.IntN(3))
				for k := range sizes {
					sizes[k] = 1 + r.IntN(3)
				}
				j := readyJob("j"+strconv.FormatUint(seq, 10), sizes...)
				j.SubmitTime = float64(round * 20)
				c.Step(Enqueue{Job: j, Now: time.Unix(int64(round*20), 0)})
				queue = append(queue, ToPlacement(j, seq))
			}
			// Some placed jobs end.
			for name, tasks := range held {
				if r.IntN(3) == 0 {
					c.Step(Release{Tasks: tasks})
					for _, task := range tasks {
						ref.Release(task)
					}
					delete(held, name)
				}
			}
			now := float64(round*20 + 5)
			opts := placement.QueueOptions{Policy: pol}
			p := roundOf(t, c.Step(Round{Now: now, Opts: opts}))
			want, waiting := placement.Schedule(ref, s, queue, now, opts)
			if where(p.Decisions) != where(want) {
				t.Fatalf("trial %d round %d (%s, %v): core placed %v\nSchedule placed %v", trial, round, strategy, pol, p.Decisions, want)
			}
			// A job answered from its shape's failure waits for the reason
			// that failure gave: the same words, but the free figures of
			// that moment of the round.
			figures := func(r string) string { r, _, _ = strings.Cut(r, "; "); return r }
			for _, w := range waiting {
				if got := c.Reason(w.Job); figures(got) != figures(w.Reason) {
					t.Fatalf("trial %d round %d: %s waits for %q, Schedule says %q", trial, round, w.Job, got, w.Reason)
				}
			}
			placedNow := map[string]bool{}
			for _, d := range want {
				placedNow[d.Job] = true
				for _, a := range d.Assignments {
					held[d.Job] = append(held[d.Job], a.Task)
				}
			}
			queue = slices.DeleteFunc(queue, func(j placement.Job) bool { return placedNow[j.Name] })
		}
	}
}

// where writes decisions without their handles (each cluster numbers its
// records as its history went).
func where(ds []placement.Decision) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s:", d.Job)
		for _, a := range d.Assignments {
			fmt.Fprintf(&b, " %s@%s%v", a.Task, a.Worker, a.Cores)
		}
		b.WriteString("; ")
	}
	return b.String()
}

// BenchmarkCoreRoundOverloaded is a round under overload: a full cluster
// (1,000 workers of 16 cores) and 20,000 jobs of 4 one-core tasks queued;
// each iteration one task ends and a round runs, as at every instant of an
// overloaded run. "whole-queue" is what a round cost before it could stop
// early: placement.Schedule over the whole queue (what the core called);
// "core" is the core's round, which stops once every shape queued failed.
func BenchmarkCoreRoundOverloaded(b *testing.B) {
	const workers, cores, queued = 1000, 16, 20000
	setup := func(b *testing.B) (*Core, []placement.Job) {
		c := newTestCore(b)
		var ws []*api.Worker
		for i := range workers {
			ws = append(ws, ready(fmt.Sprintf("w%04d", i), cores))
		}
		c.Step(WorkersListed{Workers: ws})
		var queue []placement.Job
		for i := range workers*cores/4 + queued {
			j := readyJob("j"+strconv.Itoa(i), 1, 1, 1, 1)
			c.Step(Enqueue{Job: j, Now: time.Unix(0, 0)})
			queue = append(queue, ToPlacement(j, uint64(i+1)))
		}
		p := roundOf(b, c.Step(Round{Now: 0}))
		if len(p.Decisions) != workers*cores/4 {
			b.Fatalf("%d placed, want %d", len(p.Decisions), workers*cores/4)
		}
		return c, queue[workers*cores/4:]
	}
	// Each iteration: a task of a running job ends, the round places one
	// task's worth nowhere (jobs need 4 cores), and the task takes its
	// core again so that the next iteration sees the same state.
	b.Run("whole-queue", func(b *testing.B) {
		c, queue := setup(b)
		for i := 0; b.Loop(); i++ {
			task := "j" + strconv.Itoa(i%(workers*cores/4)) + "-0"
			node, cpus, _ := c.cluster.Release(task)
			placement.Schedule(c.cluster, c.strategy, queue, 0, placement.QueueOptions{MaxWait: -1})
			_ = c.cluster.Allocate(task, node, cpus, 0)
		}
	})
	b.Run("core", func(b *testing.B) {
		c, _ := setup(b)
		for i := 0; b.Loop(); i++ {
			task := "j" + strconv.Itoa(i%(workers*cores/4)) + "-0"
			node, cpus, _ := c.cluster.Release(task)
			roundOf(b, c.Step(Round{Now: 0, Opts: placement.QueueOptions{MaxWait: -1}}))
			_ = c.cluster.Allocate(task, node, cpus, 0)
		}
	})
}

package placement

import (
	"bytes"
	"strings"
	"testing"
)

func TestBench(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
	}{
		{name: "best fit", strategy: BestFit},
		{name: "first fit", strategy: FirstFit},
		{name: "best fit decreasing", strategy: BestFitDecreasing},
		{name: "first fit decreasing", strategy: FirstFitDecreasing},
		{name: "priority", strategy: Priority},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Bench(BenchOptions{Workers: 200, Cores: 32, Tasks: 20000, NaiveTasks: 5000, Strategy: tc.strategy, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			if r.Naive == nil || r.Compared != r.Indexed.Warmup+5000 || r.Agreed != r.Compared {
				t.Fatalf("compared %d, agreed %d (%s)", r.Compared, r.Agreed, r.Disagreement)
			}
			if r.Indexed.Decisions != 20000 || r.Indexed.Frees == 0 || r.Indexed.Placed == 0 {
				t.Fatalf("indexed run: %+v", r.Indexed)
			}
			var b bytes.Buffer
			if err := r.Write(&b); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"indexed", "naive", "speed ratio", "agreed on every one", "--naive-tasks"} {
				if !strings.Contains(b.String(), want) {
					t.Fatalf("report lacks %q:\n%s", want, b.String())
				}
			}
		})
	}
}

func TestBenchOptions(t *testing.T) {
	tests := []struct {
		name string
		o    BenchOptions
		want string
	}{
		{name: "no workers", o: BenchOptions{Cores: 8, Tasks: 1}, want: "workers must be at least 1"},
		{name: "no cores", o: BenchOptions{Workers: 1, Tasks: 1}, want: "cores must be at least 1"},
		{name: "no tasks", o: BenchOptions{Workers: 1, Cores: 8}, want: "tasks must be at least 1"},
		{name: "utilisation above 1", o: BenchOptions{Workers: 1, Cores: 8, Tasks: 1, MaxUtil: 2}, want: "within 0..1"},
		{name: "pinned strategy", o: BenchOptions{Workers: 1, Cores: 8, Tasks: 1, Strategy: NoScheduler}, want: "does not take single unpinned requests"},
		{name: "unknown strategy", o: BenchOptions{Workers: 1, Cores: 8, Tasks: 1, Strategy: "nope"}, want: "valid strategies are"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Bench(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Bench error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Tiny workers (cores/8 = 0) still ask for 1 core, and skipping the naive run works.
	r, err := Bench(BenchOptions{Workers: 3, Cores: 2, Tasks: 100, NaiveTasks: -1})
	if err != nil || r.Naive != nil || r.Options.Strategy != Default {
		t.Fatalf("small run: %+v, %v", r, err)
	}
}

// benchmarkPlacement measures decisions at 10,000 workers of 64 cores, 90%
// busy, each batch of 64 decisions preceded by the frees that make room.
// ns/op includes the frees; decide-ns/op is the placing alone.
func benchmarkPlacement(b *testing.B, strategy string, naive bool) {
	o := BenchOptions{Workers: 10000, Cores: 64, Tasks: 1, Strategy: strategy, Seed: 1}
	if err := o.fill(); err != nil {
		b.Fatal(err)
	}
	first, decreasing, _ := benchFlags(strategy)
	var target benchTarget
	if naive {
		n := newNaiveCluster()
		for i := range o.Workers {
			n.addWorker(workerName(i), o.Cores, 2*int64(o.Cores)*o.MemPerCore)
		}
		target = &naiveTarget{n: n, first: first, decreasing: decreasing}
	} else {
		c := NewCluster()
		for i := range o.Workers {
			if err := c.AddWorker(workerName(i), o.Cores, 2*int64(o.Cores)*o.MemPerCore); err != nil {
				b.Fatal(err)
			}
		}
		s, _ := New(strategy, Options{})
		target = &indexedTarget{c: c, s: s}
	}
	d := newBenchDriver(o, benchNames(o, b.N))
	d.warm(target, func(string, int) {})
	b.ReportAllocs()
	b.ResetTimer()
	r := d.measure(strategy, target, b.N, func(string, int) {})
	b.ReportMetric(float64(r.Placing.Nanoseconds())/float64(b.N), "decide-ns/op")
}

func BenchmarkBestFit10k(b *testing.B)            { benchmarkPlacement(b, BestFit, false) }
func BenchmarkFirstFit10k(b *testing.B)           { benchmarkPlacement(b, FirstFit, false) }
func BenchmarkBestFitDecreasing10k(b *testing.B)  { benchmarkPlacement(b, BestFitDecreasing, false) }
func BenchmarkFirstFitDecreasing10k(b *testing.B) { benchmarkPlacement(b, FirstFitDecreasing, false) }
func BenchmarkPriority10k(b *testing.B)           { benchmarkPlacement(b, Priority, false) }
func BenchmarkNaiveBestFit10k(b *testing.B)       { benchmarkPlacement(b, BestFit, true) }
func BenchmarkNaiveFirstFit10k(b *testing.B)      { benchmarkPlacement(b, FirstFit, true) }

// BenchmarkSchedule10k measures Schedule per job: rounds of 1,000 queued
// jobs of 1-4 tasks against 10,000 workers, best fit and backfill, each
// round starting from the same (empty) cluster.
func BenchmarkSchedule10k(b *testing.B) {
	c := NewCluster()
	for i := range 10000 {
		if err := c.AddWorker(workerName(i), 64, 64*gb); err != nil {
			b.Fatal(err)
		}
	}
	queue := make([]Job, 1000)
	for i := range queue {
		sizes := []int{1 + i%8}
		for k := 0; k < i%4; k++ {
			sizes = append(sizes, 1+(i+k)%16)
		}
		queue[i] = Job{Name: workerName(i), Tasks: tasks(workerName(i), sizes...), Seq: uint64(i)}
	}
	s, _ := New(BestFit, Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(queue) {
		q := queue[:min(len(queue), b.N-done)]
		placedJobs, _ := Schedule(c, s, q, 0, QueueOptions{})
		b.StopTimer()
		for _, d := range placedJobs {
			for _, a := range d.Assignments {
				c.Release(a.Task)
			}
		}
		b.StartTimer()
	}
}

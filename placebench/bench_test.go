package placebench

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rswarm/rswarm/placement"
)

func TestBench(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
	}{
		{name: "best fit", strategy: placement.BestFit},
		{name: "first fit", strategy: placement.FirstFit},
		{name: "best fit decreasing", strategy: placement.BestFitDecreasing},
		{name: "first fit decreasing", strategy: placement.FirstFitDecreasing},
		{name: "priority", strategy: placement.Priority},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Bench(Options{Workers: 200, Cores: 32, Tasks: 20000, NaiveTasks: 5000, Strategy: tc.strategy, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			if r.Naive == nil || r.Compared != r.Indexed.Warmup+5000 || r.Agreed != r.Compared || r.Check() != nil {
				t.Fatalf("compared %d, agreed %d (%s), check %v", r.Compared, r.Agreed, r.Disagreement, r.Check())
			}
			if r.Indexed.Decisions != 20000 || r.Indexed.Frees == 0 || r.Indexed.Placed == 0 {
				t.Fatalf("indexed run: %+v", r.Indexed)
			}
			if r.Ratio <= 0 || r.RatioWithFrees <= 0 {
				t.Fatalf("ratios %g and %g, want both measured", r.Ratio, r.RatioWithFrees)
			}
			var b bytes.Buffer
			if err := r.Write(&b); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"indexed", "naive", "speed ratio", "with the frees counted", "agreed on every one", "--naive-tasks"} {
				if !strings.Contains(b.String(), want) {
					t.Fatalf("report lacks %q:\n%s", want, b.String())
				}
			}
		})
	}
}

// wrongCore is a naive reference that, from decision `from` on, reports
// the first placement of at least two cores with its last core changed
// (to the one above the worker's last, which no task holds), without
// changing what the reference holds: one decision whose worker and first
// core agree, and whose core list does not.
type wrongCore struct {
	target
	from, n int
	done    bool
}

func (w *wrongCore) Place(j placement.Job) ([]placement.Assignment, bool) {
	as, ok := w.target.Place(j)
	w.n++
	if ok && !w.done && w.n > w.from && len(as[0].Cores) >= 2 {
		w.done = true
		as = slices.Clone(as)
		cores := slices.Clone(as[0].Cores)
		cores[len(cores)-1] = 1000
		as[0].Cores = cores
	}
	return as, ok
}

// TestBenchFailsOnADisagreement shows that a reference choosing wrongly
// once is caught, even when only a later core of the list differs, and
// that the report and Check say so.
func TestBenchFailsOnADisagreement(t *testing.T) {
	o := Options{Workers: 50, Cores: 32, Tasks: 2000, NaiveTasks: 1000, Strategy: placement.BestFit, Seed: 5}
	var wrong *wrongCore
	r, err := bench(o, func(n target) target {
		wrong = &wrongCore{target: n, from: 600}
		return wrong
	})
	if err != nil {
		t.Fatal(err)
	}
	if !wrong.done {
		t.Fatal("the wrapper changed no decision: the test shows nothing")
	}
	if r.Compared == 0 || r.Agreed != r.Compared-1 {
		t.Fatalf("compared %d, agreed %d; want exactly one disagreement", r.Compared, r.Agreed)
	}
	if !strings.Contains(r.Disagreement, "1000]") {
		t.Errorf("disagreement %q does not show the changed core", r.Disagreement)
	}
	if err := r.Check(); !errors.Is(err, ErrDisagreed) {
		t.Errorf("Check = %v, want ErrDisagreed", err)
	}
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "DISAGREED on 1;") {
		t.Errorf("report does not say it disagreed:\n%s", b.String())
	}
}

func TestBenchOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{name: "no workers", o: Options{Cores: 8, Tasks: 1}, want: "workers must be at least 1"},
		{name: "no cores", o: Options{Workers: 1, Tasks: 1}, want: "cores must be at least 1"},
		{name: "no tasks", o: Options{Workers: 1, Cores: 8}, want: "tasks must be at least 1"},
		{name: "utilisation above 1", o: Options{Workers: 1, Cores: 8, Tasks: 1, MaxUtil: 2}, want: "within 0..1"},
		{name: "pinned strategy", o: Options{Workers: 1, Cores: 8, Tasks: 1, Strategy: placement.NoScheduler}, want: "does not take single unpinned requests"},
		{name: "unknown strategy", o: Options{Workers: 1, Cores: 8, Tasks: 1, Strategy: "nope"}, want: "valid strategies are"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Bench(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Bench error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Tiny workers (cores/8 = 0) still ask for 1 core, and skipping the naive run works.
	r, err := Bench(Options{Workers: 3, Cores: 2, Tasks: 100, NaiveTasks: -1})
	if err != nil || r.Naive != nil || r.Options.Strategy != placement.Default || r.Check() != nil {
		t.Fatalf("small run: %+v, %v", r, err)
	}
}

// benchmarkPlacement measures decisions at 10,000 workers of 64 cores, 90%
// busy, each batch of 64 decisions preceded by the frees that make room.
// ns/op includes the frees; decide-ns/op is the placing alone.
func benchmarkPlacement(b *testing.B, strategy string, naive bool) {
	o := Options{Workers: 10000, Cores: 64, Tasks: 1, Strategy: strategy, Seed: 1}
	if err := o.fill(); err != nil {
		b.Fatal(err)
	}
	var t target
	if naive {
		n, err := placement.NewNaive(strategy)
		if err != nil {
			b.Fatal(err)
		}
		for i := range o.Workers {
			n.AddWorker(workerName(i), o.Cores, 2*int64(o.Cores)*o.MemPerCore)
		}
		t = n
	} else {
		c := placement.NewCluster()
		for i := range o.Workers {
			if err := c.AddWorker(workerName(i), o.Cores, 2*int64(o.Cores)*o.MemPerCore); err != nil {
				b.Fatal(err)
			}
		}
		s, _ := placement.New(strategy, placement.Options{})
		t = &indexed{c: c, s: s}
	}
	d := newDriver(o, taskNames(o, b.N))
	d.warm(t, nil)
	b.ReportAllocs()
	b.ResetTimer()
	r := d.measure(strategy, t, b.N, nil)
	b.ReportMetric(float64(r.Placing.Nanoseconds())/float64(b.N), "decide-ns/op")
}

func BenchmarkBestFit10k(b *testing.B)  { benchmarkPlacement(b, placement.BestFit, false) }
func BenchmarkFirstFit10k(b *testing.B) { benchmarkPlacement(b, placement.FirstFit, false) }
func BenchmarkBestFitDecreasing10k(b *testing.B) {
	benchmarkPlacement(b, placement.BestFitDecreasing, false)
}
func BenchmarkFirstFitDecreasing10k(b *testing.B) {
	benchmarkPlacement(b, placement.FirstFitDecreasing, false)
}
func BenchmarkPriority10k(b *testing.B)      { benchmarkPlacement(b, placement.Priority, false) }
func BenchmarkNaiveBestFit10k(b *testing.B)  { benchmarkPlacement(b, placement.BestFit, true) }
func BenchmarkNaiveFirstFit10k(b *testing.B) { benchmarkPlacement(b, placement.FirstFit, true) }

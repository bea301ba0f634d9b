package simulate

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/placement"
	"github.com/rswarm/rswarm/report"
	"github.com/rswarm/rswarm/stressclient"
)

// list is a Source of given arrivals.
type list struct {
	as []stressclient.Arrival
	i  int
}

func (l *list) Next() (stressclient.Arrival, bool) {
	if l.i >= len(l.as) {
		return stressclient.Arrival{}, false
	}
	l.i++
	return l.as[l.i-1], true
}

// job is an arrival at second at of tasks tasks of cores cores, each
// running run seconds.
func job(seq int, at float64, tasks, cores int, run float64) stressclient.Arrival {
	return stressclient.Arrival{Seq: seq, Offset: time.Duration(at * float64(time.Second)),
		Shape: stressclient.Shape{Tasks: tasks, Cores: cores, Duration: run, Command: "sleep 1"}}
}

// fiveJobs on three workers of 4 cores, where first fit fragments the
// cluster and best fit does not:
//
//	job1 t=0  1 task  x 3 cores, 2 s     job4 t=4  1 task  x 4 cores, 10 s
//	job2 t=1  1 task  x 3 cores, 100 s   job5 t=5  2 tasks x 4 cores, 5 s
//	job3 t=3  1 task  x 1 core,  100 s
func fiveJobs() []stressclient.Arrival {
	return []stressclient.Arrival{
		job(1, 0, 1, 3, 2), job(2, 1, 1, 3, 100), job(3, 3, 1, 1, 100), job(4, 4, 1, 4, 10), job(5, 5, 2, 4, 5),
	}
}

func TestHandComputedStarts(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
		policy   placement.Policy
		deploy   Dist
		start    Dist
		want     [5]float64 // start of job1..job5, seconds from 0
	}{
		{
			// t0 job1 -> w1 (free 1 4 4). t1 job2: w1 too small -> w2 (1 1 4).
			// t2 job1 ends (4 1 4). t3 job3 -> w1, the lowest with a core (3 1 4).
			// t4 job4 -> w3, the only one with 4 (3 1 0). t5 job5 needs two
			// workers with 4 free: none. t14 job4 ends (3 1 4): one. t101 job2
			// ends (3 4 4): job5 -> w2 and w3 at 101.
			name: "first fit", strategy: placement.FirstFit,
			want: [5]float64{0, 1, 3, 4, 101},
		},
		{
			// As first fit until t3: job3 -> w2, which it leaves with 0 free
			// (4 0 4). t4 job4: w1 and w3 leave 0, tie -> w1 (0 0 4). t5 job5
			// waits for a second empty worker: t14 job4 ends (4 0 4) -> 14.
			name: "best fit", strategy: placement.BestFit,
			want: [5]float64{0, 1, 3, 4, 14},
		},
		{
			// One task per job but job5, whose tasks are equal: first fit.
			name: "first fit decreasing", strategy: placement.FirstFitDecreasing,
			want: [5]float64{0, 1, 3, 4, 101},
		},
		{
			name: "best fit decreasing", strategy: placement.BestFitDecreasing,
			want: [5]float64{0, 1, 3, 4, 14},
		},
		{
			// Equal priorities and no deadlines: submission order, placed by best fit.
			name: "priority", strategy: placement.Priority,
			want: [5]float64{0, 1, 3, 4, 14},
		},
		{
			// Only job5 ever waits, with nobody behind it: fifo is backfill here.
			name: "best fit fifo", strategy: placement.BestFit, policy: placement.FIFO,
			want: [5]float64{0, 1, 3, 4, 14},
		},
		{
			// Every job starts 0.5 + 0.25 s after its decision and holds its
			// cores until start + run. job1 runs 0.75..2.75, so w1 is free
			// again at 2.75 < 3: decisions as best fit. job4 decided at 4
			// runs 4.75..14.75; job5 is decided at 14.75 and starts at 15.5.
			name: "best fit with deploy and start delays", strategy: placement.BestFit,
			deploy: Dist{A: 0.5}, start: Dist{A: 0.25},
			want: [5]float64{0.75, 1.75, 3.75, 4.75, 15.5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rows []report.Row
			cfg := Config{Workers: 3, Cores: 4, Memory: 1 << 30, Strategy: tt.strategy,
				Queue: placement.QueueOptions{Policy: tt.policy}, DeployDelay: tt.deploy, StartDelay: tt.start, Seed: 1}
			res, err := Run(context.Background(), cfg, &list{as: fiveJobs()}, func(r report.Row) error { rows = append(rows, r); return nil }, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Done != 5 || len(rows) != 5 {
				t.Fatalf("ended %d jobs (%d rows), want 5", res.Done, len(rows))
			}
			var got [5]float64
			for _, r := range rows {
				k, err := strconv.Atoi(strings.TrimPrefix(r.Job, "job"))
				if err != nil || k < 1 || k > 5 {
					t.Fatalf("unexpected job name %q", r.Job)
				}
				got[k-1] = r.Start - DefaultEpoch
			}
			for k := range got {
				if math.Abs(got[k]-tt.want[k]) > 1e-6 {
					t.Errorf("job%d starts at %.6f s, want %g (all: %v)", k+1, got[k], tt.want[k], got)
				}
			}
			if tt.want[4]-(5+tt.deploy.A+tt.start.A) > 1 && !strings.Contains(res.Reason, "needs 2 tasks of 4 cores") {
				t.Errorf("longest wait %s: reason %q does not say what job5 needs", res.LongestJob, res.Reason)
			}
		})
	}
}

// run simulates a small poisson workload with random durations and delays
// and returns its jobs.csv.
func run(t *testing.T, seed uint64, strategy string) []byte {
	t.Helper()
	p := stressclient.DefaultParams()
	p.Profile, p.Lambda, p.Turns, p.TaskCount, p.TaskCores = stressclient.Poisson, 10, 120, 3, 1
	st, err := stressclient.NewStream(p, seed)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	jw, err := report.NewJobsWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	dur := Dist{Kind: Exponential, A: 4}
	cfg := Config{Workers: 20, Cores: 8, Memory: 4 << 30, Strategy: strategy, TaskDuration: &dur, Seed: seed,
		DeployDelay: Dist{Kind: Exponential, A: 0.05}, StartDelay: Dist{Kind: Uniform, A: 0.01, B: 0.03},
		ReleaseDelay: Dist{Kind: Normal, A: 0.02, B: 0.01}}
	res, err := Run(context.Background(), cfg, st, jw.Write, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := jw.Flush(); err != nil {
		t.Fatal(err)
	}
	if res.Done != res.Arrived || res.Done < 1000 {
		t.Fatalf("%d of %d jobs ended, want all of more than 1000", res.Done, res.Arrived)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	for _, s := range []string{placement.BestFit, placement.FirstFitDecreasing, placement.Priority} {
		a, b := run(t, 7, s), run(t, 7, s)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: two runs of seed 7 wrote different jobs.csv (%d and %d bytes)", s, len(a), len(b))
		}
		if c := run(t, 8, s); bytes.Equal(a, c) {
			t.Fatalf("%s: seeds 7 and 8 wrote the same jobs.csv", s)
		}
	}
}

func TestParseDist(t *testing.T) {
	tests := []struct {
		in   string
		want Dist
		err  bool
	}{
		{in: "", want: Dist{}},
		{in: "0.5", want: Dist{A: 0.5}},
		{in: "fixed:50ms", want: Dist{A: 0.05}},
		{in: "exp:5m", want: Dist{Kind: Exponential, A: 300}},
		{in: "uniform:1,3", want: Dist{Kind: Uniform, A: 1, B: 3}},
		{in: "normal:5,1", want: Dist{Kind: Normal, A: 5, B: 1}},
		{in: "uniform:3,1", err: true},
		{in: "exp:-1", err: true},
		{in: "gamma:1", err: true},
		{in: "exp:1,2", err: true},
	}
	for _, tt := range tests {
		got, err := ParseDist(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseDist(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.Kind != tt.want.Kind || got.A != tt.want.A || got.B != tt.want.B {
			t.Errorf("ParseDist(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestUnplaceableJobStaysQueued(t *testing.T) {
	// A task of 8 cores on workers of 4 can never run: the run ends with it
	// queued, and the job behind it runs.
	res, err := Run(context.Background(), Config{Workers: 2, Cores: 4, Memory: 1 << 30, Strategy: placement.BestFit},
		&list{as: []stressclient.Arrival{job(1, 0, 1, 8, 1), job(2, 1, 1, 2, 1)}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued != 1 || res.Done != 1 {
		t.Fatalf("queued %d, ended %d; want 1 and 1", res.Queued, res.Done)
	}
}

func TestWorkerFailures(t *testing.T) {
	// Two workers of 4 cores fail about every 20 s each and come back after
	// 5 s; jobs of 2 one-core tasks run 10 s. Some jobs fail with a worker,
	// the others end, none is lost, and every run of the seed is the same.
	arrivals := func() Source {
		var as []stressclient.Arrival
		for k := range 60 {
			as = append(as, job(k+1, float64(k), 2, 1, 10))
		}
		return &list{as: as}
	}
	cfg := Config{Workers: 2, Cores: 4, Memory: 1 << 30, Strategy: placement.BestFit, Seed: 3,
		FailureMTBF: 20, Repair: Dist{A: 5}}
	var rows [2][]report.Row
	var res [2]*Result
	for i := range rows {
		r, err := Run(context.Background(), cfg, arrivals(), func(r report.Row) error { rows[i] = append(rows[i], r); return nil }, nil)
		if err != nil {
			t.Fatal(err)
		}
		res[i] = r
	}
	r := res[0]
	if r.Failures == 0 || r.Failed == 0 || r.Done == 0 {
		t.Fatalf("%d failures, %d jobs failed, %d ended: want some of each", r.Failures, r.Failed, r.Done)
	}
	if r.Done+r.Failed+r.Queued != r.Arrived || len(rows[0]) != r.Done+r.Failed {
		t.Fatalf("%d arrived, %d ended + %d failed + %d queued, %d rows", r.Arrived, r.Done, r.Failed, r.Queued, len(rows[0]))
	}
	failed := 0
	for _, row := range rows[0] {
		if row.Status == api.Failed {
			failed++
		}
	}
	var csv [2]bytes.Buffer
	for i := range csv {
		if err := report.WriteJobsCSV(&csv[i], rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(csv[0].Bytes(), csv[1].Bytes()) {
		t.Fatal("two runs of the seed wrote different rows")
	}
	if failed != r.Failed {
		t.Fatalf("%d rows Failed, result says %d", failed, r.Failed)
	}
	t.Logf("%d worker failures: %d jobs ended, %d failed", r.Failures, r.Done, r.Failed)
}

func TestWriteReport(t *testing.T) {
	var results []*Result
	for _, s := range []string{placement.FirstFit, placement.BestFit} {
		r, err := Run(context.Background(), Config{Workers: 3, Cores: 4, Memory: 1 << 30, Strategy: s}, &list{as: fiveJobs()}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	dir := t.TempDir()
	if err := WriteReport(dir, "five jobs", []string{"three workers"}, results, 0); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{report.SummaryFile, report.UtilisationFile, report.WaitingPlot, report.ExecutionPlot, report.TotalPlot, UtilisationPlot} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, report.SummaryFile))
	// first fit: job5 waits 101 - 5 = 96 s; best fit 14 - 5 = 9 s.
	for _, want := range []string{"# five jobs", "| first-fit | 5 | 5 | 0 | 0 |", "| 96.000 | job5 | needs 2 tasks of 4 cores",
		"| best-fit | 5 | 5 | 0 | 0 |", "| 9.000 | job5 |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	util, _ := os.ReadFile(filepath.Join(dir, report.UtilisationFile))
	if !strings.HasPrefix(string(util), "node,time,ratio\n") || !strings.Contains(string(util), "cluster (best-fit),1767225600.000000,") {
		t.Fatalf("utilisation.csv:\n%s", util)
	}
}

func TestReadReplay(t *testing.T) {
	// Three jobs of session a out of order and one of session b: a replay
	// of a starts at a's first submission, each task running its job's
	// execution time, the cores split over the tasks.
	rows := []report.Row{
		{Job: "j2", Session: "a", Status: api.Down, Submit: 1002.5, Start: 1003, End: 1008, Waiting: 0.5, Execution: 5, Total: 5.5, Tasks: 2, Cores: 4},
		{Job: "j1", Session: "a", Status: api.Down, Submit: 1000, Start: 1000.1, End: 1001.1, Waiting: 0.1, Execution: 1, Total: 1.1, Tasks: 1, Cores: 3},
		{Job: "x", Session: "b", Status: api.Down, Submit: 900, Start: 901, End: 902, Waiting: 1, Execution: 1, Total: 2, Tasks: 1, Cores: 1},
		{Job: "j3", Session: "a", Status: api.Failed, Submit: 1004, Start: math.NaN(), End: 1005, Waiting: math.NaN(), Execution: math.NaN(), Total: 1, Tasks: 3, Cores: 3},
	}
	var b bytes.Buffer
	if err := report.WriteJobsCSV(&b, rows); err != nil {
		t.Fatal(err)
	}
	rp, err := ReadReplay(&b, "a", stressclient.Shape{Command: "sleep 7"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		at           time.Duration
		tasks, cores int
		run          float64
	}{{0, 1, 3, 1}, {2500 * time.Millisecond, 2, 2, 5}, {4 * time.Second, 3, 1, 0}}
	if rp.Jobs() != len(want) {
		t.Fatalf("%d jobs replayed, want %d", rp.Jobs(), len(want))
	}
	for i, w := range want {
		a, ok := rp.Next()
		if !ok || a.Offset != w.at || a.Shape.Tasks != w.tasks || a.Shape.Cores != w.cores || a.Shape.Duration != w.run || a.Shape.Command != "sleep 7" {
			t.Errorf("arrival %d = %+v, want %+v", i, a, w)
		}
	}
	if _, ok := rp.Next(); ok {
		t.Error("the replay goes on after its last job")
	}
	if _, err := ReadReplay(strings.NewReader("job_name,session\n"), "", stressclient.Shape{}); err == nil {
		t.Error("a malformed jobs.csv was accepted")
	}
}

// TestContendedStrategiesDiffer runs the README's contended trace
// (examples/simulate-contended.csv: mixed job shapes at 106 % of 180
// workers x 32 cores) and checks what the README's table shows: every job
// ends, the execution times do not depend on the strategy, and the waits
// do: sorting the whole batch largest first (best-fit-decreasing with
// SortBatch) makes the 99th percentile of waiting more than twice best
// fit's.
func TestContendedStrategiesDiffer(t *testing.T) {
	trace, err := stressclient.ReadTraceFile(filepath.Join("..", "examples", "simulate-contended.csv"))
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]*Result{}
	for _, strategy := range []string{placement.BestFit, placement.BestFitDecreasing} {
		p := stressclient.DefaultParams()
		p.Profile, p.Trace = stressclient.Trace, trace
		st, err := stressclient.NewStream(p, 1)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Workers: 180, Cores: 32, Memory: 128 << 30, Strategy: strategy, Seed: 1,
			Options: placement.Options{SortBatch: true}, Queue: placement.QueueOptions{Policy: placement.Backfill}}
		res, err := Run(context.Background(), cfg, st, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Done != len(trace) || res.Done != res.Arrived {
			t.Fatalf("%s: %d of %d jobs ended, want all %d of the trace", strategy, res.Done, res.Arrived, len(trace))
		}
		results[strategy] = res
	}
	bf, bfd := results[placement.BestFit], results[placement.BestFitDecreasing]
	// The same execution times, summed in another order: the mean and
	// maximum agree to rounding.
	a, b := bf.Execution, bfd.Execution
	if a.N != b.N || a.P50 != b.P50 || a.P90 != b.P90 || a.P99 != b.P99 ||
		math.Abs(a.Mean-b.Mean) > 1e-9*a.Mean || math.Abs(a.Max-b.Max) > 1e-9*a.Max {
		t.Errorf("execution times differ between strategies: %+v and %+v", bf.Execution, bfd.Execution)
	}
	if !(bfd.Waiting.P99 > 2*bf.Waiting.P99) {
		t.Errorf("waiting p99: best fit %.1f s, best-fit-decreasing with the batch sorted %.1f s: want the second more than twice the first",
			bf.Waiting.P99, bfd.Waiting.P99)
	}
	t.Logf("waiting p50/p99: best fit %.1f/%.1f s, best-fit-decreasing %.1f/%.1f s",
		bf.Waiting.P50, bf.Waiting.P99, bfd.Waiting.P50, bfd.Waiting.P99)
}

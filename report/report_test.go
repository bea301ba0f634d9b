package report_test

import (
	"bytes"
	"encoding/csv"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/report"
)

// job returns a job of n one-core tasks with the given times.
func job(name, session, strategy string, st api.State, n int, submit, start, end float64) *api.Job {
	j := apitest.Job(name, n, 1, "sleep 1")
	j.Session, j.Strategy, j.Status = api.Session(session), strategy, st
	j.SubmitTime, j.StartTime, j.EndTime = submit, start, end
	return j
}

// handJobs is a small experiment whose figures are worked out by hand in
// TestSummarize.
func handJobs() []*api.Job {
	return []*api.Job{
		job("b1", "B", "first-fit", api.Down, 1, 200, 200.25, 201.25),
		job("a2", "A", "best-fit", api.Down, 2, 100.5, 102.5, 106.5),
		job("a1", "A", "best-fit", api.Down, 1, 100, 101, 103),
		job("a3", "A", "best-fit", api.Down, 3, 101, 104, 105),
		job("a4", "A", "best-fit", api.Down, 1, 102, 106, 114),
		job("a5", "A", "best-fit", api.Failed, 1, 103, 104, 104.5),
		job("a6", "A", "best-fit", api.Running, 4, 104, 110, 0),
		job("b2", "B", "first-fit", api.Down, 2, 200.5, 201, 203),
		job("a7", "A", "", api.Ready, 1, 105, 0, 0),
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 || (math.IsNaN(a) && math.IsNaN(b)) }

func TestJobsCSVRoundTrip(t *testing.T) {
	jobs := handJobs()
	rows := report.Rows(jobs)
	var b bytes.Buffer
	if err := report.WriteJobsCSV(&b, rows); err != nil {
		t.Fatal(err)
	}
	if first := strings.SplitN(b.String(), "\n", 2)[0]; first != "job_name,session,strategy,status,submit,start,end,waiting,execution,total,tasks,cores" {
		t.Fatalf("header %q", first)
	}
	got, err := report.ReadJobsCSV(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(jobs) {
		t.Fatalf("%d rows for %d jobs", len(got), len(jobs))
	}
	byName := map[string]*api.Job{}
	for _, j := range jobs {
		byName[j.Name] = j
	}
	prev := 0.0
	for _, r := range got {
		j := byName[r.Job]
		if j == nil {
			t.Fatalf("row for unknown job %s", r.Job)
		}
		if r.Submit < prev {
			t.Fatalf("rows not in submission order at %s", r.Job)
		}
		prev = r.Submit
		w, e, tot := j.Waiting()
		checks := []struct {
			name      string
			got, want float64
			known     bool
		}{
			{"submit", r.Submit, j.SubmitTime, true},
			{"start", r.Start, j.StartTime, j.StartTime > 0},
			{"end", r.End, j.EndTime, j.EndTime > 0},
			{"waiting", r.Waiting, w, j.StartTime > 0},
			{"execution", r.Execution, e, j.EndTime > 0},
			{"total", r.Total, tot, j.EndTime > 0},
		}
		for _, c := range checks {
			if c.known && !(math.Abs(c.got-c.want) < 1e-6) || !c.known && !math.IsNaN(c.got) {
				t.Fatalf("%s %s = %v, want %v (known %v)", r.Job, c.name, c.got, c.want, c.known)
			}
		}
		if r.Session != string(j.Session) || r.Strategy != j.Strategy || r.Status != j.Status || r.Tasks != len(j.Info.Tasks) || r.Cores != j.Cores() {
			t.Fatalf("row %+v does not match job %s", r, j.Name)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := report.Summarize(report.Rows(handJobs()), []string{"a1", "ghost"}, report.Utilisation{})
	if s.Jobs != 9 || s.States[api.Down] != 6 || s.States[api.Failed] != 1 || s.States[api.Running] != 1 || s.States[api.Ready] != 1 {
		t.Fatalf("states %v", s.States)
	}
	if len(s.Sessions) != 2 || s.Sessions[0].Session != "A" || s.Sessions[1].Session != "B" {
		t.Fatalf("sessions %+v", s.Sessions)
	}
	a, b := s.Sessions[0], s.Sessions[1]
	if a.Jobs != 7 || a.Label() != "A (best-fit)" || b.Label() != "B (first-fit)" {
		t.Fatalf("A has %d jobs, labels %q %q", a.Jobs, a.Label(), b.Label())
	}
	// Over A's Down jobs a1..a4: waiting 1,2,3,4; execution 2,4,1,8; total 3,6,4,12.
	cases := []struct {
		name string
		got  report.Stats
		want report.Stats
	}{
		{"A waiting", a.Waiting, report.Stats{N: 4, Mean: 2.5, P50: 2, P90: 4, P99: 4, Max: 4}},
		{"A execution", a.Execution, report.Stats{N: 4, Mean: 3.75, P50: 2, P90: 8, P99: 8, Max: 8}},
		{"A total", a.Total, report.Stats{N: 4, Mean: 6.25, P50: 4, P90: 12, P99: 12, Max: 12}},
		{"B waiting", b.Waiting, report.Stats{N: 2, Mean: 0.375, P50: 0.25, P90: 0.5, P99: 0.5, Max: 0.5}},
		{"B total", b.Total, report.Stats{N: 2, Mean: 1.875, P50: 1.25, P90: 2.5, P99: 2.5, Max: 2.5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, w := tc.got, tc.want
			if g.N != w.N || !near(g.Mean, w.Mean) || !near(g.P50, w.P50) || !near(g.P90, w.P90) || !near(g.P99, w.P99) || !near(g.Max, w.Max) {
				t.Fatalf("got %+v, want %+v", g, w)
			}
		})
	}
	lost := map[string]string{}
	for _, l := range s.Lost {
		lost[l.Job] = l.Status
	}
	if len(lost) != 3 || lost["a6"] != "Running" || lost["a7"] != "Ready" || lost["ghost"] != "missing" {
		t.Fatalf("lost %v", s.Lost)
	}
	md := s.Markdown("", []string{"a note"}, "## Extra\n")
	for _, want := range []string{
		"9 jobs in 2 session(s): 6 Down, 1 Failed, 0 Cancelled, 2 not finished.",
		"| A (best-fit) | 7 | 4 | 1 | 0 | 2 |",
		"| A (best-fit) | execution | 4 | 3.750 | 2.000 | 8.000 | 8.000 | 8.000 |",
		"jobs lost: 3",
		"- ghost: accepted by the frontend but not stored",
		"- a6: still Running",
		"- a note",
		"## Extra",
	} {
		if !strings.Contains(md, want) {
			t.Fatalf("summary.md lacks %q:\n%s", want, md)
		}
	}
	if md := report.Summarize(report.Rows(handJobs()[:2]), nil, report.Utilisation{}).Markdown("", nil, ""); !strings.Contains(md, "jobs lost: 0\n") {
		t.Fatalf("summary.md of finished jobs:\n%s", md)
	}
}

// handUsage: five workers whose ratio changes now and then; see TestGrid.
func handUsage() []api.Usage {
	return []api.Usage{
		{Node: "n2", InitTime: 101, Details: [][2]float64{{0, 0}, {1, 0.25}, {3, 0.75}}},
		{Node: "n1", InitTime: 100, Details: [][2]float64{{0, 0.5}, {1, 0.5}, {2, 1}, {3, 1}}},
		{Node: "n3", InitTime: 90, Details: [][2]float64{{5, 0.5}, {12, 1}}},
		{Node: "n4", InitTime: 100.5, Details: [][2]float64{{0, 1}, {1, 0}}},
		{Node: "n5", InitTime: 50, Details: [][2]float64{{0, 0.75}}},
	}
}

func TestGrid(t *testing.T) {
	nan := math.NaN()
	alive := report.Span{From: 0, To: 1000}
	cases := []struct {
		name    string
		spans   map[string]report.Span
		cells   map[string][]float64
		cluster []float64
		samples int
	}{
		{
			// Columns of one second from 100 to 104. A ratio holds until
			// the next sample: n3 enters the window at 0.5 (its sample at
			// 95), n5 at 0.75 (at 50); n2 is not known before 101, n4
			// before 100.5, and n4's change at 101.5 halves its column.
			name: "every worker's last ratio holds",
			cells: map[string][]float64{
				"n1": {0.5, 0.5, 1, 1},
				"n2": {nan, 0, 0.25, 0.25},
				"n3": {0.5, 0.5, 1, 1},
				"n4": {1, 0.5, 0, 0},
				"n5": {0.75, 0.75, 0.75, 0.75},
			},
			cluster: []float64{2.75 / 4, 2.25 / 5, 3.0 / 5, 3.0 / 5},
			samples: 12,
		},
		{
			// n5 died at 60, long before; n4's last heartbeat was at 101.75.
			name:  "workers count only while alive",
			spans: map[string]report.Span{"n1": alive, "n2": alive, "n3": alive, "n4": {From: 0, To: 101.75}, "n5": {From: 50, To: 60}},
			cells: map[string][]float64{
				"n1": {0.5, 0.5, 1, 1},
				"n2": {nan, 0, 0.25, 0.25},
				"n3": {0.5, 0.5, 1, 1},
				"n4": {1, 0.5 / 0.75, nan, nan},
			},
			cluster: []float64{2.0 / 3, (1 + 0.5/0.75) / 4, 2.25 / 3, 2.25 / 3},
			samples: 11,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := report.NewGrid(handUsage(), tc.spans, 100, 104)
			if g.Bin != 1 || g.Columns() != 4 || len(g.Nodes) != len(tc.cells) {
				t.Fatalf("bin %v, %d columns, nodes %v", g.Bin, g.Columns(), g.Nodes)
			}
			for r, n := range g.Nodes {
				for c, v := range g.Cells[r] {
					if !near(v, tc.cells[n][c]) {
						t.Fatalf("%s column %d = %v, want %v (row %v)", n, c, v, tc.cells[n][c], g.Cells[r])
					}
				}
			}
			sum, peak := 0.0, 0.0
			for c, v := range g.Cluster() {
				if !near(v, tc.cluster[c]) {
					t.Fatalf("cluster column %d = %v, want %v", c, v, tc.cluster[c])
				}
				sum, peak = sum+v, max(peak, v)
			}
			u := g.Summarise(tc.samples)
			if u.Workers != len(tc.cells) || !near(u.Mean, sum/4) || !near(u.Peak, peak) || u.From != 100 || u.To != 104 {
				t.Fatalf("utilisation %+v, want mean %v peak %v", u, sum/4, peak)
			}
			if n := len(report.Samples(handUsage(), tc.spans, 100, 104)); n != tc.samples {
				t.Fatalf("%d samples in the window, want %d", n, tc.samples)
			}
		})
	}
	spans := report.Spans([]*api.Worker{
		{ID: "n1", JoinTime: 99, LastHeartbeat: 101, Status: api.WorkerReady},
		{ID: "n5", JoinTime: 50, LastHeartbeat: 60, Status: api.WorkerDown},
	})
	if sp := spans["n1"]; sp.From != 99 || !math.IsInf(sp.To, 1) {
		t.Fatalf("a ready worker's span %+v, want from its join on", sp)
	}
	if sp := spans["n5"]; sp.From != 50 || sp.To != 60 {
		t.Fatalf("a worker down's span %+v, want from its join to its last heartbeat", sp)
	}
	if report.NewGrid(handUsage(), map[string]report.Span{}, 300, 400) != nil {
		t.Fatal("a grid without workers known in its window")
	}
}

func TestWrite(t *testing.T) {
	cases := []struct {
		name    string
		usage   []api.Usage
		heatmap bool
	}{
		{"with utilisation", handUsage(), true},
		{"without utilisation", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			sum, err := report.Write(dir, handJobs(), tc.usage, report.Options{Notes: []string{"utilisation not given"}})
			if err != nil {
				t.Fatal(err)
			}
			pngs := []string{report.WaitingPlot, report.ExecutionPlot, report.TotalPlot}
			if tc.heatmap {
				pngs = append(pngs, report.UtilisationPlot)
			} else if _, err := os.Stat(filepath.Join(dir, report.UtilisationPlot)); !os.IsNotExist(err) {
				t.Fatalf("a heat map without utilisation: %v", err)
			}
			for _, name := range pngs {
				f, err := os.Open(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				img, err := png.Decode(f)
				f.Close()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
					t.Fatalf("%s is only %v", name, b)
				}
			}
			f, err := os.Open(filepath.Join(dir, report.JobsFile))
			if err != nil {
				t.Fatal(err)
			}
			rows, err := report.ReadJobsCSV(f)
			f.Close()
			if err != nil || len(rows) != 9 {
				t.Fatalf("jobs.csv: %d rows, %v", len(rows), err)
			}
			util, err := os.ReadFile(filepath.Join(dir, report.UtilisationFile))
			if err != nil {
				t.Fatal(err)
			}
			wantLines := 1
			if tc.heatmap {
				wantLines = 1 + 12
			}
			if n := strings.Count(string(util), "\n"); n != wantLines {
				t.Fatalf("utilisation.csv has %d lines, want %d:\n%s", n, wantLines, util)
			}
			md, err := os.ReadFile(filepath.Join(dir, report.SummaryFile))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(md), "jobs lost: 2") || !strings.Contains(string(md), "utilisation not given") {
				t.Fatalf("summary.md:\n%s", md)
			}
			if tc.heatmap != (sum.Utilisation.Workers == 5) {
				t.Fatalf("utilisation %+v", sum.Utilisation)
			}
		})
	}
}

func TestWriteEmpty(t *testing.T) {
	dir := t.TempDir()
	sum, err := report.Write(dir, nil, nil, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Jobs != 0 || len(sum.Lost) != 0 {
		t.Fatalf("summary %+v", sum)
	}
	for _, name := range []string{report.JobsFile, report.UtilisationFile, report.SummaryFile, report.WaitingPlot} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestJobsWriterMatchesEncodingCSV checks that the streaming writer writes
// what encoding/csv writes for the same records, byte for byte: plain rows,
// rows whose text needs quoting, and missing times.
func TestJobsWriterMatchesEncodingCSV(t *testing.T) {
	nan := math.NaN()
	names := []string{"job1", "", "a,b", `say "hi"`, " lead", "line\nbreak", `\.`, "ünï", "\tx"}
	var rows []report.Row
	for k, n := range names {
		for _, v := range []float64{0, 1767225600.123456, 3.5e-7, nan, -2.25} {
			rows = append(rows, report.Row{Job: n, Session: names[(k+1)%len(names)], Strategy: "best-fit", Status: api.Down,
				Submit: v, Start: v + 1, End: v * 2, Waiting: nan, Execution: v, Total: 12.5, Tasks: k, Cores: -k})
		}
	}
	var got bytes.Buffer
	jw, err := report.NewJobsWriter(&got)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	cw := csv.NewWriter(&want)
	if err := cw.Write(report.JobsHeader); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := jw.Write(r); err != nil {
			t.Fatal(err)
		}
		rec := []string{r.Job, r.Session, r.Strategy, r.Status.String(), csvFloat(r.Submit), csvFloat(r.Start), csvFloat(r.End),
			csvFloat(r.Waiting), csvFloat(r.Execution), csvFloat(r.Total), strconv.Itoa(r.Tasks), strconv.Itoa(r.Cores)}
		if err := cw.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := jw.Flush(); err != nil {
		t.Fatal(err)
	}
	cw.Flush()
	if got.String() != want.String() {
		t.Fatalf("the writer wrote\n%s\nencoding/csv wrote\n%s", got.String(), want.String())
	}
	back, err := report.ReadJobsCSV(&got)
	if err != nil || len(back) != len(rows) {
		t.Fatalf("read back %d rows (%v), want %d", len(back), err, len(rows))
	}
}

// csvFloat formats a time as jobs.csv does: six decimals, empty for NaN.
func csvFloat(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 6, 64)
}

func TestLongestStall(t *testing.T) {
	row := func(submit, start float64) report.Row { return report.Row{Submit: submit, Start: start} }
	for _, tc := range []struct {
		name    string
		rows    []report.Row
		gap, at float64
	}{
		{"no jobs", nil, 0, 0},
		{"started the instant it arrived", []report.Row{row(100, 100)}, 0, 0},
		// one job waits 100 -> 103: 3 s
		{"one job", []report.Row{row(100, 103)}, 3, 100},
		// a waits from 100; b arrives at 101; a starts at 102 (gap 2, from 100);
		// b still waits from 102 and starts at 110 (gap 8, from 102)
		{"the wait after a start counts from that start", []report.Row{row(100, 102), row(101, 110)}, 8, 102},
		// a waits 100 -> 101; nothing waits 101 -> 200 (idle, no stall); b waits 200 -> 202
		{"idle time is no stall", []report.Row{row(100, 101), row(200, 202)}, 2, 200},
		// a job that never started (failed before it started) is left out
		{"never started", []report.Row{row(100, 0), row(300, 301)}, 1, 300},
		// jobs start every second while others keep arriving: the longest gap is 1 s
		{"steady starts", []report.Row{row(100, 101), row(100.5, 102), row(101.5, 103), row(102.5, 104)}, 1, 100},
	} {
		gap, at := report.LongestStall(tc.rows)
		if gap != tc.gap || at != tc.at {
			t.Errorf("%s: LongestStall = %v at %v, want %v at %v", tc.name, gap, at, tc.gap, tc.at)
		}
	}
}

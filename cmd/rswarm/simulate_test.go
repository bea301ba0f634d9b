package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/rswarm/rswarm/report"
)

func readRows(t *testing.T, path string) []report.Row {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := report.ReadJobsCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func waitings(rows []report.Row) []float64 {
	var w []float64
	for _, r := range rows {
		if !math.IsNaN(r.Waiting) {
			w = append(w, r.Waiting)
		}
	}
	sort.Float64s(w)
	return w
}

// TestSimulateMatchesRealRun runs a small contended workload through the
// whole system on 50 simulated workers (a queue builds: 40 jobs/s of two
// 1.5 s one-core tasks want 120 cores of 100), then `rswarm simulate` on 50
// workers with the same arrivals (--replay of the real jobs.csv) and the
// deploy delay measured in the real run (the waits of the jobs submitted
// while the cluster was still empty), and compares the two distributions
// of waiting time with a two-sample Kolmogorov-Smirnov test at the 1 %
// level.
func TestSimulateMatchesRealRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (skipped by -short)")
	}
	sys := newSystem(t)
	start(t, "rswarm up", append([]string{"up", "--runtime", "sim", "--workers", "50", "--cores", "2", "--memory", "4g"}, sys.flags()...)...)
	waitWorkers(t, sys.client(), 50)

	real := filepath.Join(t.TempDir(), "real")
	const session = "ks-real"
	out, err := runRswarm(t, 2*time.Minute, "stress", "--fe", "http://"+sys.fe, "--profile", "poisson",
		"--lambda", "40", "--turns", "8", "--interval", "1", "--task-count", "2", "--task-cores", "1", "--task-mem", "0",
		"--duration", "1.5", "--seed", "5", "--session", session, "--wait", "--wait-timeout", "90s", "--report", real, "--progress", "off")
	if err != nil {
		t.Fatalf("rswarm stress: %v\n%s", err, out)
	}
	rows := readRows(t, filepath.Join(real, report.JobsFile))
	if len(rows) < 200 {
		t.Fatalf("the real run has %d jobs, want about 320", len(rows))
	}
	// The deploy delay, measured: the waits of the jobs submitted in the
	// first second, when at most about 80 of the 100 cores were taken.
	first := math.Inf(1)
	for _, r := range rows {
		first = min(first, r.Submit)
	}
	var delays bytes.Buffer
	n := 0
	for _, r := range rows {
		if r.Submit-first < 1 && !math.IsNaN(r.Waiting) {
			fmt.Fprintln(&delays, strconv.FormatFloat(r.Waiting, 'f', 6, 64))
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d jobs in the first second to measure the deploy delay from", n)
	}
	delayFile := filepath.Join(t.TempDir(), "deploy.txt")
	if err := os.WriteFile(delayFile, delays.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	sim := filepath.Join(t.TempDir(), "sim")
	out, err = runRswarm(t, time.Minute, "simulate", "--workers", "50", "--cores", "2", "--memory", "4g",
		"--replay", filepath.Join(real, report.JobsFile), "--task-mem", "0", "--deploy-delay", "empirical:"+delayFile,
		"--strategy", "best-fit", "--seed", "1", "--report", sim, "--progress=false")
	if err != nil {
		t.Fatalf("rswarm simulate: %v\n%s", err, out)
	}
	simRows := readRows(t, filepath.Join(sim, report.JobsFile))
	x, y := waitings(rows), waitings(simRows)
	if len(y) != len(rows) {
		t.Fatalf("the simulation ended %d jobs of the %d replayed", len(y), len(rows))
	}
	d := stat.KolmogorovSmirnov(x, nil, y, nil)
	nx, ny := float64(len(x)), float64(len(y))
	critical := 1.628 * math.Sqrt((nx+ny)/(nx*ny)) // c(0.01) = sqrt(-ln(0.005)/2)
	q := func(v []float64, p float64) float64 { return stat.Quantile(p, stat.Empirical, v, nil) }
	summary := fmt.Sprintf("waiting p50/p90/max: real %.3f/%.3f/%.3f s, simulated %.3f/%.3f/%.3f s; KS D = %.3f, critical %.3f (n = %d, %d)",
		q(x, 0.5), q(x, 0.9), x[len(x)-1], q(y, 0.5), q(y, 0.9), y[len(y)-1], d, critical, len(x), len(y))
	t.Log(summary)
	if q(x, 0.9) < 0.5 {
		t.Fatalf("the real run did not queue (p90 wait %.3f s): the comparison would only be of the delays; %s", q(x, 0.9), summary)
	}
	if d >= critical {
		t.Fatalf("the waiting times differ: %s\nsimulate:\n%s", summary, strings.TrimSpace(out))
	}
}

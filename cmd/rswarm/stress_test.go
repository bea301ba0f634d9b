package main

import (
	"bytes"
	"context"
	"image/png"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/report"
	"github.com/rswarm/rswarm/store"
)

// runRswarm runs `rswarm args...` to completion and returns its output.
func runRswarm(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	return runRswarmEnv(t, nil, timeout, args...)
}

// runRswarmEnv is runRswarm with extra environment variables ("K=V").
func runRswarmEnv(t *testing.T, env []string, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// storedJobs reads a session's jobs straight from the store of a running system.
func storedJobs(t *testing.T, sys *system, session string) []*api.Job {
	t.Helper()
	st, err := store.OpenSQLite(sys.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jobs, err := st.ListJobs(context.Background(), api.JobFilter{Session: session})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// checkReport checks a report directory against the stored jobs: one CSV
// row per job with its times, the plots valid PNG files, no job lost.
func checkReport(t *testing.T, dir string, jobs []*api.Job, heatmap bool) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, report.JobsFile))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := report.ReadJobsCSV(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(jobs) {
		t.Fatalf("jobs.csv has %d rows, the store %d jobs", len(rows), len(jobs))
	}
	byName := make(map[string]*api.Job, len(jobs))
	for _, j := range jobs {
		byName[j.Name] = j
	}
	const eps = 1e-5 // jobs.csv keeps microseconds
	for _, r := range rows {
		j := byName[r.Job]
		if j == nil {
			t.Fatalf("jobs.csv row %s is not a stored job", r.Job)
		}
		delete(byName, r.Job)
		w, e, tot := j.Waiting()
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"submit", r.Submit, j.SubmitTime}, {"start", r.Start, j.StartTime}, {"end", r.End, j.EndTime},
			{"waiting", r.Waiting, w}, {"execution", r.Execution, e}, {"total", r.Total, tot},
		} {
			if !(c.got-c.want < eps && c.want-c.got < eps) {
				t.Fatalf("%s: %s %v in jobs.csv, %v stored", r.Job, c.name, c.got, c.want)
			}
		}
		if r.Status != j.Status || r.Session != string(j.Session) || r.Strategy != j.Strategy || r.Tasks != len(j.Info.Tasks) || r.Cores != j.Cores() {
			t.Fatalf("row %+v does not match the stored job %s (%s, %d tasks, %d cores)", r, j.Name, j.Status, len(j.Info.Tasks), j.Cores())
		}
		if r.Status != api.Down || !(r.Execution > 0) || r.Waiting < 0 {
			t.Fatalf("job %s: %s, waiting %v, execution %v", r.Job, r.Status, r.Waiting, r.Execution)
		}
	}
	plots := []string{report.WaitingPlot, report.ExecutionPlot, report.TotalPlot}
	if heatmap {
		plots = append(plots, report.UtilisationPlot)
	}
	for _, name := range plots {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s is not a valid PNG: %v", name, err)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, report.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "jobs lost: 0\n") {
		t.Fatalf("summary.md reports lost jobs:\n%s", md)
	}
	util, err := os.ReadFile(filepath.Join(dir, report.UtilisationFile))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(util), "\n"); heatmap && lines < 2 {
		t.Fatalf("utilisation.csv holds no samples:\n%s", util)
	}
}

// TestStressSimEndToEnd runs 500 jobs through the whole system on 50
// simulated workers, with the original's configuration files, waits for
// them and checks the report against the store.
func TestStressSimEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (skipped by -short)")
	}
	sys := newSystem(t)
	start(t, "rswarm up", append([]string{"up", "--runtime", "sim", "--workers", "50", "--cores", "16", "--time-scale", "0.05"}, sys.flags()...)...)
	waitWorkers(t, sys.client(), 50)

	dir := filepath.Join(t.TempDir(), "report")
	const session = "e2e-sim"
	out, err := runRswarm(t, 2*time.Minute, "stress", "--fe", "http://"+sys.fe, "--profile", "steady",
		// The original's files: 4 tasks of 2 cores and 50 MB each, in
		// subnets of 129.59.0.0/16, aduermael/sleeper; one job per turn.
		"--config", "../../stressclient/testdata/StressClientInfo.json",
		"--profile-config", "../../stressclient/testdata/SteadyStressClientInfo.json",
		// Flags override them: 50 jobs a turn, 10 turns half a second apart.
		"--feed-constant", "50", "--turns", "10", "--interval", "0.5", "--image", "rswarm/busybox:latest",
		"--seed", "7", "--session", session, "--concurrency", "16",
		"--wait", "--wait-timeout", "90s", "--report", dir, "--data-dir", sys.dataDir, "--progress", "lines")
	if err != nil {
		t.Fatalf("rswarm stress: %v\n%s", err, out)
	}
	if !strings.Contains(out, "submitted 500, accepted 500, refused 0") || !strings.Contains(out, "jobs: 500 Down, 0 Failed, 0 Cancelled, 0 lost") {
		t.Fatalf("rswarm stress output:\n%s", out)
	}
	// The control plane's worst gaps, from a fresh system: the longest
	// since it started is the run's, so its time is given.
	for _, re := range []string{
		`worst gap between placement rounds while jobs waited: [0-9.]+s \(ended at \+[0-9.]+s\) over [1-9][0-9]* gaps\n`,
		`worst gap between status applications while statuses waited: [0-9.]+s \(ended at \+[0-9.]+s\) over [1-9][0-9]* gaps\n`,
		`CPU of the frontend's process \(in rswarm up: every role and worker\): [0-9.]+s over [0-9.]+s, [0-9.]+ cores on average\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("rswarm stress output lacks %s:\n%s", re, out)
		}
	}
	if md, err := os.ReadFile(filepath.Join(dir, report.SummaryFile)); err != nil || !strings.Contains(string(md), "## Control plane\n\n- worst gap between placement rounds") {
		t.Fatalf("summary.md lacks the control plane's gaps (%v):\n%s", err, md)
	}
	t.Logf("rswarm stress:\n%s", out)

	jobs := storedJobs(t, sys, session)
	if len(jobs) != 500 {
		t.Fatalf("%d jobs stored, want 500", len(jobs))
	}
	pool := netip.MustParsePrefix("129.59.0.0/16")
	subnets := map[string]bool{}
	for _, j := range jobs {
		t0 := j.Info.Tasks[0]
		if len(j.Info.Tasks) != 4 || t0.ReqCores != 2 || t0.MemLimit != "50m" || t0.Image != "rswarm/busybox:latest" || t0.Command != "sleep 5" {
			t.Fatalf("job %s: %d tasks, first %+v", j.Name, len(j.Info.Tasks), t0)
		}
		p, err := netip.ParsePrefix(j.Info.Network.Subnet)
		if err != nil || p.Bits() != 24 || !pool.Contains(p.Addr()) {
			t.Fatalf("job %s subnet %q, want a /24 of %s", j.Name, j.Info.Network.Subnet, pool)
		}
		subnets[p.String()] = true
	}
	if len(subnets) != 256 {
		t.Fatalf("500 jobs got %d distinct subnets, want all 256 /24s of the pool", len(subnets))
	}
	checkReport(t, dir, jobs, true)

	// `rswarm report`, reading the store directly, writes the same jobs.csv.
	dir2 := filepath.Join(t.TempDir(), "again")
	if out, err := runRswarm(t, time.Minute, "report", "--session", session, "--out", dir2, "--data-dir", sys.dataDir); err != nil {
		t.Fatalf("rswarm report: %v\n%s", err, out)
	}
	checkReport(t, dir2, jobs, true)
	a, _ := os.ReadFile(filepath.Join(dir, report.JobsFile))
	b, _ := os.ReadFile(filepath.Join(dir2, report.JobsFile))
	if !bytes.Equal(a, b) {
		t.Fatal("jobs.csv from the API (stress --report) and from the store (report) differ")
	}
}

// TestStressDockerReport runs five one-task jobs on the real engine and
// checks that the same report comes out.
func TestStressDockerReport(t *testing.T) {
	needDocker(t)
	sys := newSystem(t)
	start(t, "rswarm up", append([]string{"up", "--probe-checkpoint=false"}, sys.flags()...)...)
	waitWorkers(t, sys.client(), 1)

	dir := filepath.Join(t.TempDir(), "report")
	const session = "e2e-docker"
	out, err := runRswarm(t, 2*time.Minute, "stress", "--fe", sys.fe, "--profile", "steady",
		"--feed-constant", "5", "--turns", "1", "--task-count", "1", "--task-cores", "1", "--task-mem", "16",
		"--command", "sleep 1", "--seed", "1", "--session", session,
		"--wait-timeout", "90s", "--report", dir, "--data-dir", sys.dataDir, "--progress", "off")
	if err != nil {
		t.Fatalf("rswarm stress: %v\n%s", err, out)
	}
	t.Logf("rswarm stress:\n%s", out)
	jobs := storedJobs(t, sys, session)
	if len(jobs) != 5 {
		t.Fatalf("%d jobs stored, want 5", len(jobs))
	}
	checkReport(t, dir, jobs, true)
	allFree(t, sys.client())
}

func TestReportCommandRefuses(t *testing.T) {
	empty := t.TempDir()
	typo := filepath.Join(empty, "StressClientInfo.json")
	if err := os.WriteFile(typo, []byte(`{"task_count_typo": 4}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no session", []string{"report", "--out", empty, "--data-dir", empty}, "--session S"},
		{"both a session and --all", []string{"report", "--out", empty, "--session", "a", "--all", "--data-dir", empty}, "exclude each other"},
		{"no store in the data directory", []string{"report", "--out", empty, "--session", "a", "--data-dir", filepath.Join(empty, "nothing")}, "no store in"},
		{"no --out", []string{"report", "--session", "a"}, `"out" not set`},
		{"a stress profile that does not exist", []string{"stress", "--profile", "sinusoidal"}, "unknown profile"},
		{"a trace without its file", []string{"stress", "--profile", "trace"}, "needs --trace FILE"},
		{"a session that cannot be part of a name", []string{"stress", "--session", "a b"}, "session \"a b\""},
		{"an unknown key in a config file", []string{"stress", "--config", typo}, `unknown key "task_count_typo"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runRswarm(t, 30*time.Second, tc.args...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("got %v:\n%s\nwant a failure saying %q", err, out, tc.want)
			}
		})
	}
}

// TestStressDryRun checks, without a frontend, how the original's files,
// rswarm's YAML flag files, environment variables and flags combine into
// the plan, and that a seed gives the same plan again.
func TestStressDryRun(t *testing.T) {
	const td = "../../stressclient/testdata/"
	flagsFile := filepath.Join(t.TempDir(), "stress.yaml")
	if err := os.WriteFile(flagsFile, []byte("turns: 3\nfeed-constant: 4\ntask_count: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{
			// run_count 1 and 1*t + 0 at t = 0: the original's committed
			// incremental configuration submits nothing.
			name: "the original's files as they are",
			args: []string{"--config", td + "StressClientInfo.json", "--profile", "incremental", "--profile-config", td + "IncrementalStressClientInfo.json"},
			want: []string{"incremental profile, seed 1, session s: 0 jobs over 1s", "turn 0 at 0s: 0 jobs"},
		},
		{
			name: "flags override the files",
			args: []string{"--config", td + "StressClientInfo.json", "--profile-config", td + "SteadyStressClientInfo.json",
				"--turns", "2", "--feed-constant", "3", "--task-count", "1", "--image", "rswarm/busybox:latest"},
			want: []string{"steady profile, seed 1, session s: 6 jobs over 2s (3.0 jobs/s)",
				"first job: 1 tasks of 2 cores and 50 MB, image rswarm/busybox:latest, command \"sleep 5\", subnet 129.59.0.0/16 (256 /24 subnets in turn)"},
		},
		{
			name: "a YAML file of flag names and original keys",
			args: []string{"--config", flagsFile},
			want: []string{"steady profile, seed 1, session s: 12 jobs over 3s", "first job: 2 tasks of 2 cores", "subnet none"},
		},
		{
			name: "environment variables override files, not flags",
			env:  []string{"RSWARM_TURNS=2", "RSWARM_TASK_COUNT=7", "RSWARM_FEED_CONSTANT=9"},
			args: []string{"--config", flagsFile, "--feed-constant", "5"},
			want: []string{"steady profile, seed 1, session s: 10 jobs over 2s", "first job: 7 tasks"},
		},
		{
			name: "the bursty profile of a seed",
			args: []string{"--profile", "bursty", "--lambda", "0.5", "--turns", "5", "--seed", "3"},
			want: []string{"bursty profile, seed 3, session s: 11 jobs over 5s", "turn 0 at 0s: 3 jobs", "turn 4 at 4s: 4 jobs"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"stress", "--dry-run", "--session", "s", "--seed", "1"}, tc.args...)
			out, err := runRswarmEnv(t, tc.env, 30*time.Second, args...)
			if err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
			again, _ := runRswarmEnv(t, tc.env, 30*time.Second, args...)
			if again != out {
				t.Fatalf("the same seed printed another plan:\n%s\nthen\n%s", out, again)
			}
		})
	}
}

package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

func openSQLite(t testing.TB, dir string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(dir)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestSQLite(t *testing.T) {
	runConformance(t, func(t *testing.T) Store { return openSQLite(t, t.TempDir()) })
}

func TestSQLiteFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openSQLite(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o700 {
		t.Errorf("data directory mode = %v, want 0700", mode)
	}
	if want := filepath.Join(dir, FileName); s.Path() != want {
		t.Errorf("Path() = %s, want %s", s.Path(), want)
	}
	var mode string
	if err := s.r.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}

	// What was written is there after the store is closed and opened again.
	want := richJob("durable")
	mustCreate(t, s, want)
	if err := s.AppendUsage(t.Context(), []api.UsagePoint{{Node: "n", Time: 10, Ratio: 0.5}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := openSQLite(t, dir)
	sameJSON(t, "job after reopening", mustGet(t, again, "durable"), want)
	if u, err := again.Usage(t.Context()); err != nil || len(u) != 1 || u[0].InitTime != 10 {
		t.Fatalf("Usage after reopening = %v, %v", u, err)
	}
}

// TestSQLiteSharedFile has two handles on one directory, as two processes
// would have, update one job concurrently.
func TestSQLiteSharedFile(t *testing.T) {
	dir := t.TempDir()
	a, b := openSQLite(t, dir), openSQLite(t, dir)
	mustCreate(t, a, apitest.Job("shared", 1, 1, "true"))
	concurrentAppends(t, 25,
		func(g int, line string) error {
			s := a
			if g%2 == 1 {
				s = b
			}
			_, err := s.UpdateJob(t.Context(), "shared", appendLog(line))
			return err
		},
		func() []string { return mustGet(t, b, "shared").Info.Tasks[0].Logs })
}

// helperDirEnv makes the test binary a helper process that appends lines to
// the job "shared" in the store at that directory (see TestSQLiteProcesses).
const helperDirEnv = "RSWARM_STORE_HELPER_DIR"

// TestSQLiteProcesses has two other processes and this one update one job
// in the same file concurrently; no update may be lost.
func TestSQLiteProcesses(t *testing.T) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		helperProcess(t, dir)
		return
	}
	const perProcess = 100
	dir := t.TempDir()
	s := openSQLite(t, dir)
	mustCreate(t, s, apitest.Job("shared", 1, 1, "true"))

	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for p := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, "RSWARM_STORE_HELPER_ID=p"+strconv.Itoa(p),
			"RSWARM_STORE_HELPER_N="+strconv.Itoa(perProcess))
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start helper process: %v", err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i := range perProcess {
		if _, err := s.UpdateJob(t.Context(), "shared", appendLog(fmt.Sprintf("main-%d", i))); err != nil {
			t.Errorf("UpdateJob: %v", err)
			break
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper process: %v\n%s", err, outs[i])
		}
	}
	if n := len(mustGet(t, s, "shared").Info.Tasks[0].Logs); n != 3*perProcess {
		t.Fatalf("%d lines after %d appends from 3 processes: updates were lost", n, 3*perProcess)
	}
}

func helperProcess(t *testing.T, dir string) {
	id := os.Getenv("RSWARM_STORE_HELPER_ID")
	n, err := strconv.Atoi(os.Getenv("RSWARM_STORE_HELPER_N"))
	if err != nil {
		t.Fatal(err)
	}
	s := openSQLite(t, dir)
	for i := range n {
		if _, err := s.UpdateJob(context.Background(), "shared", appendLog(fmt.Sprintf("%s-%d", id, i))); err != nil {
			t.Fatalf("helper %s: UpdateJob: %v", id, err)
		}
	}
}

func benchJobs(b *testing.B, s Store, n int) []string {
	b.Helper()
	var names []string
	for i := range n {
		j := apitest.Job(fmt.Sprintf("bench-%d", i), 4, 1, "sleep 5")
		j.SubmitTime = float64(1700000000 + i)
		if err := s.CreateJob(context.Background(), j); err != nil {
			b.Fatal(err)
		}
		names = append(names, j.Name)
	}
	return names
}

// BenchmarkSQLiteCreateJob inserts jobs of four tasks.
func BenchmarkSQLiteCreateJob(b *testing.B) {
	s := openSQLite(b, b.TempDir())
	ctx := context.Background()
	j := apitest.Job("bench", 4, 1, "sleep 5")
	for i := 0; b.Loop(); i++ {
		j.Name = "bench-" + strconv.Itoa(i)
		j.Info.Tasks[0].Node = "node-" + strconv.Itoa(i%100)
		if err := s.CreateJob(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
}

// benchUpdate is a typical update: one task moves on.
func benchUpdate(i int) func(*api.Job) error {
	return func(j *api.Job) error {
		t := j.Info.Tasks[i%len(j.Info.Tasks)]
		t.Status = api.State(i % 4)
		t.StartTime = float64(i)
		return nil
	}
}

// BenchmarkSQLiteUpdateJob updates jobs of four tasks, one at a time, among 1,000 jobs.
func BenchmarkSQLiteUpdateJob(b *testing.B) {
	s := openSQLite(b, b.TempDir())
	names := benchJobs(b, s, 1000)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := s.UpdateJob(ctx, names[i%len(names)], benchUpdate(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSQLiteUpdateJobParallel is BenchmarkSQLiteUpdateJob from GOMAXPROCS goroutines.
func BenchmarkSQLiteUpdateJobParallel(b *testing.B) {
	s := openSQLite(b, b.TempDir())
	names := benchJobs(b, s, 1000)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if _, err := s.UpdateJob(ctx, names[i%len(names)], benchUpdate(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSQLiteGetJob reads jobs of four tasks.
func BenchmarkSQLiteGetJob(b *testing.B) {
	s := openSQLite(b, b.TempDir())
	names := benchJobs(b, s, 1000)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := s.GetJob(ctx, names[i%len(names)]); err != nil {
			b.Fatal(err)
		}
	}
}

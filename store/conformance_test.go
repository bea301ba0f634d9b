package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// runConformance holds a Store implementation to the contract written on
// the interface. open returns a new, empty store that the test may use
// until it ends (open registers its Close with t.Cleanup).
func runConformance(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"CreateGetRoundTrip", testCreateGet},
		{"CreateDuplicate", testCreateDuplicate},
		{"NotFound", testNotFound},
		{"ReturnedJobsAreCopies", testCopies},
		{"UpdateJob", testUpdateJob},
		{"UpdateJobFnError", testUpdateJobFnError},
		{"UpdateJobRename", testUpdateJobRename},
		{"UpdateJobConcurrent", testUpdateJobConcurrent},
		{"UpdateJobs", testUpdateJobs},
		{"ListAndCountJobs", testListJobs},
		{"DeleteJob", testDeleteJob},
		{"Workers", testWorkers},
		{"UpdateWorkerConcurrent", testUpdateWorkerConcurrent},
		{"Usage", testUsage},
		{"JobsChangedSince", testChanges},
		{"UpdateWorkers", testUpdateWorkers},
		{"Ping", func(t *testing.T, s Store) {
			if err := s.Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

// richJob returns a job that uses every field, with tasks whose names are
// deliberately not in alphabetical order.
func richJob(name string) *api.Job {
	j := apitest.Job(name, 0, 1, "")
	j.Status = api.Running
	j.SubmitTime, j.StartTime, j.EndTime = 1700000000.25, 1700000001.5, 1700000003
	j.Priority = 3
	j.WaitingReason = "no worker has 3 free cores"
	j.Error = "task zeta failed"
	j.Session = "exp-7"
	j.Strategy = "best-fit"
	j.Info.Network.Subnet = "10.52.1.0/24"
	code := 1
	for i, suffix := range []string{"zeta", "alpha", "mid"} {
		j.Info.Tasks = append(j.Info.Tasks, &api.Task{
			ContainerName: name + "_" + suffix,
			Node:          fmt.Sprintf("node-%d", i%2),
			Image:         "rswarm/busybox:latest",
			Detach:        true,
			Command:       `sh -c "echo hi"`,
			ReqCores:      i + 1,
			CpusetCpus:    "0",
			MemLimit:      "16m",
			Ports:         map[string]any{"3000/tcp": float64(8080), "53/udp": nil},
			Volumes:       map[string]api.Volume{"data": {Bind: "/data", Mode: "rw"}},
			Environment:   map[string]string{"B": "2", "A": "1"},
			Status:        api.Failed,
			Deadline:      30,
			Duration:      2.5,
			ExitCode:      &code,
			Error:         "exited with code 1",
			Logs:          []string{"line 1", "line 2"},
			StartTime:     1700000001.5,
			EndTime:       1700000002.75,
		})
	}
	return j
}

// jsonOf returns v's JSON, for comparisons that show a readable difference.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	if g, w := jsonOf(t, got), jsonOf(t, want); g != w {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func taskNames(j *api.Job) []string {
	var out []string
	for _, t := range j.Info.Tasks {
		out = append(out, t.ContainerName)
	}
	return out
}

func mustCreate(t *testing.T, s Store, jobs ...*api.Job) {
	t.Helper()
	for _, j := range jobs {
		if err := s.CreateJob(t.Context(), j); err != nil {
			t.Fatalf("CreateJob %s: %v", j.Name, err)
		}
	}
}

func mustGet(t *testing.T, s Store, name string) *api.Job {
	t.Helper()
	j, err := s.GetJob(t.Context(), name)
	if err != nil {
		t.Fatalf("GetJob %s: %v", name, err)
	}
	return j
}

func testCreateGet(t *testing.T, s Store) {
	want := richJob("job1")
	mustCreate(t, s, want)
	got := mustGet(t, s, "job1")
	sameJSON(t, "job after a round trip", got, want)
	if names, wantNames := taskNames(got), []string{"job1_zeta", "job1_alpha", "job1_mid"}; !slices.Equal(names, wantNames) {
		t.Fatalf("task order = %v, want %v", names, wantNames)
	}

	// A minimal job, as the frontend stores it: empty maps, no extras.
	minimal := apitest.Job("job2", 2, 1, "sleep 1")
	mustCreate(t, s, minimal)
	sameJSON(t, "minimal job after a round trip", mustGet(t, s, "job2"), minimal)
}

func testCreateDuplicate(t *testing.T, s Store) {
	first := richJob("dup")
	mustCreate(t, s, first)
	second := apitest.Job("dup", 1, 1, "true")
	err := s.CreateJob(t.Context(), second)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("CreateJob of an existing name: err = %v, want ErrExists", err)
	}
	sameJSON(t, "job after a refused duplicate", mustGet(t, s, "dup"), first)
}

func testNotFound(t *testing.T, s Store) {
	ctx := t.Context()
	mustCreate(t, s, apitest.Job("other", 1, 1, "true"))
	if err := s.PutWorker(ctx, &api.Worker{ID: "other-worker"}); err != nil {
		t.Fatal(err)
	}
	called := false
	tests := []struct {
		name string
		call func() error
	}{
		{"GetJob", func() error { _, err := s.GetJob(ctx, "missing"); return err }},
		{"UpdateJob", func() error {
			_, err := s.UpdateJob(ctx, "missing", func(*api.Job) error { called = true; return nil })
			return err
		}},
		{"DeleteJob", func() error { return s.DeleteJob(ctx, "missing") }},
		{"GetWorker", func() error { _, err := s.GetWorker(ctx, "missing"); return err }},
		{"UpdateWorker", func() error {
			_, err := s.UpdateWorker(ctx, "missing", func(*api.Worker) error { called = true; return nil })
			return err
		}},
		{"DeleteWorker", func() error { return s.DeleteWorker(ctx, "missing") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		})
	}
	if called {
		t.Fatal("an update function was called for a missing record")
	}
}

func testCopies(t *testing.T, s Store) {
	in := richJob("copy")
	want := richJob("copy")
	mustCreate(t, s, in)
	in.Info.Tasks[0].Logs[0] = "changed by the caller after CreateJob"
	got := mustGet(t, s, "copy")
	got.Info.Tasks[0].Node = "changed by the caller after GetJob"
	updated, err := s.UpdateJob(t.Context(), "copy", func(*api.Job) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	updated.Status = api.Cancelled
	sameJSON(t, "job after callers changed their copies", mustGet(t, s, "copy"), want)
}

func testUpdateJob(t *testing.T, s Store) {
	mustCreate(t, s, richJob("up"))
	want := richJob("up")
	want.Status = api.Down
	want.EndTime = 1700000009
	want.Info.Tasks[1].Node = "node-9"
	want.Info.Tasks[2].Logs = append(want.Info.Tasks[2].Logs, "line 3")

	got, err := s.UpdateJob(t.Context(), "up", func(j *api.Job) error {
		j.Status = api.Down
		j.EndTime = 1700000009
		j.Info.Tasks.Get("up_alpha").Node = "node-9"
		j.Info.Tasks.Get("up_mid").Logs = append(j.Info.Tasks.Get("up_mid").Logs, "line 3")
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	sameJSON(t, "UpdateJob's result", got, want)
	sameJSON(t, "job after UpdateJob", mustGet(t, s, "up"), want)

	// The indexed fields follow the document.
	for _, f := range []JobFilter{{Status: []api.State{api.Down}}, {Node: "node-9"}} {
		jobs, err := s.ListJobs(t.Context(), f)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("ListJobs(%+v) after UpdateJob = %d jobs, %v; want the updated job", f, len(jobs), err)
		}
	}
}

func testUpdateJobFnError(t *testing.T, s Store) {
	want := richJob("refuse")
	mustCreate(t, s, want)
	refusal := errors.New("not now")
	got, err := s.UpdateJob(t.Context(), "refuse", func(j *api.Job) error {
		j.Status = api.Cancelled // changed, then refused: must not be written
		j.Info.Tasks[0].Node = "elsewhere"
		return refusal
	})
	if err != refusal {
		t.Fatalf("UpdateJob whose fn failed: err = %v, want fn's error itself", err)
	}
	if got != nil {
		t.Fatalf("UpdateJob whose fn failed returned a job: %+v", got)
	}
	sameJSON(t, "job after a refused update", mustGet(t, s, "refuse"), want)
}

func testUpdateJobRename(t *testing.T, s Store) {
	want := richJob("named")
	mustCreate(t, s, want)
	_, err := s.UpdateJob(t.Context(), "named", func(j *api.Job) error { j.Name = "renamed"; return nil })
	if err == nil {
		t.Fatal("UpdateJob accepted a change of job_name")
	}
	sameJSON(t, "job after a refused rename", mustGet(t, s, "named"), want)
	if _, err := s.GetJob(t.Context(), "renamed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetJob(renamed): err = %v, want ErrNotFound", err)
	}
}

// concurrentAppends runs 8 goroutines, each appending perG distinct lines
// to a log through update, and checks that every line is there once.
func concurrentAppends(t *testing.T, perG int, update func(g int, line string) error, final func() []string) {
	t.Helper()
	const goroutines = 8
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				if err := update(g, fmt.Sprintf("g%d-%d", g, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent update: %v", err)
	}
	lines := final()
	if len(lines) != goroutines*perG {
		t.Fatalf("%d lines after %d appends: updates were lost", len(lines), goroutines*perG)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Fatalf("line %q appended twice", l)
		}
		seen[l] = true
	}
}

// appendLog is an update function appending line to the first task's logs.
func appendLog(line string) func(*api.Job) error {
	return func(j *api.Job) error {
		j.Info.Tasks[0].Logs = append(j.Info.Tasks[0].Logs, line)
		return nil
	}
}

func testUpdateJobConcurrent(t *testing.T, s Store) {
	mustCreate(t, s, apitest.Job("hot", 1, 1, "true"))
	concurrentAppends(t, 10,
		func(_ int, line string) error {
			_, err := s.UpdateJob(t.Context(), "hot", appendLog(line))
			return err
		},
		func() []string { return mustGet(t, s, "hot").Info.Tasks[0].Logs })
}

func testUpdateJobs(t *testing.T, s Store) {
	mustCreate(t, s,
		apitest.Job("batch-a", 1, 1, "true"),
		apitest.Job("batch-b", 1, 1, "true"),
		apitest.Job("batch-c", 1, 1, "true"))
	got, err := s.UpdateJobs(t.Context(), []string{"batch-a", "missing", "batch-c", "batch-b"}, func(j *api.Job) error {
		if j.Name == "batch-c" {
			j.Status = api.Failed // changed, then refused: must not be written
			return errors.New("refused")
		}
		j.Status = api.Deployed
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateJobs: %v", err)
	}
	var names []string
	for _, j := range got {
		names = append(names, j.Name)
		if j.Status != api.Deployed {
			t.Errorf("UpdateJobs returned %s in %v, want Deployed", j.Name, j.Status)
		}
	}
	if want := []string{"batch-a", "batch-b"}; !slices.Equal(names, want) {
		t.Fatalf("UpdateJobs wrote %v, want %v", names, want)
	}
	for name, want := range map[string]api.State{"batch-a": api.Deployed, "batch-b": api.Deployed, "batch-c": api.Ready} {
		if got := mustGet(t, s, name).Status; got != want {
			t.Errorf("%s status = %v, want %v", name, got, want)
		}
	}
	if got, err := s.UpdateJobs(t.Context(), nil, appendLog("x")); err != nil || len(got) != 0 {
		t.Fatalf("UpdateJobs(nil) = %v, %v; want nothing", got, err)
	}
}

func testListJobs(t *testing.T, s Store) {
	mk := func(name string, submit float64, st api.State, session string, nodes ...string) *api.Job {
		j := apitest.Job(name, len(nodes)+1, 1, "true")
		j.SubmitTime, j.Status, j.Session = submit, st, api.Session(session)
		for i, n := range nodes {
			j.Info.Tasks[i+1].Node = n
		}
		return j
	}
	// In submit order: e(1) f(1) c(2) a(3) d(4) b(5); e and f tie on submit_time.
	mustCreate(t, s,
		mk("a", 3, api.Running, "s1", "n1", "n2"),
		mk("b", 5, api.Ready, "s2"),
		mk("c", 2, api.Down, "s1", "n2"),
		mk("d", 4, api.Running, ""),
		mk("f", 1, api.Ready, "s2", "n1", "n1"),
		mk("e", 1, api.Failed, "s1", "n3"),
	)
	tests := []struct {
		name   string
		filter JobFilter
		want   []string
		count  int
	}{
		{"all in submit then name order", JobFilter{}, []string{"e", "f", "c", "a", "d", "b"}, 6},
		{"one status", JobFilter{Status: []api.State{api.Running}}, []string{"a", "d"}, 2},
		{"several statuses", JobFilter{Status: []api.State{api.Ready, api.Down}}, []string{"f", "c", "b"}, 3},
		{"status matching none", JobFilter{Status: []api.State{api.Cancelled}}, nil, 0},
		{"session", JobFilter{Session: "s1"}, []string{"e", "c", "a"}, 3},
		{"node", JobFilter{Node: "n1"}, []string{"f", "a"}, 2},
		{"node of one task among several", JobFilter{Node: "n2"}, []string{"c", "a"}, 2},
		{"unknown node", JobFilter{Node: "n9"}, nil, 0},
		{"limit", JobFilter{Limit: 2}, []string{"e", "f"}, 6},
		{"offset", JobFilter{Offset: 4}, []string{"d", "b"}, 6},
		{"limit and offset", JobFilter{Limit: 3, Offset: 1}, []string{"f", "c", "a"}, 6},
		{"offset past the end", JobFilter{Offset: 10}, nil, 6},
		{"all filters", JobFilter{Status: []api.State{api.Running, api.Down}, Session: "s1", Node: "n2", Limit: 1, Offset: 1}, []string{"a"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jobs, err := s.ListJobs(t.Context(), tc.filter)
			if err != nil {
				t.Fatalf("ListJobs: %v", err)
			}
			var names []string
			for _, j := range jobs {
				names = append(names, j.Name)
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("ListJobs = %v, want %v", names, tc.want)
			}
			n, err := s.CountJobs(t.Context(), tc.filter)
			if err != nil {
				t.Fatalf("CountJobs: %v", err)
			}
			if n != tc.count {
				t.Errorf("CountJobs = %d, want %d", n, tc.count)
			}
		})
	}
	// Listed jobs are whole.
	jobs, err := s.ListJobs(t.Context(), JobFilter{Session: "s2"})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("ListJobs(s2) = %d jobs, %v", len(jobs), err)
	}
	sameJSON(t, "listed job", jobs[1], mk("b", 5, api.Ready, "s2"))
}

func testDeleteJob(t *testing.T, s Store) {
	ctx := t.Context()
	gone := richJob("gone")
	mustCreate(t, s, gone, apitest.Job("kept", 1, 1, "true"))
	if err := s.DeleteJob(ctx, "gone"); err != nil {
		t.Fatalf("DeleteJob: %v", err)
	}
	if _, err := s.GetJob(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetJob after DeleteJob: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteJob(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteJob: err = %v, want ErrNotFound", err)
	}
	// Only "kept" is left, and nothing of "gone" lingers in the node index.
	for _, tc := range []struct {
		filter JobFilter
		want   int
	}{{JobFilter{}, 1}, {JobFilter{Node: "node-0"}, 0}, {JobFilter{Session: "exp-7"}, 0}} {
		if n, err := s.CountJobs(ctx, tc.filter); err != nil || n != tc.want {
			t.Fatalf("CountJobs(%+v) after DeleteJob = %d, %v; want %d", tc.filter, n, err, tc.want)
		}
	}
	// The name is free again.
	mustCreate(t, s, apitest.Job("gone", 1, 1, "true"))
	if n := len(mustGet(t, s, "gone").Info.Tasks); n != 1 {
		t.Fatalf("recreated job has %d tasks, want 1", n)
	}
}

func worker(id string, join float64) *api.Worker {
	w := &api.Worker{
		ID: id, Host: "host-" + id, Address: "127.0.0.1", Runtime: "sim",
		Cores: 4, MemTotal: 8 << 30, Status: api.WorkerReady,
		JoinTime: join, LastHeartbeat: join + 1, Checkpoint: false, CheckpointError: "criu check failed",
	}
	w.SetAllocation(map[int]string{1: "job_task1"}, 16<<20)
	return w
}

func testWorkers(t *testing.T, s Store) {
	ctx := t.Context()
	if ws, err := s.ListWorkers(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("ListWorkers on an empty store = %v, %v", ws, err)
	}
	for _, w := range []*api.Worker{worker("w3", 20), worker("w2", 10), worker("w1", 20)} {
		if err := s.PutWorker(ctx, w); err != nil {
			t.Fatalf("PutWorker %s: %v", w.ID, err)
		}
	}
	got, err := s.GetWorker(ctx, "w2")
	if err != nil {
		t.Fatalf("GetWorker: %v", err)
	}
	sameJSON(t, "worker after a round trip", got, worker("w2", 10))

	// PutWorker replaces the whole record.
	repl := worker("w2", 30)
	repl.CheckpointError, repl.Checkpoint = "", true
	if err := s.PutWorker(ctx, repl); err != nil {
		t.Fatalf("PutWorker (replace): %v", err)
	}
	got, err = s.GetWorker(ctx, "w2")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "worker after PutWorker replaced it", got, repl)

	ws, err := s.ListWorkers(ctx)
	if err != nil {
		t.Fatalf("ListWorkers: %v", err)
	}
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	if want := []string{"w1", "w3", "w2"}; !slices.Equal(ids, want) {
		t.Fatalf("ListWorkers order = %v, want %v (join_time, then id)", ids, want)
	}

	want := worker("w1", 20)
	want.Status, want.CoresBusy = api.WorkerDown, 3
	upd, err := s.UpdateWorker(ctx, "w1", func(w *api.Worker) error {
		w.Status, w.CoresBusy = api.WorkerDown, 3
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateWorker: %v", err)
	}
	sameJSON(t, "UpdateWorker's result", upd, want)

	refusal := errors.New("no")
	_, err = s.UpdateWorker(ctx, "w1", func(w *api.Worker) error { w.Cores = 99; return refusal })
	if err != refusal {
		t.Fatalf("UpdateWorker whose fn failed: err = %v, want fn's error itself", err)
	}
	if _, err := s.UpdateWorker(ctx, "w1", func(w *api.Worker) error { w.ID = "w9"; return nil }); err == nil {
		t.Fatal("UpdateWorker accepted a change of id")
	}
	got, err = s.GetWorker(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "worker after refused updates", got, want)

	if err := s.DeleteWorker(ctx, "w1"); err != nil {
		t.Fatalf("DeleteWorker: %v", err)
	}
	if _, err := s.GetWorker(ctx, "w1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetWorker after DeleteWorker: err = %v, want ErrNotFound", err)
	}
	if ws, err := s.ListWorkers(ctx); err != nil || len(ws) != 2 {
		t.Fatalf("ListWorkers after DeleteWorker = %d workers, %v; want 2", len(ws), err)
	}
}

func testUpdateWorkerConcurrent(t *testing.T, s Store) {
	if err := s.PutWorker(t.Context(), worker("busy", 1)); err != nil {
		t.Fatal(err)
	}
	concurrentAppends(t, 5,
		func(_ int, line string) error {
			_, err := s.UpdateWorker(t.Context(), "busy", func(w *api.Worker) error {
				if w.CoreTasks == nil {
					w.CoreTasks = map[string]string{}
				}
				w.CoreTasks[line] = line
				return nil
			})
			return err
		},
		func() []string {
			w, err := s.GetWorker(t.Context(), "busy")
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for k := range w.CoreTasks {
				if strings.HasPrefix(k, "g") {
					lines = append(lines, k)
				}
			}
			return lines
		})
}

func testUsage(t *testing.T, s Store) {
	ctx := t.Context()
	if u, err := s.Usage(ctx); err != nil || len(u) != 0 {
		t.Fatalf("Usage on an empty store = %v, %v", u, err)
	}
	if err := s.AppendUsage(ctx, nil); err != nil {
		t.Fatalf("AppendUsage(nil): %v", err)
	}
	batches := [][]api.UsagePoint{
		{{Node: "b", Time: 200, Ratio: 0.25}, {Node: "a", Time: 100, Ratio: 0.5}, {Node: "a", Time: 101, Ratio: 0.75}},
		{{Node: "a", Time: 103.5, Ratio: 1}, {Node: "c", Time: 50, Ratio: 0}},
		{{Node: "b", Time: 202, Ratio: 0.5}},
	}
	for _, b := range batches {
		if err := s.AppendUsage(ctx, b); err != nil {
			t.Fatalf("AppendUsage(%v): %v", b, err)
		}
	}
	got, err := s.Usage(ctx)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	want := []api.Usage{
		{Node: "a", InitTime: 100, Details: [][2]float64{{0, 0.5}, {1, 0.75}, {3.5, 1}}},
		{Node: "b", InitTime: 200, Details: [][2]float64{{0, 0.25}, {2, 0.5}}},
		{Node: "c", InitTime: 50, Details: [][2]float64{{0, 0}}},
	}
	sameJSON(t, "Usage", got, want)
}

// testChanges: every create and update moves the job to the head of the
// change feed, in write order, and paging through it loses nothing.
func testChanges(t *testing.T, s Store) {
	ctx := t.Context()
	_, head, err := s.JobsChangedSince(ctx, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cha", "chb", "chc"} {
		if err := s.CreateJob(ctx, apitest.Job(name, 1, 1, "sleep 1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateJob(ctx, "cha", func(j *api.Job) error { j.Priority = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	var names []string
	cursor := head
	for {
		jobs, next, err := s.JobsChangedSince(ctx, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 0 {
			if next != cursor {
				t.Fatalf("empty page moved the cursor from %d to %d", cursor, next)
			}
			break
		}
		if next <= cursor {
			t.Fatalf("cursor did not advance: %d -> %d", cursor, next)
		}
		for _, j := range jobs {
			names = append(names, j.Name)
		}
		cursor = next
	}
	// cha was written last, so it comes after chb and chc, once.
	if want := []string{"chb", "chc", "cha"}; !slices.Equal(names, want) {
		t.Fatalf("change feed gave %v, want %v", names, want)
	}
	_, head2, err := s.JobsChangedSince(ctx, -1, 0)
	if err != nil || head2 != cursor {
		t.Fatalf("head is %d (%v), want %d", head2, err, cursor)
	}
}

// testUpdateWorkers: every named worker that exists is changed, missing
// ones and ones fn refuses are skipped, and only the changed are returned.
func testUpdateWorkers(t *testing.T, s Store) {
	ctx := t.Context()
	for i, id := range []string{"wa", "wb", "wc"} {
		if err := s.PutWorker(ctx, &api.Worker{ID: id, Cores: 4, JoinTime: float64(i + 1), Status: api.WorkerReady}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.UpdateWorkers(ctx, []string{"wa", "nope", "wb", "wc"}, func(w *api.Worker) error {
		if w.ID == "wc" {
			return errors.New("not this one")
		}
		w.SetAllocation(map[int]string{1: "t-" + w.ID}, 0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range got {
		ids = append(ids, w.ID)
	}
	if !slices.Equal(ids, []string{"wa", "wb"}) {
		t.Fatalf("updated %v, want [wa wb]", ids)
	}
	for id, want := range map[string]string{"wa": "t-wa", "wb": "t-wb", "wc": ""} {
		w, err := s.GetWorker(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if w.CoreTasks["1"] != want {
			t.Fatalf("worker %s core 1 held by %q, want %q", id, w.CoreTasks["1"], want)
		}
	}
}

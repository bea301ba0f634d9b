package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/discovery"
	"github.com/rswarm/rswarm/store"
)

// Tests of discovery: the pure heartbeat Table with explicit times, and
// the Service over the real SQLite store with a hand-written Notifier that
// records its calls. Service.Run applies statuses in batches and writes
// heartbeats throttled, so every Service test runs it and polls the store
// (apitest.Eventually) rather than expecting effects at once.

const wait = 5 * time.Second // polling deadline; never reached when things work

func TestTable(t *testing.T) {
	// op is one call: "observe" (want is up), "expired" (want is the list), "forget".
	type op struct {
		do   string
		node string
		at   float64
		up   bool
		exp  []string
	}
	tests := []struct {
		name string
		ops  []op
	}{
		{name: "a new node comes up", ops: []op{
			{do: "observe", node: "a", at: 0, up: true},
		}},
		{name: "a known node is not news", ops: []op{
			{do: "observe", node: "a", at: 0, up: true},
			{do: "observe", node: "a", at: 1, up: false},
		}},
		{name: "silent for exactly the grace period is not expired", ops: []op{
			// Grace is 10: last heard at 0, at 10 the silence is 10, not more.
			{do: "observe", node: "a", at: 0, up: true},
			{do: "expired", at: 10, exp: nil},
			{do: "expired", at: 10.5, exp: []string{"a"}},
		}},
		{name: "an expired node is reported once", ops: []op{
			{do: "observe", node: "a", at: 0, up: true},
			{do: "expired", at: 11, exp: []string{"a"}},
			{do: "expired", at: 20, exp: nil},
			{do: "expired", at: 100, exp: nil},
		}},
		{name: "an expired node comes back up on a heartbeat", ops: []op{
			{do: "observe", node: "a", at: 0, up: true},
			{do: "expired", at: 11, exp: []string{"a"}},
			{do: "observe", node: "a", at: 21, up: true},
			// Watched again from 21: fine at 25, expired (again, once) at 32.
			{do: "expired", at: 25, exp: nil},
			{do: "expired", at: 32, exp: []string{"a"}},
		}},
		{name: "heartbeats keep a node alive", ops: []op{
			{do: "observe", node: "a", at: 0, up: true},
			{do: "observe", node: "a", at: 8, up: false},
			{do: "expired", at: 15, exp: nil},
			{do: "observe", node: "a", at: 16, up: false},
			{do: "expired", at: 26, exp: nil},
		}},
		{name: "expired nodes in name order", ops: []op{
			{do: "observe", node: "b", at: 0, up: true},
			{do: "observe", node: "a", at: 0, up: true},
			{do: "observe", node: "c", at: 5, up: true},
			// At 12: a and b silent for 12, c for 7.
			{do: "expired", at: 12, exp: []string{"a", "b"}},
			{do: "expired", at: 16, exp: []string{"c"}},
		}},
		{name: "a clock going backwards does not rewind a node", ops: []op{
			{do: "observe", node: "a", at: 10, up: true},
			{do: "observe", node: "a", at: 5, up: false},
			// Last heard stays 10: at 16 the silence is 6 (it would be 11 from 5).
			{do: "expired", at: 16, exp: nil},
			{do: "expired", at: 21, exp: []string{"a"}},
		}},
		{name: "a forgotten node never expires", ops: []op{
			{do: "observe", node: "a", at: 0, up: true},
			{do: "forget", node: "a"},
			{do: "expired", at: 100, exp: nil},
			// It is unknown again: its next heartbeat brings it up.
			{do: "observe", node: "a", at: 101, up: true},
		}},
		{name: "forgetting an expired node", ops: []op{
			{do: "observe", node: "a", at: 0, up: true},
			{do: "expired", at: 11, exp: []string{"a"}},
			{do: "forget", node: "a"},
			{do: "expired", at: 50, exp: nil},
			{do: "observe", node: "a", at: 51, up: true},
		}},
		{name: "forgetting an unknown node is harmless", ops: []op{
			{do: "forget", node: "x"},
			{do: "expired", at: 50, exp: nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := discovery.NewTable(10)
			for i, o := range tt.ops {
				switch o.do {
				case "observe":
					if got := tb.Observe(o.node, o.at); got != o.up {
						t.Errorf("op %d: Observe(%s, %v) = %v, want %v", i, o.node, o.at, got, o.up)
					}
				case "expired":
					if got := tb.Expired(o.at); !slices.Equal(got, o.exp) {
						t.Errorf("op %d: Expired(%v) = %v, want %v", i, o.at, got, o.exp)
					}
				case "forget":
					tb.Forget(o.node)
				default:
					t.Fatalf("bad op %q", o.do)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*discovery.Config)
		wantErr bool
	}{
		{"defaults", func(*discovery.Config) {}, false},
		{"zero grace", func(c *discovery.Config) { c.HeartbeatGrace = 0 }, true},
		{"negative check interval", func(c *discovery.Config) { c.CheckInterval = -time.Second }, true},
		// A zero write period takes the default.
		{"zero heartbeat write period", func(c *discovery.Config) { c.HeartbeatWrite = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := discovery.DefaultConfig()
			tt.mutate(&cfg)
			if err := cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			_, err := discovery.New(cfg, nil, nil)
			if (err != nil) != tt.wantErr {
				t.Errorf("New() error = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

// fakeNotifier records what discovery tells the jobmanager.
type fakeNotifier struct {
	mu             sync.Mutex
	done           [][]api.TaskRef
	workersChanged int
}

func (f *fakeNotifier) TasksDone(_ context.Context, tasks []api.TaskRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = append(f.done, slices.Clone(tasks))
	return nil
}

func (f *fakeNotifier) WorkersChanged(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.workersChanged++
	return nil
}

// doneRefs returns every task reported done, in order, one call after another.
func (f *fakeNotifier) doneRefs() []api.TaskRef {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.TaskRef
	for _, c := range f.done {
		out = append(out, c...)
	}
	return out
}

func (f *fakeNotifier) changes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.workersChanged
}

type env struct {
	st  *store.SQLite
	nt  *fakeNotifier
	svc *discovery.Service
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start opens a fresh SQLite store, lets prepare fill it, and runs a
// service on it until the test ends (Run must return nil).
func start(t *testing.T, cfg discovery.Config, prepare func(st *store.SQLite)) *env {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if prepare != nil {
		prepare(st)
	}
	cfg.Logger = quiet()
	nt := &fakeNotifier{}
	svc, err := discovery.New(cfg, st, nt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run returned %v, want nil on cancellation", err)
		}
	})
	return &env{st: st, nt: nt, svc: svc}
}

// fastConfig checks often (usage samples are flushed every check) and
// keeps workers alive for the whole test.
func fastConfig() discovery.Config {
	cfg := discovery.DefaultConfig()
	cfg.CheckInterval = 10 * time.Millisecond
	cfg.HeartbeatGrace = time.Minute
	return cfg
}

// putJob stores job name with n one-core tasks on node, each in state
// st; the job's own state is what Refresh derives from them.
func putJob(t *testing.T, st *store.SQLite, name, node string, states ...api.State) {
	t.Helper()
	j := apitest.Job(name, len(states), 1, "sleep 1")
	if err := j.Validate(api.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	j.SubmitTime = 1
	for i, tk := range j.Info.Tasks {
		tk.Node, tk.CpusetCpus, tk.Status = node, fmt.Sprint(i), states[i]
		if states[i] >= api.Running {
			tk.StartTime = 2
		}
	}
	j.Refresh(2)
	if err := st.CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

func putWorker(t *testing.T, st *store.SQLite, id string, status api.WorkerStatus) {
	t.Helper()
	w := &api.Worker{ID: id, Host: id, Runtime: "sim", Cores: 4, MemTotal: 1 << 30, Status: status, JoinTime: 1}
	w.SetAllocation(nil, 0)
	if err := st.PutWorker(context.Background(), w); err != nil {
		t.Fatal(err)
	}
}

// barrier sends a status for a job that does not exist and waits for it:
// statuses are applied in order by one goroutine, so once it returns,
// everything sent before it has been applied and notified.
func barrier(t *testing.T, svc *discovery.Service) {
	t.Helper()
	if err := svc.TaskStatus(context.Background(), api.TaskStatus{Job: "no-such-job", Task: "no-such-job_t", State: api.Running, Time: 1}); err != nil {
		t.Fatalf("barrier status: %v", err)
	}
}

// afterFlushes returns once every heartbeat flush begun before it was
// called has returned, announcements included. Run's goroutine writes the
// utilisation points at the start of each tick and the heartbeats after
// them: the point of this beat (at, busy/cores, which must differ from the
// node's last ratio) is stored by a tick after the flush that wrote what
// the test saw, so once the point is stored, that flush is over.
func afterFlushes(t *testing.T, e *env, node string, at float64, cores, busy int) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.svc.Heartbeat(ctx, api.Heartbeat{Node: node, Time: at, Cores: cores, CoresBusy: busy}); err != nil {
		t.Fatalf("barrier heartbeat: %v", err)
	}
	want := float64(busy) / float64(cores)
	apitest.Eventually(t, wait, func() error {
		us, err := e.st.Usage(ctx)
		if err != nil {
			return err
		}
		for _, u := range us {
			if n := len(u.Details); u.Node == node && n > 0 && u.InitTime+u.Details[n-1][0] == at && u.Details[n-1][1] == want {
				return nil
			}
		}
		return fmt.Errorf("usage %+v: the barrier point (%v, %v) of %s is not stored yet", us, at, want, node)
	})
}

func jobIs(st *store.SQLite, name string, want api.State) func() error {
	return func() error {
		j, err := st.GetJob(context.Background(), name)
		if err != nil {
			return err
		}
		if j.Status != want {
			return fmt.Errorf("job %s is %v, want %v", name, j.Status, want)
		}
		return nil
	}
}

func TestTaskStatus(t *testing.T) {
	const task = "j_task1"
	// The job has one task: it ends with it.
	ref := func(s api.State) api.TaskRef {
		return api.TaskRef{Job: "j", Task: task, Node: "w1", State: s, JobEnded: true}
	}
	run := func(at float64) api.TaskStatus {
		return api.TaskStatus{Node: "w1", Job: "j", Task: task, State: api.Running, Time: at}
	}
	end := func(s api.State, at float64, code int, msg string) api.TaskStatus {
		return api.TaskStatus{Node: "w1", Job: "j", Task: task, State: s, Time: at, ExitCode: &code, Error: msg}
	}
	tests := []struct {
		name      string
		statuses  []api.TaskStatus
		wantJob   api.State
		wantStart float64
		wantEnd   float64
		wantErr   string
		wantDone  []api.TaskRef
	}{
		{
			name:     "running then down ends the job",
			statuses: []api.TaskStatus{run(100), end(api.Down, 105, 0, "")},
			wantJob:  api.Down, wantStart: 100, wantEnd: 105,
			wantDone: []api.TaskRef{ref(api.Down)},
		},
		{
			// At least once delivery: the copy changes nothing and is not notified again.
			name:     "the same status twice is applied and notified once",
			statuses: []api.TaskStatus{run(100), run(100), end(api.Down, 105, 0, ""), end(api.Down, 106, 0, "")},
			wantJob:  api.Down, wantStart: 100, wantEnd: 105,
			wantDone: []api.TaskRef{ref(api.Down)},
		},
		{
			name:     "a stale status is ignored",
			statuses: []api.TaskStatus{run(100), end(api.Down, 105, 0, ""), run(107)},
			wantJob:  api.Down, wantStart: 100, wantEnd: 105,
			wantDone: []api.TaskRef{ref(api.Down)},
		},
		{
			name:     "a failed task fails the job",
			statuses: []api.TaskStatus{run(100), end(api.Failed, 103, 1, "exited with code 1")},
			wantJob:  api.Failed, wantStart: 100, wantEnd: 103, wantErr: "task j_task1: exited with code 1",
			wantDone: []api.TaskRef{ref(api.Failed)},
		},
		{
			name:     "running alone starts the job and frees nothing",
			statuses: []api.TaskStatus{run(100)},
			wantJob:  api.Running, wantStart: 100,
		},
		{
			// The job was deleted meanwhile: dropped without an error.
			name:     "a status of an unknown job is dropped",
			statuses: []api.TaskStatus{{Node: "w1", Job: "gone", Task: "gone_task1", State: api.Down, Time: 100}},
			wantJob:  api.Deployed,
		},
		{
			name:     "a status of an unknown task is dropped",
			statuses: []api.TaskStatus{{Node: "w1", Job: "j", Task: "j_task9", State: api.Down, Time: 100}},
			wantJob:  api.Deployed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, fastConfig(), func(st *store.SQLite) { putJob(t, st, "j", "w1", api.Deployed) })
			ctx := context.Background()
			for _, s := range tt.statuses {
				if err := e.svc.TaskStatus(ctx, s); err != nil {
					t.Fatalf("TaskStatus(%v %v): %v", s.Task, s.State, err)
				}
			}
			apitest.Eventually(t, wait, jobIs(e.st, "j", tt.wantJob))
			j, err := e.st.GetJob(ctx, "j")
			if err != nil {
				t.Fatal(err)
			}
			if j.StartTime != tt.wantStart || j.EndTime != tt.wantEnd || j.Error != tt.wantErr {
				t.Errorf("job = %v..%v %q, want %v..%v %q", j.StartTime, j.EndTime, j.Error, tt.wantStart, tt.wantEnd, tt.wantErr)
			}
			barrier(t, e.svc)
			if got := e.nt.doneRefs(); !slices.Equal(got, tt.wantDone) {
				t.Errorf("TasksDone got %v, want %v", got, tt.wantDone)
			}
		})
	}
}

func TestTaskStatusWithoutRun(t *testing.T) {
	// Statuses are applied by Run: without it, TaskStatus still returns
	// when its caller gives up, instead of blocking for ever.
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := fastConfig()
	cfg.Logger = quiet()
	svc, err := discovery.New(cfg, st, &fakeNotifier{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := svc.TaskStatus(ctx, api.TaskStatus{Job: "j", Task: "j_task1", State: api.Running}); !errors.Is(err, context.Canceled) {
		t.Errorf("TaskStatus = %v, want context.Canceled", err)
	}
}

func TestTaskStatusesOfManyJobs(t *testing.T) {
	// Three jobs of two tasks, every task reported Running then Down from its
	// own goroutine at once: whatever batches they fall into, every job ends
	// Down and every task is reported done exactly once.
	jobs := []string{"a", "b", "c"}
	e := start(t, fastConfig(), func(st *store.SQLite) {
		for _, j := range jobs {
			putJob(t, st, j, "w1", api.Deployed, api.Deployed)
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for _, j := range jobs {
		for i := 1; i <= 2; i++ {
			task := fmt.Sprintf("%s_task%d", j, i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k, s := range []api.State{api.Running, api.Down} {
					if err := e.svc.TaskStatus(context.Background(), api.TaskStatus{Node: "w1", Job: j, Task: task, State: s, Time: float64(100 + k)}); err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("TaskStatus: %v", err)
	}
	// Twelve statuses applied, in at most twelve batches, each one gap.
	apitest.Eventually(t, wait, func() error {
		if st := e.svc.Stats(); st.Applied != 12 || st.ApplyGaps.Hist.Count == 0 || st.ApplyGaps.Hist.Count > 12 {
			return fmt.Errorf("%d statuses applied in %d gaps, want 12 in 1 to 12", st.Applied, st.ApplyGaps.Hist.Count)
		}
		return nil
	})
	for _, j := range jobs {
		apitest.Eventually(t, wait, jobIs(e.st, j, api.Down))
	}
	barrier(t, e.svc)
	var got []string
	for _, r := range e.nt.doneRefs() {
		got = append(got, r.Task)
	}
	slices.Sort(got)
	want := []string{"a_task1", "a_task2", "b_task1", "b_task2", "c_task1", "c_task2"}
	if !slices.Equal(got, want) {
		t.Errorf("tasks reported done = %v, want each of %v once", got, want)
	}
}

func TestHeartbeatUpdatesWorker(t *testing.T) {
	e := start(t, fastConfig(), func(st *store.SQLite) { putWorker(t, st, "w1", api.WorkerReady) })
	ctx := context.Background()
	if _, err := e.svc.Heartbeat(ctx, api.Heartbeat{Node: "w1", Time: 100, Cores: 4, CoresBusy: 2, MemTotal: 1 << 30, MemUsed: 1000, Tasks: 1}); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	apitest.Eventually(t, wait, func() error {
		w, err := e.st.GetWorker(ctx, "w1")
		if err != nil {
			return err
		}
		if w.LastHeartbeat != 100 || w.CoresBusy != 2 || w.MemUsed != 1000 || w.Status != api.WorkerReady {
			return fmt.Errorf("worker = last %v busy %d mem %d %s, want 100, 2, 1000, ready", w.LastHeartbeat, w.CoresBusy, w.MemUsed, w.Status)
		}
		return nil
	})
	// It was ready already: nothing to tell the jobmanager. Run announces
	// after the store write, so wait until that flush has returned.
	afterFlushes(t, e, "w1", 101, 4, 3)
	if n := e.nt.changes(); n != 0 {
		t.Errorf("WorkersChanged called %d times, want 0", n)
	}
}

func TestHeartbeatUsagePoints(t *testing.T) {
	e := start(t, fastConfig(), func(st *store.SQLite) { putWorker(t, st, "w1", api.WorkerReady) })
	ctx := context.Background()
	beats := []struct {
		at   float64
		busy int
	}{
		{100, 2}, // ratio 2/4 = 0.5: first point
		{101, 2}, // same ratio: no point
		{102, 4}, // ratio 1: a point
	}
	for _, b := range beats {
		if _, err := e.svc.Heartbeat(ctx, api.Heartbeat{Node: "w1", Time: b.at, Cores: 4, CoresBusy: b.busy}); err != nil {
			t.Fatalf("Heartbeat at %v: %v", b.at, err)
		}
	}
	// Points are flushed in order, so once the ratio-1 point is stored,
	// a point for the second heartbeat would be stored too.
	var got []api.Usage
	apitest.Eventually(t, wait, func() error {
		var err error
		if got, err = e.st.Usage(ctx); err != nil {
			return err
		}
		if len(got) != 1 || len(got[0].Details) == 0 || got[0].Details[len(got[0].Details)-1][1] != 1 {
			return fmt.Errorf("usage = %v, want the ratio-1 point last", got)
		}
		return nil
	})
	// Offsets are seconds since the first sample (100): 0 and 2.
	want := [][2]float64{{0, 0.5}, {2, 1}}
	if got[0].Node != "w1" || got[0].InitTime != 100 || !slices.Equal(got[0].Details, want) {
		t.Errorf("usage = %+v, want w1 from 100 with %v", got[0], want)
	}
}

func TestHeartbeatBringsWorkerBack(t *testing.T) {
	e := start(t, fastConfig(), func(st *store.SQLite) { putWorker(t, st, "w1", api.WorkerDown) })
	ctx := context.Background()
	if _, err := e.svc.Heartbeat(ctx, api.Heartbeat{Node: "w1", Time: 100, Cores: 4}); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	apitest.Eventually(t, wait, func() error {
		w, err := e.st.GetWorker(ctx, "w1")
		if err != nil {
			return err
		}
		if w.Status != api.WorkerReady {
			return fmt.Errorf("worker is %s, want ready", w.Status)
		}
		return nil
	})
	// The jobmanager learns that it may place tasks there again.
	apitest.Eventually(t, wait, func() error {
		if n := e.nt.changes(); n != 1 {
			return fmt.Errorf("WorkersChanged called %d times, want 1", n)
		}
		return nil
	})
}

func TestHeartbeatFromUnregisteredWorker(t *testing.T) {
	e := start(t, fastConfig(), nil)
	ctx := context.Background()
	_, err := e.svc.Heartbeat(ctx, api.Heartbeat{Node: "ghost", Time: 100, Cores: 4})
	// Registration belongs to the globalmanager: a heartbeat creates no
	// worker; if the error is reported at once, it is a not-found.
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Heartbeat(unregistered) = %v, want nil or ErrNotFound", err)
	}
	barrier(t, e.svc)
	if _, err := e.st.GetWorker(ctx, "ghost"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("GetWorker(ghost) = %v, want ErrNotFound", err)
	}
}

func TestSilentWorkerIsMarkedDown(t *testing.T) {
	cfg := discovery.DefaultConfig()
	cfg.HeartbeatGrace = 50 * time.Millisecond
	cfg.CheckInterval = 10 * time.Millisecond
	e := start(t, cfg, func(st *store.SQLite) {
		putWorker(t, st, "w1", api.WorkerReady)
		// j: one task running, one deployed (its command delivered): both are lost.
		putJob(t, st, "j", "w1", api.Running, api.Deployed)
		// k: one task already ended (stays Down), one running (lost).
		putJob(t, st, "k", "w1", api.Down, api.Running)
		// m runs on another worker, which discovery does not watch: untouched.
		putJob(t, st, "m", "w2", api.Running)
	})
	ctx := context.Background()
	// Run watches w1 from its start; with no heartbeat it expires after the grace period.
	apitest.Eventually(t, wait, func() error {
		w, err := e.st.GetWorker(ctx, "w1")
		if err != nil {
			return err
		}
		if w.Status != api.WorkerDown {
			return fmt.Errorf("worker is %s, want down", w.Status)
		}
		return nil
	})
	apitest.Eventually(t, wait, jobIs(e.st, "j", api.Failed))
	apitest.Eventually(t, wait, jobIs(e.st, "k", api.Failed))
	wantStates := map[string]api.State{"j_task1": api.Failed, "j_task2": api.Failed, "k_task1": api.Down, "k_task2": api.Failed}
	for _, name := range []string{"j", "k"} {
		j, err := e.st.GetJob(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range j.Info.Tasks {
			if tk.Status != wantStates[tk.ContainerName] {
				t.Errorf("%s is %v, want %v", tk.ContainerName, tk.Status, wantStates[tk.ContainerName])
			}
			if tk.Status == api.Failed && !strings.Contains(tk.Error, "lost") {
				t.Errorf("%s error = %q, want it to say the worker was lost", tk.ContainerName, tk.Error)
			}
		}
		if !strings.Contains(j.Error, "lost") {
			t.Errorf("job %s error = %q, want it to say the worker was lost", name, j.Error)
		}
	}
	m, err := e.st.GetJob(ctx, "m")
	if err != nil || m.Status != api.Running {
		t.Errorf("job m on another worker = %v, %v; want Running", m.Status, err)
	}
	// The jobmanager frees the cores of the three lost tasks and hears that a worker changed.
	barrier(t, e.svc)
	var freed []string
	for _, r := range e.nt.doneRefs() {
		freed = append(freed, r.Task)
	}
	slices.Sort(freed)
	if want := []string{"j_task1", "j_task2", "k_task2"}; !slices.Equal(freed, want) {
		t.Errorf("tasks reported done = %v, want %v", freed, want)
	}
	apitest.Eventually(t, wait, func() error {
		if e.nt.changes() < 1 {
			return errors.New("WorkersChanged not called")
		}
		return nil
	})
	// (Coming back up on a heartbeat is TestHeartbeatBringsWorkerBack: with
	// a 50 ms grace the worker would soon expire again here.)
}

package jobmanager_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/jobmanager"
	"github.com/rswarm/rswarm/placement"
	"github.com/rswarm/rswarm/store"
)

// Tests of the jobmanager over the real SQLite store and a fake
// Dispatcher that records what it is asked to deploy and stop. Each test
// runs Manager.Run in a goroutine with short intervals (resync every
// 50 ms, worker records written every 10 ms) and waits for what it
// expects by polling the store or the counters; to show that something
// did NOT happen (a second deployment, a Stop), it waits for whole resync
// passes (counted at the store) and then stops the Manager, which joins
// every deployment and stop it started.

// wait bounds every poll: generous, as the machine is shared.
const wait = 10 * time.Second

// The real store is the jobmanager's State.
var _ jobmanager.State = (*store.SQLite)(nil)

// mem16m is apitest.Job's mem_limit ("16m") in bytes.
const mem16m = 16 << 20

// countingState is the real SQLite store, counting reads of the change
// feed: the jobmanager begins each resync pass with one, so a test can wait
// for whole passes instead of sleeping.
type countingState struct {
	*store.SQLite
	lists        atomic.Int64
	workerWrites atomic.Int64 // UpdateWorkers calls
}

func (s *countingState) UpdateWorkers(ctx context.Context, ids []string, fn func(*api.Worker) error) ([]*api.Worker, error) {
	s.workerWrites.Add(1)
	return s.SQLite.UpdateWorkers(ctx, ids, fn)
}

func (s *countingState) JobsChangedSince(ctx context.Context, after int64, limit int) ([]*api.Job, int64, error) {
	s.lists.Add(1)
	return s.SQLite.JobsChangedSince(ctx, after, limit)
}

// deployCall is one Deploy: the job handed over, and the store's record of
// it at that moment.
type deployCall struct {
	job    *api.Job
	stored *api.Job
}

type stopCall struct {
	job, reason string
}

// fakeDispatcher records Deploy and Stop calls. Deploy's outcome comes from
// deploy; when it is nil the job is marked Deployed in the store, as the
// real globalmanager does once every worker has acknowledged.
type fakeDispatcher struct {
	st     *store.SQLite
	deploy func(ctx context.Context, j *api.Job) error

	mu      sync.Mutex
	deploys []deployCall
	stops   []stopCall
}

func (d *fakeDispatcher) Deploy(ctx context.Context, j *api.Job) error {
	// The record is read whatever the dispatch timeout: a test may set it short.
	stored, _ := d.st.GetJob(context.WithoutCancel(ctx), j.Name)
	d.mu.Lock()
	d.deploys = append(d.deploys, deployCall{job: j.Clone(), stored: stored})
	d.mu.Unlock()
	if d.deploy != nil {
		return d.deploy(ctx, j)
	}
	return markDeployed(ctx, d.st, j.Name)
}

func (d *fakeDispatcher) Stop(_ context.Context, job, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stops = append(d.stops, stopCall{job, reason})
	return nil
}

// deployed returns the names of the jobs Deploy was called for, sorted.
func (d *fakeDispatcher) deployed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, c := range d.deploys {
		out = append(out, c.job.Name)
	}
	slices.Sort(out)
	return out
}

func (d *fakeDispatcher) calls() []deployCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.deploys)
}

func (d *fakeDispatcher) stopCalls() []stopCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.stops)
}

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// markDeployed moves a job's tasks to Deployed, as the globalmanager does
// after a successful deployment.
func markDeployed(ctx context.Context, st *store.SQLite, name string) error {
	_, err := st.UpdateJob(ctx, name, func(j *api.Job) error {
		for _, t := range j.Info.Tasks {
			if api.CanTransition(t.Status, api.Deployed) {
				t.Status = api.Deployed
			}
		}
		j.Refresh(now())
		return nil
	})
	return err
}

type workerSpec struct {
	id    string
	cores int
}

// harness is one store with its workers, and the Manager running over it.
type harness struct {
	t  *testing.T
	st *store.SQLite

	// Of the running Manager:
	m    *jobmanager.Manager
	cs   *countingState
	d    *fakeDispatcher
	stop func()
}

// setup opens a store in a temporary directory and registers the workers,
// in that order (join times 1, 2, ...: the order breaks placement ties).
func setup(t *testing.T, workers ...workerSpec) *harness {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	for i, w := range workers {
		err := st.PutWorker(t.Context(), &api.Worker{ID: w.id, Cores: w.cores, MemTotal: 1 << 30,
			Status: api.WorkerReady, JoinTime: float64(i + 1)})
		if err != nil {
			t.Fatalf("PutWorker(%s): %v", w.id, err)
		}
	}
	return &harness{t: t, st: st}
}

// noResync leaves only the initial resync, so that what a test sees comes
// from the notification under test and not from the periodic resync, which
// also frees the cores of tasks that ended.
func noResync(c *jobmanager.Config) { c.ResyncInterval = time.Hour }

func testConfig(t *testing.T) jobmanager.Config {
	cfg := jobmanager.DefaultConfig()
	cfg.ResyncInterval = 50 * time.Millisecond
	cfg.WorkerWrite = 10 * time.Millisecond
	cfg.DispatchTimeout = wait
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

// run starts a Manager over the store with a new fake dispatcher whose
// Deploy outcome is deploy (nil: mark the job Deployed). conf, if not nil,
// adjusts the test configuration. The Manager is stopped at cleanup, or
// earlier by h.stop().
func (h *harness) run(conf func(*jobmanager.Config), deploy func(context.Context, *api.Job) error) {
	t := h.t
	t.Helper()
	cfg := testConfig(t)
	if conf != nil {
		conf(&cfg)
	}
	h.cs = &countingState{SQLite: h.st}
	h.d = &fakeDispatcher{st: h.st, deploy: deploy}
	m, err := jobmanager.New(cfg, h.cs, h.d)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.m = m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(wait):
				t.Errorf("Run did not return within %v of its context's cancellation", wait)
			}
		})
	}
	t.Cleanup(h.stop)
}

// submit stores a Ready job of n tasks of cores cores each, as the
// frontend does, without notifying the jobmanager.
func (h *harness) submit(name string, n, cores int) {
	h.t.Helper()
	j := apitest.Job(name, n, cores, "sleep 1")
	if err := j.Validate(api.DefaultLimits()); err != nil {
		h.t.Fatalf("fixture %s: %v", name, err)
	}
	j.Status, j.SubmitTime = api.Ready, now()
	if err := h.st.CreateJob(h.t.Context(), j); err != nil {
		h.t.Fatalf("CreateJob(%s): %v", name, err)
	}
}

// submitNotify stores a job and notifies the jobmanager.
func (h *harness) submitNotify(name string, n, cores int) {
	h.t.Helper()
	h.submit(name, n, cores)
	if err := h.m.JobSubmitted(h.t.Context(), name); err != nil {
		h.t.Fatalf("JobSubmitted(%s): %v", name, err)
	}
}

func (h *harness) job(name string) *api.Job {
	h.t.Helper()
	j, err := h.st.GetJob(h.t.Context(), name)
	if err != nil {
		h.t.Fatalf("GetJob(%s): %v", name, err)
	}
	return j
}

// waitJob polls the store until cond accepts the job.
func (h *harness) waitJob(name string, cond func(*api.Job) error) *api.Job {
	h.t.Helper()
	var last *api.Job
	apitest.Eventually(h.t, wait, func() error {
		j, err := h.st.GetJob(h.t.Context(), name)
		if err != nil {
			return err
		}
		last = j
		if err := cond(j); err != nil {
			return fmt.Errorf("job %s: %w", name, err)
		}
		return nil
	})
	return last
}

func isStatus(want api.State) func(*api.Job) error {
	return func(j *api.Job) error {
		if j.Status != want {
			return fmt.Errorf("status %v (waiting_reason %q, error %q), want %v", j.Status, j.WaitingReason, j.Error, want)
		}
		return nil
	}
}

// waitDeployed waits for a job to be Deployed and checks where its tasks
// are: want maps each task to "node/cpuset".
func (h *harness) waitDeployed(name string, want map[string]string) *api.Job {
	h.t.Helper()
	j := h.waitJob(name, isStatus(api.Deployed))
	if got := placements(j); !maps.Equal(got, want) {
		h.t.Errorf("job %s placed at %v, want %v", name, got, want)
	}
	return j
}

// waitWaiting waits for a job to be left in the queue with a waiting
// reason in the store, its tasks unplaced.
func (h *harness) waitWaiting(name string) *api.Job {
	h.t.Helper()
	j := h.waitJob(name, func(j *api.Job) error {
		if j.Status != api.Ready || j.WaitingReason == "" {
			return fmt.Errorf("status %v, waiting_reason %q; want Ready with a reason", j.Status, j.WaitingReason)
		}
		return nil
	})
	for _, tk := range j.Info.Tasks {
		if tk.Status != api.Ready || tk.Node != "" || tk.CpusetCpus != "" {
			h.t.Errorf("waiting job %s: task %s is %v on %q cores %q; want Ready and unplaced", name, tk.ContainerName, tk.Status, tk.Node, tk.CpusetCpus)
		}
	}
	return j
}

// placements maps each task of j to "node/cpuset".
func placements(j *api.Job) map[string]string {
	out := map[string]string{}
	for _, t := range j.Info.Tasks {
		out[t.ContainerName] = t.Node + "/" + t.CpusetCpus
	}
	return out
}

// waitWorker polls the worker's record until its cores are exactly busy
// (core -> task; every other core free).
func (h *harness) waitWorker(id string, busy map[int]string) {
	h.t.Helper()
	apitest.Eventually(h.t, wait, func() error { return h.checkWorker(id, busy) })
}

func (h *harness) checkWorker(id string, busy map[int]string) error {
	w, err := h.st.GetWorker(h.t.Context(), id)
	if err != nil {
		return err
	}
	want := map[string]string{}
	for c, task := range busy {
		want[fmt.Sprint(c)] = task
	}
	var got map[string]string
	if len(w.CoreTasks) > 0 {
		got = w.CoreTasks
	}
	if len(want) == 0 {
		want = nil
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("worker %s core_tasks = %v, want %v", id, got, want)
	}
	if len(w.CPUs) != w.Cores {
		return fmt.Errorf("worker %s CPUs has %d entries, want %d", id, len(w.CPUs), w.Cores)
	}
	for c := 0; c < w.Cores; c++ {
		_, held := busy[c]
		if w.CPUs[fmt.Sprint(c)] != held {
			return fmt.Errorf("worker %s CPUs[%d] = %v, want %v", id, c, w.CPUs[fmt.Sprint(c)], held)
		}
	}
	return nil
}

// waitStats polls the counters until cond accepts them.
func (h *harness) waitStats(cond func(api.SchedulerStats) error) {
	h.t.Helper()
	apitest.Eventually(h.t, wait, func() error { return cond(h.m.Stats()) })
}

func queued(n int) func(api.SchedulerStats) error {
	return func(s api.SchedulerStats) error {
		if s.Queued != n {
			return fmt.Errorf("queued = %d, want %d", s.Queued, n)
		}
		return nil
	}
}

// waitResyncs waits until the running Manager has begun n more resync
// passes: with n >= 2, at least one whole pass (and the round after it)
// has run since the call.
func (h *harness) waitResyncs(n int) {
	h.t.Helper()
	from := h.cs.lists.Load()
	apitest.Eventually(h.t, wait, func() error {
		if got := h.cs.lists.Load() - from; got < int64(n) {
			return fmt.Errorf("%d resync passes, want %d", got, n)
		}
		return nil
	})
}

// finish applies task statuses as discovery would (in order), then, when
// done is not empty, reports those tasks done to the jobmanager.
func (h *harness) finish(job string, statuses []taskState, done ...string) {
	h.t.Helper()
	_, err := h.st.UpdateJob(h.t.Context(), job, func(j *api.Job) error {
		for _, s := range statuses {
			st := api.TaskStatus{Job: job, Task: s.task, State: s.state, Time: now()}
			switch s.state {
			case api.Down:
				st.ExitCode = new(0)
			case api.Failed:
				st.ExitCode, st.Error = new(1), "exited with code 1"
			}
			if _, err := j.ApplyStatus(st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatalf("applying statuses to %s: %v", job, err)
	}
	if len(done) == 0 {
		return
	}
	j, err := h.st.GetJob(h.t.Context(), job)
	if err != nil {
		h.t.Fatalf("reading %s: %v", job, err)
	}
	ended := j.Status.Final()
	final := map[string]api.State{}
	for _, s := range statuses {
		final[s.task] = s.state
	}
	refs := make([]api.TaskRef, len(done))
	for i, task := range done {
		refs[i] = api.TaskRef{Job: job, Task: task, State: final[task], JobEnded: ended}
	}
	if err := h.m.TasksDone(h.t.Context(), refs); err != nil {
		h.t.Fatalf("TasksDone: %v", err)
	}
}

type taskState struct {
	task  string
	state api.State
}

// cancel cancels a job as the frontend does: the record first, then the jobmanager.
func (h *harness) cancel(name string) {
	h.t.Helper()
	_, err := h.st.UpdateJob(h.t.Context(), name, func(j *api.Job) error {
		j.Finish(api.Cancelled, "cancelled by user", now())
		return nil
	})
	if err != nil {
		h.t.Fatalf("cancelling %s in the store: %v", name, err)
	}
	if err := h.m.JobCancelled(h.t.Context(), name); err != nil {
		h.t.Fatalf("JobCancelled(%s): %v", name, err)
	}
}

// setWorkerStatus changes a worker's status in the store and tells the jobmanager.
func (h *harness) setWorkerStatus(id string, s api.WorkerStatus) {
	h.t.Helper()
	if _, err := h.st.UpdateWorker(h.t.Context(), id, func(w *api.Worker) error { w.Status = s; return nil }); err != nil {
		h.t.Fatalf("UpdateWorker(%s): %v", id, err)
	}
	if err := h.m.WorkersChanged(h.t.Context()); err != nil {
		h.t.Fatalf("WorkersChanged: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*jobmanager.Config)
		wantErr bool
	}{
		{"defaults", func(*jobmanager.Config) {}, false},
		{"every strategy by name", func(c *jobmanager.Config) { c.Strategy = placement.NoScheduler }, false},
		{"fifo policy", func(c *jobmanager.Config) { c.Policy = "fifo" }, false},
		{"empty policy means backfill", func(c *jobmanager.Config) { c.Policy = "" }, false},
		{"unknown strategy", func(c *jobmanager.Config) { c.Strategy = "worst-fit" }, true},
		{"unknown policy", func(c *jobmanager.Config) { c.Policy = "lifo" }, true},
		{"zero resync interval", func(c *jobmanager.Config) { c.ResyncInterval = 0 }, true},
		{"zero worker write interval", func(c *jobmanager.Config) { c.WorkerWrite = 0 }, true},
		{"zero dispatchers", func(c *jobmanager.Config) { c.Dispatchers = 0 }, true},
		{"negative dispatch timeout", func(c *jobmanager.Config) { c.DispatchTimeout = -time.Second }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := jobmanager.DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			// New refuses what Validate refuses.
			_, err = jobmanager.New(cfg, nil, nil)
			if (err != nil) != tt.wantErr {
				t.Errorf("New() error = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestJobSubmittedPlacesAndDispatchesOnce(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
		workers  []workerSpec
		// held is a running job ("old", one task) pinned to w1 at these
		// cores before the jobmanager starts; "" for none.
		held         string
		tasks, cores int
		want         map[string]string         // task -> node/cpuset
		wantBusy     map[string]map[int]string // worker -> core -> task
	}{
		{
			name: "two one-core tasks take the two lowest cores", strategy: placement.BestFit,
			workers: []workerSpec{{"w1", 4}}, tasks: 2, cores: 1,
			want:     map[string]string{"j_task1": "w1/0", "j_task2": "w1/1"},
			wantBusy: map[string]map[int]string{"w1": {0: "j_task1", 1: "j_task2"}},
		},
		{
			// w1 would keep 2 free, w2 none: best fit takes w2.
			name: "best fit takes the worker left with the fewest free cores", strategy: placement.BestFit,
			workers: []workerSpec{{"w1", 4}, {"w2", 2}}, tasks: 1, cores: 2,
			want:     map[string]string{"j_task1": "w2/0,1"},
			wantBusy: map[string]map[int]string{"w1": {}, "w2": {0: "j_task1", 1: "j_task1"}},
		},
		{
			name: "first fit takes the first worker with room", strategy: placement.FirstFit,
			workers: []workerSpec{{"w1", 4}, {"w2", 2}}, tasks: 1, cores: 2,
			want:     map[string]string{"j_task1": "w1/0,1"},
			wantBusy: map[string]map[int]string{"w1": {0: "j_task1", 1: "j_task1"}, "w2": {}},
		},
		{
			// Cores 0 and 2 are held: the lowest free are 1 and 3.
			name: "the lowest free cores around cores already held", strategy: placement.FirstFit,
			workers: []workerSpec{{"w1", 4}}, held: "0,2", tasks: 1, cores: 2,
			want:     map[string]string{"j_task1": "w1/1,3"},
			wantBusy: map[string]map[int]string{"w1": {0: "old_task1", 1: "j_task1", 2: "old_task1", 3: "j_task1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, tt.workers...)
			if tt.held != "" {
				createRunning(t, h.st, "old", "w1", tt.held)
			}
			h.run(func(c *jobmanager.Config) { c.Strategy = tt.strategy }, nil)
			h.submitNotify("j", tt.tasks, tt.cores)
			// A duplicate notification changes nothing.
			if err := h.m.JobSubmitted(t.Context(), "j"); err != nil {
				t.Fatal(err)
			}
			j := h.waitDeployed("j", tt.want)
			if j.Strategy != tt.strategy || j.WaitingReason != "" {
				t.Errorf("job strategy = %q, waiting_reason = %q; want %q and none", j.Strategy, j.WaitingReason, tt.strategy)
			}

			// Deploy got the placed job, and the store had it Scheduled by then.
			calls := h.d.calls()
			if len(calls) != 1 {
				t.Fatalf("Deploy called %d times, want 1", len(calls))
			}
			for what, dj := range map[string]*api.Job{"handed to Deploy": calls[0].job, "in the store at Deploy": calls[0].stored} {
				if dj == nil {
					t.Fatalf("job %s: nil", what)
				}
				if got := placements(dj); !maps.Equal(got, tt.want) {
					t.Errorf("job %s placed at %v, want %v", what, got, tt.want)
				}
				if dj.Strategy != tt.strategy || dj.Status != api.Ready {
					t.Errorf("job %s: status %v, strategy %q; want Ready, %q", what, dj.Status, dj.Strategy, tt.strategy)
				}
				for _, tk := range dj.Info.Tasks {
					if tk.Status != api.Scheduled {
						t.Errorf("job %s: task %s is %v, want Scheduled", what, tk.ContainerName, tk.Status)
					}
				}
			}

			// The worker records show the allocation after a WorkerWrite interval.
			for id, busy := range tt.wantBusy {
				h.waitWorker(id, busy)
			}

			// Notified again once deployed, and after whole resync passes,
			// it is still deployed exactly once.
			if err := h.m.JobSubmitted(t.Context(), "j"); err != nil {
				t.Fatal(err)
			}
			h.waitResyncs(3)
			h.stop()
			if got := h.d.deployed(); !slices.Equal(got, []string{"j"}) {
				t.Errorf("Deploy calls = %v, want [j]", got)
			}
			if s := h.m.Stats(); s.Placed != 1 || s.Queued != 0 || s.RoundGaps.Hist.Count == 0 {
				t.Errorf("stats placed %d queued %d, %d gaps between rounds; want 1, 0 and at least the round that placed j", s.Placed, s.Queued, s.RoundGaps.Hist.Count)
			}
		})
	}
}

// createRunning stores a running one-task job pinned to node at cpuset, as
// a previous jobmanager and the globalmanager would have left it.
func createRunning(t *testing.T, st *store.SQLite, name, node, cpuset string) {
	t.Helper()
	cores, err := api.ParseCpuset(cpuset)
	if err != nil {
		t.Fatal(err)
	}
	j := apitest.Job(name, 1, len(cores), "sleep 1")
	tk := j.Info.Tasks[0]
	tk.Node, tk.CpusetCpus, tk.Status, tk.StartTime = node, cpuset, api.Running, now()
	j.Status, j.SubmitTime, j.StartTime, j.Strategy = api.Running, now()-1, tk.StartTime, placement.BestFit
	if err := st.CreateJob(t.Context(), j); err != nil {
		t.Fatalf("CreateJob(%s): %v", name, err)
	}
}

func TestResyncPlacesJobNeverNotified(t *testing.T) {
	tests := []struct {
		name        string
		beforeStart bool
	}{
		{"stored before the jobmanager started", true},
		{"stored while it runs", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 2})
			if tt.beforeStart {
				h.submit("j", 1, 2)
				h.run(nil, nil)
			} else {
				h.run(nil, nil)
				h.waitResyncs(2)
				h.submit("j", 1, 2)
			}
			h.waitDeployed("j", map[string]string{"j_task1": "w1/0,1"})
			h.waitWorker("w1", map[int]string{0: "j_task1", 1: "j_task1"})
			h.waitResyncs(3)
			h.stop()
			if got := h.d.deployed(); !slices.Equal(got, []string{"j"}) {
				t.Errorf("Deploy calls = %v, want [j]", got)
			}
		})
	}
}

func TestWaitingJobPlacedWhenCoresFree(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		end    api.State // how the job ahead ends
	}{
		{"backfill, job ahead down", "backfill", api.Down},
		{"backfill, job ahead failed", "backfill", api.Failed},
		{"fifo, job ahead down", "fifo", api.Down},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 2})
			h.run(func(c *jobmanager.Config) { noResync(c); c.Policy = tt.policy }, nil)
			h.submitNotify("a", 1, 2)
			h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})

			h.submitNotify("b", 1, 2)
			b := h.waitWaiting("b")
			t.Logf("waiting_reason: %s", b.WaitingReason)
			h.waitStats(queued(1))
			if got := h.d.deployed(); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("Deploy calls = %v while b waits, want [a]", got)
			}

			h.finish("a", []taskState{{"a_task1", api.Running}, {"a_task1", tt.end}}, "a_task1")
			b = h.waitDeployed("b", map[string]string{"b_task1": "w1/0,1"})
			if b.WaitingReason != "" {
				t.Errorf("placed job keeps waiting_reason %q", b.WaitingReason)
			}
			h.waitWorker("w1", map[int]string{0: "b_task1", 1: "b_task1"})
			h.waitStats(func(s api.SchedulerStats) error {
				if s.Queued != 0 || s.Placed != 2 {
					return fmt.Errorf("queued %d placed %d, want 0 and 2", s.Queued, s.Placed)
				}
				return nil
			})
			if got := h.d.deployed(); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("Deploy calls = %v, want [a b]", got)
			}
		})
	}
}

// A definite answer fails the job; what delivered nothing for sure is
// retried (TestDeployRetriedWhileNothingDelivered).
func TestDeployErrorFailsJobAndFreesCores(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		fail    func(ctx context.Context) error // a's deployment
		wantErr string
	}{
		{
			name:    "deploy returns an error",
			timeout: wait,
			fail:    func(context.Context) error { return errors.New("worker w1 did not answer") },
			wantErr: "deploy: worker w1 did not answer",
		},
		{
			name:    "the globalmanager refuses the job",
			timeout: wait,
			fail:    func(context.Context) error { return api.Invalid("job_info.tasks.a_task1", "not placed") },
			wantErr: "deploy: job_info.tasks.a_task1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 2})
			st := h.st
			h.run(func(c *jobmanager.Config) { noResync(c); c.DispatchTimeout = tt.timeout }, func(ctx context.Context, j *api.Job) error {
				if j.Name == "a" {
					return tt.fail(ctx)
				}
				// b succeeds however short the dispatch timeout.
				return markDeployed(context.WithoutCancel(ctx), st, j.Name)
			})
			h.submit("a", 1, 2)
			h.submit("b", 1, 2)
			if err := h.m.JobSubmitted(t.Context(), "a", "b"); err != nil {
				t.Fatal(err)
			}

			a := h.waitJob("a", isStatus(api.Failed))
			// The job's error names the failed task (api.Job.Finish, then
			// Refresh): "task a_task1: deploy: ...".
			if !strings.Contains(a.Error, tt.wantErr) {
				t.Errorf("job error = %q, want it to hold %q", a.Error, tt.wantErr)
			}
			for _, tk := range a.Info.Tasks {
				if tk.Status != api.Failed || !strings.HasPrefix(tk.Error, tt.wantErr) {
					t.Errorf("task %s: %v, error %q; want Failed with an error starting %q", tk.ContainerName, tk.Status, tk.Error, tt.wantErr)
				}
			}

			// a's cores went to b, which waited behind it.
			h.waitDeployed("b", map[string]string{"b_task1": "w1/0,1"})
			h.waitWorker("w1", map[int]string{0: "b_task1", 1: "b_task1"})
			if got := h.d.deployed(); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("Deploy calls = %v, want [a b]", got)
			}
		})
	}
}

func TestJobCancelled(t *testing.T) {
	t.Run("a waiting job leaves the queue", func(t *testing.T) {
		h := setup(t, workerSpec{"w1", 2})
		h.run(nil, nil)
		h.submitNotify("a", 1, 2)
		h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
		h.submitNotify("b", 1, 2)
		h.waitWaiting("b")
		h.waitStats(queued(1))

		h.cancel("b")
		h.waitStats(queued(0))

		// a ends: its cores stay free, as b is gone.
		h.finish("a", []taskState{{"a_task1", api.Running}, {"a_task1", api.Down}}, "a_task1")
		h.waitWorker("w1", nil)
		h.waitResyncs(3)
		h.stop()
		if got := h.d.deployed(); !slices.Equal(got, []string{"a"}) {
			t.Errorf("Deploy calls = %v, want [a]", got)
		}
		if b := h.job("b"); b.Status != api.Cancelled {
			t.Errorf("b is %v, want Cancelled", b.Status)
		}
	})

	t.Run("a placed job's cores are free when it returns", func(t *testing.T) {
		h := setup(t, workerSpec{"w1", 2})
		h.run(nil, nil)
		h.submitNotify("a", 1, 2)
		h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
		h.waitWorker("w1", map[int]string{0: "a_task1", 1: "a_task1"})

		h.cancel("a")
		// No polling: JobCancelled returns once the records show the cores free.
		if err := h.checkWorker("w1", nil); err != nil {
			t.Errorf("right after JobCancelled: %v", err)
		}

		h.submitNotify("c", 1, 2)
		h.waitDeployed("c", map[string]string{"c_task1": "w1/0,1"})
	})
}

func TestSwitchStrategy(t *testing.T) {
	h := setup(t, workerSpec{"w1", 2})
	h.run(nil, nil) // best fit
	h.submitNotify("a", 1, 2)
	h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
	h.submitNotify("b", 1, 2)
	h.submitNotify("c", 1, 1)
	h.waitStats(func(s api.SchedulerStats) error {
		if s.Queued != 2 || s.Placed != 1 || s.Strategy != placement.BestFit || s.TotalCores != 2 || s.FreeCores != 0 {
			return fmt.Errorf("stats %+v, want 2 queued, 1 placed, best-fit, 0 of 2 cores free", s)
		}
		return nil
	})
	if info := h.m.Strategy(); info.Name != placement.BestFit || len(info.Strategies) != len(placement.Names()) {
		t.Errorf("Strategy() = %q with %d strategies, want %q with %d", info.Name, len(info.Strategies), placement.BestFit, len(placement.Names()))
	}

	tests := []struct {
		name    string
		to      string
		wantErr bool
		want    string // Strategy().Name afterwards
	}{
		{"unknown name is refused with the valid ones", "worst-fit", true, placement.BestFit},
		{"empty name is refused", "", true, placement.BestFit},
		{"first fit", placement.FirstFit, false, placement.FirstFit},
		{"priority", placement.Priority, false, placement.Priority},
		{"the original's typo is refused", "best-fir-decreasing", true, placement.Priority},
		{"back to first fit", placement.FirstFit, false, placement.FirstFit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.m.SwitchStrategy(t.Context(), tt.to)
			if tt.wantErr {
				if !errors.Is(err, api.ErrInvalid) {
					t.Fatalf("SwitchStrategy(%q) = %v, want an error that is api.ErrInvalid", tt.to, err)
				}
				for _, n := range placement.Names() {
					if !strings.Contains(err.Error(), n) {
						t.Errorf("error %q does not list %q", err, n)
					}
				}
			} else if err != nil {
				t.Fatalf("SwitchStrategy(%q) = %v", tt.to, err)
			}
			if got := h.m.Strategy().Name; got != tt.want {
				t.Errorf("Strategy().Name = %q, want %q", got, tt.want)
			}
			// Every queued job stays queued.
			h.waitStats(func(s api.SchedulerStats) error {
				if s.Queued != 2 || s.Placed != 1 || s.Strategy != tt.want {
					return fmt.Errorf("stats queued %d placed %d strategy %q, want 2, 1, %q", s.Queued, s.Placed, s.Strategy, tt.want)
				}
				return nil
			})
		})
	}

	// When a's cores free, b (first in line) is placed by the new strategy.
	h.finish("a", []taskState{{"a_task1", api.Running}, {"a_task1", api.Down}}, "a_task1")
	b := h.waitDeployed("b", map[string]string{"b_task1": "w1/0,1"})
	if b.Strategy != placement.FirstFit {
		t.Errorf("b placed by %q, want %q", b.Strategy, placement.FirstFit)
	}
	h.waitWaiting("c")
	h.waitStats(func(s api.SchedulerStats) error {
		if s.Queued != 1 || s.Placed != 2 || s.Rounds < 2 || s.RoundSeconds.Count != s.Rounds || s.PlacementDelay.Count != 2 {
			return fmt.Errorf("stats %+v, want 1 queued, 2 placed, a round time per round and a delay per placement", s)
		}
		return nil
	})
}

func TestGangFailureStopsTheRest(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []taskState
		done      []string
		wantBusy  map[int]string
		wantStops []stopCall
	}{
		{
			name:      "a failed task while the other runs stops the job",
			statuses:  []taskState{{"a_task1", api.Failed}},
			done:      []string{"a_task1"},
			wantBusy:  map[int]string{1: "a_task2"},
			wantStops: []stopCall{{"a", "stopped because task a_task1 failed"}},
		},
		{
			name:     "a task down while the other runs stops nothing",
			statuses: []taskState{{"a_task1", api.Down}},
			done:     []string{"a_task1"},
			wantBusy: map[int]string{1: "a_task2"},
		},
		{
			// The job is final: there is nothing left to stop.
			name:     "the last task failing stops nothing",
			statuses: []taskState{{"a_task1", api.Down}, {"a_task2", api.Failed}},
			done:     []string{"a_task1", "a_task2"},
			wantBusy: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 4})
			h.run(noResync, nil)
			h.submitNotify("a", 2, 1)
			h.waitDeployed("a", map[string]string{"a_task1": "w1/0", "a_task2": "w1/1"})
			h.finish("a", append([]taskState{{"a_task1", api.Running}, {"a_task2", api.Running}}, tt.statuses...), tt.done...)
			// The cores freed in the same step as the gang check.
			h.waitWorker("w1", tt.wantBusy)
			h.stop() // joins every Stop started
			if got := h.d.stopCalls(); !slices.Equal(got, tt.wantStops) {
				t.Errorf("Stop calls = %v, want %v", got, tt.wantStops)
			}
		})
	}
}

func TestRecoveryKeepsAllocations(t *testing.T) {
	tests := []struct {
		name string
		// prepare leaves the store as a jobmanager that stopped would; the
		// job it leaves ends up on w1's cores 0 and 1.
		prepare     func(t *testing.T, h *harness)
		holder      string   // the task holding cores 0 and 1 afterwards
		wantDeploys []string // by the second jobmanager
	}{
		{
			name:        "a running job recorded before the start",
			prepare:     func(t *testing.T, h *harness) { createRunning(t, h.st, "old", "w1", "0,1") },
			holder:      "old_task1",
			wantDeploys: []string{"b"},
		},
		{
			name: "a job placed and deployed by a previous jobmanager",
			prepare: func(t *testing.T, h *harness) {
				h.run(nil, nil)
				h.submitNotify("a", 1, 2)
				h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
				h.finish("a", []taskState{{"a_task1", api.Running}})
				h.stop()
			},
			holder:      "a_task1",
			wantDeploys: []string{"b"},
		},
		{
			// Its Deploy never returned: the new jobmanager places it again.
			name: "a job placed but not deployed by a previous jobmanager",
			prepare: func(t *testing.T, h *harness) {
				h.run(nil, func(ctx context.Context, _ *api.Job) error { <-ctx.Done(); return ctx.Err() })
				h.submitNotify("a", 1, 2)
				apitest.Eventually(t, wait, func() error {
					if len(h.d.calls()) != 1 {
						return errors.New("a not handed to Deploy yet")
					}
					return nil
				})
				h.stop()
				a := h.job("a")
				if a.Status != api.Ready || a.Info.Tasks[0].Status != api.Scheduled {
					t.Fatalf("a is %v with its task %v, want Ready and Scheduled", a.Status, a.Info.Tasks[0].Status)
				}
			},
			holder:      "a_task1",
			wantDeploys: []string{"a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 4})
			tt.prepare(t, h)

			h.run(nil, nil)
			h.waitResyncs(2) // the recovery pass is over
			h.submitNotify("b", 1, 2)
			h.waitDeployed("b", map[string]string{"b_task1": "w1/2,3"})
			h.submitNotify("c", 1, 1)
			h.waitWaiting("c")
			h.waitWorker("w1", map[int]string{0: tt.holder, 1: tt.holder, 2: "b_task1", 3: "b_task1"})
			if got := h.d.deployed(); !slices.Equal(got, tt.wantDeploys) {
				t.Errorf("Deploy calls = %v, want %v", got, tt.wantDeploys)
			}
		})
	}
}

func TestMoves(t *testing.T) {
	h := setup(t, workerSpec{"w1", 4}, workerSpec{"w2", 4})
	h.run(nil, nil)
	// a fills w1; b takes w2's core 0.
	h.submitNotify("a", 2, 2)
	h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1", "a_task2": "w1/2,3"})
	h.submitNotify("b", 1, 1)
	h.waitDeployed("b", map[string]string{"b_task1": "w2/0"})
	ctx := t.Context()

	steps := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"reserve holds the lowest free cores of another worker", func(t *testing.T) {
			cores, err := h.m.Reserve(ctx, api.Reservation{Task: "a_task1", Node: "w2", Cores: 2, Mem: mem16m})
			if err != nil || !slices.Equal(cores, []int{1, 2}) {
				t.Fatalf("Reserve = %v, %v; want [1 2]", cores, err)
			}
			h.waitWorker("w2", map[int]string{0: "b_task1", 1: "a_task1#moving", 2: "a_task1#moving"})
			h.waitWorker("w1", map[int]string{0: "a_task1", 1: "a_task1", 2: "a_task2", 3: "a_task2"})
		}},
		{"a second reservation that does not fit is a conflict", func(t *testing.T) {
			cores, err := h.m.Reserve(ctx, api.Reservation{Task: "a_task2", Node: "w2", Cores: 2, Mem: mem16m})
			if !errors.Is(err, api.ErrConflict) {
				t.Fatalf("Reserve = %v, %v; want api.ErrConflict", cores, err)
			}
		}},
		{"reserving named cores that are held is a conflict", func(t *testing.T) {
			_, err := h.m.Reserve(ctx, api.Reservation{Task: "a_task2", Node: "w2", Cores: 1, Cpuset: []int{2}, Mem: mem16m})
			if !errors.Is(err, api.ErrConflict) {
				t.Fatalf("Reserve(core 2) = %v, want api.ErrConflict", err)
			}
		}},
		{"reserving on an unknown node is not found", func(t *testing.T) {
			_, err := h.m.Reserve(ctx, api.Reservation{Task: "a_task2", Node: "w9", Cores: 1})
			if !errors.Is(err, api.ErrNotFound) {
				t.Fatalf("Reserve(w9) = %v, want api.ErrNotFound", err)
			}
		}},
		{"commit frees the old cores and keeps the new", func(t *testing.T) {
			if err := h.m.Commit(ctx, api.Reservation{Job: "a", Task: "a_task1", Node: "w2", Cores: 2, Mem: mem16m}); err != nil {
				t.Fatalf("Commit = %v", err)
			}
			// Commit writes the records before it returns: the workers'
			// allocations, and where the task runs (the globalmanager does not).
			if err := h.checkWorker("w1", map[int]string{2: "a_task2", 3: "a_task2"}); err != nil {
				t.Error(err)
			}
			if err := h.checkWorker("w2", map[int]string{0: "b_task1", 1: "a_task1", 2: "a_task1"}); err != nil {
				t.Error(err)
			}
			if got := placements(h.job("a")); !maps.Equal(got, map[string]string{"a_task1": "w2/1,2", "a_task2": "w1/2,3"}) {
				t.Errorf("job a's record says %v after the commit", got)
			}
		}},
		{"commit without a reservation is not found", func(t *testing.T) {
			err := h.m.Commit(ctx, api.Reservation{Task: "a_task2", Node: "w2", Cores: 2, Mem: mem16m})
			if !errors.Is(err, api.ErrNotFound) {
				t.Fatalf("Commit = %v, want api.ErrNotFound", err)
			}
		}},
		{"abort frees the reservation", func(t *testing.T) {
			cores, err := h.m.Reserve(ctx, api.Reservation{Task: "a_task2", Node: "w2", Cores: 1, Cpuset: []int{3}, Mem: mem16m})
			if err != nil || !slices.Equal(cores, []int{3}) {
				t.Fatalf("Reserve(core 3) = %v, %v; want [3]", cores, err)
			}
			h.waitWorker("w2", map[int]string{0: "b_task1", 1: "a_task1", 2: "a_task1", 3: "a_task2#moving"})
			if err := h.m.Abort(ctx, "a_task2"); err != nil {
				t.Fatalf("Abort = %v", err)
			}
			h.waitWorker("w2", map[int]string{0: "b_task1", 1: "a_task1", 2: "a_task1"})
			// Core 3 can be held again, and a_task2 keeps its cores on w1.
			if cores, err := h.m.Reserve(ctx, api.Reservation{Task: "b_task1", Node: "w2", Cores: 1}); err != nil || !slices.Equal(cores, []int{3}) {
				t.Fatalf("Reserve after Abort = %v, %v; want [3]", cores, err)
			}
			if err := h.m.Abort(ctx, "b_task1"); err != nil {
				t.Fatalf("Abort = %v", err)
			}
			h.waitWorker("w1", map[int]string{2: "a_task2", 3: "a_task2"})
		}},
		{"reallocate to free cores", func(t *testing.T) {
			err := h.m.Reallocate(ctx, api.Reservation{Task: "a_task2", Node: "w1", Cores: 2, Cpuset: []int{0, 1}, Mem: mem16m, PrevMem: mem16m})
			if err != nil {
				t.Fatalf("Reallocate = %v", err)
			}
			if err := h.checkWorker("w1", map[int]string{0: "a_task2", 1: "a_task2"}); err != nil {
				t.Error(err)
			}
		}},
		{"a resize applied is written to the task's record, only with the cores it holds", func(t *testing.T) {
			err := h.m.Resized(ctx, api.Reservation{Job: "a", Task: "a_task2", Node: "w1", Cpuset: []int{2, 3}, MemLimit: "32m"})
			if !errors.Is(err, api.ErrConflict) {
				t.Fatalf("Resized(cores it no longer holds) = %v, want api.ErrConflict", err)
			}
			if err := h.m.Resized(ctx, api.Reservation{Job: "a", Task: "a_task2", Node: "w1", Cpuset: []int{0, 1}, MemLimit: "32m"}); err != nil {
				t.Fatalf("Resized = %v", err)
			}
			tk := h.job("a").Info.Tasks.Get("a_task2")
			if tk.Node != "w1" || tk.CpusetCpus != "0,1" || tk.ReqCores != 2 || tk.MemLimit != "32m" {
				t.Errorf("a_task2's record after the resize: %s cores %q (%d) mem %q", tk.Node, tk.CpusetCpus, tk.ReqCores, tk.MemLimit)
			}
		}},
		{"reallocate onto held cores is a conflict and keeps the old cores", func(t *testing.T) {
			err := h.m.Reallocate(ctx, api.Reservation{Task: "b_task1", Node: "w2", Cores: 2, Cpuset: []int{0, 1}, Mem: mem16m, PrevMem: mem16m})
			if !errors.Is(err, api.ErrConflict) {
				t.Fatalf("Reallocate = %v, want api.ErrConflict", err)
			}
			// b_task1 still holds core 0: reserving it is refused.
			if _, err := h.m.Reserve(ctx, api.Reservation{Task: "x_task1", Node: "w2", Cores: 1, Cpuset: []int{0}}); !errors.Is(err, api.ErrConflict) {
				t.Errorf("Reserve(w2 core 0) = %v, want api.ErrConflict (b_task1 holds it)", err)
			}
			h.waitResyncs(2)
			if err := h.checkWorker("w2", map[int]string{0: "b_task1", 1: "a_task1", 2: "a_task1"}); err != nil {
				t.Error(err)
			}
		}},
		{"new jobs get the cores the moves freed", func(t *testing.T) {
			// w1: 2 and 3 free; w2: 3 free. Best fit puts 2 cores on w1, 1 on w2.
			h.submitNotify("c", 1, 2)
			h.waitDeployed("c", map[string]string{"c_task1": "w1/2,3"})
			h.submitNotify("d", 1, 1)
			h.waitDeployed("d", map[string]string{"d_task1": "w2/3"})
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.do) {
			break // the later steps build on this one
		}
	}
}

func TestWorkerStatusChanges(t *testing.T) {
	tests := []struct {
		name   string
		status api.WorkerStatus
		// wantReserve is what a reservation on w1 gets once it changed.
		wantReserve error
		comesBack   bool // set back to ready, it takes tasks again
	}{
		{"drained worker gets no new tasks", api.WorkerDrained, api.ErrUnavailable, true},
		{"down worker gets no new tasks", api.WorkerDown, api.ErrUnavailable, true},
		{"left worker is removed", api.WorkerLeft, api.ErrNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two equal workers: without the change, ties go to w1.
			h := setup(t, workerSpec{"w1", 2}, workerSpec{"w2", 2})
			h.run(nil, nil)
			h.waitStats(func(s api.SchedulerStats) error {
				if s.TotalCores != 4 {
					return fmt.Errorf("total cores %d, want 4", s.TotalCores)
				}
				return nil
			})
			h.setWorkerStatus("w1", tt.status)
			h.waitStats(func(s api.SchedulerStats) error {
				if s.TotalCores != 2 || s.FreeCores != 2 {
					return fmt.Errorf("free %d of %d cores up, want 2 of 2", s.FreeCores, s.TotalCores)
				}
				return nil
			})
			if _, err := h.m.Reserve(t.Context(), api.Reservation{Task: "x_task1", Node: "w1", Cores: 1}); !errors.Is(err, tt.wantReserve) {
				t.Errorf("Reserve on w1 = %v, want %v", err, tt.wantReserve)
			}

			h.submitNotify("a", 1, 2)
			h.waitDeployed("a", map[string]string{"a_task1": "w2/0,1"})
			h.submitNotify("b", 1, 1)
			h.waitWaiting("b")

			if !tt.comesBack {
				h.waitResyncs(3)
				if got := h.d.deployed(); !slices.Equal(got, []string{"a"}) {
					t.Errorf("Deploy calls = %v, want [a]", got)
				}
				return
			}
			h.setWorkerStatus("w1", api.WorkerReady)
			h.waitDeployed("b", map[string]string{"b_task1": "w1/0"})
		})
	}
}

// A worker that leaves takes its allocations with it: its cores no longer
// count, and new jobs go to the workers that remain.
func TestLeftWorkerLosesItsAllocations(t *testing.T) {
	h := setup(t, workerSpec{"w1", 2}, workerSpec{"w2", 2})
	h.run(nil, nil)
	h.submitNotify("a", 1, 2)
	h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
	h.setWorkerStatus("w1", api.WorkerLeft)
	h.waitStats(func(s api.SchedulerStats) error {
		if s.TotalCores != 2 || s.FreeCores != 2 {
			return fmt.Errorf("free %d of %d cores up, want 2 of 2", s.FreeCores, s.TotalCores)
		}
		return nil
	})
	h.submitNotify("b", 1, 2)
	h.waitDeployed("b", map[string]string{"b_task1": "w2/0,1"})
	h.submitNotify("c", 1, 1)
	h.waitWaiting("c")
}

// A registration the jobmanager cannot take (a smaller size that would drop
// cores a task holds) is refused with a conflict, and the worker keeps its
// size and allocation; many registrations at once are all answered, their
// allocations written.
func TestWorkerRegistered(t *testing.T) {
	h := setup(t, workerSpec{"w1", 4})
	h.run(nil, nil)
	h.submitNotify("a", 1, 2)
	h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
	ctx := t.Context()
	if err := h.m.WorkerRegistered(ctx, api.WorkerSize{Worker: "w1", Cores: 1, MemTotal: 1 << 30}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("shrinking w1 below a_task1's cores = %v, want api.ErrConflict", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		id := fmt.Sprintf("n%02d", i)
		if err := h.st.PutWorker(ctx, &api.Worker{ID: id, Cores: 2, MemTotal: 1 << 30, Status: api.WorkerReady, JoinTime: float64(10 + i)}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.m.WorkerRegistered(ctx, api.WorkerSize{Worker: id, Cores: 2, MemTotal: 1 << 30})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("registering n%02d: %v", i, err)
		}
		if err := h.checkWorker(fmt.Sprintf("n%02d", i), nil); err != nil {
			t.Error(err)
		}
	}
	// The new workers are placed on: 10 two-core jobs beside a.
	for i := range 10 {
		h.submitNotify(fmt.Sprintf("b%d", i), 1, 2)
	}
	for i := range 10 {
		h.waitJob(fmt.Sprintf("b%d", i), isStatus(api.Deployed))
	}
}

// Unplace (a drain that could not move a task) frees the job's cores,
// resets its record to Ready with its placements forgotten and the note
// added, and queues it: it is placed again, elsewhere.
func TestUnplace(t *testing.T) {
	h := setup(t, workerSpec{"w1", 2}, workerSpec{"w2", 2})
	h.run(nil, nil)
	h.submitNotify("a", 1, 2)
	h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
	ctx := t.Context()
	h.setWorkerStatus("w1", api.WorkerDrained)
	h.waitStats(func(s api.SchedulerStats) error {
		if s.TotalCores != 2 {
			return fmt.Errorf("%d cores up, want 2 (w1 drained)", s.TotalCores)
		}
		return nil
	})
	if err := h.m.Unplace(ctx, api.Unplace{Job: "a", Tasks: []string{"a_task1"}, Note: "requeued: w1 drained"}); err != nil {
		t.Fatalf("Unplace = %v", err)
	}
	j := h.waitDeployed("a", map[string]string{"a_task1": "w2/0,1"})
	if !slices.Contains(j.Notes, "requeued: w1 drained") {
		t.Errorf("notes %q", j.Notes)
	}
	h.waitWorker("w1", nil)
	// A job that ended is left alone.
	h.cancel("a")
	if err := h.m.Unplace(ctx, api.Unplace{Job: "a", Tasks: []string{"a_task1"}}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("Unplace(cancelled job) = %v, want api.ErrConflict", err)
	}
	if j := h.job("a"); j.Status != api.Cancelled {
		t.Errorf("cancelled job is %v after Unplace", j.Status)
	}
}

// waitDecided waits until a round has decided about a job: it is placed
// (its tasks left Ready) or it waits with a reason. Either way the test
// then checks which, without waiting out a deadline when it is the wrong one.
func (h *harness) waitDecided(name string) *api.Job {
	h.t.Helper()
	return h.waitJob(name, func(j *api.Job) error {
		if j.Info.Tasks[0].Status == api.Ready && j.WaitingReason == "" {
			return errors.New("not decided yet")
		}
		return nil
	})
}

// A cancellation whose notification is lost (the frontend then logs "its
// resync will free the cores" and carries on) must not leave the job in
// the queue: the resync has to drop a queued job whose record is no longer
// Ready, or it is counted as queued and, under fifo, holds every job after
// it until the cores it wants are free.
func TestResyncDropsQueuedJobNoLongerReady(t *testing.T) {
	for _, policy := range []string{"fifo", "backfill"} {
		t.Run(policy, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 2})
			h.run(func(c *jobmanager.Config) { c.Policy = policy }, nil)
			h.submitNotify("a", 1, 1)
			h.waitDeployed("a", map[string]string{"a_task1": "w1/0"})
			h.submitNotify("b", 1, 2)
			h.waitWaiting("b")
			// Cancelled in the store; the JobCancelled notification is lost.
			if _, err := h.st.UpdateJob(t.Context(), "b", func(j *api.Job) error {
				j.Finish(api.Cancelled, "cancelled by user", now())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			h.waitResyncs(3)

			h.submitNotify("c", 1, 1)
			c := h.waitDecided("c")
			if got, want := placements(c), map[string]string{"c_task1": "w1/1"}; !maps.Equal(got, want) {
				t.Errorf("c placed at %v (waiting_reason %q), want %v", got, c.WaitingReason, want)
			}
			if s := h.m.Stats(); s.Queued != 0 {
				t.Errorf("stats queued = %d, want 0 (b was cancelled)", s.Queued)
			}
		})
	}
}

// A worker that registers again with another size (the globalmanager
// rewrites cores and mem_total in its record, then sends WorkersChanged)
// must be resized in the jobmanager's view.
func TestWorkerReRegisteredWithAnotherSize(t *testing.T) {
	tests := []struct {
		name  string
		cores int
		want  map[string]string // b's placement; nil: b waits
	}{
		{"grown from 2 to 4 cores: the new cores are used", 4, map[string]string{"b_task1": "w1/2,3"}},
		{"shrunk from 4 to 2 cores: the cores gone are not used", 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 6 - tt.cores})
			h.run(nil, nil)
			h.submitNotify("a", 1, 2)
			h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
			// As the globalmanager's registration does: its part of the
			// record (the size as reported), then it asks the jobmanager,
			// which writes the allocation before it answers.
			if _, err := h.st.UpdateWorker(t.Context(), "w1", func(w *api.Worker) error {
				w.Cores = tt.cores
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := h.m.WorkerRegistered(t.Context(), api.WorkerSize{Worker: "w1", Cores: tt.cores, MemTotal: 1 << 30}); err != nil {
				t.Fatal(err)
			}
			if err := h.checkWorker("w1", map[int]string{0: "a_task1", 1: "a_task1"}); err != nil {
				t.Error(err)
			}

			h.submitNotify("b", 1, 2)
			b := h.waitDecided("b")
			if tt.want == nil {
				if b.Info.Tasks[0].Status != api.Ready {
					t.Errorf("b placed at %v on a worker that has 2 cores, both held; want it waiting", placements(b))
				}
				return
			}
			if got := placements(b); !maps.Equal(got, tt.want) {
				t.Errorf("b placed at %v (waiting_reason %q), want %v", got, b.WaitingReason, tt.want)
			}
		})
	}
}

// Tasks that end without the tasks_done notification (lost) give their
// cores back at a later resync pass, which reads the change feed: the pass
// after the first reads only what was written since, and still catches it.
func TestResyncFreesCoresOfTasksThatEndedUnannounced(t *testing.T) {
	tests := []struct {
		name     string
		statuses []taskState
		wantBusy map[int]string
	}{
		{name: "the whole job ended", statuses: []taskState{{"a_task1", api.Down}, {"a_task2", api.Down}}},
		{name: "one task of two ended", statuses: []taskState{{"a_task1", api.Down}}, wantBusy: map[int]string{1: "a_task2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 2})
			h.run(nil, nil)
			h.submitNotify("a", 2, 1)
			h.waitDeployed("a", map[string]string{"a_task1": "w1/0", "a_task2": "w1/1"})
			h.waitResyncs(2) // past the first, full pass
			h.finish("a", append([]taskState{{"a_task1", api.Running}, {"a_task2", api.Running}}, tt.statuses...))
			h.waitWorker("w1", tt.wantBusy)
		})
	}
}

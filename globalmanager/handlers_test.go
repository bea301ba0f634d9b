package globalmanager_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/bus"
	"github.com/rswarm/rswarm/globalmanager"
	"github.com/rswarm/rswarm/store"
)

// Handler tests: every route of Manager.Router, driven through
// net/http/httptest, over the real SQLite store and hand-written fakes of
// the Docker Swarm, the workers' bus and the jobmanager, which record
// their calls in one shared, ordered log.

// fakeSwarm is the manager's Docker Engine.
type fakeSwarm struct {
	rec *apitest.Recorder

	mu        sync.Mutex
	initID    string
	initErr   error
	nodesErr  error
	netErr    error
	removeErr error
	// nodes answers the n-th call (from 1) of Nodes.
	nodes     func(n int) []api.SwarmNode
	nodeCalls int
	// nets are the engine's networks, listed by label as the engine does.
	nets []api.NetworkInfo
}

func (f *fakeSwarm) SwarmInit(_ context.Context, advertise, listen string) (string, error) {
	f.rec.Add("swarm.SwarmInit(%s, %s)", advertise, listen)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.initID, f.initErr
}

func (f *fakeSwarm) JoinToken(context.Context) (string, string, error) {
	return "SWMTKN-1-test", "127.0.0.1:2377", nil
}

func (f *fakeSwarm) Nodes(context.Context) ([]api.SwarmNode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodeCalls++
	if f.nodesErr != nil {
		return nil, f.nodesErr
	}
	if f.nodes == nil {
		return nil, nil
	}
	return f.nodes(f.nodeCalls), nil
}

func (f *fakeSwarm) Node(ctx context.Context, id string) (api.SwarmNode, json.RawMessage, error) {
	f.mu.Lock()
	nodes, err := f.nodes, f.nodesErr
	f.mu.Unlock()
	if err != nil {
		return api.SwarmNode{}, nil, err
	}
	if nodes != nil {
		for _, n := range nodes(1) {
			if n.ID == id || n.Hostname == id {
				return n, n.Raw, nil
			}
		}
	}
	return api.SwarmNode{}, nil, fmt.Errorf("fake swarm: inspect node %s: %w", id, api.ErrNotFound)
}

func (f *fakeSwarm) RemoveNode(_ context.Context, id string, force bool) error {
	f.rec.Add("swarm.RemoveNode(%s, %v)", id, force)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.removeErr
}

func (f *fakeSwarm) CreateNetwork(_ context.Context, name, subnet string, labels map[string]string) (api.NetworkInfo, error) {
	f.rec.Add("swarm.CreateNetwork(%s, %s, job=%s)", name, subnet, labels[api.LabelJob])
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.NetworkInfo{ID: "net-" + name, Name: name, Driver: "overlay", Subnet: subnet, Labels: labels}, f.netErr
}

func (f *fakeSwarm) Networks(_ context.Context, labels map[string]string) ([]api.NetworkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.NetworkInfo
next:
	for _, n := range f.nets {
		for k, v := range labels {
			if n.Labels[k] != v {
				continue next
			}
		}
		out = append(out, n)
	}
	return out, nil
}

func (f *fakeSwarm) RemoveNetwork(_ context.Context, name string) error {
	f.rec.Add("swarm.RemoveNetwork(%s)", name)
	return nil
}

func (f *fakeSwarm) set(fn func(*fakeSwarm)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// wcall is one request a worker received.
type wcall struct {
	to, kind string
	body     any
}

// fakeWorkers is the bus to the workers: Request records (to, kind, body)
// and answers from answer (nil answers every request with no error).
type fakeWorkers struct {
	rec *apitest.Recorder

	mu     sync.Mutex
	calls  []wcall
	answer func(ctx context.Context, to, kind string, body any) (any, error)
}

// taskOf names the task a worker command is about.
func taskOf(body any) string {
	switch b := body.(type) {
	case api.RunTask:
		return b.Task.ContainerName
	case api.StopTask:
		return b.Task
	case api.TaskLogs:
		return b.Task
	case api.Checkpoint:
		return b.Task
	case api.UpdateTask:
		return b.Task
	case api.ReceiveTask:
		return b.Task.ContainerName
	case api.SendTask:
		return b.Task
	}
	return ""
}

func (f *fakeWorkers) Request(ctx context.Context, to, kind string, body, reply any) error {
	f.rec.Add("worker %s %s %s", to, kind, taskOf(body))
	f.mu.Lock()
	f.calls = append(f.calls, wcall{to, kind, body})
	answer := f.answer
	f.mu.Unlock()
	if answer == nil {
		return nil
	}
	v, err := answer(ctx, to, kind, body)
	if err != nil || reply == nil || v == nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, reply)
}

func (f *fakeWorkers) sent() []wcall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeNotifier is the jobmanager. Like the jobmanager, it writes what
// only the jobmanager writes (a worker's allocation, a task's node and
// cpuset_cpus) when the globalmanager asks, on the raw store st.
type fakeNotifier struct {
	rec *apitest.Recorder
	st  *store.SQLite

	mu         sync.Mutex
	reserve    []int
	reserveErr error
	commitErr  error
	// reallocate answers the n-th call (from 1) of Reallocate.
	reallocate   func(n int, r api.Reservation) error
	reallocCalls int
	reserved     map[string][]int // task -> the cores Reserve gave it
	registerErr  error            // WorkerRegistered's answer, when set
	// The first commitFails commits do not get through (unreachable); with
	// commitLost, they are carried out and only their answers are lost.
	commitFails int
	commitLost  bool
	commits     int
}

func (f *fakeNotifier) WorkersChanged(context.Context) error {
	f.rec.Add("nt.WorkersChanged")
	return nil
}

func (f *fakeNotifier) JobSubmitted(_ context.Context, names ...string) error {
	f.rec.Add("nt.JobSubmitted(%s)", strings.Join(names, ","))
	return nil
}

func (f *fakeNotifier) TasksDone(_ context.Context, tasks []api.TaskRef) error {
	var s []string
	for _, t := range tasks {
		s = append(s, t.Job+"/"+t.Task+"@"+t.Node)
	}
	f.rec.Add("nt.TasksDone(%s)", strings.Join(s, ","))
	return nil
}

func (f *fakeNotifier) Reserve(_ context.Context, r api.Reservation) ([]int, error) {
	f.rec.Add("nt.Reserve(%s@%s cores=%d mem=%d)", r.Task, r.Node, r.Cores, r.Mem)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reserveErr != nil {
		return nil, f.reserveErr
	}
	if f.reserved == nil {
		f.reserved = map[string][]int{}
	}
	f.reserved[r.Task] = f.reserve
	return f.reserve, nil
}

func (f *fakeNotifier) Commit(ctx context.Context, r api.Reservation) error {
	f.rec.Add("nt.Commit(%s@%s)", r.Task, r.Node)
	f.mu.Lock()
	cores, held := f.reserved[r.Task]
	err, n, fails, lost := f.commitErr, f.commits, f.commitFails, f.commitLost
	f.commits++
	f.mu.Unlock()
	switch {
	case err != nil:
		return err
	case n < fails && !lost:
		return unreachableNow()
	case !held:
		return &api.FieldError{Kind: api.ErrConflict, Reason: fmt.Sprintf("task %s has no cores reserved: not found", r.Task)}
	case r.Job == "":
		return api.Invalid("job", "a commit names the task's job, whose record the jobmanager writes")
	}
	if err := f.writeTask(ctx, r.Job, r.Task, func(t *api.Task) { t.Node, t.CpusetCpus = r.Node, api.FormatCpuset(cores) }); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.reserved, r.Task)
	f.mu.Unlock()
	if n < fails {
		return unreachableNow()
	}
	return nil
}

func (f *fakeNotifier) writeTask(ctx context.Context, job, task string, fn func(*api.Task)) error {
	_, err := f.st.UpdateJob(ctx, job, func(j *api.Job) error {
		t := j.Info.Tasks.Get(task)
		if t == nil {
			return fmt.Errorf("job %s has no task %s: %w", job, task, api.ErrNotFound)
		}
		fn(t)
		return nil
	})
	return err
}

func (f *fakeNotifier) WorkerRegistered(ctx context.Context, s api.WorkerSize) error {
	f.rec.Add("nt.WorkerRegistered(%s cores=%d mem=%d)", s.Worker, s.Cores, s.MemTotal)
	f.mu.Lock()
	err := f.registerErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = f.st.UpdateWorker(ctx, s.Worker, func(w *api.Worker) error {
		busy := map[int]string{}
		for _, c := range w.BusyCores() {
			if c < s.Cores {
				busy[c] = w.CoreTasks[strconv.Itoa(c)]
			}
		}
		w.SetAllocation(busy, w.MemAllocated)
		return nil
	})
	return err
}

func (f *fakeNotifier) Resized(ctx context.Context, r api.Reservation) error {
	f.rec.Add("nt.Resized(%s/%s@%s cpuset=%v mem_limit=%s)", r.Job, r.Task, r.Node, r.Cpuset, r.MemLimit)
	return f.writeTask(ctx, r.Job, r.Task, func(t *api.Task) {
		t.CpusetCpus, t.ReqCores, t.MemLimit = api.FormatCpuset(r.Cpuset), len(r.Cpuset), r.MemLimit
	})
}

func (f *fakeNotifier) Unplace(ctx context.Context, u api.Unplace) error {
	f.rec.Add("nt.Unplace(%s %s)", u.Job, strings.Join(u.Tasks, ","))
	_, err := f.st.UpdateJob(ctx, u.Job, func(j *api.Job) error {
		if j.Status.Final() {
			return &api.FieldError{Field: "job", Kind: api.ErrConflict, Reason: fmt.Sprintf("job %s has ended (%s)", j.Name, j.Status)}
		}
		j.Status, j.StartTime = api.Ready, 0
		j.Notes = append(j.Notes, u.Note)
		for _, t := range j.Info.Tasks {
			t.Status, t.StartTime, t.EndTime, t.ExitCode, t.Error = api.Ready, 0, 0, nil, ""
			if j.Strategy != "no-scheduler" {
				t.Node, t.CpusetCpus = "", ""
			}
		}
		return nil
	})
	return err
}

func (f *fakeNotifier) Abort(_ context.Context, task string) error {
	f.rec.Add("nt.Abort(%s)", task)
	return nil
}

func (f *fakeNotifier) Reallocate(_ context.Context, r api.Reservation) error {
	f.rec.Add("nt.Reallocate(%s@%s cpuset=%v mem=%d prev=%d)", r.Task, r.Node, r.Cpuset, r.Mem, r.PrevMem)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reallocCalls++
	if f.reallocate == nil {
		return nil
	}
	return f.reallocate(f.reallocCalls, r)
}

// gmEnv is one globalmanager over a fresh store.
type gmEnv struct {
	st  *store.SQLite
	sw  *fakeSwarm
	ws  *fakeWorkers
	nt  *fakeNotifier
	rec *apitest.Recorder
	m   *globalmanager.Manager
	h   http.Handler
}

func newGM(t *testing.T, cfgFn func(*globalmanager.Config), mw ...gin.HandlerFunc) *gmEnv {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &apitest.Recorder{}
	e := &gmEnv{st: st, rec: rec, sw: &fakeSwarm{rec: rec, initID: "mgr"}, ws: &fakeWorkers{rec: rec}, nt: &fakeNotifier{rec: rec, st: st}}
	cfg := globalmanager.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.CommandTimeout = 5 * time.Second
	cfg.JoinTimeout = 5 * time.Second
	if cfgFn != nil {
		cfgFn(&cfg)
	}
	// The globalmanager sees the store through the single-writer guard.
	e.m, err = globalmanager.New(cfg, e.sw, e.ws, guard(t, st), e.nt)
	if err != nil {
		t.Fatal(err)
	}
	e.h = e.m.Router(mw...)
	return e
}

func (e *gmEnv) do(t *testing.T, method, path, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// worker registers a ready worker id with host host-<id> and address
// 10.0.0.<the digits of id>.
func (e *gmEnv) worker(t *testing.T, id, runtime string, fn ...func(*api.Worker)) *api.Worker {
	t.Helper()
	w := &api.Worker{ID: id, Host: "host-" + id, Address: "10.0.0." + strings.TrimLeft(id, "abcdefghijklmnopqrstuvwxyz"),
		Runtime: runtime, Cores: 4, MemTotal: 8 << 30, Status: api.WorkerReady, JoinTime: 1, Checkpoint: true}
	w.SetAllocation(map[int]string{}, 0)
	for _, f := range fn {
		f(w)
	}
	if err := e.st.PutWorker(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

func (e *gmEnv) put(t *testing.T, j *api.Job) {
	t.Helper()
	if err := e.st.CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

func (e *gmEnv) job(t *testing.T, name string) *api.Job {
	t.Helper()
	j, err := e.st.GetJob(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (e *gmEnv) getWorker(t *testing.T, id string) *api.Worker {
	t.Helper()
	w, err := e.st.GetWorker(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// placed is a job whose task i is on nodes[i], with cpuset "i", in state st
// (the job is Ready while its tasks are Scheduled, else st).
func placed(name string, st api.State, nodes ...string) *api.Job {
	j := apitest.Job(name, len(nodes), 1, "sleep 60")
	j.Status, j.SubmitTime = st, 1
	if st == api.Scheduled {
		j.Status = api.Ready
	}
	for i, n := range nodes {
		t := j.Info.Tasks[i]
		t.Node, t.CpusetCpus, t.Status = n, fmt.Sprint(i), st
		if st >= api.Running {
			t.StartTime = 2
		}
	}
	return j
}

// partlyRun is job d after a deployment that reached w1 only: d_task1 ran
// and ended there, d_task2 is still Scheduled on w2.
func partlyRun() *api.Job {
	j := placed("d", api.Scheduled, "w1", "w2")
	t1 := j.Info.Tasks[0]
	t1.Status, t1.StartTime, t1.EndTime, t1.ExitCode = api.Down, 2, 3, new(0)
	j.Refresh(3)
	return j
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantError checks an error answer: its status and the JSON error body.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code, field string) api.ErrorDetail {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	// Batch operations add their per-item results beside the error.
	var eb api.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil {
		t.Fatalf("error body %s: %v", w.Body, err)
	}
	if eb.Error.Code != code || eb.Error.Field != field || eb.Error.Message == "" {
		t.Errorf("error %+v, want code %q field %q and a message", eb.Error, code, field)
	}
	return eb.Error
}

func decodeBody[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	return v
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("calls\n got %q\nwant %q", got, want)
	}
}

// sorted compares logs whose order is not defined (commands sent in parallel).
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// label names a path variant in subtest names: the original path or /api/v1.
func label(path string) string {
	if strings.HasPrefix(path, "/RESTfulSwarm/") {
		return "original"
	}
	return "v1"
}

// errWorker is a worker's own refusal, as the bus hands it back.
var errWorker = errors.New("worker: refused")

// unreachable is a worker that does not answer within the command timeout.
func unreachable(ctx context.Context) error {
	<-ctx.Done()
	return fmt.Errorf("bus: timed out waiting for a reply: %w", ctx.Err())
}

func TestHealthz(t *testing.T) {
	e := newGM(t, nil, func(c *gin.Context) { c.AbortWithStatus(http.StatusTeapot) })
	if w := e.do(t, "GET", "/healthz", ""); w.Code != 200 || w.Body.String() != `{"status":"ok"}` {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
}

func TestInit(t *testing.T) {
	const ok = "OK: Initialize Swarm environment succeed."
	tests := []struct {
		name   string
		cfg    func(*globalmanager.Config)
		swarm  func(*fakeSwarm)
		times  int
		status int
		code   string
		calls  []string
	}{
		{name: "init", times: 1, status: 200, calls: []string{"swarm.SwarmInit(127.0.0.1, 127.0.0.1:2377)"}},
		{name: "idempotent", times: 2, status: 200, calls: []string{
			"swarm.SwarmInit(127.0.0.1, 127.0.0.1:2377)", "swarm.SwarmInit(127.0.0.1, 127.0.0.1:2377)"}},
		{name: "advertise address", times: 1, status: 200, cfg: func(c *globalmanager.Config) { c.AdvertiseAddr = "10.1.2.3" },
			calls: []string{"swarm.SwarmInit(10.1.2.3, 10.1.2.3:2377)"}},
		{name: "without a swarm", times: 2, status: 200, cfg: func(c *globalmanager.Config) { c.NoSwarm = true }},
		{name: "engine unreachable", times: 1, status: 503, code: "unavailable",
			swarm: func(s *fakeSwarm) { s.initErr = fmt.Errorf("engine: %w", api.ErrUnavailable) },
			calls: []string{"swarm.SwarmInit(127.0.0.1, 127.0.0.1:2377)"}},
		{name: "engine refuses", times: 1, status: 500, code: "internal",
			swarm: func(s *fakeSwarm) { s.initErr = errors.New("engine: node is already part of another swarm") },
			calls: []string{"swarm.SwarmInit(127.0.0.1, 127.0.0.1:2377)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, tc.cfg)
			if tc.swarm != nil {
				e.sw.set(tc.swarm)
			}
			for range tc.times {
				w := e.do(t, "GET", "/RESTfulSwarm/GM/init", "")
				if tc.code != "" {
					wantError(t, w, tc.status, tc.code, "")
				} else if w.Code != tc.status || w.Body.String() != ok {
					t.Errorf("got %d %q", w.Code, w.Body)
				}
			}
			wantCalls(t, e.rec.All(), tc.calls...)
		})
	}
}

func TestDeploy(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*globalmanager.Config)
		runtime string
		swarm   func(*fakeSwarm)
		answer  func(e *gmEnv) func(ctx context.Context, to, kind string, body any) (any, error)
		job     *api.Job // stored, and sent unless body is set
		body    string
		status  int
		code    string
		field   string
		// calls are compared sorted: the run commands go out in parallel.
		calls []string
		// want is the job's state in the store afterwards.
		want api.State
	}{
		{name: "deploys every task to its node", runtime: "docker", job: placed("d", api.Scheduled, "w1", "w2"), status: 200,
			calls: []string{"swarm.CreateNetwork(rsnet_d, , job=d)", "worker w1 run_task d_task1", "worker w2 run_task d_task2"},
			want:  api.Deployed},
		{name: "simulated workers need no network", runtime: "sim", job: placed("d", api.Scheduled, "w1", "w2"), status: 200,
			calls: []string{"worker w1 run_task d_task1", "worker w2 run_task d_task2"}, want: api.Deployed},
		{name: "a worker that does not answer", runtime: "sim", job: placed("d", api.Scheduled, "w1", "w2"),
			cfg: func(c *globalmanager.Config) { c.CommandTimeout = 100 * time.Millisecond },
			answer: func(*gmEnv) func(ctx context.Context, to, kind string, body any) (any, error) {
				return func(ctx context.Context, to, kind string, _ any) (any, error) {
					if to == "w2" && kind == api.KindRunTask {
						return nil, unreachable(ctx)
					}
					return nil, nil
				}
			},
			// Nothing is undone: the jobmanager sends the job again, and w1
			// acknowledges the task it already runs without starting it twice.
			status: 503, code: "unavailable",
			calls: []string{"worker w1 run_task d_task1", "worker w2 run_task d_task2"},
			want:  api.Ready},
		{name: "a worker reconnecting gets its command once it is back", runtime: "sim", job: placed("d", api.Scheduled, "w1", "w2"),
			answer: func(*gmEnv) func(ctx context.Context, to, kind string, body any) (any, error) {
				var mu sync.Mutex
				away := 2 // w2's first two sends find it not connected
				return func(_ context.Context, to, kind string, _ any) (any, error) {
					mu.Lock()
					defer mu.Unlock()
					if to == "w2" && kind == api.KindRunTask && away > 0 {
						away--
						return nil, fmt.Errorf("%w: %q", bus.ErrUnknownPeer, to)
					}
					return nil, nil
				}
			},
			status: 200,
			calls:  []string{"worker w1 run_task d_task1", "worker w2 run_task d_task2", "worker w2 run_task d_task2", "worker w2 run_task d_task2"},
			want:   api.Deployed},
		{name: "a worker that refuses", runtime: "sim", job: placed("d", api.Scheduled, "w1", "w2"),
			answer: func(*gmEnv) func(ctx context.Context, to, kind string, body any) (any, error) {
				return func(_ context.Context, to, kind string, _ any) (any, error) {
					if to == "w1" && kind == api.KindRunTask {
						return nil, errWorker
					}
					return nil, nil
				}
			},
			status: 503, code: "unavailable",
			calls: []string{"worker w1 run_task d_task1", "worker w2 run_task d_task2"},
			want:  api.Ready},
		{name: "a retry sends only what was not delivered", runtime: "sim", job: partlyRun(),
			status: 200, calls: []string{"worker w2 run_task d_task2"}, want: api.Running},
		{name: "a job cancelled before its deployment is not sent", runtime: "sim", job: placed("d", api.Cancelled, "w1", "w2"),
			status: 409, code: "conflict", field: "job_name", want: api.Cancelled},
		{name: "cancelled while the run commands were on their way", runtime: "sim", job: placed("d", api.Scheduled, "w1", "w2"),
			answer: func(e *gmEnv) func(ctx context.Context, to, kind string, body any) (any, error) {
				return func(ctx context.Context, _, kind string, _ any) (any, error) {
					if kind == api.KindRunTask {
						_, err := e.st.UpdateJob(ctx, "d", func(j *api.Job) error {
							j.Finish(api.Cancelled, "cancelled by user", 3)
							return nil
						})
						return nil, err
					}
					return nil, nil
				}
			},
			status: 200,
			calls: []string{"worker w1 run_task d_task1", "worker w1 stop_task d_task1",
				"worker w2 run_task d_task2", "worker w2 stop_task d_task2"},
			want: api.Cancelled},
		{name: "network not created", runtime: "docker", job: placed("d", api.Scheduled, "w1", "w2"),
			swarm:  func(s *fakeSwarm) { s.netErr = fmt.Errorf("engine: %w", api.ErrUnavailable) },
			status: 503, code: "unavailable", calls: []string{"swarm.CreateNetwork(rsnet_d, , job=d)"}, want: api.Ready},
		{name: "task not placed", runtime: "sim", job: placed("d", api.Scheduled, "w1", ""),
			status: 400, code: "invalid", field: "job_info.tasks.d_task2", want: api.Ready},
		{name: "unknown worker", runtime: "sim", job: placed("d", api.Scheduled, "w1", "w9"),
			status: 404, code: "not_found", want: api.Ready},
		{name: "no tasks", runtime: "sim", body: `{"job_name":"d","job_info":{"network":{},"tasks":{}}}`,
			status: 400, code: "invalid", field: "job_info.tasks"},
		{name: "malformed body", runtime: "sim", body: `{"job_name":`, status: 400, code: "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, tc.cfg)
			e.worker(t, "w1", tc.runtime)
			e.worker(t, "w2", tc.runtime)
			if tc.swarm != nil {
				e.sw.set(tc.swarm)
			}
			if tc.answer != nil {
				e.ws.answer = tc.answer(e)
			}
			body := tc.body
			if tc.job != nil {
				e.put(t, tc.job)
				body = jsonOf(t, tc.job)
			}
			w := e.do(t, "POST", "/RESTfulSwarm/GM/request_new_job", body)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
			} else if w.Code != tc.status || w.Body.String() != "OK" {
				t.Errorf("got %d %q", w.Code, w.Body)
			}
			wantCalls(t, sorted(e.rec.All()), tc.calls...)
			if tc.job == nil {
				return
			}
			for _, c := range e.ws.sent() {
				if rt, ok := c.body.(api.RunTask); ok {
					want := tc.job.Info.Tasks.Get(rt.Task.ContainerName)
					if rt.Job != "d" || rt.Network != "rsnet_d" || rt.Task.Node != c.to || rt.Task.CpusetCpus != want.CpusetCpus {
						t.Errorf("run_task to %s: %+v", c.to, rt)
					}
				}
			}
			j := e.job(t, "d")
			if j.Status != tc.want {
				t.Errorf("job %s, want %s", j.Status, tc.want)
			}
			if tc.want == api.Deployed {
				for _, task := range j.Info.Tasks {
					if task.Status != api.Deployed {
						t.Errorf("task %s %s", task.ContainerName, task.Status)
					}
				}
			}
		})
	}
}

// TestDeployUnknownJob: a job the store does not hold is refused before
// any container starts, or its containers are stopped again. It guards
// against Deploy answering 404 only after it has sent every run_task, and
// leaving the containers it started running, unknown to the store.
func TestDeployUnknownJob(t *testing.T) {
	e := newGM(t, nil)
	e.worker(t, "w1", "sim")
	w := e.do(t, "POST", "/RESTfulSwarm/GM/request_new_job", jsonOf(t, placed("ghost", api.Scheduled, "w1")))
	wantError(t, w, 404, "not_found", "")
	if calls := e.rec.All(); slices.Contains(calls, "worker w1 run_task ghost_task1") && !slices.Contains(calls, "worker w1 stop_task ghost_task1") {
		t.Errorf("calls %q: a container was started and not stopped", calls)
	}
}

func TestWorkerList(t *testing.T) {
	nodes := []api.SwarmNode{
		{ID: "n1", Hostname: "h1", Addr: "10.0.0.1", Role: "manager", Raw: json.RawMessage(`{"ID":"n1","Spec":{"Role":"manager"}}`)},
		{ID: "n2", Hostname: "h2", Addr: "10.0.0.2", Role: "worker", NCPU: 4},
	}
	for _, path := range []string{"/RESTfulSwarm/GM/get_worker_list", "/api/v1/nodes"} {
		tests := []struct {
			name   string
			swarm  func(*fakeSwarm)
			status int
			want   string
		}{
			{name: "raw descriptions", status: 200,
				swarm: func(s *fakeSwarm) { s.nodes = func(int) []api.SwarmNode { return nodes } },
				want:  `[{"ID":"n1","Spec":{"Role":"manager"}},` + string(must(json.Marshal(nodes[1]))) + `]`},
			{name: "no swarm nodes", status: 200, want: `[]`},
			{name: "engine unreachable", status: 503,
				swarm: func(s *fakeSwarm) { s.nodesErr = fmt.Errorf("engine: %w", api.ErrUnavailable) }},
		}
		for _, tc := range tests {
			t.Run(label(path)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newGM(t, nil)
				if tc.swarm != nil {
					e.sw.set(tc.swarm)
				}
				w := e.do(t, "GET", path, "")
				if tc.status != 200 {
					wantError(t, w, tc.status, "unavailable", "")
					return
				}
				if w.Code != 200 || w.Body.String() != tc.want {
					t.Errorf("got %d %s\nwant %s", w.Code, w.Body, tc.want)
				}
			})
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestDescribe(t *testing.T) {
	raw := `{"ID":"n1","Description":{"Hostname":"h1"},"Spec":{"Role":"worker"}}`
	nodes := func(int) []api.SwarmNode {
		return []api.SwarmNode{{ID: "n1", Hostname: "h1", Raw: json.RawMessage(raw)}}
	}
	for _, kind := range []string{"describe_worker", "describe_manager"} {
		tests := []struct {
			name, node string
			swarm      func(*fakeSwarm)
			status     int
			code       string
		}{
			{name: "by node ID", node: "n1", status: 200},
			{name: "by host name", node: "h1", status: 200},
			{name: "unknown", node: "n9", status: 404, code: "not_found"},
			{name: "engine unreachable", node: "n1", status: 503, code: "unavailable",
				swarm: func(s *fakeSwarm) { s.nodesErr = fmt.Errorf("engine: %w", api.ErrUnavailable) }},
		}
		for _, tc := range tests {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newGM(t, nil)
				e.sw.set(func(s *fakeSwarm) { s.nodes = nodes })
				if tc.swarm != nil {
					e.sw.set(tc.swarm)
				}
				w := e.do(t, "GET", "/RESTfulSwarm/GM/"+tc.node+"/"+kind, "")
				if tc.code != "" {
					wantError(t, w, tc.status, tc.code, "")
					return
				}
				if w.Code != 200 || w.Body.String() != raw || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
					t.Errorf("got %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
				}
			})
		}
	}
}

// TestJoinKeepsRegistered: a request_join for a worker that `rswarm worker`
// registered already must not replace what it reported (its memory, its
// checkpoint probe): the original replaced 25.3 GB by the 1.05 GB in the body.
func TestJoinKeepsRegistered(t *testing.T) {
	node := api.SwarmNode{ID: "n5", Hostname: "h5", Addr: "10.0.0.5", Role: "worker", NCPU: 8, MemBytes: 8 << 30}
	e := newGM(t, nil)
	e.sw.set(func(s *fakeSwarm) { s.nodes = func(int) []api.SwarmNode { return []api.SwarmNode{node} } })
	ctx := context.Background()
	reg := &api.Worker{ID: "n5", Host: "h5", Address: "10.0.0.5", Runtime: "docker", Cores: 8, MemTotal: 25_300_000_000,
		Status: api.WorkerReady, Checkpoint: true}
	reg.SetAllocation(map[int]string{0: "j_t1"}, 0)
	if err := e.st.PutWorker(ctx, reg); err != nil {
		t.Fatal(err)
	}
	w := e.do(t, "POST", "/RESTfulSwarm/GM/request_join", `{"hostname":"h5","address":"10.0.0.5","CPUs":2,"MemFree":"1050m"}`)
	if got := decodeBody[api.RegisterReply](t, w); w.Code != 200 || got != (api.RegisterReply{NodeID: "n5"}) {
		t.Errorf("got %d %+v", w.Code, got)
	}
	g, err := e.st.GetWorker(ctx, "n5")
	if err != nil {
		t.Fatal(err)
	}
	if g.MemTotal != 25_300_000_000 || g.Cores != 8 || !g.Checkpoint || !g.CPUs["0"] || g.CoreTasks["0"] != "j_t1" {
		t.Errorf("the registered record changed: %+v", g)
	}
	wantCalls(t, e.rec.All())
}

func TestJoin(t *testing.T) {
	node := api.SwarmNode{ID: "n5", Hostname: "h5", Addr: "10.0.0.5", Role: "worker", NCPU: 8, MemBytes: 8 << 30}
	always := func(int) []api.SwarmNode { return []api.SwarmNode{node} }
	tests := []struct {
		name   string
		cfg    func(*globalmanager.Config)
		nodes  func(n int) []api.SwarmNode
		swarm  func(*fakeSwarm)
		body   string
		status int
		code   string
		field  string
		// want is the recorded worker.
		want *api.Worker
	}{
		{name: "node in the swarm is registered", nodes: always,
			body: `{"hostname":"h5","address":"10.0.0.5","CPUs":4,"MemFree":"2048m"}`, status: 200,
			want: &api.Worker{ID: "n5", Host: "h5", Address: "10.0.0.5", Runtime: "docker", Cores: 4, MemTotal: 2048 << 20}},
		{name: "original's kB memory and the node's cores", nodes: always,
			body: `{"address":"10.0.0.5","MemFree":"22245426 kB"}`, status: 200,
			want: &api.Worker{ID: "n5", Host: "h5", Address: "10.0.0.5", Runtime: "docker", Cores: 8, MemTotal: 22245426 << 10}},
		{name: "node that appears on a later poll", body: `{"address":"10.0.0.5"}`, status: 200,
			nodes: func(n int) []api.SwarmNode {
				if n == 1 {
					return nil
				}
				return []api.SwarmNode{node}
			},
			want: &api.Worker{ID: "n5", Host: "h5", Address: "10.0.0.5", Runtime: "docker", Cores: 8, MemTotal: 8 << 30}},
		{name: "no node joins in time", cfg: func(c *globalmanager.Config) { c.JoinTimeout = 20 * time.Millisecond },
			nodes: func(int) []api.SwarmNode { return []api.SwarmNode{{ID: "n6", Addr: "10.0.0.6"}} },
			body:  `{"address":"10.0.0.5"}`, status: 503, code: "unavailable"},
		{name: "address required", body: `{"hostname":"h5"}`, status: 400, code: "invalid", field: "address"},
		{name: "without a swarm", cfg: func(c *globalmanager.Config) { c.NoSwarm = true },
			body: `{"address":"10.0.0.5"}`, status: 503, code: "unavailable"},
		{name: "engine unreachable", swarm: func(s *fakeSwarm) { s.nodesErr = fmt.Errorf("engine: %w", api.ErrUnavailable) },
			body: `{"address":"10.0.0.5"}`, status: 503, code: "unavailable"},
		{name: "unknown field", body: `{"address":"10.0.0.5","cores":4}`, status: 400, code: "invalid", field: "cores"},
		{name: "malformed", body: `{"address":`, status: 400, code: "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, tc.cfg)
			e.sw.set(func(s *fakeSwarm) { s.nodes = tc.nodes })
			if tc.swarm != nil {
				e.sw.set(tc.swarm)
			}
			w := e.do(t, "POST", "/RESTfulSwarm/GM/request_join", tc.body)
			ws, err := e.st.ListWorkers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tc.code != "" {
				d := wantError(t, w, tc.status, tc.code, tc.field)
				if tc.nodes != nil && tc.status == 503 && !strings.Contains(d.Message, "no swarm node with address 10.0.0.5") {
					t.Errorf("message %q", d.Message)
				}
				if len(ws) != 0 {
					t.Errorf("workers recorded: %+v", ws[0])
				}
				wantCalls(t, e.rec.All())
				return
			}
			if got := decodeBody[api.RegisterReply](t, w); w.Code != 200 || got != (api.RegisterReply{NodeID: "n5"}) {
				t.Errorf("got %d %+v", w.Code, got)
			}
			if len(ws) != 1 {
				t.Fatalf("%d workers recorded", len(ws))
			}
			g := ws[0]
			if g.ID != tc.want.ID || g.Host != tc.want.Host || g.Address != tc.want.Address || g.Runtime != tc.want.Runtime ||
				g.Cores != tc.want.Cores || g.MemTotal != tc.want.MemTotal || g.Status != api.WorkerReady || len(g.CPUs) != g.Cores ||
				g.Checkpoint || g.CheckpointError == "" {
				t.Errorf("worker %+v\nwant %+v", g, tc.want)
			}
			wantCalls(t, e.rec.All(), fmt.Sprintf("nt.WorkerRegistered(n5 cores=%d mem=%d)", tc.want.Cores, tc.want.MemTotal))
		})
	}
}

func TestNewTask(t *testing.T) {
	task := func(name string, fn ...func(map[string]any)) string {
		m := map[string]any{"container_name": name, "image": "rswarm/busybox:latest", "req_cores": 1,
			"command": "sleep 1", "mem_limit": "16m", "network": "net1", "environment": map[string]string{}}
		for _, f := range fn {
			f(m)
		}
		return string(must(json.Marshal(m)))
	}
	tests := []struct {
		name   string
		body   string
		job    string // the job stored
		net    string
		status int
		code   string
		field  string
	}{
		{name: "accepted as a job of its own", body: task("t1_a"), job: "t1", net: "net1", status: 200},
		{name: "job named by the last underscore", body: task("exp_1_a"), job: "exp_1", net: "net1", status: 200},
		{name: "default network", body: task("t1_a", func(m map[string]any) { delete(m, "network") }), job: "t1", net: "rsnet_t1", status: 200},
		{name: "duplicate", body: task("dup_a"), status: 409, code: "conflict", field: "container_name"},
		{name: "no job prefix", body: task("solo"), status: 400, code: "invalid", field: "container_name"},
		{name: "bad image", body: task("t1_a", func(m map[string]any) { m["image"] = "Bad Image" }),
			status: 400, code: "invalid", field: "job_info.tasks.t1_a.image"},
		{name: "zero cores", body: task("t1_a", func(m map[string]any) { m["req_cores"] = 0 }),
			status: 400, code: "invalid", field: "job_info.tasks.t1_a.req_cores"},
		{name: "original swagger's cpu_count", body: task("t1_a", func(m map[string]any) { m["cpu_count"] = 1 }),
			status: 400, code: "invalid", field: "cpu_count"},
		{name: "malformed", body: `{"container_name":`, status: 400, code: "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, nil)
			e.put(t, placed("dup", api.Running, "w1"))
			w := e.do(t, "POST", "/RESTfulSwarm/GM/request_new_task", tc.body)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
				wantCalls(t, e.rec.All())
				if n, _ := e.st.CountJobs(context.Background(), api.JobFilter{}); n != 1 {
					t.Errorf("%d jobs stored, want only the first", n)
				}
				if j := e.job(t, "dup"); j.Status != api.Running {
					t.Errorf("existing job changed: %s", j.Status)
				}
				return
			}
			got := decodeBody[map[string]string](t, w)
			if w.Code != 200 || got["job_name"] != tc.job || got["status"] != "Ready" {
				t.Errorf("got %d %v", w.Code, got)
			}
			j := e.job(t, tc.job)
			if j.Status != api.Ready || j.SubmitTime == 0 || j.Info.Network.Name != tc.net || len(j.Info.Tasks) != 1 || j.Info.Tasks[0].Status != api.Ready {
				t.Errorf("stored %+v", j)
			}
			wantCalls(t, e.rec.All(), "nt.JobSubmitted("+tc.job+")")
		})
	}
}

func TestCheckpoint(t *testing.T) {
	for _, path := range []string{"/RESTfulSwarm/GM/checkpoint_cons", "/api/v1/checkpoints"} {
		tests := []struct {
			name   string
			body   string
			answer func(ctx context.Context, to, kind string, body any) (any, error)
			status int
			code   string
			field  string
			want   []globalmanager.CheckpointResult
			calls  []string
		}{
			{name: "every container, by node ID or host name", status: 200,
				body: `[{"node":"w1","containers":["c_task1","c_task2"]},{"node":"host-w2","containers":["c_task3"]}]`,
				want: []globalmanager.CheckpointResult{
					{Node: "w1", Container: "c_task1", Checkpoint: "cp-c_task1"},
					{Node: "w1", Container: "c_task2", Checkpoint: "cp-c_task2"},
					{Node: "w2", Container: "c_task3", Checkpoint: "cp-c_task3"},
				},
				calls: []string{"worker w1 checkpoint c_task1", "worker w1 checkpoint c_task2", "worker w2 checkpoint c_task3"}},
			{name: "unknown node: nothing is sent", status: 404, code: "not_found", field: "[1].node",
				body: `[{"node":"w1","containers":["c_task1"]},{"node":"w9","containers":["c_task3"]}]`},
			{name: "node required", status: 400, code: "invalid", field: "[0].node", body: `[{"containers":["c_task1"]}]`},
			{name: "no containers", status: 400, code: "invalid", field: "[0].containers", body: `[{"node":"w1","containers":[]}]`},
			{name: "empty list", status: 400, code: "invalid", body: `[]`},
			{name: "not a list", status: 400, code: "invalid", body: `{"node":"w1","containers":["c_task1"]}`},
			{name: "checkpoint fails on the worker", status: 422, code: "unprocessable",
				body: `[{"node":"w1","containers":["c_task1","c_task2"]}]`,
				answer: func(_ context.Context, _, _ string, body any) (any, error) {
					if body.(api.Checkpoint).Task == "c_task2" {
						return nil, errors.New("criu: CRIU version check failed")
					}
					return "cp-c_task1", nil
				},
				calls: []string{"worker w1 checkpoint c_task1", "worker w1 checkpoint c_task2"}},
		}
		for _, tc := range tests {
			t.Run(label(path)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newGM(t, nil)
				e.worker(t, "w1", "docker")
				e.worker(t, "w2", "docker")
				e.ws.answer = tc.answer
				if e.ws.answer == nil {
					e.ws.answer = func(_ context.Context, _, _ string, body any) (any, error) {
						return "cp-" + body.(api.Checkpoint).Task, nil
					}
				}
				w := e.do(t, "POST", path, tc.body)
				wantCalls(t, e.rec.All(), tc.calls...)
				for _, c := range e.ws.sent() {
					cp := c.body.(api.Checkpoint)
					if !cp.LeaveRunning || !strings.HasPrefix(cp.Name, cp.Task+"_") {
						t.Errorf("checkpoint command %+v", cp)
					}
				}
				if tc.code != "" {
					d := wantError(t, w, tc.status, tc.code, tc.field)
					if tc.status == 422 && !strings.Contains(d.Message, "CRIU version check failed") {
						t.Errorf("message %q does not say why", d.Message)
					}
					if tc.status == 422 && !strings.Contains(w.Body.String(), `"checkpoint":"cp-`) {
						t.Errorf("the checkpoints that worked are missing from %s", w.Body)
					}
					return
				}
				got := decodeBody[struct {
					Checkpoints []globalmanager.CheckpointResult `json:"checkpoints"`
				}](t, w)
				if w.Code != 200 || !slices.Equal(got.Checkpoints, tc.want) {
					t.Errorf("got %d %+v", w.Code, got)
				}
			})
		}
	}
}

// migEnv is a job "m" whose task m_task1 runs on w1 with cpuset 0 and 16m,
// and m_task2 on w1 with cpuset 1; w2 is ready, w3 drained, w4 has left.
func migEnv(t *testing.T) *gmEnv {
	e := newGM(t, nil)
	e.worker(t, "w1", "docker")
	e.worker(t, "w2", "docker", func(w *api.Worker) { w.Checkpoint, w.CheckpointError = false, "criu missing" })
	e.worker(t, "w3", "docker", func(w *api.Worker) { w.Status = api.WorkerDrained })
	e.worker(t, "w4", "docker", func(w *api.Worker) { w.Status = api.WorkerLeft })
	e.put(t, placed("m", api.Running, "w1", "w1"))
	idle := placed("idle", api.Scheduled, "w1")
	e.put(t, idle)
	e.nt.reserve = []int{3}
	return e
}

// TestMigrateStreamed: between workers with transfer ports, the task's
// state is streamed: the destination is told to expect it (with the new
// cores), the source sends it; the mode follows what the hosts can do.
func TestMigrateStreamed(t *testing.T) {
	sent := api.Sent{Bytes: 1234, SHA256: strings.Repeat("ab", 32), Downtime: 0.5}
	okAnswer := func(_ context.Context, _, kind string, _ any) (any, error) {
		if kind == api.KindSendTask {
			return sent, nil
		}
		return "ok", nil
	}
	moved := []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)", "worker w2 receive_task m_task1",
		"worker w1 send_task m_task1", "nt.Commit(m_task1@w2)"}
	tests := []struct {
		name       string
		body       string
		w2         func(*api.Worker) // destination changes
		answer     func(ctx context.Context, to, kind string, body any) (any, error)
		status     int
		code       string
		field      string
		calls      []string
		mode, note string // of a move that happened
		node       string // of m_task1 afterwards
	}{
		{name: "auto, both can checkpoint: live", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`, answer: okAnswer,
			status: 200, calls: moved, mode: "live", note: "both hosts can checkpoint", node: "w2"},
		{name: "auto, destination cannot: cold, saying why", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2","mode":"auto"}`,
			w2:     func(w *api.Worker) { w.Checkpoint, w.CheckpointError = false, "vdso: Unexpected rt vDSO area bounds" },
			answer: okAnswer, status: 200, calls: moved, mode: "cold", note: "checkpoints do not work on w2 (host-w2): vdso: Unexpected rt vDSO area bounds", node: "w2"},
		{name: "cold asked", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2","mode":"cold"}`, answer: okAnswer,
			status: 200, calls: moved, mode: "cold", note: "as asked", node: "w2"},
		{name: "the original's SampleMigration body (info with a network), workers by address",
			body: `{"job":"m","container":"m_task1","from":"10.0.0.1","to":"10.0.0.2","info":{"container_name":"m_task1","image":"busybox",` +
				`"detach":true,"network":"kangNetwork","command":"","cpuset_cpus":"0,1","mem_limit":"10m","ports":{},"volumes":{}}}`,
			answer: okAnswer, status: 200, calls: moved, mode: "live", note: "both hosts", node: "w2"},
		{name: "live where the destination cannot: 422 naming it and CRIU's reason",
			body:   `{"job":"m","container":"m_task1","from":"w1","to":"w2","mode":"live"}`,
			w2:     func(w *api.Worker) { w.Checkpoint, w.CheckpointError = false, "vdso: Unexpected rt vDSO area bounds" },
			status: 422, code: "unprocessable", node: "w1"},
		{name: "unknown mode", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2","mode":"warm"}`,
			status: 400, code: "invalid", field: "mode", node: "w1"},
		{name: "the transfer fails: cores given back, the task stays",
			body: `{"job":"m","container":"m_task1","from":"w1","to":"w2","mode":"cold"}`,
			answer: func(_ context.Context, _, kind string, _ any) (any, error) {
				if kind == api.KindSendTask {
					return nil, errors.New("worker: send m_task1: the state's checksum is 00, the sender's ab")
				}
				return "ok", nil
			},
			status: 422, code: "unprocessable", node: "w1",
			calls: []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)", "worker w2 receive_task m_task1", "worker w1 send_task m_task1", "nt.Abort(m_task1)"}},
		{name: "the destination cannot receive: nothing sent",
			body: `{"job":"m","container":"m_task1","from":"w1","to":"w2","mode":"cold"}`,
			answer: func(_ context.Context, _, kind string, _ any) (any, error) {
				if kind == api.KindReceiveTask {
					return nil, fmt.Errorf("bus: %w", api.ErrUnavailable)
				}
				return "ok", nil
			},
			status: 503, code: "unavailable", node: "w1",
			calls: []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)", "worker w2 receive_task m_task1", "nt.Abort(m_task1)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, nil)
			e.worker(t, "w1", "docker", func(w *api.Worker) { w.TransferAddr = "10.0.0.1:3200" })
			e.worker(t, "w2", "docker", func(w *api.Worker) {
				w.TransferAddr = "10.0.0.2:3200"
				if tc.w2 != nil {
					tc.w2(w)
				}
			})
			e.put(t, placed("m", api.Running, "w1", "w1"))
			e.nt.reserve = []int{3}
			e.ws.answer = tc.answer
			w := e.do(t, "POST", "/api/v1/migrations", tc.body)
			if tc.code != "" {
				d := wantError(t, w, tc.status, tc.code, tc.field)
				if tc.status == 422 && strings.Contains(tc.name, "CRIU") && (!strings.Contains(d.Message, "w2") || !strings.Contains(d.Message, "Unexpected rt vDSO")) {
					t.Errorf("message %q does not name the host and CRIU's reason", d.Message)
				}
			} else {
				got := decodeBody[globalmanager.MigrateResult](t, w)
				if w.Code != 200 || got.Mode != tc.mode || !strings.Contains(got.Note, tc.note) || got.CpusetCpus != "3" ||
					got.Bytes != sent.Bytes || got.SHA256 != sent.SHA256 || got.DowntimeSeconds != sent.Downtime {
					t.Errorf("got %d %+v", w.Code, got)
				}
			}
			wantCalls(t, e.rec.All(), tc.calls...)
			for _, c := range e.ws.sent() {
				switch b := c.body.(type) {
				case api.ReceiveTask:
					if b.Token == "" || b.Task.Node != "w2" || b.Task.CpusetCpus != "3" || b.Network != "rsnet_m" || b.Mode != tc.mode && tc.mode != "" {
						t.Errorf("receive_task %+v", b)
					}
				case api.SendTask:
					if b.To != "10.0.0.2:3200" || b.Task != "m_task1" || b.Token == "" {
						t.Errorf("send_task %+v", b)
					}
				}
			}
			task := e.job(t, "m").Info.Tasks.Get("m_task1")
			if task.Node != tc.node || task.Status != api.Running {
				t.Errorf("task on %s %s, want %s Running", task.Node, task.Status, tc.node)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	ok := []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)", "worker w1 stop_task m_task1",
		"worker w2 run_task m_task1", "nt.Commit(m_task1@w2)"}
	tests := []struct {
		name   string
		body   string
		answer func(ctx context.Context, to, kind string, body any) (any, error)
		nt     func(*fakeNotifier)
		status int
		code   string
		field  string
		calls  []string
		// node, cpuset and state of m_task1 in the store afterwards; the
		// state is not checked when the worker's next status report sets it.
		node, cpuset string
		state        api.State
		anyState     bool
	}{
		{name: "moves the task", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`, status: 200,
			calls: ok, node: "w2", cpuset: "3", anyState: true},
		{name: "workers named by host and address", body: `{"job":"m","container":"m_task1","from":"host-w1","to":"10.0.0.2"}`,
			status: 200, calls: ok, node: "w2", cpuset: "3", anyState: true},
		// The task runs on w2 whatever the jobmanager says: its commit (which
		// writes the record) is asked for again.
		{name: "a commit that did not get through is asked again", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`,
			nt: func(n *fakeNotifier) { n.commitFails = 1 }, status: 200,
			calls: append(slices.Clone(ok), "nt.Commit(m_task1@w2)"), node: "w2", cpuset: "3", anyState: true},
		{name: "a commit whose answer was lost is not refused when asked again", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`,
			nt: func(n *fakeNotifier) { n.commitFails, n.commitLost = 1, true }, status: 200,
			calls: append(slices.Clone(ok), "nt.Commit(m_task1@w2)"), node: "w2", cpuset: "3", anyState: true},
		{name: "a jobmanager away for every commit: the move is reported failed", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`,
			nt: func(n *fakeNotifier) { n.commitFails = 9 }, status: 503, code: "unavailable",
			calls: append(slices.Clone(ok), "nt.Commit(m_task1@w2)", "nt.Commit(m_task1@w2)"), node: "w1", cpuset: "0", anyState: true},
		{name: "from is not where the task runs", body: `{"job":"m","container":"m_task1","from":"w2","to":"w1"}`,
			status: 409, code: "conflict", field: "from", node: "w1", cpuset: "0", state: api.Running},
		{name: "unknown from", body: `{"job":"m","container":"m_task1","from":"w9","to":"w2"}`,
			status: 404, code: "not_found", field: "from", node: "w1", cpuset: "0", state: api.Running},
		{name: "unknown to", body: `{"job":"m","container":"m_task1","from":"w1","to":"w9"}`,
			status: 404, code: "not_found", field: "to", node: "w1", cpuset: "0", state: api.Running},
		{name: "to required", body: `{"job":"m","container":"m_task1","from":"w1"}`,
			status: 400, code: "invalid", field: "to", node: "w1", cpuset: "0", state: api.Running},
		{name: "to where it runs", body: `{"job":"m","container":"m_task1","from":"w1","to":"w1"}`,
			status: 400, code: "invalid", field: "to", node: "w1", cpuset: "0", state: api.Running},
		{name: "to a drained worker", body: `{"job":"m","container":"m_task1","from":"w1","to":"w3"}`,
			status: 409, code: "conflict", field: "to", node: "w1", cpuset: "0", state: api.Running},
		{name: "to a worker that left", body: `{"job":"m","container":"m_task1","from":"w1","to":"w4"}`,
			status: 409, code: "conflict", field: "to", node: "w1", cpuset: "0", state: api.Running},
		{name: "unknown job", body: `{"job":"nope","container":"m_task1","from":"w1","to":"w2"}`,
			status: 404, code: "not_found", field: "job", node: "w1", cpuset: "0", state: api.Running},
		{name: "job required", body: `{"container":"m_task1","from":"w1","to":"w2"}`,
			status: 400, code: "invalid", field: "job", node: "w1", cpuset: "0", state: api.Running},
		{name: "unknown container", body: `{"job":"m","container":"m_task9","from":"w1","to":"w2"}`,
			status: 404, code: "not_found", field: "container", node: "w1", cpuset: "0", state: api.Running},
		{name: "task not running", body: `{"job":"idle","container":"idle_task1","from":"w1","to":"w2"}`,
			status: 409, code: "conflict", field: "container", node: "w1", cpuset: "0", state: api.Running},
		{name: "unknown field", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2","live":true}`,
			status: 400, code: "invalid", field: "live", node: "w1", cpuset: "0", state: api.Running},
		{name: "cores refused by the jobmanager", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`,
			nt: func(n *fakeNotifier) {
				n.reserveErr = &api.FieldError{Kind: api.ErrConflict, Reason: "worker w2 has 0 free cores, 1 needed"}
			},
			status: 409, code: "conflict", calls: []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)"},
			node: "w1", cpuset: "0", state: api.Running},
		{name: "stop fails: cores given back, task still running", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`,
			answer: func(ctx context.Context, _, kind string, _ any) (any, error) {
				if kind == api.KindStopTask {
					return nil, fmt.Errorf("bus: %w", api.ErrUnavailable)
				}
				return nil, nil
			},
			status: 503, code: "unavailable",
			calls: []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)", "worker w1 stop_task m_task1", "nt.Abort(m_task1)"},
			node:  "w1", cpuset: "0", state: api.Running},
		{name: "start fails: restarted where it was", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`,
			answer: func(ctx context.Context, to, kind string, _ any) (any, error) {
				if kind == api.KindRunTask && to == "w2" {
					return nil, fmt.Errorf("bus: %w", api.ErrUnavailable)
				}
				return nil, nil
			},
			status: 503, code: "unavailable",
			calls: []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)", "worker w1 stop_task m_task1",
				"worker w2 run_task m_task1", "worker w1 run_task m_task1", "nt.Abort(m_task1)"},
			node: "w1", cpuset: "0", anyState: true},
		{name: "start fails twice: the task fails", body: `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`,
			answer: func(ctx context.Context, to, kind string, _ any) (any, error) {
				if kind == api.KindRunTask {
					return nil, fmt.Errorf("bus: %w", api.ErrUnavailable)
				}
				return nil, nil
			},
			status: 503, code: "unavailable",
			calls: []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)", "worker w1 stop_task m_task1",
				"worker w2 run_task m_task1", "worker w1 run_task m_task1", "nt.Abort(m_task1)"},
			node: "w1", cpuset: "0", state: api.Failed},
	}
	for _, path := range []string{"/RESTfulSwarm/GM/request_migrate", "/api/v1/migrations"} {
		for _, tc := range tests {
			t.Run(label(path)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := migEnv(t)
				e.ws.answer = tc.answer
				if tc.nt != nil {
					tc.nt(e.nt)
				}
				w := e.do(t, "POST", path, tc.body)
				if tc.code != "" {
					wantError(t, w, tc.status, tc.code, tc.field)
				} else {
					got := decodeBody[globalmanager.MigrateResult](t, w)
					if w.Code != tc.status || got.Job != "m" || got.Container != "m_task1" || got.From != "w1" || got.To != "w2" ||
						got.CpusetCpus != "3" || got.Mode != "cold" || !strings.Contains(got.Note, "criu missing") || got.Error != "" {
						t.Errorf("got %d %+v", w.Code, got)
					}
				}
				wantCalls(t, e.rec.All(), tc.calls...)
				for _, c := range e.ws.sent() {
					switch b := c.body.(type) {
					case api.StopTask:
						if !b.Migrating || b.Job != "m" {
							t.Errorf("stop_task %+v", b)
						}
					case api.RunTask:
						if want := map[string]string{"w1": "0", "w2": "3"}[c.to]; b.Task.Node != c.to || b.Task.CpusetCpus != want || b.Network != "rsnet_m" {
							t.Errorf("run_task to %s: node %s cpuset %s network %s", c.to, b.Task.Node, b.Task.CpusetCpus, b.Network)
						}
					}
				}
				task := e.job(t, "m").Info.Tasks.Get("m_task1")
				if task.Node != tc.node || task.CpusetCpus != tc.cpuset || (!tc.anyState && task.Status != tc.state) {
					t.Errorf("task on %s cpuset %s %s, want %s %s %s", task.Node, task.CpusetCpus, task.Status, tc.node, tc.cpuset, tc.state)
				}
			})
		}
	}
}

// TestFailedMigrationIsUnprocessable: a migration the destination worker
// refuses answers 422, as api.ErrUnprocessable's doc ("a migration that
// failed") and MigrateGroup's answer say. It guards the classification of
// the worker's refusal (a remote error, which classifies as nothing by
// itself): left unclassified it would answer 500 "internal", unlike the
// same failure inside request_group_migration.
func TestFailedMigrationIsUnprocessable(t *testing.T) {
	e := migEnv(t)
	e.ws.answer = func(_ context.Context, to, kind string, _ any) (any, error) {
		if kind == api.KindRunTask && to == "w2" {
			return nil, errWorker
		}
		return nil, nil
	}
	wantError(t, e.do(t, "POST", "/api/v1/migrations", `{"job":"m","container":"m_task1","from":"w1","to":"w2"}`), 422, "unprocessable", "")
}

func TestGroupMigration(t *testing.T) {
	good := func(task string) string {
		return `{"job":"m","container":"` + task + `","from":"w1","to":"w2"}`
	}
	tests := []struct {
		name   string
		path   string
		body   string
		status int
		code   string
		field  string
		moved  []string
		calls  []string
	}{
		{name: "every item", path: "/RESTfulSwarm/GM/request_group_migration", body: "[" + good("m_task1") + "," + good("m_task2") + "]",
			status: 200, moved: []string{"m_task1", "m_task2"},
			calls: []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)", "worker w1 stop_task m_task1", "worker w2 run_task m_task1", "nt.Commit(m_task1@w2)",
				"nt.Reserve(m_task2@w2 cores=1 mem=16777216)", "worker w1 stop_task m_task2", "worker w2 run_task m_task2", "nt.Commit(m_task2@w2)"}},
		{name: "one bad item does not stop the others", path: "/api/v1/migrations/group",
			body:   "[" + good("m_task9") + "," + good("m_task2") + "]",
			status: 422, code: "unprocessable", moved: []string{"m_task2"},
			calls: []string{"nt.Reserve(m_task2@w2 cores=1 mem=16777216)", "worker w1 stop_task m_task2", "worker w2 run_task m_task2", "nt.Commit(m_task2@w2)"}},
		{name: "empty list", path: "/api/v1/migrations/group", body: `[]`, status: 400, code: "invalid"},
		{name: "not a list", path: "/RESTfulSwarm/GM/request_group_migration", body: good("m_task1"), status: 400, code: "invalid"},
		{name: "job: every running task", path: "/api/v1/jobs/m/migrate", body: `{"to":"w2"}`,
			status: 200, moved: []string{"m_task1", "m_task2"},
			calls: []string{"nt.Reserve(m_task1@w2 cores=1 mem=16777216)", "worker w1 stop_task m_task1", "worker w2 run_task m_task1", "nt.Commit(m_task1@w2)",
				"nt.Reserve(m_task2@w2 cores=1 mem=16777216)", "worker w1 stop_task m_task2", "worker w2 run_task m_task2", "nt.Commit(m_task2@w2)"}},
		{name: "job: unknown", path: "/api/v1/jobs/nope/migrate", body: `{"to":"w2"}`, status: 404, code: "not_found"},
		{name: "job: nothing running", path: "/api/v1/jobs/idle/migrate", body: `{"to":"w2"}`, status: 409, code: "conflict", field: "job"},
		{name: "job: unknown destination", path: "/api/v1/jobs/m/migrate", body: `{"to":"w9"}`, status: 422, code: "unprocessable"},
		{name: "job: unknown field", path: "/api/v1/jobs/m/migrate", body: `{"dest":"w2"}`, status: 400, code: "invalid", field: "dest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := migEnv(t)
			w := e.do(t, "POST", tc.path, tc.body)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
			} else {
				got := decodeBody[struct {
					Migrations []globalmanager.MigrateResult `json:"migrations"`
				}](t, w)
				if w.Code != tc.status || len(got.Migrations) != len(tc.moved) {
					t.Fatalf("got %d %+v", w.Code, got)
				}
				for i, r := range got.Migrations {
					if r.Container != tc.moved[i] || r.To != "w2" || r.Error != "" {
						t.Errorf("migration %d: %+v", i, r)
					}
				}
			}
			wantCalls(t, e.rec.All(), tc.calls...)
			for _, task := range e.job(t, "m").Info.Tasks {
				if moved := slices.Contains(tc.moved, task.ContainerName); moved != (task.Node == "w2") {
					t.Errorf("task %s on %s", task.ContainerName, task.Node)
				}
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	type want struct {
		cpuset, mem string
		cores       int
	}
	unchanged := want{"0", "16m", 1}
	tests := []struct {
		name   string
		path   string
		body   string
		answer func(ctx context.Context, to, kind string, body any) (any, error)
		nt     func(*fakeNotifier)
		status int
		code   string
		field  string
		calls  []string
		want   want
	}{
		{name: "resizes in place", path: "/RESTfulSwarm/GM/request_update_container",
			body:   `{"job":"u","node":"w1","container_name":"u_task1","cpuset_cpus":"0,1","mem_limit":"32m"}`,
			status: 200, want: want{"0,1", "32m", 2},
			calls: []string{"nt.Reallocate(u_task1@w1 cpuset=[0 1] mem=33554432 prev=16777216)", "worker w1 update_task u_task1",
				"nt.Resized(u/u_task1@w1 cpuset=[0 1] mem_limit=32m)"}},
		{name: "resource path, memory only", path: "/api/v1/jobs/u/tasks/u_task1/update", body: `{"mem_limit":"64m"}`,
			status: 200, want: want{"0", "64m", 1},
			calls: []string{"nt.Reallocate(u_task1@w1 cpuset=[0] mem=67108864 prev=16777216)", "worker w1 update_task u_task1",
				"nt.Resized(u/u_task1@w1 cpuset=[0] mem_limit=64m)"}},
		{name: "cores refused by the jobmanager", path: "/RESTfulSwarm/GM/request_update_container",
			body: `{"job":"u","container_name":"u_task1","cpuset_cpus":"0-3"}`,
			nt: func(n *fakeNotifier) {
				n.reallocate = func(int, api.Reservation) error {
					return &api.FieldError{Kind: api.ErrConflict, Reason: "core 1 is held by x_task1"}
				}
			},
			status: 409, code: "conflict", want: unchanged,
			calls: []string{"nt.Reallocate(u_task1@w1 cpuset=[0 1 2 3] mem=16777216 prev=16777216)"}},
		{name: "worker fails: the cores are given back", path: "/api/v1/jobs/u/tasks/u_task1/update",
			body: `{"cpuset_cpus":"0,1","mem_limit":"32m"}`,
			answer: func(ctx context.Context, _, _ string, _ any) (any, error) {
				return nil, unreachableNow()
			},
			status: 503, code: "unavailable", want: unchanged,
			calls: []string{"nt.Reallocate(u_task1@w1 cpuset=[0 1] mem=33554432 prev=16777216)", "worker w1 update_task u_task1",
				"nt.Reallocate(u_task1@w1 cpuset=[0] mem=16777216 prev=33554432)"}},
		{name: "on another node", path: "/RESTfulSwarm/GM/request_update_container",
			body:   `{"job":"u","node":"w2","container_name":"u_task1","cpuset_cpus":"0,1"}`,
			status: 409, code: "conflict", field: "node", want: unchanged},
		{name: "unknown node", path: "/RESTfulSwarm/GM/request_update_container",
			body:   `{"job":"u","node":"w9","container_name":"u_task1","cpuset_cpus":"0,1"}`,
			status: 404, code: "not_found", field: "node", want: unchanged},
		{name: "bad cpuset", path: "/api/v1/jobs/u/tasks/u_task1/update", body: `{"cpuset_cpus":"1-0"}`,
			status: 400, code: "invalid", field: "cpuset_cpus", want: unchanged},
		{name: "bad memory", path: "/api/v1/jobs/u/tasks/u_task1/update", body: `{"mem_limit":"lots"}`,
			status: 400, code: "invalid", field: "mem_limit", want: unchanged},
		{name: "unknown job", path: "/api/v1/jobs/nope/tasks/u_task1/update", body: `{"cpuset_cpus":"0,1"}`,
			status: 404, code: "not_found", field: "job", want: unchanged},
		{name: "job required", path: "/RESTfulSwarm/GM/request_update_container", body: `{"container_name":"u_task1"}`,
			status: 400, code: "invalid", field: "job", want: unchanged},
		{name: "unknown task", path: "/api/v1/jobs/u/tasks/u_task9/update", body: `{"cpuset_cpus":"0,1"}`,
			status: 404, code: "not_found", field: "container", want: unchanged},
		{name: "task not running", path: "/api/v1/jobs/u/tasks/u_task2/update", body: `{"cpuset_cpus":"0,1"}`,
			status: 409, code: "conflict", field: "container", want: unchanged},
		{name: "unknown field", path: "/api/v1/jobs/u/tasks/u_task1/update", body: `{"cpus":"0,1"}`,
			status: 400, code: "invalid", field: "cpus", want: unchanged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, nil)
			e.worker(t, "w1", "docker")
			e.worker(t, "w2", "docker")
			j := placed("u", api.Running, "w1", "w2")
			j.Info.Tasks[1].Status = api.Down
			e.put(t, j)
			e.ws.answer = tc.answer
			if tc.nt != nil {
				tc.nt(e.nt)
			}
			w := e.do(t, "POST", tc.path, tc.body)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
			} else if got := decodeBody[api.Task](t, w); w.Code != tc.status || got.ContainerName != "u_task1" ||
				(want{got.CpusetCpus, got.MemLimit, got.ReqCores}) != tc.want {
				t.Errorf("got %d %+v", w.Code, got)
			}
			wantCalls(t, e.rec.All(), tc.calls...)
			for _, c := range e.ws.sent() {
				if u := c.body.(api.UpdateTask); u.CpusetCpus == "" || u.MemLimit == "" {
					t.Errorf("update_task %+v", u)
				}
			}
			task := e.job(t, "u").Info.Tasks.Get("u_task1")
			if got := (want{task.CpusetCpus, task.MemLimit, task.ReqCores}); got != tc.want {
				t.Errorf("stored %+v, want %+v", got, tc.want)
			}
		})
	}
}

// unreachableNow is a worker's timeout, without waiting for it.
func unreachableNow() error {
	return fmt.Errorf("bus: timed out waiting for a reply: %w", context.DeadlineExceeded)
}

func TestLeave(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		body   string
		swarm  func(*fakeSwarm)
		answer func(ctx context.Context, to, kind string, body any) (any, error)
		status int
		code   string
		field  string
		calls  []string
		// left is the worker that left; failed the task that failed with it.
		left, failed string
	}{
		{name: "worker leaves, its tasks fail", path: "/RESTfulSwarm/GM/request_leave", body: `{"hostname":"w1"}`, status: 200,
			calls: []string{"nt.WorkersChanged", "nt.TasksDone(l/l_task1@w1)", "worker w1 leave ", "swarm.RemoveNode(w1, true)"},
			left:  "w1", failed: "l_task1"},
		{name: "named by host name", path: "/RESTfulSwarm/GM/request_leave", body: `{"hostname":"host-w1"}`, status: 200,
			calls: []string{"nt.WorkersChanged", "nt.TasksDone(l/l_task1@w1)", "worker w1 leave ", "swarm.RemoveNode(w1, true)"},
			left:  "w1", failed: "l_task1"},
		{name: "resource path, simulated worker: no node to remove", path: "/api/v1/workers/s1/leave", status: 200,
			calls: []string{"nt.WorkersChanged", "nt.TasksDone(l/l_task2@s1)", "worker s1 leave "},
			left:  "s1", failed: "l_task2"},
		{name: "worker that does not acknowledge is removed anyway", path: "/api/v1/workers/w1/leave", status: 200,
			answer: func(context.Context, string, string, any) (any, error) { return nil, unreachableNow() },
			calls:  []string{"nt.WorkersChanged", "nt.TasksDone(l/l_task1@w1)", "worker w1 leave ", "swarm.RemoveNode(w1, true)"},
			left:   "w1", failed: "l_task1"},
		{name: "node removal fails", path: "/api/v1/workers/w1/leave", status: 503, code: "unavailable",
			swarm: func(s *fakeSwarm) { s.removeErr = fmt.Errorf("engine: %w", api.ErrUnavailable) },
			calls: []string{"nt.WorkersChanged", "nt.TasksDone(l/l_task1@w1)", "worker w1 leave ", "swarm.RemoveNode(w1, true)"},
			left:  "w1", failed: "l_task1"},
		{name: "node already gone from the swarm", path: "/api/v1/workers/w1/leave", status: 200,
			swarm: func(s *fakeSwarm) { s.removeErr = fmt.Errorf("engine: %w", api.ErrNotFound) },
			calls: []string{"nt.WorkersChanged", "nt.TasksDone(l/l_task1@w1)", "worker w1 leave ", "swarm.RemoveNode(w1, true)"},
			left:  "w1", failed: "l_task1"},
		{name: "unknown worker", path: "/RESTfulSwarm/GM/request_leave", body: `{"hostname":"w9"}`,
			status: 404, code: "not_found", field: "hostname"},
		{name: "unknown worker, resource path", path: "/api/v1/workers/w9/leave", status: 404, code: "not_found", field: "hostname"},
		{name: "the swarm manager itself", path: "/RESTfulSwarm/GM/request_leave", body: `{"hostname":"mgr"}`,
			status: 400, code: "invalid", field: "hostname"},
		{name: "hostname required", path: "/RESTfulSwarm/GM/request_leave", body: `{}`, status: 400, code: "invalid", field: "hostname"},
		{name: "malformed", path: "/RESTfulSwarm/GM/request_leave", body: `"w1"`, status: 400, code: "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, nil)
			if w := e.do(t, "GET", "/RESTfulSwarm/GM/init", ""); w.Code != 200 {
				t.Fatalf("init: %d %s", w.Code, w.Body)
			}
			e.rec.Reset()
			e.worker(t, "mgr", "docker")
			e.worker(t, "w1", "docker")
			e.worker(t, "s1", "sim")
			e.put(t, placed("l", api.Running, "w1", "s1"))
			e.ws.answer = tc.answer
			if tc.swarm != nil {
				e.sw.set(tc.swarm)
			}
			w := e.do(t, "POST", tc.path, tc.body)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
			} else if got := decodeBody[api.Worker](t, w); w.Code != 200 || got.ID != tc.left || got.Status != api.WorkerLeft {
				t.Errorf("got %d %+v", w.Code, got)
			}
			wantCalls(t, e.rec.All(), tc.calls...)
			for _, id := range []string{"mgr", "w1", "s1"} {
				want := api.WorkerReady
				if id == tc.left {
					want = api.WorkerLeft
				}
				if got := e.getWorker(t, id).Status; got != want {
					t.Errorf("worker %s %s, want %s", id, got, want)
				}
			}
			for _, task := range e.job(t, "l").Info.Tasks {
				failed := task.ContainerName == tc.failed
				if failed != (task.Status == api.Failed) || (failed && !strings.Contains(task.Error, "left the swarm")) {
					t.Errorf("task %s %s %q", task.ContainerName, task.Status, task.Error)
				}
			}
		})
	}
}

func TestDrainActivate(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		status int
		code   string
		field  string
		want   api.WorkerStatus // of w1 afterwards
		calls  []string
	}{
		{name: "drain", path: "/api/v1/workers/w1/drain", status: 200, want: api.WorkerDrained, calls: []string{"nt.WorkersChanged"}},
		{name: "drain by address", path: "/api/v1/workers/10.0.0.1/drain", status: 200, want: api.WorkerDrained, calls: []string{"nt.WorkersChanged"}},
		{name: "activate a drained worker", path: "/api/v1/workers/d1/activate", status: 200, want: api.WorkerReady, calls: []string{"nt.WorkersChanged"}},
		{name: "activate a ready worker", path: "/api/v1/workers/w1/activate", status: 200, want: api.WorkerReady, calls: []string{"nt.WorkersChanged"}},
		{name: "activate a worker that is down", path: "/api/v1/workers/x1/activate", status: 200, want: api.WorkerDown, calls: []string{"nt.WorkersChanged"}},
		{name: "drain a worker that left", path: "/api/v1/workers/l1/drain", status: 409, code: "conflict", field: "id"},
		{name: "activate a worker that left", path: "/api/v1/workers/l1/activate", status: 409, code: "conflict", field: "id"},
		{name: "drain unknown", path: "/api/v1/workers/w9/drain", status: 404, code: "not_found", field: "id"},
		{name: "activate unknown", path: "/api/v1/workers/w9/activate", status: 404, code: "not_found", field: "id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, nil)
			e.worker(t, "w1", "docker")
			e.worker(t, "d1", "docker", func(w *api.Worker) { w.Status, w.Address = api.WorkerDrained, "10.0.1.1" })
			e.worker(t, "x1", "docker", func(w *api.Worker) { w.Status, w.Address = api.WorkerDown, "10.0.2.1" })
			e.worker(t, "l1", "docker", func(w *api.Worker) { w.Status, w.Address = api.WorkerLeft, "10.0.3.1" })
			w := e.do(t, "POST", tc.path, "")
			wantCalls(t, e.rec.All(), tc.calls...)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
				if got := e.getWorker(t, "l1").Status; got != api.WorkerLeft {
					t.Errorf("l1 %s", got)
				}
				return
			}
			got := decodeBody[api.Worker](t, w)
			if w.Code != 200 || got.Status != tc.want {
				t.Errorf("got %d %+v", w.Code, got)
			}
			if stored := e.getWorker(t, got.ID).Status; stored != tc.want {
				t.Errorf("stored %s, want %s", stored, tc.want)
			}
		})
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		body   string
		answer func(ctx context.Context, to, kind string, body any) (any, error)
		status int
		code   string
		calls  []string
		reason string
	}{
		{name: "stops every started task", path: "/api/v1/jobs/s/stop", body: `{"reason":"user asked"}`, status: 200,
			calls:  []string{"worker w1 stop_task s_task1", "worker w2 stop_task s_task4", "worker w2 stop_task s_task5"},
			reason: "user asked"},
		{name: "default reason", path: "/api/v1/jobs/s/stop", status: 200,
			calls:  []string{"worker w1 stop_task s_task1", "worker w2 stop_task s_task4", "worker w2 stop_task s_task5"},
			reason: "stopped on request"},
		{name: "a worker that does not answer", path: "/api/v1/jobs/s/stop", status: 503, code: "unavailable",
			answer: func(_ context.Context, to, _ string, _ any) (any, error) {
				if to == "w1" {
					return nil, unreachableNow()
				}
				return nil, nil
			},
			calls:  []string{"worker w1 stop_task s_task1", "worker w2 stop_task s_task4", "worker w2 stop_task s_task5"},
			reason: "stopped on request"},
		{name: "unknown job", path: "/api/v1/jobs/nope/stop", status: 404, code: "not_found"},
		{name: "malformed body", path: "/api/v1/jobs/s/stop", body: `{"reason":`, status: 400, code: "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, nil)
			j := placed("s", api.Running, "w1", "", "w2", "w2", "w2")
			j.Info.Tasks[1].Status, j.Info.Tasks[1].Node = api.Ready, ""
			j.Info.Tasks[2].Status = api.Down
			j.Info.Tasks[3].Status = api.Cancelled
			j.Info.Tasks[4].Status = api.Scheduled
			e.put(t, j)
			e.ws.answer = tc.answer
			w := e.do(t, "POST", tc.path, tc.body)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, "")
			} else if got := decodeBody[map[string]string](t, w); w.Code != 200 || got["stopped"] != "s" {
				t.Errorf("got %d %v", w.Code, got)
			}
			wantCalls(t, e.rec.All(), tc.calls...)
			for _, c := range e.ws.sent() {
				if st := c.body.(api.StopTask); st.Job != "s" || st.Reason != tc.reason || st.Migrating {
					t.Errorf("stop_task %+v", st)
				}
			}
		})
	}
}

func TestLogs(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		answer func(ctx context.Context, to, kind string, body any) (any, error)
		status int
		code   string
		field  string
		want   []string
		calls  []string
	}{
		{name: "running task: asks its worker", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=2", status: 200,
			answer: func(_ context.Context, _, _ string, body any) (any, error) {
				return []string{fmt.Sprintf("tail=%d", body.(api.TaskLogs).Tail)}, nil
			},
			want: []string{"tail=2"}, calls: []string{"worker w1 task_logs g_task1"}},
		{name: "running task: default tail", path: "/api/v1/jobs/g/tasks/g_task1/logs", status: 200,
			answer: func(_ context.Context, _, _ string, body any) (any, error) {
				return []string{fmt.Sprintf("tail=%d", body.(api.TaskLogs).Tail)}, nil
			},
			want: []string{"tail=100"}, calls: []string{"worker w1 task_logs g_task1"}},
		{name: "ended task: from its record", path: "/api/v1/jobs/g/tasks/g_task2/logs", status: 200, want: []string{"a", "b", "c"}},
		{name: "worker unreachable", path: "/api/v1/jobs/g/tasks/g_task1/logs", status: 503, code: "unavailable",
			answer: func(context.Context, string, string, any) (any, error) { return nil, unreachableNow() },
			calls:  []string{"worker w1 task_logs g_task1"}},
		{name: "tail zero", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=0", status: 400, code: "invalid", field: "tail"},
		{name: "tail negative", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=-3", status: 400, code: "invalid", field: "tail"},
		{name: "tail not a number", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=x", status: 400, code: "invalid", field: "tail"},
		{name: "tail over the cap", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=10001", status: 400, code: "invalid", field: "tail"},
		{name: "unknown task", path: "/api/v1/jobs/g/tasks/g_task9/logs", status: 404, code: "not_found"},
		{name: "unknown job", path: "/api/v1/jobs/nope/tasks/g_task1/logs", status: 404, code: "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, nil)
			j := placed("g", api.Running, "w1", "w2")
			j.Info.Tasks[1].Status, j.Info.Tasks[1].Logs = api.Down, []string{"a", "b", "c"}
			e.put(t, j)
			e.ws.answer = tc.answer
			w := e.do(t, "GET", tc.path, "")
			wantCalls(t, e.rec.All(), tc.calls...)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
				return
			}
			got := decodeBody[struct {
				Task  string   `json:"task"`
				Lines []string `json:"lines"`
			}](t, w)
			if w.Code != 200 || !slices.Equal(got.Lines, tc.want) {
				t.Errorf("got %d %+v, want %q", w.Code, got, tc.want)
			}
		})
	}
}

// TestLogsTailOfEndedTask: ?tail applies to an ended task's lines too, as
// it does on the frontend: Manager.Logs cuts an ended (or unplaced) task's
// stored lines to the tail instead of returning them whole.
func TestLogsTailOfEndedTask(t *testing.T) {
	e := newGM(t, nil)
	j := placed("g", api.Down, "w1")
	j.Info.Tasks[0].Logs = []string{"a", "b", "c"}
	e.put(t, j)
	w := e.do(t, "GET", "/api/v1/jobs/g/tasks/g_task1/logs?tail=2", "")
	if !strings.Contains(w.Body.String(), `"lines":["b","c"]`) {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
}

// TestMiddleware: the middleware given to Router guards every route but /healthz.
func TestMiddleware(t *testing.T) {
	auth := func(c *gin.Context) {
		if c.GetHeader("Authorization") != "Bearer s3cret" {
			code, body := api.ErrorResponse(api.ErrUnauthorized)
			c.AbortWithStatusJSON(code, body)
			return
		}
		c.Next()
	}
	tests := []struct {
		name, method, path, body, token string
		status                          int
	}{
		{name: "healthz is open", method: "GET", path: "/healthz", status: 200},
		{name: "init without a token", method: "GET", path: "/RESTfulSwarm/GM/init", status: 401},
		{name: "init with the token", method: "GET", path: "/RESTfulSwarm/GM/init", token: "Bearer s3cret", status: 200},
		{name: "leave without a token", method: "POST", path: "/api/v1/workers/w1/leave", status: 401},
		{name: "drain with a wrong token", method: "POST", path: "/api/v1/workers/w1/drain", token: "Bearer s3cre", status: 401},
		{name: "stop without a token", method: "POST", path: "/api/v1/jobs/x/stop", status: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newGM(t, nil, auth)
			e.worker(t, "w1", "docker")
			w := e.do(t, tc.method, tc.path, tc.body, "Authorization", tc.token)
			if tc.status == 401 {
				wantError(t, w, 401, "unauthorized", "")
				wantCalls(t, e.rec.All())
				if got := e.getWorker(t, "w1").Status; got != api.WorkerReady {
					t.Errorf("w1 %s", got)
				}
			} else if w.Code != tc.status {
				t.Errorf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
		})
	}
}

// TestSwaggerRoute: /swagger/ serves this service's document and the UI
// without a token. (cmd/rswarm's TestSwaggerDocumentsEveryRoute checks
// that the document matches the routes.)
func TestSwaggerRoute(t *testing.T) {
	e := newGM(t, nil)
	w := e.do(t, "GET", "/swagger/doc.json", "")
	var doc struct {
		Swagger string                    `json:"swagger"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); w.Code != 200 || err != nil || doc.Swagger != "2.0" || len(doc.Paths) == 0 {
		t.Errorf("doc.json: %d %v %.200s", w.Code, err, w.Body)
	}
	if w := e.do(t, "GET", "/swagger/index.html", ""); w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("index.html: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}

// TestTaskResource: the task-named routes find the task by its name.
func TestTaskResource(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		status                   int
		code, field              string
		calls                    []string
	}{
		{name: "patch memory", method: "PATCH", path: "/api/v1/tasks/m_task1", body: `{"mem_limit":"32m"}`, status: 200,
			calls: []string{"nt.Reallocate(m_task1@w1 cpuset=[0] mem=33554432 prev=16777216)", "worker w1 update_task m_task1",
				"nt.Resized(m/m_task1@w1 cpuset=[0] mem_limit=32m)"}},
		{name: "patch an unknown task", method: "PATCH", path: "/api/v1/tasks/m_task9", body: `{}`, status: 404, code: "not_found", field: "name"},
		{name: "patch a name that is no task name", method: "PATCH", path: "/api/v1/tasks/plain", body: `{}`, status: 400, code: "invalid", field: "name"},
		{name: "patch with an unknown field", method: "PATCH", path: "/api/v1/tasks/m_task1", body: `{"cores":2}`, status: 400, code: "invalid", field: "cores"},
		{name: "checkpoint", method: "POST", path: "/api/v1/tasks/m_task1/checkpoint", status: 200, calls: []string{"worker w1 checkpoint m_task1"}},
		{name: "checkpoint an unknown job", method: "POST", path: "/api/v1/tasks/nope_task1/checkpoint", status: 404, code: "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := migEnv(t)
			w := e.do(t, tc.method, tc.path, tc.body)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
			} else if w.Code != tc.status {
				t.Errorf("got %d %s", w.Code, w.Body)
			}
			wantCalls(t, e.rec.All(), tc.calls...)
		})
	}
}

// TestDrainRequeues: job q has q_task1 on w1 (cpuset 0) and q_task2 on w2
// (cpuset 1); w2's 4 cores are all busy, so draining w1 leaves q_task1
// nowhere to go: its whole job goes back to the queue (both tasks stopped
// as for a move, not reported as ended; the job Ready, unplaced, with a
// note; its cores freed; the jobmanager told to queue it). If a stop
// fails, the task is listed as remaining, and the task already stopped
// (silently, as for a move) is recorded Failed with why, so that the
// jobmanager stops the rest of the job as for any failure.
func TestDrainRequeues(t *testing.T) {
	tests := []struct {
		name      string
		stopFails bool
		wantJob   api.State
		calls     []string
	}{
		{name: "fits nowhere: the job is requeued", wantJob: api.Ready,
			calls: []string{"nt.WorkersChanged", "worker w1 stop_task q_task1", "worker w2 stop_task q_task2",
				"nt.Unplace(q q_task1,q_task2)"}},
		{name: "a stop fails: the task remains, the one stopped is failed", stopFails: true, wantJob: api.Running,
			calls: []string{"nt.WorkersChanged", "worker w1 stop_task q_task1", "worker w2 stop_task q_task2", "nt.TasksDone(q/q_task1@w1)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newGM(t, nil)
			e.worker(t, "w1", "docker")
			e.worker(t, "w2", "docker", func(w *api.Worker) {
				w.SetAllocation(map[int]string{0: "a", 1: "q_task2", 2: "b", 3: "c"}, 0)
			})
			e.put(t, placed("q", api.Running, "w1", "w2"))
			if tc.stopFails {
				e.ws.answer = func(_ context.Context, to, kind string, _ any) (any, error) {
					if to == "w2" && kind == api.KindStopTask {
						return nil, errors.New("w2 unreachable")
					}
					return "ok", nil
				}
			}
			w := e.do(t, "POST", "/api/v1/workers/w1/drain", "")
			if w.Code != 200 {
				t.Fatalf("drain: %d %s", w.Code, w.Body)
			}
			wantCalls(t, e.rec.All(), tc.calls...)
			for _, c := range e.ws.sent() {
				if st, ok := c.body.(api.StopTask); ok && !st.Migrating {
					t.Errorf("stop %+v is reported as the task's end (Migrating false)", st)
				}
			}
			got := decodeBody[globalmanager.DrainResult](t, w)
			j := e.job(t, "q")
			if j.Status != tc.wantJob || got.Status != api.WorkerDrained {
				t.Fatalf("job %s, worker %s", j.Status, got.Status)
			}
			if tc.stopFails {
				if len(got.Remaining) != 1 || len(got.Requeued) != 0 || !strings.Contains(got.Remaining[0].Reason, "w2 unreachable") {
					t.Errorf("drain result %+v", got)
				}
				if t1 := j.Info.Tasks.Get("q_task1"); t1.Status != api.Failed || !strings.Contains(t1.Error, "w2 unreachable") {
					t.Errorf("q_task1 %s %q, want Failed saying why", t1.Status, t1.Error)
				}
				return
			}
			if len(got.Requeued) != 1 || got.Requeued[0].Task != "q_task1" || !strings.Contains(got.Requeued[0].Reason, "free cores") ||
				len(got.Remaining) != 0 || !got.Empty {
				t.Errorf("drain result %+v", got)
			}
			if len(j.Notes) != 1 || !strings.HasPrefix(j.Notes[0], "requeued: task q_task1 could not leave drained worker w1") {
				t.Errorf("notes %q", j.Notes)
			}
			for _, tk := range j.Info.Tasks {
				if tk.Status != api.Ready || tk.Node != "" || tk.CpusetCpus != "" || tk.StartTime != 0 {
					t.Errorf("task %+v after the requeue", tk)
				}
			}
		})
	}
}

// TestDeployRefusesAJobAboveTheSizeLimit: issue 10 saw the globalmanager
// cut deploy bodies at 8 MiB (the frontend took 16 MiB), and accepted jobs
// failed with "unexpected end of JSON input". A body above api.MaxJobBytes
// is now refused, saying why, and nothing is sent to a worker.
func TestDeployRefusesAJobAboveTheSizeLimit(t *testing.T) {
	e := newGM(t, nil)
	e.worker(t, "w1", "sim")
	j := placed("big", api.Scheduled, "w1")
	j.Info.Tasks[0].Environment = map[string]string{"PAD": strings.Repeat("x", api.MaxJobBytes)}
	w := e.do(t, "POST", "/RESTfulSwarm/GM/request_new_job", jsonOf(t, j))
	wantError(t, w, 400, "invalid", "")
	if !strings.Contains(w.Body.String(), "larger than") {
		t.Errorf("refusal %s does not say the job is too large", w.Body)
	}
	if calls := e.rec.All(); slices.ContainsFunc(calls, func(c string) bool { return strings.Contains(c, "run_task") }) {
		t.Errorf("calls %q: a task was sent", calls)
	}
}

// TestPruneOnlyThisClustersNetworks: the networks of this cluster's ended
// jobs are removed; another RSwarm's on the same engine (its jobs unknown
// here) and this cluster's live ones are left alone.
func TestPruneOnlyThisClustersNetworks(t *testing.T) {
	e := newGM(t, func(c *globalmanager.Config) { c.Cluster, c.PruneInterval = "c1", 10*time.Millisecond })
	e.put(t, placed("done", api.Down, "w1"))
	e.put(t, placed("live", api.Running, "w1"))
	net := func(name, cluster, job string) api.NetworkInfo {
		return api.NetworkInfo{ID: name, Name: name, Labels: map[string]string{api.LabelManaged: "1", api.LabelCluster: cluster, api.LabelJob: job}}
	}
	e.sw.set(func(s *fakeSwarm) {
		s.nets = []api.NetworkInfo{net("n-done", "c1", "done"), net("n-live", "c1", "live"), net("n-other", "c2", "theirs")}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.m.Run(ctx) }()
	apitest.Eventually(t, 5*time.Second, func() error {
		if !slices.Contains(e.rec.All(), "swarm.RemoveNetwork(n-done)") {
			return errors.New("n-done not removed yet")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, c := range e.rec.All() {
		if c == "swarm.RemoveNetwork(n-other)" || c == "swarm.RemoveNetwork(n-live)" {
			t.Errorf("%s: only this cluster's ended jobs' networks may go", c)
		}
	}
}

package frontend_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/frontend"
	"github.com/rswarm/rswarm/store"
)

// Handler tests: every route of Server.Router, driven through
// net/http/httptest, over the real SQLite store and hand-written fakes of
// the jobmanager (Scheduler) and the globalmanager (Cluster) that record
// their calls in one shared, ordered log.

// fakeScheduler is the jobmanager: it knows the strategies "fifo" and
// "best-fit" and refuses other names as the real link does (api.Invalid on
// field "name").
type fakeScheduler struct {
	rec *apitest.Recorder

	mu          sync.Mutex
	current     string
	stats       api.SchedulerStats
	submitErr   error
	cancelErr   error
	strategyErr error
	statsErr    error
}

var strategies = map[string]string{"fifo": "first come, first placed", "best-fit": "fullest worker that fits"}

func (f *fakeScheduler) JobSubmitted(_ context.Context, names ...string) error {
	f.rec.Add("sched.JobSubmitted(%s)", strings.Join(names, ","))
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.submitErr
}

func (f *fakeScheduler) JobCancelled(_ context.Context, name string) error {
	f.rec.Add("sched.JobCancelled(%s)", name)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelErr
}

func (f *fakeScheduler) SwitchStrategy(_ context.Context, name string) error {
	f.rec.Add("sched.SwitchStrategy(%s)", name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := strategies[name]; !ok {
		return api.Invalid("name", "unknown strategy %q (want one of best-fit, fifo)", name)
	}
	f.current = name
	return nil
}

func (f *fakeScheduler) Strategy(context.Context) (api.StrategyInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.strategyErr != nil {
		return api.StrategyInfo{}, f.strategyErr
	}
	return api.StrategyInfo{Name: f.current, Strategies: strategies}, nil
}

func (f *fakeScheduler) Stats(context.Context) (api.SchedulerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats, f.statsErr
}

func (f *fakeScheduler) set(fn func(*fakeScheduler)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fakeCluster is the globalmanager.
type fakeCluster struct {
	rec *apitest.Recorder

	mu      sync.Mutex
	stopErr error
	logs    func(job, task string, tail int) ([]string, error)
}

func (f *fakeCluster) Stop(_ context.Context, job, reason string) error {
	f.rec.Add("cluster.Stop(%s, %s)", job, reason)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stopErr
}

func (f *fakeCluster) Logs(_ context.Context, job, task string, tail int) ([]string, error) {
	f.rec.Add("cluster.Logs(%s, %s, %d)", job, task, tail)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logs == nil {
		return nil, nil
	}
	return f.logs(job, task, tail)
}

// failingPing is the store with a Ping that fails.
type failingPing struct{ *store.SQLite }

func (failingPing) Ping(context.Context) error {
	return errors.New("store: ping: disk on fire")
}

// noFeed hides the store's change feed.
type noFeed struct{ frontend.Jobs }

// feedWatch is the store, telling when the events hub first reads the
// change feed after priming its view: from then on, every write is an event.
type feedWatch struct {
	*store.SQLite
	once   sync.Once
	polled chan struct{}
	// priming, when set, is signalled when the hub starts priming, and
	// the hub waits for gate before it reads the feed's head.
	priming chan struct{}
	gate    chan struct{}
}

func (f *feedWatch) JobsChangedSince(ctx context.Context, after int64, limit int) ([]*api.Job, int64, error) {
	if after < 0 && f.priming != nil {
		select {
		case f.priming <- struct{}{}:
		default:
		}
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	if after >= 0 {
		f.once.Do(func() { close(f.polled) })
	}
	return f.SQLite.JobsChangedSince(ctx, after, limit)
}

// feEnv is one frontend over a fresh store.
type feEnv struct {
	st      *store.SQLite
	sched   *fakeScheduler
	cluster *fakeCluster
	rec     *apitest.Recorder
	srv     *frontend.Server
	h       http.Handler
	// clock is the seconds the frontend's clock returns next.
	clock atomic.Int64
}

const epoch = 1_700_000_000

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type feOption struct {
	cfg  func(*frontend.Config)
	jobs func(*store.SQLite) frontend.Jobs
	mw   []gin.HandlerFunc
}

func newFE(t *testing.T, opt feOption) *feEnv {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &feEnv{st: st, rec: &apitest.Recorder{}}
	e.clock.Store(epoch)
	e.sched = &fakeScheduler{rec: e.rec, current: "fifo"}
	e.cluster = &fakeCluster{rec: e.rec}
	cfg := frontend.DefaultConfig()
	cfg.Logger = discard()
	cfg.EventPoll = 5 * time.Millisecond
	cfg.CallTimeout = 300 * time.Millisecond // calls to a fake that fails are retried this long
	// Each reading of the clock is one second after the last, so that
	// submit_time orders jobs by submission.
	cfg.Now = func() time.Time { return time.Unix(e.clock.Add(1)-1, 0) }
	if opt.cfg != nil {
		opt.cfg(&cfg)
	}
	var jobs frontend.Jobs = st
	if opt.jobs != nil {
		jobs = opt.jobs(st)
	}
	e.srv = frontend.New(cfg, jobs, e.sched, e.cluster)
	e.h = e.srv.Router(opt.mw...)
	return e
}

func (e *feEnv) do(t *testing.T, method, path, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// put stores a job as it is, bypassing validation.
func (e *feEnv) put(t *testing.T, j *api.Job) {
	t.Helper()
	if err := e.st.CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

func (e *feEnv) stored(t *testing.T, name string) (*api.Job, bool) {
	t.Helper()
	j, err := e.st.GetJob(context.Background(), name)
	if errors.Is(err, api.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return j, true
}

// jobJSON is the JSON of a valid one-task job named name, changed by fns.
func jobJSON(t *testing.T, name string, fns ...func(*api.Job)) string {
	t.Helper()
	j := apitest.Job(name, 1, 1, "sleep 1")
	for _, fn := range fns {
		fn(j)
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jobWith returns a job in state st, its tasks placed on nodes (one task per node).
func jobWith(name string, st api.State, submit float64, session string, nodes ...string) *api.Job {
	j := apitest.Job(name, max(len(nodes), 1), 1, "sleep 60")
	j.Status, j.SubmitTime, j.Session = st, submit, api.Session(session)
	for i, n := range nodes {
		t := j.Info.Tasks[i]
		t.Node, t.CpusetCpus, t.Status = n, fmt.Sprint(i), st
	}
	if len(nodes) == 0 {
		j.Info.Tasks[0].Status = st
	}
	return j
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
	var eb api.ErrorBody
	if err := strictJSON(w.Body.Bytes(), &eb); err != nil {
		t.Fatalf("error body %s: %v", w.Body, err)
	}
	if eb.Error.Code != code || eb.Error.Field != field || eb.Error.Message == "" {
		t.Errorf("error %+v, want code %q field %q and a message", eb.Error, code, field)
	}
	return eb.Error
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
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

func TestHealthAndReadiness(t *testing.T) {
	tests := []struct {
		name   string
		opt    feOption
		sched  func(*fakeScheduler)
		path   string
		status int
		code   string
		body   string
	}{
		{name: "healthz", path: "/healthz", status: 200, body: `{"status":"ok"}`},
		{name: "ready", path: "/readyz", status: 200, body: `{"status":"ready"}`},
		{name: "jobmanager unreachable", path: "/readyz", status: 503, code: "unavailable",
			sched: func(s *fakeScheduler) { s.strategyErr = fmt.Errorf("bus: timed out: %w", context.DeadlineExceeded) }},
		{name: "jobmanager refuses", path: "/readyz", status: 503, code: "unavailable",
			sched: func(s *fakeScheduler) { s.strategyErr = errors.New("jobmanager: broken") }},
		{name: "store unreachable", path: "/readyz", status: 503, code: "unavailable",
			opt: feOption{jobs: func(s *store.SQLite) frontend.Jobs { return failingPing{s} }}},
		{name: "healthz ignores a broken jobmanager", path: "/healthz", status: 200, body: `{"status":"ok"}`,
			sched: func(s *fakeScheduler) { s.strategyErr = errors.New("jobmanager: broken") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, tc.opt)
			if tc.sched != nil {
				e.sched.set(tc.sched)
			}
			w := e.do(t, "GET", tc.path, "")
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, "")
				return
			}
			if w.Code != tc.status || w.Body.String() != tc.body {
				t.Errorf("got %d %s, want %d %s", w.Code, w.Body, tc.status, tc.body)
			}
		})
	}
}

func TestSubmitJob(t *testing.T) {
	tests := []struct {
		name  string
		opt   feOption
		setup func(t *testing.T, e *feEnv)
		sched func(*fakeScheduler)
		body  func(t *testing.T) string
		// status, code and field of the answer; stored says whether job
		// "a" is stored afterwards with the submitted content.
		status int
		code   string
		field  string
		stored bool
	}{
		{name: "accepted", status: 201, stored: true,
			body: func(t *testing.T) string { return jobJSON(t, "a") }},
		{name: "accepted with a session and a priority", status: 201, stored: true,
			body: func(t *testing.T) string {
				return jobJSON(t, "a", func(j *api.Job) { j.Session, j.Priority = "exp1", 5 })
			}},
		{name: "session given as a number", status: 201, stored: true,
			body: func(t *testing.T) string {
				return strings.Replace(jobJSON(t, "a"), `"job_name":"a"`, `"job_name":"a","session":7`, 1)
			}},
		{name: "accepted although the jobmanager is unreachable", status: 201, stored: true,
			sched: func(s *fakeScheduler) { s.submitErr = api.ErrUnavailable },
			body:  func(t *testing.T) string { return jobJSON(t, "a") }},
		{name: "pinned to a registered node", status: 201, stored: true,
			setup: func(t *testing.T, e *feEnv) { putWorker(t, e.st, "w1", 4) },
			body: func(t *testing.T) string {
				return jobJSON(t, "a", func(j *api.Job) { j.Info.Tasks[0].Node, j.Info.Tasks[0].CpusetCpus = "w1", "3" })
			}},
		{name: "zero cores", status: 400, code: "invalid", field: "job_info.tasks.a_task1.req_cores",
			body: func(t *testing.T) string { return jobJSON(t, "a", func(j *api.Job) { j.Info.Tasks[0].ReqCores = 0 }) }},
		{name: "more cores than the cap", status: 400, code: "invalid", field: "job_info.tasks.a_task1.req_cores",
			opt:  feOption{cfg: func(c *frontend.Config) { c.Limits.MaxCores = 2 }},
			body: func(t *testing.T) string { return jobJSON(t, "a", func(j *api.Job) { j.Info.Tasks[0].ReqCores = 3 }) }},
		{name: "bad job name", status: 400, code: "invalid", field: "job_name",
			body: func(t *testing.T) string {
				return strings.Replace(jobJSON(t, "a"), `"job_name":"a"`, `"job_name":"-a"`, 1)
			}},
		{name: "task not prefixed with the job name", status: 400, code: "invalid", field: "job_info.tasks.other_1.container_name",
			body: func(t *testing.T) string {
				return jobJSON(t, "a", func(j *api.Job) { j.Info.Tasks[0].ContainerName = "other_1" })
			}},
		{name: "image with shell metacharacters", status: 400, code: "invalid", field: "job_info.tasks.a_task1.image",
			body: func(t *testing.T) string {
				return jobJSON(t, "a", func(j *api.Job) { j.Info.Tasks[0].Image = "busybox;rm -rf /" })
			}},
		{name: "host volume refused", status: 400, code: "invalid", field: "job_info.tasks.a_task1.volumes./etc",
			body: func(t *testing.T) string {
				return jobJSON(t, "a", func(j *api.Job) {
					j.Info.Tasks[0].Volumes = map[string]api.Volume{"/etc": {Bind: "/host-etc"}}
				})
			}},
		{name: "pinned to an unregistered node", status: 400, code: "invalid", field: "job_info.tasks.a_task1.node",
			body: func(t *testing.T) string {
				return jobJSON(t, "a", func(j *api.Job) { j.Info.Tasks[0].Node, j.Info.Tasks[0].CpusetCpus = "nowhere", "0" })
			}},
		{name: "pinned to a core the node lacks", status: 400, code: "invalid", field: "job_info.tasks.a_task1.cpuset_cpus",
			setup: func(t *testing.T, e *feEnv) { putWorker(t, e.st, "w1", 4) },
			body: func(t *testing.T) string {
				return jobJSON(t, "a", func(j *api.Job) { j.Info.Tasks[0].Node, j.Info.Tasks[0].CpusetCpus = "w1", "4" })
			}},
		{name: "original swagger's cpu_count", status: 400, code: "invalid", field: "job_info.tasks.a_task1.cpu_count",
			body: func(t *testing.T) string { return strings.Replace(jobJSON(t, "a"), `"req_cores"`, `"cpu_count"`, 1) }},
		{name: "unknown field", status: 400, code: "invalid", field: "colour",
			body: func(t *testing.T) string { return strings.Replace(jobJSON(t, "a"), `{`, `{"colour":"red",`, 1) }},
		{name: "wrong type", status: 400, code: "invalid", field: "priority",
			body: func(t *testing.T) string { return strings.Replace(jobJSON(t, "a"), `{`, `{"priority":"high",`, 1) }},
		{name: "malformed JSON", status: 400, code: "invalid",
			body: func(*testing.T) string { return `{"job_name":"a",` }},
		{name: "two JSON values", status: 400, code: "invalid",
			body: func(t *testing.T) string { return jobJSON(t, "a") + " {}" }},
		{name: "empty body", status: 400, code: "invalid",
			body: func(*testing.T) string { return "" }},
		{name: "body over the size limit", status: 400, code: "invalid",
			opt:  feOption{cfg: func(c *frontend.Config) { c.MaxBody = 64 }},
			body: func(t *testing.T) string { return jobJSON(t, "a") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, tc.opt)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			if tc.sched != nil {
				e.sched.set(tc.sched)
			}
			w := e.do(t, "POST", "/api/v1/jobs", tc.body(t))
			j, ok := e.stored(t, "a")
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
				if ok {
					t.Errorf("a refused job was stored: %+v", j)
				}
				wantCalls(t, e.rec.All())
				return
			}
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if got := decodeBody[frontend.Accepted](t, w); got != (frontend.Accepted{JobName: "a", Status: "Ready"}) {
				t.Errorf("answer %+v", got)
			}
			if loc := w.Header().Get("Location"); loc != "/api/v1/jobs/a" {
				t.Errorf("Location %q", loc)
			}
			if !ok {
				t.Fatal("accepted job not stored")
			}
			if j.Status != api.Ready || j.SubmitTime != epoch || j.Info.Network.Name != "rsnet_a" || j.Info.Tasks[0].Status != api.Ready {
				t.Errorf("stored job %+v", j)
			}
			wantCalls(t, e.rec.All(), "sched.JobSubmitted(a)")
		})
	}
}

func TestSubmitDuplicateName(t *testing.T) {
	for _, path := range []string{"/api/v1/jobs", "/RESTfulSwarm/FE/request_new_job"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, feOption{})
			if w := e.do(t, "POST", path, jobJSON(t, "dup")); w.Code/100 != 2 {
				t.Fatalf("first submission: %d %s", w.Code, w.Body)
			}
			e.rec.Reset()
			w := e.do(t, "POST", path, jobJSON(t, "dup", func(j *api.Job) { j.Info.Tasks[0].ReqCores = 7 }))
			wantError(t, w, 409, "conflict", "job_name")
			j, _ := e.stored(t, "dup")
			if j.Info.Tasks[0].ReqCores != 1 || j.SubmitTime != epoch {
				t.Errorf("the first job was changed: %+v", j.Info.Tasks[0])
			}
			wantCalls(t, e.rec.All())
		})
	}
}

func TestSubmitOriginal(t *testing.T) {
	tests := []struct {
		name   string
		body   func(t *testing.T) string
		status int
		code   string
		field  string
	}{
		{name: "accepted", status: 200, body: func(t *testing.T) string { return jobJSON(t, "o") }},
		{name: "zero cores", status: 400, code: "invalid", field: "job_info.tasks.o_task1.req_cores",
			body: func(t *testing.T) string { return jobJSON(t, "o", func(j *api.Job) { j.Info.Tasks[0].ReqCores = 0 }) }},
		{name: "original swagger's cpu_count", status: 400, code: "invalid", field: "job_info.tasks.o_task1.cpu_count",
			body: func(t *testing.T) string { return strings.Replace(jobJSON(t, "o"), `"req_cores"`, `"cpu_count"`, 1) }},
		// The original's Weave plugin is not installed: its jobs run on an
		// attachable overlay, with a note saying so.
		{name: "weave driver runs as an overlay", status: 200,
			body: func(t *testing.T) string {
				return jobJSON(t, "o", func(j *api.Job) { j.Info.Network.Driver = "weaveworks/net-plugin:latest_release" })
			}},
		{name: "malformed JSON", status: 400, code: "invalid", body: func(*testing.T) string { return `[` }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, feOption{})
			w := e.do(t, "POST", "/RESTfulSwarm/FE/request_new_job", tc.body(t))
			stored, ok := e.stored(t, "o")
			if ok && strings.HasPrefix(tc.name, "weave") && (stored.Info.Network.Driver != "overlay" || len(stored.Notes) != 1) {
				t.Errorf("stored network %+v, notes %q", stored.Info.Network, stored.Notes)
			}
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
				if ok {
					t.Error("a refused job was stored")
				}
				return
			}
			if w.Code != 200 || w.Body.String() != "OK" {
				t.Errorf("got %d %q, want 200 OK", w.Code, w.Body)
			}
			if !ok {
				t.Error("accepted job not stored")
			}
			wantCalls(t, e.rec.All(), "sched.JobSubmitted(o)")
		})
	}
}

func TestSubmitBatch(t *testing.T) {
	type result struct {
		name, status, code, field string
		httpCode                  int
	}
	tests := []struct {
		name   string
		body   func(t *testing.T) string
		status int
		code   string // of a refused request
		want   []result
		stored []string
		calls  []string
	}{
		{name: "one good, one bad", status: 200,
			body: func(t *testing.T) string {
				return "[" + jobJSON(t, "b1") + "," + jobJSON(t, "b2", func(j *api.Job) { j.Info.Tasks[0].Image = "" }) + "]"
			},
			want: []result{
				{name: "b1", status: "Ready", httpCode: 201},
				{name: "b2", code: "invalid", field: "job_info.tasks.b2_task1.image", httpCode: 400},
			},
			stored: []string{"b1"}, calls: []string{"sched.JobSubmitted(b1)"}},
		{name: "the same name twice", status: 200,
			body: func(t *testing.T) string { return "[" + jobJSON(t, "b1") + "," + jobJSON(t, "b1") + "]" },
			want: []result{
				{name: "b1", status: "Ready", httpCode: 201},
				{name: "b1", code: "conflict", field: "job_name", httpCode: 409},
			},
			stored: []string{"b1"}, calls: []string{"sched.JobSubmitted(b1)"}},
		{name: "an item that is not a job", status: 200,
			body: func(t *testing.T) string { return " \n[5, " + jobJSON(t, "b2") + "]" },
			want: []result{
				{code: "invalid", httpCode: 400},
				{name: "b2", status: "Ready", httpCode: 201},
			},
			stored: []string{"b2"}, calls: []string{"sched.JobSubmitted(b2)"}},
		{name: "unknown field in one item", status: 200,
			body: func(t *testing.T) string {
				return "[" + strings.Replace(jobJSON(t, "b1"), `{`, `{"colour":1,`, 1) + "]"
			},
			want: []result{{code: "invalid", field: "colour", httpCode: 400}}},
		{name: "empty batch", status: 200, body: func(*testing.T) string { return "[]" }, want: []result{}},
		{name: "malformed array", status: 400, code: "invalid",
			body: func(t *testing.T) string { return "[" + jobJSON(t, "b1") + "," }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, feOption{})
			w := e.do(t, "POST", "/api/v1/jobs", tc.body(t))
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, "")
				if jobs, _ := e.st.ListJobs(context.Background(), api.JobFilter{}); len(jobs) != 0 {
					t.Errorf("%d jobs stored", len(jobs))
				}
				return
			}
			if w.Code != tc.status {
				t.Fatalf("status %d; body %s", w.Code, w.Body)
			}
			got := decodeBody[[]frontend.Accepted](t, w)
			if len(got) != len(tc.want) {
				t.Fatalf("%d results, want %d: %s", len(got), len(tc.want), w.Body)
			}
			for i, g := range got {
				r := result{name: g.JobName, status: g.Status, httpCode: g.Code}
				if g.Error != nil {
					r.code, r.field = g.Error.Code, g.Error.Field
					if g.Error.Message == "" {
						t.Errorf("result %d: an error without a message", i)
					}
				}
				if r != tc.want[i] {
					t.Errorf("result %d: %+v, want %+v", i, r, tc.want[i])
				}
			}
			jobs, err := e.st.ListJobs(context.Background(), api.JobFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, j := range jobs {
				names = append(names, j.Name)
			}
			if !slices.Equal(names, tc.stored) {
				t.Errorf("stored %q, want %q", names, tc.stored)
			}
			wantCalls(t, e.rec.All(), tc.calls...)
		})
	}
}

func TestGetJob(t *testing.T) {
	e := newFE(t, feOption{})
	e.put(t, jobWith("g1", api.Running, 5, "s1", "w1"))
	tests := []struct {
		name, path string
		status     int
	}{
		{name: "known", path: "/api/v1/jobs/g1", status: 200},
		{name: "unknown", path: "/api/v1/jobs/nope", status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := e.do(t, "GET", tc.path, "")
			if tc.status != 200 {
				wantError(t, w, tc.status, "not_found", "")
				return
			}
			j := decodeBody[api.Job](t, w)
			if w.Code != 200 || j.Name != "g1" || j.Status != api.Running || j.Session != "s1" || j.Info.Tasks[0].Node != "w1" {
				t.Errorf("got %d %+v", w.Code, j)
			}
		})
	}
}

func TestListJobs(t *testing.T) {
	e := newFE(t, feOption{})
	e.put(t, jobWith("l1", api.Ready, 1, "s1"))
	e.put(t, jobWith("l2", api.Running, 2, "s1", "w1"))
	e.put(t, jobWith("l3", api.Down, 3, "s2", "w2"))
	e.put(t, jobWith("l4", api.Failed, 4, "s2", "w2", "w1"))
	e.put(t, jobWith("l5", api.Cancelled, 5, ""))
	tests := []struct {
		name  string
		query string
		want  []string
		total int
		field string // of a 400
	}{
		{name: "all", query: "", want: []string{"l1", "l2", "l3", "l4", "l5"}, total: 5},
		{name: "one status", query: "status=Running", want: []string{"l2"}, total: 1},
		{name: "repeated status", query: "status=Ready&status=Down", want: []string{"l1", "l3"}, total: 2},
		{name: "comma-separated status", query: "status=Down,Failed", want: []string{"l3", "l4"}, total: 2},
		{name: "session", query: "session=s2", want: []string{"l3", "l4"}, total: 2},
		{name: "node", query: "node=w1", want: []string{"l2", "l4"}, total: 2},
		{name: "session and status", query: "session=s1&status=Running", want: []string{"l2"}, total: 1},
		{name: "no match", query: "session=none", want: []string{}, total: 0},
		{name: "limit", query: "limit=2", want: []string{"l1", "l2"}, total: 5},
		{name: "offset", query: "offset=3", want: []string{"l4", "l5"}, total: 5},
		{name: "page", query: "limit=2&offset=2", want: []string{"l3", "l4"}, total: 5},
		{name: "page of a filter", query: "session=s2&limit=1&offset=1", want: []string{"l4"}, total: 2},
		{name: "offset past the end", query: "offset=9", want: []string{}, total: 5},
		{name: "negative limit", query: "limit=-1", field: "limit"},
		{name: "limit not a number", query: "limit=ten", field: "limit"},
		{name: "limit over the cap", query: "limit=10001", field: "limit"},
		{name: "negative offset", query: "offset=-5", field: "offset"},
		{name: "unknown status", query: "status=Sleeping", field: "status"},
		{name: "unknown status in a list", query: "status=Down,running", field: "status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := e.do(t, "GET", "/api/v1/jobs?"+tc.query, "")
			if tc.field != "" {
				wantError(t, w, 400, "invalid", tc.field)
				return
			}
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if !strings.Contains(w.Body.String(), `"jobs":[`) {
				t.Errorf("jobs is not a JSON array: %s", w.Body)
			}
			l := decodeBody[api.JobList](t, w)
			names := []string{}
			for _, j := range l.Jobs {
				names = append(names, j.Name)
			}
			if !slices.Equal(names, tc.want) || l.Total != tc.total {
				t.Errorf("got %q total %d, want %q total %d", names, l.Total, tc.want, tc.total)
			}
		})
	}
}

func TestDeleteJob(t *testing.T) {
	tests := []struct {
		name    string
		job     *api.Job
		cluster func(*fakeCluster)
		sched   func(*fakeScheduler)
		status  int
		want    frontend.Deleted
		calls   []string
		// left is the job's state in the store afterwards; 0 with gone.
		left api.State
		gone bool
	}{
		{name: "waiting job is cancelled", job: jobWith("d", api.Ready, 1, ""), status: 200,
			want:  frontend.Deleted{JobName: "d", Action: "cancelled", Status: "Cancelled"},
			calls: []string{"cluster.Stop(d, cancelled by user)", "sched.JobCancelled(d)"}, left: api.Cancelled},
		{name: "running job is cancelled", job: jobWith("d", api.Running, 1, "", "w1", "w2"), status: 200,
			want:  frontend.Deleted{JobName: "d", Action: "cancelled", Status: "Cancelled"},
			calls: []string{"cluster.Stop(d, cancelled by user)", "sched.JobCancelled(d)"}, left: api.Cancelled},
		{name: "cancelled although the globalmanager is unreachable", job: jobWith("d", api.Running, 1, "", "w1"), status: 200,
			cluster: func(c *fakeCluster) { c.stopErr = api.ErrUnavailable },
			want:    frontend.Deleted{JobName: "d", Action: "cancelled", Status: "Cancelled"},
			calls:   []string{"cluster.Stop(d, cancelled by user)", "sched.JobCancelled(d)"}, left: api.Cancelled},
		{name: "cancelled although the jobmanager is unreachable", job: jobWith("d", api.Running, 1, "", "w1"), status: 200,
			sched: func(s *fakeScheduler) { s.cancelErr = api.ErrUnavailable },
			want:  frontend.Deleted{JobName: "d", Action: "cancelled", Status: "Cancelled"},
			calls: []string{"cluster.Stop(d, cancelled by user)", "sched.JobCancelled(d)"}, left: api.Cancelled},
		{name: "refused at once while the jobmanager is down", job: jobWith("d", api.Running, 1, "", "w1"), status: 503,
			sched: func(s *fakeScheduler) { s.strategyErr = fmt.Errorf("bus: timed out: %w", context.DeadlineExceeded) },
			left:  api.Running},
		{name: "finished job is deleted", job: jobWith("d", api.Down, 1, "", "w1"), status: 200,
			want: frontend.Deleted{JobName: "d", Action: "deleted"}, gone: true},
		{name: "failed job is deleted", job: jobWith("d", api.Failed, 1, "", "w1"), status: 200,
			want: frontend.Deleted{JobName: "d", Action: "deleted"}, gone: true},
		{name: "cancelled job is deleted", job: jobWith("d", api.Cancelled, 1, ""), status: 200,
			want: frontend.Deleted{JobName: "d", Action: "deleted"}, gone: true},
		{name: "unknown job", status: 404, gone: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, feOption{})
			if tc.job != nil {
				e.put(t, tc.job)
			}
			if tc.cluster != nil {
				tc.cluster(e.cluster)
			}
			if tc.sched != nil {
				e.sched.set(tc.sched)
			}
			w := e.do(t, "DELETE", "/api/v1/jobs/d", "")
			if tc.status == 503 {
				wantError(t, w, tc.status, "unavailable", "")
				if !strings.Contains(w.Body.String(), "not cancelled") {
					t.Errorf("503 body %s does not say nothing was cancelled", w.Body)
				}
			} else if tc.status != 200 {
				wantError(t, w, tc.status, "not_found", "")
			} else if got := decodeBody[frontend.Deleted](t, w); w.Code != 200 || got != tc.want {
				t.Errorf("got %d %+v, want %+v", w.Code, got, tc.want)
			}
			// A call that failed is retried: compare the distinct calls in order.
			wantCalls(t, slices.Compact(e.rec.All()), tc.calls...)
			j, ok := e.stored(t, "d")
			if tc.gone {
				if ok {
					t.Errorf("record kept: %+v", j)
				}
				return
			}
			if !ok {
				t.Fatal("record gone")
			}
			if tc.status == 503 {
				if j.Status != tc.left || j.EndTime != 0 {
					t.Errorf("stored job %s end %v, want it untouched (%s)", j.Status, j.EndTime, tc.left)
				}
				return
			}
			if j.Status != tc.left || j.EndTime == 0 {
				t.Errorf("stored job %s end %v, want %s", j.Status, j.EndTime, tc.left)
			}
			for _, task := range j.Info.Tasks {
				if task.Status != api.Cancelled || task.Error != "cancelled by user" {
					t.Errorf("task %s: %s %q", task.ContainerName, task.Status, task.Error)
				}
			}
		})
	}
}

// TestDeleteTwiceThenReuse: cancelling is safe to repeat, and once the
// record is deleted the name can be submitted again.
func TestDeleteTwiceThenReuse(t *testing.T) {
	e := newFE(t, feOption{})
	if w := e.do(t, "POST", "/api/v1/jobs", jobJSON(t, "r")); w.Code != 201 {
		t.Fatalf("submit: %d %s", w.Code, w.Body)
	}
	steps := []struct {
		name, method, path string
		body               string
		status             int
		action             string
	}{
		{name: "cancel", method: "DELETE", path: "/api/v1/jobs/r", status: 200, action: "cancelled"},
		{name: "delete", method: "DELETE", path: "/api/v1/jobs/r", status: 200, action: "deleted"},
		{name: "gone", method: "DELETE", path: "/api/v1/jobs/r", status: 404},
		{name: "resubmit", method: "POST", path: "/api/v1/jobs", body: jobJSON(t, "r"), status: 201},
	}
	for _, s := range steps {
		w := e.do(t, s.method, s.path, s.body)
		if w.Code != s.status {
			t.Fatalf("%s: status %d, want %d: %s", s.name, w.Code, s.status, w.Body)
		}
		if s.action != "" {
			if d := decodeBody[frontend.Deleted](t, w); d.Action != s.action {
				t.Errorf("%s: action %q, want %q", s.name, d.Action, s.action)
			}
		}
	}
	if j, ok := e.stored(t, "r"); !ok || j.Status != api.Ready {
		t.Errorf("resubmitted job: %v %+v", ok, j)
	}
}

func TestGetTask(t *testing.T) {
	e := newFE(t, feOption{})
	j := jobWith("t", api.Failed, 1, "", "w1", "w2")
	code := 137
	j.Info.Tasks[1].Status, j.Info.Tasks[1].ExitCode, j.Info.Tasks[1].Error = api.Failed, &code, "OOM killed"
	j.Info.Tasks[0].Status = api.Down
	e.put(t, j)
	tests := []struct {
		name, path string
		status     int
		want       api.State
		exit       *int
		err        string
	}{
		{name: "ended", path: "/api/v1/jobs/t/tasks/t_task1", status: 200, want: api.Down},
		{name: "failed, with exit code and error", path: "/api/v1/jobs/t/tasks/t_task2", status: 200, want: api.Failed, exit: &code, err: "OOM killed"},
		{name: "unknown task", path: "/api/v1/jobs/t/tasks/t_task9", status: 404},
		{name: "unknown job", path: "/api/v1/jobs/nope/tasks/t_task1", status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := e.do(t, "GET", tc.path, "")
			if tc.status != 200 {
				wantError(t, w, tc.status, "not_found", "")
				return
			}
			got := decodeBody[api.Task](t, w)
			if w.Code != 200 || got.Status != tc.want || got.Error != tc.err || (got.ExitCode == nil) != (tc.exit == nil) ||
				(tc.exit != nil && *got.ExitCode != *tc.exit) {
				t.Errorf("got %d %+v", w.Code, got)
			}
		})
	}
}

func TestTaskLogs(t *testing.T) {
	j := jobWith("g", api.Running, 1, "", "w1", "w2", "w3")
	j.Info.Tasks[1].Status, j.Info.Tasks[1].Logs = api.Down, []string{"a", "b", "c", "d"}
	j.Info.Tasks[2].Status, j.Info.Tasks[2].Node = api.Ready, ""
	five := func(_, _ string, _ int) ([]string, error) { return []string{"1", "2", "3", "4", "5"}, nil }
	tests := []struct {
		name   string
		path   string
		logs   func(job, task string, tail int) ([]string, error)
		status int
		code   string
		field  string
		want   []string
		calls  []string
	}{
		{name: "running task: asks the globalmanager", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=3", logs: five,
			status: 200, want: []string{"3", "4", "5"}, calls: []string{"cluster.Logs(g, g_task1, 3)"}},
		{name: "running task: default tail", path: "/api/v1/jobs/g/tasks/g_task1/logs", logs: five,
			status: 200, want: []string{"1", "2", "3", "4", "5"}, calls: []string{"cluster.Logs(g, g_task1, 100)"}},
		{name: "ended task: from its record", path: "/api/v1/jobs/g/tasks/g_task2/logs",
			status: 200, want: []string{"a", "b", "c", "d"}},
		{name: "ended task: tail", path: "/api/v1/jobs/g/tasks/g_task2/logs?tail=2",
			status: 200, want: []string{"c", "d"}},
		{name: "waiting task: no lines", path: "/api/v1/jobs/g/tasks/g_task3/logs",
			status: 200, want: []string{}},
		{name: "globalmanager unreachable", path: "/api/v1/jobs/g/tasks/g_task1/logs",
			logs: func(string, string, int) ([]string, error) {
				return nil, fmt.Errorf("GET logs: %w", api.ErrUnavailable)
			},
			status: 503, code: "unavailable", calls: []string{"cluster.Logs(g, g_task1, 100)"}},
		{name: "tail zero", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=0", status: 400, code: "invalid", field: "tail"},
		{name: "tail negative", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=-1", status: 400, code: "invalid", field: "tail"},
		{name: "tail not a number", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=all", status: 400, code: "invalid", field: "tail"},
		{name: "tail over the cap", path: "/api/v1/jobs/g/tasks/g_task1/logs?tail=10001", status: 400, code: "invalid", field: "tail"},
		{name: "unknown task", path: "/api/v1/jobs/g/tasks/g_task9/logs", status: 404, code: "not_found"},
		{name: "unknown job", path: "/api/v1/jobs/nope/tasks/g_task1/logs", status: 404, code: "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, feOption{})
			e.put(t, j)
			e.cluster.logs = tc.logs
			w := e.do(t, "GET", tc.path, "")
			wantCalls(t, e.rec.All(), tc.calls...)
			if tc.code != "" {
				wantError(t, w, tc.status, tc.code, tc.field)
				return
			}
			if !strings.Contains(w.Body.String(), `"lines":[`) {
				t.Errorf("lines is not a JSON array: %s", w.Body)
			}
			got := decodeBody[frontend.Logs](t, w)
			if w.Code != tc.status || !slices.Equal(got.Lines, tc.want) {
				t.Errorf("got %d %q, want %q", w.Code, got.Lines, tc.want)
			}
		})
	}
}

func putWorker(t *testing.T, st *store.SQLite, id string, cores int) *api.Worker {
	t.Helper()
	w := &api.Worker{ID: id, Host: "host-" + id, Address: "10.0.0." + id[1:], Runtime: "sim", Cores: cores,
		MemTotal: 8 << 30, Status: api.WorkerReady, JoinTime: float64(len(id)), LastHeartbeat: epoch, Checkpoint: true}
	w.SetAllocation(map[int]string{0: "x_task1"}, 16<<20)
	if err := st.PutWorker(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWorkers(t *testing.T) {
	tests := []struct {
		name    string
		workers []string
		path    string
		status  int
		want    []string
	}{
		{name: "none", path: "/api/v1/workers", status: 200, want: []string{}},
		{name: "list", workers: []string{"w1", "w2"}, path: "/api/v1/workers", status: 200, want: []string{"w1", "w2"}},
		{name: "get", workers: []string{"w1", "w2"}, path: "/api/v1/workers/w2", status: 200, want: []string{"w2"}},
		{name: "get unknown", workers: []string{"w1"}, path: "/api/v1/workers/w9", status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, feOption{})
			for _, id := range tc.workers {
				putWorker(t, e.st, id, 4)
			}
			w := e.do(t, "GET", tc.path, "")
			if tc.status != 200 {
				wantError(t, w, tc.status, "not_found", "")
				return
			}
			var ws []*api.Worker
			if strings.HasSuffix(tc.path, "/workers") {
				if !strings.HasPrefix(w.Body.String(), "[") {
					t.Fatalf("not a JSON array: %s", w.Body)
				}
				ws = decodeBody[[]*api.Worker](t, w)
			} else {
				ws = []*api.Worker{decodeBody[*api.Worker](t, w)}
			}
			var ids []string
			for _, wk := range ws {
				ids = append(ids, wk.ID)
				if wk.Cores != 4 || !wk.CPUs["0"] || wk.CPUs["1"] || wk.CoreTasks["0"] != "x_task1" ||
					wk.Status != api.WorkerReady || wk.LastHeartbeat != epoch || !wk.Checkpoint || wk.MemTotal != 8<<30 {
					t.Errorf("worker %+v", wk)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("got %q, want %q", ids, tc.want)
			}
		})
	}
}

func TestScheduler(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		sched                    func(*fakeScheduler)
		status                   int
		code, field              string
		// want is the strategy afterwards, and the answer's when it is JSON.
		want  string
		plain string
		calls []string
	}{
		{name: "get", method: "GET", path: "/api/v1/scheduler", status: 200, want: "fifo"},
		{name: "get: jobmanager unreachable", method: "GET", path: "/api/v1/scheduler", status: 503, code: "unavailable",
			sched: func(s *fakeScheduler) { s.strategyErr = fmt.Errorf("bus: %w", context.DeadlineExceeded) }, want: "fifo"},
		{name: "put", method: "PUT", path: "/api/v1/scheduler", body: `{"name":"best-fit"}`, status: 200, want: "best-fit",
			calls: []string{"sched.SwitchStrategy(best-fit)"}},
		{name: "put unknown name", method: "PUT", path: "/api/v1/scheduler", body: `{"name":"worst-fit"}`, status: 400,
			code: "invalid", field: "name", want: "fifo", calls: []string{"sched.SwitchStrategy(worst-fit)"}},
		{name: "put without a name", method: "PUT", path: "/api/v1/scheduler", body: `{}`, status: 400,
			code: "invalid", field: "name", want: "fifo"},
		{name: "put unknown field", method: "PUT", path: "/api/v1/scheduler", body: `{"strategy":"best-fit"}`, status: 400,
			code: "invalid", field: "strategy", want: "fifo"},
		{name: "put malformed", method: "PUT", path: "/api/v1/scheduler", body: `best-fit`, status: 400,
			code: "invalid", want: "fifo"},
		{name: "put: jobmanager unreachable", method: "PUT", path: "/api/v1/scheduler", body: `{"name":"best-fit"}`, status: 503,
			sched: func(s *fakeScheduler) { s.strategyErr = api.ErrUnavailable }, code: "unavailable", want: "best-fit",
			calls: []string{"sched.SwitchStrategy(best-fit)"}},
		{name: "original switch", method: "GET", path: "/RESTfulSwarm/FE/switch_scheduler/best-fit", status: 200,
			plain: "OK", want: "best-fit", calls: []string{"sched.SwitchStrategy(best-fit)"}},
		{name: "original switch to an unknown name", method: "GET", path: "/RESTfulSwarm/FE/switch_scheduler/worst-fit", status: 400,
			code: "invalid", field: "name", want: "fifo", calls: []string{"sched.SwitchStrategy(worst-fit)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, feOption{})
			if tc.sched != nil {
				e.sched.set(tc.sched)
			}
			w := e.do(t, tc.method, tc.path, tc.body)
			wantCalls(t, e.rec.All(), tc.calls...)
			e.sched.set(func(s *fakeScheduler) {
				if s.current != tc.want {
					t.Errorf("strategy %q afterwards, want %q", s.current, tc.want)
				}
			})
			switch {
			case tc.code != "":
				wantError(t, w, tc.status, tc.code, tc.field)
			case tc.plain != "":
				if w.Code != tc.status || w.Body.String() != tc.plain {
					t.Errorf("got %d %q", w.Code, w.Body)
				}
			default:
				info := decodeBody[api.StrategyInfo](t, w)
				if w.Code != tc.status || info.Name != tc.want || len(info.Strategies) != len(strategies) {
					t.Errorf("got %d %+v", w.Code, info)
				}
			}
		})
	}
}

// fakeStatuses is discovery's figures as the metrics read them.
type fakeStatuses struct {
	st  api.StatusStats
	err error
}

func (f fakeStatuses) StatusStats(context.Context) (api.StatusStats, error) { return f.st, f.err }

func TestMetrics(t *testing.T) {
	// Discovery: two batches of statuses, 0.2 s and 3 s after the
	// statuses they found began to wait; the longest ended at 1000.
	applied := api.NewGaps()
	applied.Waiting(900)
	applied.Served(900.2, false)
	applied.Waiting(997)
	applied.Served(1000, false)
	tests := []struct {
		name     string
		sched    func(*fakeScheduler)
		statuses frontend.Statuses
		want     []string
		not      []string
	}{
		{name: "all sources", want: []string{
			`rswarm_jobs{state="Ready"} 1`,
			`rswarm_jobs{state="Running"} 1`,
			`rswarm_jobs{state="Down"} 0`,
			`rswarm_jobs{state="Cancelled"} 0`,
			`rswarm_queue_length 3`,
			`rswarm_placements_total 7`,
			`rswarm_strategy_info{strategy="fifo"} 1`,
			`rswarm_submission_seconds_count 1`,
			`rswarm_submission_seconds_bucket{le="+Inf"} 1`,
			`rswarm_jobs_submitted_total{outcome="accepted"} 1`,
			`rswarm_jobs_submitted_total{outcome="refused"} 1`,
			`rswarm_placement_delay_seconds_count 2`,
			`rswarm_placement_delay_seconds_bucket{le="1"} 1`,
			`rswarm_placement_round_seconds_count 0`,
			`rswarm_workers{status="ready"} 2`,
			`rswarm_workers{status="down"} 0`,
			`rswarm_cores{use="allocated"} 2`,
			`rswarm_cores{use="free"} 6`,
		}, not: []string{"rswarm_scrape_errors"}},
		{name: "jobmanager unreachable", sched: func(s *fakeScheduler) { s.statsErr = api.ErrUnavailable },
			want: []string{`rswarm_jobs{state="Ready"} 1`, `rswarm_scrape_errors{source="jobmanager"} 1`, `rswarm_cores{use="free"} 6`},
			not:  []string{"rswarm_queue_length", "rswarm_placement_round_gap"}},
		{
			// The jobmanager's gaps (one of 1.5 s, ending at 50) and discovery's.
			name: "the gaps between rounds and between status applications",
			sched: func(s *fakeScheduler) {
				s.stats.RoundGaps = api.NewGaps()
				s.stats.RoundGaps.Waiting(48.5)
				s.stats.RoundGaps.Served(50, false)
			},
			statuses: fakeStatuses{st: api.StatusStats{ApplyGaps: applied, Applied: 12}},
			want: []string{
				`rswarm_placement_round_gap_seconds_count 1`,
				`rswarm_placement_round_gap_seconds_bucket{le="1"} 0`,
				`rswarm_placement_round_gap_seconds_bucket{le="2"} 1`,
				`rswarm_placement_round_gap_max_seconds 1.5`,
				`rswarm_placement_round_gap_max_end_time_seconds 50`,
				`rswarm_status_apply_gap_seconds_count 2`,
				`rswarm_status_apply_gap_seconds_bucket{le="0.25"} 1`,
				`rswarm_status_apply_gap_max_seconds 3`,
				`rswarm_status_apply_gap_max_end_time_seconds 1000`,
				`rswarm_statuses_applied_total 12`,
			},
			not: []string{"rswarm_scrape_errors"},
		},
		{name: "discovery unreachable", statuses: fakeStatuses{err: api.ErrUnavailable},
			want: []string{`rswarm_scrape_errors{source="discovery"} 1`, `rswarm_queue_length 3`, `rswarm_placement_round_gap_seconds_count 0`},
			not:  []string{"rswarm_status_apply_gap", "rswarm_statuses_applied_total"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, feOption{cfg: func(c *frontend.Config) { c.Statuses = tc.statuses }})
			delay := api.NewHistogram(0.1, 1, 10)
			delay.Observe(0.5)
			delay.Observe(5)
			e.sched.set(func(s *fakeScheduler) {
				s.stats = api.SchedulerStats{Strategy: "fifo", Queued: 3, Placed: 7, PlacementDelay: delay, RoundGaps: api.NewGaps()}
			})
			if tc.sched != nil {
				e.sched.set(tc.sched)
			}
			putWorker(t, e.st, "w1", 4)
			putWorker(t, e.st, "w2", 4)
			e.put(t, jobWith("m1", api.Running, 1, "", "w1"))
			if w := e.do(t, "POST", "/api/v1/jobs", jobJSON(t, "m2")); w.Code != 201 {
				t.Fatalf("submit: %d %s", w.Code, w.Body)
			}
			if w := e.do(t, "POST", "/api/v1/jobs", jobJSON(t, "m3", func(j *api.Job) { j.Info.Tasks[0].ReqCores = 0 })); w.Code != 400 {
				t.Fatalf("bad submit: %d %s", w.Code, w.Body)
			}
			w := e.do(t, "GET", "/metrics", "")
			if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
				t.Fatalf("got %d %q", w.Code, w.Header().Get("Content-Type"))
			}
			lines := strings.Split(w.Body.String(), "\n")
			for _, want := range tc.want {
				if !slices.Contains(lines, want) {
					t.Errorf("no line %q", want)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(w.Body.String(), not) {
					t.Errorf("has %q", not)
				}
			}
		})
	}
}

// sse is one Server-Sent Event.
type sse struct {
	id, event string
	data      frontend.Event
}

// nextEvent reads the next event from an SSE stream, skipping comments.
func nextEvent(t *testing.T, r *bufio.Reader) sse {
	t.Helper()
	var e sse
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the event stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && e.event != "":
			return e
		case strings.HasPrefix(line, "id: "):
			e.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &e.data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		}
	}
}

// openEvents starts the frontend's hub, serves it on a real socket and
// opens the events stream at path; it returns once the stream's headers
// came.
func openEvents(t *testing.T, e *feEnv, path string) (*httptest.Server, *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	ts := httptest.NewServer(e.h)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		ts.Close()
	})
	// The whole exchange has a deadline: a missing event fails the test
	// instead of hanging it.
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(rcancel)
	req, err := http.NewRequestWithContext(rctx, "GET", ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	if first, err := r.ReadString('\n'); err != nil || first != ": rswarm events\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	return ts, r
}

func post(t *testing.T, ts *httptest.Server, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
}

func TestEvents(t *testing.T) {
	type ev struct{ typ, job, session, state string }
	// A step sends one request, then reads the events it must cause.
	type step struct {
		method, path, body string
		want               []ev
	}
	tests := []struct {
		name  string
		path  string
		steps []step
	}{
		{name: "a job submitted after the stream opened", path: "/api/v1/events", steps: []step{
			{"POST", "/api/v1/jobs", jobJSON(t, "e1"), []ev{{frontend.EventJobAccepted, "e1", "", "Ready"}}},
		}},
		{name: "cancelled: the job and its session finish", path: "/api/v1/events", steps: []step{
			{"POST", "/api/v1/jobs", jobJSON(t, "e1", func(j *api.Job) { j.Session = "s9" }),
				[]ev{{frontend.EventJobAccepted, "e1", "s9", "Ready"}}},
			{"DELETE", "/api/v1/jobs/e1", "", []ev{
				{frontend.EventTaskEnded, "e1", "s9", "Cancelled"},
				{frontend.EventJobFinished, "e1", "s9", "Cancelled"},
				{frontend.EventSessionFinished, "", "s9", ""},
			}},
		}},
		{name: "filtered by job", path: "/api/v1/events?job=e2", steps: []step{
			{"POST", "/api/v1/jobs", jobJSON(t, "e1"), nil},
			{"POST", "/api/v1/jobs", jobJSON(t, "e2"), []ev{{frontend.EventJobAccepted, "e2", "", "Ready"}}},
		}},
		{name: "filtered by session", path: "/api/v1/events?session=s2", steps: []step{
			{"POST", "/api/v1/jobs", jobJSON(t, "e1", func(j *api.Job) { j.Session = "s1" }), nil},
			{"POST", "/api/v1/jobs", jobJSON(t, "e2", func(j *api.Job) { j.Session = "s2" }),
				[]ev{{frontend.EventJobAccepted, "e2", "s2", "Ready"}}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fw := &feedWatch{polled: make(chan struct{})}
			e := newFE(t, feOption{jobs: func(s *store.SQLite) frontend.Jobs { fw.SQLite = s; return fw }})
			ts, r := openEvents(t, e, tc.path)
			select {
			case <-fw.polled:
			case <-time.After(10 * time.Second):
				t.Fatal("the events hub never read the change feed")
			}
			var last uint64
			for _, s := range tc.steps {
				post(t, ts, s.method, s.path, s.body)
				for i, want := range s.want {
					got := nextEvent(t, r)
					g := ev{got.event, got.data.Job, got.data.Session, got.data.State}
					if g != want || got.data.Type != got.event || got.id != fmt.Sprint(got.data.Seq) || got.data.Seq <= last {
						t.Errorf("%s %s: event %d: %+v (id %s, data %+v), want %+v", s.method, s.path, i, g, got.id, got.data, want)
					}
					last = got.data.Seq
				}
			}
		})
	}
}

func TestEventsWithoutChangeFeed(t *testing.T) {
	e := newFE(t, feOption{jobs: func(s *store.SQLite) frontend.Jobs { return noFeed{s} }})
	wantError(t, e.do(t, "GET", "/api/v1/events", ""), 503, "unavailable", "")
}

// TestEventsFirstSubscriberSeesEarlyJob: a client that opens the stream
// (and has its headers) and then submits a job must see job.accepted. The
// stream answers only once the hub's view is primed, so no job written
// after the headers can be taken as already seen.
func TestEventsFirstSubscriberSeesEarlyJob(t *testing.T) {
	e := newFE(t, feOption{})
	ts, r := openEvents(t, e, "/api/v1/events?job=x")
	post(t, ts, "POST", "/api/v1/jobs", jobJSON(t, "x"))
	post(t, ts, "DELETE", "/api/v1/jobs/x", "")
	if got := nextEvent(t, r); got.event != frontend.EventJobAccepted {
		t.Errorf("first event %s, want %s", got.event, frontend.EventJobAccepted)
	}
}

// TestMiddleware: the middleware given to Router guards every route but
// /healthz and /readyz, and a refused request changes nothing.
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
		name, method, path, token string
		body                      func(t *testing.T) string
		status                    int
		stored                    bool
	}{
		{name: "healthz is open", method: "GET", path: "/healthz", status: 200},
		{name: "readyz is open", method: "GET", path: "/readyz", status: 200},
		{name: "submit without a token", method: "POST", path: "/api/v1/jobs", status: 401,
			body: func(t *testing.T) string { return jobJSON(t, "a") }},
		{name: "original submit without a token", method: "POST", path: "/RESTfulSwarm/FE/request_new_job", status: 401,
			body: func(t *testing.T) string { return jobJSON(t, "a") }},
		{name: "submit with a wrong token", method: "POST", path: "/api/v1/jobs", token: "Bearer guess", status: 401,
			body: func(t *testing.T) string { return jobJSON(t, "a") }},
		{name: "submit with the token", method: "POST", path: "/api/v1/jobs", token: "Bearer s3cret", status: 201, stored: true,
			body: func(t *testing.T) string { return jobJSON(t, "a") }},
		{name: "metrics without a token", method: "GET", path: "/metrics", status: 401},
		{name: "events without a token", method: "GET", path: "/api/v1/events", status: 401},
		{name: "strategy switch without a token", method: "GET", path: "/RESTfulSwarm/FE/switch_scheduler/best-fit", status: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newFE(t, feOption{mw: []gin.HandlerFunc{auth}})
			body := ""
			if tc.body != nil {
				body = tc.body(t)
			}
			w := e.do(t, tc.method, tc.path, body, "Authorization", tc.token)
			if tc.status == 401 {
				wantError(t, w, 401, "unauthorized", "")
				wantCalls(t, e.rec.All())
			} else if w.Code != tc.status {
				t.Errorf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if _, ok := e.stored(t, "a"); ok != tc.stored {
				t.Errorf("stored %v, want %v", ok, tc.stored)
			}
		})
	}
}

// TestUnknownRouteIsJSON: errors are always the JSON error body. It guards
// the Router's NoRoute/NoMethod handlers: without them gin answers an
// unknown path with its text/plain "404 page not found".
func TestUnknownRouteIsJSON(t *testing.T) {
	e := newFE(t, feOption{})
	for _, path := range []string{"/api/v1/nope", "/api/v1/jobs/a/b/c"} {
		wantError(t, e.do(t, "GET", path, ""), 404, "not_found", "")
	}
}

// TestSwaggerRoute: /swagger/ serves this service's document and the UI
// without a token. (cmd/rswarm's TestSwaggerDocumentsEveryRoute checks
// that the document matches the routes.)
func TestSwaggerRoute(t *testing.T) {
	e := newFE(t, feOption{})
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

// TestSubmitRefusesAJobTheGlobalmanagerCouldNotCarry: one size for a job
// everywhere. A body under the frontend's own limit whose job, once its
// tasks are placed, would exceed api.MaxJobBytes is refused at submission.
func TestSubmitRefusesAJobTheGlobalmanagerCouldNotCarry(t *testing.T) {
	e := newFE(t, feOption{})
	j := apitest.Job("big", 1, 1, "sleep 1")
	j.Info.Tasks[0].Environment = map[string]string{"PAD": ""}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	// Pad the body to 100 bytes under the limit: fine as a body, too
	// large once its task's placement is added.
	j.Info.Tasks[0].Environment["PAD"] = strings.Repeat("x", api.MaxJobBytes-100-len(b))
	b, _ = json.Marshal(j)
	w := e.do(t, "POST", "/api/v1/jobs", string(b))
	wantError(t, w, 400, "invalid", "")
	if !strings.Contains(w.Body.String(), "too large") {
		t.Errorf("refusal %s does not say the job is too large", w.Body)
	}
	if _, ok := e.stored(t, "big"); ok {
		t.Error("the job was stored")
	}
}

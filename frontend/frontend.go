package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	swaggerFiles "github.com/swaggo/files"
	ginSwagger "github.com/swaggo/gin-swagger"

	"github.com/rswarm/rswarm/api"
	_ "github.com/rswarm/rswarm/swagger/frontend" // registers the Swagger document swaggerInstance
)

// swaggerInstance is the name the frontend's Swagger document is registered
// under (swag --instanceName); the UI is served at /swagger/index.html.
const swaggerInstance = "frontend"

// Jobs is the durable state behind the API.
type Jobs interface {
	CreateJob(ctx context.Context, j *api.Job) error
	GetJob(ctx context.Context, name string) (*api.Job, error)
	ListJobs(ctx context.Context, f api.JobFilter) ([]*api.Job, error)
	CountJobs(ctx context.Context, f api.JobFilter) (int, error)
	UpdateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error)
	DeleteJob(ctx context.Context, name string) error
	ListWorkers(ctx context.Context) ([]*api.Worker, error)
	GetWorker(ctx context.Context, id string) (*api.Worker, error)
	Ping(ctx context.Context) error
}

// Cluster is the globalmanager as the frontend sees it.
type Cluster interface {
	// Stop stops (kills) a job's containers and returns once they are stopped.
	Stop(ctx context.Context, job, reason string) error
	// Logs returns the last tail lines of a running task's output.
	Logs(ctx context.Context, job, task string, tail int) ([]string, error)
}

// Scheduler is the jobmanager as the frontend sees it.
type Scheduler interface {
	// JobSubmitted tells the jobmanager jobs were stored. An error is not
	// fatal: the jobmanager's resync finds the jobs anyway.
	JobSubmitted(ctx context.Context, names ...string) error
	// JobCancelled tells the jobmanager to drop a job from its queue and free its cores.
	JobCancelled(ctx context.Context, name string) error
	// SwitchStrategy changes the strategy; an unknown name is an api.ErrInvalid naming the valid ones.
	SwitchStrategy(ctx context.Context, name string) error
	// Strategy returns the current strategy and the valid ones.
	Strategy(ctx context.Context) (api.StrategyInfo, error)
	// Stats returns the jobmanager's counters.
	Stats(ctx context.Context) (api.SchedulerStats, error)
}

// Statuses is discovery as the frontend's metrics see it.
type Statuses interface {
	// StatusStats returns discovery's figures.
	StatusStats(ctx context.Context) (api.StatusStats, error)
}

// Config configures the frontend.
type Config struct {
	Limits api.Limits
	// MaxBody is the largest request body accepted, in bytes.
	MaxBody int64
	// NotifyTimeout bounds telling the jobmanager about a new job.
	NotifyTimeout time.Duration
	// CallTimeout bounds every other call to the jobmanager or the
	// globalmanager, retries included (default 5 s).
	CallTimeout time.Duration
	// EventPoll is how often the events stream reads the store's change feed.
	EventPoll time.Duration
	// EventRetention is how long the events stream keeps following the
	// store after its last listener left, so that a client can resume.
	EventRetention time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
	// Migrator relays the dashboard's task migrations to the globalmanager;
	// without it POST .../migrate answers 503.
	Migrator Migrator
	// Statuses is where /metrics reads discovery's figures; without it
	// they are left out.
	Statuses Statuses
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Limits: api.DefaultLimits(), MaxBody: api.MaxJobBytes, NotifyTimeout: time.Second, EventPoll: 100 * time.Millisecond,
		EventRetention: 5 * time.Minute}
}

// Server is the frontend.
type Server struct {
	cfg     Config
	jobs    Jobs
	sched   Scheduler
	cluster Cluster
	log     *slog.Logger
	metrics *metrics
	hub     *hub

	submitted chan string // jobs stored, for the notifier
	notifying atomic.Bool // Run's notifier is running
}

// New returns a frontend over jobs that notifies sched and stops containers through cluster.
func New(cfg Config, jobs Jobs, sched Scheduler, cluster Cluster) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultConfig().MaxBody
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.NotifyTimeout <= 0 {
		cfg.NotifyTimeout = time.Second
	}
	if cfg.EventPoll <= 0 {
		cfg.EventPoll = DefaultConfig().EventPoll
	}
	if cfg.EventRetention <= 0 {
		cfg.EventRetention = DefaultConfig().EventRetention
	}
	s := &Server{cfg: cfg, jobs: jobs, sched: sched, cluster: cluster, log: cfg.Logger, submitted: make(chan string, 1<<16)}
	s.metrics = newMetrics(s)
	if ch, ok := jobs.(Changes); ok {
		s.hub = newHub(s, ch, cfg.EventPoll)
	}
	return s
}

// Run tells the jobmanager of submitted jobs in batches, and polls the
// store for the events stream, until ctx is cancelled. Without Run each
// submission tells the jobmanager itself.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	s.notifying.Store(true)
	defer s.notifying.Store(false)
	wg.Add(1)
	go func() { defer wg.Done(); s.notifier(ctx) }()
	if s.hub == nil {
		<-ctx.Done()
		return nil
	}
	return s.hub.run(ctx)
}

// Router returns the HTTP API. mw run before every handler except /healthz,
// /readyz, the Swagger UI and the dashboard's files at /ui/ (authentication,
// logging). The Swagger UI and its document are served without the token on
// purpose: they describe the API, change nothing, and say how to send the
// token; so are the dashboard's files, which hold no data and ask for the
// token when the API does.
func (s *Server) Router(mw ...gin.HandlerFunc) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) {
		respond(c, 0, nil, fmt.Errorf("no route %s %s: %w", c.Request.Method, c.Request.URL.Path, api.ErrNotFound))
	})
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, api.ErrorBody{Error: api.ErrorDetail{Code: "method_not_allowed",
			Message: fmt.Sprintf("%s is not allowed on %s", c.Request.Method, c.Request.URL.Path)}})
	})
	r.GET("/healthz", handleHealthz)
	r.GET("/readyz", s.handleReady)
	r.GET("/swagger/*any", ginSwagger.WrapHandler(swaggerFiles.NewHandler(), ginSwagger.InstanceName(swaggerInstance)))
	routeUI(r)
	g := r.Group("/", mw...)
	g.POST("/RESTfulSwarm/FE/request_new_job", s.handleOriginalSubmit)
	g.GET("/RESTfulSwarm/FE/switch_scheduler/:name", s.handleOriginalSwitch)
	g.POST("/api/v1/jobs", s.handleSubmit)
	g.GET("/api/v1/jobs", s.handleList)
	g.GET("/api/v1/jobs/:name", s.handleGet)
	g.DELETE("/api/v1/jobs/:name", s.handleDelete)
	g.GET("/api/v1/jobs/:name/tasks/:task", s.handleTask)
	g.GET("/api/v1/jobs/:name/tasks/:task/logs", s.handleLogs)
	g.POST("/api/v1/jobs/:name/tasks/:task/migrate", s.handleMigrateTask)
	g.GET("/api/v1/workers", s.handleWorkers)
	g.GET("/api/v1/workers/:id", s.handleWorker)
	g.GET("/metrics", s.handleMetrics)
	g.GET("/api/v1/events", s.handleEvents)
	g.GET("/api/v1/scheduler", s.handleGetScheduler)
	g.PUT("/api/v1/scheduler", s.handlePutScheduler)
	return r
}

// handleHealthz answers as long as the process serves HTTP.
// @Summary Liveness
// @Description Answers 200 as long as the frontend process serves HTTP. Needs no token.
// @Tags monitoring
// @Produce json
// @Success 200 {object} object{status=string} "{"status": "ok"}"
// @Router /healthz [get]
func handleHealthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

func respond(c *gin.Context, status int, v any, err error) {
	if err != nil {
		code, body := api.ErrorResponse(err)
		c.JSON(code, body)
		return
	}
	if str, ok := v.(string); ok {
		c.String(status, str)
		return
	}
	c.JSON(status, v)
}

func (s *Server) body(c *gin.Context) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(c.Request.Body, s.cfg.MaxBody+1))
	if err != nil {
		return nil, api.Invalid("", "reading body: %v", err)
	}
	if int64(len(b)) > s.cfg.MaxBody {
		return nil, api.Invalid("", "body larger than %d bytes", s.cfg.MaxBody)
	}
	return b, nil
}

// Submit validates and stores one job and tells the jobmanager. Nothing is
// stored when the job is refused.
func (s *Server) Submit(ctx context.Context, j *api.Job) (err error) {
	defer func(start time.Time) { s.metrics.observeSubmit(start, err) }(time.Now())
	if err := j.Validate(s.cfg.Limits); err != nil {
		return err
	}
	if err := s.checkPinned(ctx, j); err != nil {
		return err
	}
	j.SubmitTime = float64(s.cfg.Now().UnixNano()) / 1e9
	if err := s.jobs.CreateJob(ctx, j); err != nil {
		if errors.Is(err, api.ErrConflict) {
			return &api.FieldError{Field: "job_name", Kind: api.ErrConflict,
				Reason: fmt.Sprintf("a job named %q exists already (delete it first to reuse the name)", j.Name)}
		}
		return err
	}
	if s.notifying.Load() {
		select {
		case s.submitted <- j.Name:
			return nil
		default: // the notifier is behind: tell the jobmanager directly
		}
	}
	s.notify(ctx, j.Name)
	return nil
}

// notify tells the jobmanager of stored jobs. A failure is only logged:
// the jobmanager's resync finds the jobs anyway.
func (s *Server) notify(ctx context.Context, names ...string) {
	nctx, cancel := context.WithTimeout(ctx, s.cfg.NotifyTimeout)
	defer cancel()
	if err := s.sched.JobSubmitted(nctx, names...); err != nil {
		s.log.Warn("jobmanager not told of new jobs; its resync will find them", "jobs", len(names), "job_id", names[0], "err", err)
	}
}

// notifier tells the jobmanager of submitted jobs in batches: what arrived
// while the previous notification was on its way goes in the next one, so
// that a submission does not wait for the jobmanager.
func (s *Server) notifier(ctx context.Context) {
	names := make([]string, 0, 1024)
	for {
		names = names[:0]
		select {
		case <-ctx.Done():
			return
		case n := <-s.submitted:
			names = append(names, n)
		}
	drain:
		for len(names) < cap(names) {
			select {
			case n := <-s.submitted:
				names = append(names, n)
			default:
				break drain
			}
		}
		s.notify(ctx, names...)
	}
}

func (s *Server) decodeJob(b []byte) (*api.Job, error) {
	j, err := api.ParseJob(b)
	if err == nil {
		err = api.CheckJobSize(len(b), len(j.Info.Tasks))
	}
	return j, err
}

// handleOriginalSubmit is the original RESTfulSwarm submission.
// @Summary Submit a job (original RESTfulSwarm path)
// @Description Validates one job in the original RESTfulSwarm format, stores it with its submit_time and tells the jobmanager. Tasks are an object keyed by container name; each task asks for whole cores with req_cores. Unknown fields are refused, naming the field. A job pinned with node and cpuset_cpus (no-scheduler strategy) must name a registered worker and cores it has. Answers the plain text "OK" as the original did; errors are JSON.
// @Tags jobs
// @Accept json
// @Produce plain
// @Produce json
// @Param job body api.Job true "the job"
// @Success 200 {string} string "OK"
// @Failure 400 {object} api.ErrorBody "the job is malformed or invalid; error.field names the field"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 409 {object} api.ErrorBody "a job with this job_name exists (delete it first to reuse the name)"
// @Failure 500 {object} api.ErrorBody "the store failed"
// @Security BearerAuth
// @Router /RESTfulSwarm/FE/request_new_job [post]
func (s *Server) handleOriginalSubmit(c *gin.Context) {
	b, err := s.body(c)
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	j, err := s.decodeJob(b)
	if err == nil {
		err = s.Submit(c.Request.Context(), j)
	}
	respond(c, http.StatusOK, "OK", err)
}

// Accepted is the answer to one submitted job.
type Accepted struct {
	JobName string           `json:"job_name"`
	Status  string           `json:"status,omitempty"`
	Code    int              `json:"code,omitempty"`
	Error   *api.ErrorDetail `json:"error,omitempty"`
}

// handleSubmit submits one job or a batch of jobs.
// @Summary Submit one job or a batch
// @Description The body is one job, or a JSON array of jobs (a batch). One job: 201 with the accepted job and a Location header, or the error. A batch: 200 with one entry per job, in order, each accepted (code 201) or refused on its own with its status code and error; nothing is stored for a refused job. Jobs use the original format: tasks are an object keyed by container name and ask for whole cores with req_cores.
// @Tags jobs
// @Accept json
// @Produce json
// @Param job body api.Job true "one job, or a JSON array of jobs"
// @Success 201 {object} Accepted "the job was accepted (one job)"
// @Header 201 {string} Location "/api/v1/jobs/{job_name}"
// @Success 200 {array} Accepted "one answer per job of a batch, in order"
// @Failure 400 {object} api.ErrorBody "the job is malformed or invalid; error.field names the field"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 409 {object} api.ErrorBody "a job with this job_name exists"
// @Failure 500 {object} api.ErrorBody "the store failed"
// @Security BearerAuth
// @Router /api/v1/jobs [post]
func (s *Server) handleSubmit(c *gin.Context) {
	b, err := s.body(c)
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	trimmed := strings.TrimLeft(string(b), " \t\r\n")
	if !strings.HasPrefix(trimmed, "[") {
		j, err := s.decodeJob(b)
		if err == nil {
			err = s.Submit(c.Request.Context(), j)
		}
		if err != nil {
			respond(c, 0, nil, err)
			return
		}
		c.Header("Location", "/api/v1/jobs/"+j.Name)
		respond(c, http.StatusCreated, Accepted{JobName: j.Name, Status: api.Ready.String()}, nil)
		return
	}
	var raws []json.RawMessage
	if err := api.DecodeStrict(b, &raws); err != nil {
		respond(c, 0, nil, err)
		return
	}
	out := make([]Accepted, len(raws))
	for i, raw := range raws {
		j, err := s.decodeJob(raw)
		if err == nil {
			err = s.Submit(c.Request.Context(), j)
		}
		if err != nil {
			code, eb := api.ErrorResponse(err)
			out[i] = Accepted{Error: &eb.Error, Code: code}
			if j != nil {
				out[i].JobName = j.Name
			}
			continue
		}
		out[i] = Accepted{JobName: j.Name, Status: api.Ready.String(), Code: http.StatusCreated}
	}
	respond(c, http.StatusOK, out, nil)
}

// handleGet answers one job.
// @Summary Get a job
// @Description One job with its tasks, their states, nodes and cores, and why it waits (waiting_reason) or failed (error).
// @Tags jobs
// @Produce json
// @Param name path string true "job_name"
// @Success 200 {object} api.Job
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job"
// @Failure 500 {object} api.ErrorBody "the store failed"
// @Security BearerAuth
// @Router /api/v1/jobs/{name} [get]
func (s *Server) handleGet(c *gin.Context) {
	j, err := s.jobs.GetJob(c.Request.Context(), c.Param("name"))
	if errors.Is(err, api.ErrNotFound) {
		err = fmt.Errorf("job %q: %w", c.Param("name"), api.ErrNotFound)
	}
	respond(c, http.StatusOK, j, err)
}

func (s *Server) filter(c *gin.Context) (api.JobFilter, error) {
	var f api.JobFilter
	for _, v := range c.QueryArray("status") {
		for _, name := range strings.Split(v, ",") {
			st, err := api.ParseState(name)
			if err != nil {
				return f, api.Invalid("status", "%v", err)
			}
			f.Status = append(f.Status, st)
		}
	}
	f.Session = c.Query("session")
	f.Node = c.Query("node")
	for _, q := range []struct {
		name string
		dst  *int
		def  int
	}{{"limit", &f.Limit, 100}, {"offset", &f.Offset, 0}} {
		*q.dst = q.def
		if v := c.Query(q.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return f, api.Invalid(q.name, "must be a non-negative integer, got %q", v)
			}
			*q.dst = n
		}
	}
	if f.Limit < 1 || f.Limit > 10000 {
		return f, api.Invalid("limit", "must be from 1 to 10000, got %d", f.Limit)
	}
	return f, nil
}

// handleList answers a page of jobs.
// @Summary List jobs
// @Description Jobs matching every filter given, a page at a time, with the total count of matching jobs.
// @Tags jobs
// @Produce json
// @Param status query []string false "job states to keep; repeat the parameter or separate with commas" collectionFormat(multi) Enums(Ready, Scheduled, Deployed, Running, Migrating, Down, Failed, Cancelled)
// @Param session query string false "only jobs of this session"
// @Param node query string false "only jobs with a task on this worker (node ID)"
// @Param limit query int false "page size" default(100) minimum(0) maximum(10000)
// @Param offset query int false "jobs to skip" default(0) minimum(0)
// @Success 200 {object} api.JobList
// @Failure 400 {object} api.ErrorBody "a bad filter; error.field names it"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 500 {object} api.ErrorBody "the store failed"
// @Security BearerAuth
// @Router /api/v1/jobs [get]
func (s *Server) handleList(c *gin.Context) {
	f, err := s.filter(c)
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	ctx := c.Request.Context()
	jobs, err := s.jobs.ListJobs(ctx, f)
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	total, err := s.jobs.CountJobs(ctx, f)
	if jobs == nil {
		jobs = []*api.Job{}
	}
	respond(c, http.StatusOK, api.JobList{Jobs: jobs, Total: total}, err)
}

// handleWorkers answers every worker.
// @Summary List workers
// @Description Every registered worker: its cores (CPUs says which are busy, core_tasks by which task), memory, status, last heartbeat, and whether checkpointing works on its host.
// @Tags workers
// @Produce json
// @Success 200 {array} api.Worker
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 500 {object} api.ErrorBody "the store failed"
// @Security BearerAuth
// @Router /api/v1/workers [get]
func (s *Server) handleWorkers(c *gin.Context) {
	ws, err := s.jobs.ListWorkers(c.Request.Context())
	if ws == nil {
		ws = []*api.Worker{}
	}
	respond(c, http.StatusOK, ws, err)
}

// handleOriginalSwitch is the original RESTfulSwarm strategy switch.
// @Summary Switch the placement strategy (original RESTfulSwarm path)
// @Description Tells the jobmanager to place waiting jobs with another strategy from now on. Answers the plain text "OK" as the original did; an unknown name is a 400 listing the valid ones.
// @Tags scheduler
// @Produce plain
// @Produce json
// @Param name path string true "strategy name, such as best-fit or first-fit (GET /api/v1/scheduler lists them)"
// @Success 200 {string} string "OK"
// @Failure 400 {object} api.ErrorBody "unknown strategy"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 503 {object} api.ErrorBody "the jobmanager did not answer"
// @Security BearerAuth
// @Router /RESTfulSwarm/FE/switch_scheduler/{name} [get]
func (s *Server) handleOriginalSwitch(c *gin.Context) {
	err := s.call(c.Request.Context(), func(ctx context.Context) error { return s.sched.SwitchStrategy(ctx, c.Param("name")) })
	respond(c, http.StatusOK, "OK", err)
}

// handleGetScheduler answers the current strategy.
// @Summary Get the placement strategy
// @Description The jobmanager's current strategy, and every valid strategy with a one-line description.
// @Tags scheduler
// @Produce json
// @Success 200 {object} api.StrategyInfo
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 503 {object} api.ErrorBody "the jobmanager did not answer"
// @Security BearerAuth
// @Router /api/v1/scheduler [get]
func (s *Server) handleGetScheduler(c *gin.Context) {
	info, err := s.strategy(c.Request.Context())
	respond(c, http.StatusOK, info, err)
}

// handlePutScheduler switches the strategy.
// @Summary Switch the placement strategy
// @Description Tells the jobmanager to place waiting jobs with another strategy from now on, and answers the strategy now in use.
// @Tags scheduler
// @Accept json
// @Produce json
// @Param strategy body object{name=string} true "the strategy's name, such as best-fit"
// @Success 200 {object} api.StrategyInfo
// @Failure 400 {object} api.ErrorBody "no name, or an unknown strategy"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 503 {object} api.ErrorBody "the jobmanager did not answer"
// @Security BearerAuth
// @Router /api/v1/scheduler [put]
func (s *Server) handlePutScheduler(c *gin.Context) {
	b, err := s.body(c)
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := api.DecodeStrict(b, &req); err != nil {
		respond(c, 0, nil, err)
		return
	}
	if req.Name == "" {
		respond(c, 0, nil, api.Invalid("name", "required"))
		return
	}
	if err := s.call(c.Request.Context(), func(ctx context.Context) error { return s.sched.SwitchStrategy(ctx, req.Name) }); err != nil {
		respond(c, 0, nil, err)
		return
	}
	info, err := s.strategy(c.Request.Context())
	respond(c, http.StatusOK, info, err)
}

// handleReady checks the store and the jobmanager.
// @Summary Readiness
// @Description 200 when the store and the jobmanager answer within two seconds, 503 naming the one that does not. Needs no token.
// @Tags monitoring
// @Produce json
// @Success 200 {object} object{status=string} "{"status": "ready"}"
// @Failure 503 {object} api.ErrorBody "the store or the jobmanager is unreachable"
// @Router /readyz [get]
func (s *Server) handleReady(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.jobs.Ping(ctx); err != nil {
		respond(c, 0, nil, fmt.Errorf("store: %w: %w", api.ErrUnavailable, err))
		return
	}
	if _, err := s.sched.Strategy(ctx); err != nil {
		respond(c, 0, nil, fmt.Errorf("jobmanager: %w: %w", api.ErrUnavailable, err))
		return
	}
	respond(c, http.StatusOK, gin.H{"status": "ready"}, nil)
}

// checkPinned refuses tasks pinned (for the no-scheduler strategy) to a
// node that is not registered or to core ids that node does not have.
func (s *Server) checkPinned(ctx context.Context, j *api.Job) error {
	for _, t := range j.Info.Tasks {
		if t.CpusetCpus == "" {
			continue
		}
		p := "job_info.tasks." + t.ContainerName
		w, err := s.jobs.GetWorker(ctx, t.Node)
		if errors.Is(err, api.ErrNotFound) {
			return api.Invalid(p+".node", "%q is not a registered worker (see GET /api/v1/workers)", t.Node)
		}
		if err != nil {
			return err
		}
		cores, _ := api.ParseCpuset(t.CpusetCpus)
		if last := cores[len(cores)-1]; last >= w.Cores {
			return api.Invalid(p+".cpuset_cpus", "core %d does not exist on node %s, which has cores 0-%d", last, t.Node, w.Cores-1)
		}
	}
	return nil
}

package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/bus"
	"github.com/rswarm/rswarm/discovery"
	"github.com/rswarm/rswarm/engine"
	"github.com/rswarm/rswarm/frontend"
	"github.com/rswarm/rswarm/globalmanager"
	"github.com/rswarm/rswarm/jobmanager"
	"github.com/rswarm/rswarm/store"
	"github.com/rswarm/rswarm/worker"
)

// Compile-time guards: the adapters satisfy the components' interfaces.
var (
	_ frontend.Jobs          = (store.Store)(nil)
	_ frontend.Scheduler     = (*jmLink)(nil)
	_ frontend.Statuses      = (*dcLink)(nil)
	_ frontend.Cluster       = (*api.Client)(nil)
	_ jobmanager.State       = (store.Store)(nil)
	_ jobmanager.Dispatcher  = (*gmLink)(nil)
	_ discovery.State        = (store.Store)(nil)
	_ discovery.Notifier     = (*jmLink)(nil)
	_ globalmanager.State    = (store.Store)(nil)
	_ globalmanager.Swarm    = (*engine.Client)(nil)
	_ globalmanager.Workers  = (*bus.Server)(nil)
	_ globalmanager.Notifier = (*jmLink)(nil)
	_ worker.Runtime         = (*engine.Runtime)(nil)
	_ worker.Adopter         = (*engine.Runtime)(nil)
	_ worker.Releaser        = (*engine.Runtime)(nil)
	_ worker.Link            = (*bus.Client)(nil)
)

// endpoints are where the roles listen and how they reach each other.
type endpoints struct {
	frontend, globalmanager    string // HTTP host:port
	gmBus, jmBus, dcBus        string // ZeroMQ endpoints
	apiToken, apiTokenFile     string
	insecure                   bool
	dataDir, mongoURI, mongoDB string

	// bus security (see buskeys.go)
	busAuth                       bool
	busKeysDir, authorizedKeysDir string
	serverKeys                    map[string]string // role -> --<role>-key
}

func (e *endpoints) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&e.frontend, "frontend-addr", "127.0.0.1:5001", "frontend REST API address (host:port)")
	f.StringVar(&e.globalmanager, "globalmanager-addr", "127.0.0.1:5000", "globalmanager REST API address (host:port)")
	f.StringVar(&e.gmBus, "globalmanager-bus", "tcp://127.0.0.1:3100", "globalmanager command bus (ZeroMQ endpoint)")
	f.StringVar(&e.jmBus, "jobmanager-bus", "tcp://127.0.0.1:2990", "jobmanager notification bus (ZeroMQ endpoint)")
	f.StringVar(&e.dcBus, "discovery-bus", "tcp://127.0.0.1:4000", "discovery status bus (ZeroMQ endpoint)")
	f.StringVar(&e.apiToken, "api-token", "", "bearer token the REST APIs require (also for calls between roles)")
	f.StringVar(&e.apiTokenFile, "api-token-file", "", "file holding the API token")
	f.BoolVar(&e.insecure, "insecure", false, "allow REST APIs on non-loopback addresses without a token, and the bus without CURVE")
	f.StringVar(&e.dataDir, "data-dir", "./data", "directory of the embedded SQLite store")
	f.StringVar(&e.mongoURI, "mongo-uri", "", "MongoDB URI; when set, MongoDB is the store instead of SQLite")
	f.StringVar(&e.mongoDB, "mongo-db", "RESTfulSwarmDB", "MongoDB database name")
	f.BoolVar(&e.busAuth, "bus-auth", true, "authenticate and encrypt the bus with ZeroMQ CURVE (keys in --bus-keys-dir)")
	f.StringVar(&e.busKeysDir, "bus-keys-dir", "", "directory of this host's bus key pairs; processes sharing it trust each other (default <data-dir>/bus)")
	f.StringVar(&e.authorizedKeysDir, "authorized-keys-dir", "", "directory of further client public keys (*.pub) the bus servers accept (default <bus-keys-dir>/authorized)")
	e.serverKeys = make(map[string]string)
	for _, role := range []string{"globalmanager", "discovery", "jobmanager"} {
		f.Var(&keyFlag{m: e.serverKeys, k: role}, role+"-key", "public key of the "+role+"'s bus (Z85, or a file holding it; default <bus-keys-dir>/"+role+".pub)")
	}
}

// keyFlag is a --<role>-key flag, stored in a map by role.
type keyFlag struct {
	m map[string]string
	k string
}

func (v *keyFlag) String() string {
	if v.m == nil {
		return ""
	}
	return v.m[v.k]
}
func (v *keyFlag) Set(s string) error { v.m[v.k] = s; return nil }
func (v *keyFlag) Type() string       { return "string" }

func (e *endpoints) token() (string, error) {
	if e.apiTokenFile != "" {
		b, err := os.ReadFile(e.apiTokenFile)
		if err != nil {
			return "", fmt.Errorf("api token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return e.apiToken, nil
}

// openStore opens MongoDB when --mongo-uri is given, else the SQLite file in --data-dir.
func (e *endpoints) openStore(ctx context.Context, log *slog.Logger) (store.Store, error) {
	if e.mongoURI != "" {
		s, err := store.OpenMongo(ctx, e.mongoURI, e.mongoDB)
		if err != nil {
			return nil, fmt.Errorf("open MongoDB store: %w", err)
		}
		log.Info("store: MongoDB", "database", e.mongoDB, "migrated_documents", s.Migrated())
		return s, nil
	}
	s, err := store.OpenSQLite(e.dataDir)
	if err != nil {
		return nil, fmt.Errorf("open SQLite store in %s: %w", e.dataDir, err)
	}
	log.Info("store: SQLite", "path", s.Path())
	return s, nil
}

// clusterID names the control plane by its store, the same for every role
// and across restarts: workers label their containers with it, and adopt
// after a restart only those of their own cluster.
func (e *endpoints) clusterID() string {
	where := "mongo:" + e.mongoURI + "/" + e.mongoDB
	if e.mongoURI == "" {
		dir, err := filepath.Abs(e.dataDir)
		if err != nil {
			dir = e.dataDir
		}
		where = "sqlite:" + dir
	}
	sum := sha256.Sum256([]byte(where))
	return hex.EncodeToString(sum[:6])
}

func identity(role string) string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%s-%d", role, h, os.Getpid())
}

// jmLink is the jobmanager as other roles reach it over the bus.
type jmLink struct {
	c *bus.Client
}

func dialJobmanager(e *endpoints, role string, log *slog.Logger) (*jmLink, error) {
	c, err := e.dialBus(role, "jobmanager", e.jmBus, identity(role), nil, log)
	if err != nil {
		return nil, fmt.Errorf("connect to jobmanager at %s: %w", e.jmBus, err)
	}
	return &jmLink{c: c}, nil
}

func (l *jmLink) Close() error { return l.c.Close() }

// jmCallTimeout bounds a call to the jobmanager whose caller set no
// deadline: while the jobmanager is away the bus holds a request until its
// context ends (and sends it as soon as the jobmanager is back), so
// without a deadline such a call would wait for as long as the outage.
const jmCallTimeout = 10 * time.Second

// request is l.c.Request with a deadline.
func (l *jmLink) request(ctx context.Context, kind string, body, reply any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, jmCallTimeout)
		defer cancel()
	}
	return l.c.Request(ctx, kind, body, reply)
}

func (l *jmLink) JobSubmitted(ctx context.Context, names ...string) error {
	return l.request(ctx, api.KindJobSubmitted, names, nil)
}
func (l *jmLink) JobCancelled(ctx context.Context, name string) error {
	return l.request(ctx, api.KindJobCancelled, api.JobRef{Job: name}, nil)
}
func (l *jmLink) TasksDone(ctx context.Context, tasks []api.TaskRef) error {
	return l.request(ctx, api.KindTasksDone, api.TasksDone{Tasks: tasks}, nil)
}
func (l *jmLink) WorkersChanged(ctx context.Context) error {
	return l.request(ctx, api.KindWorkersChanged, struct{}{}, nil)
}
func (l *jmLink) SwitchStrategy(ctx context.Context, name string) error {
	err := l.request(ctx, api.KindSwitchStrategy, api.StrategyInfo{Name: name}, nil)
	var re *bus.RemoteError
	if errors.As(err, &re) {
		return api.Invalid("name", "%s", strings.TrimPrefix(re.Msg, "name: "))
	}
	return err
}
func (l *jmLink) Reserve(ctx context.Context, r api.Reservation) ([]int, error) {
	var got api.Reserved
	err := l.request(ctx, api.KindReserve, r, &got)
	return got.Cores, remoteField(err)
}
func (l *jmLink) Commit(ctx context.Context, r api.Reservation) error {
	return remoteField(l.request(ctx, api.KindCommit, r, nil))
}
func (l *jmLink) Abort(ctx context.Context, task string) error {
	return remoteField(l.request(ctx, api.KindAbort, api.Reservation{Task: task}, nil))
}
func (l *jmLink) Reallocate(ctx context.Context, r api.Reservation) error {
	return remoteField(l.request(ctx, api.KindReallocate, r, nil))
}
func (l *jmLink) WorkerRegistered(ctx context.Context, s api.WorkerSize) error {
	return remoteField(l.request(ctx, api.KindWorkerRegistered, s, nil))
}
func (l *jmLink) Resized(ctx context.Context, r api.Reservation) error {
	return remoteField(l.request(ctx, api.KindResized, r, nil))
}
func (l *jmLink) Unplace(ctx context.Context, u api.Unplace) error {
	return remoteField(l.request(ctx, api.KindUnplace, u, nil))
}

// remoteField turns the jobmanager's refusal of a reservation into a
// conflict the REST APIs answer with 409.
func remoteField(err error) error {
	var re *bus.RemoteError
	if errors.As(err, &re) {
		return &api.FieldError{Kind: api.ErrConflict, Reason: re.Msg}
	}
	return err
}

func (l *jmLink) Stats(ctx context.Context) (api.SchedulerStats, error) {
	var st api.SchedulerStats
	err := l.request(ctx, api.KindGetStats, struct{}{}, &st)
	return st, err
}
func (l *jmLink) Strategy(ctx context.Context) (api.StrategyInfo, error) {
	var info api.StrategyInfo
	err := l.request(ctx, api.KindGetStrategy, struct{}{}, &info)
	return info, err
}

// dcLink is discovery as the frontend's metrics reach it over the bus.
type dcLink struct {
	c *bus.Client
}

func dialDiscovery(e *endpoints, role string, log *slog.Logger) (*dcLink, error) {
	c, err := e.dialBus(role, "discovery", e.dcBus, identity(role), nil, log)
	if err != nil {
		return nil, fmt.Errorf("connect to discovery at %s: %w", e.dcBus, err)
	}
	return &dcLink{c: c}, nil
}

func (l *dcLink) Close() error { return l.c.Close() }

func (l *dcLink) StatusStats(ctx context.Context) (api.StatusStats, error) {
	var st api.StatusStats
	err := l.c.Request(ctx, api.KindGetStats, struct{}{}, &st)
	return st, err
}

// jobmanagerHandler serves the jobmanager's bus.
func jobmanagerHandler(m *jobmanager.Manager) bus.Handler {
	return func(ctx context.Context, _, kind string, body []byte) (any, error) {
		switch kind {
		case api.KindJobSubmitted:
			var names []string
			if err := json.Unmarshal(body, &names); err != nil {
				return nil, err
			}
			return nil, m.JobSubmitted(ctx, names...)
		case api.KindJobCancelled:
			var ref api.JobRef
			if err := json.Unmarshal(body, &ref); err != nil {
				return nil, err
			}
			return nil, m.JobCancelled(ctx, ref.Job)
		case api.KindTasksDone:
			var td api.TasksDone
			if err := json.Unmarshal(body, &td); err != nil {
				return nil, err
			}
			return nil, m.TasksDone(ctx, td.Tasks)
		case api.KindWorkersChanged:
			return nil, m.WorkersChanged(ctx)
		case api.KindSwitchStrategy:
			var si api.StrategyInfo
			if err := json.Unmarshal(body, &si); err != nil {
				return nil, err
			}
			return nil, m.SwitchStrategy(ctx, si.Name)
		case api.KindGetStrategy:
			return m.Strategy(), nil
		case api.KindGetStats:
			return m.Stats(), nil
		case api.KindWorkerRegistered:
			var ws api.WorkerSize
			if err := json.Unmarshal(body, &ws); err != nil {
				return nil, err
			}
			return nil, m.WorkerRegistered(ctx, ws)
		case api.KindUnplace:
			var u api.Unplace
			if err := json.Unmarshal(body, &u); err != nil {
				return nil, err
			}
			return nil, m.Unplace(ctx, u)
		case api.KindReserve, api.KindCommit, api.KindAbort, api.KindReallocate, api.KindResized:
			var r api.Reservation
			if err := json.Unmarshal(body, &r); err != nil {
				return nil, err
			}
			switch kind {
			case api.KindReserve:
				cores, err := m.Reserve(ctx, r)
				return api.Reserved{Cores: cores}, err
			case api.KindCommit:
				return nil, m.Commit(ctx, r)
			case api.KindAbort:
				return nil, m.Abort(ctx, r.Task)
			case api.KindResized:
				return nil, m.Resized(ctx, r)
			}
			return nil, m.Reallocate(ctx, r)
		}
		return nil, fmt.Errorf("jobmanager: unknown message kind %q", kind)
	}
}

// discoveryHandler serves discovery's bus.
func discoveryHandler(s *discovery.Service) bus.Handler {
	return func(ctx context.Context, _, kind string, body []byte) (any, error) {
		switch kind {
		case api.KindTaskStatuses:
			var sts api.TaskStatuses
			if err := json.Unmarshal(body, &sts); err != nil {
				return nil, err
			}
			return nil, s.TaskStatuses(ctx, sts.Statuses)
		case api.KindHeartbeat:
			var hb api.Heartbeat
			if err := json.Unmarshal(body, &hb); err != nil {
				return nil, err
			}
			return s.Heartbeat(ctx, hb)
		case api.KindGetStats:
			return s.Stats(), nil
		}
		return nil, fmt.Errorf("discovery: unknown message kind %q", kind)
	}
}

// globalmanagerHandler serves the globalmanager's bus: workers register,
// and the jobmanager hands over placed jobs and asks for jobs to be
// stopped. jmKey is the jobmanager's public key: with CURVE, a deploy_job
// or stop_job under any other key (a worker's, an operator's) is refused,
// since the globalmanager deploys such a job as it is, without reading it
// from the store. jmKey is "" without CURVE, where the bus trusts every
// local peer anyway (as it does with register).
func globalmanagerHandler(m *globalmanager.Manager, jmKey string) bus.Handler {
	return func(ctx context.Context, from, kind string, body []byte) (any, error) {
		switch kind {
		case api.KindRegister:
			var r api.Register
			if err := json.Unmarshal(body, &r); err != nil {
				return nil, err
			}
			return m.Register(ctx, r)
		case api.KindDeployJob, api.KindStopJob:
			if jmKey != "" && bus.PeerKey(ctx) != jmKey {
				return nil, fmt.Errorf("globalmanager: %s refused: only the jobmanager's key may send it, and peer %q has key %s (the jobmanager's is --jobmanager-key, default <bus-keys-dir>/jobmanager.pub)", kind, from, bus.PeerKey(ctx))
			}
			if kind == api.KindStopJob {
				var sj api.StopJob
				if err := json.Unmarshal(body, &sj); err != nil {
					return nil, err
				}
				return api.NewJobReply(m.Stop(ctx, sj.Job, sj.Reason)), nil
			}
			var dj api.DeployJob
			if err := json.Unmarshal(body, &dj); err != nil {
				return nil, err
			}
			if dj.Job == nil {
				return api.NewJobReply(api.Invalid("job", "required")), nil
			}
			return api.NewJobReply(m.DeployPlaced(ctx, dj.Job)), nil
		}
		return nil, fmt.Errorf("globalmanager: unknown message kind %q", kind)
	}
}

// gmLink is the globalmanager as the jobmanager reaches it over the bus:
// each placed job travels whole in its deploy_job message.
type gmLink struct {
	c *bus.Client
}

func dialGlobalmanager(e *endpoints, role string, log *slog.Logger) (*gmLink, error) {
	// A deployment waits up to the dispatch timeout for its answer; when
	// the globalmanager dies meanwhile, the answer will never come, and the
	// deployment ends at once (unavailable: sent again shortly) instead.
	c, err := e.dialBus(role, "globalmanager", e.gmBus, identity(role), nil, log, bus.WithFailOnDisconnect())
	if err != nil {
		return nil, fmt.Errorf("connect to globalmanager at %s: %w", e.gmBus, err)
	}
	return &gmLink{c: c}, nil
}

func (l *gmLink) Close() error { return l.c.Close() }

// Deploy sends j to the globalmanager and returns its outcome, judged as
// the REST API's would be. While the globalmanager is away the request
// waits for it until ctx ends (then it is a timeout: sent again later); a
// request in flight when the globalmanager goes away ends at once with
// bus.ErrConnectionLost (unavailable: sent again shortly).
func (l *gmLink) Deploy(ctx context.Context, j *api.Job) error {
	var rep api.JobReply
	if err := l.c.Request(ctx, api.KindDeployJob, api.DeployJob{Job: j}, &rep); err != nil {
		return fmt.Errorf("deploy job %s over the globalmanager's bus: %w", j.Name, err)
	}
	return rep.Err()
}

// Stop asks the globalmanager to stop a job's remaining containers.
func (l *gmLink) Stop(ctx context.Context, job, reason string) error {
	var rep api.JobReply
	if err := l.c.Request(ctx, api.KindStopJob, api.StopJob{Job: job, Reason: reason}, &rep); err != nil {
		return fmt.Errorf("stop job %s over the globalmanager's bus: %w", job, err)
	}
	return rep.Err()
}

// workerDialer returns a worker.Dialer that opens bus clients to server's addr.
func workerDialer(e *endpoints, server, addr string, log *slog.Logger) worker.Dialer {
	return func(id string, h worker.Handler) (worker.Link, error) {
		var bh bus.Handler
		if h != nil {
			bh = bus.Handler(h)
		}
		return e.dialBus("worker", server, addr, id, bh, log)
	}
}

// isLoopback reports whether a host:port listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authMiddleware requires the bearer token when one is set. It refuses to
// serve a non-loopback address without a token unless insecure is set.
func authMiddleware(addr, token string, insecure bool) ([]gin.HandlerFunc, error) {
	if token == "" {
		if !isLoopback(addr) && !insecure {
			return nil, fmt.Errorf("refusing to serve %s without an API token: set --api-token or --api-token-file, or pass --insecure to serve it open", addr)
		}
		return nil, nil
	}
	want := []byte("Bearer " + token)
	return []gin.HandlerFunc{func(c *gin.Context) {
		got := []byte(c.GetHeader("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			code, body := api.ErrorResponse(api.ErrUnauthorized)
			c.AbortWithStatusJSON(code, body)
			return
		}
		c.Next()
	}}, nil
}

// serveHTTP serves h on addr until ctx is cancelled, then shuts down gracefully.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", "http://"+ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// busHandlers bounds the requests a role's bus serves at once. Most wait
// on the store (discovery applies statuses in batches, and a batch answers
// all its requests together), so the bound is high: with a thousand
// workers reporting, a low one would make the batches small and slow.
const busHandlers = 4096

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

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

// roleFlags are the settings of the roles, shared by their own subcommands and `up`.
type roleFlags struct {
	ep endpoints

	// frontend
	maxCores         int
	allowHostVolumes bool
	// jobmanager
	strategy  string
	policy    string
	sortBatch bool
	maxWait   float64
	resync    time.Duration
	// globalmanager
	advertise string
	cmdTimout time.Duration
	prune     time.Duration
	noSwarm   bool
	// discovery
	grace     time.Duration
	reconcile time.Duration
	// worker
	runtime      string
	dockerHost   string
	pull         bool
	heartbeat    time.Duration
	simID        string
	simCores     int
	simMem       string
	timeScale    float64
	probeCRIU    bool
	warmNetworks int
	sandboxImage string
	transfer     string

	// local, set by rswarm up, lets roles in one process call each other
	// directly instead of over HTTP; nil when each role runs alone.
	local *localLinks
	// carriers, set when one process runs several simulated workers, are
	// the bus connections they share; nil: each worker dials its own.
	carriers *simCarriers
}

// localLinks connects the roles of one process.
type localLinks struct {
	gm atomic.Pointer[globalmanager.Manager] // set once the globalmanager is up
}

var _ jobmanager.Dispatcher = (*localLinks)(nil)

// Deploy deploys through the globalmanager of this process.
func (l *localLinks) Deploy(ctx context.Context, j *api.Job) error {
	gm := l.gm.Load()
	if gm == nil {
		return fmt.Errorf("deploy job %s: the globalmanager is not up yet: %w", j.Name, api.ErrUnavailable)
	}
	return gm.DeployPlaced(ctx, j)
}

// Stop stops through the globalmanager of this process.
func (l *localLinks) Stop(ctx context.Context, job, reason string) error {
	gm := l.gm.Load()
	if gm == nil {
		return fmt.Errorf("stop job %s: the globalmanager is not up yet: %w", job, api.ErrUnavailable)
	}
	return gm.Stop(ctx, job, reason)
}

func (r *roleFlags) bindFrontend(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&r.maxCores, "max-cores", 1024, "largest req_cores a task may ask for")
	f.BoolVar(&r.allowHostVolumes, "allow-host-volumes", false, "let tasks bind host paths into their containers")
}

func (r *roleFlags) bindJobmanager(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.strategy, "strategy", "best-fit", "placement strategy (see GET /api/v1/scheduler)")
	f.StringVar(&r.policy, "policy", "backfill", "queue policy: backfill (later jobs that fit go ahead) or fifo")
	f.BoolVar(&r.sortBatch, "sort-batch", false, "decreasing strategies sort the whole waiting batch, not each job")
	f.Float64Var(&r.maxWait, "max-wait", 0, "seconds after which a waiting job stops later jobs from backfilling past it (0 = default)")
	f.DurationVar(&r.resync, "resync", 2*time.Second, "how often the jobmanager re-reads the store")
}

func (r *roleFlags) bindGlobalmanager(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.advertise, "advertise-addr", "127.0.0.1", "address the swarm manager advertises")
	f.DurationVar(&r.cmdTimout, "command-timeout", 10*time.Second, "how long a worker has to acknowledge a command")
	f.DurationVar(&r.prune, "prune-interval", time.Second, "how often networks of finished jobs are removed")
	f.BoolVar(&r.noSwarm, "no-swarm", false, "do not use Docker Swarm (simulated workers only)")
}

func (r *roleFlags) bindDiscovery(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&r.grace, "heartbeat-grace", 3*time.Second, "a worker silent this long is marked down and its tasks failed (judged by when heartbeats were sent)")
	cmd.Flags().DurationVar(&r.reconcile, "reconcile-interval", 5*time.Second, "how often the tasks workers report are compared with the store (orphans stopped, missing tasks failed)")
}

func (r *roleFlags) bindWorker(cmd *cobra.Command, withAdvertise bool) {
	f := cmd.Flags()
	f.StringVar(&r.runtime, "runtime", "docker", "worker runtime: docker (the local Docker Engine) or sim (simulated)")
	f.StringVar(&r.dockerHost, "docker-host", "", "Docker Engine to use (default: DOCKER_HOST or the local socket)")
	f.BoolVar(&r.pull, "pull", false, "try to pull images that are not present locally")
	f.DurationVar(&r.heartbeat, "heartbeat", time.Second, "mean time between heartbeats")
	f.StringVar(&r.simID, "sim-id", "", "node ID of a simulated worker (default sim-<host>-<pid>)")
	f.IntVar(&r.simCores, "cores", 16, "cores of each simulated worker")
	f.StringVar(&r.simMem, "memory", "64g", "memory of each simulated worker")
	f.Float64Var(&r.timeScale, "time-scale", 1, "simulated task durations are multiplied by this")
	f.BoolVar(&r.probeCRIU, "probe-checkpoint", true, "probe at start whether CRIU checkpoints work on this host")
	f.IntVar(&r.warmNetworks, "warm-networks", 2, "local bridge networks a Docker worker keeps made ahead for jobs on one worker (0: each job's network is made with its first task)")
	f.StringVar(&r.sandboxImage, "sandbox-image", "rswarm/busybox:latest", "image (with sleep) of the sandboxes a Docker worker starts on its warm networks, for one-task jobs to start in (\"\": none)")
	if withAdvertise {
		f.StringVar(&r.advertise, "advertise-addr", "", "address this worker advertises when it joins the swarm (default: the engine's)")
		f.StringVar(&r.transfer, "transfer-addr", ":3200", "where this worker receives migrated tasks' state from other workers (host:port; empty: it does not)")
	} else {
		f.StringVar(&r.transfer, "transfer-addr", "", "where the local worker receives migrated tasks' state (host:port; empty: it does not)")
	}
}

func (r *roleFlags) limits() api.Limits {
	return api.Limits{MaxCores: r.maxCores, AllowHostVolumes: r.allowHostVolumes}
}

// frontendRole serves the frontend until ctx ends.
func (r *roleFlags) frontendRole(ctx context.Context, st store.Store, log *slog.Logger) error {
	token, err := r.ep.token()
	if err != nil {
		return err
	}
	mw, err := authMiddleware(r.ep.frontend, token, r.ep.insecure)
	if err != nil {
		return err
	}
	jm, err := dialJobmanager(&r.ep, "frontend", log)
	if err != nil {
		return err
	}
	defer jm.Close()
	dc, err := dialDiscovery(&r.ep, "frontend", log)
	if err != nil {
		return err
	}
	defer dc.Close()
	cfg := frontend.DefaultConfig()
	gm := api.NewClient("http://"+r.ep.globalmanager, token)
	cfg.Limits, cfg.Logger, cfg.Migrator, cfg.Statuses = r.limits(), log, gmMigrator{gm}, dc
	fe := frontend.New(cfg, st, jm, gm)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return fe.Run(gctx) })
	g.Go(func() error { return serveHTTP(gctx, r.ep.frontend, fe.Router(mw...), log) })
	return g.Wait()
}

// gmMigrator relays the dashboard's migrations to the globalmanager's
// POST /api/v1/migrations.
type gmMigrator struct{ c *api.Client }

func (m gmMigrator) MigrateTask(ctx context.Context, job, task, from, to string) (any, error) {
	var res json.RawMessage
	err := m.c.Do(ctx, http.MethodPost, "/api/v1/migrations", map[string]string{"job": job, "container": task, "from": from, "to": to}, &res)
	return res, err
}

// jobmanagerRole runs the jobmanager and its bus until ctx ends.
func (r *roleFlags) jobmanagerRole(ctx context.Context, st store.Store, log *slog.Logger) error {
	cfg := jobmanager.DefaultConfig()
	cfg.Strategy, cfg.Policy, cfg.SortBatch, cfg.MaxWait, cfg.ResyncInterval = r.strategy, r.policy, r.sortBatch, r.maxWait, r.resync
	cfg.Logger = log
	// Placed jobs go to the globalmanager whole: over its bus, or, in one
	// process (rswarm up), by a direct call.
	var gm jobmanager.Dispatcher
	if r.local != nil {
		gm = r.local
	} else {
		link, err := dialGlobalmanager(&r.ep, "jobmanager", log)
		if err != nil {
			return err
		}
		defer link.Close()
		gm = link
	}
	m, err := jobmanager.New(cfg, st, gm)
	if err != nil {
		return err
	}
	srv, err := r.ep.listenBus("jobmanager", r.ep.jmBus, jobmanagerHandler(m), log, bus.WithMaxHandlers(busHandlers))
	if err != nil {
		return fmt.Errorf("jobmanager bus %s: %w", r.ep.jmBus, err)
	}
	defer srv.Close()
	log.Info("listening", "bus", srv.Addr(), "strategy", cfg.Strategy, "policy", cfg.Policy)
	return m.Run(ctx)
}

// discoveryRole runs discovery and its bus until ctx ends.
func (r *roleFlags) discoveryRole(ctx context.Context, st store.Store, log *slog.Logger) error {
	jm, err := dialJobmanager(&r.ep, "discovery", log)
	if err != nil {
		return err
	}
	defer jm.Close()
	cfg := discovery.DefaultConfig()
	cfg.HeartbeatGrace, cfg.ReconcileInterval, cfg.Logger = r.grace, r.reconcile, log
	s, err := discovery.New(cfg, st, jm)
	if err != nil {
		return err
	}
	srv, err := r.ep.listenBus("discovery", r.ep.dcBus, discoveryHandler(s), log, bus.WithMaxHandlers(busHandlers))
	if err != nil {
		return fmt.Errorf("discovery bus %s: %w", r.ep.dcBus, err)
	}
	defer srv.Close()
	log.Info("listening", "bus", srv.Addr())
	return s.Run(ctx)
}

// globalmanagerRole runs the globalmanager, its REST API and its bus until ctx ends.
// ready is closed once the swarm is initialised and the bus is up.
func (r *roleFlags) globalmanagerRole(ctx context.Context, st store.Store, log *slog.Logger, ready chan<- struct{}) error {
	token, err := r.ep.token()
	if err != nil {
		return err
	}
	mw, err := authMiddleware(r.ep.globalmanager, token, r.ep.insecure)
	if err != nil {
		return err
	}
	jm, err := dialJobmanager(&r.ep, "globalmanager", log)
	if err != nil {
		return err
	}
	defer jm.Close()
	var sw globalmanager.Swarm
	if !r.noSwarm {
		eng, err := engine.New(r.dockerHost)
		if err != nil {
			return err
		}
		defer eng.Close()
		sw = eng
	}
	cfg := globalmanager.DefaultConfig()
	cfg.AdvertiseAddr, cfg.CommandTimeout, cfg.PruneInterval, cfg.NoSwarm, cfg.Logger = r.advertise, r.cmdTimout, r.prune, r.noSwarm, log
	cfg.Limits = r.limits()
	cfg.Cluster = r.ep.clusterID()
	m, err := globalmanager.New(cfg, sw, nil, st, jm)
	if err != nil {
		return err
	}
	if _, err := m.Init(ctx); err != nil {
		return err
	}
	if r.local != nil {
		r.local.gm.Store(m)
	}
	// Only the jobmanager may hand over placed jobs (see globalmanagerHandler).
	jmKey := ""
	if r.ep.busAuth {
		if jmKey, err = r.ep.serverPublic("jobmanager"); err != nil {
			return err
		}
	}
	srv, err := r.ep.listenBus("globalmanager", r.ep.gmBus, globalmanagerHandler(m, jmKey), log, bus.WithMaxHandlers(busHandlers))
	if err != nil {
		return fmt.Errorf("globalmanager bus %s: %w", r.ep.gmBus, err)
	}
	defer srv.Close()
	m.SetWorkers(srv)
	log.Info("listening", "bus", srv.Addr())
	if ready != nil {
		close(ready)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return m.Run(gctx) })
	g.Go(func() error { return serveHTTP(gctx, r.ep.globalmanager, m.Router(mw...), log) })
	return g.Wait()
}

// workerRuntime builds the runtime of one worker.
func (r *roleFlags) workerRuntime(log *slog.Logger, simIndex int) (worker.Runtime, func(), error) {
	switch r.runtime {
	case "docker":
		eng, err := engine.New(r.dockerHost)
		if err != nil {
			return nil, nil, err
		}
		rt := engine.NewRuntime(eng, r.advertise, log)
		rt.Pull = r.pull
		if r.warmNetworks < 0 {
			return nil, nil, fmt.Errorf("--warm-networks must not be negative, got %d", r.warmNetworks)
		}
		rt.WarmNetworks = r.warmNetworks
		rt.SandboxImage = r.sandboxImage
		if r.probeCRIU {
			rt.CheckpointImage = "rswarm/busybox:latest"
		}
		return rt, func() { eng.Close() }, nil
	case "sim":
		mem, err := api.ParseMem(r.simMem)
		if err != nil {
			return nil, nil, fmt.Errorf("--memory: %w", err)
		}
		if r.simCores < 1 {
			return nil, nil, fmt.Errorf("--cores must be at least 1")
		}
		id := r.simID
		if id == "" {
			id = identity("sim")
		}
		if simIndex >= 0 {
			id = fmt.Sprintf("%s-%04d", id, simIndex)
		}
		return worker.NewSim(id, r.simCores, mem, r.timeScale), func() {}, nil
	}
	return nil, nil, fmt.Errorf("--runtime must be docker or sim, got %q", r.runtime)
}

// workerRole runs one worker until ctx ends.
func (r *roleFlags) workerRole(ctx context.Context, log *slog.Logger, simIndex int, ready chan<- string) error {
	rt, closeRT, err := r.workerRuntime(log, simIndex)
	if err != nil {
		return err
	}
	defer closeRT()
	if r.ep.busAuth && simIndex <= 0 {
		kp, err := ensureKey(r.ep.keysDir(), "worker")
		if err != nil {
			return err
		}
		log.Info("bus key: authorise it on the control plane as <data-dir>/bus/authorized/<name>.pub", "public_key", kp.Public)
	}
	cfg := worker.DefaultConfig()
	cfg.HeartbeatPeriod, cfg.Logger, cfg.Limits = r.heartbeat, log, r.limits()
	if r.runtime == "docker" {
		cfg.TransferListen = r.transfer
	}
	dialGM, dialDC := workerDialer(&r.ep, "globalmanager", r.ep.gmBus, log), workerDialer(&r.ep, "discovery", r.ep.dcBus, log)
	if r.carriers != nil {
		dialGM, dialDC = r.carriers.dialer("globalmanager", r.ep.gmBus), r.carriers.dialer("discovery", r.ep.dcBus)
	}
	a, err := worker.New(cfg, rt, dialGM, dialDC)
	if err != nil {
		return err
	}
	if ready != nil {
		go func() {
			select {
			case <-a.Ready():
				ready <- a.NodeID()
			case <-ctx.Done():
			}
		}()
	}
	return a.Run(ctx)
}

// withStore opens the store for a role and closes it afterwards.
func (r *roleFlags) withStore(cmd *cobra.Command, role string, fn func(ctx context.Context, st store.Store, log *slog.Logger) error) error {
	log := newLogger(cmd).With("component", role)
	ctx := cmd.Context()
	st, err := r.ep.openStore(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(ctx, st, log)
}

func init() {
	var fe, jm, gm, dc, wk roleFlags
	var wkCount int
	feCmd := &cobra.Command{Use: "frontend", Short: "REST API for jobs (default 127.0.0.1:5001)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return fe.withStore(cmd, "frontend", fe.frontendRole) }}
	fe.ep.bind(feCmd)
	fe.bindFrontend(feCmd)
	addCommand(feCmd)

	jmCmd := &cobra.Command{Use: "jobmanager", Short: "queue and placement (bus default tcp://127.0.0.1:2990)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return jm.withStore(cmd, "jobmanager", jm.jobmanagerRole) }}
	jm.ep.bind(jmCmd)
	jm.bindJobmanager(jmCmd)
	addCommand(jmCmd)

	gmCmd := &cobra.Command{Use: "globalmanager", Short: "drives Docker Swarm and deploys jobs (default 127.0.0.1:5000, bus tcp://127.0.0.1:3100)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return gm.withStore(cmd, "globalmanager", func(ctx context.Context, st store.Store, log *slog.Logger) error {
				return gm.globalmanagerRole(ctx, st, log, nil)
			})
		}}
	gm.ep.bind(gmCmd)
	gm.bindGlobalmanager(gmCmd)
	gm.bindFrontend(gmCmd)
	gmCmd.Flags().StringVar(&gm.dockerHost, "docker-host", "", "Docker Engine of the manager (default: DOCKER_HOST or the local socket)")
	addCommand(gmCmd)

	dcCmd := &cobra.Command{Use: "discovery", Short: "status and heartbeat sink (bus default tcp://127.0.0.1:4000)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return dc.withStore(cmd, "discovery", dc.discoveryRole) }}
	dc.ep.bind(dcCmd)
	dc.bindDiscovery(dcCmd)
	addCommand(dcCmd)

	wkCmd := &cobra.Command{Use: "worker", Short: "per-host agent running tasks (--runtime docker or sim)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(cmd).With("component", "worker")
			if wkCount == 1 && (wk.runtime != "sim" || !cmd.Flags().Changed("workers")) {
				return wk.workerRole(cmd.Context(), log, -1, nil)
			}
			if wk.runtime != "sim" || wkCount < 1 {
				return fmt.Errorf("--workers %d: several workers in one process need --runtime sim (and at least 1)", wkCount)
			}
			if err := raiseOpenFiles(simProcessFiles); err != nil {
				return fmt.Errorf("--workers %d: %w", wkCount, err)
			}
			wk.carriers = newSimCarriers(&wk.ep, log)
			defer wk.carriers.Close()
			g, gctx := errgroup.WithContext(cmd.Context())
			for i := 0; i < wkCount; i++ {
				g.Go(func() error { return wk.workerRole(gctx, log, i, nil) })
			}
			return g.Wait()
		}}
	wk.ep.bind(wkCmd)
	wk.bindWorker(wkCmd, true)
	wk.bindFrontend(wkCmd) // the rules this worker applies to the tasks it is told to run
	wkCmd.Flags().IntVar(&wkCount, "workers", 1, "number of simulated workers this process runs (--runtime sim), named <sim-id>-0000 ...; they share one bus connection per server")
	addCommand(wkCmd)
}

package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

func init() {
	var r roleFlags
	var workers int
	cmd := &cobra.Command{
		Use:   "up",
		Short: "run everything on this host: store, frontend, jobmanager, globalmanager, discovery and workers",
		Long: `up runs the whole system in one process: the embedded store (or MongoDB with
--mongo-uri), the frontend on 127.0.0.1:5001, the globalmanager on 127.0.0.1:5000,
the jobmanager, discovery, and one worker on the local Docker Engine, which becomes
(or stays) a Swarm manager node. With --runtime sim it runs --workers simulated
workers instead. It runs until interrupted; then it stops its workers' containers
and keeps the data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd, &r, workers) },
	}
	r.ep.bind(cmd)
	r.bindFrontend(cmd)
	r.bindJobmanager(cmd)
	r.bindGlobalmanager(cmd)
	r.bindDiscovery(cmd)
	r.bindWorker(cmd, false)
	cmd.Flags().IntVar(&workers, "workers", 1, "number of workers (more than one needs --runtime sim; 0 runs the control plane only, for workers on other hosts)")
	addCommand(cmd)
}

func runUp(cmd *cobra.Command, r *roleFlags, workers int) error {
	if workers < 0 {
		return fmt.Errorf("--workers must be 0 (control plane only) or more")
	}
	if workers > 1 && r.runtime != "sim" {
		return fmt.Errorf("--workers %d needs --runtime sim: one host runs one Docker worker", workers)
	}
	if r.runtime == "sim" && !cmd.Flags().Changed("no-swarm") {
		r.noSwarm = true
	}
	// Hundreds of simulated workers share this process's two cores with the
	// control plane: under load their heartbeats arrive late, and a tight
	// grace would declare them lost. Widen it unless the user chose one.
	if r.runtime == "sim" && workers > 200 && !cmd.Flags().Changed("heartbeat-grace") {
		r.grace = max(r.grace, time.Duration(workers)*15*time.Millisecond)
	}
	// For the same reason they beat less often: a thousand heartbeats a
	// second were a tenth of the process's work (2 s for 1,000 workers).
	if r.runtime == "sim" && workers > 500 && !cmd.Flags().Changed("heartbeat") {
		r.heartbeat = max(r.heartbeat, time.Duration(workers)*2*time.Millisecond)
	}
	if r.runtime == "sim" {
		if err := raiseOpenFiles(simProcessFiles); err != nil {
			return fmt.Errorf("--workers %d: %w", workers, err)
		}
	}
	// A simulation is CPU-bound on a small host and its heap small next to
	// the host's memory: collect garbage half as often (GOGC=200) unless
	// the user set GOGC.
	if r.runtime == "sim" && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	ctx := cmd.Context()
	log := newLogger(cmd)
	st, err := r.ep.openStore(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()

	// The control plane outlives the workers, so that their last statuses
	// are recorded when the user presses Ctrl-C.
	ctrlCtx, stopCtrl := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCtrl()
	r.local = &localLinks{} // the jobmanager deploys through the globalmanager directly
	g, gctx := errgroup.WithContext(ctrlCtx)
	gmReady := make(chan struct{})
	g.Go(func() error { return r.jobmanagerRole(gctx, st, log.With("component", "jobmanager")) })
	g.Go(func() error { return r.discoveryRole(gctx, st, log.With("component", "discovery")) })
	g.Go(func() error {
		return r.globalmanagerRole(gctx, st, log.With("component", "globalmanager"), gmReady)
	})
	g.Go(func() error { return r.frontendRole(gctx, st, log.With("component", "frontend")) })
	select {
	case <-gmReady:
	case <-gctx.Done():
		return g.Wait()
	case <-ctx.Done():
		stopCtrl()
		return g.Wait()
	}

	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	go func() {
		select {
		case <-gctx.Done(): // the control plane failed
			stopWorkers()
		case <-wctx.Done():
		}
	}()
	if r.runtime == "sim" {
		r.carriers = newSimCarriers(&r.ep, log.With("component", "worker"))
	}
	var wg sync.WaitGroup
	ready := make(chan string, workers)
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		idx := -1
		if r.runtime == "sim" {
			idx = i
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.workerRole(wctx, log.With("component", "worker"), idx, ready); err != nil {
				errs <- err
				stopWorkers()
			}
		}()
	}
	var nodes []string
	for len(nodes) < workers {
		select {
		case id := <-ready:
			nodes = append(nodes, id)
		case <-wctx.Done():
		}
		if wctx.Err() != nil {
			break
		}
	}
	if wctx.Err() == nil && workers == 0 {
		bannerControl(cmd, r)
	} else if wctx.Err() == nil {
		banner(cmd, r, nodes)
	}
	<-wctx.Done()
	wg.Wait()
	if r.carriers != nil {
		if err := r.carriers.Close(); err != nil {
			log.Warn("closing the simulated workers' bus connections", "err", err)
		}
	}
	stopCtrl()
	err = g.Wait()
	where := r.ep.dataDir
	if r.ep.mongoURI != "" {
		where = "MongoDB database " + r.ep.mongoDB
	}
	fmt.Fprintf(cmd.OutOrStdout(), "RSwarm stopped; the data is kept in %s.\n", where)
	close(errs)
	for werr := range errs {
		if err == nil {
			err = werr
		}
	}
	return err
}

// bannerControl says where workers on other hosts connect.
func bannerControl(cmd *cobra.Command, r *roleFlags) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "\nRSwarm control plane is up (no local worker), strategy %s.\n", r.strategy)
	fmt.Fprintf(w, "  Workers      rswarm worker --globalmanager-bus %s --discovery-bus %s\n", r.ep.gmBus, r.ep.dcBus)
	fmt.Fprintf(w, "  Jobs API     http://%s/api/v1/jobs\n", r.ep.frontend)
	fmt.Fprintf(w, "  Cluster API  http://%s/RESTfulSwarm/GM/get_worker_list\n\n", r.ep.globalmanager)
}

func banner(cmd *cobra.Command, r *roleFlags, nodes []string) {
	w := cmd.OutOrStdout()
	desc := fmt.Sprintf("1 Docker worker (node %s)", nodes[0])
	if r.runtime == "sim" {
		desc = fmt.Sprintf("%d simulated workers of %d cores", len(nodes), r.simCores)
	}
	fmt.Fprintf(w, "\nRSwarm is up: %s, strategy %s.\n", desc, r.strategy)
	fmt.Fprintf(w, "  Dashboard    http://%s/ui/\n", r.ep.frontend)
	fmt.Fprintf(w, "  Jobs API     http://%s/api/v1/jobs\n", r.ep.frontend)
	fmt.Fprintf(w, "  Submit       curl -X POST --data @job.json http://%s/RESTfulSwarm/FE/request_new_job\n", r.ep.frontend)
	fmt.Fprintf(w, "  Swagger UI   http://%s/swagger/index.html\n", r.ep.frontend)
	fmt.Fprintf(w, "  Cluster API  http://%s/RESTfulSwarm/GM/get_worker_list\n", r.ep.globalmanager)
	fmt.Fprintf(w, "Press Ctrl-C to stop: the workers' containers are stopped, the data is kept.\n\n")
}

// simProcessFiles is what a process of simulated workers may need open,
// whatever their number: the workers share one bus connection per server
// (a carrier, see carriers.go), so a worker holds no descriptor of its own;
// the rest is the store, the servers' sockets, and the HTTP connections of
// clients such as rswarm stress (256 at once by default), with room to
// spare. (With a connection each per server, a socket at both ends,
// ZeroMQ's mailbox of each socket and the poller's duplicate, a worker held
// 8: a thousand held 8,052 and ten thousand could not start under a hard
// limit of 20,000.)
const simProcessFiles = 4096

// raiseOpenFiles lets this process open need files where it may: it
// raises its soft limit, and the hard one when it is lower and this process
// is allowed to; else it settles for the hard limit (a process of simulated
// workers needs need only under heavy HTTP load, not to start).
func raiseOpenFiles(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open-files limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	want := lim
	want.Cur = need
	if want.Max < need {
		want.Max = need
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		want = lim
		want.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return fmt.Errorf("raise the open-files limit from %d to %d: %w", lim.Cur, lim.Max, err)
		}
	}
	return nil
}

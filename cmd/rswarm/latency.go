package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/engine"
)

func init() {
	var fe, token, image, dockerHost string
	var runs int
	var dockerOnly bool
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "latency",
		Short: "time from submission to Running for a one-task job, next to docker run of the same image",
		Long: `latency submits one-task jobs (sleep 5, one core, 16m) to a running RSwarm and
times each from just before the submission to the first moment the API shows
the task Running: once with the default network driver (auto: a local bridge
network for a job on one worker) and once asking for an overlay. In the same
run it times the Docker Engine starting the same container directly, measured
the same way (from just before the create to the first moment the engine
reports it running), with the same cpuset and memory limit: on the default
bridge, on a new bridge network, on an existing bridge network (what a
one-worker job of several tasks gets from its worker's pool of networks made
ahead), in the network namespace of a container already running on that
bridge (what a one-task job gets from its worker's sandbox made ahead), on an
existing attachable overlay, and on a new overlay network. The rows take turns, one
run of each per round in a shuffled order, so that a change of the machine's
load weighs on all alike, and it prints RSwarm's local-network row minus Docker's default bridge
both as a difference of medians and as the median of the rounds' differences.
It needs a running RSwarm with a Docker worker (rswarm up) and the local engine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if poll <= 0 {
				return fmt.Errorf("--poll must be positive, got %v", poll)
			}
			return runLatency(cmd.Context(), cmd, fe, token, image, dockerHost, runs, poll, dockerOnly)
		},
	}
	cmd.Flags().StringVar(&fe, "fe", "http://127.0.0.1:5001", "frontend URL")
	cmd.Flags().StringVar(&token, "api-token", "", "API token")
	cmd.Flags().StringVar(&image, "image", "rswarm/busybox:latest", "image to run")
	cmd.Flags().StringVar(&dockerHost, "docker-host", "", "Docker Engine (default: the local one)")
	cmd.Flags().IntVar(&runs, "runs", 10, "runs of each measurement")
	cmd.Flags().BoolVar(&dockerOnly, "docker-only", false, "time Docker's rows only (no RSwarm needed): to compare the engine with and without an RSwarm running beside it")
	cmd.Flags().DurationVar(&poll, "poll", 2*time.Millisecond, "how often the job (or the container) is read while waiting for Running")
	addBenchCommand(cmd)
}

func runLatency(ctx context.Context, cmd *cobra.Command, fe, token, image, dockerHost string, runs int, pollEvery time.Duration, dockerOnly bool) error {
	c := api.NewClient(fe, token)
	eng, err := engine.New(dockerHost)
	if err != nil {
		return err
	}
	defer eng.Close()
	session := fmt.Sprintf("latency-%d", time.Now().Unix())
	// stages are, per rswarm row, where the time went, from the job's own
	// record: placed, deployed (every worker accepted), the task's
	// container running (the worker's clock).
	type stage struct{ placed, deployed, started []time.Duration }
	stages := map[string]*stage{api.DriverAuto: {}, api.DriverOverlay: {}}
	// The workers' sandboxes (engine.Runtime.SandboxImage) at the start:
	// what a job's end has its worker make again.
	sandboxesAtStart := 0
	submit := func(driver string, i int) (time.Duration, error) {
		j := &api.Job{Name: fmt.Sprintf("lat%d-%d", time.Now().UnixMilli(), i), Session: api.Session(session)}
		j.Info.Network.Driver = driver
		j.Info.Tasks = api.Tasks{{ContainerName: j.Name + "_task1", Image: image, Command: "sleep 5", ReqCores: 1, MemLimit: "16m", Detach: true}}
		start := time.Now()
		if err := c.SubmitJob(ctx, j); err != nil {
			return 0, err
		}
		var got *api.Job
		for {
			var err error
			got, err = c.Job(ctx, j.Name)
			if err != nil {
				return 0, err
			}
			if t := got.Info.Tasks[0]; t.Status == api.Running {
				break
			} else if t.Status.Final() {
				return 0, fmt.Errorf("job %s ended %s before running: %s", j.Name, t.Status, t.Error)
			}
			time.Sleep(pollEvery)
		}
		took := time.Since(start)
		since := func(t float64) time.Duration { return time.Duration((t - got.SubmitTime) * float64(time.Second)) }
		st := stages[driver]
		st.placed = append(st.placed, since(got.PlaceTime))
		st.deployed = append(st.deployed, since(got.DeployTime))
		st.started = append(st.started, since(got.Info.Tasks[0].StartTime))
		if err := c.CancelJob(ctx, j.Name); err != nil {
			return 0, err
		}
		// As for Docker's own rows below, the next measurement starts once
		// this one's container and network are gone: the engine is not
		// busy removing them while the next is timed.
		if err := gone(ctx, eng, j.Info.Tasks[0].ContainerName, j.Name); err != nil {
			return 0, err
		}
		// Nor busy making the worker's pool whole again.
		if err := poolWhole(ctx, eng, sandboxesAtStart); err != nil {
			return 0, err
		}
		return took, nil
	}
	if !dockerOnly {
		if sandboxesAtStart, err = poolSettled(ctx, eng); err != nil {
			return err
		}
	}
	netName := fmt.Sprintf("rswarm-latency-%d", os.Getpid())
	labels := map[string]string{"rswarm.bench": "latency"}
	if _, err := eng.CreateNetwork(ctx, netName, "", labels); err != nil {
		return fmt.Errorf("overlay network for the comparison: %w", err)
	}
	defer eng.RemoveNetwork(context.WithoutCancel(ctx), netName)
	bridgeName := netName + "-bridge"
	if _, err := eng.CreateLocalNetwork(ctx, bridgeName, "", labels); err != nil {
		return fmt.Errorf("bridge network for the comparison: %w", err)
	}
	defer eng.RemoveNetwork(context.WithoutCancel(ctx), bridgeName)
	// direct times Docker itself: network "" = the default bridge;
	// ownNetwork "" = none, else the driver of a network made for the run.
	direct := func(network, ownNetwork string, i int) (time.Duration, error) {
		spec := engine.RunSpec{Name: fmt.Sprintf("rswarm-latency-%d-%d", os.Getpid(), i), Image: image, Cmd: []string{"sleep", "5"},
			CpusetCpus: "0", Memory: 16 << 20, Network: network, Labels: labels, StopTimeout: 1}
		start := time.Now()
		switch ownNetwork {
		case api.DriverOverlay:
			spec.Network = fmt.Sprintf("%s-o%d", netName, i)
			if _, err := eng.CreateNetwork(ctx, spec.Network, "", labels); err != nil {
				return 0, err
			}
		case api.DriverBridge:
			spec.Network = fmt.Sprintf("%s-b%d", netName, i)
			if _, err := eng.CreateLocalNetwork(ctx, spec.Network, "", labels); err != nil {
				return 0, err
			}
		}
		if ownNetwork == "sandbox" {
			// What a sandbox saves: the container joins the network
			// namespace of one already running on the bridge network
			// (started before the clock, as a worker does ahead).
			box := spec
			box.Name, box.Cmd, box.Network, box.CpusetCpus = spec.Name+"-sandbox", []string{"sleep", "3600"}, bridgeName, ""
			bid, err := eng.Create(ctx, box)
			if err != nil {
				return 0, err
			}
			defer eng.Remove(context.WithoutCancel(ctx), bid, true)
			if err := eng.Start(ctx, bid); err != nil {
				return 0, err
			}
			spec.Network = "container:" + bid
			start = time.Now()
		}
		id, err := eng.Create(ctx, spec)
		if err != nil {
			return 0, err
		}
		if err := eng.Start(ctx, id); err != nil {
			_ = eng.Remove(context.WithoutCancel(ctx), id, true)
			return 0, err
		}
		for {
			ct, err := eng.Inspect(ctx, id)
			if err != nil {
				return 0, err
			}
			if ct.Running {
				break
			}
			time.Sleep(pollEvery)
		}
		took := time.Since(start)
		if err := eng.Remove(ctx, id, true); err != nil {
			return 0, err
		}
		if ownNetwork == api.DriverOverlay || ownNetwork == api.DriverBridge {
			if err := removeNetwork(ctx, eng, spec.Network); err != nil {
				return 0, err
			}
		}
		return took, nil
	}
	// The rows take turns, one run of each in every round, in an order
	// shuffled at every round, so that a machine whose load changes during
	// the bench, and what the engine still does after a row (a swarm
	// network's removal goes on in the background), weigh on every row
	// alike: the rows of one round are a pair to compare.
	rows := []struct {
		name string
		run  func(i int) (time.Duration, error)
		d    []time.Duration
	}{
		// The default driver (auto) gives a one-task job a local bridge network.
		{name: "rswarm: submit one-task job, local network -> task Running", run: func(i int) (time.Duration, error) { return submit(api.DriverAuto, i) }},
		{name: "rswarm: submit one-task job, overlay -> task Running", run: func(i int) (time.Duration, error) { return submit(api.DriverOverlay, i) }},
		{name: "docker: create+start, default bridge", run: func(i int) (time.Duration, error) { return direct("", "", i) }},
		{name: "docker: new bridge network, create+start", run: func(i int) (time.Duration, error) { return direct("", api.DriverBridge, i) }},
		{name: "docker: create+start, existing bridge network", run: func(i int) (time.Duration, error) { return direct(bridgeName, "", i) }},
		{name: "docker: create+start in a running container's namespace", run: func(i int) (time.Duration, error) { return direct("", "sandbox", i) }},
		{name: "docker: create+start, attachable overlay", run: func(i int) (time.Duration, error) { return direct(netName, "", i) }},
		{name: "docker: new overlay network, create+start", run: func(i int) (time.Duration, error) { return direct("", api.DriverOverlay, i) }},
	}
	if dockerOnly {
		rows = rows[2:]
	}
	for i := 0; i < runs; i++ {
		for _, r := range rand.Perm(len(rows)) {
			d, err := rows[r].run(i)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", rows[r].name, i+1, err)
			}
			rows[r].d = append(rows[r].d, d)
		}
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "time to Running, %d runs each, the rows taking turns (min / median / p90 / max):\n", runs)
	for _, row := range rows {
		s := slices.Clone(row.d)
		slices.Sort(s)
		fmt.Fprintf(w, "  %-58s %6.0f / %6.0f / %6.0f / %6.0f ms\n", row.name, ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)*9/10]), ms(s[len(s)-1]))
	}
	if dockerOnly {
		return nil
	}
	// Row 0 (RSwarm, local network) against Docker's default bridge (the
	// goal), against an existing bridge network (what a job of several
	// tasks gets) and against a running container's namespace (the same
	// engine calls as a sandbox: the rest is RSwarm's own).
	for _, than := range []struct {
		row  int
		name string
	}{{2, "docker's default bridge"}, {4, "docker's existing bridge network"}, {5, "docker in a running container's namespace"}} {
		diff := make([]time.Duration, runs)
		for i := range diff {
			diff[i] = rows[0].d[i] - rows[than.row].d[i]
		}
		fmt.Fprintf(w, "rswarm local network over %s: medians %+.0f ms; median of the %d same-round differences %+.0f ms\n",
			than.name, ms(median(rows[0].d)-median(rows[than.row].d)), runs, ms(median(diff)))
	}
	for _, d := range []string{api.DriverAuto, api.DriverOverlay} {
		st := stages[d]
		fmt.Fprintf(w, "rswarm %s, medians after submission: placed +%.0f ms, deployed +%.0f ms, container running +%.0f ms (worker's clock)\n",
			map[string]string{api.DriverAuto: "local network", api.DriverOverlay: "overlay"}[d], ms(median(st.placed)), ms(median(st.deployed)), ms(median(st.started)))
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// gone waits until a cancelled job's container and networks are removed
// from the engine.
func gone(ctx context.Context, eng *engine.Client, container, job string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := eng.Inspect(ctx, container)
		if errors.Is(err, engine.ErrNotFound) {
			nets, nerr := eng.Networks(ctx, map[string]string{api.LabelJob: job})
			if nerr != nil {
				return nerr
			}
			if len(nets) == 0 {
				return nil
			}
		} else if err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("job %s: its container or network is still there 30 s after the cancel", job)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// poolSettled waits until the local workers' sandboxes stop changing (none
// being made, the same number twice 300 ms apart) and returns how many run.
func poolSettled(ctx context.Context, eng *engine.Client) (int, error) {
	deadline := time.Now().Add(60 * time.Second)
	last := -1
	for {
		n, making, err := sandboxCount(ctx, eng)
		if err != nil {
			return 0, err
		}
		if !making && n == last {
			return n, nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the workers' sandboxes did not settle within 60 s")
		}
		last = n
		time.Sleep(300 * time.Millisecond)
	}
}

// poolWhole waits until want sandboxes run again and none is being made.
func poolWhole(ctx context.Context, eng *engine.Client, want int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, making, err := sandboxCount(ctx, eng)
		if err != nil {
			return err
		}
		if n >= want && !making {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the workers made %d of their %d sandboxes again within 30 s", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sandboxCount counts the engine's running sandboxes and tells whether
// any is not running yet.
func sandboxCount(ctx context.Context, eng *engine.Client) (running int, making bool, err error) {
	cs, err := eng.Containers(ctx, map[string]string{api.LabelSandbox: "", api.LabelPool: ""}, true)
	if err != nil {
		return 0, false, err
	}
	for _, c := range cs {
		if c.Running {
			running++
		} else {
			making = true
		}
	}
	return running, making, nil
}

// removeNetwork removes a network the bench made, trying again while the
// engine still counts the removed container on it (a swarm network lets go
// of its last endpoint a moment after the container is gone).
func removeNetwork(ctx context.Context, eng *engine.Client, name string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := eng.RemoveNetwork(ctx, name)
		if err == nil || errors.Is(err, engine.ErrNotFound) {
			return nil
		}
		if !errors.Is(err, engine.ErrNetworkInUse) || time.Now().After(deadline) {
			return fmt.Errorf("remove the bench's network %s: %w", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

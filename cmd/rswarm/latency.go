package main

import (
	"context"
	"errors"
	"fmt"
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
one-worker job gets from its worker's pool of networks made ahead), on an
existing attachable overlay, and on a new overlay network. It needs a running RSwarm
with a Docker worker (rswarm up) and the local engine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLatency(cmd.Context(), cmd, fe, token, image, dockerHost, runs)
		},
	}
	cmd.Flags().StringVar(&fe, "fe", "http://127.0.0.1:5001", "frontend URL")
	cmd.Flags().StringVar(&token, "api-token", "", "API token")
	cmd.Flags().StringVar(&image, "image", "rswarm/busybox:latest", "image to run")
	cmd.Flags().StringVar(&dockerHost, "docker-host", "", "Docker Engine (default: the local one)")
	cmd.Flags().IntVar(&runs, "runs", 10, "runs of each measurement")
	addBenchCommand(cmd)
}

const pollEvery = 2 * time.Millisecond

func runLatency(ctx context.Context, cmd *cobra.Command, fe, token, image, dockerHost string, runs int) error {
	c := api.NewClient(fe, token)
	eng, err := engine.New(dockerHost)
	if err != nil {
		return err
	}
	defer eng.Close()
	session := fmt.Sprintf("latency-%d", time.Now().Unix())
	// stages are, per rswarm row, the medians of where the time went, from
	// the job's own record: placed, deployed (every worker accepted), the
	// task's container running (the worker's clock).
	stages := map[string]string{}
	submit := func(driver string) ([]time.Duration, error) {
		var rs []time.Duration
		var placed, deployed, started []time.Duration
		for i := 0; i < runs; i++ {
			j := &api.Job{Name: fmt.Sprintf("lat%d-%d", time.Now().UnixMilli(), i), Session: api.Session(session)}
			j.Info.Network.Driver = driver
			j.Info.Tasks = api.Tasks{{ContainerName: j.Name + "_task1", Image: image, Command: "sleep 5", ReqCores: 1, MemLimit: "16m", Detach: true}}
			start := time.Now()
			if err := c.SubmitJob(ctx, j); err != nil {
				return nil, err
			}
			var got *api.Job
			for {
				got, err = c.Job(ctx, j.Name)
				if err != nil {
					return nil, err
				}
				if t := got.Info.Tasks[0]; t.Status == api.Running {
					break
				} else if t.Status.Final() {
					return nil, fmt.Errorf("job %s ended %s before running: %s", j.Name, t.Status, t.Error)
				}
				time.Sleep(pollEvery)
			}
			rs = append(rs, time.Since(start))
			since := func(t float64) time.Duration { return time.Duration((t - got.SubmitTime) * float64(time.Second)) }
			placed = append(placed, since(got.PlaceTime))
			deployed = append(deployed, since(got.DeployTime))
			started = append(started, since(got.Info.Tasks[0].StartTime))
			if err := c.CancelJob(ctx, j.Name); err != nil {
				return nil, err
			}
			// As for Docker's own rows below, the next run starts once this
			// one's container and network are gone: the engine is not busy
			// removing them while the next is timed.
			if err := gone(ctx, eng, j.Info.Tasks[0].ContainerName, j.Name); err != nil {
				return nil, err
			}
		}
		stages[driver] = fmt.Sprintf("placed +%.0f ms, deployed +%.0f ms, container running +%.0f ms (worker's clock)", ms(median(placed)), ms(median(deployed)), ms(median(started)))
		return rs, nil
	}
	// The default driver (auto) gives a one-task job a local bridge network.
	local, err := submit(api.DriverAuto)
	if err != nil {
		return err
	}
	rs, err := submit(api.DriverOverlay)
	if err != nil {
		return err
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
	// ownNetwork: "" = none, else the driver of a network made for each run.
	direct := func(network string, ownNetwork string) ([]time.Duration, error) {
		var out []time.Duration
		for i := 0; i < runs; i++ {
			spec := engine.RunSpec{Name: fmt.Sprintf("rswarm-latency-%d-%d", os.Getpid(), i), Image: image, Cmd: []string{"sleep", "5"},
				CpusetCpus: "0", Memory: 16 << 20, Network: network, Labels: labels, StopTimeout: 1}
			start := time.Now()
			switch ownNetwork {
			case api.DriverOverlay:
				spec.Network = fmt.Sprintf("%s-%d", netName, i)
				if _, err := eng.CreateNetwork(ctx, spec.Network, "", labels); err != nil {
					return nil, err
				}
			case api.DriverBridge:
				spec.Network = fmt.Sprintf("%s-%d", netName, i)
				if _, err := eng.CreateLocalNetwork(ctx, spec.Network, "", labels); err != nil {
					return nil, err
				}
			}
			id, err := eng.Create(ctx, spec)
			if err != nil {
				return nil, err
			}
			if err := eng.Start(ctx, id); err != nil {
				_ = eng.Remove(context.WithoutCancel(ctx), id, true)
				return nil, err
			}
			for {
				ct, err := eng.Inspect(ctx, id)
				if err != nil {
					return nil, err
				}
				if ct.Running {
					break
				}
				time.Sleep(pollEvery)
			}
			out = append(out, time.Since(start))
			if err := eng.Remove(ctx, id, true); err != nil {
				return nil, err
			}
			if ownNetwork != "" {
				_ = eng.RemoveNetwork(ctx, spec.Network)
			}
		}
		return out, nil
	}
	bridge, err := direct("", "")
	if err != nil {
		return err
	}
	localNet, err := direct("", api.DriverBridge)
	if err != nil {
		return err
	}
	warm, err := direct(bridgeName, "")
	if err != nil {
		return err
	}
	overlay, err := direct(netName, "")
	if err != nil {
		return err
	}
	fresh, err := direct("", api.DriverOverlay)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "time to Running, %d runs each (min / median / p90 / max):\n", runs)
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{{"rswarm: submit one-task job, local network -> task Running", local}, {"rswarm: submit one-task job, overlay -> task Running", rs},
		{"docker: create+start, default bridge", bridge}, {"docker: new bridge network, create+start", localNet},
		{"docker: create+start, existing bridge network", warm}, {"docker: create+start, attachable overlay", overlay},
		{"docker: new overlay network, create+start", fresh}} {
		s := slices.Clone(row.d)
		slices.Sort(s)
		fmt.Fprintf(w, "  %-58s %6.0f / %6.0f / %6.0f / %6.0f ms\n", row.name, ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)*9/10]), ms(s[len(s)-1]))
	}
	fmt.Fprintf(w, "rswarm medians after submission: local network: %s; overlay: %s\n", stages[api.DriverAuto], stages[api.DriverOverlay])
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

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

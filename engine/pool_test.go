package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine"
)

// poolRig is a Docker runtime with a pool of local networks, watching
// until stop is called; ended receives the tasks it reports ended.
type poolRig struct {
	r     *engine.Runtime
	ended <-chan api.TaskStatus
	stop  context.CancelFunc
}

func startPool(t *testing.T, c *engine.Client, cluster string, warm int) *poolRig {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	r := engine.NewRuntime(c, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.WarmNetworks = warm
	if _, err := r.Host(ctx); err != nil {
		t.Fatalf("Host: %v", err)
	}
	r.SetCluster(cluster)
	wctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	return &poolRig{r: r, ended: r.Watch(wctx), stop: stop}
}

// close stops the rig's watch and waits until the runtime has let go of
// its pool (the watch's channel closes after that).
func (p *poolRig) close(t *testing.T) {
	t.Helper()
	p.stop()
	for range p.ended {
	}
}

// runTask runs task of job on a one-worker job's local network (the
// generated name, as the globalmanager sends it) and returns the network
// its container is on.
func runTask(t *testing.T, c *engine.Client, p *poolRig, cluster, job, task string) string {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	rt := api.RunTask{Job: job, Network: api.DefaultNetworkName(job), NetworkDriver: api.DriverBridge, Cluster: cluster,
		Task: api.Task{ContainerName: task, Image: testImage, Command: "sleep 3600", ReqCores: 1, CpusetCpus: "0", MemLimit: "16m"}}
	if err := p.r.Run(ctx, rt); err != nil {
		t.Fatalf("Run %s: %v", task, err)
	}
	in, err := c.Inspect(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Networks) != 1 || in.Labels[api.LabelLocalNetwork] != in.Networks[0] {
		t.Fatalf("%s: networks %v, label %s=%q: want one network, named in the label", task, in.Networks, api.LabelLocalNetwork, in.Labels[api.LabelLocalNetwork])
	}
	return in.Networks[0]
}

// stopTask kills a task and waits until the runtime reports it ended (its
// container removed and its network given back).
func stopTask(t *testing.T, p *poolRig, task string) {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	if err := p.r.Stop(ctx, task, 0); err != nil {
		t.Fatalf("Stop %s: %v", task, err)
	}
	for {
		select {
		case st, ok := <-p.ended:
			if !ok {
				t.Fatalf("watch ended before %s was reported", task)
			}
			if st.Task == task {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s not reported ended", task)
		}
	}
}

// poolNets lists the cluster's pooled networks: name -> containers on it.
func poolNets(t *testing.T, c *engine.Client, cluster string) map[string]int {
	t.Helper()
	nets, err := c.Networks(ctxFor(t, 30*time.Second), map[string]string{api.LabelPool: "", api.LabelCluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, n := range nets {
		if n.Driver != "bridge" {
			t.Errorf("pooled network %s has driver %s, want bridge", n.Name, n.Driver)
		}
		out[n.Name] = n.Containers
	}
	return out
}

// cleanPool removes, when the test ends, the containers named and every
// pooled network of cluster, whatever the test left.
func cleanPool(t *testing.T, c *engine.Client, cluster string, tasks ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, task := range tasks {
			_ = c.Remove(ctx, task, true)
		}
		nets, _ := c.Networks(ctx, map[string]string{api.LabelPool: "", api.LabelCluster: cluster})
		for _, n := range nets {
			_ = c.RemoveNetwork(ctx, n.ID)
		}
	})
}

// The pool: networks made ahead; a job's tasks share one, two jobs never
// do; a network comes back when its job's last task here ends and serves
// another job; when the runtime stops, none is left.
func TestRuntimePoolClaimReturnNoLeak(t *testing.T) {
	c := newClient(t)
	cluster := unique(t)
	jobA, jobB, jobC := unique(t), unique(t), unique(t)
	a1, a2, b1, c1 := jobA+"_1", jobA+"_2", jobB+"_1", jobC+"_1"
	cleanPool(t, c, cluster, a1, a2, b1, c1)
	p := startPool(t, c, cluster, 1)

	// WarmNetworks = 1: one network is made ahead, with no container.
	var warm string
	apitest.Eventually(t, 30*time.Second, func() error {
		idle := engine.IdleNetworks(p.r)
		if len(idle) != 1 {
			return fmt.Errorf("idle networks %v, want 1 made ahead", idle)
		}
		warm = idle[0]
		return nil
	})
	if nets := poolNets(t, c, cluster); len(nets) != 1 || nets[warm] != 0 {
		t.Fatalf("pooled networks on the engine %v, want only %s, with no container", nets, warm)
	}

	// Job A claims it, both its tasks on it; job B gets another.
	netA := runTask(t, c, p, cluster, jobA, a1)
	if netA != warm {
		t.Errorf("job A's first task is on %s, want the network made ahead %s", netA, warm)
	}
	if n := runTask(t, c, p, cluster, jobA, a2); n != netA {
		t.Errorf("job A's second task is on %s, want its job's %s", n, netA)
	}
	netB := runTask(t, c, p, cluster, jobB, b1)
	if netB == netA {
		t.Fatalf("jobs A and B share network %s", netA)
	}
	// The claims ran the pool dry: it is topped up in the background.
	apitest.Eventually(t, 30*time.Second, func() error {
		idle := 0
		for n, k := range poolNets(t, c, cluster) {
			if k == 0 && n != netA && n != netB {
				idle++
			}
		}
		if idle != 1 {
			return fmt.Errorf("%d idle pooled networks, want 1", idle)
		}
		return nil
	})

	// A's first task ending leaves A's network to its second.
	stopTask(t, p, a1)
	if k := poolNets(t, c, cluster)[netA]; k != 1 {
		t.Errorf("after %s ended, %s has %d containers, want 1 (%s)", a1, netA, k, a2)
	}
	// A's last task ending frees A's network: a network is idle again,
	// with no container, and the pool keeps no more than WarmNetworks idle.
	stopTask(t, p, a2)
	nets := poolNets(t, c, cluster)
	idle := 0
	for n, k := range nets {
		if n != netB && k == 0 {
			idle++
		}
	}
	if idle != 1 || nets[netB] != 1 || len(nets) != 2 {
		t.Errorf("after job A ended: pooled networks %v, want %s with B's task and one idle", nets, netB)
	}

	// Job C, started while B runs, never gets B's network.
	if n := runTask(t, c, p, cluster, jobC, c1); n == netB {
		t.Errorf("job C got job B's network %s while B runs", n)
	}
	stopTask(t, p, b1)
	stopTask(t, p, c1)

	// The runtime stops: no pooled network is left.
	p.close(t)
	if nets := poolNets(t, c, cluster); len(nets) != 0 {
		t.Errorf("pooled networks left after the runtime stopped: %v", nets)
	}
}

// A runtime stopped while a task runs on a pooled network leaves that
// network; the next one (a restarted worker) finds it held by the task's
// job: a new job does not get it, the job's next task joins it, and it is
// removed once its tasks ended and the runtime stops.
func TestRuntimePoolReconcilesOnStart(t *testing.T) {
	c := newClient(t)
	cluster := unique(t)
	jobX, jobY := unique(t), unique(t)
	x1, x2, y1 := jobX+"_1", jobX+"_2", jobY+"_1"
	cleanPool(t, c, cluster, x1, x2, y1)

	first := startPool(t, c, cluster, 1)
	netX := runTask(t, c, first, cluster, jobX, x1)
	first.close(t)
	if nets := poolNets(t, c, cluster); len(nets) != 1 || nets[netX] != 1 {
		t.Fatalf("after the first runtime stopped: pooled networks %v, want only %s, with %s on it", nets, netX, x1)
	}

	again := startPool(t, c, cluster, 1)
	if n := runTask(t, c, again, cluster, jobY, y1); n == netX {
		t.Errorf("job Y got job X's network %s, which %s is on", n, x1)
	}
	if n := runTask(t, c, again, cluster, jobX, x2); n != netX {
		t.Errorf("job X's second task is on %s, want its job's %s", n, netX)
	}
	for _, task := range []string{x1, x2, y1} {
		stopTask(t, again, task)
	}
	again.close(t)
	if nets := poolNets(t, c, cluster); len(nets) != 0 {
		t.Errorf("pooled networks left after the runtime stopped: %v", nets)
	}
}

// A job that names its own network, or a subnet, does not take a pooled
// one: it gets a bridge of its network's name, as before.
func TestRuntimePoolNotForNamedNetworks(t *testing.T) {
	c := newClient(t)
	cluster := unique(t)
	job := unique(t)
	task := job + "_1"
	named := job + "-net"
	cleanPool(t, c, cluster, task)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Remove(ctx, task, true)
		_ = c.RemoveNetwork(ctx, named)
	})
	p := startPool(t, c, cluster, 1)
	ctx := ctxFor(t, 60*time.Second)
	rt := api.RunTask{Job: job, Network: named, NetworkDriver: api.DriverBridge, Cluster: cluster,
		Task: api.Task{ContainerName: task, Image: testImage, Command: "sleep 3600", ReqCores: 1, CpusetCpus: "0", MemLimit: "16m"}}
	if err := p.r.Run(ctx, rt); err != nil {
		t.Fatalf("Run: %v", err)
	}
	in, err := c.Inspect(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in.Networks, []string{named}) {
		t.Errorf("networks %v, want the job's own %s", in.Networks, named)
	}
	stopTask(t, p, task)
	p.close(t)
}

// A worker stopping: its watch ends first, then it stops its tasks (their
// exited containers are not removed any more), then Release removes the
// pool's networks, the one those tasks were on included.
func TestRuntimePoolReleaseAfterTasksStopped(t *testing.T) {
	c := newClient(t)
	cluster := unique(t)
	job := unique(t)
	task := job + "_1"
	cleanPool(t, c, cluster, task)
	p := startPool(t, c, cluster, 1)
	n := runTask(t, c, p, cluster, job, task)
	p.close(t)
	if nets := poolNets(t, c, cluster); len(nets) != 1 || nets[n] != 1 {
		t.Fatalf("after the watch ended: pooled networks %v, want only %s, in use", nets, n)
	}
	ctx := ctxFor(t, 60*time.Second)
	if err := p.r.Stop(ctx, task, 0); err != nil {
		t.Fatal(err)
	}
	p.r.Release(ctx)
	if nets := poolNets(t, c, cluster); len(nets) != 0 {
		t.Errorf("pooled networks left after Release: %v", nets)
	}
}

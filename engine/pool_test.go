package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
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
	return startPoolBoxes(t, c, cluster, warm, "")
}

// startPoolBoxes is startPool with sandboxes of image ("" for none).
func startPoolBoxes(t *testing.T, c *engine.Client, cluster string, warm int, image string) *poolRig {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	r := engine.NewRuntime(c, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.WarmNetworks = warm
	r.SandboxImage = image
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
		boxes, _ := c.Containers(ctx, map[string]string{api.LabelSandbox: "", api.LabelPool: "", api.LabelCluster: cluster}, true)
		for _, b := range boxes {
			_ = c.Remove(ctx, b.ID, true)
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

// sandboxes lists the cluster's sandboxes on the engine: name -> its network.
func sandboxes(t *testing.T, c *engine.Client, cluster string) map[string]string {
	t.Helper()
	cs, err := c.Containers(ctxFor(t, 30*time.Second), map[string]string{api.LabelSandbox: "", api.LabelPool: "", api.LabelCluster: cluster}, true)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, b := range cs {
		if b.Labels[api.LabelManaged] != "" {
			t.Errorf("sandbox %s is labelled %s: it is not a task", b.Name, api.LabelManaged)
		}
		out[b.Name] = b.Labels[api.LabelSandbox]
	}
	return out
}

// waitSandbox waits until the pool holds one idle network with a running
// sandbox on it, and returns both.
func waitSandbox(t *testing.T, c *engine.Client, p *poolRig) (network, box string) {
	t.Helper()
	apitest.Eventually(t, 60*time.Second, func() error {
		idle := engine.IdleSandboxes(p.r)
		if len(idle) != 1 {
			return fmt.Errorf("idle networks with a sandbox %v, want 1", idle)
		}
		for n, b := range idle {
			network, box = n, b
		}
		return nil
	})
	in, err := c.Inspect(ctxFor(t, 30*time.Second), box)
	if err != nil {
		t.Fatal(err)
	}
	if !in.Running || !slices.Equal(in.Networks, []string{network}) {
		t.Fatalf("sandbox %s: running %v on %v, want running on %s", box, in.Running, in.Networks, network)
	}
	return network, box
}

// runAlone runs task, its job's only one, as the globalmanager sends it,
// printing its hostname, and returns its container.
func runAlone(t *testing.T, c *engine.Client, p *poolRig, cluster, job, task string) engine.Container {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	rt := api.RunTask{Job: job, Network: api.DefaultNetworkName(job), NetworkDriver: api.DriverBridge, Cluster: cluster, Alone: true,
		Task: api.Task{ContainerName: task, Image: testImage, Command: "sh -c 'hostname; sleep 3600'", ReqCores: 1, CpusetCpus: "0", MemLimit: "16m"}}
	if err := p.r.Run(ctx, rt); err != nil {
		t.Fatalf("Run %s: %v", task, err)
	}
	in, err := c.Inspect(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	if !in.Running {
		t.Fatalf("%s is not running: %s", task, in.Status)
	}
	return in
}

// A one-task job starts in a sandbox made ahead: in its namespace (its
// hostname, no endpoint of its own), on the pooled network, which no other
// container joins. When it ends the sandbox goes (never reused), the
// network comes back and gets a new one. A job of two tasks claiming the
// only idle network has its sandbox removed and its tasks on the network
// itself. Nothing is left when the runtime stops.
func TestRuntimePoolSandboxes(t *testing.T) {
	c := newClient(t)
	cluster := unique(t)
	jobA, jobB := unique(t), unique(t)
	a1, b1, b2 := jobA+"_1", jobB+"_1", jobB+"_2"
	cleanPool(t, c, cluster, a1, b1, b2)
	p := startPoolBoxes(t, c, cluster, 1, testImage)

	net, box := waitSandbox(t, c, p)
	in := runAlone(t, c, p, cluster, jobA, a1)
	if in.Labels[api.LabelSandbox] != box || in.Labels[api.LabelLocalNetwork] != net {
		t.Errorf("%s labelled sandbox %q, network %q: want %s on %s", a1, in.Labels[api.LabelSandbox], in.Labels[api.LabelLocalNetwork], box, net)
	}
	if len(in.Networks) != 0 {
		t.Errorf("%s has endpoints %v of its own, want none (it runs in %s's namespace)", a1, in.Networks, box)
	}
	if k := poolNets(t, c, cluster)[net]; k != 1 {
		t.Errorf("%s has %d containers while %s runs, want 1 (the sandbox)", net, k, a1)
	}
	sb, err := c.Inspect(ctxFor(t, 30*time.Second), box)
	if err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, 30*time.Second, func() error {
		lines, err := c.Logs(ctxFor(t, 30*time.Second), a1, 5)
		if err != nil {
			return err
		}
		if !slices.Contains(lines, sb.ID[:12]) {
			return fmt.Errorf("%s printed hostname %q, want the sandbox's %s", a1, lines, sb.ID[:12])
		}
		return nil
	})

	stopTask(t, p, a1)
	if _, err := c.Inspect(ctxFor(t, 30*time.Second), box); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("sandbox %s after its task ended: %v, want it removed", box, err)
	}
	// The claim ran the pool dry, so the filler made another network
	// (with its sandbox) meanwhile, and A's network was removed rather
	// than kept beyond WarmNetworks.
	net2, box2 := waitSandbox(t, c, p)
	if box2 == box {
		t.Errorf("after %s ended: idle %s offers its sandbox %s again", a1, net2, box)
	}
	if nets := poolNets(t, c, cluster); len(nets) != 1 || nets[net2] != 1 {
		t.Errorf("after %s ended: pooled networks %v, want only %s with its sandbox", a1, nets, net2)
	}

	// Job B (two tasks) takes the only idle network: its sandbox goes,
	// its tasks are on the network itself.
	nb := runTask(t, c, p, cluster, jobB, b1)
	if n := runTask(t, c, p, cluster, jobB, b2); n != nb {
		t.Errorf("job B's tasks on %s and %s, want one network", nb, n)
	}
	if nb != net2 {
		t.Errorf("job B is on %s, want the only idle network %s", nb, net2)
	}
	if _, err := c.Inspect(ctxFor(t, 30*time.Second), box2); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("sandbox %s on job B's network: %v, want it removed", box2, err)
	}
	stopTask(t, p, b1)
	stopTask(t, p, b2)

	p.close(t)
	if nets, boxes := poolNets(t, c, cluster), sandboxes(t, c, cluster); len(nets) != 0 || len(boxes) != 0 {
		t.Errorf("after the runtime stopped: pooled networks %v, sandboxes %v, want none", nets, boxes)
	}
}

// A runtime stopped while a one-task job runs in a sandbox leaves both;
// the next one adopts them, starts a sandbox of its own for new jobs,
// and removes the adopted one once its task ended.
func TestRuntimePoolSandboxReconciles(t *testing.T) {
	c := newClient(t)
	cluster := unique(t)
	jobX := unique(t)
	x1 := jobX + "_1"
	cleanPool(t, c, cluster, x1)

	first := startPoolBoxes(t, c, cluster, 1, testImage)
	net, box := waitSandbox(t, c, first)
	runAlone(t, c, first, cluster, jobX, x1)
	first.close(t)
	if boxes := sandboxes(t, c, cluster); len(boxes) != 1 || boxes[box] != net {
		t.Fatalf("after the first runtime stopped: sandboxes %v, want only %s (in use) on %s", boxes, box, net)
	}

	again := startPoolBoxes(t, c, cluster, 1, testImage)
	net2, box2 := waitSandbox(t, c, again)
	if net2 == net || box2 == box {
		t.Errorf("the restarted runtime offers %s on %s, which %s uses", box2, net2, x1)
	}
	stopTask(t, again, x1)
	if _, err := c.Inspect(ctxFor(t, 30*time.Second), box); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("adopted sandbox %s after its task ended: %v, want it removed", box, err)
	}
	again.close(t)
	if nets, boxes := poolNets(t, c, cluster), sandboxes(t, c, cluster); len(nets) != 0 || len(boxes) != 0 {
		t.Errorf("after the runtime stopped: pooled networks %v, sandboxes %v, want none", nets, boxes)
	}
}

// Without a usable sandbox, a one-task job runs on its network as any
// other: when the image is missing (sandboxes turn off), and when its
// sandbox was removed behind the worker's back.
func TestRuntimePoolSandboxFallbacks(t *testing.T) {
	c := newClient(t)
	for _, tc := range []struct {
		name, image string
		killBox     bool
	}{
		{name: "image missing", image: "rswarm/no-such-image:latest"},
		{name: "sandbox killed", image: testImage, killBox: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := unique(t)
			job := unique(t)
			task := job + "_1"
			cleanPool(t, c, cluster, task)
			p := startPoolBoxes(t, c, cluster, 1, tc.image)
			if tc.killBox {
				_, box := waitSandbox(t, c, p)
				if err := c.Remove(ctxFor(t, 30*time.Second), box, true); err != nil {
					t.Fatal(err)
				}
			} else {
				apitest.Eventually(t, 30*time.Second, func() error {
					if n := len(engine.IdleNetworks(p.r)); n != 1 {
						return fmt.Errorf("%d idle networks, want 1", n)
					}
					return nil
				})
			}
			in := runAlone(t, c, p, cluster, job, task)
			if in.Labels[api.LabelSandbox] != "" || len(in.Networks) != 1 || in.Networks[0] != in.Labels[api.LabelLocalNetwork] {
				t.Errorf("%s: sandbox %q, networks %v, network label %q: want it on its pooled network itself",
					task, in.Labels[api.LabelSandbox], in.Networks, in.Labels[api.LabelLocalNetwork])
			}
			if !strings.HasPrefix(in.Labels[api.LabelLocalNetwork], "rsnetp_") {
				t.Errorf("%s is on %q, want a pooled network", task, in.Labels[api.LabelLocalNetwork])
			}
			stopTask(t, p, task)
			p.close(t)
			if nets, boxes := poolNets(t, c, cluster), sandboxes(t, c, cluster); len(nets) != 0 || len(boxes) != 0 {
				t.Errorf("after the runtime stopped: pooled networks %v, sandboxes %v, want none", nets, boxes)
			}
		})
	}
}

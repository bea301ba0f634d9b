package labtest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine/labtest"
)

// The multi-host tests: the real rswarm binary, its control plane on the
// lab's first host and a worker on each of the others, on real engines.

var binary string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "rswarm-lab-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "rswarm")
		out, err := exec.Command("go", "build", "-o", binary, "../../cmd/rswarm").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building rswarm: %v\n%s", err, out)
			return 1
		}
		defer labtest.Shutdown()
		return m.Run()
	}()
	os.Exit(code)
}

// cluster is RSwarm running on the lab: control plane on host 1, workers
// on the others.
type cluster struct {
	lab     *labtest.Lab
	fe, gm  *api.Client
	workers map[string]*labtest.Proc // by host name
	ids     map[string]string        // host name -> worker (node) ID
}

const token = "lab-test-token"

// controlArgs are the control plane's flags on host h: REST and the buses
// on its lab address (the ports are the defaults: each lab host has a
// network namespace of its own), a token, no local worker.
func controlArgs(h *labtest.Host, dataDir string) []string {
	a := h.Addr
	return []string{binary, "up", "--workers", "0", "--advertise-addr", a,
		"--frontend-addr", a + ":5001", "--globalmanager-addr", a + ":5000",
		"--globalmanager-bus", "tcp://" + a + ":3100", "--discovery-bus", "tcp://" + a + ":4000",
		"--jobmanager-bus", "tcp://127.0.0.1:2990", "--data-dir", dataDir,
		"--api-token", token, "--insecure", "--heartbeat-grace", "10s"}
}

// workerArgs are a worker's flags on host h, reaching the control plane on cp.
func workerArgs(cp, h *labtest.Host) []string {
	return []string{binary, "worker", "--globalmanager-bus", "tcp://" + cp.Addr + ":3100",
		"--discovery-bus", "tcp://" + cp.Addr + ":4000", "--advertise-addr", h.Addr, "--insecure"}
}

func startCluster(t *testing.T, workers int) *cluster {
	t.Helper()
	lab := labtest.Get(t, workers+1)
	cp := lab.Host(1)
	lab.Start(t, cp, "control plane", controlArgs(cp, t.TempDir())...)
	c := &cluster{lab: lab, workers: map[string]*labtest.Proc{}, ids: map[string]string{},
		fe: api.NewClient("http://"+cp.Forward(t, cp.Addr+":5001"), token),
		gm: api.NewClient("http://"+cp.Forward(t, cp.Addr+":5000"), token)}
	ctx := context.Background()
	apitest.Eventually(t, 60*time.Second, func() error {
		return c.gm.Do(ctx, http.MethodGet, "/RESTfulSwarm/GM/get_worker_list", nil, nil)
	})
	for i := 2; i <= workers+1; i++ {
		h := lab.Host(i)
		c.workers[h.Name] = lab.Start(t, h, "worker on "+h.Name, workerArgs(cp, h)...)
	}
	c.waitWorkers(t, workers+1)
	return c
}

// waitWorkers waits until hosts 2..n are registered workers, ready.
func (c *cluster) waitWorkers(t *testing.T, n int) {
	t.Helper()
	apitest.Eventually(t, 90*time.Second, func() error {
		ws, err := c.fe.Workers(context.Background())
		if err != nil {
			return err
		}
		for i := 2; i <= n; i++ {
			h := c.lab.Host(i)
			w := find(ws, h.Name)
			if w == nil || w.Status != api.WorkerReady {
				return fmt.Errorf("%s is not a ready worker yet: %+v", h.Name, w)
			}
			c.ids[h.Name] = w.ID
		}
		return nil
	})
}

func find(ws []*api.Worker, host string) *api.Worker {
	for _, w := range ws {
		if w.Host == host {
			return w
		}
	}
	return nil
}

// check asserts the cluster invariant, waiting for the system to settle.
func (c *cluster) check(t *testing.T) {
	t.Helper()
	apitest.Eventually(t, 30*time.Second, func() error { return c.lab.Check(context.Background(), c.fe) })
}

func TestLabJoinListLeave(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	c.check(t)
	ws, err := c.fe.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{2, 3} {
		h := c.lab.Host(i)
		w := find(ws, h.Name)
		info, err := h.Engine.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Its own engine's figures, its lab address, its swarm node ID.
		if w.ID != info.Swarm.NodeID || info.Swarm.LocalNodeState != "active" || w.Address != h.Addr ||
			w.Cores != info.NCPU || w.MemTotal != info.MemTotal || w.Runtime != "docker" {
			t.Errorf("%s: worker %+v, engine %+v", h.Name, w, info)
		}
		if w.Checkpoint || w.CheckpointError == "" || w.CheckpointError == "not probed" {
			t.Errorf("%s: checkpoint probe not reported: %v %q", h.Name, w.Checkpoint, w.CheckpointError)
		}
	}
	nodes, err := c.lab.Host(1).Engine.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Hostname)
	}
	slices.Sort(names)
	if want := []string{c.lab.Host(1).Name, c.lab.Host(2).Name, c.lab.Host(3).Name}; !slices.Equal(names, want) {
		t.Errorf("swarm nodes %v, want %v", names, want)
	}

	// request_join for a registered worker keeps its record.
	h2 := c.lab.Host(2)
	before := find(ws, h2.Name)
	var reply api.RegisterReply
	if err := c.gm.Do(ctx, http.MethodPost, "/RESTfulSwarm/GM/request_join",
		map[string]any{"hostname": h2.Name, "address": h2.Addr, "CPUs": 1, "MemFree": "1050m"}, &reply); err != nil {
		t.Fatal(err)
	}
	ws, err = c.fe.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := find(ws, h2.Name)
	if reply.NodeID != before.ID || after.MemTotal != before.MemTotal || after.Cores != before.Cores || after.CheckpointError != before.CheckpointError {
		t.Errorf("request_join changed the record: %+v -> %+v", before, after)
	}

	// DELETE takes rsn3 out of the swarm.
	h3 := c.lab.Host(3)
	id3 := c.ids[h3.Name]
	if err := c.gm.Do(ctx, http.MethodDelete, "/api/v1/workers/"+id3, nil, nil); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, 30*time.Second, func() error {
		info, err := h3.Engine.Info(ctx)
		if err != nil {
			return err
		}
		if info.Swarm.LocalNodeState != "inactive" {
			return fmt.Errorf("%s swarm state %s", h3.Name, info.Swarm.LocalNodeState)
		}
		nodes, err := c.lab.Host(1).Engine.Nodes(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.ID == id3 {
				return fmt.Errorf("node %s still in the swarm", id3)
			}
		}
		return nil
	})
	ws, err = c.fe.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w := find(ws, h3.Name); w == nil || w.Status != api.WorkerLeft {
		t.Errorf("%s after leave: %+v", h3.Name, w)
	}
	// Leaving again is refused as a left worker or answered as done; never a 5xx.
	var se *api.StatusError
	if err := c.gm.Do(ctx, http.MethodDelete, "/api/v1/workers/"+id3, nil, nil); errors.As(err, &se) && se.Status >= 500 {
		t.Errorf("second leave: %v", err)
	}
	c.check(t)
}

// waitTasks waits until every task of job is in one of states.
func (c *cluster) waitTasks(t *testing.T, job string, timeout time.Duration, states ...api.State) *api.Job {
	t.Helper()
	var j *api.Job
	apitest.Eventually(t, timeout, func() error {
		var err error
		if j, err = c.fe.Job(context.Background(), job); err != nil {
			return err
		}
		for _, tk := range j.Info.Tasks {
			if !slices.Contains(states, tk.Status) {
				return fmt.Errorf("task %s is %s (%s), want %v", tk.ContainerName, tk.Status, tk.Error, states)
			}
		}
		return nil
	})
	return j
}

// hostOf returns the lab host of a worker ID.
func (c *cluster) hostOf(id string) *labtest.Host {
	for name, wid := range c.ids {
		if wid == id {
			return c.lab.ByName(name)
		}
	}
	return nil
}

func TestLabJobAcrossHosts(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	ws, err := c.fe.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two tasks each asking for all the cores of one worker: they cannot
	// share a host.
	cores := find(ws, c.lab.Host(2).Name).Cores
	name := fmt.Sprintf("labjob%d", time.Now().UnixNano())
	j := apitest.Job(name, 2, cores, "")
	server, client := j.Info.Tasks[0], j.Info.Tasks[1]
	// The server takes one line and ends well when it was "hello"; the
	// client connects to it by name over the job's overlay. Both stay until
	// the test has looked at them (a file made with docker exec).
	server.Command = `sh -c 'nc -l -p 7000 > /tmp/got; until [ -f /tmp/done ]; do sleep 0.2; done; grep -qx hello /tmp/got'`
	client.Command = `sh -c 'until echo hello | nc -w 2 ` + server.ContainerName + ` 7000; do sleep 0.5; done; until [ -f /tmp/done ]; do sleep 0.2; done'`
	client.MemLimit = "24m"
	if err := c.fe.SubmitJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	got := c.waitTasks(t, name, 60*time.Second, api.Running)
	c.check(t)
	hosts := map[string]bool{}
	for _, tk := range got.Info.Tasks {
		h := c.hostOf(tk.Node)
		if h == nil {
			t.Fatalf("task %s on unknown worker %s", tk.ContainerName, tk.Node)
		}
		hosts[h.Name] = true
		in, err := h.Engine.Inspect(ctx, tk.ContainerName)
		if err != nil {
			t.Fatalf("%s on %s: %v", tk.ContainerName, h.Name, err)
		}
		mem, _ := api.ParseMem(tk.MemLimit)
		want, _ := api.ParseCpuset(tk.CpusetCpus)
		if len(want) != cores || api.FormatCpuset(want) != in.CpusetCpus || in.Memory != mem || !slices.Contains(in.Networks, j.Info.Network.Name) {
			t.Errorf("%s on %s: cpuset %q memory %d networks %v; store: cpuset %q mem %s", tk.ContainerName, h.Name,
				in.CpusetCpus, in.Memory, in.Networks, tk.CpusetCpus, tk.MemLimit)
		}
	}
	if len(hosts) != 2 {
		t.Fatalf("the job's tasks run on %v, want two hosts", hosts)
	}
	// The server must have had its line before the test releases it.
	for _, tk := range got.Info.Tasks {
		h := c.hostOf(tk.Node)
		apitest.Eventually(t, 30*time.Second, func() error {
			if tk.ContainerName == server.ContainerName {
				_, err := c.lab.Run(ctx, h, "docker", "exec", tk.ContainerName, "grep", "-qx", "hello", "/tmp/got")
				return err
			}
			return nil
		})
	}
	for _, tk := range got.Info.Tasks {
		if _, err := c.lab.Run(ctx, c.hostOf(tk.Node), "docker", "exec", tk.ContainerName, "touch", "/tmp/done"); err != nil {
			t.Fatal(err)
		}
	}
	done := c.waitTasks(t, name, 60*time.Second, api.Down, api.Failed)
	for _, tk := range done.Info.Tasks {
		if tk.Status != api.Down || tk.ExitCode == nil || *tk.ExitCode != 0 {
			t.Errorf("%s ended %s, exit %v, %s, logs %v", tk.ContainerName, tk.Status, tk.ExitCode, tk.Error, tk.Logs)
		}
	}
	// The job's network is gone from every host.
	apitest.Eventually(t, 30*time.Second, func() error {
		for _, h := range c.lab.Hosts {
			nets, err := h.Engine.Networks(ctx, nil)
			if err != nil {
				return err
			}
			for _, n := range nets {
				if n.Name == j.Info.Network.Name {
					return fmt.Errorf("network %s still on %s", n.Name, h.Name)
				}
			}
		}
		return nil
	})
	c.check(t)
}

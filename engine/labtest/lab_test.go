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

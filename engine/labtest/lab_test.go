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
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine"
	"github.com/rswarm/rswarm/engine/labtest"
	"github.com/rswarm/rswarm/globalmanager"
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
	cpDir   string                   // the control plane's data directory
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
		"--api-token", token, "--heartbeat-grace", "10s"}
}

// workerArgs are a worker's flags on host h, reaching the control plane
// on cp over the CURVE-authenticated bus, as on separate machines: the
// worker has a data directory of its own, its public key is authorised on
// the control plane (cpDir/bus/authorized), and it is given the control
// plane's globalmanager and discovery public keys.
func workerArgs(t testing.TB, cpDir string, cp, h *labtest.Host) []string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command(binary, "keys", "--data-dir", dir).Output()
	if err != nil {
		t.Fatalf("rswarm keys on %s: %v", h.Name, err)
	}
	auth := filepath.Join(cpDir, "bus", "authorized")
	if err := os.MkdirAll(auth, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(auth, h.Name+".pub"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(cpDir, "bus")
	return []string{binary, "worker", "--data-dir", dir,
		"--globalmanager-bus", "tcp://" + cp.Addr + ":3100", "--globalmanager-key", filepath.Join(keys, "globalmanager.pub"),
		"--discovery-bus", "tcp://" + cp.Addr + ":4000", "--discovery-key", filepath.Join(keys, "discovery.pub"),
		"--advertise-addr", h.Addr}
}

func startCluster(t testing.TB, workers int) *cluster {
	t.Helper()
	return startClusterOn(t, labtest.Get(t, workers+1), workers)
}

// startClusterOn starts RSwarm on lab: the control plane on host 1, a
// worker on each of hosts 2..workers+1, and waits until they are ready.
func startClusterOn(t testing.TB, lab *labtest.Lab, workers int) *cluster {
	t.Helper()
	cp := lab.Host(1)
	cpDir := t.TempDir()
	lab.Start(t, cp, "control plane", controlArgs(cp, cpDir)...)
	c := &cluster{lab: lab, workers: map[string]*labtest.Proc{}, ids: map[string]string{}, cpDir: cpDir,
		fe: api.NewClient("http://"+cp.Forward(t, cp.Addr+":5001"), token),
		gm: api.NewClient("http://"+cp.Forward(t, cp.Addr+":5000"), token)}
	ctx := context.Background()
	apitest.Eventually(t, 60*time.Second, func() error {
		return c.gm.Do(ctx, http.MethodGet, "/RESTfulSwarm/GM/get_worker_list", nil, nil)
	})
	for i := 2; i <= workers+1; i++ {
		h := lab.Host(i)
		c.workers[h.Name] = lab.Start(t, h, "worker on "+h.Name, workerArgs(t, cpDir, cp, h)...)
	}
	c.waitWorkers(t, workers+1)
	return c
}

// waitWorkers waits until hosts 2..n are registered workers, ready.
func (c *cluster) waitWorkers(t testing.TB, n int) {
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

// find returns the worker record of host: the one not left when a host
// has joined more than once (each join is a new swarm node).
func find(ws []*api.Worker, host string) *api.Worker {
	var found *api.Worker
	for _, w := range ws {
		if w.Host == host && (found == nil || found.Status == api.WorkerLeft) {
			found = w
		}
	}
	return found
}

// check asserts the cluster invariant, waiting for the system to settle.
func (c *cluster) check(t testing.TB) {
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
		// Probed: it works (a CRIU that passes, RSWARM_CRIU_DIR), or CRIU's reason.
		if w.Checkpoint != (w.CheckpointError == "") || w.CheckpointError == "not probed" {
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
func (c *cluster) waitTasks(t testing.TB, job string, timeout time.Duration, states ...api.State) *api.Job {
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
	// Its workers join the swarm afresh: in the two CI runs where the
	// overlay never carried the client's line, one worker's engine was
	// still a member from an earlier test of the shared lab and the other
	// joined (see the wait below).
	ctx := context.Background()
	lab := labtest.Get(t, 3)
	for i := 2; i <= 3; i++ {
		if err := lab.Host(i).Engine.SwarmLeave(ctx, true); err != nil {
			t.Logf("%s leaving its swarm: %v", lab.Host(i).Name, err)
		}
	}
	c := startClusterOn(t, lab, 2)
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
	// The server must have had its line before the test releases it. The
	// client reaches it once the overlay's gossip between the two engines
	// has settled, which under CI's load took longer than 30 s twice (one
	// engine still in the swarm from an earlier test, the other joining).
	for _, tk := range got.Info.Tasks {
		h := c.hostOf(tk.Node)
		apitest.Eventually(t, 90*time.Second, func() error {
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

// migrate asks the globalmanager to move a task.
func (c *cluster) migrate(ctx context.Context, task, to, mode string) (globalmanager.MigrateResult, error) {
	var res globalmanager.MigrateResult
	err := c.gm.Do(ctx, http.MethodPost, "/api/v1/tasks/"+task+"/migrate", map[string]string{"to": to, "mode": mode}, &res)
	return res, err
}

// exec runs argv in a task's container on h and returns its output.
func (c *cluster) exec(ctx context.Context, h *labtest.Host, task string, argv ...string) (string, error) {
	out, err := c.lab.Run(ctx, h, append([]string{"docker", "exec", task}, argv...)...)
	return strings.TrimSpace(out), err
}

// other returns the worker host that is not h (of hosts 2 and 3).
func (c *cluster) other(h *labtest.Host) *labtest.Host {
	if h == c.lab.Host(2) {
		return c.lab.Host(3)
	}
	return c.lab.Host(2)
}

// stateful is a command that leaves files behind and keeps running.
// (A cold move runs the command again on top of the files: it must be
// idempotent. Deletions are tested by deleting from outside: see
// TestLabMigrateColdKeepsState.)
const stateful = `sh -c 'echo kept > /state && mkdir -p /newdir/sub && echo deep > /newdir/sub/f && exec sleep 3600'`

// wantState checks that task runs on h, alone, with the files stateful made.
func (c *cluster) wantState(t *testing.T, h *labtest.Host, task string) {
	t.Helper()
	ctx := context.Background()
	for path, want := range map[string]string{"/state": "kept", "/newdir/sub/f": "deep"} {
		if got, err := c.exec(ctx, h, task, "cat", path); err != nil || got != want {
			t.Errorf("%s on %s: %s = %q (%v), want %q", task, h.Name, path, got, err, want)
		}
	}
	for _, o := range c.lab.Hosts {
		if o == h {
			continue
		}
		if _, err := o.Engine.Inspect(ctx, task); err == nil {
			t.Errorf("%s still has a container %s", o.Name, task)
		}
	}
}

func TestLabMigrateColdKeepsState(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	name := fmt.Sprintf("labmig%d", time.Now().UnixNano())
	j := apitest.Job(name, 1, 1, stateful)
	if err := c.fe.SubmitJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	task := j.Info.Tasks[0].ContainerName
	got := c.waitTasks(t, name, 60*time.Second, api.Running)
	src := c.hostOf(got.Info.Tasks[0].Node)
	dst := c.other(src)
	apitest.Eventually(t, 30*time.Second, func() error {
		_, err := c.exec(ctx, src, task, "cat", "/newdir/sub/f")
		return err
	})
	c.check(t)

	// A file of the image deleted by the task: deleted on the destination too.
	if _, err := c.exec(ctx, src, task, "rm", "/bin/vi"); err != nil {
		t.Fatal(err)
	}
	// auto picks cold where CRIU fails on a host, and says why; where it
	// works on both (RSWARM_CRIU_DIR), cold is asked for.
	mode, wantNote := "auto", "checkpoints do not work on"
	if ws, err := c.fe.Workers(ctx); err != nil {
		t.Fatal(err)
	} else if find(ws, src.Name).Checkpoint && find(ws, dst.Name).Checkpoint {
		mode, wantNote = "cold", "deleted here too"
	}
	res, err := c.migrate(ctx, task, dst.Name, mode)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != api.ModeCold || !strings.Contains(res.Note, wantNote) || !strings.Contains(res.Note, "deleted") || res.To != c.ids[dst.Name] ||
		res.Bytes <= 0 || len(res.SHA256) != 64 || res.DowntimeSeconds <= 0 {
		t.Errorf("migration result %+v", res)
	}
	if _, err := c.exec(ctx, dst, task, "ls", "/bin/vi"); err == nil {
		t.Errorf("/bin/vi, deleted by the task before the move, exists on %s after it", dst.Name)
	}
	after := c.waitTasks(t, name, 30*time.Second, api.Running)
	moved := after.Info.Tasks[0]
	if moved.Node != c.ids[dst.Name] || moved.CpusetCpus != res.CpusetCpus {
		t.Errorf("store: task on %s cpuset %s; the move said %s %s", moved.Node, moved.CpusetCpus, res.To, res.CpusetCpus)
	}
	c.wantState(t, dst, task)
	in, err := dst.Engine.Inspect(ctx, task)
	if err != nil || !in.Running || !slices.Contains(in.Networks, j.Info.Network.Name) || in.Memory != 16<<20 {
		t.Errorf("moved container %+v: %v", in, err)
	}
	c.check(t)

	// Its cores updated in place, to the other (free) core of its host.
	other := "0"
	if moved.CpusetCpus == "0" {
		other = "1"
	}
	var updated api.Task
	if err := c.gm.Do(ctx, http.MethodPatch, "/api/v1/tasks/"+task, map[string]string{"cpuset_cpus": other}, &updated); err != nil {
		t.Fatal(err)
	}
	if in, err := dst.Engine.Inspect(ctx, task); err != nil || in.CpusetCpus != other || updated.CpusetCpus != other {
		t.Errorf("after updating the cores to %s: container %q (%v), task %q", other, in.CpusetCpus, err, updated.CpusetCpus)
	}
	c.check(t)

	// A move that fails on the destination (its engine has lost the image)
	// leaves the task running where it was, and nothing on the destination.
	// (Forced: the worker's sandboxes there run that image; the engine
	// then only takes its name away, which is what a create looks up.)
	if _, err := c.lab.Run(ctx, src, "docker", "image", "rm", "-f", "rswarm/busybox:latest"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := c.lab.Run(ctx, src, "docker", "import", "-c", `CMD ["/bin/sh"]`, filepath.Join(c.lab.Dir, "rootfs.tar"), "rswarm/busybox:latest"); err != nil {
			t.Error(err)
		}
	})
	_, err = c.migrate(ctx, task, src.Name, "cold")
	var se *api.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnprocessableEntity || !strings.Contains(se.Error(), "rswarm/busybox") {
		t.Errorf("move to an engine without the image: %v, want 422 naming the image", err)
	}
	back := c.waitTasks(t, name, 30*time.Second, api.Running)
	if back.Info.Tasks[0].Node != c.ids[dst.Name] {
		t.Errorf("after a failed move the task is on %s", back.Info.Tasks[0].Node)
	}
	c.wantState(t, dst, task)
	c.check(t)
}

func TestLabMigrateJobCold(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	name := fmt.Sprintf("labmigjob%d", time.Now().UnixNano())
	j := apitest.Job(name, 2, 1, stateful)
	// Both on one worker, so that the whole job moves to the other.
	src := c.lab.Host(2)
	for i, tk := range j.Info.Tasks {
		tk.Node, tk.CpusetCpus = c.ids[src.Name], fmt.Sprint(i)
	}
	if err := c.gm.Do(ctx, http.MethodGet, "/RESTfulSwarm/GM/get_worker_list", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.fe.Do(ctx, http.MethodPut, "/api/v1/scheduler", map[string]string{"name": "no-scheduler"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.fe.SubmitJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	c.waitTasks(t, name, 60*time.Second, api.Running)
	for _, tk := range j.Info.Tasks {
		apitest.Eventually(t, 30*time.Second, func() error {
			_, err := c.exec(ctx, src, tk.ContainerName, "cat", "/newdir/sub/f")
			return err
		})
	}
	c.check(t)
	dst := c.other(src)
	var out struct {
		Migrations []globalmanager.MigrateResult `json:"migrations"`
	}
	if err := c.gm.Do(ctx, http.MethodPost, "/api/v1/jobs/"+name+"/migrate", map[string]string{"to": dst.Name, "mode": "cold"}, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Migrations) != 2 {
		t.Fatalf("migrations %+v", out.Migrations)
	}
	for _, m := range out.Migrations {
		if m.Mode != api.ModeCold || m.Error != "" || m.Bytes <= 0 {
			t.Errorf("migration %+v", m)
		}
	}
	after := c.waitTasks(t, name, 30*time.Second, api.Running)
	for _, tk := range after.Info.Tasks {
		if tk.Node != c.ids[dst.Name] {
			t.Errorf("%s on %s after the job moved", tk.ContainerName, tk.Node)
		}
		c.wantState(t, dst, tk.ContainerName)
	}
	c.check(t)
}

// TestLabMigrateLive moves a task live where CRIU works on both hosts. On
// hosts where `criu check` fails (Debian 12's CRIU 3.17 on kernels from
// 6.13), a live move must be refused with 422 naming the host and CRIU's
// reason, and the test then skips with that reason.
func TestLabMigrateLive(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	name := fmt.Sprintf("lablive%d", time.Now().UnixNano())
	j := apitest.Job(name, 1, 1, `sh -c 'i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.2; done'`)
	if err := c.fe.SubmitJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	task := j.Info.Tasks[0].ContainerName
	got := c.waitTasks(t, name, 60*time.Second, api.Running)
	src := c.hostOf(got.Info.Tasks[0].Node)
	dst := c.other(src)
	ws, err := c.fe.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ws1, ws2 := find(ws, src.Name), find(ws, dst.Name)
	if !ws1.Checkpoint || !ws2.Checkpoint {
		bad := ws1
		if ws1.Checkpoint {
			bad = ws2
		}
		_, err := c.migrate(ctx, task, dst.Name, "live")
		var se *api.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusUnprocessableEntity || !strings.Contains(se.Error(), bad.ID) ||
			!strings.Contains(se.Error(), bad.CheckpointError) {
			t.Fatalf("live move where %s cannot checkpoint: %v; want 422 naming it and %q", bad.ID, err, bad.CheckpointError)
		}
		c.check(t)
		t.Skipf("live migration not possible here: CRIU on %s (%s): %s", bad.Host, bad.ID, bad.CheckpointError)
	}
	c.check(t)
	// Restored, not restarted: the count goes on from where it was. It
	// counts 5 a second from 0; moved once it is past 10, a restart would
	// show counts below the one before the move.
	count := func(h *labtest.Host) (int, error) { return c.count(ctx, h, task) }
	before := c.countPast(t, src, task, 10)
	counting := func(h *labtest.Host, from int) {
		t.Helper()
		apitest.Eventually(t, 30*time.Second, func() error {
			n, err := count(h)
			if err != nil {
				return err
			}
			if n < from {
				t.Fatalf("count %d on %s after the move, %d before: the task restarted", n, h.Name, from)
			}
			if n <= from+5 {
				return fmt.Errorf("count %d after the move, %d before", n, from)
			}
			return nil
		})
	}
	res, err := c.migrate(ctx, task, dst.Name, "live")
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != api.ModeLive || res.To != c.ids[dst.Name] || res.Bytes <= 0 || res.DowntimeSeconds <= 0 {
		t.Errorf("result %+v", res)
	}
	t.Logf("live move %s -> %s: %d bytes, downtime %.3f s (checkpoint %.3f, transfer %.3f, restore %.3f)",
		src.Name, dst.Name, res.Bytes, res.DowntimeSeconds, res.FreezeSeconds, res.TransferSeconds, res.StartSeconds)
	if got := c.waitTasks(t, name, 30*time.Second, api.Running); got.Info.Tasks[0].Node != c.ids[dst.Name] {
		t.Errorf("store: task on %s after the move", got.Info.Tasks[0].Node)
	}
	counting(dst, before)
	c.check(t)

	// And back, with auto: both hosts can checkpoint, so it moves live.
	before, err = count(dst)
	if err != nil {
		t.Fatal(err)
	}
	res, err = c.migrate(ctx, task, src.Name, "auto")
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != api.ModeLive {
		t.Errorf("auto between two hosts that checkpoint: %+v, want live", res)
	}
	c.waitTasks(t, name, 30*time.Second, api.Running)
	counting(src, before)
	if _, err := dst.Engine.Inspect(ctx, task); err == nil {
		t.Errorf("%s still has a container %s", dst.Name, task)
	}
	c.check(t)
}

// TestLabMigrateSandboxed moves a one-task job with the default driver, so
// one that runs in a sandbox on its worker (the network namespace of a
// container made ahead on a pooled local bridge, engine/pool.go), to the
// other worker, cold and live. The destination starts it on a pooled
// network (live: in a sandbox there); its state goes on, the source's
// sandbox is removed, and nothing is left behind. The live case skips
// with CRIU's reason where a host cannot checkpoint, after checking that
// the move is refused with that reason.
// count reads the count a counting task keeps in /count on host h.
func (c *cluster) count(ctx context.Context, h *labtest.Host, task string) (int, error) {
	out, err := c.exec(ctx, h, task, "cat", "/count")
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscan(out, &n)
	return n, err
}

// countPast waits until a counting task on h has counted at least atLeast,
// and returns the count it read then.
func (c *cluster) countPast(t *testing.T, h *labtest.Host, task string, atLeast int) int {
	t.Helper()
	n := 0
	apitest.Eventually(t, 30*time.Second, func() error {
		var err error
		n, err = c.count(context.Background(), h, task)
		if err == nil && n < atLeast {
			err = fmt.Errorf("count %d", n)
		}
		return err
	})
	return n
}

func TestLabMigrateSandboxed(t *testing.T) {
	c := startCluster(t, 2)
	for _, mode := range []string{api.ModeCold, api.ModeLive} {
		t.Run(mode, func(t *testing.T) { c.moveSandboxed(t, mode) })
	}
}

func (c *cluster) moveSandboxed(t *testing.T, mode string) {
	ctx := context.Background()
	// Both workers have a sandbox ready, so the task gets one wherever it
	// is placed (a claim finding none runs the task on a network alone).
	apitest.Eventually(t, 60*time.Second, func() error {
		for _, i := range []int{2, 3} {
			h := c.lab.Host(i)
			boxes, err := h.Engine.Containers(ctx, map[string]string{api.LabelSandbox: ""}, false)
			if err != nil {
				return err
			}
			if len(boxes) == 0 {
				return fmt.Errorf("no sandbox running on %s yet", h.Name)
			}
		}
		return nil
	})
	name := fmt.Sprintf("labbox%s%d", mode, time.Now().UnixNano())
	// It counts 5 a second from the count on its filesystem, and notes each
	// start of its command: a live move goes on in the same process (one
	// start), a cold one starts the command again on the moved files (two).
	// The count is replaced by a rename: a cold move freezes the task at
	// any instruction, and one between a write's truncation and its data
	// would move an empty count (the command would then start from 0).
	j := apitest.Job(name, 1, 1, `sh -c 'echo start >> /starts; i=$(cat /count 2>/dev/null || echo 0); while true; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; sleep 0.2; done'`)
	j.Info.Network.Driver = "" // auto: a local bridge on one worker
	if err := c.fe.SubmitJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.fe.CancelJob(context.Background(), name) })
	task := j.Info.Tasks[0].ContainerName
	got := c.waitTasks(t, name, 60*time.Second, api.Running)
	src := c.hostOf(got.Info.Tasks[0].Node)
	dst := c.other(src)

	// In a sandbox on the source: the task's container has no network of
	// its own, and the sandbox runs on the task's pooled network.
	in, err := src.Engine.Inspect(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	box := in.Labels[api.LabelSandbox]
	if box == "" || len(in.Networks) != 0 {
		t.Fatalf("%s on %s: sandbox %q, networks %v; want it in a sandbox", task, src.Name, box, in.Networks)
	}
	if b, err := src.Engine.Inspect(ctx, box); err != nil || !b.Running || !slices.Equal(b.Networks, []string{in.Labels[api.LabelLocalNetwork]}) {
		t.Fatalf("sandbox %s of %s: %+v %v; want it running on %s", box, task, b, err, in.Labels[api.LabelLocalNetwork])
	}

	if mode == api.ModeLive {
		ws, err := c.fe.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w1, w2 := find(ws, src.Name), find(ws, dst.Name); !w1.Checkpoint || !w2.Checkpoint {
			bad := w1
			if w1.Checkpoint {
				bad = w2
			}
			_, err := c.migrate(ctx, task, dst.Name, mode)
			var se *api.StatusError
			if !errors.As(err, &se) || se.Status != http.StatusUnprocessableEntity || !strings.Contains(se.Error(), bad.CheckpointError) {
				t.Fatalf("live move where %s cannot checkpoint: %v; want 422 with %q", bad.ID, err, bad.CheckpointError)
			}
			c.check(t)
			t.Skipf("live migration not possible here: CRIU on %s (%s): %s", bad.Host, bad.ID, bad.CheckpointError)
		}
	}
	c.check(t)

	count := func(h *labtest.Host) (int, error) { return c.count(ctx, h, task) }
	before := c.countPast(t, src, task, 10)
	res, err := c.migrate(ctx, task, dst.Name, mode)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != mode || res.To != c.ids[dst.Name] || res.Error != "" || res.Bytes <= 0 || res.DowntimeSeconds <= 0 {
		t.Errorf("result %+v", res)
	}
	t.Logf("%s move of a sandboxed task %s -> %s: %d bytes, downtime %.3f s (freeze %.3f, transfer %.3f, start %.3f)",
		mode, src.Name, dst.Name, res.Bytes, res.DowntimeSeconds, res.FreezeSeconds, res.TransferSeconds, res.StartSeconds)
	if got := c.waitTasks(t, name, 30*time.Second, api.Running); got.Info.Tasks[0].Node != c.ids[dst.Name] {
		t.Errorf("store: task on %s after the move", got.Info.Tasks[0].Node)
	}

	// It goes on from where it was.
	apitest.Eventually(t, 30*time.Second, func() error {
		n, err := count(dst)
		if err != nil {
			return err
		}
		if n < before {
			t.Fatalf("count %d on %s after the move, %d before: the count was lost", n, dst.Name, before)
		}
		if n <= before+5 {
			return fmt.Errorf("count %d after the move, %d before", n, before)
		}
		return nil
	})
	starts, err := c.exec(ctx, dst, task, "cat", "/starts")
	if want := map[string]int{api.ModeLive: 1, api.ModeCold: 2}[mode]; err != nil || strings.Count(starts, "start") != want {
		t.Errorf("/starts after a %s move: %q (%v), want %d starts", mode, starts, err, want)
	}

	// On the destination, on a pooled network: cold, on the network
	// itself; live, in a sandbox there (its checkpoint leaves out the
	// network namespace it ran in, which only a sandbox's can stand for).
	moved, err := dst.Engine.Inspect(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	n, newBox := moved.Labels[api.LabelLocalNetwork], moved.Labels[api.LabelSandbox]
	switch {
	case !strings.HasPrefix(n, "rsnetp_"):
		t.Errorf("%s on %s after the move: local network %q, want a pooled one", task, dst.Name, n)
	case mode == api.ModeCold && (newBox != "" || !slices.Equal(moved.Networks, []string{n})):
		t.Errorf("%s on %s after a cold move: sandbox %q, networks %v; want it on %s, no sandbox", task, dst.Name, newBox, moved.Networks, n)
	case mode == api.ModeLive && (newBox == "" || len(moved.Networks) != 0):
		t.Errorf("%s on %s after a live move: sandbox %q, networks %v; want it in a sandbox on %s", task, dst.Name, newBox, moved.Networks, n)
	case mode == api.ModeLive:
		if b, err := dst.Engine.Inspect(ctx, newBox); err != nil || !b.Running || !slices.Equal(b.Networks, []string{n}) {
			t.Errorf("sandbox %s of %s on %s: %+v %v; want it running on %s", newBox, task, dst.Name, b, err, n)
		}
	}
	// Its network namespace has the bridge's interface.
	if _, err := c.exec(ctx, dst, task, "grep", "-q", "eth0:", "/proc/net/dev"); err != nil {
		t.Errorf("%s on %s after the move: no eth0 in its network namespace: %v", task, dst.Name, err)
	}

	// Nothing of it on the source: its container and its sandbox are gone.
	apitest.Eventually(t, 30*time.Second, func() error {
		for _, gone := range []string{task, box} {
			if _, err := src.Engine.Inspect(ctx, gone); !errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("%s on %s after the move: %v, want it removed", gone, src.Name, err)
			}
		}
		return nil
	})
	c.check(t)

	if err := c.fe.CancelJob(ctx, name); err != nil {
		t.Fatal(err)
	}
	c.waitTasks(t, name, 60*time.Second, api.Down, api.Failed, api.Cancelled)
	c.check(t)
}

// TestLabDrainUpdateLeave: two stateful tasks, one with a named volume, on
// one worker; a task's memory and cores updated in place; the worker
// drained (both move, with their files and the volume's); activated; the
// other worker leaves, and its tasks move back first.
func TestLabDrainUpdateLeave(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	name := fmt.Sprintf("labdrain%d", time.Now().UnixNano())
	j := apitest.Job(name, 2, 1, stateful)
	vol := name + "_data"
	j.Info.Tasks[0].Volumes = map[string]api.Volume{vol: {Bind: "/vol", Mode: "rw"}}
	j.Info.Tasks[0].Command = `sh -c 'echo kept > /state && mkdir -p /newdir/sub && echo deep > /newdir/sub/f && echo in-volume > /vol/v && exec sleep 3600'`
	src, dst := c.lab.Host(2), c.lab.Host(3)
	for i, tk := range j.Info.Tasks {
		tk.Node, tk.CpusetCpus = c.ids[src.Name], fmt.Sprint(i)
	}
	if err := c.fe.Do(ctx, http.MethodPut, "/api/v1/scheduler", map[string]string{"name": "no-scheduler"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.fe.SubmitJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	c.waitTasks(t, name, 60*time.Second, api.Running)
	t1, t2 := j.Info.Tasks[0].ContainerName, j.Info.Tasks[1].ContainerName
	for _, tk := range []string{t1, t2} {
		apitest.Eventually(t, 30*time.Second, func() error {
			_, err := c.exec(ctx, src, tk, "cat", "/newdir/sub/f")
			return err
		})
	}
	c.check(t)

	// Update: task 1's memory limit, in place; task 2's cores are taken.
	if err := c.gm.Do(ctx, http.MethodPost, "/RESTfulSwarm/GM/request_update_container",
		map[string]string{"job": name, "container_name": t1, "mem_limit": "32m"}, nil); err != nil {
		t.Fatal(err)
	}
	if in, err := src.Engine.Inspect(ctx, t1); err != nil || in.Memory != 32<<20 || in.CpusetCpus != "0" {
		t.Errorf("after the update: %+v %v", in, err)
	}
	var se *api.StatusError
	err := c.gm.Do(ctx, http.MethodPost, "/RESTfulSwarm/GM/request_update_container",
		map[string]string{"job": name, "container_name": t1, "cpuset_cpus": "1"}, nil)
	if !errors.As(err, &se) || se.Status != http.StatusConflict {
		t.Errorf("update to a taken core: %v, want 409", err)
	}
	c.check(t)

	// Drain: both tasks go to the other worker, with their state.
	var dr globalmanager.DrainResult
	if err := c.gm.Do(ctx, http.MethodPost, "/api/v1/workers/"+c.ids[src.Name]+"/drain", nil, &dr); err != nil {
		t.Fatal(err)
	}
	if !dr.Empty || len(dr.Moved) != 2 || len(dr.Remaining) != 0 || dr.Status != api.WorkerDrained {
		t.Errorf("drain: %+v", dr)
	}
	after := c.waitTasks(t, name, 30*time.Second, api.Running)
	for _, tk := range after.Info.Tasks {
		if tk.Node != c.ids[dst.Name] {
			t.Errorf("%s on %s after the drain", tk.ContainerName, tk.Node)
		}
		c.wantState(t, dst, tk.ContainerName)
	}
	if got, err := c.exec(ctx, dst, t1, "cat", "/vol/v"); err != nil || got != "in-volume" {
		t.Errorf("the volume did not travel: %q %v", got, err)
	}
	if in, err := dst.Engine.Inspect(ctx, t1); err != nil || in.Memory != 32<<20 {
		t.Errorf("the updated memory limit did not travel: %+v %v", in, err)
	}
	// The named volume moved: it is gone from the source.
	if _, err := c.lab.Run(ctx, src, "docker", "volume", "inspect", vol); err == nil {
		t.Errorf("volume %s is still on %s after its task moved away", vol, src.Name)
	}
	c.check(t)

	// Activate, then the other worker leaves: its tasks move back first.
	if err := c.gm.Do(ctx, http.MethodPost, "/api/v1/workers/"+c.ids[src.Name]+"/activate", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.gm.Do(ctx, http.MethodDelete, "/api/v1/workers/"+c.ids[dst.Name], nil, nil); err != nil {
		t.Fatal(err)
	}
	back := c.waitTasks(t, name, 30*time.Second, api.Running)
	for _, tk := range back.Info.Tasks {
		if tk.Node != c.ids[src.Name] {
			t.Errorf("%s on %s after the other worker left", tk.ContainerName, tk.Node)
		}
		c.wantState(t, src, tk.ContainerName)
	}
	if got, err := c.exec(ctx, src, t1, "cat", "/vol/v"); err != nil || got != "in-volume" {
		t.Errorf("the volume did not travel back: %q %v", got, err)
	}
	if _, err := c.lab.Run(ctx, dst, "docker", "volume", "inspect", vol); err == nil {
		t.Errorf("volume %s is still on %s after its task moved away", vol, dst.Name)
	}
	c.check(t)

	// Drain the last worker: the tasks fit nowhere else, so their job goes
	// back to the queue (stopped, Ready, cores freed), not lost and not
	// left running on the drained worker; it runs again once the worker
	// is activated.
	var dr2 globalmanager.DrainResult
	if err := c.gm.Do(ctx, http.MethodPost, "/api/v1/workers/"+c.ids[src.Name]+"/drain", nil, &dr2); err != nil {
		t.Fatal(err)
	}
	if !dr2.Empty || len(dr2.Moved) != 0 || len(dr2.Requeued) != 2 || len(dr2.Remaining) != 0 || dr2.Status != api.WorkerDrained {
		t.Errorf("drain of the last worker: %+v", dr2)
	}
	queued := c.waitTasks(t, name, 30*time.Second, api.Ready)
	if queued.Status != api.Ready || !slices.ContainsFunc(queued.Notes, func(n string) bool { return strings.HasPrefix(n, "requeued: ") }) {
		t.Errorf("requeued job: %s, notes %q", queued.Status, queued.Notes)
	}
	for _, tk := range []string{t1, t2} {
		if in, err := src.Engine.Inspect(ctx, tk); err == nil && in.Running {
			t.Errorf("%s still runs on the drained worker %s", tk, src.Name)
		}
	}
	c.check(t)
	if err := c.gm.Do(ctx, http.MethodPost, "/api/v1/workers/"+c.ids[src.Name]+"/activate", nil, nil); err != nil {
		t.Fatal(err)
	}
	c.waitTasks(t, name, 60*time.Second, api.Running)
	c.check(t)
}

// TestLabNFSVolume: the original stress client's per-task NFS directory is
// a volume of the task on its worker; it moves with the task and goes
// when the task ends.
func TestLabNFSVolume(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	name := fmt.Sprintf("labnfs%d", time.Now().UnixNano())
	j := apitest.Job(name, 1, 1, `sh -c 'echo from-task > /home/mnt/out && exec sleep 3600'`)
	task := j.Info.Tasks[0].ContainerName
	j.Info.Tasks[0].Volumes = map[string]api.Volume{"/nfs/RESTfulSwarm/" + name + "/" + task: {Bind: "/home/mnt/", Mode: "rw"}}
	j.Info.Network.Driver = "weaveworks/net-plugin:latest_release"
	if err := c.fe.SubmitJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	got := c.waitTasks(t, name, 60*time.Second, api.Running)
	if len(got.Notes) != 2 {
		t.Errorf("notes %q, want the weave and the NFS one", got.Notes)
	}
	vol := api.NFSVolumePrefix + name + "_" + task
	src := c.hostOf(got.Info.Tasks[0].Node)
	dst := c.other(src)
	hasVolume := func(h *labtest.Host) bool {
		_, err := c.lab.Run(ctx, h, "docker", "volume", "inspect", vol)
		return err == nil
	}
	apitest.Eventually(t, 30*time.Second, func() error {
		_, err := c.exec(ctx, src, task, "cat", "/home/mnt/out")
		return err
	})
	if !hasVolume(src) {
		t.Fatalf("no volume %s on %s", vol, src.Name)
	}
	if _, err := c.migrate(ctx, task, dst.Name, "cold"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.exec(ctx, dst, task, "cat", "/home/mnt/out"); err != nil || out != "from-task" {
		t.Errorf("after the move: %q %v", out, err)
	}
	if hasVolume(src) || !hasVolume(dst) {
		t.Errorf("volume %s: on %s %v, on %s %v; want only on %s", vol, src.Name, hasVolume(src), dst.Name, hasVolume(dst), dst.Name)
	}
	c.check(t)
	if err := c.fe.CancelJob(ctx, name); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, 30*time.Second, func() error {
		if hasVolume(dst) {
			return fmt.Errorf("volume %s still on %s", vol, dst.Name)
		}
		return nil
	})
	c.check(t)
}

// TestLabSSH: every lab host runs an sshd that knows the lab's client key;
// an SSH session on a host talks to that host's engine, and what it keeps
// in /var/lib/rswarm is its own.
func TestLabSSH(t *testing.T) {
	lab := labtest.Get(t, 3)
	ctx := context.Background()
	from := lab.Host(1)
	ssh := func(to *labtest.Host, cmd string) (string, error) {
		out, err := lab.Run(ctx, from, "ssh", "-i", filepath.Join(lab.Dir, "ssh", "id_ed25519"),
			"-o", "UserKnownHostsFile="+filepath.Join(lab.Dir, "ssh", "known_hosts"), "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-p", fmt.Sprint(to.SSHPort), "root@"+to.Addr, cmd)
		return strings.TrimSpace(out), err
	}
	for _, h := range lab.Hosts[1:] {
		got, err := ssh(h, "hostname; docker info --format '{{.Name}}'")
		if err != nil || got != h.Name+"\n"+h.Name {
			t.Errorf("ssh %s: %q %v", h.Name, got, err)
		}
	}
	if _, err := ssh(lab.Host(2), "echo mine > /var/lib/rswarm/labssh"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = ssh(lab.Host(2), "rm -f /var/lib/rswarm/labssh") })
	if got, err := ssh(lab.Host(2), "cat /var/lib/rswarm/labssh"); err != nil || got != "mine" {
		t.Errorf("on %s: %q %v", lab.Host(2).Name, got, err)
	}
	if got, err := ssh(lab.Host(3), "cat /var/lib/rswarm/labssh 2>&1 || echo absent"); err != nil || !strings.HasSuffix(got, "absent") {
		t.Errorf("%s sees %s's /var/lib/rswarm: %q %v", lab.Host(3).Name, lab.Host(2).Name, got, err)
	}
}

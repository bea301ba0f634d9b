package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine"
)

// The end-to-end tests run the real binary, as separate processes, against
// the local Docker Engine.

var binary string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "rswarm-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "rswarm")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building rswarm: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// freeAddr returns a loopback host:port nobody listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// system is the addresses of one RSwarm under test.
type system struct {
	fe, gm              string
	gmBus, jmBus, dcBus string
	dataDir             string
}

func newSystem(t testing.TB) *system {
	a := freeAddrs(t, 5)
	return &system{fe: a[0], gm: a[1], gmBus: "tcp://" + a[2], jmBus: "tcp://" + a[3],
		dcBus: "tcp://" + a[4], dataDir: t.TempDir()}
}

// freeAddrs returns n distinct free loopback addresses: their listeners
// are all open at once, so the kernel cannot hand out one port twice (one
// freeAddr after another could, and two roles then fought for it).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

func (s *system) flags() []string {
	return []string{"--frontend-addr", s.fe, "--globalmanager-addr", s.gm, "--globalmanager-bus", s.gmBus,
		"--jobmanager-bus", s.jmBus, "--discovery-bus", s.dcBus, "--data-dir", s.dataDir}
}

func (s *system) client() *api.Client { return api.NewClient("http://"+s.fe, "") }

// start runs `rswarm args...` until the test ends, then interrupts it and
// waits for it to exit, as a user pressing Ctrl-C would. Its output is
// printed when the test fails.
func start(t testing.TB, name string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s exited with %v", name, err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop within 30 s of SIGINT", name)
		}
		if t.Failed() {
			t.Logf("---- output of %s ----\n%s", name, out.String())
		}
	})
}

func needDocker(t testing.TB) *engine.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test (skipped by -short)")
	}
	eng, err := engine.New("")
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = eng.Info(ctx)
		if err == nil {
			var ok bool
			if ok, err = eng.ImageExists(ctx, "rswarm/busybox:latest"); err == nil && !ok {
				err = errors.New("image rswarm/busybox:latest is missing (scripts/setup.sh imports it)")
			}
		}
	}
	apitest.Need(t, "docker", err)
	t.Cleanup(func() { eng.Close() })
	return eng
}

// heldCommand is a task command that holds its cores until the test
// releases it (holdUntilReleased): it makes /tmp/hold in its container,
// says "held", and runs while the file is there (five minutes at most, so
// that a test that dies leaves nothing running for long).
const heldCommand = "timeout 300 sh -c 'touch /tmp/hold && echo held && while [ -e /tmp/hold ]; do sleep 0.1; done'"

// holdUntilReleased returns the function that releases the containers of
// heldCommand tasks, once each has said it holds. A test that ends without
// calling it releases them at its end, without waiting.
func holdUntilReleased(t testing.TB, eng *engine.Client, containers ...string) (release func()) {
	t.Helper()
	released := false
	release = func() {
		t.Helper()
		if released {
			return
		}
		released = true
		for _, name := range containers {
			// Only once it says it holds: removing the file before it is
			// made would release nothing.
			apitest.Eventually(t, 60*time.Second, func() error {
				lines, err := eng.Logs(context.Background(), name, 0)
				if err != nil {
					return err
				}
				if !slices.Contains(lines, "held") {
					return fmt.Errorf("container %s has not said it holds yet (logs %q)", name, lines)
				}
				return nil
			})
			if err := eng.RemovePaths(context.Background(), name, []string{"/tmp/hold"}); err != nil {
				// The rm can be killed (exit 137) after it removed the
				// file: the loop sees it gone and the container ends,
				// taking the exec with it. Released all the same if the
				// container ended with the command's own success.
				c, ierr := eng.Inspect(context.Background(), name)
				if ierr != nil || c.Running || c.ExitCode != 0 {
					t.Errorf("releasing %s: %v (container: %+v, %v)", name, err, c, ierr)
				}
			}
		}
	}
	t.Cleanup(func() {
		if !released {
			for _, name := range containers {
				_ = eng.RemovePaths(context.Background(), name, []string{"/tmp/hold"})
			}
		}
	})
	return release
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitWorkers waits until n workers are ready and returns them.
func waitWorkers(t testing.TB, c *api.Client, n int) []*api.Worker {
	t.Helper()
	return waitWorkersFor(t, c, n, 60*time.Second)
}

// waitWorkersFor is waitWorkers with its own deadline.
func waitWorkersFor(t testing.TB, c *api.Client, n int, deadline time.Duration) []*api.Worker {
	t.Helper()
	var ws []*api.Worker
	apitest.Eventually(t, deadline, func() error {
		var err error
		ws, err = c.Workers(context.Background())
		if err != nil {
			return err
		}
		ready := 0
		for _, w := range ws {
			if w.Status == api.WorkerReady {
				ready++
			}
		}
		if ready < n {
			return fmt.Errorf("%d of %d workers ready", ready, n)
		}
		return nil
	})
	return ws
}

// waitJob polls a job until cond accepts it.
func waitJob(t testing.TB, c *api.Client, name string, d time.Duration, cond func(*api.Job) error) *api.Job {
	t.Helper()
	var j *api.Job
	apitest.Eventually(t, d, func() error {
		var err error
		if j, err = c.Job(context.Background(), name); err != nil {
			return err
		}
		return cond(j)
	})
	return j
}

func final(j *api.Job) error {
	if !j.Status.Final() {
		return fmt.Errorf("job %s is %s", j.Name, j.Status)
	}
	return nil
}

func submitOriginal(t testing.TB, sys *system, j *api.Job) {
	t.Helper()
	b, _ := json.Marshal(j)
	resp, err := http.Post("http://"+sys.fe+"/RESTfulSwarm/FE/request_new_job", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("submit %s: status %d", j.Name, resp.StatusCode)
	}
}

func allFree(t testing.TB, c *api.Client) {
	t.Helper()
	apitest.Eventually(t, 30*time.Second, func() error {
		ws, err := c.Workers(context.Background())
		if err != nil {
			return err
		}
		for _, w := range ws {
			if busy := w.BusyCores(); len(busy) > 0 {
				return fmt.Errorf("worker %s still has cores %v allocated (%v)", w.ID, busy, w.CoreTasks)
			}
		}
		return nil
	})
}

func TestUpEndToEnd(t *testing.T) {
	eng := needDocker(t)
	sys := newSystem(t)
	start(t, "rswarm up", append([]string{"up", "--probe-checkpoint=false"}, sys.flags()...)...)
	c := sys.client()
	ws := waitWorkers(t, c, 1)
	cores := ws[0].Cores

	t.Run("two tasks run pinned on the job's network and end Down", func(t *testing.T) {
		ctx := ctxT(t)
		j := apitest.Job(fmt.Sprintf("e2e%d", time.Now().UnixNano()), 2, 1, "sleep 2")
		j.Info.Network.Subnet = "10.61.7.0/24"
		submitOriginal(t, sys, j)

		// While it runs, each container has exactly the assigned cpuset and
		// memory limit, on the job's network.
		for _, task := range j.Info.Tasks {
			name := task.ContainerName
			apitest.Eventually(t, 60*time.Second, func() error {
				sj, err := c.Job(ctx, j.Name)
				if err != nil {
					return err
				}
				st := sj.Info.Tasks.Get(name)
				if st.Status.Final() {
					return fmt.Errorf("task %s ended (%s) before it was seen running", name, st.Status)
				}
				ct, err := eng.Inspect(ctx, name)
				if err != nil {
					return err
				}
				if !ct.Running {
					return fmt.Errorf("container %s not running yet", name)
				}
				if st.CpusetCpus == "" || ct.CpusetCpus != st.CpusetCpus {
					return fmt.Errorf("container %s cpuset %q, task says %q", name, ct.CpusetCpus, st.CpusetCpus)
				}
				if ct.Memory != 16<<20 {
					return fmt.Errorf("container %s memory %d, want %d", name, ct.Memory, 16<<20)
				}
				if !contains(ct.Networks, j.Info.Network.Name) {
					return fmt.Errorf("container %s networks %v, want %s", name, ct.Networks, j.Info.Network.Name)
				}
				return nil
			})
		}
		done := waitJob(t, c, j.Name, 60*time.Second, final)
		if done.Status != api.Down {
			t.Fatalf("job ended %s (%s), want Down", done.Status, done.Error)
		}
		if !(done.SubmitTime > 0 && done.StartTime >= done.SubmitTime && done.EndTime > done.StartTime) {
			t.Fatalf("times: submit %.3f start %.3f end %.3f", done.SubmitTime, done.StartTime, done.EndTime)
		}
		seen := map[string]bool{}
		for _, task := range done.Info.Tasks {
			if task.Status != api.Down || task.ExitCode == nil || *task.ExitCode != 0 || task.Node == "" {
				t.Fatalf("task %s: status %s exit %v node %q", task.ContainerName, task.Status, task.ExitCode, task.Node)
			}
			if seen[task.CpusetCpus] {
				t.Fatalf("two tasks got cpuset %s", task.CpusetCpus)
			}
			seen[task.CpusetCpus] = true
		}
		allFree(t, c)
		apitest.Eventually(t, 30*time.Second, func() error {
			nets, err := eng.Networks(ctx, map[string]string{api.LabelJob: j.Name})
			if err != nil {
				return err
			}
			if len(nets) > 0 {
				return fmt.Errorf("network %s still there", nets[0].Name)
			}
			return nil
		})
	})

	t.Run("a one-worker job without a driver gets a local bridge network from its worker's pool, resolves its tasks by name, and gives the network back", func(t *testing.T) {
		ctx := ctxT(t)
		j := apitest.Job(fmt.Sprintf("e2elocal%d", time.Now().UnixNano()), 2, 1, "sleep 4")
		j.Info.Network.Driver = "" // auto, the default
		peer := j.Info.Tasks[0].ContainerName
		// The second task ends Down only if it reaches the first by name.
		j.Info.Tasks[1].Command = fmt.Sprintf("timeout 20 sh -c 'until ping -c 1 -W 1 %s; do sleep 0.2; done'", peer)
		if err := c.SubmitJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		var pooled string
		apitest.Eventually(t, 60*time.Second, func() error {
			ct, err := eng.Inspect(ctx, peer)
			if err != nil {
				return err
			}
			if len(ct.Networks) != 1 {
				return fmt.Errorf("container %s networks %v, want one", peer, ct.Networks)
			}
			nets, err := eng.Networks(ctx, map[string]string{api.LabelPool: ""})
			if err != nil {
				return err
			}
			for _, n := range nets {
				if n.Name == ct.Networks[0] && n.Driver == "bridge" {
					pooled = n.Name
					return nil
				}
			}
			return fmt.Errorf("container %s is on %v, not on a pooled bridge network", peer, ct.Networks)
		})
		done := waitJob(t, c, j.Name, 60*time.Second, final)
		for _, task := range done.Info.Tasks {
			if task.Status != api.Down {
				t.Fatalf("task %s ended %s (%s, logs %q), want Down", task.ContainerName, task.Status, task.Error, task.Logs)
			}
		}
		allFree(t, c)
		apitest.Eventually(t, 30*time.Second, func() error {
			nets, err := eng.Networks(ctx, map[string]string{api.LabelPool: ""})
			if err != nil {
				return err
			}
			for _, n := range nets {
				if n.Name != pooled {
					continue
				}
				// Back in the pool, it may have a new sandbox on it.
				boxes, err := eng.Containers(ctx, map[string]string{api.LabelSandbox: n.Name, api.LabelPool: ""}, true)
				if err != nil {
					return err
				}
				if k := n.Containers - len(boxes); k > 0 {
					return fmt.Errorf("network %s still has %d containers besides sandboxes after its job ended", n.Name, k)
				}
			}
			if nets, err = eng.Networks(ctx, map[string]string{api.LabelJob: j.Name}); err != nil {
				return err
			} else if len(nets) > 0 {
				return fmt.Errorf("network %s of the job is there", nets[0].Name)
			}
			return nil
		})
	})

	t.Run("a one-task job without a driver starts in a sandbox made ahead on a pooled network, which is removed when it ends", func(t *testing.T) {
		ctx := ctxT(t)
		j := apitest.Job(fmt.Sprintf("e2ebox%d", time.Now().UnixNano()), 1, 1, "sh -c 'hostname; grep -q eth0: /proc/net/dev && sleep 2'")
		j.Info.Network.Driver = "" // auto, the default
		task := j.Info.Tasks[0].ContainerName
		if err := c.SubmitJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		var box engine.Container
		apitest.Eventually(t, 60*time.Second, func() error {
			ct, err := eng.Inspect(ctx, task)
			if err != nil {
				return err
			}
			name := ct.Labels[api.LabelSandbox]
			if name == "" || len(ct.Networks) != 0 {
				return fmt.Errorf("container %s: sandbox %q, networks %v: want it in a sandbox, with no endpoint of its own", task, name, ct.Networks)
			}
			if box, err = eng.Inspect(ctx, name); err != nil {
				return err
			}
			if !box.Running || len(box.Networks) != 1 || box.Networks[0] != ct.Labels[api.LabelLocalNetwork] || !strings.HasPrefix(box.Networks[0], "rsnetp_") {
				return fmt.Errorf("sandbox %s: running %v on %v, want running on the task's pooled network %s", name, box.Running, box.Networks, ct.Labels[api.LabelLocalNetwork])
			}
			return nil
		})
		// The task ends Down only if its namespace has the bridge's eth0.
		done := waitJob(t, c, j.Name, 60*time.Second, final)
		if tk := done.Info.Tasks[0]; tk.Status != api.Down || !slices.Contains(tk.Logs, box.ID[:12]) {
			t.Fatalf("task %s ended %s (%s), logs %q: want Down, with the sandbox's hostname %s", task, tk.Status, tk.Error, tk.Logs, box.ID[:12])
		}
		allFree(t, c)
		apitest.Eventually(t, 30*time.Second, func() error {
			if _, err := eng.Inspect(ctx, box.Name); !errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("sandbox %s after its job ended: %v, want it removed", box.Name, err)
			}
			return nil
		})
	})

	t.Run("a job that does not fit waits, then starts when cores are freed", func(t *testing.T) {
		ctx := ctxT(t)
		// The first job holds every core until the test releases it.
		first := apitest.Job(fmt.Sprintf("e2efull%d", time.Now().UnixNano()), cores, 1, heldCommand)
		var held []string
		for _, task := range first.Info.Tasks {
			held = append(held, task.ContainerName)
		}
		release := holdUntilReleased(t, eng, held...)
		if err := c.SubmitJob(ctx, first); err != nil {
			t.Fatal(err)
		}
		waitJob(t, c, first.Name, 60*time.Second, func(j *api.Job) error {
			if j.Status != api.Running && !j.Status.Final() {
				return fmt.Errorf("first job is %s", j.Status)
			}
			return nil
		})
		second := apitest.Job(fmt.Sprintf("e2ewait%d", time.Now().UnixNano()), 1, 1, "sleep 1")
		if err := c.SubmitJob(ctx, second); err != nil {
			t.Fatal(err)
		}
		w := waitJob(t, c, second.Name, 10*time.Second, func(j *api.Job) error {
			if j.WaitingReason == "" {
				return fmt.Errorf("second job is %s with no waiting reason", j.Status)
			}
			return nil
		})
		if w.Status != api.Ready {
			t.Fatalf("second job is %s while it should wait", w.Status)
		}
		t.Logf("waiting reason: %s", w.WaitingReason)
		release()
		a := waitJob(t, c, first.Name, 60*time.Second, final)
		b := waitJob(t, c, second.Name, 60*time.Second, final)
		if a.Status != api.Down || b.Status != api.Down {
			t.Fatalf("jobs ended %s and %s", a.Status, b.Status)
		}
		firstFree := a.EndTime
		for _, task := range a.Info.Tasks {
			firstFree = min(firstFree, task.EndTime)
		}
		if b.StartTime < firstFree {
			t.Fatalf("second job started at %.3f, before the first freed a core at %.3f", b.StartTime, firstFree)
		}
		if b.WaitingReason != "" {
			t.Fatalf("finished job keeps waiting reason %q", b.WaitingReason)
		}
		allFree(t, c)
	})

	t.Run("a missing image fails the job with a clear error and frees its cores", func(t *testing.T) {
		ctx := ctxT(t)
		j := apitest.Job(fmt.Sprintf("e2enoimage%d", time.Now().UnixNano()), 1, 1, "sleep 1")
		j.Info.Tasks[0].Image = "rswarm/does-not-exist:1.0"
		if err := c.SubmitJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		done := waitJob(t, c, j.Name, 60*time.Second, final)
		if done.Status != api.Failed || !strings.Contains(done.Error, "not found") || !strings.Contains(done.Error, "rswarm/does-not-exist:1.0") {
			t.Fatalf("job %s with error %q, want Failed saying the image was not found", done.Status, done.Error)
		}
		allFree(t, c)
	})

	t.Run("no-scheduler gives exactly the pinned cores, and a job asking for a held core waits", func(t *testing.T) {
		ctx := ctxT(t)
		setStrategy(t, sys, "no-scheduler")
		defer setStrategy(t, sys, "best-fit")
		node, core := ws[0].ID, fmt.Sprint(cores-1)
		pin := func(j *api.Job) *api.Job {
			j.Info.Tasks[0].Node, j.Info.Tasks[0].CpusetCpus = node, core
			return j
		}
		// The first pinned job holds its core until the test releases it.
		p := pin(apitest.Job(fmt.Sprintf("e2epin%d", time.Now().UnixNano()), 1, 1, heldCommand))
		name := p.Info.Tasks[0].ContainerName
		release := holdUntilReleased(t, eng, name)
		if err := c.SubmitJob(ctx, p); err != nil {
			t.Fatal(err)
		}
		apitest.Eventually(t, 60*time.Second, func() error {
			ct, err := eng.Inspect(ctx, name)
			if err != nil {
				return err
			}
			if !ct.Running || ct.CpusetCpus != core {
				return fmt.Errorf("container running %v with cpuset %q, want %q", ct.Running, ct.CpusetCpus, core)
			}
			return nil
		})
		q := pin(apitest.Job(fmt.Sprintf("e2epinq%d", time.Now().UnixNano()), 1, 1, "sleep 1"))
		if err := c.SubmitJob(ctx, q); err != nil {
			t.Fatal(err)
		}
		w := waitJob(t, c, q.Name, 10*time.Second, func(j *api.Job) error {
			if j.WaitingReason == "" {
				return fmt.Errorf("second pinned job is %s with no waiting reason", j.Status)
			}
			return nil
		})
		if !strings.Contains(w.WaitingReason, p.Info.Tasks[0].ContainerName) {
			t.Fatalf("waiting reason %q does not name the task holding core %s", w.WaitingReason, core)
		}
		release()
		pd := waitJob(t, c, p.Name, 60*time.Second, final)
		qd := waitJob(t, c, q.Name, 60*time.Second, final)
		if pd.Status != api.Down || qd.Status != api.Down || qd.StartTime < pd.EndTime {
			t.Fatalf("first %s ended %.3f, second %s started %.3f", pd.Status, pd.EndTime, qd.Status, qd.StartTime)
		}
		if got := qd.Info.Tasks[0].CpusetCpus; got != core {
			t.Fatalf("second job got cpuset %q, want %q", got, core)
		}
		// Pins to a node that does not exist, or to a core it does not have, are refused.
		for _, tc := range []struct{ node, cpuset, field string }{
			{"nosuchnode", "0", "job_info.tasks.e2ebadpin_task1.node"},
			{node, fmt.Sprint(cores + 5), "job_info.tasks.e2ebadpin_task1.cpuset_cpus"},
		} {
			j := apitest.Job("e2ebadpin", 1, 1, "sleep 1")
			j.Info.Tasks[0].Node, j.Info.Tasks[0].CpusetCpus = tc.node, tc.cpuset
			err := c.SubmitJob(ctx, j)
			var se *api.StatusError
			if !errors.As(err, &se) || se.Status != 400 || se.Detail.Field != tc.field {
				t.Fatalf("pin to %s/%s: %v, want 400 on %s", tc.node, tc.cpuset, err, tc.field)
			}
		}
	})

	t.Run("cancel kills the containers and frees the cores before it answers", func(t *testing.T) {
		ctx := ctxT(t)
		j := apitest.Job(fmt.Sprintf("e2ecancel%d", time.Now().UnixNano()), cores, 1, "sleep 600")
		if err := c.SubmitJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		waitJob(t, c, j.Name, 60*time.Second, func(j *api.Job) error {
			for _, tk := range j.Info.Tasks {
				if tk.Status != api.Running {
					return fmt.Errorf("task %s is %s", tk.ContainerName, tk.Status)
				}
			}
			return nil
		})
		start := time.Now()
		if err := c.CancelJob(ctx, j.Name); err != nil {
			t.Fatal(err)
		}
		answered := time.Since(start)
		// When DELETE has answered, no container of the job runs and every
		// core is free: no waiting.
		for _, tk := range j.Info.Tasks {
			if ct, err := eng.Inspect(ctx, tk.ContainerName); err == nil && ct.Running {
				t.Fatalf("container %s still running after the cancel answered", tk.ContainerName)
			}
		}
		ws, err := c.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if busy := w.BusyCores(); len(busy) > 0 {
				t.Fatalf("worker %s still holds cores %v after the cancel answered", w.ID, busy)
			}
		}
		// The stopped containers are then removed.
		apitest.Eventually(t, 30*time.Second, func() error {
			for _, tk := range j.Info.Tasks {
				if _, err := eng.Inspect(ctx, tk.ContainerName); err == nil {
					return fmt.Errorf("container %s not removed yet", tk.ContainerName)
				}
			}
			return nil
		})
		t.Logf("cancel answered in %v; containers removed %v after the request", answered.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if got, err := c.Job(ctx, j.Name); err != nil || got.Status != api.Cancelled {
			t.Fatalf("cancelled job: %v %v", got.Status, err)
		}
	})

	t.Run("bad input is refused naming the field, and nothing is stored", func(t *testing.T) {
		good := func() *api.Job { return apitest.Job("e2ebad", 1, 1, "sleep 1") }
		cases := []struct {
			name   string
			body   string
			status int
			field  string
		}{
			{"malformed body", `{"job_name":`, 400, ""},
			{"wrong type", `{"job_name": 5}`, 400, "job_name"},
			{"missing tasks", `{"job_name":"e2ebad","job_info":{"network":{}}}`, 400, "job_info.tasks"},
			{"key differs from container_name", mutate(good(), func(m map[string]any) {
				task(m)["container_name"] = "e2ebad_other"
			}), 400, "job_info.tasks.e2ebad_task1.container_name"},
			{"name Docker refuses", strings.ReplaceAll(mutate(good(), nil), "e2ebad", "e2e bad"), 400, "job_name"},
			{"req_cores below 1", mutate(good(), func(m map[string]any) { task(m)["req_cores"] = 0 }), 400, "job_info.tasks.e2ebad_task1.req_cores"},
			{"req_cores above the cap", mutate(good(), func(m map[string]any) { task(m)["req_cores"] = 5000 }), 400, "job_info.tasks.e2ebad_task1.req_cores"},
			{"req_cores wrongly typed", mutate(good(), func(m map[string]any) { task(m)["req_cores"] = "2" }), 400, "job_info.tasks.e2ebad_task1.req_cores"},
			{"image with shell metacharacters", mutate(good(), func(m map[string]any) { task(m)["image"] = "busybox;reboot" }), 400, "job_info.tasks.e2ebad_task1.image"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := http.Post("http://"+sys.fe+"/api/v1/jobs", "application/json", strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var eb api.ErrorBody
				if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
					t.Fatalf("error body is not JSON: %v", err)
				}
				if resp.StatusCode != tc.status || eb.Error.Field != tc.field || eb.Error.Message == "" {
					t.Fatalf("got %d field %q message %q, want %d field %q", resp.StatusCode, eb.Error.Field, eb.Error.Message, tc.status, tc.field)
				}
			})
		}
		if _, err := c.Job(context.Background(), "e2ebad"); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("refused job was stored: %v", err)
		}
		dup := apitest.Job(fmt.Sprintf("e2edup%d", time.Now().UnixNano()), 1, 1, "sleep 0")
		if err := c.SubmitJob(context.Background(), dup); err != nil {
			t.Fatal(err)
		}
		err := c.SubmitJob(context.Background(), dup)
		var se *api.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusConflict || se.Detail.Field != "job_name" {
			t.Fatalf("duplicate job_name: got %v, want 409 naming job_name", err)
		}
		waitJob(t, c, dup.Name, 60*time.Second, final)
	})
}

// TestSeparateProcesses runs every role as its own process, sharing one SQLite file.
func TestSeparateProcesses(t *testing.T) {
	needDocker(t)
	sys := newSystem(t)
	f := append(sys.flags(), "--log-level", "debug")
	start(t, "rswarm jobmanager", append([]string{"jobmanager"}, f...)...)
	start(t, "rswarm discovery", append([]string{"discovery"}, f...)...)
	start(t, "rswarm globalmanager", append([]string{"globalmanager"}, f...)...)
	start(t, "rswarm frontend", append([]string{"frontend"}, f...)...)
	start(t, "rswarm worker", append([]string{"worker", "--probe-checkpoint=false", "--transfer-addr", "127.0.0.1:0"}, f...)...)
	c := sys.client()
	waitWorkers(t, c, 1)
	j := apitest.Job(fmt.Sprintf("e2eproc%d", time.Now().UnixNano()), 2, 1, "sleep 1")
	submitOriginal(t, sys, j)
	done := waitJob(t, c, j.Name, 90*time.Second, final)
	if done.Status != api.Down || done.EndTime <= done.StartTime {
		t.Fatalf("job %s (%s), start %.3f end %.3f", done.Status, done.Error, done.StartTime, done.EndTime)
	}
	allFree(t, c)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mutate marshals j to a generic map, lets fn change it and returns the JSON.
func mutate(j *api.Job, fn func(map[string]any)) string {
	b, _ := json.Marshal(j)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if fn != nil {
		fn(m)
	}
	b, _ = json.Marshal(m)
	return string(b)
}

// task returns the first task of a job map.
func task(m map[string]any) map[string]any {
	for _, t := range m["job_info"].(map[string]any)["tasks"].(map[string]any) {
		return t.(map[string]any)
	}
	return nil
}

// setStrategy switches the jobmanager's strategy through the API.
func setStrategy(t testing.TB, sys *system, name string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+sys.fe+"/api/v1/scheduler", strings.NewReader(fmt.Sprintf(`{"name":%q}`, name)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("switch to %s: status %d", name, resp.StatusCode)
	}
}

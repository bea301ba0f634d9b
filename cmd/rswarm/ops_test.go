package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// These tests run `rswarm up` with simulated workers: the same control
// plane, protocols and store as with Docker, on two simulated hosts.

func startSim(t *testing.T, workers, cores int, extra ...string) (*system, []*api.Worker) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test (skipped by -short)")
	}
	sys := newSystem(t)
	args := append([]string{"up", "--runtime", "sim", "--workers", fmt.Sprint(workers), "--cores", fmt.Sprint(cores)}, sys.flags()...)
	start(t, "rswarm up --runtime sim", append(args, extra...)...)
	return sys, waitWorkers(t, sys.client(), workers)
}

// gm calls the globalmanager and decodes its JSON answer; it returns the status code.
func gm(t *testing.T, sys *system, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+sys.gm+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func running(j *api.Job) error {
	if j.Status != api.Running {
		return fmt.Errorf("job %s is %s", j.Name, j.Status)
	}
	for _, t := range j.Info.Tasks {
		if t.Status != api.Running {
			return fmt.Errorf("task %s is %s", t.ContainerName, t.Status)
		}
	}
	return nil
}

func busyOn(t *testing.T, c *api.Client, node string) map[string]string {
	t.Helper()
	ws, err := c.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.ID == node {
			return w.CoreTasks
		}
	}
	t.Fatalf("no worker %s", node)
	return nil
}

func TestEventsStreamDeliversTransitionsInOrder(t *testing.T) {
	sys, _ := startSim(t, 1, 4, "--time-scale", "0.2")
	c := sys.client()
	j := apitest.Job(fmt.Sprintf("ev%d", time.Now().UnixNano()), 2, 1, "sleep 1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+sys.fe+"/api/v1/events?job="+j.Name, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: status %d, content type %q", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	// The stream is open (its first comment line arrived) before the job is submitted.
	if !sc.Scan() {
		t.Fatal("events stream closed at once")
	}
	if err := c.SubmitJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	var types []string
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var e struct {
			Type, Job, Task, State string
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e); err != nil {
			t.Fatalf("bad event %q: %v", line, err)
		}
		if e.Job != j.Name {
			t.Fatalf("event for job %q on a stream filtered to %s", e.Job, j.Name)
		}
		types = append(types, e.Type)
		if e.Type == "job.finished" {
			break
		}
	}
	want := []string{"job.accepted", "job.placed", "job.deployed", "job.running", "task.running", "task.running", "task.ended", "task.ended", "job.finished"}
	if strings.Join(types, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v\nwant   %v", types, want)
	}
}

func TestClusterOperations(t *testing.T) {
	sys, ws := startSim(t, 2, 4)
	c := sys.client()
	a, b := ws[0].ID, ws[1].ID
	ctx := context.Background()

	t.Run("strategy switch", func(t *testing.T) {
		var eb api.ErrorBody
		if code := getJSON(t, "http://"+sys.fe+"/RESTfulSwarm/FE/switch_scheduler/worst-fit", &eb); code != 400 || !strings.Contains(eb.Error.Message, "first-fit") {
			t.Fatalf("unknown strategy: %d %q, want 400 listing the valid ones", code, eb.Error.Message)
		}
		resp, err := http.Get("http://" + sys.fe + "/RESTfulSwarm/FE/switch_scheduler/first-fit")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("switch: %v %v", resp, err)
		}
		resp.Body.Close()
		var info api.StrategyInfo
		if getJSON(t, "http://"+sys.fe+"/api/v1/scheduler", &info); info.Name != "first-fit" || len(info.Strategies) < 6 {
			t.Fatalf("scheduler after switch: %+v", info)
		}
	})

	// A long job to move around: first fit puts both tasks on the first worker.
	j := apitest.Job(fmt.Sprintf("ops%d", time.Now().UnixNano()), 2, 1, "sleep 600")
	if err := c.SubmitJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	j = waitJob(t, c, j.Name, 30*time.Second, running)
	t1 := j.Info.Tasks[0]
	src, dst := t1.Node, b
	if src == b {
		dst = a
	}

	t.Run("migrate a task cold to the other worker", func(t *testing.T) {
		var res struct {
			To, Mode, Note string
			Error          api.ErrorDetail
		}
		body := fmt.Sprintf(`{"job":%q,"container":%q,"from":%q,"to":%q}`, j.Name, t1.ContainerName, src, dst)
		if code := gm(t, sys, "POST", "/RESTfulSwarm/GM/request_migrate", body, &res); code != 200 {
			t.Fatalf("migrate: %d %+v", code, res)
		}
		moved := waitJob(t, c, j.Name, 30*time.Second, func(j *api.Job) error {
			tk := j.Info.Tasks.Get(t1.ContainerName)
			if tk.Node != dst || tk.Status != api.Running {
				return fmt.Errorf("task on %s, %s", tk.Node, tk.Status)
			}
			return nil
		})
		cores := moved.Info.Tasks.Get(t1.ContainerName).CpusetCpus
		if busy := busyOn(t, c, dst); busy[cores] != t1.ContainerName {
			t.Fatalf("destination cores %v, want core %s held by %s", busy, cores, t1.ContainerName)
		}
		for core, task := range busyOn(t, c, src) {
			if task == t1.ContainerName {
				t.Fatalf("source still holds core %s for the moved task", core)
			}
		}
		var eb api.ErrorBody
		body = fmt.Sprintf(`{"job":%q,"container":%q,"from":%q,"to":%q}`, j.Name, t1.ContainerName, src, dst)
		if code := gm(t, sys, "POST", "/RESTfulSwarm/GM/request_migrate", body, &eb); code != 409 || eb.Error.Field != "from" {
			t.Fatalf("migrating from the wrong node: %d %+v, want 409 on from", code, eb)
		}
	})

	t.Run("update a running task's cores in place", func(t *testing.T) {
		body := fmt.Sprintf(`{"job":%q,"node":"","container_name":%q,"cpuset_cpus":"2,3","mem_limit":"32m"}`, j.Name, t1.ContainerName)
		var tk api.Task
		if code := gm(t, sys, "POST", "/RESTfulSwarm/GM/request_update_container", body, &tk); code != 200 || tk.CpusetCpus != "2,3" || tk.ReqCores != 2 {
			t.Fatalf("update: %d %+v", code, tk)
		}
		busy := busyOn(t, c, dst)
		if busy["2"] != t1.ContainerName || busy["3"] != t1.ContainerName || len(busy) != 2 {
			t.Fatalf("cores after update: %v", busy)
		}
	})

	t.Run("checkpoints that cannot work say why", func(t *testing.T) {
		var eb api.ErrorBody
		body := fmt.Sprintf(`[{"node":%q,"containers":[%q]}]`, dst, t1.ContainerName)
		if code := gm(t, sys, "POST", "/RESTfulSwarm/GM/checkpoint_cons", body, &eb); code != 422 || !strings.Contains(eb.Error.Message, "cannot checkpoint") {
			t.Fatalf("checkpoint: %d %q", code, eb.Error.Message)
		}
		if code := gm(t, sys, "POST", "/RESTfulSwarm/GM/checkpoint_cons", `[{"node":"nowhere","containers":["x"]}]`, &eb); code != 404 || eb.Error.Field != "[0].node" {
			t.Fatalf("checkpoint on an unknown node: %d %+v", code, eb)
		}
	})

	t.Run("a single task through request_new_task", func(t *testing.T) {
		name := fmt.Sprintf("single%d", time.Now().UnixNano())
		body := fmt.Sprintf(`{"container_name":"%s_t","node":"","image":"rswarm/busybox:latest","detach":true,"command":"sleep 1","req_cores":1,"cpuset_cpus":"","mem_limit":"10m","ports":{},"volumes":{},"environment":{},"network":"rsnet_single"}`, name)
		var out map[string]string
		if code := gm(t, sys, "POST", "/RESTfulSwarm/GM/request_new_task", body, &out); code != 200 || out["job_name"] != name {
			t.Fatalf("new task: %d %v", code, out)
		}
		if done := waitJob(t, c, name, 30*time.Second, final); done.Status != api.Down {
			t.Fatalf("single task ended %s", done.Status)
		}
	})

	t.Run("cancel frees the cores before it answers", func(t *testing.T) {
		if err := c.CancelJob(ctx, j.Name); err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{a, b} {
			if busy := busyOn(t, c, w); len(busy) != 0 {
				t.Fatalf("worker %s still has %v after the cancel answered", w, busy)
			}
		}
		got, err := c.Job(ctx, j.Name)
		if err != nil || got.Status != api.Cancelled {
			t.Fatalf("cancelled job: %v %v", got.Status, err)
		}
		// Deleting an ended job removes its record.
		if err := c.CancelJob(ctx, j.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Job(ctx, j.Name); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("deleted job still there: %v", err)
		}
	})

	t.Run("leave fails the worker's tasks and takes it out", func(t *testing.T) {
		l := apitest.Job(fmt.Sprintf("leave%d", time.Now().UnixNano()), 1, 1, "sleep 600")
		if err := c.SubmitJob(ctx, l); err != nil {
			t.Fatal(err)
		}
		l = waitJob(t, c, l.Name, 30*time.Second, running)
		node := l.Info.Tasks[0].Node
		var w api.Worker
		if code := gm(t, sys, "POST", "/RESTfulSwarm/GM/request_leave", fmt.Sprintf(`{"hostname":%q}`, node), &w); code != 200 || w.Status != api.WorkerLeft {
			t.Fatalf("leave: %d %+v", code, w)
		}
		done := waitJob(t, c, l.Name, 30*time.Second, final)
		if done.Status != api.Failed || !strings.Contains(done.Error, "left") {
			t.Fatalf("job on the leaving worker: %s %q", done.Status, done.Error)
		}
		var eb api.ErrorBody
		if code := gm(t, sys, "POST", "/RESTfulSwarm/GM/request_leave", `{"hostname":"nowhere"}`, &eb); code != 404 {
			t.Fatalf("leave of an unknown node: %d %+v", code, eb)
		}
	})
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

func TestSwitchingStrategyKeepsWaitingJobsInOrder(t *testing.T) {
	sys, _ := startSim(t, 1, 2, "--time-scale", "0.1")
	c := sys.client()
	ctx := context.Background()
	blocker := apitest.Job(fmt.Sprintf("blk%d", time.Now().UnixNano()), 1, 2, "sleep 600")
	if err := c.SubmitJob(ctx, blocker); err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, blocker.Name, 30*time.Second, running)
	var names []string
	for i := 0; i < 4; i++ {
		j := apitest.Job(fmt.Sprintf("wait%d-%d", time.Now().UnixNano(), i), 1, 2, "sleep 1")
		if err := c.SubmitJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		names = append(names, j.Name)
	}
	for _, s := range []string{"first-fit", "best-fit-decreasing", "priority", "best-fit"} {
		setStrategy(t, sys, s)
	}
	if err := c.CancelJob(ctx, blocker.Name); err != nil {
		t.Fatal(err)
	}
	prev := 0.0
	for _, n := range names {
		j := waitJob(t, c, n, 60*time.Second, final)
		if j.Status != api.Down {
			t.Fatalf("job %s ended %s", n, j.Status)
		}
		if j.StartTime < prev {
			t.Fatalf("job %s started at %.3f, before the job ahead of it (%.3f)", n, j.StartTime, prev)
		}
		prev = j.StartTime
	}
}

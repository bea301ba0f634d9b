package jobmanager_test

import (
	"context"
	"testing"

	"github.com/rswarm/rswarm/api"
)

// loseWorker fails every live task of job on node as discovery does when
// the node goes silent, then tells the jobmanager.
func (h *harness) loseWorker(job, node string) {
	h.t.Helper()
	var refs []api.TaskRef
	j, err := h.st.UpdateJob(h.t.Context(), job, func(j *api.Job) error {
		refs = nil
		for _, t := range j.Info.Tasks {
			if t.Node == node && !t.Status.Final() {
				_, err := j.ApplyStatus(api.TaskStatus{Node: node, Job: job, Task: t.ContainerName, State: api.Failed, Attempt: j.Restarts,
					Error: api.WorkerLost + ": " + node + " sent no heartbeat for 3s", Time: now()})
				if err != nil {
					return err
				}
				refs = append(refs, api.TaskRef{Job: job, Task: t.ContainerName, Node: node, State: api.Failed})
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatalf("losing %s's tasks: %v", job, err)
	}
	for i := range refs {
		refs[i].JobEnded = j.Status.Final()
	}
	if err := h.m.TasksDone(h.t.Context(), refs); err != nil {
		h.t.Fatalf("TasksDone: %v", err)
	}
}

// A job whose worker was lost is restarted by its policy (default: on
// failure, once), placed on a live worker, and Failed for good the next
// time; with "never" it stays Failed at once.
func TestRestartPolicyAfterWorkerLoss(t *testing.T) {
	tests := []struct {
		name     string
		policy   string
		restarts int // how many losses are followed by a restart
	}{
		{"default: once", "", 1},
		{"on-failure:2", "on-failure:2", 2},
		{"never", "never", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 2}, workerSpec{"w2", 2}, workerSpec{"w3", 2})
			h.run(noResync, nil)
			h.submit("a", 1, 2)
			if _, err := h.st.UpdateJob(t.Context(), "a", func(j *api.Job) error { j.Restart = tt.policy; return nil }); err != nil {
				t.Fatal(err)
			}
			if err := h.m.JobSubmitted(t.Context(), "a"); err != nil {
				t.Fatal(err)
			}
			// Best fit ties go to the earliest joined worker that is up;
			// each lost worker is marked down (by discovery) before its
			// tasks are failed.
			nodes := []string{"w1", "w2", "w3"}
			for i := 0; i <= tt.restarts; i++ {
				node := nodes[i]
				j := h.waitDeployed("a", map[string]string{"a_task1": node + "/0,1"})
				if j.Restarts != i {
					t.Fatalf("deployment %d: restarts = %d", i+1, j.Restarts)
				}
				h.setWorkerStatus(node, api.WorkerDown)
				h.loseWorker("a", node)
			}
			// The last loss is final.
			a := h.waitJob("a", isStatus(api.Failed))
			if a.Restarts != tt.restarts {
				t.Errorf("restarts = %d, want %d", a.Restarts, tt.restarts)
			}
			h.stop()
			if st := h.m.Stats(); st.Restarts != uint64(tt.restarts) {
				t.Errorf("stats restarts = %d, want %d", st.Restarts, tt.restarts)
			}
			if n := len(h.d.calls()); n != tt.restarts+1 {
				t.Errorf("%d deployments, want %d", n, tt.restarts+1)
			}
		})
	}
}

// A job that failed by itself (a non-zero exit) is not restarted.
func TestOwnFailureIsNotRestarted(t *testing.T) {
	h := setup(t, workerSpec{"w1", 2})
	h.run(nil, func(ctx context.Context, j *api.Job) error {
		return markDeployed(context.WithoutCancel(ctx), h.st, j.Name)
	})
	h.submitNotify("a", 1, 2)
	h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
	h.finish("a", []taskState{{"a_task1", api.Failed}}, "a_task1")
	h.waitResyncs(2)
	a := h.job("a")
	if a.Status != api.Failed || a.Restarts != 0 {
		t.Fatalf("a is %v after %d restarts; want Failed, not restarted", a.Status, a.Restarts)
	}
	if n := len(h.d.calls()); n != 1 {
		t.Errorf("%d deployments, want 1", n)
	}
}

// A job that lost its worker while the jobmanager was down is restarted
// when it starts: it is not live, so the first pass finds it among the
// recent writes.
func TestRestartOfAJobThatFailedWhileDown(t *testing.T) {
	h := setup(t, workerSpec{"w1", 2}, workerSpec{"w2", 2})
	h.submit("a", 1, 2)
	_, err := h.st.UpdateJob(t.Context(), "a", func(j *api.Job) error {
		tk := j.Info.Tasks[0]
		tk.Node, tk.CpusetCpus, tk.Status = "w1", "0,1", api.Running
		j.Refresh(now())
		_, err := j.ApplyStatus(api.TaskStatus{Node: "w1", Task: tk.ContainerName, State: api.Failed, Error: api.WorkerLost + ": w1 sent no heartbeat for 3s", Time: now()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := h.job("a"); a.Status != api.Failed {
		t.Fatalf("setup: a is %v, want Failed", a.Status)
	}
	h.setWorkerStatusNoNotify("w1", api.WorkerDown)
	h.run(noResync, nil)
	a := h.waitDeployed("a", map[string]string{"a_task1": "w2/0,1"})
	if a.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", a.Restarts)
	}
}

func (h *harness) setWorkerStatusNoNotify(id string, s api.WorkerStatus) {
	h.t.Helper()
	if _, err := h.st.UpdateWorker(h.t.Context(), id, func(w *api.Worker) error { w.Status = s; return nil }); err != nil {
		h.t.Fatalf("UpdateWorker(%s): %v", id, err)
	}
}

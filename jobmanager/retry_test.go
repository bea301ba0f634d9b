package jobmanager_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/jobmanager"
)

// Found item 2 of issue 10: a globalmanager outage emptied the queue into
// Failed, because any deployment error failed its job. A deployment that
// delivered nothing for sure is now sent again, with the same placement and
// the cores held meanwhile; a job whose worker went away is placed again.
func TestDeployRetriedWhileNothingDelivered(t *testing.T) {
	tests := []struct {
		name  string
		fails int
		err   func(ctx context.Context) error
	}{
		{"connection refused", 3, func(context.Context) error {
			return fmt.Errorf("POST /RESTfulSwarm/GM/request_new_job: %w: dial tcp: connection refused", api.ErrUnavailable)
		}},
		{"503 from the globalmanager (a worker not connected)", 2, func(context.Context) error {
			return &api.StatusError{Status: 503, Detail: api.ErrorDetail{Message: "worker w1 did not accept task a_task1"}}
		}},
		{"the reply lost (EOF, an internal error)", 2, func(context.Context) error {
			return &api.StatusError{Status: 500, Detail: api.ErrorDetail{Message: io.ErrUnexpectedEOF.Error()}}
		}},
		{"no answer before the dispatch timeout", 2, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t, workerSpec{"w1", 2})
			var mu sync.Mutex
			calls := 0
			h.run(func(c *jobmanager.Config) { noResync(c); c.DispatchTimeout = 100 * time.Millisecond }, func(ctx context.Context, j *api.Job) error {
				mu.Lock()
				calls++
				n := calls
				mu.Unlock()
				if j.Name == "a" && n <= tt.fails {
					return tt.err(ctx)
				}
				return markDeployed(context.WithoutCancel(ctx), h.st, j.Name)
			})
			h.submitNotify("a", 1, 2)
			h.waitDeployed("a", map[string]string{"a_task1": "w1/0,1"})
			got := h.d.calls()
			if len(got) != tt.fails+1 {
				t.Fatalf("Deploy called %d times, want %d (%d failures, then success)", len(got), tt.fails+1, tt.fails)
			}
			// Each attempt found the job still placed, same cores, never failed.
			for i, c := range got {
				if c.stored.Status != api.Ready || c.stored.Info.Tasks[0].Status != api.Scheduled || c.stored.Info.Tasks[0].CpusetCpus != "0,1" {
					t.Errorf("attempt %d: stored job %v, task %v on %q; want Ready, Scheduled on 0,1",
						i+1, c.stored.Status, c.stored.Info.Tasks[0].Status, c.stored.Info.Tasks[0].CpusetCpus)
				}
			}
			h.waitWorker("w1", map[int]string{0: "a_task1", 1: "a_task1"})
			if st := h.m.Stats(); st.DeployRetries != uint64(tt.fails) {
				t.Errorf("DeployRetries = %d, want %d", st.DeployRetries, tt.fails)
			}
		})
	}
}

// While a job's deployment is being retried it holds its cores: a job
// that needs them waits, and gets them once the first is cancelled.
func TestRetriedDeployHoldsCoresUntilCancelled(t *testing.T) {
	h := setup(t, workerSpec{"w1", 2})
	h.run(noResync, func(ctx context.Context, j *api.Job) error {
		if j.Name == "a" {
			return fmt.Errorf("globalmanager down: %w", api.ErrUnavailable)
		}
		return markDeployed(context.WithoutCancel(ctx), h.st, j.Name)
	})
	h.submitNotify("a", 1, 2)
	apitest.Eventually(t, wait, func() error {
		if n := len(h.d.calls()); n < 2 {
			return fmt.Errorf("%d deploy attempts so far", n)
		}
		return nil
	})
	h.submitNotify("b", 1, 2)
	h.waitWaiting("b")
	if a := h.job("a"); a.Status != api.Ready || a.Info.Tasks[0].Status != api.Scheduled {
		t.Fatalf("a is %v, task %v; want Ready and Scheduled while retried", a.Status, a.Info.Tasks[0].Status)
	}
	h.cancel("a")
	h.waitDeployed("b", map[string]string{"b_task1": "w1/0,1"})
	// A pending retry finds a cancelled job and sends nothing.
	h.stop()
	for _, c := range h.d.calls() {
		if c.job.Name == "a" && c.stored.Status == api.Cancelled {
			t.Errorf("a sent again after its cancellation")
		}
	}
}

// A job whose deployment keeps failing and whose worker is then marked
// down is placed again on a live worker.
func TestRetriedDeployPlacedAgainWhenItsWorkerIsDown(t *testing.T) {
	h := setup(t, workerSpec{"w1", 2}, workerSpec{"w2", 2})
	h.run(noResync, func(ctx context.Context, j *api.Job) error {
		if j.Info.Tasks[0].Node == "w1" {
			return fmt.Errorf("worker w1 not connected: %w", api.ErrUnavailable)
		}
		return markDeployed(context.WithoutCancel(ctx), h.st, j.Name)
	})
	h.submitNotify("a", 1, 2) // best fit, ties by join time: w1
	apitest.Eventually(t, wait, func() error {
		if n := len(h.d.calls()); n < 2 {
			return fmt.Errorf("%d deploy attempts so far", n)
		}
		return nil
	})
	h.setWorkerStatus("w1", api.WorkerDown)
	h.waitDeployed("a", map[string]string{"a_task1": "w2/0,1"})
	h.waitWorker("w1", map[int]string{})
}

// A deployment that reached one worker and not the other: the job runs in
// part, and the retry delivers the rest.
func TestPartialDeployCompletedByTheRetry(t *testing.T) {
	h := setup(t, workerSpec{"w1", 1}, workerSpec{"w2", 1})
	var mu sync.Mutex
	calls := 0
	h.run(noResync, func(ctx context.Context, j *api.Job) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			// a_task1 reached its worker and runs; a_task2's worker did not answer.
			_, err := h.st.UpdateJob(context.WithoutCancel(ctx), j.Name, func(sj *api.Job) error {
				tk := sj.Info.Tasks[0]
				_, err := sj.ApplyStatus(api.TaskStatus{Node: tk.Node, Task: tk.ContainerName, State: api.Running, Time: now()})
				return err
			})
			if err != nil {
				return err
			}
			return fmt.Errorf("worker did not accept a_task2: %w", api.ErrUnavailable)
		}
		return markDeployed(context.WithoutCancel(ctx), h.st, j.Name)
	})
	h.submitNotify("a", 2, 1)
	h.waitJob("a", func(j *api.Job) error {
		if j.Status != api.Running || j.Info.Tasks[1].Status != api.Deployed {
			return fmt.Errorf("a is %v, a_task2 %v; want Running with a_task2 Deployed", j.Status, j.Info.Tasks[1].Status)
		}
		return nil
	})
	if n := len(h.d.calls()); n != 2 {
		t.Errorf("%d deployments, want 2", n)
	}
}

package engine_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/engine"
)

// A task's container carries its attempt and cores, and Held lists it, so
// that a worker restarted while it runs adopts it.
func TestRuntimeHeldListsRunningTasks(t *testing.T) {
	c := newClient(t)
	ctx := ctxFor(t, 60*time.Second)
	r := engine.NewRuntime(c, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	job := unique(t)
	task := job + "_t1"
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Remove(cctx, task, true); err != nil {
			t.Errorf("cleanup: remove %s: %v", task, err)
		}
	})
	cluster := unique(t)
	rt := api.RunTask{Job: job, Attempt: 2, Cluster: cluster, Task: api.Task{ContainerName: task, Image: testImage, Command: "sleep 3600", ReqCores: 1, CpusetCpus: "0", MemLimit: "16m"}}
	if err := r.Run(ctx, rt); err != nil {
		t.Fatalf("Run: %v", err)
	}
	held, err := r.Held(ctx, cluster)
	if err != nil {
		t.Fatalf("Held: %v", err)
	}
	if other, err := r.Held(ctx, "another-cluster"); err != nil || len(other) != 0 {
		t.Errorf("Held(another cluster) = %+v, %v; want nothing", other, err)
	}
	var got *api.HeldTask
	for i := range held {
		if held[i].Task == task {
			got = &held[i]
		}
	}
	if want := (api.HeldTask{Job: job, Task: task, Attempt: 2, Cores: 1}); got == nil || *got != want {
		t.Fatalf("Held has %+v for %s, want %+v", got, task, want)
	}
	if err := r.Stop(ctx, task, 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	held, err = r.Held(ctx, cluster)
	if err != nil {
		t.Fatalf("Held: %v", err)
	}
	for _, h := range held {
		if h.Task == task {
			t.Errorf("Held still lists %s after its stop", task)
		}
	}
}

package engine_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/engine"
)

// Run takes a task's name back from a leftover container of the same task
// (an earlier attempt, created and never started), and never from a
// container that is not the task's.
func TestRuntimeRunReplacesOnlyItsLeftover(t *testing.T) {
	c := newClient(t)
	ctx := ctxFor(t, 60*time.Second)
	r := engine.NewRuntime(c, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	job := unique(t)
	mine, foreign := job+"_t1", job+"_t2"
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Remove(cctx, mine, true)
		_ = c.Remove(cctx, foreign, true)
	})
	task := func(name string) api.RunTask {
		return api.RunTask{Job: job, Task: api.Task{ContainerName: name, Image: testImage, Command: "sleep 3600", ReqCores: 1, CpusetCpus: "0", MemLimit: "16m"}}
	}
	old, err := c.Create(ctx, engine.RunSpec{Name: mine, Image: testImage, Cmd: []string{"true"},
		Labels: map[string]string{api.LabelManaged: "1", api.LabelJob: job, api.LabelTask: mine}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx, task(mine)); err != nil {
		t.Fatalf("Run over a leftover of the task: %v", err)
	}
	if in, err := c.Inspect(ctx, mine); err != nil || in.ID == old || !in.Running {
		t.Errorf("after Run: %s is %+v (%v), want a new, running container (the leftover was %s)", mine, in, err, old)
	}

	other, err := c.Create(ctx, engine.RunSpec{Name: foreign, Image: testImage, Cmd: []string{"true"}, Labels: map[string]string{"someone": "else"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx, task(foreign)); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("Run over another's container named %s: %v, want ErrConflict", foreign, err)
	}
	if in, err := c.Inspect(ctx, foreign); err != nil || in.ID != other {
		t.Errorf("the other container %s: %+v (%v), want it untouched", foreign, in, err)
	}
}

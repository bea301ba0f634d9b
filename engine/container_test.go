package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/engine"
)

func TestContainerLifecycle(t *testing.T) {
	c := newClient(t)
	labels := testRun(t, c)
	ctx := ctxFor(t, 60*time.Second)

	name, id := run(t, c, labels, engine.RunSpec{
		Cmd:        []string{"sleep", "3600"},
		Env:        map[string]string{"RSWARM_X": "1"},
		CpusetCpus: "0",
		Memory:     16 << 20,
	})

	ct, err := c.Inspect(ctx, name)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if ct.ID != id || ct.Name != name || ct.Image != testImage {
		t.Errorf("inspect identity = %q %q %q, want %q %q %q", ct.ID, ct.Name, ct.Image, id, name, testImage)
	}
	if !ct.Running || ct.Status != "running" || ct.StartedAt.IsZero() {
		t.Errorf("inspect state = running %t, status %q, started %v; want a running container", ct.Running, ct.Status, ct.StartedAt)
	}
	if ct.CpusetCpus != "0" || ct.Memory != 16<<20 {
		t.Errorf("inspect resources = cpuset %q, memory %d; want \"0\", %d", ct.CpusetCpus, ct.Memory, 16<<20)
	}
	if ct.Labels[labelRun] != labels[labelRun] {
		t.Errorf("inspect labels = %v, want %v", ct.Labels, labels)
	}

	list, err := c.Containers(ctx, map[string]string{labelRun: labels[labelRun]}, false)
	if err != nil {
		t.Fatalf("containers: %v", err)
	}
	if len(list) != 1 || list[0].ID != id || list[0].Name != name || !list[0].Running {
		t.Errorf("containers = %+v, want only the running %s", list, name)
	}
	// A key with an empty value matches any value.
	list, err = c.Containers(ctx, map[string]string{labelRun: labels[labelRun], labelTest: ""}, false)
	if err != nil || len(list) != 1 {
		t.Errorf("containers by key = %d, %v; want 1", len(list), err)
	}

	if err := c.Update(ctx, id, "0", 32<<20); err != nil {
		t.Fatalf("update: %v", err)
	}
	if ct, err = c.Inspect(ctx, id); err != nil || ct.Memory != 32<<20 {
		t.Errorf("after update memory = %d, %v; want %d", ct.Memory, err, 32<<20)
	}

	if err := c.Stop(ctx, id, time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	ct, err = c.Inspect(ctx, id)
	if err != nil || ct.Running || ct.FinishedAt.IsZero() {
		t.Errorf("after stop = running %t, finished %v, %v; want stopped", ct.Running, ct.FinishedAt, err)
	}
	if list, err = c.Containers(ctx, map[string]string{labelRun: labels[labelRun]}, false); err != nil || len(list) != 0 {
		t.Errorf("running containers after stop = %+v, %v; want none", list, err)
	}
	if list, err = c.Containers(ctx, map[string]string{labelRun: labels[labelRun]}, true); err != nil || len(list) != 1 {
		t.Errorf("all containers after stop = %+v, %v; want one", list, err)
	}

	if err := c.Remove(ctx, id, false); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := c.Inspect(ctx, id); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("inspect after remove = %v, want ErrNotFound", err)
	}
}

func TestErrors(t *testing.T) {
	c := newClient(t)
	labels := testRun(t, c)
	taken, _ := run(t, c, labels, engine.RunSpec{Cmd: []string{"sleep", "3600"}})
	missing := unique(t)

	tests := []struct {
		name    string
		call    func(ctx context.Context) error
		want    error
		mention string
	}{
		{"create with a missing image", func(ctx context.Context) error {
			_, err := c.Create(ctx, engine.RunSpec{Name: unique(t), Image: "rswarm/nope:latest", Labels: labels})
			return err
		}, engine.ErrImageNotFound, "rswarm/nope:latest"},
		{"create with a taken name", func(ctx context.Context) error {
			_, err := c.Create(ctx, engine.RunSpec{Name: taken, Image: testImage, Labels: labels})
			return err
		}, engine.ErrConflict, taken},
		{"inspect unknown", func(ctx context.Context) error { _, err := c.Inspect(ctx, missing); return err }, engine.ErrNotFound, missing},
		{"start unknown", func(ctx context.Context) error { return c.Start(ctx, missing) }, engine.ErrNotFound, missing},
		{"stop unknown", func(ctx context.Context) error { return c.Stop(ctx, missing, time.Second) }, engine.ErrNotFound, missing},
		{"remove unknown", func(ctx context.Context) error { return c.Remove(ctx, missing, true) }, engine.ErrNotFound, missing},
		{"logs of unknown", func(ctx context.Context) error { _, err := c.Logs(ctx, missing, 1); return err }, engine.ErrNotFound, missing},
		{"update unknown", func(ctx context.Context) error { return c.Update(ctx, missing, "0", 0) }, engine.ErrNotFound, missing},
		{"remove unknown network", func(ctx context.Context) error { return c.RemoveNetwork(ctx, missing) }, engine.ErrNotFound, missing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(ctxFor(t, 30*time.Second))
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not name %q", err, tc.mention)
			}
		})
	}
}

func TestExitCodeInEventAndInspect(t *testing.T) {
	c := newClient(t)
	labels := testRun(t, c)
	ctx := ctxFor(t, 60*time.Second)

	events, errs := c.Events(ctx, map[string]string{labelRun: labels[labelRun]})
	name, id := run(t, c, labels, engine.RunSpec{Cmd: []string{"sh", "-c", "exit 3"}})

	var seen []string
	for die := false; !die; {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("event stream ended after %v: %v", seen, <-errs)
			}
			if e.ID != id {
				t.Fatalf("event %+v is not about %s", e, id)
			}
			seen = append(seen, e.Action)
			if e.Action == engine.ActionDie {
				die = true
				if e.ExitCode != 3 || e.Name != name || e.Labels[labelRun] != labels[labelRun] || e.Time.IsZero() {
					t.Errorf("die event = %+v, want exit code 3, name %s and the test labels", e, name)
				}
			}
		case <-ctx.Done():
			t.Fatalf("no die event; saw %v", seen)
		}
	}
	if !slices.Equal(seen, []string{engine.ActionStart, engine.ActionDie}) {
		t.Errorf("events = %v, want [start die]", seen)
	}

	ct := waitExited(t, c, id)
	if ct.ExitCode != 3 || ct.OOMKilled {
		t.Errorf("inspect exit code = %d (oom %t), want 3", ct.ExitCode, ct.OOMKilled)
	}
	list, err := c.Containers(ctx, map[string]string{labelRun: labels[labelRun]}, true)
	if err != nil || len(list) != 1 || list[0].ExitCode != 3 {
		t.Errorf("containers = %+v, %v; want one with exit code 3", list, err)
	}

	if err := c.Remove(ctx, id, false); err != nil {
		t.Fatalf("remove: %v", err)
	}
	select {
	case e := <-events:
		if e.Action != engine.ActionDestroy || e.ID != id {
			t.Errorf("event after remove = %+v, want destroy of %s", e, id)
		}
	case <-ctx.Done():
		t.Fatal("no destroy event")
	}
}

func TestEventsEndWithContext(t *testing.T) {
	c := newClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	events, errs := c.Events(ctx, map[string]string{labelRun: unique(t)})
	cancel()
	for range events {
	}
	if err, ok := <-errs; ok {
		t.Errorf("error after cancel = %v, want the channel closed without one", err)
	}
}

func TestLogs(t *testing.T) {
	c := newClient(t)
	labels := testRun(t, c)

	tests := []struct {
		name string
		cmd  string
		tail int
		want []string
	}{
		{"tail 2", "echo a; echo b; echo c", 2, []string{"b", "c"}},
		{"all", "echo a; echo b; echo c", 0, []string{"a", "b", "c"}},
		{"more than there is", "echo a", 5, []string{"a"}},
		{"stderr", "echo oops >&2", 1, []string{"oops"}},
		{"nothing", "true", 3, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, id := run(t, c, labels, engine.RunSpec{Cmd: []string{"sh", "-c", tc.cmd}})
			waitExited(t, c, id)
			got, err := c.Logs(ctxFor(t, 30*time.Second), id, tc.tail)
			if err != nil {
				t.Fatalf("logs: %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("logs = %q, want %q", got, tc.want)
			}
		})
	}
}

package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/rswarm/rswarm/engine"
)

// BenchmarkCreateStart times Create+Start of a busybox container running
// `true` (removal is outside the timer).
func BenchmarkCreateStart(b *testing.B) {
	c := newClient(b)
	labels := testRun(b, c)
	ctx := context.Background()
	for b.Loop() {
		id, err := c.Create(ctx, engine.RunSpec{Name: unique(b), Image: testImage, Cmd: []string{"true"}, Labels: labels, StopTimeout: 1})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.Remove(ctx, id, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkRunRemove times what `docker run --rm image true` does: create,
// start, wait for the exit (its die event), remove.
func BenchmarkRunRemove(b *testing.B) {
	c := newClient(b)
	labels := testRun(b, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, errs := c.Events(ctx, map[string]string{labelRun: labels[labelRun]})
	for b.Loop() {
		id, err := c.Create(ctx, engine.RunSpec{Name: unique(b), Image: testImage, Cmd: []string{"true"}, Labels: labels, StopTimeout: 1})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx, id); err != nil {
			b.Fatal(err)
		}
		for died := false; !died; {
			select {
			case e := <-events:
				died = e.ID == id && e.Action == engine.ActionDie
			case err := <-errs:
				b.Fatalf("event stream: %v", err)
			case <-time.After(30 * time.Second):
				b.Fatal("no die event")
			}
		}
		if err := c.Remove(ctx, id, false); err != nil {
			b.Fatal(err)
		}
	}
}

package engine_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rswarm/rswarm/engine"
)

func TestCheckpoint(t *testing.T) {
	c := newClient(t)
	labels := testRun(t, c)
	ctx := ctxFor(t, 120*time.Second)

	ok, reason := c.CheckpointSupport(ctx, testImage)
	t.Logf("checkpoint support: ok=%t reason=%q", ok, reason)
	if !ok && reason == "" {
		t.Fatal("checkpoints unsupported without a reason")
	}
	if ok2, reason2 := c.CheckpointSupport(ctx, testImage); ok2 != ok || reason2 != reason {
		t.Errorf("second call = %t %q, want the cached %t %q", ok2, reason2, ok, reason)
	}

	_, id := run(t, c, labels, engine.RunSpec{Cmd: []string{"sleep", "3600"}, Network: "none"})
	err := c.Checkpoint(ctx, id, "cp1", "", false)
	if !ok {
		if !errors.Is(err, engine.ErrCheckpointUnsupported) {
			t.Errorf("checkpoint where unsupported = %v, want ErrCheckpointUnsupported", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	waitExited(t, c, id)
	if err := c.StartFromCheckpoint(ctx, id, "cp1", ""); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if ct, err := c.Inspect(ctx, id); err != nil || !ct.Running {
		t.Errorf("after restore = %+v, %v; want running", ct, err)
	}
}

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
	// Twice: the second restore of the same small process is the one
	// Docker 20.10 fails without a unique file in the checkpoint (see
	// StartFromCheckpoint).
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
	for i, name := range []string{"cp1", "cp2"} {
		waitExited(t, c, id)
		if err := c.StartFromCheckpoint(ctx, id, name); err != nil {
			t.Fatalf("restore %d: %v", i+1, err)
		}
		if ct, err := c.Inspect(ctx, id); err != nil || !ct.Running {
			t.Errorf("after restore %d = %+v, %v; want running", i+1, ct, err)
		}
		if i == 0 {
			if err := c.Checkpoint(ctx, id, "cp2", "", false); err != nil {
				t.Fatalf("second checkpoint: %v", err)
			}
		}
	}
}

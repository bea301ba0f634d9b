package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine"
)

// counter notes each start of its process in /starts and counts five
// times a second into /count: a container that starts its command again
// adds a start and counts from 1 again; one restored from a checkpoint
// goes on from where the checkpoint left it, with its one start.
var counter = []string{"sh", "-c", "echo start >> /starts; i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.2; done"}

// TestCheckpoint checkpoints and restores a counting container where
// checkpoints work on the engine (CheckpointSupport's probe, a real
// checkpoint and restore): twice in place, then as a live move takes it (a
// checkpoint in a directory of its own, carried in the state stream with
// the container's files, restored into another container); each time the
// count must go on. Where they do not work (an engine outside experimental
// mode, a CRIU that fails, as Debian 12's 3.17 does on recent kernels),
// the checkpoint must fail with ErrCheckpointUnsupported. To run the first
// branch on a machine whose own engine cannot, point DOCKER_HOST at an
// engine whose CRIU works (a lab host brought up with RSWARM_CRIU_DIR).
func TestCheckpoint(t *testing.T) {
	c := newClient(t)
	labels := testRun(t, c)
	ctx := ctxFor(t, 180*time.Second)

	ok, reason := c.CheckpointSupport(ctx, testImage)
	t.Logf("checkpoint support: ok=%t reason=%q", ok, reason)
	if !ok && reason == "" {
		t.Fatal("checkpoints unsupported without a reason")
	}
	if ok2, reason2 := c.CheckpointSupport(ctx, testImage); ok2 != ok || reason2 != reason {
		t.Errorf("second call = %t %q, want the cached %t %q", ok2, reason2, ok, reason)
	}

	_, id := run(t, c, labels, engine.RunSpec{Cmd: counter, Network: "none"})
	countPast(t, c, id, 10)
	err := c.Checkpoint(ctx, id, "cp1", "", false)
	if !ok {
		if !errors.Is(err, engine.ErrCheckpointUnsupported) {
			t.Errorf("checkpoint where unsupported = %v, want ErrCheckpointUnsupported", err)
		}
		t.Logf("checkpoints do not work on this engine: checked that the error is classified, restored nothing")
		return
	}
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	// Twice in place: the second restore of the same small process is the
	// one Docker 20.10 fails without a unique file in the checkpoint (see
	// StartFromCheckpoint).
	for i, name := range []string{"cp1", "cp2"} {
		waitExited(t, c, id)
		before := count(t, c, id)
		if err := c.StartFromCheckpoint(ctx, id, name); err != nil {
			t.Fatalf("restore %d: %v", i+1, err)
		}
		goesOn(t, c, id, before)
		if i == 0 {
			if err := c.Checkpoint(ctx, id, "cp2", "", false); err != nil {
				t.Fatalf("second checkpoint: %v", err)
			}
		}
	}

	// As a live move takes it (Runtime.MoveOut, PrepareIn, StartIn).
	dir := t.TempDir()
	if err := c.Checkpoint(ctx, id, "live", dir, false); err != nil {
		t.Fatalf("checkpoint into %s: %v", dir, err)
	}
	waitExited(t, c, id)
	before := count(t, c, id)
	var state bytes.Buffer
	tw := tar.NewWriter(&state)
	if _, err := c.ExportState(ctx, id, tw); err != nil {
		t.Fatal(err)
	}
	if err := engine.ExportDir(filepath.Join(dir, "live"), "checkpoint", tw); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	dst, err := c.Create(ctx, engine.RunSpec{Name: unique(t), Image: testImage, Labels: labels, StopTimeout: 1, Cmd: counter, Network: "none"})
	if err != nil {
		t.Fatal(err)
	}
	ckDir, err := c.CheckpointDir(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	im, err := c.ImportState(ctx, dst, &state, nil, filepath.Join(ckDir, "live"))
	if err != nil || !im.Checkpoint {
		t.Fatalf("import the state with its checkpoint: %+v, %v", im, err)
	}
	if err := c.StartFromCheckpoint(ctx, dst, "live"); err != nil {
		t.Fatalf("restore into another container: %v", err)
	}
	goesOn(t, c, dst, before)
}

// count reads /count of container id (running or not).
func count(t testing.TB, c *engine.Client, id string) int {
	t.Helper()
	n, _, err := readCounter(c, id)
	if err != nil {
		t.Fatalf("count of %s: %v", id, err)
	}
	return n
}

// readCounter reads /count and the number of lines of /starts of
// container id through its state stream (its changed files).
func readCounter(c *engine.Client, id string) (n, starts int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if _, err := c.ExportState(ctx, id, tw); err != nil {
		return 0, 0, err
	}
	if err := tw.Close(); err != nil {
		return 0, 0, err
	}
	files := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		if h.Name == "fs/count" || h.Name == "fs/starts" {
			b, err := io.ReadAll(tr)
			if err != nil {
				return 0, 0, err
			}
			files[h.Name] = string(b)
		}
	}
	if files["fs/count"] == "" { // not written yet, or read between its truncation and its write
		return 0, 0, errors.New("no count in /count")
	}
	n, err = strconv.Atoi(strings.TrimSpace(files["fs/count"]))
	return n, strings.Count(files["fs/starts"], "start\n"), err
}

// countPast waits until container id has counted past n.
func countPast(t testing.TB, c *engine.Client, id string, n int) {
	t.Helper()
	apitest.Eventually(t, 60*time.Second, func() error {
		got, _, err := readCounter(c, id)
		if err == nil && got <= n {
			err = fmt.Errorf("count %d, not past %d yet", got, n)
		}
		return err
	})
}

// goesOn checks that container id, restored from a checkpoint taken at
// count before, runs its one process on: it counts past before, and its
// command has started once (a restart would note a second start).
func goesOn(t testing.TB, c *engine.Client, id string, before int) {
	t.Helper()
	if ct, err := c.Inspect(ctxFor(t, 10*time.Second), id); err != nil || !ct.Running {
		t.Fatalf("restored container %+v, %v; want it running", ct, err)
	}
	starts := 0
	apitest.Eventually(t, 60*time.Second, func() error {
		n, s, err := readCounter(c, id)
		if err != nil {
			return err
		}
		starts = max(starts, s)
		if n <= before+2 {
			return fmt.Errorf("count %d, not past %d yet", n, before+2)
		}
		return nil
	})
	if starts != 1 {
		t.Fatalf("restored container: its command started %d times, want once: it started again instead of going on", starts)
	}
}

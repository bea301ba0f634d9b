package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/checkpoint"
	"github.com/docker/docker/api/types/container"
)

// LabelProbe marks the throwaway containers CheckpointSupport creates.
const LabelProbe = "rswarm.probe"

// Checkpoint saves a running container's state with CRIU as checkpoint
// name, in dir (a host directory; "" = the engine's own, inside the
// container's directory). Unless leaveRunning is set the container stops
// once checkpointed. It gives ErrNotFound for an unknown container,
// ErrConflict for one that is not running, and ErrCheckpointUnsupported
// (with the engine's message) when the engine is not experimental or CRIU
// is missing or fails.
func (c *Client) Checkpoint(ctx context.Context, id, name, dir string, leaveRunning bool) error {
	err := c.cli.CheckpointCreate(ctx, id, checkpoint.CreateOptions{
		CheckpointID:  name,
		CheckpointDir: dir,
		Exit:          !leaveRunning,
	})
	if err == nil {
		return nil
	}
	return checkpointError(err, "engine: checkpoint container", id, name)
}

// StartFromCheckpoint starts a stopped container from its checkpoint name,
// which must be in the engine's own place for it (Docker 20.10 refuses a
// restore from another directory: "custom checkpointdir is not supported";
// see CheckpointDir). Errors are classified as in Checkpoint.
//
// When that place is on this machine the checkpoint gets a file of random
// bytes first: the engine uploads the checkpoint into containerd's content
// store to restore it and keeps it there a while, and Docker 20.10 fails a
// restore whose checkpoint is byte for byte one it uploaded before ("commit
// failed: content ...: already exists"), which happens with small
// processes such as a sleep. CRIU ignores files it does not know.
func (c *Client) StartFromCheckpoint(ctx context.Context, id, name string) error {
	if dir, err := c.CheckpointDir(ctx, id); err == nil {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			var b [16]byte
			_, _ = rand.Read(b[:])
			if err := os.WriteFile(filepath.Join(dir, name, "rswarm-nonce"), b[:], 0o600); err != nil {
				return fmt.Errorf("engine: restore container %s (checkpoint %s): %w", id, name, err)
			}
		}
	}
	err := c.cli.ContainerStart(ctx, id, container.StartOptions{CheckpointID: name})
	if err == nil {
		return nil
	}
	return checkpointError(err, "engine: restore container", id, name)
}

// CheckpointDir is the directory in which the engine keeps the checkpoints
// of container id (containers/<id>/checkpoints in its data root), as a
// path on the engine's host.
func (c *Client) CheckpointDir(ctx context.Context, id string) (string, error) {
	in, err := c.cli.ContainerInspect(ctx, id)
	if err != nil {
		return "", classify(err, "engine: inspect container", id)
	}
	info, err := c.cli.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("engine: info: %w", err)
	}
	if info.DockerRootDir == "" {
		return "", fmt.Errorf("engine: the engine does not say where it keeps container %s", id)
	}
	return filepath.Join(info.DockerRootDir, "containers", in.ID, "checkpoints"), nil
}

// checkpointError classifies a checkpoint or restore failure.
func checkpointError(err error, op, id, name string) error {
	m := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s (checkpoint %s): %w", op, id, name, err)
	case strings.Contains(m, "page not found"):
		// Engines outside experimental mode have no checkpoint routes.
		return fmt.Errorf("%s %s (checkpoint %s): %w: the engine is not in experimental mode (dockerd --experimental): %w",
			op, id, name, ErrCheckpointUnsupported, err)
	case strings.Contains(m, "experimental"), strings.Contains(m, "criu"):
		return fmt.Errorf("%s %s (checkpoint %s): %w: %s%w", op, id, name, ErrCheckpointUnsupported, criuHint(err.Error()), err)
	case cerrdefs.IsNotFound(err) && strings.Contains(m, "no such container"):
		return fmt.Errorf("%s %s: %w", op, id, ErrNotFound)
	case cerrdefs.IsNotFound(err):
		// The checkpoint itself is missing.
		return fmt.Errorf("%s %s: checkpoint %s: %w: %w", op, id, name, ErrNotFound, err)
	case cerrdefs.IsConflict(err), strings.Contains(m, "not running"):
		return fmt.Errorf("%s %s (checkpoint %s): %w: %w", op, id, name, ErrConflict, err)
	default:
		return fmt.Errorf("%s %s (checkpoint %s): %w", op, id, name, err)
	}
}

// criuLogRE finds the CRIU log named in an engine error ("... path=
// /run/.../criu-dump.log: unknown").
var criuLogRE = regexp.MustCompile(`path= ?(/\S+/criu-[a-z]+\.log)`)

// criuHint explains a CRIU failure in a few words, ending in ": ", or
// returns "". The engine only says "criu failed: type DUMP errno 0"; the
// reason is in CRIU's log, which can be read when this process runs on
// the engine's host (as root) while the container still exists.
func criuHint(msg string) string {
	if strings.Contains(msg, `"criu": executable file not found`) {
		return "CRIU is not installed on the engine's host: "
	}
	m := criuLogRE.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	data, err := os.ReadFile(m[1])
	if err != nil {
		return ""
	}
	var errs []string
	for _, line := range strings.Split(string(data), "\n") {
		// "(00.011782) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"
		if _, after, ok := strings.Cut(line, "Error ("); ok {
			if _, text, ok := strings.Cut(after, "): "); ok {
				errs = append(errs, text)
			}
		}
		if len(errs) == 2 {
			break
		}
	}
	if len(errs) == 0 {
		return ""
	}
	return fmt.Sprintf("CRIU log: %q: ", strings.Join(errs, "; "))
}

// CheckpointSupport reports whether checkpoint and restore work on this
// engine and, when they do not, why. It runs a real test once: a
// throwaway container of image (a busybox with sleep), labelled
// LabelProbe, is started, checkpointed, restored and removed. A definite
// answer is cached in the Client; a probe that could not run (ctx ended,
// image missing) is reported but not cached.
func (c *Client) CheckpointSupport(ctx context.Context, image string) (ok bool, reason string) {
	c.ckMu.Lock()
	defer c.ckMu.Unlock()
	if c.ckDone {
		return c.ckOK, c.ckReason
	}
	ok, reason, definite := c.probeCheckpoint(ctx, image)
	if definite {
		c.ckDone, c.ckOK, c.ckReason = true, ok, reason
	}
	return ok, reason
}

func (c *Client) probeCheckpoint(ctx context.Context, image string) (ok bool, reason string, definite bool) {
	in, err := c.Info(ctx)
	if err != nil {
		return false, fmt.Sprintf("cannot ask the engine: %v", err), false
	}
	if !in.Experimental {
		return false, "the engine is not in experimental mode (start dockerd with --experimental)", true
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "rswarm-ckprobe-" + hex.EncodeToString(b[:])
	id, err := c.Create(ctx, RunSpec{
		Name:        name,
		Image:       image,
		Cmd:         []string{"sleep", "3600"},
		Network:     "none",
		Labels:      map[string]string{LabelProbe: "checkpoint"},
		StopTimeout: 1,
	})
	if err != nil {
		return false, fmt.Sprintf("cannot create a probe container: %v", err), false
	}
	defer func() {
		// Clean up even when ctx has ended.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = c.Remove(cctx, id, true)
	}()
	if err := c.Start(ctx, id); err != nil {
		return false, fmt.Sprintf("cannot start a probe container: %v", err), false
	}
	if err := c.Checkpoint(ctx, id, "probe", "", false); err != nil {
		return false, probeReason("checkpoint", err), ctx.Err() == nil
	}
	// The engine notices the checkpointed process's exit a moment later.
	waitC, waitErr := c.cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-waitErr:
		return false, fmt.Sprintf("waiting for the checkpointed test container to stop: %v", err), false
	}
	if err := c.StartFromCheckpoint(ctx, id, "probe"); err != nil {
		return false, probeReason("restore", err), ctx.Err() == nil
	}
	return true, "", true
}

func probeReason(step string, err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, ErrCheckpointUnsupported.Error()+": "); ok {
		msg = after
	}
	return fmt.Sprintf("%s of a test container failed: %s", step, msg)
}

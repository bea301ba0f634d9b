package engine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/rswarm/rswarm/api"
)

// checkpointName is the name of the checkpoint a live move takes.
const checkpointName = "rswarm-move"

func (r *Runtime) hold(task string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == nil {
		r.held = map[string]bool{}
	}
	if on {
		r.held[task] = true
	} else {
		delete(r.held, task)
	}
}

// MoveOut freezes a task and writes its state stream (see ExportState) to
// w. Cold: the container is paused (its processes frozen, nothing lost if
// the move fails) and its filesystem changes and named volumes written.
// Live: it is checkpointed with CRIU (the container stops) and the
// checkpoint is added. Until Resume or Discard, the container is kept.
func (r *Runtime) MoveOut(ctx context.Context, task, mode string, w io.Writer) (string, error) {
	in, err := r.c.Inspect(ctx, task)
	if err != nil {
		return "", err
	}
	if in.Labels[api.LabelManaged] != "1" || in.Labels[api.LabelTask] != task {
		return "", fmt.Errorf("engine: container %s is not an RSwarm task: %w", task, ErrNotFound)
	}
	if !in.Running {
		return "", fmt.Errorf("engine: task %s is not running (%s): %w", task, in.Status, ErrConflict)
	}
	r.hold(task, true)
	var ckDir string
	switch mode {
	case api.ModeCold:
		if err := r.c.Pause(ctx, task); err != nil {
			r.hold(task, false)
			return "", err
		}
	case api.ModeLive:
		if ckDir, err = os.MkdirTemp("", "rswarm-ck-"); err != nil {
			r.hold(task, false)
			return "", err
		}
		defer os.RemoveAll(ckDir)
		if err := r.c.Checkpoint(ctx, task, checkpointName, ckDir, false); err != nil {
			r.hold(task, false)
			return "", err
		}
	default:
		r.hold(task, false)
		return "", fmt.Errorf("engine: unknown move mode %q", mode)
	}
	tw := tar.NewWriter(w)
	ex, err := r.c.ExportState(ctx, task, tw)
	if err == nil && mode == api.ModeLive {
		err = ExportDir(filepath.Join(ckDir, checkpointName), "checkpoint", tw)
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return "", fmt.Errorf("engine: export the state of %s: %w", task, err)
	}
	note := ""
	if len(ex.Deleted) > 0 {
		note = fmt.Sprintf("%d paths the task deleted exist again on the destination (the engine cannot delete files in a container that does not run): %s",
			len(ex.Deleted), strings.Join(ex.Deleted[:min(3, len(ex.Deleted))], ", "))
	}
	return note, nil
}

// Resume undoes MoveOut after a failed move: the task runs again here (a
// cold move's task is thawed; a live move's, stopped by its checkpoint,
// starts again on its filesystem).
func (r *Runtime) Resume(ctx context.Context, task, mode string) error {
	defer r.hold(task, false)
	ctx = context.WithoutCancel(ctx)
	if mode == api.ModeCold {
		return r.c.Unpause(ctx, task)
	}
	return r.c.Start(ctx, task)
}

// Discard removes a task's container after it moved away.
func (r *Runtime) Discard(ctx context.Context, task string) error {
	err := r.c.Remove(context.WithoutCancel(ctx), task, true)
	r.hold(task, false)
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	if err == nil {
		r.removeTaskVolumes(context.WithoutCancel(ctx), task)
	}
	return err
}

// MoveIn creates a task's container as rt says, puts the state read from
// rd (written by MoveOut on another host) in, and starts it (live: restores
// it from the checkpoint). If anything fails the container is removed:
// nothing half-moved stays.
func (r *Runtime) MoveIn(ctx context.Context, rt api.RunTask, mode string, rd io.Reader) (note string, err error) {
	spec, err := Spec(rt, r.labels(rt.Job, rt.Task.ContainerName), r.StopTimeout)
	if err != nil {
		return "", err
	}
	if old, err := r.c.Inspect(ctx, spec.Name); err == nil {
		if old.Labels[api.LabelManaged] != "1" || old.Labels[api.LabelTask] != spec.Name {
			return "", fmt.Errorf("engine: a container named %s that is not this task exists here: %w", spec.Name, ErrConflict)
		}
		_ = r.c.Remove(ctx, old.ID, true)
	}
	if err := r.createTaskVolumes(ctx, rt); err != nil {
		return "", err
	}
	if err := r.localNetwork(ctx, rt, &spec, false); err != nil {
		r.removeTaskVolumes(context.WithoutCancel(ctx), spec.Name)
		return "", err
	}
	id, err := r.c.Create(ctx, spec)
	if err != nil {
		r.removeTaskVolumes(context.WithoutCancel(ctx), spec.Name)
		return "", err
	}
	defer func() {
		if err != nil {
			_ = r.c.Remove(context.WithoutCancel(ctx), id, true)
			r.removeTaskVolumes(context.WithoutCancel(ctx), spec.Name)
		}
	}()
	var ckDir string
	if mode == api.ModeLive {
		if ckDir, err = os.MkdirTemp("", "rswarm-ck-"); err != nil {
			return "", err
		}
		defer os.RemoveAll(ckDir)
	}
	vols := map[string]string{}
	for src, v := range rt.Task.Volumes {
		if !strings.HasPrefix(src, "/") {
			vols[src] = v.Bind
		}
	}
	extract := ckDir
	if extract != "" {
		extract = filepath.Join(ckDir, checkpointName)
	}
	im, err := r.c.ImportState(ctx, id, rd, vols, extract)
	if err != nil {
		return "", err
	}
	if mode == api.ModeLive {
		if !im.Checkpoint {
			return "", errors.New("engine: a live move arrived without its checkpoint")
		}
		err = r.c.StartFromCheckpoint(ctx, id, checkpointName, ckDir)
	} else {
		err = r.c.Start(ctx, id)
	}
	if err != nil {
		return "", fmt.Errorf("start %s: %w", spec.Name, err)
	}
	if len(im.Deleted) > 0 {
		note = fmt.Sprintf("%d paths deleted on the source exist again here", len(im.Deleted))
	}
	return note, nil
}

// exportVolumes writes the contents of the named volumes mounted in
// container id under volumes/<name>/.
func (c *Client) exportVolumes(ctx context.Context, id string, tw *tar.Writer) error {
	in, err := c.cli.ContainerInspect(ctx, id)
	if err != nil {
		return classify(err, "engine: inspect container", id)
	}
	for _, m := range in.Mounts {
		if m.Type != "volume" || m.Name == "" {
			continue
		}
		rc, _, err := c.cli.CopyFromContainer(ctx, id, m.Destination)
		if err != nil {
			return classify(err, "engine: copy volume "+m.Name+" from container", id)
		}
		err = retar(rc, tw, func(n string) string {
			n = strings.TrimPrefix(path.Clean(n), ".")
			_, rest, _ := strings.Cut(n, "/") // the first element is the mount point's own name
			return path.Join("volumes", m.Name, rest)
		})
		rc.Close()
		if err != nil {
			return fmt.Errorf("engine: volume %s of %s: %w", m.Name, id, err)
		}
	}
	return nil
}

// retar copies a tar stream into tw, renaming each entry.
func retar(r io.Reader, tw *tar.Writer, rename func(string) string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		h.Name = rename(h.Name)
		if h.Typeflag == tar.TypeLink {
			h.Linkname = rename(h.Linkname)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

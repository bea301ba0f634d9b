package engine

import (
	"archive/tar"
	"bufio"
	"bytes"
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
	// A task in a sandbox runs in another container's network namespace,
	// which runc gives CRIU as an external one: the checkpoint leaves it
	// out and restores only into a namespace handed to it, which a
	// container on a network of its own does not have ("Unable to find an
	// external netns: extRootNetNS"). The stream says so, for the
	// destination to restore the task in a sandbox too (PrepareIn).
	inBox := mode == api.ModeLive && in.Labels[api.LabelSandbox] != ""
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
	if inBox {
		err = tw.WriteHeader(&tar.Header{Name: sandboxEntry, Mode: 0o644, Typeflag: tar.TypeReg})
	}
	var ex Exported
	if err == nil {
		ex, err = r.c.ExportState(ctx, task, tw)
	}
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
		note = fmt.Sprintf("%d paths the task deleted are deleted on the destination once it runs there: %s",
			len(ex.Deleted), strings.Join(ex.Deleted[:min(3, len(ex.Deleted))], ", "))
	}
	return note, nil
}

// Halt stops a frozen task for good before its destination starts it (the
// second phase of a move): a cold move's paused container is killed, a
// live move's is already stopped by its checkpoint. The container stays
// until Discard, so that Resume can still start it again here.
func (r *Runtime) Halt(ctx context.Context, task, mode string) error {
	if mode == api.ModeLive {
		return nil
	}
	err := r.c.Kill(context.WithoutCancel(ctx), task)
	if errors.Is(err, ErrConflict) { // not running any more: halted already
		err = nil
	}
	return err
}

// Resume undoes MoveOut after a failed move: the task runs here again (a
// paused container is thawed; one that stopped, by its checkpoint or by
// Halt, starts again on its filesystem).
func (r *Runtime) Resume(ctx context.Context, task, mode string) error {
	defer r.hold(task, false)
	ctx = context.WithoutCancel(ctx)
	in, err := r.c.Inspect(ctx, task)
	if err != nil {
		return err
	}
	switch {
	case in.Status == "paused":
		return r.c.Unpause(ctx, task)
	case in.Running:
		return nil
	}
	return r.c.Start(ctx, task)
}

// Discard removes a task's container after it moved away, with the named
// volumes it brought along (they moved with it): RSwarm's own task
// volumes and the ones the user named in the task (see MovedVolumes).
func (r *Runtime) Discard(ctx context.Context, task string) error {
	ctx = context.WithoutCancel(ctx)
	vols := r.mountedVolumes(ctx, task)
	err := r.c.Remove(ctx, task, true)
	r.hold(task, false)
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	if err == nil {
		r.removeTaskVolumes(ctx, task)
		r.removeVolumes(ctx, task, vols)
		r.releaseNetwork(ctx, task)
	}
	return err
}

// incoming is a task received from another host, not started yet.
type incoming struct {
	id, mode, ckDir string // ckDir: the engine's checkpoint directory (live)
	deleted         []string
}

// PrepareIn creates a task's container as rt says and puts the state read
// from rd (written by MoveOut on another host) in, without starting it:
// StartIn starts it (live: restores it from the checkpoint), AbortIn
// removes it. If anything fails nothing of it stays. A task checkpointed
// in a sandbox (the stream starts with sandboxEntry) is created in one
// here too, on its job's pooled network: its checkpoint restores only
// into a network namespace given to it (see MoveOut).
func (r *Runtime) PrepareIn(ctx context.Context, rt api.RunTask, mode string, rd io.Reader) (err error) {
	spec, err := Spec(rt, r.taskLabels(rt), r.StopTimeout)
	if err != nil {
		return err
	}
	br := bufio.NewReader(rd)
	inBox := mode == api.ModeLive && startsInSandbox(br)
	if inBox {
		if !r.pooled(rt) || !r.sandboxes() {
			return fmt.Errorf("engine: task %s was checkpointed in a sandbox and restores only in one, and this worker makes none (--sandbox-image, --warm-networks): %w",
				spec.Name, ErrCheckpointUnsupported)
		}
		rt.Alone = true // an idle network's sandbox if there is one
	}
	if old, err := r.c.Inspect(ctx, spec.Name); err == nil {
		if old.Labels[api.LabelManaged] != "1" || old.Labels[api.LabelTask] != spec.Name {
			return fmt.Errorf("engine: a container named %s that is not this task exists here: %w", spec.Name, ErrConflict)
		}
		_ = r.c.Remove(ctx, old.ID, true)
	}
	r.hold(spec.Name, true) // a created container that has not run is not a task that ended
	if err := r.createTaskVolumes(ctx, rt); err != nil {
		r.hold(spec.Name, false)
		return err
	}
	err = r.localNetwork(ctx, rt, &spec, false)
	if err == nil && inBox && spec.Labels[api.LabelSandbox] == "" {
		var box string
		if box, err = r.boxTask(ctx, spec.Name); err == nil {
			spec.Network, spec.Labels[api.LabelSandbox] = "container:"+box, box
		} else {
			r.releaseNetwork(ctx, spec.Name)
		}
	}
	if err != nil {
		r.removeTaskVolumes(context.WithoutCancel(ctx), spec.Name)
		r.hold(spec.Name, false)
		return err
	}
	id, err := r.c.Create(ctx, spec)
	if err != nil {
		r.removeTaskVolumes(context.WithoutCancel(ctx), spec.Name)
		r.releaseNetwork(ctx, spec.Name)
		r.hold(spec.Name, false)
		return err
	}
	in := &incoming{id: id, mode: mode}
	defer func() {
		if err != nil {
			r.abort(ctx, spec.Name, in)
		}
	}()
	if mode == api.ModeLive {
		// Where the engine restores checkpoints from (the only place it
		// does: see StartFromCheckpoint); removed with the container.
		if in.ckDir, err = r.c.CheckpointDir(ctx, id); err != nil {
			return err
		}
	}
	vols := map[string]string{}
	for src, v := range rt.Task.Volumes {
		if !strings.HasPrefix(src, "/") {
			vols[src] = v.Bind
		}
	}
	extract := in.ckDir
	if extract != "" {
		extract = filepath.Join(in.ckDir, checkpointName)
	}
	im, err := r.c.ImportState(ctx, id, br, vols, extract)
	if err != nil {
		return err
	}
	if mode == api.ModeLive && !im.Checkpoint {
		return errors.New("engine: a live move arrived without its checkpoint")
	}
	in.deleted = im.Deleted
	r.mu.Lock()
	if r.incoming == nil {
		r.incoming = map[string]*incoming{}
	}
	r.incoming[spec.Name] = in
	r.mu.Unlock()
	return nil
}

// startsInSandbox tells whether the state stream in br starts with
// sandboxEntry, leaving br where it was.
func startsInSandbox(br *bufio.Reader) bool {
	b, _ := br.Peek(512) // a tar header's block
	h, err := tar.NewReader(bytes.NewReader(b)).Next()
	return err == nil && path.Clean(h.Name) == sandboxEntry
}

func (r *Runtime) takeIncoming(task string) *incoming {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.incoming[task]
	delete(r.incoming, task)
	return in
}

// abort removes what PrepareIn made for task.
func (r *Runtime) abort(ctx context.Context, task string, in *incoming) {
	ctx = context.WithoutCancel(ctx)
	_ = r.c.Remove(ctx, in.id, true)
	r.removeTaskVolumes(ctx, task)
	r.releaseNetwork(ctx, task)
	r.hold(task, false)
}

// AbortIn removes a task PrepareIn made and that will not start here.
func (r *Runtime) AbortIn(ctx context.Context, task string) {
	if in := r.takeIncoming(task); in != nil {
		r.abort(ctx, task, in)
	}
}

// StartIn starts a task PrepareIn made (live: restores it from its
// checkpoint), then deletes in it the paths the task had deleted on its
// source (the Engine API can only do that in a running container). If it
// does not start, nothing of it stays.
func (r *Runtime) StartIn(ctx context.Context, task string) (note string, err error) {
	in := r.takeIncoming(task)
	if in == nil {
		return "", fmt.Errorf("engine: task %s was not prepared here: %w", task, ErrNotFound)
	}
	if in.mode == api.ModeLive {
		err = r.c.StartFromCheckpoint(ctx, in.id, checkpointName)
	} else {
		err = r.c.Start(ctx, in.id)
	}
	if err != nil {
		r.abort(ctx, task, in)
		return "", fmt.Errorf("start %s: %w", task, err)
	}
	r.hold(task, false)
	if len(in.deleted) > 0 {
		if err := r.c.RemovePaths(context.WithoutCancel(ctx), in.id, in.deleted); err != nil {
			return fmt.Sprintf("%d paths deleted on the source could not be deleted here: %v", len(in.deleted), err), nil
		}
		note = fmt.Sprintf("%d paths deleted on the source deleted here too", len(in.deleted))
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

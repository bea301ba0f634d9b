package engine

import (
	"context"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/rswarm/rswarm/api"
)

// Task volumes RSwarm owns (the original's NFS directories, mapped to
// named volumes on submission: see api.NFSVolumePrefix) are created,
// labelled with their task, before the task's container, and removed with
// it, on the host it ends on or moves away from.

// createTaskVolumes creates the RSwarm-owned volumes of a task.
func (r *Runtime) createTaskVolumes(ctx context.Context, rt api.RunTask) error {
	for name := range rt.Task.Volumes {
		if !strings.HasPrefix(name, api.NFSVolumePrefix) {
			continue
		}
		_, err := r.c.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name,
			Labels: map[string]string{api.LabelManaged: "1", api.LabelJob: rt.Job, api.LabelTask: rt.Task.ContainerName}})
		if err != nil {
			return classify(err, "engine: create volume", name)
		}
	}
	return nil
}

// removeTaskVolumes removes the RSwarm-owned volumes of a task, once its
// container is gone. Failures are logged: a volume left over holds no
// cores and is removed with the next task of that name.
func (r *Runtime) removeTaskVolumes(ctx context.Context, task string) {
	f := filters.NewArgs(filters.Arg("label", api.LabelManaged+"=1"), filters.Arg("label", api.LabelTask+"="+task))
	list, err := r.c.cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		r.Log.Warn("listing a task's volumes", "task_id", task, "err", err)
		return
	}
	for _, v := range list.Volumes {
		if err := r.c.cli.VolumeRemove(ctx, v.Name, false); err != nil {
			r.Log.Warn("removing a task's volume", "task_id", task, "volume", v.Name, "err", err)
		}
	}
}

// mountedVolumes are the named volumes mounted in a task's container.
func (r *Runtime) mountedVolumes(ctx context.Context, task string) []string {
	in, err := r.c.cli.ContainerInspect(ctx, task)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range in.Mounts {
		if m.Type == "volume" && m.Name != "" {
			out = append(out, m.Name)
		}
	}
	return out
}

// removeVolumes removes named volumes a task took with it to another host.
// A volume still in use here (another container mounts it) stays, logged.
func (r *Runtime) removeVolumes(ctx context.Context, task string, names []string) {
	for _, n := range names {
		err := r.c.cli.VolumeRemove(ctx, n, false)
		if err != nil && !cerrdefs.IsNotFound(err) {
			r.Log.Warn("removing a moved task's volume", "task_id", task, "volume", n, "err", err)
		}
	}
}

package labtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/rswarm/rswarm/api"
)

// Cluster is what Check reads of RSwarm: its workers and its jobs
// (api.Client, through the frontend, satisfies it).
type Cluster interface {
	Workers(ctx context.Context) ([]*api.Worker, error)
	Jobs(ctx context.Context, f api.JobFilter) (*api.JobList, error)
}

// live reports whether a task holds cores: placed and not ended.
func live(s api.State) bool { return s >= api.Scheduled && !s.Final() }

// Check verifies the cluster invariant against the real engines:
//   - on every worker, the busy cores are exactly the union of the cpusets of
//     the live tasks placed there, each core held by the task that owns it;
//   - every running task runs in exactly one container, on the engine of
//     its worker, with its cpuset and memory limit;
//   - no engine runs an RSwarm container that the store does not have as a
//     live task on that engine's worker.
//
// It returns every violation found, joined, or nil. Tests call it after
// each operation (inside apitest.Eventually where the system is still
// settling).
func (l *Lab) Check(ctx context.Context, c Cluster) error {
	workers, err := c.Workers(ctx)
	if err != nil {
		return fmt.Errorf("list workers: %w", err)
	}
	list, err := c.Jobs(ctx, api.JobFilter{})
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	// Tasks by worker, and every live task by name.
	onWorker := map[string][]placed{}
	tasks := map[string]placed{}
	for _, j := range list.Jobs {
		for _, t := range j.Info.Tasks {
			if live(t.Status) && t.Node != "" {
				onWorker[t.Node] = append(onWorker[t.Node], placed{j.Name, t})
				tasks[t.ContainerName] = placed{j.Name, t}
			}
		}
	}

	// Cores: busy = union of live cpusets, owner by owner.
	hostOf := map[string]*Host{} // worker ID -> lab host
	for _, w := range workers {
		if h := l.ByName(w.Host); h != nil {
			hostOf[w.ID] = h
		}
		if w.Status == api.WorkerLeft {
			if len(onWorker[w.ID]) > 0 {
				bad("worker %s has left but has live tasks %v", w.ID, names(onWorker[w.ID]))
			}
			continue
		}
		want := map[int]string{}
		for _, p := range onWorker[w.ID] {
			cores, err := api.ParseCpuset(p.t.CpusetCpus)
			if err != nil {
				bad("task %s: cpuset %q: %v", p.t.ContainerName, p.t.CpusetCpus, err)
				continue
			}
			for _, c := range cores {
				if other, ok := want[c]; ok {
					bad("worker %s: core %d given to both %s and %s", w.ID, c, other, p.t.ContainerName)
				}
				want[c] = p.t.ContainerName
			}
		}
		busy := w.BusyCores()
		wantCores := make([]int, 0, len(want))
		for c := range want {
			wantCores = append(wantCores, c)
		}
		sort.Ints(wantCores)
		if !slices.Equal(busy, wantCores) {
			bad("worker %s (%s): busy cores %v, but its live tasks hold %v", w.ID, w.Host, busy, wantCores)
		}
		for c, task := range want {
			if got := w.CoreTasks[fmt.Sprint(c)]; got != "" && got != task {
				bad("worker %s: core %d recorded for %s, but task %s has it", w.ID, c, got, task)
			}
		}
	}

	// Containers: each running task in exactly one container on its own
	// engine, as placed; nothing else running.
	seen := map[string][]string{} // task -> hosts running it
	for _, h := range l.Hosts {
		cs, err := h.Engine.Containers(ctx, map[string]string{api.LabelManaged: "1"}, false)
		if err != nil {
			bad("%s: list containers: %v", h.Name, err)
			continue
		}
		for _, c := range cs {
			task := c.Labels[api.LabelTask]
			seen[task] = append(seen[task], h.Name)
			p, ok := tasks[task]
			if !ok {
				bad("%s runs container %s of task %q, which is not live in the store", h.Name, c.Name, task)
				continue
			}
			if wh := hostOf[p.t.Node]; wh != h {
				bad("%s runs task %s, which the store places on worker %s", h.Name, task, p.t.Node)
				continue
			}
			in, err := h.Engine.Inspect(ctx, c.ID)
			if err != nil {
				continue // ended just now
			}
			if want, _ := api.ParseCpuset(p.t.CpusetCpus); api.FormatCpuset(want) != normCpuset(in.CpusetCpus) {
				bad("%s: container of %s has cpuset %q, the store says %q", h.Name, task, in.CpusetCpus, p.t.CpusetCpus)
			}
			if p.t.MemLimit != "" {
				if want, err := api.ParseMem(p.t.MemLimit); err == nil && want != in.Memory {
					bad("%s: container of %s has memory limit %d, the store says %s (%d)", h.Name, task, in.Memory, p.t.MemLimit, want)
				}
			}
		}
	}
	for name, p := range tasks {
		if p.t.Status == api.Running && len(seen[name]) != 1 {
			bad("running task %s (job %s, worker %s) runs on %d engines %v, want exactly 1", name, p.job, p.t.Node, len(seen[name]), seen[name])
		}
	}
	return errors.Join(errs...)
}

func normCpuset(s string) string {
	c, err := api.ParseCpuset(s)
	if err != nil {
		return s
	}
	return api.FormatCpuset(c)
}

func names(ps []placed) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.t.ContainerName)
	}
	return out
}

// placed is a live task and its job.
type placed struct {
	job string
	t   *api.Task
}

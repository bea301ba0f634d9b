package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/client"
	"github.com/rswarm/rswarm/globalmanager"
)

// rswarm task ...: checkpoint, migrate and resize running tasks.

func init() {
	var cf clientFlags
	task := &cobra.Command{Use: "task", Short: "checkpoint, migrate and update running tasks",
		Long: `task acts on one task of a job. TASK is the task's container name
(<job>_<suffix>, the job found from it) or JOB/TASK.`}
	cf.bind(task)
	task.AddCommand(taskCheckpointCmd(&cf), taskMigrateCmd(&cf), taskUpdateCmd(&cf))
	addCommand(task)
}

// resolveTask finds the job and task a TASK argument names: "JOB/TASK",
// or a container name "<job>_<suffix>" whose job is the longest prefix
// before an underscore that names a job holding it.
func resolveTask(ctx context.Context, c *client.Client, ref string) (string, *api.Task, error) {
	if job, task, ok := strings.Cut(ref, "/"); ok {
		t, err := c.Task(ctx, job, task)
		if err != nil {
			return "", nil, err
		}
		return job, t, nil
	}
	for i := strings.LastIndex(ref, "_"); i > 0; i = strings.LastIndex(ref[:i], "_") {
		t, err := c.Task(ctx, ref[:i], ref)
		if err == nil {
			return ref[:i], t, nil
		}
		if !errors.Is(err, api.ErrNotFound) {
			return "", nil, err
		}
	}
	return "", nil, fmt.Errorf("no task %q: name it <job>_<suffix> (its container name) or JOB/TASK: %w", ref, api.ErrNotFound)
}

func taskCheckpointCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "checkpoint TASK",
		Short:             "checkpoint a running task (CRIU), leaving it running",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTasks(cf),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			_, t, err := resolveTask(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if t.Node == "" {
				return fmt.Errorf("task %s is %s and runs nowhere: %w", t.ContainerName, t.Status, api.ErrConflict)
			}
			res, err := c.Checkpoint(cmd.Context(), t.Node, t.ContainerName)
			if len(res) > 0 {
				switch {
				case cf.json():
					if perr := cf.printJSON(res); perr != nil {
						return perr
					}
				case cf.quiet:
					for _, r := range res {
						if r.Checkpoint != "" {
							fmt.Fprintln(cf.stdout, r.Checkpoint)
						}
					}
				default:
					rows := [][]string{{"TASK", "NODE", "CHECKPOINT", "ERROR"}}
					for _, r := range res {
						rows = append(rows, []string{r.Container, r.Node, orDash(r.Checkpoint), orDash(r.Error)})
					}
					if perr := cf.table(rows); perr != nil {
						return perr
					}
				}
			}
			return err
		},
	}
}

// printMigrations prints how tasks moved.
func printMigrations(cf *clientFlags, res []globalmanager.MigrateResult) error {
	switch {
	case cf.json():
		return cf.printJSON(res)
	case cf.quiet:
		for _, r := range res {
			fmt.Fprintln(cf.stdout, r.Container)
		}
		return nil
	}
	rows := [][]string{{"TASK", "FROM", "TO", "CPUSET", "MODE", "NOTE"}}
	for _, r := range res {
		note := r.Note
		if r.Error != "" {
			note = "error: " + r.Error
		}
		rows = append(rows, []string{r.Container, r.From, r.To, orDash(r.CpusetCpus), orDash(r.Mode), orDash(note)})
	}
	return cf.table(rows)
}

func taskMigrateCmd(cf *clientFlags) *cobra.Command {
	var to, mode string
	cmd := &cobra.Command{
		Use:               "migrate TASK --to NODE [--mode auto|cold|live]",
		Short:             "move a running task to another worker",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTasks(cf),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("--to NODE is required")
			}
			switch mode {
			case "auto":
				mode = "" // the server's default; not sent, so that any server takes it
			case "cold", "live":
			default:
				return fmt.Errorf("--mode must be auto, cold or live, got %q", mode)
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			job, t, err := resolveTask(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			res, err := c.Migrate(cmd.Context(), globalmanager.MigrateRequest{Job: job, Container: t.ContainerName, From: t.Node, To: to}, mode)
			if err != nil {
				return err
			}
			return printMigrations(cf, []globalmanager.MigrateResult{res})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the worker to move to (node ID, address or host name)")
	cmd.Flags().StringVar(&mode, "mode", "auto", "auto (live where both hosts can checkpoint, else cold), cold (stop, move the filesystem changes, start) or live (checkpoint, move, restore)")
	_ = cmd.RegisterFlagCompletionFunc("to", completeNodes(cf))
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions([]string{"auto", "cold", "live"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func taskUpdateCmd(cf *clientFlags) *cobra.Command {
	var cores int
	var cpuset, memory string
	cmd := &cobra.Command{
		Use:   "update TASK [--cores N | --cpuset LIST] [--memory SIZE]",
		Short: "change a running task's cores and memory limit in place",
		Long: `update changes a running task's cores and memory limit without restarting it.
--cores N keeps the task's current cores when N is fewer, and asks for free
cores of its worker beyond them; --cpuset names the cores ("0-3,6"). Sizes
take Docker's units: 512m, 2g, 2GiB, 1t.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTasks(cf),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cores != 0 && cpuset != "" {
				return errors.New("give --cores or --cpuset, not both")
			}
			if cores == 0 && cpuset == "" && memory == "" {
				return errors.New("nothing to change: give --cores, --cpuset or --memory")
			}
			if memory != "" {
				if _, err := api.ParseMem(memory); err != nil {
					return fmt.Errorf("--memory: %w", err)
				}
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			job, t, err := resolveTask(ctx, c, args[0])
			if err != nil {
				return err
			}
			if cores != 0 {
				if cpuset, err = pickCores(ctx, c, t, cores); err != nil {
					return err
				}
			}
			nt, err := c.UpdateTask(ctx, job, t.ContainerName, cpuset, memory)
			if err != nil {
				return err
			}
			switch {
			case cf.json():
				return cf.printJSON(nt)
			case cf.quiet:
				cf.names([]string{nt.ContainerName})
				return nil
			}
			return cf.table([][]string{{"TASK", "NODE", "CPUSET", "MEMORY", "STATUS"},
				{nt.ContainerName, nt.Node, orDash(nt.CpusetCpus), orDash(nt.MemLimit), nt.Status.String()}})
		},
	}
	cmd.Flags().IntVar(&cores, "cores", 0, "the number of cores the task gets")
	cmd.Flags().StringVar(&cpuset, "cpuset", "", `the cores the task gets, such as "0-3,6"`)
	cmd.Flags().StringVar(&memory, "memory", "", "the memory limit, such as 512m, 2GiB or 1t")
	return cmd
}

// pickCores chooses n cores for a task on its worker: its own first (the
// lowest), then the worker's lowest free ones.
func pickCores(ctx context.Context, c *client.Client, t *api.Task, n int) (string, error) {
	if n < 1 {
		return "", fmt.Errorf("--cores must be at least 1, got %d", n)
	}
	if t.Node == "" {
		return "", fmt.Errorf("task %s is %s and runs nowhere: %w", t.ContainerName, t.Status, api.ErrConflict)
	}
	own, _ := api.ParseCpuset(t.CpusetCpus)
	var pick []int
	for _, id := range own {
		if len(pick) < n {
			pick = append(pick, id)
		}
	}
	if len(pick) < n {
		w, err := c.Worker(ctx, t.Node)
		if err != nil {
			return "", err
		}
		for id := 0; id < w.Cores && len(pick) < n; id++ {
			if !w.CPUs[strconv.Itoa(id)] {
				pick = append(pick, id)
			}
		}
		if len(pick) < n {
			return "", fmt.Errorf("worker %s has %d cores free beside the task's %d; %d asked: %w", t.Node, len(pick)-len(own), len(own), n, api.ErrConflict)
		}
	}
	s := make([]string, len(pick))
	for i, id := range pick {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ","), nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/client"
	"github.com/rswarm/rswarm/frontend"
)

// rswarm job ...: submit, list, inspect, cancel, delete and follow jobs.

func init() {
	var cf clientFlags
	job := &cobra.Command{Use: "job", Short: "submit, list, inspect, cancel and remove jobs; read their logs"}
	cf.bind(job)
	job.AddCommand(jobSubmitCmd(&cf), jobLsCmd(&cf), jobInspectCmd(&cf), jobCancelCmd(&cf), jobRmCmd(&cf),
		jobLogsCmd(&cf), jobMigrateCmd(&cf))
	addCommand(job)
}

func jobSubmitCmd(cf *clientFlags) *cobra.Command {
	var wait bool
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "submit FILE|-",
		Short: "submit jobs from a file (or stdin): one job or a JSON array, in the original format",
		Long: `submit sends one job, or a JSON array of jobs, in the original RESTfulSwarm
format (see examples/job.json) and prints each job's name and status. A job
the server refuses is printed with the server's message, and the command exits
non-zero; the other jobs of the array are stored. With --wait it follows the
jobs until they end and exits non-zero unless every one ended Down.`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"json"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			var data []byte
			if args[0] == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			acc, err := c.Submit(ctx, data)
			if err != nil {
				return err
			}
			var accepted []string
			refused := 0
			for _, a := range acc {
				if a.Error != nil {
					refused++
					se := &api.StatusError{Status: a.Code, Detail: *a.Error}
					fmt.Fprintf(cf.stderr, "rswarm: job %s: %v\n", orDash(a.JobName), se)
					continue
				}
				accepted = append(accepted, a.JobName)
			}
			switch {
			case cf.json() && !wait:
				if err := cf.printJSON(acc); err != nil {
					return err
				}
			case cf.quiet:
				cf.names(accepted)
			case !wait:
				rows := [][]string{{"JOB", "STATUS"}}
				for _, n := range accepted {
					rows = append(rows, []string{n, api.Ready.String()})
				}
				if err := cf.table(rows); err != nil {
					return err
				}
			}
			var werr error
			if wait && len(accepted) > 0 {
				werr = waitJobs(ctx, cf, c, accepted, poll)
			}
			if refused > 0 {
				return fmt.Errorf("%d of %d jobs refused", refused, len(acc))
			}
			return werr
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the jobs until they end; exit non-zero unless all ended Down")
	cmd.Flags().DurationVar(&poll, "poll", 500*time.Millisecond, "with --wait, how often to look at the jobs")
	return cmd
}

// waitJobs polls the jobs until every one has ended, printing each as it
// ends (or all of them, as JSON, at the end).
func waitJobs(ctx context.Context, cf *clientFlags, c *client.Client, names []string, poll time.Duration) error {
	left := map[string]bool{}
	for _, n := range names {
		left[n] = true
	}
	var ended []*api.Job
	bad := 0
	t := time.NewTicker(poll)
	defer t.Stop()
	if !cf.json() && !cf.quiet {
		fmt.Fprintf(cf.stdout, "waiting for %d jobs...\n", len(names))
	}
	for len(left) > 0 {
		for _, n := range names {
			if !left[n] {
				continue
			}
			j, err := c.Job(ctx, n)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			if !j.Status.Final() {
				continue
			}
			delete(left, n)
			ended = append(ended, j)
			if j.Status != api.Down {
				bad++
			}
			if !cf.json() && !cf.quiet {
				line := j.Name + "\t" + j.Status.String()
				if n := jobNote(j); n != "" {
					line += "\t" + n
				}
				fmt.Fprintln(cf.stdout, line)
			}
		}
		if len(left) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if cf.json() {
		if err := cf.printJSON(ended); err != nil {
			return err
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d jobs did not end Down", bad, len(names))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// jobNote is the one-line explanation of a job's state: why it waits or failed.
func jobNote(j *api.Job) string {
	if j.Error != "" {
		return j.Error
	}
	return j.WaitingReason
}

func jobLsCmd(cf *clientFlags) *cobra.Command {
	var status []string
	var session, node string
	var limit int
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "list jobs, newest last",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			f := api.JobFilter{Session: session, Node: node}
			for _, v := range status {
				for _, s := range strings.Split(v, ",") {
					st, err := api.ParseState(canonState(s))
					if err != nil {
						return fmt.Errorf("--status: %w", err)
					}
					f.Status = append(f.Status, st)
				}
			}
			var jobs []*api.Job
			if limit > 0 {
				f.Limit = limit
				l, err := c.Jobs(cmd.Context(), f)
				if err != nil {
					return err
				}
				jobs = l.Jobs
			} else if jobs, err = c.AllJobs(cmd.Context(), f); err != nil {
				return err
			}
			if jobs == nil {
				jobs = []*api.Job{}
			}
			switch {
			case cf.json():
				return cf.printJSON(jobs)
			case cf.quiet:
				for _, j := range jobs {
					fmt.Fprintln(cf.stdout, j.Name)
				}
				return nil
			}
			now := cf.now()
			rows := [][]string{{"NAME", "STATUS", "TASKS", "CORES", "NODES", "SESSION", "AGE", "NOTE"}}
			for _, j := range jobs {
				cores, nodes := 0, map[string]bool{}
				for _, t := range j.Info.Tasks {
					cores += t.ReqCores
					if t.Node != "" {
						nodes[t.Node] = true
					}
				}
				rows = append(rows, []string{j.Name, j.Status.String(), strconv.Itoa(len(j.Info.Tasks)), strconv.Itoa(cores),
					joinSet(nodes, 2), orDash(string(j.Session)), age(now, j.SubmitTime), truncate(jobNote(j), 60)})
			}
			return cf.table(rows)
		},
	}
	cmd.Flags().StringSliceVar(&status, "status", nil, "only jobs in these states (Ready, Running, Down, Failed, ...; repeat or separate with commas)")
	cmd.Flags().StringVar(&session, "session", "", "only jobs of this session")
	cmd.Flags().StringVar(&node, "node", "", "only jobs with a task on this worker")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many jobs (0: all)")
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(stateNames(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("node", completeNodes(cf))
	return cmd
}

// canonState accepts a state in any case ("running" for Running).
func canonState(s string) string {
	s = strings.TrimSpace(s)
	for _, n := range stateNames() {
		if strings.EqualFold(n, s) {
			return n
		}
	}
	return s
}

func stateNames() []string {
	var out []string
	for s := api.Ready; s <= api.Cancelled; s++ {
		out = append(out, s.String())
	}
	return out
}

// joinSet writes a set's members sorted, at most n of them, then "+k".
func joinSet(set map[string]bool, n int) string {
	if len(set) == 0 {
		return "-"
	}
	var ks []string
	for k := range set {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if len(ks) > n {
		return strings.Join(ks[:n], ",") + fmt.Sprintf(",+%d", len(ks)-n)
	}
	return strings.Join(ks, ",")
}

func jobInspectCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "inspect NAME",
		Short:             "show a job: its times, tasks, nodes, cores, exit codes and errors",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeJobs(cf),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			j, err := c.Job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if cf.json() {
				return cf.printJSON(j)
			}
			if cf.quiet {
				cf.names([]string{j.Name})
				return nil
			}
			w := cf.stdout
			fmt.Fprintf(w, "Name:       %s\nStatus:     %s\n", j.Name, j.Status)
			if j.Session != "" {
				fmt.Fprintf(w, "Session:    %s\n", j.Session)
			}
			if j.Priority != 0 {
				fmt.Fprintf(w, "Priority:   %d\n", j.Priority)
			}
			if j.Strategy != "" {
				fmt.Fprintf(w, "Strategy:   %s\n", j.Strategy)
			}
			fmt.Fprintf(w, "Network:    %s (%s %s)\n", j.Info.Network.Name, j.Info.Network.Driver, orDash(j.Info.Network.Subnet))
			fmt.Fprintf(w, "Submitted:  %s\nStarted:    %s\nEnded:      %s\n", clock(j.SubmitTime), clock(j.StartTime), clock(j.EndTime))
			if j.StartTime > 0 {
				fmt.Fprintf(w, "Waited:     %.3fs\n", j.StartTime-j.SubmitTime)
			}
			if j.EndTime > 0 && j.StartTime > 0 {
				fmt.Fprintf(w, "Ran:        %.3fs\n", j.EndTime-j.StartTime)
			}
			if j.WaitingReason != "" {
				fmt.Fprintf(w, "Waiting:    %s\n", j.WaitingReason)
			}
			if j.Error != "" {
				fmt.Fprintf(w, "Error:      %s\n", j.Error)
			}
			fmt.Fprintln(w, "Tasks:")
			rows := [][]string{{"  TASK", "STATUS", "NODE", "CORES", "CPUSET", "MEMORY", "IMAGE", "COMMAND", "EXIT", "ERROR"}}
			for _, t := range j.Info.Tasks {
				exit := "-"
				if t.ExitCode != nil {
					exit = strconv.Itoa(*t.ExitCode)
				}
				rows = append(rows, []string{"  " + t.ContainerName, t.Status.String(), orDash(t.Node), strconv.Itoa(t.ReqCores),
					orDash(t.CpusetCpus), orDash(t.MemLimit), t.Image, truncate(t.Command, 30), exit, truncate(orDash(t.Error), 50)})
			}
			return cf.table(rows)
		},
	}
}

func jobCancelCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "cancel NAME...",
		Short:             "cancel waiting or running jobs: their containers stop and their cores are freed",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeJobs(cf, api.Ready, api.Scheduled, api.Deployed, api.Running, api.Migrating),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			return eachJob(cf, args, func(name string) (any, error) {
				j, err := c.Job(cmd.Context(), name)
				if err != nil {
					return nil, err
				}
				if j.Status.Final() {
					return nil, fmt.Errorf("job %s has already ended (%s): rswarm job rm deletes it", name, j.Status)
				}
				return c.Delete(cmd.Context(), name)
			})
		},
	}
}

func jobRmCmd(cf *clientFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:               "rm NAME...",
		Aliases:           []string{"delete"},
		Short:             "delete ended jobs (with --force, cancel running ones first), so that their names can be used again",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeJobs(cf, api.Down, api.Failed, api.Cancelled),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			return eachJob(cf, args, func(name string) (any, error) {
				j, err := c.Job(cmd.Context(), name)
				if err != nil {
					return nil, err
				}
				if !j.Status.Final() {
					if !force {
						return nil, fmt.Errorf("job %s has not ended (%s): cancel it first, or use --force", name, j.Status)
					}
					if _, err := c.Delete(cmd.Context(), name); err != nil {
						return nil, err
					}
				}
				d, err := c.Delete(cmd.Context(), name)
				if errors.Is(err, api.ErrNotFound) && !j.Status.Final() {
					return frontend.Deleted{JobName: name, Action: "deleted"}, nil
				}
				return d, err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "cancel jobs that have not ended, then delete them")
	return cmd
}

// eachJob runs op on every named job, printing each answer; it fails if any failed.
func eachJob(cf *clientFlags, names []string, op func(name string) (any, error)) error {
	var out []any
	failed := 0
	rows := [][]string{{"JOB", "ACTION", "STATUS"}}
	for _, n := range names {
		v, err := op(n)
		if err != nil {
			failed++
			fmt.Fprintf(cf.stderr, "rswarm: %v\n", err)
			continue
		}
		out = append(out, v)
		if d, ok := v.(frontend.Deleted); ok {
			rows = append(rows, []string{d.JobName, d.Action, orDash(d.Status)})
		}
	}
	switch {
	case cf.json():
		if out == nil {
			out = []any{}
		}
		if err := cf.printJSON(out); err != nil {
			return err
		}
	case cf.quiet:
		for _, r := range rows[1:] {
			fmt.Fprintln(cf.stdout, r[0])
		}
	default:
		if len(rows) > 1 {
			if err := cf.table(rows); err != nil {
				return err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d failed", failed, len(names))
	}
	return nil
}

func jobLogsCmd(cf *clientFlags) *cobra.Command {
	var tail int
	var follow bool
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "logs NAME [TASK]",
		Short: "print the last lines a job's tasks printed; --follow keeps printing until they end",
		Long: `logs prints the last --tail lines of a task's output (of every task of the job,
each line prefixed with the task's name, when no TASK is given). With --follow
it keeps printing new lines until the tasks end.`,
		Args: cobra.RangeArgs(1, 2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
			switch len(args) {
			case 0:
				return completeJobs(cf)(cmd, args, prefix)
			case 1:
				return completeTasksOf(cf, cmd, args[0], prefix)
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			if tail < 1 || tail > 10000 {
				return fmt.Errorf("--tail must be from 1 to 10000, got %d", tail)
			}
			ctx := cmd.Context()
			j, err := c.Job(ctx, args[0])
			if err != nil {
				return err
			}
			var tasks []string
			if len(args) == 2 {
				name := args[1]
				if j.Info.Tasks.Get(name) == nil && j.Info.Tasks.Get(j.Name+"_"+name) != nil {
					name = j.Name + "_" + name // the suffix alone
				}
				if j.Info.Tasks.Get(name) == nil {
					return fmt.Errorf("job %s has no task %q: %w", j.Name, args[1], api.ErrNotFound)
				}
				tasks = []string{name}
			} else {
				for _, t := range j.Info.Tasks {
					tasks = append(tasks, t.ContainerName)
				}
			}
			prefix := len(tasks) > 1
			seen := map[string][]string{}
			for {
				all := map[string][]string{}
				for _, t := range tasks {
					lines, err := c.Logs(ctx, j.Name, t, tail)
					if err != nil {
						if ctx.Err() != nil {
							return nil
						}
						if follow {
							// While the job runs, a container starting or
							// just ended can be out of reach: ask again.
							continue
						}
						return err
					}
					all[t] = lines
					if !cf.json() {
						for _, l := range newLines(seen[t], lines) {
							if prefix {
								fmt.Fprintf(cf.stdout, "%s | %s\n", t, l)
							} else {
								fmt.Fprintln(cf.stdout, l)
							}
						}
					}
					seen[t] = lines
				}
				if cf.json() && !follow {
					return cf.printJSON(all)
				}
				if !follow {
					return nil
				}
				if j, err = c.Job(ctx, j.Name); err != nil {
					return err
				}
				if j.Status.Final() {
					// One more read: the records hold the last lines.
					follow = false
					continue
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(poll):
				}
			}
		},
	}
	cmd.Flags().IntVarP(&tail, "tail", "n", 100, "how many lines from the end (1 to 10000)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the tasks end")
	cmd.Flags().DurationVar(&poll, "poll", time.Second, "with --follow, how often to ask for new lines")
	return cmd
}

// newLines returns the lines of cur not printed yet, given prev, the
// window printed last time: cur is a later window of the same output,
// so the longest suffix of prev that is a prefix of cur was printed
// already. (Repeated identical lines at the seam can be taken as seen.)
func newLines(prev, cur []string) []string {
	for o := min(len(prev), len(cur)); o > 0; o-- {
		if equalLines(prev[len(prev)-o:], cur[:o]) {
			return cur[o:]
		}
	}
	return cur
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func jobMigrateCmd(cf *clientFlags) *cobra.Command {
	var to, mode string
	cmd := &cobra.Command{
		Use:               "migrate NAME --to NODE [--mode auto|cold|live]",
		Short:             "move every running task of a job to one worker",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeJobs(cf, api.Running),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("--to NODE is required")
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			if mode != "" && mode != api.ModeAuto && mode != api.ModeCold && mode != api.ModeLive {
				return fmt.Errorf("--mode %q: use auto, cold or live", mode)
			}
			res, err := c.MigrateJob(cmd.Context(), args[0], to, mode)
			if len(res) > 0 {
				if perr := printMigrations(cf, res); perr != nil {
					return perr
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the worker to move to (node ID, address or host name)")
	cmd.Flags().StringVar(&mode, "mode", "", "auto (live where both hosts can checkpoint, else cold), cold or live")
	_ = cmd.RegisterFlagCompletionFunc("to", completeNodes(cf))
	return cmd
}

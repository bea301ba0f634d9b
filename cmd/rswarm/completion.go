package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/client"
	"github.com/rswarm/rswarm/placement"
	"github.com/rswarm/rswarm/stressclient"
)

// Shell completion (cobra's `rswarm completion bash|zsh|fish|powershell`):
// fixed words for strategies, runtimes, profiles and policies, and job
// names, task names and node ids asked of the running system.

type completeFunc = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)

// completionTimeout bounds the API calls made while the user presses Tab.
const completionTimeout = 2 * time.Second

// completionClient is the client the flags given so far describe (with
// RSWARM_* variables, which completion does not otherwise read).
func completionClient(cf *clientFlags, cmd *cobra.Command) (*client.Client, context.Context, context.CancelFunc, bool) {
	_ = loadConfig(cmd)
	c, err := cf.client(cmd)
	if err != nil {
		return nil, nil, nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	return c, ctx, cancel, true
}

// completeJobs completes job names (of the given states; all when none).
func completeJobs(cf *clientFlags, states ...api.State) completeFunc {
	return func(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
		c, ctx, cancel, ok := completionClient(cf, cmd)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		l, err := c.Jobs(ctx, api.JobFilter{Status: states, Limit: 10000})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, j := range l.Jobs {
			if strings.HasPrefix(j.Name, prefix) {
				out = append(out, j.Name+"\t"+j.Status.String())
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeTasksOf completes the task names of one job.
func completeTasksOf(cf *clientFlags, cmd *cobra.Command, job, prefix string) ([]string, cobra.ShellCompDirective) {
	c, ctx, cancel, ok := completionClient(cf, cmd)
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer cancel()
	j, err := c.Job(ctx, job)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, t := range j.Info.Tasks {
		if strings.HasPrefix(t.ContainerName, prefix) {
			out = append(out, t.ContainerName+"\t"+t.Status.String())
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeTasks completes the container names of running tasks.
func completeTasks(cf *clientFlags) completeFunc {
	return func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, ctx, cancel, ok := completionClient(cf, cmd)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		l, err := c.Jobs(ctx, api.JobFilter{Status: []api.State{api.Deployed, api.Running, api.Migrating}, Limit: 10000})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, j := range l.Jobs {
			for _, t := range j.Info.Tasks {
				if strings.HasPrefix(t.ContainerName, prefix) && !t.Status.Final() {
					out = append(out, t.ContainerName+"\t"+t.Status.String()+" on "+orDash(t.Node))
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeNodes completes worker ids.
func completeNodes(cf *clientFlags) completeFunc {
	return func(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
		c, ctx, cancel, ok := completionClient(cf, cmd)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		ws, err := c.Workers(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, w := range ws {
			if strings.HasPrefix(w.ID, prefix) {
				out = append(out, w.ID+"\t"+string(w.Status))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeStrategies completes strategy names: the server's, or this
// binary's when the server does not answer.
func completeStrategies(cf *clientFlags) completeFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		if c, ctx, cancel, ok := completionClient(cf, cmd); ok {
			defer cancel()
			if si, err := c.Scheduler(ctx); err == nil && len(si.Strategies) > 0 {
				var out []string
				for n, d := range si.Strategies {
					out = append(out, n+"\t"+d)
				}
				return out, cobra.ShellCompDirectiveNoFileComp
			}
		}
		return placement.Names(), cobra.ShellCompDirectiveNoFileComp
	}
}

// registerFlagCompletions completes the fixed-word flags of every command
// that has them: --strategy, --runtime, --profile, --policy, --log-level.
func registerFlagCompletions(root *cobra.Command) {
	var profiles []string
	for _, p := range stressclient.Profiles {
		profiles = append(profiles, string(p))
	}
	words := map[string][]string{
		"strategy":   placement.Names(),
		"runtime":    {"docker", "sim"},
		"profile":    profiles,
		"policy":     {"backfill", "fifo"},
		"log-level":  {"debug", "info", "warn", "error"},
		"log-format": {"text", "json"},
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		visit := func(f *pflag.Flag) {
			if w, ok := words[f.Name]; ok {
				_ = c.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(w, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		c.LocalNonPersistentFlags().VisitAll(visit)
		c.PersistentFlags().VisitAll(visit)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

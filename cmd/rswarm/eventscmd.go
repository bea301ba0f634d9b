package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/client"
	"github.com/rswarm/rswarm/frontend"
)

// rswarm events: follow the lifecycle events.

func init() {
	var cf clientFlags
	var f client.EventOptions
	var since uint64
	var until string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "follow lifecycle events (job.accepted ... job.finished, session.finished)",
		Long: `events prints lifecycle events as they happen, until interrupted (or, with
--until, after the first event of that type). A broken connection is reopened
with Last-Event-ID, so no event is lost or printed twice; --since ID resumes
after an event id printed earlier (-o json prints the ids as seq).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			f.Retrying = func(err error, wait time.Duration) {
				fmt.Fprintf(cf.stderr, "rswarm: events: %v; reconnecting in %v\n", err, wait)
			}
			if !cf.json() && !cf.quiet {
				fmt.Fprintf(cf.stdout, "%-23s  %-16s  %-16s  %-10s  %s\n", "TIME", "ID", "EVENT", "STATE", "JOB / TASK")
			}
			return c.Events(cmd.Context(), f, since, func(e frontend.Event) error {
				if e.Type == frontend.EventStreamGap {
					fmt.Fprintf(cf.stderr, "rswarm: events: %s\n", gapText(e))
				}
				switch {
				case cf.json():
					if err := cf.printJSONLine(e); err != nil {
						return err
					}
				case cf.quiet:
					fmt.Fprintln(cf.stdout, e.Type)
				case e.Type != frontend.EventStreamGap:
					fmt.Fprintln(cf.stdout, eventLine(e))
				}
				if until != "" && e.Type == until {
					return client.ErrStop
				}
				return nil
			})
		},
	}
	cf.bind(cmd)
	cmd.Flags().StringVar(&f.Job, "job", "", "only events of this job")
	cmd.Flags().StringVar(&f.Session, "session", "", "only events of this session")
	cmd.Flags().Uint64Var(&since, "since", 0, "resume after this event id")
	cmd.Flags().StringVar(&until, "until", "", "stop after the first event of this type (job.finished, session.finished, ...)")
	_ = cmd.RegisterFlagCompletionFunc("job", completeJobs(&cf))
	_ = cmd.RegisterFlagCompletionFunc("until", cobra.FixedCompletions([]string{frontend.EventJobAccepted, frontend.EventJobPlaced,
		frontend.EventJobDeployed, frontend.EventJobRunning, frontend.EventTaskRunning, frontend.EventTaskFailed, frontend.EventTaskEnded,
		frontend.EventJobFinished, frontend.EventSessionFinished}, cobra.ShellCompDirectiveNoFileComp))
	addCommand(cmd)
}

func gapText(e frontend.Event) string {
	if e.Lost > 0 {
		return fmt.Sprintf("%d events were missed: the server no longer keeps them", e.Lost)
	}
	return "events were missed: the server no longer keeps them (it restarted, or the last id is too old)"
}

// eventLine writes one event as a line of the table.
func eventLine(e frontend.Event) string {
	what := e.Job
	if e.Task != "" {
		what += " / " + e.Task
	}
	var extra []string
	if e.Type == frontend.EventSessionFinished {
		what = "session " + e.Session
		if c := e.Counts; c != nil {
			extra = append(extra, fmt.Sprintf("%d jobs: %d down, %d failed, %d cancelled", c.Jobs, c.Down, c.Failed, c.Cancelled))
		}
	}
	if e.Node != "" {
		extra = append(extra, "on "+e.Node)
	}
	if e.ExitCode != nil {
		extra = append(extra, fmt.Sprintf("exit %d", *e.ExitCode))
	}
	if e.Error != "" {
		extra = append(extra, e.Error)
	}
	line := fmt.Sprintf("%-23s  %-16d  %-16s  %-10s  %s", clock(e.Time), e.Seq, e.Type, orDash(e.State), what)
	if len(extra) > 0 {
		line += "  (" + strings.Join(extra, "; ") + ")"
	}
	return line
}

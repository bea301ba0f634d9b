package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/report"
	"github.com/rswarm/rswarm/store"
)

func init() {
	var (
		sessions                   []string
		all                        bool
		out, title                 string
		dataDir, mongoURI, mongoDB string
	)
	cmd := &cobra.Command{
		Use:   "report",
		Short: "write an experiment's report (CSV, summary, CDF plots, utilisation heat map) from the store",
		Long: `report reads the jobs of one or more sessions and the workers' utilisation
straight from the store (the SQLite file in --data-dir, or MongoDB with
--mongo-uri) and writes into --out:

  jobs.csv                 one row per job: submit, start, end, waiting, execution, total, tasks, cores, strategy, state
  utilisation.csv          every worker's busy-core ratio over the experiment's time
  summary.md               counts by final state, p50/p90/p99/max of the times, mean and peak utilisation, jobs lost
  cdf_waiting.png, cdf_execution.png, cdf_total.png
                           one curve per session, so that strategies compare on one chart
  utilisation_heatmap.png  core utilisation per worker over time

It can run while the control plane does: SQLite lets readers share the file.`,
		Example: `  rswarm report --session 1700000000 --out report/
  rswarm report --session best-fit-run --session first-fit-run --out compare/
  rswarm report --all --out everything/ --data-dir /var/lib/rswarm`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(sessions) == 0 && !all {
				return fmt.Errorf("give the sessions to report on (--session S, repeatable) or --all")
			}
			if len(sessions) > 0 && all {
				return fmt.Errorf("--session and --all exclude each other")
			}
			ctx := cmd.Context()
			var st store.Store
			if mongoURI != "" {
				m, err := store.OpenMongo(ctx, mongoURI, mongoDB)
				if err != nil {
					return fmt.Errorf("open MongoDB store: %w", err)
				}
				st = m
			} else {
				// OpenSQLite would create an empty store: a mistyped
				// directory must say so instead.
				if _, err := os.Stat(filepath.Join(dataDir, store.FileName)); err != nil {
					return fmt.Errorf("no store in %s: %w", dataDir, err)
				}
				s, err := store.OpenSQLite(dataDir)
				if err != nil {
					return fmt.Errorf("open SQLite store in %s: %w", dataDir, err)
				}
				st = s
			}
			defer st.Close()

			var jobs []*api.Job
			if all {
				js, err := st.ListJobs(ctx, api.JobFilter{})
				if err != nil {
					return err
				}
				jobs = js
			}
			for _, s := range sessions {
				js, err := st.ListJobs(ctx, api.JobFilter{Session: s})
				if err != nil {
					return err
				}
				if len(js) == 0 {
					return fmt.Errorf("session %q has no jobs in the store", s)
				}
				jobs = append(jobs, js...)
			}
			usage, err := st.Usage(ctx)
			if err != nil {
				return err
			}
			workers, err := st.ListWorkers(ctx)
			if err != nil {
				return err
			}
			sum, err := report.Write(out, jobs, usage, report.Options{Title: title, Workers: workers})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "report written to %s\n", out)
			printOutcome(w, sum)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&sessions, "session", nil, "session to report on (repeat it to compare sessions on the same charts)")
	f.BoolVar(&all, "all", false, "report on every job in the store")
	f.StringVar(&out, "out", "", "directory to write the report into (created if missing)")
	f.StringVar(&title, "title", "", "title of summary.md")
	f.StringVar(&dataDir, "data-dir", "./data", "directory of the embedded SQLite store")
	f.StringVar(&mongoURI, "mongo-uri", "", "MongoDB URI; when set, read MongoDB instead of SQLite")
	f.StringVar(&mongoDB, "mongo-db", "RESTfulSwarmDB", "MongoDB database name")
	_ = cmd.MarkFlagRequired("out")
	addCommand(cmd)
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/placement"
	"github.com/rswarm/rswarm/report"
	"github.com/rswarm/rswarm/simulate"
	"github.com/rswarm/rswarm/stressclient"
)

// simulateFlags are the settings of `rswarm simulate` besides the stress
// profile's, which it shares with `rswarm stress`.
type simulateFlags struct {
	stress                 stressFlags
	workers, cores         int
	memory                 string
	horizon                time.Duration
	taskDuration           string
	strategies, policy     string
	maxWait                float64
	sortBatch              bool
	deploy, start, release string
	roundInterval, bin     float64
	mtbf                   time.Duration
	repair                 string
	replay, replaySession  string
	reportDir              string
	jobsCSV                bool
	cpuProfile             string
	progress               bool
	title                  string
}

func init() {
	var s simulateFlags
	d := stressclient.DefaultParams()
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "run an experiment in virtual time: the jobmanager's core and placement on a simulated cluster of any size",
		Long: `simulate replays a workload against --workers identical workers of --cores
cores and --memory each, in virtual time: a clock that jumps from one event to
the next (arrivals, task ends), so that an hour of load on 100,000 workers
takes seconds. Every decision is made by the production code: the
jobmanager's core, driven with virtual time, and placement (the strategies of
--strategy and the queue --policy, as the jobmanager runs them); each strategy in the comma-separated list sees the same jobs, with the
same durations and delays.

The workload is a stress profile, read as 'rswarm stress' reads it (--profile,
its parameters, --config and --profile-config files, --trace FILE), over
--duration of virtual time (poisson: arrivals over the whole duration; the turn
profiles: one turn every --interval seconds), or a real run's jobs.csv
(--replay FILE: the same arrivals, tasks, cores and execution times).
Tasks run --task-duration (a distribution: "300", "exp:5m", "uniform:1,9",
"normal:5,1" or "empirical:FILE"; default: as a simulated worker runs them,
the N of --command "sleep N"). --deploy-delay (per job), --start-delay and
--release-delay (per task) add what the real system adds around a decision, so
that a simulation compares with a real run.

With --report DIR it writes the report comparing the strategies: summary.md,
jobs.csv (one row per job, in the order jobs end, session = strategy),
utilisation.csv, the CDFs of waiting, execution and total time with one curve
per strategy, utilisation over virtual time, and per strategy a heat map of
the cores held per group of workers. The same --seed gives the
same jobs.csv, byte for byte. Progress (virtual time reached, events/s) goes
to stderr.`,
		Example: `  rswarm simulate --workers 100000 --cores 64 --memory 256g --profile poisson --lambda 2000 --duration 1h \
      --task-count 4 --task-cores 1 --task-duration exp:5m --strategy best-fit,first-fit --seed 1 --report out
  rswarm simulate --workers 50 --cores 2 --replay run/jobs.csv --start-delay exp:0.05 --report sim`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSimulate(cmd, &s) },
	}
	f := cmd.Flags()
	st := &s.stress
	f.IntVar(&s.workers, "workers", 100, "simulated workers")
	f.IntVar(&s.cores, "cores", 16, "cores of each worker")
	f.StringVar(&s.memory, "memory", "64g", "memory of each worker")
	f.DurationVar(&s.horizon, "duration", 0, "virtual time the arrivals span (default: --turns * --interval)")
	f.StringVar(&s.taskDuration, "task-duration", "", `distribution of each task's running time, e.g. "exp:5m" (default: as a simulated worker runs --command)`)
	f.StringVar(&s.strategies, "strategy", placement.Default, "placement strategies to compare, comma-separated ("+strings.Join(placement.Names(), ", ")+")")
	f.StringVar(&s.policy, "policy", "backfill", "queue policy: backfill or fifo")
	f.Float64Var(&s.maxWait, "max-wait", 0, "seconds after which a waiting job stops later jobs from backfilling past it (0 = default)")
	f.BoolVar(&s.sortBatch, "sort-batch", false, "decreasing strategies sort the whole waiting batch, not each job")
	f.StringVar(&s.deploy, "deploy-delay", "", "distribution of the delay from a job's placement to the dispatch of its tasks")
	f.StringVar(&s.start, "start-delay", "", "distribution of the delay from a task's dispatch to its start")
	f.StringVar(&s.release, "release-delay", "", "distribution of the delay from a task's end to the return of its cores")
	f.Float64Var(&s.roundInterval, "round-interval", 0, "virtual seconds between placement rounds at least (0: a round at every instant with news)")
	f.DurationVar(&s.mtbf, "worker-mtbf", 0, "mean time between failures of one worker (0: no failures); the jobs on a failed worker fail")
	f.StringVar(&s.repair, "repair-time", "", "distribution of how long a failed worker stays down (default: for the rest of the run)")
	f.Float64Var(&s.bin, "bin", 0, "seconds per point of the utilisation series (default: the horizon / 300, at least 1)")
	f.StringVar(&s.replay, "replay", "", "replay the arrivals of a real run's jobs.csv instead of a profile")
	f.StringVar(&s.replaySession, "replay-session", "", "with --replay, only this session's jobs")
	f.StringVar(&s.reportDir, "report", "", "write the report comparing the strategies into this directory")
	f.BoolVar(&s.jobsCSV, "jobs-csv", true, "with --report, write jobs.csv (one row per job: 7 million jobs are about 1 GB)")
	f.StringVar(&s.cpuProfile, "cpu-profile", "", "write a CPU profile of the run to this file (go tool pprof)")
	f.BoolVar(&s.progress, "progress", true, "print progress on stderr about once a second")
	f.StringVar(&s.title, "title", "", "title of summary.md")

	f.StringVar(&st.profile, "profile", string(stressclient.Poisson), "arrival profile: steady, bursty, incremental, random, poisson or trace")
	f.StringVar(&st.config, "config", "", "the original's StressClientInfo.json (or a YAML file of flag values)")
	f.StringVar(&st.profileConfig, "profile-config", "", "the profile's file, such as BurstyStressClientInfo.json")
	f.IntVar(&st.turns, "turns", 60, "number of turns [run_count] (--duration overrides)")
	f.Float64Var(&st.interval, "interval", d.Interval.Seconds(), "seconds between turns [time_interval]")
	f.IntVar(&st.taskCount, "task-count", d.TaskCount, "tasks per job [task_count]")
	f.IntVar(&st.taskCores, "task-cores", 1, "cores per task [task_cores]")
	f.IntVar(&st.taskMem, "task-mem", d.TaskMemMB, "memory limit per task in MB, 0 for none [task_mem]")
	f.StringVar(&st.command, "command", "", `command of every task, of which "sleep N" sets the duration (default "sleep 5")`)
	f.IntVar(&st.feedConstant, "feed-constant", d.FeedConstant, "steady: jobs per turn [feed_constant]")
	f.Float64Var(&st.lambda, "lambda", d.Lambda, "bursty: rate of the exponential per turn; poisson: jobs per second [lambda]")
	f.Float64Var(&st.coefficient, "coefficient", d.Coefficient, "incremental: a in a*t+b [coefficient]")
	f.Float64Var(&st.constant, "constant", d.Constant, "incremental: b in a*t+b [constant]")
	f.IntVar(&st.lowerBound, "lower-bound", d.LowerBound, "random: fewest jobs per turn [lower_bound]")
	f.IntVar(&st.upperBound, "upper-bound", d.UpperBound, "random: most jobs per turn [upper_bound]")
	f.StringVar(&st.trace, "trace", "", "trace: CSV of offset seconds, tasks, cores per task, duration seconds (implies --profile trace)")
	f.Uint64Var(&st.seed, "seed", 0, "random seed; 0 picks one from the clock (printed, so that the run can be repeated)")
	st.image = d.Image
	addCommand(cmd)
}

// workload returns a function giving a fresh source of the arrivals for
// each strategy, the number of jobs when known, and the horizon.
func (s *simulateFlags) workload(cmd *cobra.Command, seed uint64) (func() simulate.Source, string, time.Duration, error) {
	if s.replay != "" {
		f, err := os.Open(s.replay)
		if err != nil {
			return nil, "", 0, err
		}
		defer f.Close()
		mem := 0
		if s.stress.taskMem > 0 {
			mem = s.stress.taskMem
		}
		rp, err := simulate.ReadReplay(f, s.replaySession, stressclient.Shape{MemMB: mem, Image: s.stress.image, Command: stressclient.DefaultCommand})
		if err != nil {
			return nil, "", 0, fmt.Errorf("--replay %s: %w", s.replay, err)
		}
		desc := fmt.Sprintf("replay of %s: %d jobs over %v", s.replay, rp.Jobs(), rp.Horizon())
		return func() simulate.Source { rp.Rewind(); return rp }, desc, rp.Horizon(), nil
	}
	if s.stress.trace != "" && !given(cmd, "profile") {
		s.stress.profile = string(stressclient.Trace)
	}
	if s.horizon > 0 {
		iv := stressclient.IntervalSeconds(s.stress.interval)
		if iv <= 0 {
			return nil, "", 0, fmt.Errorf("--interval must be positive")
		}
		s.stress.turns = int(math.Ceil(float64(s.horizon) / float64(iv)))
		if err := cmd.Flags().Set("turns", fmt.Sprint(s.stress.turns)); err != nil {
			return nil, "", 0, err
		}
	}
	p, err := s.stress.params(cmd)
	if err != nil {
		return nil, "", 0, err
	}
	if _, err := stressclient.NewStream(p, seed); err != nil {
		return nil, "", 0, err
	}
	horizon := time.Duration(p.Turns) * p.Interval
	desc := fmt.Sprintf("%s profile over %v of virtual time, jobs of %d task(s) of %d core(s) and %d MB", p.Profile, horizon, p.TaskCount, p.TaskCores, p.TaskMemMB)
	if p.Profile == stressclient.Trace {
		horizon = 0
		for _, e := range p.Trace {
			horizon = max(horizon, stressclient.IntervalSeconds(e.Offset))
		}
		desc = fmt.Sprintf("trace %s: %d jobs over %v, tasks of %d MB", s.stress.trace, len(p.Trace), horizon, p.TaskMemMB)
	}
	if p.Profile == stressclient.Poisson {
		desc += fmt.Sprintf(", %g jobs/s (about %.0f jobs)", p.Lambda, p.Lambda*horizon.Seconds())
	}
	return func() simulate.Source { st, _ := stressclient.NewStream(p, seed); return st }, desc, horizon, nil
}

func runSimulate(cmd *cobra.Command, s *simulateFlags) (err error) {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		// The heap is mostly long-lived records: collect less often, but
		// keep the whole process under 3 GiB (an hour of 2,000 jobs/s on
		// 100,000 workers holds about 1 GiB live).
		debug.SetGCPercent(200)
		debug.SetMemoryLimit(3 << 30)
	}
	if s.cpuProfile != "" {
		f, err := os.Create(s.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("--cpu-profile: %w", cerr)
			}
		}()
	}
	mem, err := api.ParseMem(s.memory)
	if err != nil {
		return fmt.Errorf("--memory: %w", err)
	}
	seed := s.stress.seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	pol, err := placement.ParsePolicy(s.policy)
	if err != nil {
		return err
	}
	cfg := simulate.Config{
		Workers: s.workers, Cores: s.cores, Memory: mem,
		Options:       placement.Options{SortBatch: s.sortBatch},
		Queue:         placement.QueueOptions{Policy: pol, MaxWait: s.maxWait},
		RoundInterval: s.roundInterval, Seed: seed, FailureMTBF: s.mtbf.Seconds(),
	}
	for _, d := range []struct {
		flag, v string
		to      *simulate.Dist
	}{{"deploy-delay", s.deploy, &cfg.DeployDelay}, {"start-delay", s.start, &cfg.StartDelay}, {"release-delay", s.release, &cfg.ReleaseDelay}, {"repair-time", s.repair, &cfg.Repair}} {
		if *d.to, err = simulate.ParseDist(d.v); err != nil {
			return fmt.Errorf("--%s: %w", d.flag, err)
		}
	}
	if s.taskDuration != "" {
		td, err := simulate.ParseDist(s.taskDuration)
		if err != nil {
			return fmt.Errorf("--task-duration: %w", err)
		}
		cfg.TaskDuration = &td
	}
	var names []string
	for _, n := range strings.Split(s.strategies, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if _, err := placement.New(n, cfg.Options); err != nil {
			return fmt.Errorf("--strategy: %w", err)
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return errors.New("--strategy: name at least one strategy")
	}
	source, desc, horizon, err := s.workload(cmd, seed)
	if err != nil {
		return err
	}
	cfg.Bin = s.bin
	if cfg.Bin <= 0 {
		cfg.Bin = max(1, math.Round(horizon.Seconds()/300))
	}

	stderr := cmd.ErrOrStderr()
	about := []string{
		fmt.Sprintf("cluster: %d workers of %d cores and %s", s.workers, s.cores, s.memory),
		"workload: " + desc,
		fmt.Sprintf("task duration: %s; delays: deploy %v, start %v, release %v", orDefault(s.taskDuration, "as a simulated worker runs the command"), cfg.DeployDelay, cfg.StartDelay, cfg.ReleaseDelay),
		fmt.Sprintf("queue policy %s, max wait %g s, round interval %g s, seed %d", pol, s.maxWait, s.roundInterval, seed),
	}
	if s.mtbf > 0 {
		about = append(about, fmt.Sprintf("worker failures: one per %v per worker, repaired after %s", s.mtbf, orDefault(s.repair, "never")))
	}
	fmt.Fprintf(stderr, "simulate: %s; strategies %s\n", strings.Join(about, "; "), strings.Join(names, ", "))

	var rows func(report.Row) error
	if s.reportDir != "" && s.jobsCSV {
		if err := os.MkdirAll(s.reportDir, 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(s.reportDir, report.JobsFile))
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
		bw := bufio.NewWriterSize(f, 1<<20)
		jw, err := report.NewJobsWriter(bw)
		if err != nil {
			return err
		}
		rows = jw.Write
		defer func() {
			if ferr := jw.Flush(); err == nil && ferr != nil {
				err = ferr
			}
			if ferr := bw.Flush(); err == nil && ferr != nil {
				err = ferr
			}
		}()
	}
	var progress func(simulate.Progress)
	if s.progress {
		progress = func(p simulate.Progress) { printSimProgress(stderr, p, horizon) }
	}
	var results []*simulate.Result
	for _, name := range names {
		c := cfg
		c.Strategy = name
		r, err := simulate.Run(cmd.Context(), c, source(), rows, progress)
		if err != nil {
			return err
		}
		results = append(results, r)
		debug.FreeOSMemory() // the run's cluster and records are garbage now
		fmt.Fprintf(stderr, "simulate %s: %d jobs, %d ended, %d failed, %d never placed; waiting p50 %.3f s p99 %.3f s max %.3f s; utilisation %.1f %%; %d events in %v (CPU %v, %.0f events/s)\n",
			name, r.Arrived, r.Done, r.Failed, r.Queued, r.Waiting.P50, r.Waiting.P99, r.Waiting.Max, 100*r.Mean, r.Events,
			r.Wall.Round(time.Millisecond), r.CPU.Round(time.Millisecond), float64(r.Events)/max(r.Wall.Seconds(), 1e-9))
	}
	out := cmd.OutOrStdout()
	fmt.Fprint(out, simulate.Markdown(s.title, about, results))
	if s.reportDir != "" {
		if err := simulate.WriteReport(s.reportDir, s.title, about, results, 0); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "simulate: report in %s\n", s.reportDir)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		fmt.Fprintf(stderr, "simulate: peak resident memory %d MiB\n", ru.Maxrss/1024)
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func printSimProgress(w io.Writer, p simulate.Progress, horizon time.Duration) {
	v := time.Duration(p.Virtual * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(w, "simulate %s: virtual %v of %v, %d jobs, %d queued, %d events in %v (%.0f events/s)\n",
		p.Strategy, v, horizon, p.Jobs, p.Queued, p.Events, p.Wall.Round(time.Millisecond),
		float64(p.Events)/max(p.Wall.Seconds(), 1e-9))
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/report"
	"github.com/rswarm/rswarm/store"
	"github.com/rswarm/rswarm/stressclient"
)

// stressFlags are the settings of `rswarm stress`.
type stressFlags struct {
	fe, token                      string
	profile, config, profileConfig string
	turns                          int
	interval                       float64
	taskCount, taskCores, taskMem  int
	image, command, subnet, trace  string
	duration                       float64
	feedConstant                   int
	lambda, coefficient, constant  float64
	lowerBound, upperBound         int
	seed                           uint64
	session                        string
	concurrency                    int
	wait                           bool
	waitTimeout, poll              time.Duration
	reportDir                      string
	dataDir, mongoURI, mongoDB     string
	progress                       string
	dryRun                         bool
}

// stressKeys maps the original's configuration keys to the flags of the
// same meaning: a flag given on the command line (or in RSWARM_*) wins over
// the key in a file.
var stressKeys = map[string]string{
	"subnet": "subnet", "image_name": "image", "task_count": "task-count", "task_cores": "task-cores",
	"task_mem": "task-mem", "time_interval": "interval", "run_count": "turns", "feed_constant": "feed-constant",
	"lambda": "lambda", "coefficient": "coefficient", "constant": "constant",
	"lower_bound": "lower-bound", "upper_bound": "upper-bound",
}

func init() {
	var s stressFlags
	d := stressclient.DefaultParams()
	cmd := &cobra.Command{
		Use:   "stress",
		Short: "load generator: submit jobs to a frontend on a profile (steady, bursty, incremental, random, poisson, trace)",
		Long: `stress submits synthetic jobs to a frontend following an arrival profile, the
original RESTfulSwarm stress clients' and two more:

  steady       --feed-constant a jobs every turn
  bursty       ceil(X) jobs every turn, X exponential with rate --lambda (mean 1/lambda)
  incremental  round(--coefficient * t + --constant) jobs at turn time t (seconds)
  random       a uniform integer in [--lower-bound, --upper-bound] every turn
  poisson      arrivals at --lambda jobs per second (exponential gaps) over turns*interval
  trace        replays --trace FILE, a CSV of: offset seconds, tasks, cores per task, duration

There are --turns turns, --interval seconds apart, on absolute time: turn k is
submitted at start + k*interval however slow the frontend is. Each job has
--task-count tasks of --task-cores cores and --task-mem MB running --command in
--image, and is named job<ms>-<session>-<n>. A run is reproducible from its
--seed (printed when not given).

The original's files are read as they are: --config StressClientInfo.json
(subnet, image_name, task_count, task_cores, task_mem, time_interval,
run_count; the file may also hold flag values, as rswarm's YAML --config) and
--profile-config for the profile's file (SteadyStressClientInfo.json
{feed_constant}, BurstyStressClientInfo.json {lambda},
IncrementalStressClientInfo.json {coefficient, constant},
RandomStressClientInfo.json {lower_bound, upper_bound}). Flags override files.

--wait waits until every accepted job is final and prints the outcome, with
the control plane's worst gap between placement rounds while jobs waited and
between status applications while statuses waited, during the run (read from
the frontend's /metrics before and after it);
--report DIR (which implies --wait unless --wait=false) then writes the
report that 'rswarm report' writes. The workers' utilisation is read from the
store given by --data-dir or --mongo-uri, if any.`,
		Example: `  rswarm stress --profile steady --feed-constant 50 --turns 60 --wait
  rswarm stress --profile bursty --config StressClientInfo.json --profile-config BurstyStressClientInfo.json
  rswarm stress --profile poisson --lambda 200 --turns 30 --seed 7 --report out --data-dir ./data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStress(cmd, &s) },
	}
	f := cmd.Flags()
	f.StringVar(&s.fe, "fe", "http://127.0.0.1:5001", "frontend URL (or host:port)")
	f.StringVar(&s.token, "api-token", "", "bearer token of the frontend")
	f.StringVar(&s.profile, "profile", string(d.Profile), "arrival profile: steady, bursty, incremental, random, poisson or trace")
	f.StringVar(&s.config, "config", "", "the original's StressClientInfo.json (or a YAML file of flag values)")
	f.StringVar(&s.profileConfig, "profile-config", "", "the profile's file, such as BurstyStressClientInfo.json")
	f.IntVar(&s.turns, "turns", d.Turns, "number of turns [run_count]")
	f.Float64Var(&s.interval, "interval", d.Interval.Seconds(), "seconds between turns [time_interval]")
	f.IntVar(&s.taskCount, "task-count", d.TaskCount, "tasks per job [task_count]")
	f.IntVar(&s.taskCores, "task-cores", d.TaskCores, "cores per task [task_cores]")
	f.IntVar(&s.taskMem, "task-mem", d.TaskMemMB, "memory limit per task in MB, 0 for none [task_mem]")
	f.StringVar(&s.image, "image", d.Image, "image of every task [image_name]")
	f.StringVar(&s.subnet, "subnet", "", "address pool of the jobs' networks, cut into one /24 per job (default: chosen by Docker) [subnet]")
	f.StringVar(&s.command, "command", "", `command of every task (default "sleep 5"; for a trace "sleep <duration>")`)
	f.Float64Var(&s.duration, "duration", 0, "seconds a simulated worker runs each task (default: the N of sleep N)")
	f.IntVar(&s.feedConstant, "feed-constant", d.FeedConstant, "steady: jobs per turn [feed_constant]")
	f.Float64Var(&s.lambda, "lambda", d.Lambda, "bursty: rate of the exponential per turn; poisson: jobs per second [lambda]")
	f.Float64Var(&s.coefficient, "coefficient", d.Coefficient, "incremental: a in a*t+b [coefficient]")
	f.Float64Var(&s.constant, "constant", d.Constant, "incremental: b in a*t+b [constant]")
	f.IntVar(&s.lowerBound, "lower-bound", d.LowerBound, "random: fewest jobs per turn [lower_bound]")
	f.IntVar(&s.upperBound, "upper-bound", d.UpperBound, "random: most jobs per turn [upper_bound]")
	f.StringVar(&s.trace, "trace", "", "trace: CSV of offset seconds, tasks, cores per task, duration seconds")
	f.Uint64Var(&s.seed, "seed", 0, "random seed; 0 picks one from the clock (printed, so that the run can be repeated)")
	f.StringVar(&s.session, "session", "", "session ID, part of every job's name (default: the launch time in epoch seconds)")
	f.IntVar(&s.concurrency, "concurrency", 16, "submissions in flight at most (unless set: enough for half a second of the target rate, at least 16)")
	f.BoolVar(&s.wait, "wait", false, "wait until every accepted job is final, then print the outcome")
	f.DurationVar(&s.waitTimeout, "wait-timeout", 0, "give up waiting after this long (0: wait until interrupted)")
	f.DurationVar(&s.poll, "poll", 500*time.Millisecond, "how often --wait asks the frontend")
	f.StringVar(&s.reportDir, "report", "", "write the experiment's report into this directory (implies --wait)")
	f.StringVar(&s.dataDir, "data-dir", "", "SQLite store to read the workers' utilisation from, for --report")
	f.StringVar(&s.mongoURI, "mongo-uri", "", "MongoDB store to read the workers' utilisation from, for --report")
	f.StringVar(&s.mongoDB, "mongo-db", "RESTfulSwarmDB", "MongoDB database name")
	f.BoolVar(&s.dryRun, "dry-run", false, "print the plan (jobs per turn and their shape) and exit without submitting")
	f.StringVar(&s.progress, "progress", "auto", "progress display on stderr: auto (a bar on a terminal, else lines), bar, lines or off")
	addCommand(cmd)
}

// given reports whether a flag was set on the command line or through its
// RSWARM_* environment variable.
func given(cmd *cobra.Command, name string) bool {
	if cmd.Flags().Changed(name) {
		return true
	}
	_, ok := os.LookupEnv("RSWARM_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
	return ok
}

// params builds the stress parameters: defaults, then the files, then the flags given.
func (s *stressFlags) params(cmd *cobra.Command) (stressclient.Params, error) {
	prof, err := stressclient.ParseProfile(s.profile)
	if err != nil {
		return stressclient.Params{}, err
	}
	p := stressclient.Params{
		Profile: prof, Turns: s.turns, Interval: stressclient.IntervalSeconds(s.interval),
		TaskCount: s.taskCount, TaskCores: s.taskCores, TaskMemMB: s.taskMem, Image: s.image, Command: s.command,
		Duration: s.duration, Subnet: s.subnet, FeedConstant: s.feedConstant, Lambda: s.lambda,
		Coefficient: s.coefficient, Constant: s.constant, LowerBound: s.lowerBound, UpperBound: s.upperBound,
	}
	var fc stressclient.FileConfig
	for _, path := range []string{s.config, s.profileConfig} {
		if path == "" {
			continue
		}
		c, unknown, err := stressclient.ReadConfigFile(path)
		if err != nil {
			return p, err
		}
		for _, k := range unknown {
			if cmd.Flags().Lookup(k) == nil {
				return p, fmt.Errorf("%s: unknown key %q (the original's keys are %s; flag names are accepted too)",
					path, k, strings.Join(stressclient.ConfigKeys, ", "))
			}
		}
		fc = fc.Merge(c)
	}
	fc.Apply(&p, func(key string) bool { return given(cmd, stressKeys[key]) })
	if s.trace != "" {
		if prof != stressclient.Trace {
			return p, fmt.Errorf("--trace is for --profile trace, not %s", prof)
		}
		if p.Trace, err = stressclient.ReadTraceFile(s.trace); err != nil {
			return p, err
		}
	} else if prof == stressclient.Trace {
		return p, fmt.Errorf("--profile trace needs --trace FILE")
	}
	return p, nil
}

func frontendURL(s string) string {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/")
}

func runStress(cmd *cobra.Command, s *stressFlags) error {
	launch := time.Now()
	log := newLogger(cmd).With("component", "stress")
	p, err := s.params(cmd)
	if err != nil {
		return err
	}
	seed := s.seed
	if seed == 0 {
		seed = uint64(launch.UnixNano())
	}
	session := s.session
	if session == "" {
		session = strconv.FormatInt(launch.Unix(), 10)
	}
	if err := stressclient.ValidSession(session); err != nil {
		return err
	}
	plan, err := stressclient.Schedule(p, seed)
	if err != nil {
		return err
	}
	pool, err := stressclient.NewSubnetPool(p.Subnet)
	if err != nil {
		return err
	}
	if pool.Shared() {
		log.Warn("the subnet is smaller than a /24, so every job's network gets the same one; Docker refuses overlapping networks of jobs that run at once", "subnet", p.Subnet)
	}
	if s.dryRun {
		printPlan(cmd.OutOrStdout(), plan, session, pool)
		return nil
	}
	wait := s.wait || (s.reportDir != "" && !given(cmd, "wait"))
	fe := frontendURL(s.fe)
	client := api.NewClient(fe, s.token)
	stderr := cmd.ErrOrStderr()
	concurrency := s.concurrency
	if !given(cmd, "concurrency") {
		// A few submissions take half a second on a loaded control plane;
		// 16 in flight would then hold the run under 32 jobs/s.
		concurrency = max(concurrency, int(math.Ceil(plan.TargetRate()/2)))
	}
	fmt.Fprintf(stderr, "stress: %s profile, %d jobs over %v (%.1f jobs/s), session %s, seed %d, concurrency %d, frontend %s\n",
		plan.Profile, plan.Jobs(), plan.Horizon, plan.TargetRate(), session, seed, concurrency, fe)

	ctx := cmd.Context()
	// The control plane's gap records before the run, to tell the run's
	// worst gaps from those before it.
	var before stressclient.Scrape
	var scraped time.Time
	if wait {
		var err error
		if before, err = scrapeGaps(ctx, fe, s.token); err != nil {
			log.Warn("the gaps between placement rounds and status applications will not be reported", "err", err)
		}
		scraped = time.Now()
	}
	runStart := float64(time.Now().UnixNano()) / 1e9
	counters := &stressclient.Counters{}
	stopProgress := startProgress(ctx, s.progress, stderr, counters)
	runner := &stressclient.Runner{Submitter: client, Session: session, Subnets: pool, Concurrency: concurrency,
		Counters: counters, Logger: log}
	res, runErr := runner.Run(ctx, plan)

	left := -1
	if wait && runErr == nil {
		wctx := ctx
		if s.waitTimeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, s.waitTimeout)
			defer cancel()
		}
		left, runErr = stressclient.Wait(wctx, client, session, len(res.Accepted()), s.poll, counters)
	}
	stopProgress()
	out := cmd.OutOrStdout()
	fmt.Fprint(out, res.Text())

	// What follows runs even when the run was interrupted: the jobs
	// accepted so far are worth a report.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	var sum *report.Summary
	if wait || s.reportDir != "" {
		jobs, err := stressclient.FetchJobs(octx, client, session)
		if err != nil {
			return errors.Join(runErr, err)
		}
		gaps := ""
		if wait {
			after, err := scrapeGaps(octx, fe, s.token)
			if err != nil {
				log.Warn("reading the gaps between placement rounds and status applications", "err", err)
			}
			gaps = stressclient.GapLines(before, after, runStart, time.Since(scraped).Seconds())
		}
		if s.reportDir != "" {
			usage, workers, note := s.usage(octx, log)
			extra := res.Markdown()
			if gaps != "" {
				extra += "## Control plane\n\n- " + strings.ReplaceAll(strings.TrimSuffix(gaps, "\n"), "\n", "\n- ") + "\n\n"
			}
			opt := report.Options{Expected: res.Accepted(), Extra: extra, Workers: workers,
				Title: fmt.Sprintf("RSwarm experiment report: session %s", session)}
			if note != "" {
				opt.Notes = append(opt.Notes, note)
			}
			if runErr != nil {
				opt.Notes = append(opt.Notes, fmt.Sprintf("the stress run ended early: %v", runErr))
			}
			if sum, err = report.Write(s.reportDir, jobs, usage, opt); err != nil {
				return errors.Join(runErr, err)
			}
			fmt.Fprintf(out, "report written to %s\n", s.reportDir)
		} else {
			sum = report.Summarize(report.Rows(jobs), res.Accepted(), report.Utilisation{})
		}
		printOutcome(out, sum)
		fmt.Fprint(out, gaps)
	}
	switch {
	case runErr != nil && left > 0:
		return fmt.Errorf("stress: %d jobs still unfinished: %w", left, runErr)
	case runErr != nil:
		return fmt.Errorf("stress: %w", runErr)
	case res.Counters.Refused > 0:
		return fmt.Errorf("stress: %d of %d jobs refused", res.Counters.Refused, res.Counters.Planned)
	case sum != nil && len(sum.Lost) > 0:
		return fmt.Errorf("stress: %d jobs lost", len(sum.Lost))
	}
	return nil
}

// usage reads the workers and their utilisation from the store, when one
// is given; otherwise it says why there are none.
func (s *stressFlags) usage(ctx context.Context, log *slog.Logger) ([]api.Usage, []*api.Worker, string) {
	var st store.Store
	switch {
	case s.mongoURI != "":
		m, err := store.OpenMongo(ctx, s.mongoURI, s.mongoDB)
		if err != nil {
			return nil, nil, fmt.Sprintf("utilisation not read: %v", err)
		}
		st = m
	case s.dataDir != "":
		path := filepath.Join(s.dataDir, store.FileName)
		if _, err := os.Stat(path); err != nil {
			return nil, nil, fmt.Sprintf("utilisation not read: no store at %s", path)
		}
		l, err := store.OpenSQLite(s.dataDir)
		if err != nil {
			return nil, nil, fmt.Sprintf("utilisation not read: %v", err)
		}
		st = l
	default:
		return nil, nil, "utilisation is empty: the frontend has no utilisation endpoint yet; pass --data-dir (or --mongo-uri) of the control plane's store to include it, or run 'rswarm report' there"
	}
	defer st.Close()
	u, err := st.Usage(ctx)
	if err != nil {
		log.Warn("reading utilisation", "err", err)
		return nil, nil, fmt.Sprintf("utilisation not read: %v", err)
	}
	ws, err := st.ListWorkers(ctx)
	if err != nil {
		log.Warn("reading workers", "err", err)
		return nil, nil, fmt.Sprintf("utilisation not read: %v", err)
	}
	return u, ws, ""
}

// scrapeGaps reads the control plane's gap records (the jobmanager's
// between placement rounds, discovery's between status applications) from
// the frontend's /metrics.
func scrapeGaps(ctx context.Context, fe, token string) (stressclient.Scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fe+"/metrics", nil)
	if err != nil {
		return stressclient.Scrape{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return stressclient.Scrape{}, fmt.Errorf("GET %s/metrics: %w", fe, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return stressclient.Scrape{}, fmt.Errorf("GET %s/metrics: %s", fe, resp.Status)
	}
	return stressclient.ParseScrape(resp.Body, stressclient.RoundGapMetric, stressclient.StatusGapMetric)
}

// startProgress shows progress on w until the returned function is called.
func startProgress(ctx context.Context, mode string, w io.Writer, c *stressclient.Counters) func() {
	terminal := false
	switch mode {
	case "off":
		return func() {}
	case "bar":
		terminal = true
	case "lines":
	default:
		f, ok := w.(*os.File)
		terminal = ok && stressclient.IsTerminal(f)
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	p := &stressclient.Progress{Out: w, Terminal: terminal, Counters: c}
	wg.Go(func() { p.Run(pctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// printOutcome prints the final states and times of the jobs.
func printOutcome(w io.Writer, sum *report.Summary) {
	fmt.Fprintf(w, "jobs: %d Down, %d Failed, %d Cancelled, %d lost\n",
		sum.States[api.Down], sum.States[api.Failed], sum.States[api.Cancelled], len(sum.Lost))
	for _, ss := range sum.Sessions {
		fmt.Fprintf(w, "session %s: waiting (submit to start) p50 %.3fs p99 %.3fs max %.3fs; total p50 %.3fs p99 %.3fs; longest interval with jobs waiting and none starting %.3fs (at +%.1fs)\n",
			ss.Label(), ss.Waiting.P50, ss.Waiting.P99, ss.Waiting.Max, ss.Total.P50, ss.Total.P99, ss.Stall, ss.StallAt)
	}
	for i, l := range sum.Lost {
		if i == 10 {
			fmt.Fprintf(w, "  ... and %d more\n", len(sum.Lost)-10)
			break
		}
		fmt.Fprintf(w, "  lost: %s (%s)\n", l.Job, l.Status)
	}
}

// printPlan prints what a run would submit: its turns and the first job.
func printPlan(w io.Writer, plan *stressclient.Plan, session string, pool *stressclient.SubnetPool) {
	fmt.Fprintf(w, "%s profile, seed %d, session %s: %d jobs over %v (%.1f jobs/s)\n",
		plan.Profile, plan.Seed, session, plan.Jobs(), plan.Horizon, plan.TargetRate())
	if plan.Jobs() > 0 {
		sh := plan.Arrivals[0].Shape
		fmt.Fprintf(w, "first job: %d tasks of %d cores and %d MB, image %s, command %q, subnet %s\n",
			sh.Tasks, sh.Cores, sh.MemMB, sh.Image, sh.Command, pool)
	}
	const most = 50
	for i, t := range plan.Turns {
		if i == most {
			fmt.Fprintf(w, "... %d more turns\n", len(plan.Turns)-most)
			break
		}
		fmt.Fprintf(w, "turn %d at %v: %d jobs\n", t.Index, t.Offset, t.Jobs)
	}
}

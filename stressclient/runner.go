package stressclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rswarm/rswarm/api"
)

// Submitter submits one job to the frontend; *api.Client satisfies it. It
// must be safe for concurrent use. A nil error means the job was accepted
// (stored); any error means it was refused or its fate is unknown.
type Submitter interface {
	SubmitJob(ctx context.Context, j *api.Job) error
}

var _ Submitter = (*api.Client)(nil)

// Clock tells the time and waits for it. SystemClock is the real one;
// tests pass a fake so that schedules are checked without waiting.
type Clock interface {
	Now() time.Time
	// SleepUntil returns once t has come (at once if it has passed), or
	// early with ctx's error.
	SleepUntil(ctx context.Context, t time.Time) error
}

// SystemClock returns the real clock.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Counters are a run's running totals, shared by the Runner, Wait and a
// Progress display. The zero value is ready; it is safe for concurrent use.
type Counters struct {
	planned, submitted, accepted, refused, finished atomic.Int64
	start                                           atomic.Int64 // unix ns
	waiting                                         atomic.Bool

	mu      sync.Mutex
	reasons map[string]int
}

// Snapshot is the counters at one moment.
type Snapshot struct {
	Planned   int64 // jobs in the plan
	Submitted int64 // submissions sent
	Accepted  int64 // answered with success (stored)
	Refused   int64 // answered with an error, or no answer
	Finished  int64 // accepted jobs seen in a final state (by Wait)
	Waiting   bool  // submission is over and Wait is polling
	// Reasons counts the refusals by reason.
	Reasons map[string]int
	// Elapsed is the time since the run started; Rate the accepted jobs per
	// second over it.
	Elapsed time.Duration
	Rate    float64
}

func (c *Counters) refuse(reason string) {
	c.refused.Add(1)
	c.mu.Lock()
	if c.reasons == nil {
		c.reasons = map[string]int{}
	}
	c.reasons[reason]++
	c.mu.Unlock()
}

// SetFinished records how many accepted jobs are final.
func (c *Counters) SetFinished(n int64) { c.finished.Store(n) }

// SetWaiting records that submission is over and jobs are being waited for.
func (c *Counters) SetWaiting() { c.waiting.Store(true) }

// Snapshot returns the counters, with the rate computed at now.
func (c *Counters) Snapshot(now time.Time) Snapshot {
	s := Snapshot{Planned: c.planned.Load(), Submitted: c.submitted.Load(), Accepted: c.accepted.Load(),
		Refused: c.refused.Load(), Finished: c.finished.Load(), Waiting: c.waiting.Load()}
	c.mu.Lock()
	s.Reasons = make(map[string]int, len(c.reasons))
	for k, v := range c.reasons {
		s.Reasons[k] = v
	}
	c.mu.Unlock()
	if st := c.start.Load(); st != 0 {
		s.Elapsed = now.Sub(time.Unix(0, st))
		if s.Elapsed > 0 {
			s.Rate = float64(s.Accepted) / s.Elapsed.Seconds()
		}
	}
	return s
}

// Runner submits a plan on absolute time: the arrival at offset d is sent
// at start+d, never later because earlier submissions were slow (unless
// every worker is busy, in which case it goes as soon as one is free, and
// the schedule catches up). Submissions run on Concurrency workers.
type Runner struct {
	Submitter Submitter
	// Session goes into every job's name and session field (see ValidSession).
	Session string
	// Subnets hands out each job's subnet; nil leaves them to Docker.
	Subnets *SubnetPool
	// Concurrency is the number of submissions in flight at most (default 16).
	Concurrency int
	// SubmitTimeout bounds one submission (default 30 s).
	SubmitTimeout time.Duration
	// Clock defaults to SystemClock.
	Clock Clock
	// Counters, when set, are updated as the run goes (for a Progress).
	Counters *Counters
	Logger   *slog.Logger
}

// Submission is what became of one arrival of the plan.
type Submission struct {
	Arrival
	// Job is the job's name, empty if it was never sent (interrupted run).
	Job string
	// Planned is when it was due; Dispatched when the runner's wait for
	// that time ended and it was handed to a worker; Started when a worker
	// sent it; Done when the frontend answered.
	Planned, Dispatched, Started, Done time.Time
	// Err is nil when the job was accepted.
	Err error
}

// Result is the outcome of a run.
type Result struct {
	Plan    *Plan
	Session string
	// Start is when the run began (the plan's offset 0); End when the last
	// answer came.
	Start, End  time.Time
	Submissions []Submission
	// Latency holds, in microseconds, the time from sending each job to the
	// frontend's answer; Lag the time from when each was due to when it was
	// sent.
	Latency, Lag *hdrhistogram.Histogram
	// Counters are the final totals.
	Counters Snapshot
}

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)
}

// Run submits the plan and returns when every submission has been answered.
// When ctx ends it stops sending, waits for the submissions in flight, and
// returns the partial result with ctx's error.
func (r *Runner) Run(ctx context.Context, plan *Plan) (*Result, error) {
	if r.Submitter == nil {
		return nil, invalid("runner: no submitter")
	}
	if err := ValidSession(r.Session); err != nil {
		return nil, err
	}
	clock := r.Clock
	if clock == nil {
		clock = SystemClock()
	}
	conc := r.Concurrency
	if conc < 1 {
		conc = 16
	}
	timeout := r.SubmitTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := r.Counters
	if c == nil {
		c = &Counters{}
	}
	c.planned.Store(int64(len(plan.Arrivals)))

	res := &Result{Plan: plan, Session: r.Session, Submissions: make([]Submission, len(plan.Arrivals)),
		Latency: newHistogram(), Lag: newHistogram()}
	res.Start = clock.Now()
	c.start.Store(res.Start.UnixNano())

	// Submissions in flight finish even when ctx ends: their answer says
	// whether the job exists.
	sctx := context.WithoutCancel(ctx)
	var mu sync.Mutex // guards the histograms
	submit := func(i int) {
		s := &res.Submissions[i]
		s.Started = clock.Now()
		s.Job = JobName(s.Started, r.Session, s.Seq)
		j := NewJob(s.Job, r.Session, s.Shape, r.Subnets.For(s.Seq))
		c.submitted.Add(1)
		tctx, cancel := context.WithTimeout(sctx, timeout)
		s.Err = r.Submitter.SubmitJob(tctx, j)
		cancel()
		s.Done = clock.Now()
		mu.Lock()
		_ = res.Latency.RecordValue(max(s.Done.Sub(s.Started).Microseconds(), 0))
		_ = res.Lag.RecordValue(max(s.Started.Sub(s.Planned).Microseconds(), 0))
		mu.Unlock()
		if s.Err == nil {
			c.accepted.Add(1)
			return
		}
		why := Reason(s.Err, s.Job)
		c.refuse(why)
		log.Debug("job refused", "job_id", s.Job, "reason", why)
	}

	work := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := range work {
				submit(i)
			}
		})
	}
	var err error
dispatch:
	for i := range plan.Arrivals {
		s := &res.Submissions[i]
		s.Arrival = plan.Arrivals[i]
		s.Planned = res.Start.Add(s.Offset)
		if err = clock.SleepUntil(ctx, s.Planned); err != nil {
			break
		}
		s.Dispatched = clock.Now()
		select {
		case work <- i:
		case <-ctx.Done():
			err = ctx.Err()
			break dispatch
		}
	}
	close(work)
	wg.Wait()
	res.End = clock.Now()
	res.Counters = c.Snapshot(res.End)
	return res, err
}

// Reason says in a few words why a submission failed, with the job's name
// replaced by <job>, so that refusals group by reason.
func Reason(err error, job string) string {
	var se *api.StatusError
	msg := err.Error()
	switch {
	case errors.As(err, &se):
		msg = fmt.Sprintf("%d %s: %s", se.Status, se.Detail.Code, se.Detail.Message)
	case errors.Is(err, context.DeadlineExceeded):
		msg = "no answer in time (" + msg + ")"
	}
	if job != "" {
		msg = strings.ReplaceAll(msg, job, "<job>")
	}
	if len(msg) > 240 {
		msg = msg[:240] + "..."
	}
	return msg
}

// Accepted returns the names of the accepted jobs, in plan order.
func (r *Result) Accepted() []string {
	var out []string
	for _, s := range r.Submissions {
		if s.Job != "" && s.Err == nil {
			out = append(out, s.Job)
		}
	}
	return out
}

// Elapsed is the length of the run: from its start to the last answer, and
// at least the plan's horizon.
func (r *Result) Elapsed() time.Duration {
	return max(r.End.Sub(r.Start), r.Plan.Horizon)
}

// Rate is the accepted jobs per second over Elapsed.
func (r *Result) Rate() float64 {
	e := r.Elapsed()
	if e <= 0 {
		return 0
	}
	return float64(r.Counters.Accepted) / e.Seconds()
}

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

// Text returns the run's summary in a few plain lines.
func (r *Result) Text() string {
	var b strings.Builder
	c := r.Counters
	fmt.Fprintf(&b, "session %s, profile %s, seed %d (rerun with --seed %d --session <new>)\n", r.Session, r.Plan.Profile, r.Plan.Seed, r.Plan.Seed)
	fmt.Fprintf(&b, "planned %d jobs over %v (target %.1f jobs/s); submitted %d, accepted %d, refused %d\n",
		c.Planned, r.Plan.Horizon, r.Plan.TargetRate(), c.Submitted, c.Accepted, c.Refused)
	fmt.Fprintf(&b, "elapsed %v, sustained %.1f accepted jobs/s\n", r.Elapsed().Round(time.Millisecond), r.Rate())
	if r.Latency.TotalCount() > 0 {
		fmt.Fprintf(&b, "submission latency p50 %v p90 %v p99 %v max %v\n",
			us(r.Latency.ValueAtQuantile(50)), us(r.Latency.ValueAtQuantile(90)), us(r.Latency.ValueAtQuantile(99)), us(r.Latency.Max()))
		fmt.Fprintf(&b, "schedule lag (sent - due) p50 %v p99 %v max %v\n",
			us(r.Lag.ValueAtQuantile(50)), us(r.Lag.ValueAtQuantile(99)), us(r.Lag.Max()))
	}
	reasons := make([]string, 0, len(c.Reasons))
	for k := range c.Reasons {
		reasons = append(reasons, k)
	}
	sort.Slice(reasons, func(i, j int) bool { return c.Reasons[reasons[i]] > c.Reasons[reasons[j]] })
	for _, k := range reasons {
		fmt.Fprintf(&b, "  refused %d: %s\n", c.Reasons[k], k)
	}
	return b.String()
}

// Markdown returns the run's summary as a Markdown section, for a report.
func (r *Result) Markdown() string {
	var b strings.Builder
	c := r.Counters
	b.WriteString("## Stress client\n\n")
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| session | %s |\n| profile | %s |\n| seed | %d |\n", r.Session, r.Plan.Profile, r.Plan.Seed)
	fmt.Fprintf(&b, "| planned | %d jobs over %v (target %.1f jobs/s) |\n", c.Planned, r.Plan.Horizon, r.Plan.TargetRate())
	fmt.Fprintf(&b, "| submitted / accepted / refused | %d / %d / %d |\n", c.Submitted, c.Accepted, c.Refused)
	fmt.Fprintf(&b, "| elapsed | %v |\n| sustained rate | %.1f accepted jobs/s |\n", r.Elapsed().Round(time.Millisecond), r.Rate())
	if r.Latency.TotalCount() > 0 {
		fmt.Fprintf(&b, "| submission latency p50 / p90 / p99 / max | %v / %v / %v / %v |\n",
			us(r.Latency.ValueAtQuantile(50)), us(r.Latency.ValueAtQuantile(90)), us(r.Latency.ValueAtQuantile(99)), us(r.Latency.Max()))
		fmt.Fprintf(&b, "| schedule lag (sent - due) p50 / p99 / max | %v / %v / %v |\n",
			us(r.Lag.ValueAtQuantile(50)), us(r.Lag.ValueAtQuantile(99)), us(r.Lag.Max()))
	}
	for k, n := range c.Reasons {
		fmt.Fprintf(&b, "| refused (%d) | %s |\n", n, strings.ReplaceAll(k, "|", `\|`))
	}
	b.WriteString("\n")
	return b.String()
}

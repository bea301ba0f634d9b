package stressclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/stressclient"
)

// fakeClock is virtual time: SleepUntil jumps to the target at once and
// records it; a fake submitter advances it to take time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, t)
	if t.After(c.now) {
		c.now = t
	}
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeSubmitter records the jobs it is given; each submission advances the
// clock by cost, and refuse decides the answer.
type fakeSubmitter struct {
	clock  *fakeClock
	cost   time.Duration
	refuse func(j *api.Job) error

	mu   sync.Mutex
	jobs []*api.Job
}

func (s *fakeSubmitter) SubmitJob(_ context.Context, j *api.Job) error {
	if s.clock != nil {
		s.clock.Advance(s.cost)
	}
	s.mu.Lock()
	s.jobs = append(s.jobs, j)
	s.mu.Unlock()
	if s.refuse != nil {
		return s.refuse(j)
	}
	return nil
}

func steadyPlan(t *testing.T, perTurn, turns int, interval time.Duration) *stressclient.Plan {
	t.Helper()
	return schedule(t, params(func(p *stressclient.Params) {
		p.Profile, p.FeedConstant, p.Turns, p.Interval = stressclient.Steady, perTurn, turns, interval
	}), 5)
}

func TestRunnerKeepsAbsoluteTime(t *testing.T) {
	// Each submission takes 0.4 of an interval (of virtual time). The
	// original slept a full interval after each turn's submissions, so its
	// turn k came at k*(interval+cost): 23.6 s late by the last of 60 turns.
	const turns, interval, cost = 60, time.Second, 400 * time.Millisecond
	clock := newFakeClock()
	sub := &fakeSubmitter{clock: clock, cost: cost}
	plan := steadyPlan(t, 1, turns, interval)
	r := &stressclient.Runner{Submitter: sub, Session: "s1", Concurrency: 1, Clock: clock}
	res, err := r.Run(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	// Every turn is due at start + k*interval, however long the earlier
	// submissions took.
	if len(clock.sleeps) != turns {
		t.Fatalf("%d waits, want %d", len(clock.sleeps), turns)
	}
	for k, at := range clock.sleeps {
		if want := res.Start.Add(time.Duration(k) * interval); !at.Equal(want) {
			t.Fatalf("turn %d waited until start+%v, want start+%v", k, at.Sub(res.Start), time.Duration(k)*interval)
		}
	}
	// No turn starts early, and none is late by more than what one
	// submission in flight can add (the fake clock lets the worker's time
	// and the dispatcher's wait interleave): lateness never accumulates.
	for _, s := range res.Submissions {
		if s.Dispatched.Before(s.Planned) || s.Started.Before(s.Dispatched) {
			t.Fatalf("job %d: due %v, dispatched %v, sent %v", s.Seq, s.Planned, s.Dispatched, s.Started)
		}
		if lag := s.Dispatched.Sub(s.Planned); lag > cost {
			t.Fatalf("turn %d started %v late: the schedule drifts", s.Turn, lag)
		}
		if lag := s.Started.Sub(s.Planned); lag > interval+cost {
			t.Fatalf("job of turn %d sent %v late: the schedule drifts", s.Turn, lag)
		}
	}
	if got, want := res.End.Sub(res.Start), time.Duration(turns)*interval+cost; got > want {
		t.Fatalf("the run took %v of virtual time, want at most %v", got, want)
	}
	if c := res.Counters; c.Planned != turns || c.Submitted != turns || c.Accepted != turns || c.Refused != 0 {
		t.Fatalf("counters %+v", c)
	}
}

func TestRunnerNamesJobsUniquelyAndValidly(t *testing.T) {
	cases := []struct {
		name    string
		session string
		subnet  string
		nets    int // distinct subnets expected, 0 = none given
	}{
		{"a numeric session, no subnet", "1700000000", "", 0},
		{"a named session, a /16 pool", "exp-a.1", "129.59.0.0/16", 256},
		{"a small pool shared by every job", "s", "10.52.1.0/26", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The clock never moves: every job is sent in the same millisecond.
			clock := newFakeClock()
			sub := &fakeSubmitter{}
			pool, err := stressclient.NewSubnetPool(tc.subnet)
			if err != nil {
				t.Fatal(err)
			}
			plan := steadyPlan(t, 500, 1, time.Second)
			r := &stressclient.Runner{Submitter: sub, Session: tc.session, Subnets: pool, Concurrency: 8, Clock: clock}
			if _, err := r.Run(context.Background(), plan); err != nil {
				t.Fatal(err)
			}
			names, nets := map[string]bool{}, map[string]bool{}
			for _, j := range sub.jobs {
				if names[j.Name] {
					t.Fatalf("two jobs named %s", j.Name)
				}
				names[j.Name] = true
				if !strings.HasPrefix(j.Name, fmt.Sprintf("job%d-%s-", clock.Now().UnixMilli(), tc.session)) {
					t.Fatalf("job name %s is not job<ms>-<session>-<n>", j.Name)
				}
				if err := api.ValidName("job_name", j.Name); err != nil {
					t.Fatal(err)
				}
				if j.Info.Network.Name != "RESTfulSwarmNetwork_"+j.Name || string(j.Session) != tc.session {
					t.Fatalf("network %q session %q", j.Info.Network.Name, j.Session)
				}
				for i, task := range j.Info.Tasks {
					if task.ContainerName != fmt.Sprintf("%s_task%d", j.Name, i+1) {
						t.Fatalf("task %d named %s", i, task.ContainerName)
					}
				}
				if j.Info.Network.Subnet != "" {
					nets[j.Info.Network.Subnet] = true
				}
				// The frontend's own validation accepts the job as built.
				if err := j.Clone().Validate(api.DefaultLimits()); err != nil {
					t.Fatalf("job %s is refused by validation: %v", j.Name, err)
				}
			}
			if len(names) != 500 {
				t.Fatalf("%d jobs, want 500", len(names))
			}
			if len(nets) != tc.nets {
				t.Fatalf("%d distinct subnets, want %d", len(nets), tc.nets)
			}
		})
	}
}

func TestRunnerCountsRefusalsByReason(t *testing.T) {
	refuse := func(j *api.Job) error {
		var n int
		fmt.Sscanf(j.Name[strings.LastIndexByte(j.Name, '-')+1:], "%d", &n)
		switch n % 4 {
		case 1:
			return &api.StatusError{Status: http.StatusBadRequest, Detail: api.ErrorDetail{Code: "invalid",
				Message: "job_info.tasks." + j.Name + "_task1.req_cores: must be at most 8"}}
		case 2:
			return fmt.Errorf("POST /api/v1/jobs: %w: connection refused", api.ErrUnavailable)
		}
		return nil
	}
	sub := &fakeSubmitter{refuse: refuse}
	c := &stressclient.Counters{}
	r := &stressclient.Runner{Submitter: sub, Session: "s", Clock: newFakeClock(), Counters: c}
	res, err := r.Run(context.Background(), steadyPlan(t, 10, 4, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Snapshot(time.Now())
	if s.Accepted != 20 || s.Refused != 20 || s.Submitted != 40 || len(res.Accepted()) != 20 {
		t.Fatalf("snapshot %+v, %d accepted", s, len(res.Accepted()))
	}
	want := map[string]int{
		"400 invalid: job_info.tasks.<job>_task1.req_cores: must be at most 8": 10,
		"POST /api/v1/jobs: unavailable: connection refused":                   10,
	}
	if fmt.Sprint(s.Reasons) != fmt.Sprint(want) {
		t.Fatalf("reasons %v, want %v", s.Reasons, want)
	}
	if !strings.Contains(res.Text(), "refused 10: 400 invalid") || !strings.Contains(res.Markdown(), "| refused (10) |") {
		t.Fatalf("summary does not list the reasons:\n%s", res.Text())
	}
}

func TestRunnerStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clock := newFakeClock()
	sub := &fakeSubmitter{refuse: func(j *api.Job) error {
		if strings.HasSuffix(j.Name, "-3") {
			cancel()
		}
		return nil
	}}
	r := &stressclient.Runner{Submitter: sub, Session: "s", Concurrency: 1, Clock: clock}
	res, err := r.Run(ctx, steadyPlan(t, 1, 10, time.Second))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// Submissions in flight finish; nothing more is sent.
	if n := len(res.Accepted()); n < 3 || n > 4 {
		t.Fatalf("%d jobs accepted after cancelling at the third", n)
	}
	for _, s := range res.Submissions[len(res.Accepted()):] {
		if s.Job != "" {
			t.Fatalf("job %s was sent after the run was cancelled", s.Job)
		}
	}
}

func TestRunnerRefusesBadSession(t *testing.T) {
	for _, s := range []string{"", "has_underscore", "has space", strings.Repeat("x", 65), "-leading"} {
		r := &stressclient.Runner{Submitter: &fakeSubmitter{}, Session: s}
		if _, err := r.Run(context.Background(), steadyPlan(t, 1, 1, time.Second)); !errors.Is(err, stressclient.ErrInvalid) {
			t.Fatalf("session %q: got %v, want ErrInvalid", s, err)
		}
	}
}

func TestSubnetPool(t *testing.T) {
	cases := []struct {
		cidr   string
		seqs   []int
		want   []string
		shared bool
	}{
		{"", []int{1, 2}, []string{"", ""}, false},
		{"129.59.0.0/16", []int{1, 2, 256, 257}, []string{"129.59.0.0/24", "129.59.1.0/24", "129.59.255.0/24", "129.59.0.0/24"}, false},
		{"10.52.1.7/24", []int{1, 2}, []string{"10.52.1.0/24", "10.52.1.0/24"}, false},
		{"10.52.1.0/28", []int{1, 9}, []string{"10.52.1.0/28", "10.52.1.0/28"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.cidr, func(t *testing.T) {
			p, err := stressclient.NewSubnetPool(tc.cidr)
			if err != nil {
				t.Fatal(err)
			}
			if p.Shared() != tc.shared {
				t.Fatalf("shared %v", p.Shared())
			}
			for i, seq := range tc.seqs {
				if got := p.For(seq); got != tc.want[i] {
					t.Fatalf("job %d: %q, want %q", seq, got, tc.want[i])
				}
			}
		})
	}
}

// fakeLister serves pages of a fixed list of jobs, and counts down the
// unfinished ones on each poll.
type fakeLister struct {
	mu         sync.Mutex
	jobs       []*api.Job
	unfinished []int // successive answers to the unfinished query
	fail       int   // fail this many polls first
}

func (l *fakeLister) Jobs(_ context.Context, f api.JobFilter) (*api.JobList, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(f.Status) > 0 {
		if l.fail > 0 {
			l.fail--
			return nil, api.ErrUnavailable
		}
		n := l.unfinished[0]
		if len(l.unfinished) > 1 {
			l.unfinished = l.unfinished[1:]
		}
		return &api.JobList{Total: n}, nil
	}
	end := min(f.Offset+f.Limit, len(l.jobs))
	return &api.JobList{Jobs: l.jobs[f.Offset:end], Total: len(l.jobs)}, nil
}

func TestWaitAndFetch(t *testing.T) {
	l := &fakeLister{unfinished: []int{40, 12, 3, 0}, fail: 2}
	for i := range 2500 {
		l.jobs = append(l.jobs, &api.Job{Name: fmt.Sprintf("j%d", i)})
	}
	c := &stressclient.Counters{}
	left, err := stressclient.Wait(context.Background(), l, "s", 50, time.Millisecond, c)
	if err != nil || left != 0 {
		t.Fatalf("Wait: %d left, %v", left, err)
	}
	if s := c.Snapshot(time.Now()); s.Finished != 50 || !s.Waiting {
		t.Fatalf("counters %+v", s)
	}
	jobs, err := stressclient.FetchJobs(context.Background(), l, "s")
	if err != nil || len(jobs) != 2500 || jobs[2499].Name != "j2499" {
		t.Fatalf("fetched %d jobs, %v", len(jobs), err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stuck := &fakeLister{unfinished: []int{7}}
	if left, err := stressclient.Wait(ctx, stuck, "s", 10, time.Millisecond, nil); !errors.Is(err, context.Canceled) || left != 7 {
		t.Fatalf("cancelled Wait: %d left, %v", left, err)
	}
}

func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	c := &stressclient.Counters{}
	clock := newFakeClock()
	r := &stressclient.Runner{Submitter: &fakeSubmitter{}, Session: "s", Clock: clock, Counters: c}
	if _, err := r.Run(context.Background(), steadyPlan(t, 3, 2, time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	(&stressclient.Progress{Out: &out, Counters: c}).Run(ctx)
	if got := out.String(); !strings.HasPrefix(got, "stress: submitting: submitted 6/6, accepted 6, refused 0, finished 0,") {
		t.Fatalf("progress line %q", got)
	}
}

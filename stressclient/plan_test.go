package stressclient_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/rswarm/rswarm/stressclient"
)

func params(mut func(*stressclient.Params)) stressclient.Params {
	p := stressclient.DefaultParams()
	mut(&p)
	return p
}

func schedule(t *testing.T, p stressclient.Params, seed uint64) *stressclient.Plan {
	t.Helper()
	plan, err := stressclient.Schedule(p, seed)
	if err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	return plan
}

// checkTurns verifies that the turns and the arrivals agree: turn k is at
// k*interval, and its arrivals are all at that offset.
func checkTurns(t *testing.T, plan *stressclient.Plan) {
	t.Helper()
	per := map[int]int{}
	for i, a := range plan.Arrivals {
		if a.Seq != i+1 {
			t.Fatalf("arrival %d has seq %d", i, a.Seq)
		}
		if a.Offset != time.Duration(a.Turn)*plan.Interval {
			t.Fatalf("arrival %d of turn %d at %v, want %v", a.Seq, a.Turn, a.Offset, time.Duration(a.Turn)*plan.Interval)
		}
		per[a.Turn]++
	}
	for k, turn := range plan.Turns {
		if turn.Index != k || turn.Offset != time.Duration(k)*plan.Interval {
			t.Fatalf("turn %d: index %d offset %v", k, turn.Index, turn.Offset)
		}
		if per[k] != turn.Jobs {
			t.Fatalf("turn %d says %d jobs, has %d arrivals", k, turn.Jobs, per[k])
		}
	}
}

func TestScheduleTurnProfiles(t *testing.T) {
	cases := []struct {
		name   string
		params stressclient.Params
		// want returns the number of jobs of turn k, given its draw.
		want func(k int, draw float64) int
		// check verifies the draws of all turns, where the profile is random.
		check func(t *testing.T, turns []stressclient.Turn)
	}{
		{
			name: "steady submits feed_constant jobs every turn",
			params: params(func(p *stressclient.Params) {
				p.Profile, p.FeedConstant, p.Turns, p.Interval = stressclient.Steady, 7, 20, 250*time.Millisecond
			}),
			want: func(int, float64) int { return 7 },
		},
		{
			name: "incremental submits round(a*t + b) jobs, never fewer than zero",
			params: params(func(p *stressclient.Params) {
				p.Profile, p.Coefficient, p.Constant, p.Turns, p.Interval = stressclient.Incremental, 3, -2, 12, 500*time.Millisecond
			}),
			want: func(k int, _ float64) int {
				// t = k/2 s: -2, -0.5, 1, 2.5, 4, 5.5, ... rounded half away from zero.
				return []int{0, 0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15}[k]
			},
		},
		{
			name: "incremental with the original's early constant starts at zero",
			params: params(func(p *stressclient.Params) {
				p.Profile, p.Coefficient, p.Constant, p.Turns = stressclient.Incremental, 1, -96, 100
			}),
			want: func(k int, _ float64) int { return max(k-96, 0) },
		},
		{
			name:   "bursty submits ceil(X) jobs, X exponential with mean 1/lambda",
			params: params(func(p *stressclient.Params) { p.Profile, p.Lambda, p.Turns = stressclient.Bursty, 0.5, 2000 }),
			want:   func(_ int, draw float64) int { return int(math.Ceil(draw)) },
			check: func(t *testing.T, turns []stressclient.Turn) {
				draws := make([]float64, len(turns))
				for i, tn := range turns {
					draws[i] = tn.Draw
				}
				ksExponential(t, draws, 0.5)
			},
		},
		{
			name: "random submits a uniform integer in [lower, upper]",
			params: params(func(p *stressclient.Params) {
				p.Profile, p.LowerBound, p.UpperBound, p.Turns = stressclient.Random, 2, 5, 4000
			}),
			want: func(_ int, draw float64) int { return int(draw) },
			check: func(t *testing.T, turns []stressclient.Turn) {
				seen := map[int]int{}
				for _, tn := range turns {
					if tn.Jobs < 2 || tn.Jobs > 5 {
						t.Fatalf("turn %d: %d jobs, outside [2, 5]", tn.Index, tn.Jobs)
					}
					seen[tn.Jobs]++
				}
				// Each of the 4 values is expected 1000 times; a
				// chi-square of 3 degrees of freedom stays below 16.27
				// (p = 0.001) for a uniform draw.
				chi := 0.0
				for v := 2; v <= 5; v++ {
					d := float64(seen[v]) - 1000
					chi += d * d / 1000
				}
				if chi > 16.27 {
					t.Fatalf("counts %v are not uniform: chi-square %.2f", seen, chi)
				}
			},
		},
		{
			name: "random with the original's early bounds [0, 1] may submit nothing",
			params: params(func(p *stressclient.Params) {
				p.Profile, p.LowerBound, p.UpperBound, p.Turns = stressclient.Random, 0, 1, 50
			}),
			want: func(_ int, draw float64) int { return int(draw) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := schedule(t, tc.params, 42)
			if len(plan.Turns) != tc.params.Turns {
				t.Fatalf("%d turns, want %d", len(plan.Turns), tc.params.Turns)
			}
			total := 0
			for k, turn := range plan.Turns {
				if want := tc.want(k, turn.Draw); turn.Jobs != want {
					t.Fatalf("turn %d (draw %v): %d jobs, want %d", k, turn.Draw, turn.Jobs, want)
				}
				total += turn.Jobs
			}
			if plan.Jobs() != total {
				t.Fatalf("%d arrivals, turns sum to %d", plan.Jobs(), total)
			}
			checkTurns(t, plan)
			if tc.check != nil {
				tc.check(t, plan.Turns)
			}
			if plan.Horizon != time.Duration(tc.params.Turns)*tc.params.Interval {
				t.Fatalf("horizon %v", plan.Horizon)
			}
		})
	}
}

// ksExponential checks with a two-sample Kolmogorov-Smirnov test that xs
// comes from an exponential distribution of the given rate, against a
// seeded sample from distuv.Exponential, and that the test tells a rate
// half as large apart (so that it has the power to catch a mean/rate mix-up).
func ksExponential(t *testing.T, xs []float64, rate float64) {
	t.Helper()
	sample := func(rate float64, n int) []float64 {
		d := distuv.Exponential{Rate: rate, Src: rand.NewPCG(7, 11)}
		out := make([]float64, n)
		for i := range out {
			out[i] = d.Rand()
		}
		sort.Float64s(out)
		return out
	}
	x := append([]float64(nil), xs...)
	sort.Float64s(x)
	const m = 20000
	// Critical value at alpha = 0.001: c(alpha) * sqrt((n+m)/(n*m)), c = 1.949.
	crit := 1.949 * math.Sqrt(float64(len(x)+m)/float64(len(x)*m))
	if d := stat.KolmogorovSmirnov(x, nil, sample(rate, m), nil); d > crit {
		t.Fatalf("KS distance to Exp(%v) is %.4f > %.4f: not exponential at that rate", rate, d, crit)
	}
	if d := stat.KolmogorovSmirnov(x, nil, sample(rate/2, m), nil); d <= crit {
		t.Fatalf("KS distance to Exp(%v) is only %.4f <= %.4f: the test cannot tell the rates apart", rate/2, d, crit)
	}
}

func TestSchedulePoisson(t *testing.T) {
	const lambda, turns = 40.0, 50
	p := params(func(p *stressclient.Params) {
		p.Profile, p.Lambda, p.Turns, p.Interval = stressclient.Poisson, lambda, turns, time.Second
	})
	plan := schedule(t, p, 2024)

	var gaps []float64
	prev := time.Duration(0)
	perTurn := map[int]int{}
	for _, a := range plan.Arrivals {
		if a.Offset < prev {
			t.Fatalf("arrival %d at %v before the previous one at %v", a.Seq, a.Offset, prev)
		}
		if a.Offset >= plan.Horizon {
			t.Fatalf("arrival %d at %v, after the horizon %v", a.Seq, a.Offset, plan.Horizon)
		}
		if want := int(a.Offset / time.Second); a.Turn != want {
			t.Fatalf("arrival at %v in turn %d, want %d", a.Offset, a.Turn, want)
		}
		gaps = append(gaps, (a.Offset - prev).Seconds())
		prev = a.Offset
		perTurn[a.Turn]++
	}
	ksExponential(t, gaps, lambda)

	// The count over the horizon is Poisson(lambda * 50 s = 2000): within
	// five standard deviations for this seed.
	if n := float64(plan.Jobs()); math.Abs(n-2000) > 5*math.Sqrt(2000) {
		t.Fatalf("%v arrivals in %v at %v/s", n, plan.Horizon, lambda)
	}
	for k, turn := range plan.Turns {
		if turn.Jobs != perTurn[k] {
			t.Fatalf("window %d says %d jobs, holds %d", k, turn.Jobs, perTurn[k])
		}
	}
}

func TestScheduleTrace(t *testing.T) {
	entries, err := stressclient.ReadTraceFile("testdata/trace.csv")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		command  string
		commands []string
	}{
		{"each job sleeps for its duration", "", []string{"sleep 3", "sleep 10", "sleep 1.5"}},
		{"a given command is kept", "sleep 9", []string{"sleep 9", "sleep 9", "sleep 9"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := params(func(p *stressclient.Params) { p.Profile, p.Trace, p.Command = stressclient.Trace, entries, tc.command })
			plan := schedule(t, p, 1)
			want := []struct {
				at           time.Duration
				tasks, cores int
				dur          float64
			}{{0, 2, 1, 3}, {500 * time.Millisecond, 1, 4, 10}, {2250 * time.Millisecond, 3, 2, 1.5}}
			if plan.Jobs() != len(want) {
				t.Fatalf("%d arrivals, want %d", plan.Jobs(), len(want))
			}
			for i, w := range want {
				a := plan.Arrivals[i]
				if a.Offset != w.at || a.Shape.Tasks != w.tasks || a.Shape.Cores != w.cores || a.Shape.Duration != w.dur || a.Shape.Command != tc.commands[i] {
					t.Fatalf("arrival %d: %+v, want %+v with command %q", i, a, w, tc.commands[i])
				}
			}
			if plan.Horizon != 2250*time.Millisecond || len(plan.Turns) != 3 || plan.Turns[2].Jobs != 1 {
				t.Fatalf("horizon %v turns %+v", plan.Horizon, plan.Turns)
			}
		})
	}
}

func TestScheduleIsReproducible(t *testing.T) {
	for _, prof := range stressclient.Profiles {
		t.Run(string(prof), func(t *testing.T) {
			p := params(func(p *stressclient.Params) {
				p.Profile, p.Turns, p.Lambda = prof, 30, 3
				p.Trace = []stressclient.TraceEntry{{Offset: 1, Tasks: 1, Cores: 1, Duration: 1}}
			})
			a, b := schedule(t, p, 99), schedule(t, p, 99)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("the same seed gave two plans")
			}
			if prof == stressclient.Bursty || prof == stressclient.Random || prof == stressclient.Poisson {
				if c := schedule(t, p, 100); reflect.DeepEqual(a.Turns, c.Turns) {
					t.Fatal("another seed gave the same arrivals")
				}
			}
			for _, a := range a.Arrivals {
				if a.Shape.Deadline < 0 || a.Shape.Deadline > 20 {
					t.Fatalf("deadline %d outside the original's 0..20", a.Shape.Deadline)
				}
			}
		})
	}
}

func TestScheduleRefusesBadParams(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*stressclient.Params)
	}{
		{"unknown profile", func(p *stressclient.Params) { p.Profile = "sinusoidal" }},
		{"no turns", func(p *stressclient.Params) { p.Turns = 0 }},
		{"zero interval", func(p *stressclient.Params) { p.Interval = 0 }},
		{"no tasks", func(p *stressclient.Params) { p.TaskCount = 0 }},
		{"no cores", func(p *stressclient.Params) { p.TaskCores = 0 }},
		{"memory below Docker's minimum", func(p *stressclient.Params) { p.TaskMemMB = 4 }},
		{"negative feed constant", func(p *stressclient.Params) { p.FeedConstant = -1 }},
		{"bursty without a rate", func(p *stressclient.Params) { p.Profile, p.Lambda = stressclient.Bursty, 0 }},
		{"poisson with a negative rate", func(p *stressclient.Params) { p.Profile, p.Lambda = stressclient.Poisson, -1 }},
		{"random bounds reversed", func(p *stressclient.Params) { p.Profile, p.LowerBound, p.UpperBound = stressclient.Random, 3, 1 }},
		{"trace without entries", func(p *stressclient.Params) { p.Profile = stressclient.Trace }},
		{"subnet that is not a CIDR", func(p *stressclient.Params) { p.Subnet = "129.59.0.0" }},
		{"command with an open quote", func(p *stressclient.Params) { p.Command = `sh -c "sleep 1` }},
		{"a plan too large to hold", func(p *stressclient.Params) {
			p.Profile, p.Coefficient, p.Turns = stressclient.Incremental, 1e6, 100
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stressclient.Schedule(params(tc.mut), 1)
			if !errors.Is(err, stressclient.ErrInvalid) {
				t.Fatalf("got %v, want an ErrInvalid", err)
			}
		})
	}
}

package stressclient

import (
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
)

// Shape is what one job asks for.
type Shape struct {
	Tasks    int     // tasks in the job
	Cores    int     // whole cores per task
	MemMB    int     // memory limit per task in MB, 0 = none
	Image    string  // image of every task
	Command  string  // command of every task
	Duration float64 // seconds a simulated worker runs each task, 0 = from the command
	Deadline int     // the original's random 0..20 per task (unused by placement), drawn from the seed
}

// Arrival is one job submission of a plan.
type Arrival struct {
	// Seq is the 1-based position in the plan; it is the counter at the
	// end of the job's name, so two jobs never share a name.
	Seq int
	// Turn is the 0-based turn the arrival belongs to: for the turn
	// profiles the turn that submits it, otherwise the window
	// [Turn*Interval, (Turn+1)*Interval) that holds its offset.
	Turn int
	// Offset is when to submit, from the start of the run.
	Offset time.Duration
	Shape  Shape
}

// Turn is one turn of a plan: how many jobs it submits and, for the
// random profiles, the variate the count was made from.
type Turn struct {
	Index  int
	Offset time.Duration // Index * Interval
	Jobs   int
	// Draw is the random variate behind Jobs: X ~ Exp(Lambda) for bursty
	// (Jobs = ceil(X)), the uniform integer for random; 0 otherwise.
	Draw float64
}

// Plan is a stress run worked out in advance: every submission, when it
// happens and what it asks for. It depends only on the parameters and the
// seed.
type Plan struct {
	Profile  Profile
	Seed     uint64
	Interval time.Duration
	// Horizon is the nominal length of the run: Turns*Interval, or for a
	// trace the last offset.
	Horizon  time.Duration
	Turns    []Turn
	Arrivals []Arrival
}

// Random streams of a seed: counts and shapes are drawn from separate
// streams, so that a change to how shapes are drawn never changes the
// arrival counts of a seed.
const (
	streamCounts = 0x636f756e7473 // "counts"
	streamShapes = 0x736861706573 // "shapes"
)

// Schedule works out the plan of a stress run: the pure core of the stress
// client. The same parameters and seed always give the same plan.
func Schedule(p Params, seed uint64) (*Plan, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	counts := rand.New(rand.NewPCG(seed, streamCounts))
	shapes := rand.New(rand.NewPCG(seed, streamShapes))
	plan := &Plan{Profile: p.Profile, Seed: seed, Interval: p.Interval, Horizon: time.Duration(p.Turns) * p.Interval}
	base := Shape{Tasks: p.TaskCount, Cores: p.TaskCores, MemMB: p.TaskMemMB, Image: p.Image, Command: p.Command, Duration: p.Duration}
	if base.Command == "" {
		base.Command = DefaultCommand
	}
	add := func(at time.Duration, turn int, s Shape) error {
		if len(plan.Arrivals) >= maxArrivals {
			return invalid("the plan holds more than %d jobs: lower the rate or the number of turns", maxArrivals)
		}
		s.Deadline = shapes.IntN(21)
		plan.Arrivals = append(plan.Arrivals, Arrival{Seq: len(plan.Arrivals) + 1, Turn: turn, Offset: at, Shape: s})
		return nil
	}

	switch p.Profile {
	case Steady, Bursty, Incremental, Random:
		total := 0
		for k := 0; k < p.Turns; k++ {
			n, draw := turnCount(&p, k, counts)
			if total += n; n > maxArrivals || total > maxArrivals {
				return nil, invalid("the plan holds more than %d jobs (turn %d alone asks for %.0f): lower the rate or the number of turns", maxArrivals, k, max(draw, float64(n)))
			}
			plan.Turns = append(plan.Turns, Turn{Index: k, Offset: time.Duration(k) * p.Interval, Jobs: n, Draw: draw})
		}
		plan.Arrivals = make([]Arrival, 0, total)
		for _, turn := range plan.Turns {
			for range turn.Jobs {
				if err := add(turn.Offset, turn.Index, base); err != nil {
					return nil, err
				}
			}
		}
	case Poisson:
		horizon := plan.Horizon.Seconds()
		if p.Lambda*horizon > maxArrivals {
			return nil, invalid("the plan would hold about %.0f jobs, more than %d: lower the rate or the number of turns", p.Lambda*horizon, maxArrivals)
		}
		for t := counts.ExpFloat64() / p.Lambda; t < horizon; t += counts.ExpFloat64() / p.Lambda {
			at := seconds(t)
			if err := add(at, int(at/p.Interval), base); err != nil {
				return nil, err
			}
		}
		plan.Turns = windows(plan.Arrivals, p.Interval, p.Turns)
	case Trace:
		entries := append([]TraceEntry(nil), p.Trace...)
		sort.SliceStable(entries, func(i, j int) bool { return entries[i].Offset < entries[j].Offset })
		for _, e := range entries {
			s := base
			s.Tasks, s.Cores, s.Duration = e.Tasks, e.Cores, e.Duration
			if p.Command == "" {
				s.Command = "sleep " + strconv.FormatFloat(e.Duration, 'f', -1, 64)
			}
			at := seconds(e.Offset)
			if err := add(at, int(at/p.Interval), s); err != nil {
				return nil, err
			}
		}
		plan.Horizon = seconds(entries[len(entries)-1].Offset)
		plan.Turns = windows(plan.Arrivals, p.Interval, int(plan.Horizon/p.Interval)+1)
	}
	return plan, nil
}

// turnCount is the original's feed function: the number of jobs of turn k.
func turnCount(p *Params, k int, rng *rand.Rand) (n int, draw float64) {
	switch p.Profile {
	case Steady:
		return p.FeedConstant, 0
	case Bursty:
		x := rng.ExpFloat64() / p.Lambda
		return int(math.Ceil(x)), x
	case Incremental:
		t := float64(k) * p.Interval.Seconds()
		v := math.Round(p.Coefficient*t + p.Constant)
		if v < 0 {
			return 0, 0
		}
		if v > maxArrivals {
			return maxArrivals + 1, v
		}
		return int(v), 0
	case Random:
		n := p.LowerBound + rng.IntN(p.UpperBound-p.LowerBound+1)
		return n, float64(n)
	}
	return 0, 0
}

// windows counts arrivals per interval window, for profiles without turns.
func windows(as []Arrival, interval time.Duration, n int) []Turn {
	if n < 1 {
		n = 1
	}
	ts := make([]Turn, n)
	for k := range ts {
		ts[k] = Turn{Index: k, Offset: time.Duration(k) * interval}
	}
	for _, a := range as {
		if a.Turn < len(ts) {
			ts[a.Turn].Jobs++
		}
	}
	return ts
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// Jobs returns the number of jobs the plan submits.
func (p *Plan) Jobs() int { return len(p.Arrivals) }

// TargetRate is the plan's average rate in jobs per second over its horizon
// (0 for a plan of no length).
func (p *Plan) TargetRate() float64 {
	h := p.Horizon
	if h <= 0 {
		return 0
	}
	return float64(len(p.Arrivals)) / h.Seconds()
}

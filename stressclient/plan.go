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
// client. The same parameters and seed always give the same plan, whose
// arrivals are those of NewStream with the same parameters and seed.
func Schedule(p Params, seed uint64) (*Plan, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	plan := &Plan{Profile: p.Profile, Seed: seed, Interval: p.Interval, Horizon: time.Duration(p.Turns) * p.Interval}
	switch p.Profile {
	case Steady, Bursty, Incremental, Random:
		// The counts are worked out first, from their own stream, so that
		// a plan too large is refused before any arrival is made.
		counts := rand.New(rand.NewPCG(seed, streamCounts))
		total := 0
		for k := 0; k < p.Turns; k++ {
			n, draw := turnCount(&p, k, counts)
			if total += n; n > maxArrivals || total > maxArrivals {
				return nil, invalid("the plan holds more than %d jobs (turn %d alone asks for %.0f): lower the rate or the number of turns", maxArrivals, k, max(draw, float64(n)))
			}
			plan.Turns = append(plan.Turns, Turn{Index: k, Offset: time.Duration(k) * p.Interval, Jobs: n, Draw: draw})
		}
		plan.Arrivals = make([]Arrival, 0, total)
	case Poisson:
		if horizon := plan.Horizon.Seconds(); p.Lambda*horizon > maxArrivals {
			return nil, invalid("the plan would hold about %.0f jobs, more than %d: lower the rate or the number of turns", p.Lambda*horizon, maxArrivals)
		}
	}
	st, err := NewStream(p, seed)
	if err != nil {
		return nil, err
	}
	for {
		a, ok := st.Next()
		if !ok {
			break
		}
		if len(plan.Arrivals) >= maxArrivals {
			return nil, invalid("the plan holds more than %d jobs: lower the rate or the number of turns", maxArrivals)
		}
		plan.Arrivals = append(plan.Arrivals, a)
	}
	switch p.Profile {
	case Poisson:
		plan.Turns = windows(plan.Arrivals, p.Interval, p.Turns)
	case Trace:
		plan.Horizon = seconds(st.entries[len(st.entries)-1].Offset)
		plan.Turns = windows(plan.Arrivals, p.Interval, int(plan.Horizon/p.Interval)+1)
	}
	return plan, nil
}

// Stream yields the arrivals of a plan one at a time, in order, without
// holding them: Schedule collects it into a Plan, and `rswarm simulate`
// drives it in virtual time, so that an hour of 2,000 jobs a second needs no
// more memory than one arrival. It has no bound on the number of arrivals.
type Stream struct {
	p              Params
	counts, shapes *rand.Rand
	base           Shape
	seq            int
	// Turn profiles: the next turn to count, the turn being emitted and
	// how many of its arrivals are left.
	next, cur, left int
	// Poisson: the last arrival, in seconds, and the horizon.
	t, horizon float64
	// Trace: the entries by offset, and the next one.
	entries []TraceEntry
	i       int
}

// NewStream returns the stream of arrivals of the parameters and seed.
func NewStream(p Params, seed uint64) (*Stream, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s := &Stream{
		p:       p,
		counts:  rand.New(rand.NewPCG(seed, streamCounts)),
		shapes:  rand.New(rand.NewPCG(seed, streamShapes)),
		base:    Shape{Tasks: p.TaskCount, Cores: p.TaskCores, MemMB: p.TaskMemMB, Image: p.Image, Command: p.Command, Duration: p.Duration},
		horizon: (time.Duration(p.Turns) * p.Interval).Seconds(),
	}
	if s.base.Command == "" {
		s.base.Command = DefaultCommand
	}
	if p.Profile == Trace {
		s.entries = append([]TraceEntry(nil), p.Trace...)
		sort.SliceStable(s.entries, func(i, j int) bool { return s.entries[i].Offset < s.entries[j].Offset })
	}
	return s, nil
}

// Next returns the next arrival, or false after the last.
func (s *Stream) Next() (Arrival, bool) {
	switch s.p.Profile {
	case Steady, Bursty, Incremental, Random:
		for s.left == 0 {
			if s.next >= s.p.Turns {
				return Arrival{}, false
			}
			s.left, _ = turnCount(&s.p, s.next, s.counts)
			s.cur = s.next
			s.next++
		}
		s.left--
		return s.arrival(time.Duration(s.cur)*s.p.Interval, s.cur, s.base), true
	case Poisson:
		s.t += s.counts.ExpFloat64() / s.p.Lambda
		if s.t >= s.horizon {
			s.t = math.Inf(1) // stays past the end
			return Arrival{}, false
		}
		at := seconds(s.t)
		return s.arrival(at, int(at/s.p.Interval), s.base), true
	case Trace:
		if s.i >= len(s.entries) {
			return Arrival{}, false
		}
		e := s.entries[s.i]
		s.i++
		sh := s.base
		sh.Tasks, sh.Cores, sh.Duration = e.Tasks, e.Cores, e.Duration
		if s.p.Command == "" {
			sh.Command = "sleep " + strconv.FormatFloat(e.Duration, 'f', -1, 64)
		}
		at := seconds(e.Offset)
		return s.arrival(at, int(at/s.p.Interval), sh), true
	}
	return Arrival{}, false
}

func (s *Stream) arrival(at time.Duration, turn int, sh Shape) Arrival {
	sh.Deadline = s.shapes.IntN(21)
	s.seq++
	return Arrival{Seq: s.seq, Turn: turn, Offset: at, Shape: sh}
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

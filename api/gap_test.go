package api

import (
	"math"
	"testing"
)

func TestGaps(t *testing.T) {
	// step is one call: Waiting(at) when served is false, else Served(at, left).
	type step struct {
		at     float64
		served bool
		left   bool
	}
	w := func(at float64) step { return step{at: at} }
	s := func(at float64, left bool) step { return step{at: at, served: true, left: left} }
	cases := []struct {
		name      string
		steps     []step
		gaps      uint64  // gaps recorded
		sum       float64 // their total
		max       float64
		maxAt     float64
		under1s   uint64 // gaps <= 1 s (the histogram's bucket)
		remaining bool   // work still waits unserved
	}{
		{name: "nothing waits: rounds are no gaps", steps: []step{s(1, false), s(2, false), s(9, false)}},
		{
			// arrival at 10, served at 10.2: 0.2.
			name: "one arrival served", steps: []step{s(1, false), w(10), s(10.2, false)},
			gaps: 1, sum: 0.2, max: 0.2, maxAt: 10.2, under1s: 1,
		},
		{
			// Arrivals at 10, 11, 12: the first one counts, 13 - 10 = 3.
			name: "the earliest arrival counts", steps: []step{w(11), w(10), w(12), s(13, false)},
			gaps: 1, sum: 3, max: 3, maxAt: 13,
		},
		{
			// Work left after every round: 2 - 1 = 1, then 7 - 2 = 5 (the
			// stall), then 7.5 - 7 = 0.5; the queue empties at 7.5.
			name: "rounds that leave work waiting: the time between them", steps: []step{w(1), s(1, true), s(2, true), s(7, true), s(7.5, false)},
			// 0 (1 - 1) + 1 + 5 + 0.5 = 6.5 over four gaps; three <= 1 s.
			gaps: 4, sum: 6.5, max: 5, maxAt: 7, under1s: 3,
		},
		{
			// A job submitted at 4 (before the round at 5, which did not see
			// it yet) waits from the round on: 6 - 5 = 1, not 6 - 4.
			name: "work older than the last service waits from it", steps: []step{s(5, false), w(4), s(6, false)},
			gaps: 1, sum: 1, max: 1, maxAt: 6, under1s: 1,
		},
		{
			// Left at 2, a new arrival at 3 does not move the wait's start: 4 - 2.
			name: "a later arrival does not shorten a wait", steps: []step{w(2), s(2, true), w(3), s(4, false)},
			gaps: 2, sum: 2, max: 2, maxAt: 4,
			under1s: 1,
		},
		{
			// A clock that goes back a little gives a gap of 0, not a negative one.
			name: "a clock going back", steps: []step{w(10), s(9.5, false)},
			gaps: 1, sum: 0, max: 0, maxAt: 9.5, under1s: 1,
		},
		{name: "work waiting and not served yet", steps: []step{s(1, false), w(3)}, remaining: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGaps()
			for _, st := range tc.steps {
				if st.served {
					g.Served(st.at, st.left)
				} else {
					g.Waiting(st.at)
				}
			}
			under1s := g.Hist.Counts[5] // the bucket of 1 s
			if g.Hist.Count != tc.gaps || math.Abs(g.Hist.Sum-tc.sum) > 1e-9 || math.Abs(g.Max-tc.max) > 1e-9 || g.MaxAt != tc.maxAt || under1s != tc.under1s {
				t.Errorf("got %d gaps summing %v, max %v at %v, %d within 1 s; want %d, %v, %v at %v, %d",
					g.Hist.Count, g.Hist.Sum, g.Max, g.MaxAt, under1s, tc.gaps, tc.sum, tc.max, tc.maxAt, tc.under1s)
			}
			if (g.since != 0) != tc.remaining {
				t.Errorf("work still waiting = %v, want %v", g.since != 0, tc.remaining)
			}
		})
	}
}

func TestGapsClone(t *testing.T) {
	g := NewGaps()
	g.Waiting(1)
	g.Served(2, false)
	c := g.Clone()
	g.Waiting(3)
	g.Served(4, false)
	if c.Hist.Count != 1 || c.Hist.Counts[len(c.Hist.Counts)-1] != 1 {
		t.Fatalf("the clone changed with the original: %+v", c.Hist)
	}
}

package api

// Gaps measures how long waiting work goes unserved: for each service (a
// placement round, a batch of statuses applied), the time from when the
// work it finds had begun to wait, or from the service before if that is
// later, to this service. Between two services that each leave work
// waiting, that is the time between them; after an idle spell, the time
// from the first arrival. A stalled loop shows as one long gap.
//
// Gaps is pure: times are Unix seconds given by the caller. It is not safe
// for concurrent use.
type Gaps struct {
	// Hist holds every gap in seconds.
	Hist Histogram `json:"hist"`
	// Max is the longest gap in seconds, and MaxAt the Unix time it ended.
	Max   float64 `json:"max"`
	MaxAt float64 `json:"max_at"`

	last  float64 // the last service
	since float64 // when the unserved work began to wait; 0: none waits
}

// NewGaps returns an empty record with buckets from 10 ms to 30 s.
func NewGaps() Gaps {
	return Gaps{Hist: NewHistogram(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)}
}

// Waiting records work waiting since at that no service has found yet.
// Work that arrived before the last service waits from that service on.
func (g *Gaps) Waiting(at float64) {
	at = max(at, g.last)
	if g.since == 0 || at < g.since {
		g.since = at
	}
}

// Served records a service at time at; left says whether work still waits
// after it (it then waits from at).
func (g *Gaps) Served(at float64, left bool) {
	if g.since != 0 {
		gap := max(0, at-g.since)
		g.Hist.Observe(gap)
		if gap > g.Max || g.Hist.Count == 1 {
			g.Max, g.MaxAt = gap, at
		}
	}
	g.last, g.since = at, 0
	if left {
		g.since = at
	}
}

// Clone returns a copy that does not share memory with g.
func (g Gaps) Clone() Gaps {
	g.Hist = g.Hist.Clone()
	return g
}

package report

import (
	"encoding/csv"
	"io"
	"math"
	"sort"
	"strconv"

	"github.com/rswarm/rswarm/api"
)

// A worker's utilisation history (api.Usage) records its busy-core ratio
// when it changes (discovery appends a sample on a worker's first
// heartbeat and whenever the ratio differs from the last one). It is
// therefore a step function: the ratio at time t is that of the worker's
// last sample at or before t. Everything below reads it that way, which is
// also right for samples taken at a regular period.

// UtilisationHeader is the header of utilisation.csv: time in epoch
// seconds, ratio the worker's busy cores over its cores.
var UtilisationHeader = []string{"node", "time", "ratio"}

// Sample is one utilisation sample.
type Sample struct {
	Node  string
	Time  float64 // epoch seconds
	Ratio float64 // busy cores / cores, 0..1
}

// Span is when a worker was alive, in epoch seconds. A worker's
// utilisation is not counted outside it.
type Span struct{ From, To float64 }

// Spans returns the spans of workers from their records: from its join,
// and for a worker that is down or has left, until its last recorded
// heartbeat; a ready worker is alive until now. (A worker's last heartbeat
// is written only now and then, so it bounds only workers that are gone.)
func Spans(ws []*api.Worker) map[string]Span {
	out := make(map[string]Span, len(ws))
	for _, w := range ws {
		sp := Span{From: w.JoinTime, To: math.Inf(1)}
		if w.Status != api.WorkerReady && w.LastHeartbeat > 0 {
			sp.To = w.LastHeartbeat
		}
		out[w.ID] = sp
	}
	return out
}

// series is one worker's samples in time order, with its span.
type series struct {
	node string
	pts  [][2]float64 // (epoch time, ratio)
	lo   float64      // known from: its first sample, or its span's start if later
	hi   float64      // known until: its span's end, or +Inf
}

// prepare turns usage into series sorted by node, each sorted by time.
// With spans, a worker absent from them is known only until its last sample.
func prepare(usage []api.Usage, spans map[string]Span) []series {
	out := make([]series, 0, len(usage))
	for _, u := range usage {
		if len(u.Details) == 0 {
			continue
		}
		s := series{node: u.Node, pts: make([][2]float64, len(u.Details)), hi: math.Inf(1)}
		for i, d := range u.Details {
			s.pts[i] = [2]float64{u.InitTime + d[0], d[1]}
		}
		sort.SliceStable(s.pts, func(a, b int) bool { return s.pts[a][0] < s.pts[b][0] })
		s.lo = s.pts[0][0]
		if spans != nil {
			if sp, ok := spans[u.Node]; ok {
				s.lo, s.hi = max(s.lo, sp.From), sp.To
			} else {
				s.hi = s.pts[len(s.pts)-1][0]
			}
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].node < out[j].node })
	return out
}

// valueAt returns the ratio at t: that of the last sample at or before t.
func (s *series) valueAt(t float64) (float64, bool) {
	i := sort.Search(len(s.pts), func(i int) bool { return s.pts[i][0] > t })
	if i == 0 {
		return 0, false
	}
	return s.pts[i-1][1], true
}

// mean returns the time-weighted mean of the ratio over [a, b), restricted
// to where the worker is known; ok is false when that is empty.
func (s *series) mean(a, b float64) (float64, bool) {
	a, b = max(a, s.lo), min(b, s.hi)
	if !(b > a) {
		return 0, false
	}
	v, _ := s.valueAt(a)
	i := sort.Search(len(s.pts), func(i int) bool { return s.pts[i][0] > a })
	area, t := 0.0, a
	for ; i < len(s.pts) && s.pts[i][0] < b; i++ {
		area += v * (s.pts[i][0] - t)
		t, v = s.pts[i][0], s.pts[i][1]
	}
	area += v * (b - t)
	return area / (b - a), true
}

// Samples returns what utilisation.csv holds for the window [from, to]:
// for each worker known in the window, its ratio at from (when it was
// known before), then every sample inside the window; ordered by node then
// time. spans may be nil (see NewGrid).
func Samples(usage []api.Usage, spans map[string]Span, from, to float64) []Sample {
	var out []Sample
	for _, s := range prepare(usage, spans) {
		if s.lo > to || s.hi < from {
			continue
		}
		if v, ok := s.valueAt(from); ok && from >= s.lo {
			out = append(out, Sample{Node: s.node, Time: from, Ratio: v})
		}
		for _, p := range s.pts {
			if p[0] > from && p[0] <= to && p[0] >= s.lo && p[0] <= s.hi {
				out = append(out, Sample{Node: s.node, Time: p[0], Ratio: p[1]})
			}
		}
	}
	return out
}

// WriteUtilisationCSV writes utilisation.csv.
func WriteUtilisationCSV(w io.Writer, samples []Sample) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(UtilisationHeader); err != nil {
		return err
	}
	for _, s := range samples {
		if err := cw.Write([]string{s.Node, strconv.FormatFloat(s.Time, 'f', 6, 64), strconv.FormatFloat(s.Ratio, 'f', 6, 64)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Grid is core utilisation per worker over time, in columns of equal
// width: the data of the heat map and of the utilisation figures.
type Grid struct {
	Nodes []string // one row per worker, sorted by id
	From  float64  // epoch seconds where column 0 starts
	To    float64  // epoch seconds where the last column ends (it may be narrower than Bin)
	Bin   float64  // column width in seconds
	// Cells holds [row][column] the worker's time-weighted mean busy-core
	// ratio over the column; NaN where the worker is not known (before its
	// first sample, outside its span).
	Cells [][]float64
}

// Columns bound the heat map's width: a column is at least MinBin wide,
// and there are at most MaxColumns of them.
const (
	MaxColumns = 300
	MinBin     = 1.0 // seconds: the workers' default heartbeat period
)

// NewGrid bins the workers' utilisation over [from, to] (epoch seconds).
// spans, when not nil, bounds each worker's utilisation to when it was
// alive (Spans of the store's workers), so that workers gone before the
// experiment are left out; without it a worker's last ratio holds until
// the window's end. It returns nil when no worker is known in the window.
func NewGrid(usage []api.Usage, spans map[string]Span, from, to float64) *Grid {
	if !(to > from) {
		to = from + MinBin
	}
	span := to - from
	bin := max(span/MaxColumns, min(MinBin, span))
	cols := max(int(math.Ceil(span/bin-1e-9)), 1)
	g := &Grid{From: from, To: to, Bin: bin}
	for _, s := range prepare(usage, spans) {
		row := make([]float64, cols)
		known := false
		for c := range row {
			a := from + float64(c)*bin
			b := min(a+bin, to)
			v, ok := s.mean(a, b)
			if !ok {
				v = math.NaN()
			}
			row[c] = v
			known = known || ok
		}
		if known {
			g.Nodes = append(g.Nodes, s.node)
			g.Cells = append(g.Cells, row)
		}
	}
	if len(g.Nodes) == 0 {
		return nil
	}
	return g
}

// Columns returns the number of columns.
func (g *Grid) Columns() int {
	if len(g.Cells) == 0 {
		return 0
	}
	return len(g.Cells[0])
}

// width returns the width of column c (the last may be narrower).
func (g *Grid) width(c int) float64 {
	a := g.From + float64(c)*g.Bin
	return min(a+g.Bin, g.To) - a
}

// Cluster returns the cluster-wide utilisation of each column: the mean
// over the workers known in it (NaN when none is).
func (g *Grid) Cluster() []float64 {
	out := make([]float64, g.Columns())
	for c := range out {
		sum, n := 0.0, 0
		for _, row := range g.Cells {
			if v := row[c]; !math.IsNaN(v) {
				sum += v
				n++
			}
		}
		out[c] = math.NaN()
		if n > 0 {
			out[c] = sum / float64(n)
		}
	}
	return out
}

// Utilisation summarises core utilisation over an experiment.
type Utilisation struct {
	Workers int     // workers known in the window
	Samples int     // rows of utilisation.csv
	From    float64 // window, epoch seconds
	To      float64
	Bin     float64 // seconds per column of the grid
	// Mean is the time-weighted mean of the cluster-wide busy-core ratio
	// (the mean over workers of each column); Peak its largest column. Both
	// are NaN without data.
	Mean, Peak float64
}

// Summarise returns the utilisation figures of the grid (nil grid: no data).
func (g *Grid) Summarise(samples int) Utilisation {
	u := Utilisation{Samples: samples, Mean: math.NaN(), Peak: math.NaN()}
	if g == nil {
		return u
	}
	u.Workers, u.Bin, u.From, u.To = len(g.Nodes), g.Bin, g.From, g.To
	sum, weight := 0.0, 0.0
	for c, v := range g.Cluster() {
		if math.IsNaN(v) {
			continue
		}
		w := g.width(c)
		sum += v * w
		weight += w
		if math.IsNaN(u.Peak) || v > u.Peak {
			u.Peak = v
		}
	}
	if weight > 0 {
		u.Mean = sum / weight
	}
	return u
}

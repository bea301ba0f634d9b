package stressclient

import (
	"fmt"
	"io"
	"math"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The control plane's gap records, as the frontend's /metrics serves them
// (see api.Gaps): a histogram NAME_seconds, the longest gap
// NAME_max_seconds and when it ended, NAME_max_end_time_seconds.
const (
	RoundGapMetric  = "rswarm_placement_round_gap"
	StatusGapMetric = "rswarm_status_apply_gap"
)

// GapScrape is one gap record read from /metrics.
type GapScrape struct {
	// Found says the record was in the scrape.
	Found bool
	// Count is the number of gaps; Bounds and Counts the histogram's
	// buckets (Counts[i] gaps of at most Bounds[i] seconds).
	Count  uint64
	Bounds []float64
	Counts []uint64
	// Max is the longest gap since the role started, MaxAt its end (Unix seconds).
	Max, MaxAt float64
}

// Scrape is what `rswarm stress` reads from the frontend's /metrics.
type Scrape struct {
	// Gaps are the gap records by metric prefix.
	Gaps map[string]GapScrape
	// CPU is the CPU time the frontend's process has used, in seconds (in
	// rswarm up, that of every role and worker); HasCPU says it was there.
	CPU    float64
	HasCPU bool
}

// ParseScrape reads the gap records named by the metric prefixes, and the
// process's CPU time, from a Prometheus text exposition.
func ParseScrape(r io.Reader, names ...string) (Scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Scrape{}, fmt.Errorf("reading metrics: %w", err)
	}
	var sc Scrape
	if f := fams["process_cpu_seconds_total"]; f != nil && len(f.GetMetric()) > 0 && f.GetMetric()[0].GetCounter() != nil {
		sc.CPU, sc.HasCPU = f.GetMetric()[0].GetCounter().GetValue(), true
	}
	sc.Gaps = parseGaps(fams, names)
	return sc, nil
}

func parseGaps(fams map[string]*dto.MetricFamily, names []string) map[string]GapScrape {
	gauge := func(name string) (float64, bool) {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetGauge() == nil {
			return 0, false
		}
		return f.GetMetric()[0].GetGauge().GetValue(), true
	}
	out := make(map[string]GapScrape, len(names))
	for _, name := range names {
		var g GapScrape
		f := fams[name+"_seconds"]
		var h *dto.Histogram
		if f != nil && len(f.GetMetric()) > 0 {
			h = f.GetMetric()[0].GetHistogram()
		}
		maxV, okMax := gauge(name + "_max_seconds")
		at, okAt := gauge(name + "_max_end_time_seconds")
		if h != nil && okMax && okAt {
			g = GapScrape{Found: true, Count: h.GetSampleCount(), Max: maxV, MaxAt: at}
			for _, b := range h.GetBucket() {
				if math.IsInf(b.GetUpperBound(), 1) {
					continue
				}
				g.Bounds = append(g.Bounds, b.GetUpperBound())
				g.Counts = append(g.Counts, b.GetCumulativeCount())
			}
		}
		out[name] = g
	}
	return out
}

// WorstGap is the worst gap of one run, from the scrapes before and after it.
type WorstGap struct {
	// Known says both scrapes held the record.
	Known bool
	// Gaps is the number of gaps in the run.
	Gaps uint64
	// Seconds is the worst gap; when Exact is false it is an upper bound
	// (a histogram bucket's), since the longest gap since the role
	// started came before the run.
	Seconds float64
	Exact   bool
	// At is when the worst gap ended, in seconds from the run's start (when Exact).
	At float64
}

// Worst computes the worst gap of a run that started at start (Unix
// seconds) from the scrapes before and after it.
func Worst(before, after GapScrape, start float64) WorstGap {
	if !before.Found || !after.Found {
		return WorstGap{}
	}
	if after.Count < before.Count {
		before = GapScrape{Found: true} // the role restarted: all it has is the run's
	}
	w := WorstGap{Known: true, Gaps: after.Count - before.Count}
	switch {
	case w.Gaps == 0:
	case after.MaxAt >= start:
		// The longest gap since the role started ended during the run.
		w.Seconds, w.Exact, w.At = after.Max, true, after.MaxAt-start
	default:
		// The smallest bucket that holds every gap of the run.
		w.Seconds = after.Max
		for i, b := range after.Bounds {
			var was uint64
			if i < len(before.Counts) {
				was = before.Counts[i]
			}
			if after.Counts[i]-min(after.Counts[i], was) == w.Gaps {
				w.Seconds = min(b, after.Max)
				break
			}
		}
	}
	return w
}

// String says what the worst gap was, for people.
func (w WorstGap) String() string {
	switch {
	case !w.Known:
		return "not reported by the frontend's /metrics"
	case w.Gaps == 0:
		return "none (0 gaps)"
	case w.Exact:
		return fmt.Sprintf("%.3fs (ended at +%.1fs) over %d gaps", w.Seconds, w.At, w.Gaps)
	}
	return fmt.Sprintf("at most %.3fs over %d gaps (a longer one came before this run)", w.Seconds, w.Gaps)
}

// GapLines are the lines `rswarm stress` prints for the two gap records
// and for the CPU the control plane's process had between the scrapes
// before and after the run, wall seconds apart.
func GapLines(before, after Scrape, start, wall float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "worst gap between placement rounds while jobs waited: %s\n", Worst(before.Gaps[RoundGapMetric], after.Gaps[RoundGapMetric], start))
	fmt.Fprintf(&b, "worst gap between status applications while statuses waited: %s\n", Worst(before.Gaps[StatusGapMetric], after.Gaps[StatusGapMetric], start))
	if before.HasCPU && after.HasCPU && after.CPU >= before.CPU && wall > 0 {
		fmt.Fprintf(&b, "CPU of the frontend's process (in rswarm up: every role and worker): %.1fs over %.1fs, %.2f cores on average\n",
			after.CPU-before.CPU, wall, (after.CPU-before.CPU)/wall)
	}
	return b.String()
}

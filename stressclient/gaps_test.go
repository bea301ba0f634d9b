package stressclient

import (
	"strconv"
	"strings"
	"testing"
)

// exposition is what the frontend's /metrics holds of one gap record:
// buckets 0.1, 1 and 10 s.
func exposition(name string, counts [3]uint64, count uint64, maxV, at string) string {
	return strings.NewReplacer("NAME", name, "C0", u(counts[0]), "C1", u(counts[1]), "C2", u(counts[2]), "N", u(count), "MAX", maxV, "AT", at).Replace(`# HELP NAME_seconds gaps
# TYPE NAME_seconds histogram
NAME_seconds_bucket{le="0.1"} C0
NAME_seconds_bucket{le="1"} C1
NAME_seconds_bucket{le="10"} C2
NAME_seconds_bucket{le="+Inf"} N
NAME_seconds_sum 1.5
NAME_seconds_count N
# HELP NAME_max_seconds longest
# TYPE NAME_max_seconds gauge
NAME_max_seconds MAX
# HELP NAME_max_end_time_seconds when
# TYPE NAME_max_end_time_seconds gauge
NAME_max_end_time_seconds AT
`)
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

func TestParseGaps(t *testing.T) {
	text := exposition(RoundGapMetric, [3]uint64{5, 7, 8}, 9, "12.5", "1000.25") + "rswarm_queue_length 3\n"
	sc, err := ParseScrape(strings.NewReader(text+"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.25\n"), RoundGapMetric, StatusGapMetric)
	if err != nil {
		t.Fatal(err)
	}
	if !sc.HasCPU || sc.CPU != 12.25 {
		t.Errorf("CPU = %v (found %v), want 12.25", sc.CPU, sc.HasCPU)
	}
	got := sc.Gaps
	r := got[RoundGapMetric]
	if !r.Found || r.Count != 9 || r.Max != 12.5 || r.MaxAt != 1000.25 || len(r.Bounds) != 3 || r.Bounds[1] != 1 || r.Counts[2] != 8 {
		t.Errorf("round gaps = %+v", r)
	}
	if got[StatusGapMetric].Found {
		t.Errorf("status gaps found in a scrape without them: %+v", got[StatusGapMetric])
	}
	if _, err := ParseScrape(strings.NewReader("not { metrics"), RoundGapMetric); err == nil {
		t.Error("a malformed exposition was read without an error")
	}
}

func TestWorst(t *testing.T) {
	bounds := []float64{0.1, 1, 10}
	scrape := func(counts [3]uint64, n uint64, maxV, at float64) GapScrape {
		return GapScrape{Found: true, Count: n, Bounds: bounds, Counts: counts[:], Max: maxV, MaxAt: at}
	}
	const start = 1000.0
	fresh := scrape([3]uint64{0, 0, 0}, 0, 0, 0)
	cases := []struct {
		name          string
		before, after GapScrape
		want          WorstGap
	}{
		{name: "no record before the run", before: GapScrape{}, after: fresh, want: WorstGap{}},
		{name: "no record after the run", before: fresh, after: GapScrape{}, want: WorstGap{}},
		{
			name: "no gap in the run", before: scrape([3]uint64{3, 3, 3}, 3, 0.05, 900), after: scrape([3]uint64{3, 3, 3}, 3, 0.05, 900),
			want: WorstGap{Known: true},
		},
		{
			// The longest gap ended at 1035.5, after the start: exact, at +35.5 s.
			name: "the longest gap since start is the run's", before: fresh, after: scrape([3]uint64{90, 99, 100}, 100, 9.5, 1035.5),
			want: WorstGap{Known: true, Gaps: 100, Seconds: 9.5, Exact: true, At: 35.5},
		},
		{
			// Before: 10 gaps, one of 8 s at 950. The run adds 50, of which
			// 50 - 48 = 2 are over 0.1 s and all within 1 s: at most 1 s.
			name: "a longer gap before the run: the histogram bounds the run's", before: scrape([3]uint64{9, 9, 10}, 10, 8, 950), after: scrape([3]uint64{57, 59, 60}, 60, 8, 950),
			want: WorstGap{Known: true, Gaps: 50, Seconds: 1},
		},
		{
			// The run adds 5 gaps, all within 0.1 s.
			name: "the run's gaps in the first bucket", before: scrape([3]uint64{9, 9, 10}, 10, 8, 950), after: scrape([3]uint64{14, 14, 15}, 15, 8, 950),
			want: WorstGap{Known: true, Gaps: 5, Seconds: 0.1},
		},
		{
			// The run adds a gap over the last bound (10 s) that is not the
			// longest (40 s, before): at most the longest.
			name: "a run's gap past every bucket", before: scrape([3]uint64{0, 0, 0}, 1, 40, 950), after: scrape([3]uint64{0, 0, 0}, 2, 40, 950),
			want: WorstGap{Known: true, Gaps: 1, Seconds: 40},
		},
		{
			// A role restarted during the run: its counters started again
			// (fewer than before); all it has now is the run's.
			name: "counters that went back", before: scrape([3]uint64{50, 50, 50}, 50, 0.05, 900), after: scrape([3]uint64{3, 4, 4}, 4, 0.5, 1010),
			want: WorstGap{Known: true, Gaps: 4, Seconds: 0.5, Exact: true, At: 10},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Worst(tc.before, tc.after, start); got != tc.want {
				t.Errorf("Worst = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestGapLines(t *testing.T) {
	round := func(n uint64, maxV, at float64) map[string]GapScrape {
		return map[string]GapScrape{RoundGapMetric: {Found: true, Count: n, Max: maxV, MaxAt: at}}
	}
	before := Scrape{Gaps: round(0, 0, 0), CPU: 10, HasCPU: true}
	// 9.5 s ending at 1035.5, 35.5 s after the start; 150 s of CPU in 100 s.
	after := Scrape{Gaps: round(100, 9.5, 1035.5), CPU: 160, HasCPU: true}
	got := GapLines(before, after, 1000, 100)
	want := "worst gap between placement rounds while jobs waited: 9.500s (ended at +35.5s) over 100 gaps\n" +
		"worst gap between status applications while statuses waited: not reported by the frontend's /metrics\n" +
		"CPU of the frontend's process (in rswarm up: every role and worker): 150.0s over 100.0s, 1.50 cores on average\n"
	if got != want {
		t.Errorf("GapLines =\n%s\nwant\n%s", got, want)
	}
}

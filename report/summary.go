package report

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/rswarm/rswarm/api"
)

// Stats describes a set of durations in seconds. Percentiles are nearest
// rank: the smallest value with at least that fraction of the values at or
// below it. Every figure is NaN when N is 0.
type Stats struct {
	N                        int
	Mean, P50, P90, P99, Max float64
}

// Describe returns the statistics of xs (NaN values are ignored).
func Describe(xs []float64) Stats {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	nan := math.NaN()
	if len(v) == 0 {
		return Stats{Mean: nan, P50: nan, P90: nan, P99: nan, Max: nan}
	}
	sort.Float64s(v)
	q := func(p float64) float64 { return stat.Quantile(p, stat.Empirical, v, nil) }
	return Stats{N: len(v), Mean: stat.Mean(v, nil), P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: v[len(v)-1]}
}

// SessionSummary is one session's jobs.
type SessionSummary struct {
	Session    string
	Strategies []string // the strategies that placed its jobs
	Jobs       int
	States     map[api.State]int
	// Waiting, Execution and Total are over the session's jobs that ended
	// Down (completed): a failed or cancelled job's times measure its
	// failure, not the scheduler.
	Waiting, Execution, Total Stats
	// Stall is the longest interval in which jobs of the session were
	// waiting and none started (a stall of the pipeline shows here), and
	// StallAt when it began, in seconds after the session's first
	// submission. Both are 0 when no job waited.
	Stall, StallAt float64
}

// Lost is a job that should have ended and did not: one that is not in a
// final state, or one the frontend accepted that the jobs do not hold.
type Lost struct {
	Job    string
	Status string // the job's state, or "missing"
}

// Summary is what summary.md says.
type Summary struct {
	Jobs        int
	States      map[api.State]int
	Sessions    []SessionSummary // in order of their first submission
	Lost        []Lost
	Utilisation Utilisation
}

// Summarize computes the summary of the rows. expected, when given, names
// jobs that must be among the rows (those a stress client had accepted).
func Summarize(rows []Row, expected []string, util Utilisation) *Summary {
	s := &Summary{Jobs: len(rows), States: map[api.State]int{}, Utilisation: util}
	bySession := map[string]*SessionSummary{}
	first := map[string]float64{}
	values := map[string]*[3][]float64{}
	strategies := map[string]map[string]bool{}
	seen := make(map[string]bool, len(rows))
	for _, r := range rows {
		seen[r.Job] = true
		s.States[r.Status]++
		ss := bySession[r.Session]
		if ss == nil {
			ss = &SessionSummary{Session: r.Session, States: map[api.State]int{}}
			bySession[r.Session] = ss
			first[r.Session] = orInf(r.Submit)
			values[r.Session] = &[3][]float64{}
			strategies[r.Session] = map[string]bool{}
		}
		ss.Jobs++
		ss.States[r.Status]++
		first[r.Session] = min(first[r.Session], orInf(r.Submit))
		if r.Strategy != "" {
			strategies[r.Session][r.Strategy] = true
		}
		if r.Status == api.Down {
			v := values[r.Session]
			v[0] = append(v[0], r.Waiting)
			v[1] = append(v[1], r.Execution)
			v[2] = append(v[2], r.Total)
		}
		if !r.Status.Final() {
			s.Lost = append(s.Lost, Lost{Job: r.Job, Status: r.Status.String()})
		}
	}
	for _, name := range expected {
		if !seen[name] {
			s.Lost = append(s.Lost, Lost{Job: name, Status: "missing"})
		}
	}
	stallRows := map[string][]Row{}
	for _, r := range rows {
		stallRows[r.Session] = append(stallRows[r.Session], r)
	}
	for name, ss := range bySession {
		v := values[name]
		ss.Waiting, ss.Execution, ss.Total = Describe(v[0]), Describe(v[1]), Describe(v[2])
		if gap, at := LongestStall(stallRows[name]); gap > 0 {
			ss.Stall, ss.StallAt = gap, at-first[name]
		}
		for st := range strategies[name] {
			ss.Strategies = append(ss.Strategies, st)
		}
		sort.Strings(ss.Strategies)
		s.Sessions = append(s.Sessions, *ss)
	}
	sort.Slice(s.Sessions, func(i, j int) bool {
		a, b := s.Sessions[i], s.Sessions[j]
		if first[a.Session] != first[b.Session] {
			return first[a.Session] < first[b.Session]
		}
		return a.Session < b.Session
	})
	return s
}

// Label names a session in tables and legends: "1700000000 (best-fit)".
func (ss *SessionSummary) Label() string {
	name := ss.Session
	if name == "" {
		name = "(no session)"
	}
	if len(ss.Strategies) > 0 {
		name += " (" + strings.Join(ss.Strategies, ", ") + ")"
	}
	return name
}

func sec(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1f %%", 100*v)
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Markdown renders summary.md: title, the tables, notes, then extra (a
// Markdown section from the caller, such as the stress client's figures).
func (s *Summary) Markdown(title string, notes []string, extra string) string {
	var b strings.Builder
	if title == "" {
		title = "RSwarm experiment report"
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	fmt.Fprintf(&b, "%d jobs in %d session(s): %d Down, %d Failed, %d Cancelled, %d not finished.\n\n",
		s.Jobs, len(s.Sessions), s.States[api.Down], s.States[api.Failed], s.States[api.Cancelled], s.unfinished())

	b.WriteString("## Jobs by state\n\n")
	b.WriteString("| session (strategy) | jobs | Down | Failed | Cancelled | not finished |\n|---|---:|---:|---:|---:|---:|\n")
	for _, ss := range s.Sessions {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", cell(ss.Label()), ss.Jobs,
			ss.States[api.Down], ss.States[api.Failed], ss.States[api.Cancelled], unfinished(ss.States))
	}
	b.WriteString("\n## Times in seconds (jobs that ended Down)\n\n")
	b.WriteString("waiting = start - submit, execution = end - start, total = end - submit.\n\n")
	b.WriteString("| session (strategy) | time | n | mean | p50 | p90 | p99 | max |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, ss := range s.Sessions {
		for _, m := range []struct {
			name string
			st   Stats
		}{{"waiting", ss.Waiting}, {"execution", ss.Execution}, {"total", ss.Total}} {
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s |\n", cell(ss.Label()), m.name, m.st.N,
				sec(m.st.Mean), sec(m.st.P50), sec(m.st.P90), sec(m.st.P99), sec(m.st.Max))
		}
	}

	b.WriteString("\nLongest interval with jobs waiting and none starting (a stall shows here):\n\n")
	for _, ss := range s.Sessions {
		if ss.Stall > 0 {
			fmt.Fprintf(&b, "- %s: %s, from %s after the first submission\n", ss.Label(), seconds(ss.Stall), seconds(ss.StallAt))
		} else {
			fmt.Fprintf(&b, "- %s: no job waited\n", ss.Label())
		}
	}

	b.WriteString("\n## Core utilisation\n\n")
	u := s.Utilisation
	if u.Workers == 0 {
		b.WriteString("No utilisation samples in the experiment's window.\n")
	} else {
		fmt.Fprintf(&b, "Cluster-wide busy cores: mean %s, peak %s, over %d workers and %s (%d samples, %s columns), from %s.\n",
			pct(u.Mean), pct(u.Peak), u.Workers, seconds(u.To-u.From), u.Samples, seconds(u.Bin),
			time.Unix(0, int64(u.From*1e9)).UTC().Format(time.RFC3339))
	}

	b.WriteString("\n## Jobs lost\n\n")
	fmt.Fprintf(&b, "jobs lost: %d\n", len(s.Lost))
	if len(s.Lost) > 0 {
		b.WriteString("\n")
		for _, l := range s.Lost {
			if l.Status == "missing" {
				fmt.Fprintf(&b, "- %s: accepted by the frontend but not stored\n", l.Job)
			} else {
				fmt.Fprintf(&b, "- %s: still %s\n", l.Job, l.Status)
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if extra != "" {
		b.WriteString("\n")
		b.WriteString(extra)
	}
	return b.String()
}

func seconds(v float64) string {
	return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
}

func unfinished(states map[api.State]int) int {
	n := 0
	for st, c := range states {
		if !st.Final() {
			n += c
		}
	}
	return n
}

func (s *Summary) unfinished() int { return unfinished(s.States) }

// LongestStall returns the longest interval in which at least one of the
// rows' jobs had been submitted and not started yet while no job started,
// and when it began (epoch seconds). Only jobs that started count: a job
// that failed or was cancelled before it started waited for nothing the
// scheduler could give. It returns 0, 0 when no job ever waited.
func LongestStall(rows []Row) (gap, at float64) {
	type ev struct {
		t     float64
		start bool
	}
	evs := make([]ev, 0, 2*len(rows))
	for _, r := range rows {
		if r.Submit > 0 && r.Start > 0 && r.Start >= r.Submit {
			evs = append(evs, ev{r.Submit, false}, ev{r.Start, true})
		}
	}
	// At equal times submissions come first, so that a job started the
	// instant it arrived waited for 0 s.
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].t != evs[j].t {
			return evs[i].t < evs[j].t
		}
		return !evs[i].start && evs[j].start
	})
	waiting, since := 0, 0.0
	for _, e := range evs {
		if !e.start {
			if waiting == 0 {
				since = e.t
			}
			waiting++
			continue
		}
		if waiting > 0 && e.t-since > gap {
			gap, at = e.t-since, since
		}
		waiting--
		since = e.t
	}
	return gap, at
}

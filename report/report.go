package report

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/rswarm/rswarm/api"
)

// The files a report is made of.
const (
	JobsFile        = "jobs.csv"
	UtilisationFile = "utilisation.csv"
	SummaryFile     = "summary.md"
	WaitingPlot     = "cdf_waiting.png"
	ExecutionPlot   = "cdf_execution.png"
	TotalPlot       = "cdf_total.png"
	UtilisationPlot = "utilisation_heatmap.png"
)

// Options tune a report.
type Options struct {
	// Title heads summary.md (default "RSwarm experiment report").
	Title string
	// Expected names jobs that must be among the jobs (those a stress
	// client had accepted); any that is not is reported lost.
	Expected []string
	// Workers, when given, bound each worker's utilisation to when it was
	// alive (from its join to its last heartbeat), so that workers gone
	// before the experiment are left out of it (see Spans).
	Workers []*api.Worker
	// Notes are listed in summary.md, for example why utilisation is missing.
	Notes []string
	// Extra is Markdown appended to summary.md.
	Extra string
}

// Window returns the experiment's span in epoch seconds: from the first
// submission to the last end (or, for jobs not ended, the last start or
// submission). ok is false without jobs that have a submission time.
func Window(rows []Row) (from, to float64, ok bool) {
	from, to = math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		for _, t := range []float64{r.Submit, r.Start, r.End} {
			if !math.IsNaN(t) {
				from, to = min(from, t), max(to, t)
			}
		}
	}
	return from, to, !math.IsInf(from, 1)
}

// usageSpan returns the span of every sample.
func usageSpan(usage []api.Usage) (from, to float64) {
	from, to = math.Inf(1), math.Inf(-1)
	for _, u := range usage {
		for _, d := range u.Details {
			from, to = min(from, u.InitTime+d[0]), max(to, u.InitTime+d[0])
		}
	}
	return from, to
}

// Write writes a report of the jobs and the workers' utilisation into dir
// (created if missing): jobs.csv, utilisation.csv, summary.md, the three
// CDF plots, and the utilisation heat map when there are samples.
// Utilisation is taken over the jobs' window (see Window); usage may be
// nil, and Options.Notes can then say why. It returns the summary.
func Write(dir string, jobs []*api.Job, usage []api.Usage, opt Options) (*Summary, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	rows := Rows(jobs)
	from, to, ok := Window(rows)
	if !ok {
		from, to = usageSpan(usage)
	}
	var spans map[string]Span
	if opt.Workers != nil {
		spans = Spans(opt.Workers)
	}
	samples := Samples(usage, spans, from, to)
	grid := NewGrid(usage, spans, from, to)
	sum := Summarize(rows, opt.Expected, grid.Summarise(len(samples)))

	notes := append([]string(nil), opt.Notes...)
	if grid == nil && len(usage) > 0 {
		notes = append(notes, "the store holds utilisation samples, but none in the experiment's window")
	}
	if err := WriteFile(filepath.Join(dir, JobsFile), func(w io.Writer) error { return WriteJobsCSV(w, rows) }); err != nil {
		return nil, err
	}
	if err := WriteFile(filepath.Join(dir, UtilisationFile), func(w io.Writer) error { return WriteUtilisationCSV(w, samples) }); err != nil {
		return nil, err
	}

	series := make([][3]Series, len(sum.Sessions))
	index := map[string]int{}
	for i, ss := range sum.Sessions {
		index[ss.Session] = i
		for m := range series[i] {
			series[i][m].Name = ss.Label()
		}
	}
	for _, r := range rows {
		if r.Status != api.Down {
			continue
		}
		s := &series[index[r.Session]]
		s[0].Values = append(s[0].Values, r.Waiting)
		s[1].Values = append(s[1].Values, r.Execution)
		s[2].Values = append(s[2].Values, r.Total)
	}
	for m, plot := range []struct{ file, title, label string }{
		{WaitingPlot, "CDF of waiting time (start - submit)", "waiting time (s)"},
		{ExecutionPlot, "CDF of execution time (end - start)", "execution time (s)"},
		{TotalPlot, "CDF of total time (end - submit)", "total time (s)"},
	} {
		ss := make([]Series, len(series))
		for i := range series {
			ss[i] = series[i][m]
		}
		if err := WriteCDF(filepath.Join(dir, plot.file), plot.title, plot.label, ss); err != nil {
			return nil, err
		}
	}
	if grid != nil {
		if err := WriteHeatMap(filepath.Join(dir, UtilisationPlot), "Core utilisation per worker", grid); err != nil {
			return nil, err
		}
	} else {
		_ = os.Remove(filepath.Join(dir, UtilisationPlot)) // a stale one from an earlier report would mislead
	}
	md := sum.Markdown(opt.Title, notes, opt.Extra)
	if err := WriteFile(filepath.Join(dir, SummaryFile), func(w io.Writer) error {
		_, err := io.WriteString(w, md)
		return err
	}); err != nil {
		return nil, err
	}
	return sum, nil
}

// WriteFile writes a file through a buffer, so that a failed write leaves
// no half file behind.
func WriteFile(path string, fn func(io.Writer) error) error {
	var b bytes.Buffer
	if err := fn(&b); err != nil {
		return fmt.Errorf("report: %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

package simulate

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot/plotter"

	"github.com/rswarm/rswarm/report"
)

// UtilisationPlot is the plot of each strategy's core utilisation over
// virtual time; the other files of a report are named as `rswarm report`
// names them (report.JobsFile and the rest).
const UtilisationPlot = "utilisation.png"

// WriteReport writes the report comparing the results (one per strategy)
// into dir: summary.md, utilisation.csv (one series per strategy, named
// "cluster (<strategy>)"), the CDFs of waiting, execution and total time
// with one curve per strategy, the utilisation plot, and one heat map per
// strategy of the cores held per group of workers (HeatMapFile). jobs.csv is
// streamed by the caller while the runs go (see report.JobsWriter). about
// lists the settings, one Markdown line each, under the title.
func WriteReport(dir, title string, about []string, results []*Result, epoch float64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("simulate: report: %w", err)
	}
	if epoch == 0 {
		epoch = DefaultEpoch
	}
	var samples []report.Sample
	util := make([]report.Curve, len(results))
	for i, r := range results {
		node := "cluster (" + r.Strategy + ")"
		util[i].Name = r.Strategy
		for k, v := range r.Util {
			samples = append(samples, report.Sample{Node: node, Time: epoch + float64(k)*r.Bin, Ratio: v})
			util[i].Points = append(util[i].Points, plotter.XY{X: (float64(k) + 0.5) * r.Bin, Y: v})
		}
	}
	if err := report.WriteFile(filepath.Join(dir, report.UtilisationFile), func(w io.Writer) error {
		return report.WriteUtilisationCSV(w, samples)
	}); err != nil {
		return err
	}
	if err := report.WriteLines(filepath.Join(dir, UtilisationPlot), "Cores allocated over virtual time (mean per bin)",
		"virtual time (s)", "fraction of cores", util); err != nil {
		return err
	}
	for m, plot := range []struct{ file, title, label string }{
		{report.WaitingPlot, "CDF of waiting time (start - submit)", "waiting time (s)"},
		{report.ExecutionPlot, "CDF of execution time (end - start)", "execution time (s)"},
		{report.TotalPlot, "CDF of total time (end - submit)", "total time (s)"},
	} {
		curves := make([]report.Curve, len(results))
		for i, r := range results {
			curves[i] = report.Curve{Name: r.Strategy, N: r.Done, Points: cdf(r.Hists[m])}
		}
		if err := report.WriteCDFCurves(filepath.Join(dir, plot.file), plot.title, plot.label, curves); err != nil {
			return err
		}
	}
	for _, r := range results {
		if r.Heat == nil {
			continue
		}
		if err := report.WriteHeatMap(filepath.Join(dir, HeatMapFile(r.Strategy)), heatTitle(r.Strategy, r.Heat), r.Heat); err != nil {
			return err
		}
	}
	md := Markdown(title, about, results)
	return report.WriteFile(filepath.Join(dir, report.SummaryFile), func(w io.Writer) error {
		_, err := io.WriteString(w, md)
		return err
	})
}

// cdf returns the cumulative distribution of a histogram of microseconds
// as points in seconds: one step per bucket that holds values.
func cdf(h *hdrhistogram.Histogram) plotter.XYs {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	var pts plotter.XYs
	var cum int64
	for _, b := range h.Distribution() {
		if b.Count == 0 {
			continue
		}
		if pts == nil {
			pts = append(pts, plotter.XY{X: float64(b.From) / 1e6, Y: 0})
		}
		cum += b.Count
		pts = append(pts, plotter.XY{X: float64(b.To) / 1e6, Y: float64(cum) / float64(n)})
	}
	return pts
}

func sec(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Markdown renders summary.md: the settings, then per strategy the jobs,
// utilisation, longest wait and why, the time percentiles, and how fast
// the simulation went.
func Markdown(title string, about []string, results []*Result) string {
	var b strings.Builder
	if title == "" {
		title = "RSwarm simulation report"
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	for _, a := range about {
		fmt.Fprintf(&b, "- %s\n", a)
	}
	b.WriteString("\n## Strategies\n\n")
	b.WriteString("Utilisation is the fraction of cores allocated, over the run. Never placed: jobs left in the queue " +
		"when nothing else could happen (no worker could ever take them).\n\n")
	b.WriteString("| strategy | jobs | ended | failed with a worker | never placed | mean utilisation | peak utilisation | longest wait (s) | its job | why it waited |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range results {
		why, longest := r.Reason, r.LongestJob
		switch {
		case r.LongestWait <= 0:
			why, longest = "no job waited", "-"
		case why == "":
			why = "no round left it waiting: its wait is the deploy and start delays"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %.1f %% | %.1f %% | %s | %s | %s |\n", r.Strategy, r.Arrived, r.Done, r.Failed, r.Queued,
			100*r.Mean, 100*r.Peak, sec(r.LongestWait), longest, cell(why))
	}
	b.WriteString("\n## Times in seconds (jobs that ended)\n\n")
	b.WriteString("waiting = start - submit, execution = end - start, total = end - submit. Percentiles from HDR " +
		"histograms (three significant digits); mean and max exact.\n\n")
	b.WriteString("| strategy | time | n | mean | p50 | p90 | p99 | max |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		for _, m := range []struct {
			name string
			st   report.Stats
		}{{"waiting", r.Waiting}, {"execution", r.Execution}, {"total", r.Total}} {
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s |\n", r.Strategy, m.name, m.st.N,
				sec(m.st.Mean), sec(m.st.P50), sec(m.st.P90), sec(m.st.P99), sec(m.st.Max))
		}
	}
	b.WriteString("\n## The simulation\n\n")
	b.WriteString("| strategy | virtual time | events | rounds | wall time | CPU time | events/s (wall) |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %.0f |\n", r.Strategy,
			time.Duration(r.Virtual*float64(time.Second)).Round(time.Second), r.Events, r.Rounds,
			r.Wall.Round(time.Millisecond), r.CPU.Round(time.Millisecond), float64(r.Events)/max(r.Wall.Seconds(), 1e-9))
	}
	return b.String()
}

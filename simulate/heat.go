package simulate

import (
	"fmt"

	"github.com/rswarm/rswarm/report"
)

// HeatRows is the most rows of a run's heat map: workers are grouped into
// about this many rows of consecutive workers, so that 100,000 workers
// still make a readable picture (and each row is labelled with its range).
const HeatRows = 40

// heatMap samples the cores held on each group of workers at the start of
// every few utilisation bins: O(workers) per sample, nothing per event.
// Once there are report.MaxColumns samples, every other one is dropped
// and the spacing doubles, so that a run of any length costs at most
// about 2 x MaxColumns samples (one sample reads every worker's line: 13
// MB at 100,000 workers) and the map has fewer than MaxColumns columns.
type heatMap struct {
	rows   int
	per    int       // workers per row (the last may have fewer)
	labels []string  // "w001-w025"
	cores  []float64 // cores of each row
	cells  [][]float64
	next   int // the next bin
	every  int // bins between samples
	buf    []int32
}

func newHeatMap(ids []string, cores int) heatMap {
	n := len(ids)
	per := (n + HeatRows - 1) / HeatRows
	rows := (n + per - 1) / per
	h := heatMap{rows: rows, per: per, cells: make([][]float64, rows), cores: make([]float64, rows), every: 1}
	for r := range rows {
		a, b := r*per, min((r+1)*per, n)-1
		label := ids[a]
		if b > a {
			label += "-" + ids[b]
		}
		h.labels = append(h.labels, label)
		h.cores[r] = float64((b - a + 1) * cores)
	}
	return h
}

// sample records, for every sampled bin that starts in [s.now, t), the
// share of each row's cores held: the state that holds until t.
func (h *heatMap) sample(s *sim, t float64) {
	for ; float64(h.next)*s.cfg.Bin < t; h.next++ {
		if h.next%h.every != 0 {
			continue
		}
		h.buf = s.core.BusyCores(h.buf[:0])
		for r := range h.rows {
			busy := 0
			for _, b := range h.buf[r*h.per : min((r+1)*h.per, len(h.buf))] {
				busy += int(b)
			}
			h.cells[r] = append(h.cells[r], float64(busy)/h.cores[r])
		}
		if len(h.cells[0]) >= report.MaxColumns {
			for r, row := range h.cells {
				out := row[:0]
				for c := 0; c < len(row); c += 2 {
					out = append(out, row[c])
				}
				h.cells[r] = out
			}
			h.every *= 2
		}
	}
}

// grid returns the samples as report's heat map grid (virtual seconds).
func (h *heatMap) grid(s *sim) *report.Grid {
	if h.rows == 0 || len(h.cells[0]) == 0 {
		return nil
	}
	g := &report.Grid{Nodes: h.labels, From: 0, Bin: float64(h.every) * s.cfg.Bin, Cells: h.cells}
	g.To = float64(len(h.cells[0])) * g.Bin
	return g
}

// HeatMapFile is the name of a strategy's heat map in a report.
func HeatMapFile(strategy string) string { return "utilisation_heatmap_" + strategy + ".png" }

// heatTitle is the title of a strategy's heat map.
func heatTitle(strategy string, g *report.Grid) string {
	return fmt.Sprintf("Cores held per group of workers, %s (%d rows; sampled at each column's start, every %g s)", strategy, len(g.Nodes), g.Bin)
}

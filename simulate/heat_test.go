package simulate

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rswarm/rswarm/placement"
	"github.com/rswarm/rswarm/stressclient"
)

// arrivals is a Source of given arrivals.
type arrivals []stressclient.Arrival

func (a *arrivals) Next() (stressclient.Arrival, bool) {
	if len(*a) == 0 {
		return stressclient.Arrival{}, false
	}
	x := (*a)[0]
	*a = (*a)[1:]
	return x, true
}

// TestHeatMap: four workers of 4 cores, one row each. First fit puts a job
// of one 2-core task (10 s) at 0 s on w1, and a job of two 4-core tasks
// (5 s) at 2 s on w2 and w3. Sampled at the start of every 1 s bin: w1 is
// half busy for bins 0-9, w2 and w3 full for bins 2-6, w4 never used.
func TestHeatMap(t *testing.T) {
	src := arrivals{
		{Seq: 1, Offset: 0, Shape: stressclient.Shape{Tasks: 1, Cores: 2, Duration: 10}},
		{Seq: 2, Offset: 2 * time.Second, Shape: stressclient.Shape{Tasks: 2, Cores: 4, Duration: 5}},
	}
	cfg := Config{Workers: 4, Cores: 4, Memory: 1 << 30, Strategy: placement.FirstFit, Bin: 1, Seed: 1}
	res, err := Run(context.Background(), cfg, &src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Heat
	if g == nil || !slices.Equal(g.Nodes, []string{"w1", "w2", "w3", "w4"}) || g.Bin != 1 {
		t.Fatalf("heat map %+v: want rows w1..w4 of 1 s columns", g)
	}
	want := [][]float64{
		{0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5},
		{0, 0, 1, 1, 1, 1, 1, 0, 0, 0},
		{0, 0, 1, 1, 1, 1, 1, 0, 0, 0},
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	for r := range want {
		if !slices.Equal(g.Cells[r], want[r]) {
			t.Errorf("row %s: %v, want %v", g.Nodes[r], g.Cells[r], want[r])
		}
	}
}

// TestHeatMapColumnsBounded: a run of many bins keeps at most
// report.MaxColumns columns, each a sample every power of two bins.
func TestHeatMapColumnsBounded(t *testing.T) {
	src := arrivals{{Seq: 1, Offset: 0, Shape: stressclient.Shape{Tasks: 1, Cores: 1, Duration: 1000}}}
	cfg := Config{Workers: 2, Cores: 1, Memory: 1 << 30, Strategy: placement.FirstFit, Bin: 1, Seed: 1}
	res, err := Run(context.Background(), cfg, &src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 bins: sampled every 1, then 2, then 4 bins: 250 columns of 4 s.
	if g := res.Heat; g.Bin != 4 || len(g.Cells[0]) != 250 || g.Cells[0][249] != 1 || g.Cells[1][0] != 0 {
		t.Fatalf("%d columns of %g s (w1 last %v, w2 first %v); want 250 of 4 s, w1 busy, w2 idle",
			len(g.Cells[0]), g.Bin, g.Cells[0][len(g.Cells[0])-1], g.Cells[1][0])
	}
}

package simulate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rswarm/rswarm/placement"
	"github.com/rswarm/rswarm/stressclient"
)

// BenchmarkRun is the experiment scaled down (10,000 workers x 64
// cores, 200 jobs/s of 4 one-core tasks of mean 5 min, 1 h of arrivals):
// go test -run XXX -bench Run -cpuprofile cpu.out ./simulate/ profiles the
// simulator's own loop and the placement calls it makes.
func BenchmarkRun(b *testing.B) {
	for _, strategy := range []string{placement.BestFit, placement.FirstFit} {
		b.Run(strategy, func(b *testing.B) {
			var events uint64
			for range b.N {
				p := stressclient.DefaultParams()
				p.Profile, p.Lambda, p.Turns, p.Interval, p.TaskCount, p.TaskCores = stressclient.Poisson, 200, 3600, time.Second, 4, 1
				st, err := stressclient.NewStream(p, 1)
				if err != nil {
					b.Fatal(err)
				}
				dur := Dist{Kind: Exponential, A: 300}
				cfg := Config{Workers: 10000, Cores: 64, Memory: 256 << 30, Strategy: strategy, TaskDuration: &dur, Seed: 1,
					Queue: placement.QueueOptions{Policy: placement.Backfill}}
				res, err := Run(context.Background(), cfg, st, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				events += res.Events
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRunOverloaded is a run above capacity: 200 workers x 16 cores
// take about 2.7 jobs/s of 4 one-core tasks of mean 5 min, and 20 jobs/s
// arrive for 2 min, so the queue grows to about 2,000 jobs and drains over
// about 10 virtual minutes, a round at every task's end. With backfill
// unbounded (MaxWait -1) every round visited every queued job before the
// core's rounds stopped early; the README gives the figures before and
// after.
func BenchmarkRunOverloaded(b *testing.B) {
	for _, maxWait := range []float64{-1, 0} {
		b.Run(fmt.Sprintf("max-wait=%g", maxWait), func(b *testing.B) {
			var events uint64
			for range b.N {
				p := stressclient.DefaultParams()
				p.Profile, p.Lambda, p.Turns, p.Interval, p.TaskCount, p.TaskCores = stressclient.Poisson, 20, 120, time.Second, 4, 1
				st, err := stressclient.NewStream(p, 1)
				if err != nil {
					b.Fatal(err)
				}
				dur := Dist{Kind: Exponential, A: 300}
				cfg := Config{Workers: 200, Cores: 16, Memory: 64 << 30, Strategy: placement.BestFit, TaskDuration: &dur, Seed: 1,
					Queue: placement.QueueOptions{Policy: placement.Backfill, MaxWait: maxWait}}
				res, err := Run(context.Background(), cfg, st, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				if res.Waiting.P50 < 60 {
					b.Fatalf("waiting p50 %.1f s: the run is not overloaded", res.Waiting.P50)
				}
				events += res.Events
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

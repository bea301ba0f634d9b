package jobmanager_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/jobmanager"
	"github.com/rswarm/rswarm/store"
)

// BenchmarkWorkerRegisteredBurst: 1,000 workers register at once, as in
// `rswarm up --runtime sim --workers 1000` (256 at a time, as the bus
// serves them); each registration returns once its allocation is written.
// It reports the allocation writes per registration (the batching: 1 would
// be one write each) and the registrations per second.
func BenchmarkWorkerRegisteredBurst(b *testing.B) {
	const workers, concurrency = 1000, 256
	ctx := context.Background()
	var regs, writes int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := store.OpenSQLite(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		for k := range workers {
			if err := st.PutWorker(ctx, &api.Worker{ID: fmt.Sprintf("w%04d", k), Cores: 16, MemTotal: 64 << 30, Status: api.WorkerReady, JoinTime: float64(k)}); err != nil {
				b.Fatal(err)
			}
		}
		cs := &countingState{SQLite: st}
		cfg := jobmanager.DefaultConfig()
		cfg.ResyncInterval, cfg.WorkerWrite = time.Hour, time.Hour
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		m, err := jobmanager.New(cfg, cs, &fakeDispatcher{st: st})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(rctx) }()
		before := cs.workerWrites.Load()
		b.StartTimer()
		sem := make(chan struct{}, concurrency)
		var wg sync.WaitGroup
		for k := range workers {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := m.WorkerRegistered(ctx, api.WorkerSize{Worker: fmt.Sprintf("w%04d", k), Cores: 16, MemTotal: 64 << 30}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		regs += workers
		writes += cs.workerWrites.Load() - before
		cancel()
		<-done
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(writes)/float64(regs), "writes/registration")
	b.ReportMetric(float64(regs)/b.Elapsed().Seconds(), "registrations/s")
}

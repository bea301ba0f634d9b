package globalmanager_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/globalmanager"
	"github.com/rswarm/rswarm/store"
)

// readCounting is the store, counting the jobs read back with GetJob.
type readCounting struct {
	*store.SQLite
	reads atomic.Int64
}

func (r *readCounting) GetJob(ctx context.Context, name string) (*api.Job, error) {
	r.reads.Add(1)
	return r.SQLite.GetJob(ctx, name)
}

// newGMCounting is newGM over a store that counts job reads.
func newGMCounting(t *testing.T) (*gmEnv, *readCounting) {
	t.Helper()
	e := newGM(t, nil)
	rc := &readCounting{SQLite: e.st}
	cfg := globalmanager.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.CommandTimeout = 5 * time.Second
	m, err := globalmanager.New(cfg, e.sw, e.ws, rc, e.nt)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	return e, rc
}

// TestDeployPlaced: a placed job as the jobmanager sends it over the bus
// is deployed from the message, with no read of the job from the store,
// with the same outcomes as the REST path (TestDeploy) otherwise.
func TestDeployPlaced(t *testing.T) {
	tests := []struct {
		name   string
		stored *api.Job // in the store before the deployment; nil: none
		sent   *api.Job // the message
		calls  []string // sorted
		err    error    // errors.Is; nil: success
		want   api.State
	}{
		{name: "every task goes to its node", stored: placed("d", api.Scheduled, "w1", "w2"), sent: placed("d", api.Scheduled, "w1", "w2"),
			calls: []string{"worker w1 run_task d_task1", "worker w2 run_task d_task2"}, want: api.Deployed},
		// The jobmanager read the job again before this retry: the message
		// says which tasks were delivered.
		{name: "a retry sends only what the message shows undelivered", stored: partlyRun(), sent: partlyRun(),
			calls: []string{"worker w2 run_task d_task2"}, want: api.Running},
		// Cancelled after the jobmanager sent it: the write that marks it
		// Deployed sees the cancellation and stops what started.
		{name: "cancelled while on its way", stored: placed("d", api.Cancelled, "w1", "w2"), sent: placed("d", api.Scheduled, "w1", "w2"),
			calls: []string{"worker w1 run_task d_task1", "worker w1 stop_task d_task1", "worker w2 run_task d_task2", "worker w2 stop_task d_task2"},
			want:  api.Cancelled},
		// Cancelled and deleted meanwhile: stopped from the message.
		{name: "deleted while on its way", sent: placed("d", api.Scheduled, "w1", "w2"),
			calls: []string{"worker w1 run_task d_task1", "worker w1 stop_task d_task1", "worker w2 run_task d_task2", "worker w2 stop_task d_task2"},
			err:   api.ErrNotFound},
		{name: "task not placed", stored: placed("d", api.Scheduled, "w1", ""), sent: placed("d", api.Scheduled, "w1", ""),
			err: api.ErrInvalid, want: api.Ready},
		{name: "no tasks", sent: &api.Job{Name: "d"}, err: api.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, rc := newGMCounting(t)
			e.worker(t, "w1", "sim")
			e.worker(t, "w2", "sim")
			if tc.stored != nil {
				e.put(t, tc.stored)
			}
			err := e.m.DeployPlaced(context.Background(), tc.sent)
			if (err == nil) != (tc.err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("DeployPlaced: %v, want %v", err, tc.err)
			}
			wantCalls(t, sorted(e.rec.All()), tc.calls...)
			// Reading the job back after a cancellation (Stop) is off the
			// hot path; a deployment that went through read nothing.
			if n := rc.reads.Load(); tc.want == api.Deployed || tc.want == api.Running {
				if n != 0 {
					t.Errorf("%d jobs read from the store, want 0 (the job is in the message)", n)
				}
			}
			if tc.stored != nil {
				if j := e.job(t, "d"); j.Status != tc.want {
					t.Errorf("job %s, want %s", j.Status, tc.want)
				}
			}
		})
	}
}

// TestDeployOverRESTReadsTheStore: the REST path takes a client's word for
// nothing, so it reads the job (TestDeploy has its outcomes).
func TestDeployOverRESTReadsTheStore(t *testing.T) {
	e, rc := newGMCounting(t)
	e.worker(t, "w1", "sim")
	e.put(t, placed("d", api.Scheduled, "w1"))
	if err := e.m.Deploy(context.Background(), placed("d", api.Scheduled, "w1")); err != nil {
		t.Fatal(err)
	}
	if n := rc.reads.Load(); n != 1 {
		t.Errorf("%d jobs read, want 1", n)
	}
}

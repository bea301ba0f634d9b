package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/bus"
)

// TestGlobalmanagerLinkCarriesJobsAndOutcomes: the jobmanager's link to
// the globalmanager's bus carries the whole placed job, and brings each
// outcome back as the error kind the jobmanager judges deployments by
// (jobmanager/retry.go: unavailable or a deadline are sent again; a
// conflict, bad input or a missing record fail the job), as the REST
// path's status codes did.
func TestGlobalmanagerLinkCarriesJobsAndOutcomes(t *testing.T) {
	// The test and the handler share these across the bus (ZeroMQ's
	// threads, which the race detector does not see): under mu.
	var (
		mu     sync.Mutex
		answer error
		got    api.DeployJob
	)
	started, release := make(chan struct{}, 1), make(chan struct{})
	srv, err := bus.Listen("tcp://127.0.0.1:*", func(ctx context.Context, _, kind string, body []byte) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		switch kind {
		case api.KindDeployJob:
			got = api.DeployJob{}
			if err := json.Unmarshal(body, &got); err != nil {
				return nil, err
			}
			switch got.Job.Name {
			case "slow":
				mu.Unlock()
				defer mu.Lock()
				<-ctx.Done() // never answers in time
				return nil, ctx.Err()
			case "dies":
				mu.Unlock()
				defer mu.Lock()
				started <- struct{}{}
				<-release // the globalmanager goes away before it answers
				return nil, nil
			}
		case api.KindStopJob:
		default:
			return nil, fmt.Errorf("unexpected %s", kind)
		}
		return api.NewJobReply(answer), nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, err := dialGlobalmanager(&endpoints{gmBus: srv.Addr()}, "jobmanager", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	j := apitest.Job("placed", 2, 2, "sleep 1")
	for i, task := range j.Info.Tasks {
		task.Node, task.CpusetCpus, task.Status = fmt.Sprintf("w%d", i), fmt.Sprintf("%d,%d", 2*i, 2*i+1), api.Scheduled
	}
	j.Restarts = 3
	tests := []struct {
		name   string
		answer error
		is     error // nil: success
	}{
		{"deployed", nil, nil},
		{"a worker did not acknowledge", fmt.Errorf("%w: worker w1 did not accept task placed_task1", api.ErrUnavailable), api.ErrUnavailable},
		{"cancelled before its deployment", &api.FieldError{Field: "job_name", Kind: api.ErrConflict, Reason: "job placed is Cancelled"}, api.ErrConflict},
		{"not placed", api.Invalid("job_info.tasks.placed_task1", "not placed"), api.ErrInvalid},
		{"worker unknown", fmt.Errorf("worker w9: %w", api.ErrNotFound), api.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			answer = tc.answer
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := l.Deploy(ctx, j)
			if (err == nil) != (tc.is == nil) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("Deploy: %v, want %v", err, tc.is)
			}
			if tc.answer != nil && (err == nil || err.Error() != tc.answer.Error()) {
				t.Errorf("Deploy: %v, want the globalmanager's message %q", err, tc.answer)
			}
			mu.Lock()
			defer mu.Unlock()
			if got.Job == nil || got.Job.Name != j.Name || got.Job.Restarts != 3 || len(got.Job.Info.Tasks) != 2 ||
				got.Job.Info.Tasks[1].Node != "w1" || got.Job.Info.Tasks[1].CpusetCpus != "2,3" || got.Job.Info.Tasks[1].Status != api.Scheduled {
				t.Errorf("the globalmanager got %+v, want the whole placed job", got.Job)
			}
			mu.Unlock()
			err = l.Stop(ctx, "placed", "cancelled by user")
			mu.Lock()
			if (err == nil) != (tc.is == nil) {
				t.Errorf("Stop: %v, want %v", err, tc.is)
			}
		})
	}
	// No answer within the deployment's deadline: a timeout, sent again later.
	slow := apitest.Job("slow", 1, 1, "sleep 1")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := l.Deploy(ctx, slow); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Deploy without an answer: %v, want a deadline exceeded", err)
	}

	// The globalmanager gone while a deployment waits for its answer: the
	// deployment ends at once, as unavailable (sent again shortly), not at
	// the end of its 30 s.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- l.Deploy(ctx, apitest.Job("dies", 1, 1, "sleep 1")) }()
	<-started
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	err = <-errc
	close(release)
	if !errors.Is(err, api.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Deploy when the globalmanager went away: %v, want unavailable at once", err)
	}
	if err := <-closed; err != nil {
		t.Error(err)
	}
}

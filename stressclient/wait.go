package stressclient

import (
	"context"
	"fmt"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Lister lists jobs; *api.Client satisfies it.
type Lister interface {
	Jobs(ctx context.Context, f api.JobFilter) (*api.JobList, error)
}

var _ Lister = (*api.Client)(nil)

// Unfinished are the states a job has not ended in.
var Unfinished = []api.State{api.Ready, api.Scheduled, api.Deployed, api.Running, api.Migrating}

// unfinished returns how many jobs of the session are not final yet: one
// cheap request (a page of one job and the total).
func unfinished(ctx context.Context, l Lister, session string) (int, error) {
	page, err := l.Jobs(ctx, api.JobFilter{Session: session, Status: Unfinished, Limit: 1})
	if err != nil {
		return 0, err
	}
	return page.Total, nil
}

// Wait polls every period until no job of the session is unfinished. When
// c is set it records there how many of the accepted jobs are final
// (accepted minus unfinished). A failing request is retried; Wait gives up
// after ten failures in a row, or when ctx ends, returning the number still
// unfinished at the last successful poll with the error.
func Wait(ctx context.Context, l Lister, session string, accepted int, period time.Duration, c *Counters) (int, error) {
	if period <= 0 {
		period = 500 * time.Millisecond
	}
	if c != nil {
		c.SetWaiting()
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	left, fails := -1, 0
	for {
		n, err := unfinished(ctx, l, session)
		switch {
		case err == nil:
			left, fails = n, 0
			if c != nil {
				c.SetFinished(int64(max(accepted-n, 0)))
			}
			if n == 0 {
				return 0, nil
			}
		case ctx.Err() != nil:
		default:
			if fails++; fails >= 10 {
				return left, fmt.Errorf("stressclient: waiting for session %s: %w", session, err)
			}
		}
		select {
		case <-ctx.Done():
			return left, ctx.Err()
		case <-tick.C:
		}
	}
}

// FetchJobs returns every job of the session (of every session when it is
// empty), paging through the API in submission order.
func FetchJobs(ctx context.Context, l Lister, session string) ([]*api.Job, error) {
	const page = 1000
	var out []*api.Job
	for {
		p, err := l.Jobs(ctx, api.JobFilter{Session: session, Limit: page, Offset: len(out)})
		if err != nil {
			return out, fmt.Errorf("stressclient: listing jobs of session %s: %w", session, err)
		}
		out = append(out, p.Jobs...)
		if len(p.Jobs) < page || len(out) >= p.Total {
			return out, nil
		}
	}
}

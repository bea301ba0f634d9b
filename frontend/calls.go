package frontend

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Retry bounds for calls to other roles: each call gets at most
// Config.CallTimeout in all, tries again after a jittered, doubling pause
// (so that many callers do not retry in lockstep), and gives up at once on
// an answer that retrying cannot change.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
)

// call runs fn until it succeeds, fails for good, or s.cfg.CallTimeout
// has passed, giving each attempt the remaining time.
func (s *Server) call(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	pause := retryFirst
	for {
		err := fn(ctx)
		if err == nil || final(err) || ctx.Err() != nil {
			return err
		}
		// Full jitter: anywhere from half the pause to the whole of it.
		d := pause/2 + rand.N(pause/2+1)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
		pause = min(2*pause, retryMax)
	}
}

// final reports whether err is an answer, not a failure to get one.
func final(err error) bool {
	return errors.Is(err, api.ErrInvalid) || errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrConflict)
}

// strategy asks the jobmanager for its strategy, bounded as call is.
func (s *Server) strategy(ctx context.Context) (api.StrategyInfo, error) {
	var info api.StrategyInfo
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		info, err = s.sched.Strategy(ctx)
		return err
	})
	return info, err
}

package jobmanager

import (
	"context"
	"errors"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Deploy outcomes. A deployment that failed because the globalmanager (or
// a worker) could not be reached, or did not answer in time, delivered
// nothing for sure: the job keeps its placement and its cores and is sent
// again later, and since a worker treats a task it already runs as
// started, sending it again cannot start it twice. Only a definite refusal
// fails the job.

// verdict is what to do with a job after one deployment attempt.
type verdict int

const (
	deployed verdict = iota // every worker acknowledged
	retry                   // nothing definite: send it again later
	refused                 // a definite answer: fail the job
)

// judgeDeploy classifies a deployment's error.
func judgeDeploy(err error) verdict {
	switch {
	case err == nil:
		return deployed
	case errors.Is(err, api.ErrInvalid), errors.Is(err, api.ErrNotFound), errors.Is(err, api.ErrConflict),
		errors.Is(err, api.ErrUnprocessable), errors.Is(err, api.ErrUnauthorized):
		return refused
	case errors.Is(err, api.ErrUnavailable), errors.Is(err, errDeadline):
		return retry
	}
	var se *api.StatusError
	if errors.As(err, &se) && se.Status >= 500 {
		return retry // the server failed, not the job
	}
	return refused
}

// errDeadline is a deployment that timed out: it may be half done.
var errDeadline = context.DeadlineExceeded

// Retry delays grow from retryBase, doubling per attempt up to retryMax,
// and each is jittered over its upper half, so that the jobs of one outage
// do not come back in lockstep.
const (
	retryBase = 200 * time.Millisecond
	retryMax  = 5 * time.Second
)

// retryDelay is the wait before attempt n+1 (n >= 0 attempts failed so
// far); jitter is a number in [0, 1).
func retryDelay(n int, jitter float64) time.Duration {
	d := retryBase
	for i := 0; i < n && d < retryMax; i++ {
		d *= 2
	}
	d = min(d, retryMax)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// redeployAction is what a job whose deployment is to be retried needs,
// judged from its record (nil: deleted) and whether each of its workers
// is up.
type redeployAction int

const (
	redeployDrop    redeployAction = iota // gone, cancelled, ended: forget it
	redeployDone                          // every task delivered meanwhile (the reply was lost)
	redeploySend                          // tasks still to deliver, on live workers: send again
	redeployRequeue                       // a worker is gone and nothing started: place it again
	redeployLost                          // a worker is gone but other tasks run: fail the undelivered ones as lost
)

func judgeRedeploy(j *api.Job, up func(node string) bool) redeployAction {
	if j == nil || j.Status.Final() {
		return redeployDrop
	}
	pending, progressed, gone := 0, false, false
	for _, t := range j.Info.Tasks {
		switch {
		case t.Status >= api.Deployed:
			progressed = true
		case t.Status == api.Ready || t.Node == "" || t.CpusetCpus == "":
			gone = true // not placed: nothing to send it to
		default: // Scheduled
			pending++
			if !up(t.Node) {
				gone = true
			}
		}
	}
	switch {
	case gone && progressed:
		return redeployLost
	case gone:
		return redeployRequeue
	case pending == 0:
		return redeployDone
	}
	return redeploySend
}

package placement

import (
	"errors"
	"fmt"
	"strings"
)

// Policy says what a job that does not fit does to the jobs behind it.
type Policy int

// Queue policies.
const (
	// Backfill lets later jobs that fit go ahead of one that does not
	// (the default), until the waiting job has waited MaxWait.
	Backfill Policy = iota
	// FIFO: a job that does not fit blocks every job behind it.
	FIFO
)

// ErrUnknownPolicy: a queue policy name other than "fifo" or "backfill".
var ErrUnknownPolicy = errors.New("placement: unknown queue policy")

// String returns the policy's name as ParsePolicy reads it.
func (p Policy) String() string {
	switch p {
	case Backfill:
		return "backfill"
	case FIFO:
		return "fifo"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy reads "fifo" or "backfill" (any case); "" gives Backfill.
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "backfill":
		return Backfill, nil
	case "fifo":
		return FIFO, nil
	}
	return 0, fmt.Errorf("%w %q: valid policies are backfill, fifo", ErrUnknownPolicy, s)
}

// DefaultMaxWait is the seconds after which a waiting job stops backfill.
const DefaultMaxWait = 60.0

// QueueOptions tune a scheduling round.
type QueueOptions struct {
	Policy Policy
	// MaxWait bounds the wait of a job under backfill: once a job that does
	// not fit has waited MaxWait seconds since submission, the jobs behind
	// it in the round's order wait too, so freed capacity goes to it first
	// and it cannot starve. 0 means DefaultMaxWait; negative turns it off.
	MaxWait float64
}

// feasibler is implemented by strategies that can tell a job waiting for
// capacity (which may hold the queue) from one that no worker could take
// even empty, or that names a node that is unknown or down.
type feasibler interface {
	feasible(c *Cluster, j Job) bool
}

// Schedule runs one placement round over queue and returns the jobs placed
// (allocated in c) and the jobs still waiting with reasons, both in queue
// order (the order of the slice given).
//
// The round visits jobs in arrival order (Seq, ties in queue order), unless
// the strategy implements Orderer: priority visits by effective priority,
// deadline and submission; a decreasing strategy with SortBatch visits the
// largest jobs first. Each job is placed all-or-nothing. Under FIFO the
// first job that does not fit holds every job after it in the visiting
// order; under Backfill later jobs go ahead, except behind a job that has
// waited MaxWait. A job that could not run even on an empty cluster (a task
// larger than every up worker; a pinned node that is unknown or down, or a
// core it does not have) waits without holding anyone up. Schedule keeps no
// state: switching the strategy between rounds keeps every queued job, in
// order.
func Schedule(c *Cluster, s Strategy, queue []Job, now float64, o QueueOptions) (placed []Decision, waiting []Waiting) {
	if len(queue) == 0 {
		return nil, nil
	}
	if s == nil {
		for _, j := range queue {
			waiting = append(waiting, Waiting{Job: j.Name, Reason: "no placement strategy is set"})
		}
		return nil, waiting
	}
	var order []int
	if or, ok := s.(Orderer); ok {
		order = or.Order(queue, now)
	} else {
		order = arrivalOrder(queue)
	}

	done := make([][]Assignment, len(queue))
	reasons := make([]string, len(queue))
	r := NewRound(c, s, now, o)
	for _, i := range order {
		as, reason, ok := r.Place(queue[i], -1)
		if ok {
			done[i] = as
			continue
		}
		reasons[i] = reason
	}
	for i, j := range queue {
		if done[i] != nil {
			placed = append(placed, Decision{Job: j.Name, Assignments: done[i]})
		} else {
			waiting = append(waiting, Waiting{Job: j.Name, Reason: reasons[i]})
		}
	}
	return placed, waiting
}

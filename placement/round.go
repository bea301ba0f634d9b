package placement

import "fmt"

// Round is one scheduling round visited job by job, for a caller that holds
// its queue in visiting order and may stop before the end of it (the
// jobmanager's core, whose rounds under overload must cost what changed,
// not the length of the queue). Schedule is a Round over a whole queue:
// the two make the same decisions.
//
// Within a round the cluster only loses free cores and memory (placing
// allocates, nothing frees), so a job that could not be placed for want of
// capacity says that every later job of the same shape cannot be either.
// A caller may name jobs' shapes (equal shape: the same tasks' cores, memory
// and pins, names aside): Place then answers a later job of a shape that
// failed so without trying it, and Settled tells which shapes did.
type Round struct {
	c       *Cluster
	s       Strategy
	now     float64
	o       QueueOptions
	maxWait float64
	blocked string
	failed  map[int32]string // shapes that failed for want of capacity: the reason
}

// capacityPlacer is implemented by strategies whose Place can tell a job
// that found no worker with room (capacity: the same shape fails again
// until cores free) from one refused for another reason (a task name that
// holds cores already).
type capacityPlacer interface {
	placeCap(c *Cluster, j Job) (as []Assignment, reason string, ok, capacity bool)
}

// NewRound starts a round on c with strategy s at time now (epoch seconds)
// under the queue options o.
func NewRound(c *Cluster, s Strategy, now float64, o QueueOptions) *Round {
	r := &Round{c: c, s: s, now: now, o: o, maxWait: o.MaxWait}
	if r.maxWait == 0 {
		r.maxWait = DefaultMaxWait
	}
	return r
}

// Place visits job j, of shape (-1: none), next in the round's order. On
// success j's cores are allocated; otherwise reason says why it waits.
func (r *Round) Place(j Job, shape int32) (as []Assignment, reason string, ok bool) {
	if r.s == nil {
		return nil, "no placement strategy is set", false
	}
	if r.blocked != "" {
		return nil, r.blocked, false
	}
	feasible := false
	if why, seen := r.failed[shape]; seen && shape >= 0 {
		reason, feasible = why, true
	} else {
		capacity := false
		if cp, isCap := r.s.(capacityPlacer); isCap {
			as, reason, ok, capacity = cp.placeCap(r.c, j)
		} else {
			as, reason, ok = r.s.Place(r.c, j)
		}
		if ok {
			if as == nil {
				as = []Assignment{}
			}
			return as, "", true
		}
		if reason == "" {
			reason = "does not fit"
		}
		f, isF := r.s.(feasibler)
		feasible = !isF || f.feasible(r.c, j)
		if capacity && feasible && shape >= 0 {
			if r.failed == nil {
				r.failed = map[int32]string{}
			}
			r.failed[shape] = reason
		}
	}
	if !feasible {
		return nil, reason, false // it could not run on an empty cluster: it holds nobody up
	}
	switch waited := r.now - j.Submitted; {
	case r.o.Policy == FIFO:
		r.blocked = fmt.Sprintf("queued behind job %s, which does not fit (fifo: a job that does not fit holds those after it)", j.Name)
	case r.maxWait > 0 && waited >= r.maxWait:
		r.blocked = fmt.Sprintf("queued behind job %s, which has waited %.0f s (the limit is %g s) and goes first when capacity frees", j.Name, waited, r.maxWait)
	}
	return nil, reason, false
}

// Blocked returns, once a job holds the rest of the round (fifo, or a job
// that has waited the longest backfill allows), the reason every job
// visited after it waits; "" before.
func (r *Round) Blocked() string { return r.blocked }

// Settled reports whether a job of shape failed in this round for want of
// capacity, so that every later job of that shape waits too, with the
// reason it returns.
func (r *Round) Settled(shape int32) (string, bool) {
	why, ok := r.failed[shape]
	return why, ok
}

// ArrivalOrder reports whether s's rounds visit the queue in arrival order
// (Seq), so that a caller holding the queue in that order may visit it
// through a Round itself: every strategy but priority and a decreasing one
// with SortBatch.
func ArrivalOrder(s Strategy) bool {
	switch p := s.(type) {
	case *priority:
		return false
	case *packer:
		return !p.sortBatch
	}
	_, orders := s.(Orderer)
	return !orders
}

// Package simulate owns experiments in virtual time: it replays a workload
// (a stress profile, a trace, or a real run's jobs.csv) against a cluster
// of any size and lets the production placement code decide, with a clock
// that jumps from one event to the next instead of waiting.
//
// The decisions are not re-implemented here: the simulator drives the
// jobmanager's core (jobmanager.Core), the state machine the jobmanager's
// shell drives in production, with typed events stamped with virtual time.
// Workers register with WorkersListed (and go down and come back with it),
// a job arrives with Enqueue (its record as the store would hold it), a
// round is a Round event whose Placed effect lists the jobs placed, and a
// task's cores go back with ReleaseHandles (the handle its assignment
// carried: the same release as Release by name, without hashing the name
// again). The core calls placement for every choice, with the strategy
// placement.New builds and the queue options given. What the simulator
// adds is only what the real system does outside the decision: time.
//
//	Source ──Next──► arrival event ──► Core.Step(Enqueue)
//	                                      │ every instant with news: a round
//	                                      ▼
//	                Core.Step(Round{Now}) ──► Placed (placement.Round inside)
//	                                      │ placed: deploy delay + start delay
//	                                      ▼
//	       task end + release delay ──► free event ──► Core.Step(ReleaseHandles)
//
// A round in arrival order stops at the first job that holds the rest, or
// once every shape of job queued has failed for want of cores (see
// jobmanager.Placed), so that an overloaded run costs what changes, not
// the length of the queue at every instant.
//
// # Events
//
// One calendar queue (a ring of one-second buckets of event values, the
// current bucket a small 4-ary heap, the far future a heap of its own)
// holds the next arrival, the next worker failure and repairs, and one
// release per running task; events at the same instant are taken in the
// order they were made, and a round follows every instant that changed the
// queue or freed cores, as the jobmanager runs one after a burst of events
// (or, with RoundInterval, at most that often). There is no goroutine per
// worker and no sleep. Jobs and tasks live in slices reused through free
// lists (a job's tasks side by side); a finished job is written as one
// jobs.csv row and folded into histograms, so memory follows the jobs in
// the system, not the jobs run. Without worker failures a job's end is one
// event made at its start, after its tasks' (a task's event reads neither
// its job nor its record). The heat map samples the cores held per group
// of workers at the start of every utilisation bin.
//
// # Determinism
//
// Everything random is drawn from PCG streams of the seed in arrival order
// (durations and delays at a job's arrival), so every strategy sees the same
// jobs with the same durations and delays, and the same seed gives the same
// rows, byte for byte.
package simulate

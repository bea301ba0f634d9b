// Package simulate owns experiments in virtual time: it replays a workload
// (a stress profile, a trace, or a real run's jobs.csv) against a cluster
// of any size and lets the production placement code decide, with a clock
// that jumps from one event to the next instead of waiting.
//
// The decisions are not re-implemented here: each round hands the queue to
// placement.Schedule with the strategy placement.New builds and the queue
// options the jobmanager uses; jobs enter the queue through
// jobmanager.ToPlacement, as the jobmanager's do, and a task's cores go
// back with placement.Cluster.ReleaseHandle when it ends (the handle its
// assignment carries: the same release as Cluster.Release by name, which
// the jobmanager uses, without hashing the name again). What the simulator
// adds is only what the real system does outside the decision: time.
//
//	Source ──Next──► arrival event ──► queue (jobmanager.ToPlacement)
//	                                      │ every instant with news: a round
//	                                      ▼
//	          placement.Schedule(cluster, strategy, queue, now, QueueOptions)
//	                                      │ placed: deploy delay + start delay
//	                                      ▼
//	           task end + release delay ──► release event ──► Cluster.ReleaseHandle
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
// lists; a finished job is written as one jobs.csv row and folded into
// histograms, so memory follows the jobs in the system, not the jobs run.
//
// # Determinism
//
// Everything random is drawn from PCG streams of the seed in arrival order
// (durations and delays at a job's arrival), so every strategy sees the same
// jobs with the same durations and delays, and the same seed gives the same
// rows, byte for byte.
package simulate

// Package jobmanager owns the queue of waiting jobs and every core
// allocation: it is the single writer of which task holds which cores.
//
// Jobs arrive by notification from the frontend (and, should a notification
// be lost, by a periodic resync: at start it reads every live job, then only
// the jobs written since its last pass, from the store's change feed). Each round runs the current
// placement strategy over the queue, writes the decisions to the store and
// hands each placed job to the globalmanager for deployment. A deployment
// that delivered nothing for sure (the globalmanager unreachable) is sent
// again with bounded, jittered backoff, the job keeping its cores (see
// retry.go); a job that failed by losing a worker goes back in the queue
// as its restart policy allows. Cores come back when discovery reports
// tasks finished, when a dispatch is refused, or when a job is cancelled.
//
// The queue, the allocations, the strategy and the deployments in flight
// live in Core (core.go), a pure state machine: typed events in (workers
// listed, job records read (reconciliation), jobs queued or dequeued,
// tasks ended, holds, releases, rounds, moves
// reserved, committed or aborted, reallocations, flushes, deployments
// started and their outcomes; and what the globalmanager asks for: workers
// registered, resizes applied, jobs unplaced), typed effects out (write
// these workers' allocations, a round is due, these jobs were placed,
// write these waiting reasons, deploy this job, retry it at time T, fail
// it, requeue these jobs, stop the rest of this job, restart these jobs,
// write where this task runs, reset this job to be placed again, a reply).
// It does no I/O and reads no clock; Manager is the
// shell that reads the store, feeds it events and carries out its effects.
// Every write of an allocation, a task's cpuset_cpus or a placed task's
// node, anywhere in the system, is one of these effects (core_writes.go).
//
//	frontend ──job_submitted──►┐
//	discovery ──tasks_done────►├─► events ─► round: placement.Schedule ─► store ─► Dispatcher (globalmanager)
//	globalmanager ─workers────►┘                      ▲
//	resync (store change feed) every ResyncInterval ──┘
package jobmanager

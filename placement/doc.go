// Package placement decides where each task of a job goes, or why it cannot
// go anywhere yet: it owns the placement strategies (first fit, best fit,
// their decreasing variants, the client-pinned no-scheduler and priority),
// the queue policies (FIFO and backfill with ageing), and the indexed view of
// cluster capacity they decide against.
//
// The package is pure: no I/O, no goroutines, no clock (time is passed in),
// and every decision is deterministic. Map iteration never picks a winner;
// ties go to the lowest worker index, which is the order of first
// registration.
//
// # Shape
//
//	queue []Job ──► Schedule(c, strategy, queue, now, QueueOptions)
//	                  │  visiting order: arrival (Seq), or the strategy's own
//	                  │  (priority with ageing; decreasing with SortBatch)
//	                  ▼
//	             Strategy.Place(c, job) ──► all tasks allocated in c, or none
//	                  │
//	                  ▼
//	        placed []Decision, waiting []Waiting (reason in plain words)
//
// Schedule is a Round over the whole queue. A caller that holds its queue
// in visiting order (the jobmanager's core, for strategies that visit in
// arrival order: ArrivalOrder) drives a Round job by job instead and may
// stop early: once a job holds the rest (Round.Blocked), or once every
// shape of job it holds has failed for want of cores (Round.Settled: the
// cluster only loses free cores during a round, so a later job of that
// shape cannot fit either, and Place answers it without a search).
//
// Cluster is the single record of which task holds which core. It keeps two
// indexes of free capacity so that a decision does not scan every worker:
// for best fit, one ordered set of worker indexes per free-core count (a
// 64-ary bit tree, so "smallest free count >= k, lowest index" costs
// O(log64 workers)); for first fit, the sets of workers with at least
// 1..64 free cores, 64-ary bit trees interleaved word by word ("lowest
// index with free >= k" in O(log64 workers)), and a max tree over worker
// index of free cores and free memory for the rest ("lowest index with free
// >= k and memory >= m" in O(log workers)) when memory is short on the
// worker found or a task asks for more than 64 cores. Each index is built by
// the first search that needs it. Memory is a constraint: a worker fits a
// task only when it has both the cores and the memory. When memory, not
// cores, is what is short, a best-fit search may step over workers whose
// cores fit but memory does not.
//
// Tasks are records in one slice, named by index (a handle): a task name
// leads to its handle through a pointer-free open-addressing hash table,
// and a worker lists the handles of its tasks in its second cache line, so
// a decision touches few cache lines and the garbage collector has little
// to scan. An Assignment carries its task's handle: Cluster.ReleaseHandle
// releases by it, as Release does by name, for a caller that holds many
// tasks (the simulator); the jobmanager releases by name.
//
// A naive reference that scans every worker, as the original RESTfulSwarm
// did, lives beside the indexed one (naive.go): it is the oracle of the
// property test and, exported as Naive, the baseline that placebench
// (rswarm bench placement) measures the index against.
//
// Cluster is not safe for concurrent use: the jobmanager is its single
// writer.
package placement

// Package discovery is the sink of what workers observe: it applies task
// statuses to the jobs in the store (idempotently, since delivery is at
// least once), tells the jobmanager which tasks ended so their cores are
// free, keeps each worker's heartbeat and utilisation history, and marks
// workers down when their heartbeats stop.
//
//	worker ──task_statuses─► Service.TaskStatuses ──► store (job, task) ──► Notifier.TasksDone (jobmanager)
//	worker ──heartbeat────► Service.Heartbeat ──► Table.Observe, store (worker, usage)
//	ticker ───────────────► Table.Expired ──► worker down, its tasks Failed ("worker lost")
package discovery

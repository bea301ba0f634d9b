// Package discovery is the sink of what workers observe: it applies task
// statuses to the jobs in the store (idempotently, since delivery is at
// least once), tells the jobmanager which tasks ended so their cores are
// free, keeps each worker's heartbeat and utilisation history, marks
// workers down when their heartbeats stop (judged by when they were sent,
// see Table), and reconciles what each worker says it holds with what the
// store wants (see Reconciler).
//
//	worker ──task_statuses─► Service.TaskStatuses ──► store (job, task) ──► Notifier.TasksDone (jobmanager)
//	worker ──heartbeat────► Service.Heartbeat ──► Table.ObserveSent, store (worker, usage); reply: tasks to stop
//	ticker ───────────────► Table.Expired ──► worker down, its tasks Failed ("worker lost")
//	ticker ───────────────► Reconciler.Pass ──► orphans stopped (heartbeat reply), missing tasks Failed ("worker lost")
package discovery

// Package jobmanager owns the queue of waiting jobs and every core
// allocation: it is the single writer of which task holds which cores.
//
// Jobs arrive by notification from the frontend (and, should a notification
// be lost, by a periodic resync with the store). Each round runs the current
// placement strategy over the queue, writes the decisions to the store and
// hands each placed job to the globalmanager for deployment. Cores come back
// when discovery reports tasks finished, when a dispatch fails, or when a
// job is cancelled.
//
//	frontend ──job_submitted──►┐
//	discovery ──tasks_done────►├─► events ─► round: placement.Schedule ─► store ─► Dispatcher (globalmanager)
//	globalmanager ─workers────►┘                      ▲
//	resync (store) every ResyncInterval ──────────────┘
package jobmanager

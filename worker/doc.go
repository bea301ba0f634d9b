// Package worker is the per-host agent: it registers the host with the
// globalmanager (joining the swarm when told to), runs the tasks it is sent
// through a Runtime (the Docker Engine, or a simulation), and reports every
// task transition and a jittered heartbeat to discovery, at least once.
//
//	globalmanager ──run_task/stop_task/task_logs──► Agent.handle ──► Runtime
//	Runtime.Watch ──ended tasks──► reporter queue ──task_status──► discovery (retried until acked)
//	ticker (period ± 10%) ──heartbeat (use, tasks held)──► discovery ──reply: tasks to stop──► Runtime
package worker

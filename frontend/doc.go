// Package frontend is the REST API users submit jobs to: it validates each
// job (naming the field and the reason when it is wrong), stores it with its
// submit_time, and tells the jobmanager. It also answers job and worker
// queries and relays strategy switches.
//
//	client ──POST /api/v1/jobs or /RESTfulSwarm/FE/request_new_job──► validate ─► store ─► Scheduler.JobSubmitted
//	client ──GET /api/v1/jobs/{name}, /api/v1/jobs, /api/v1/workers──► store
//	client ──GET switch_scheduler/{name}, PUT /api/v1/scheduler──► Scheduler.SwitchStrategy
package frontend

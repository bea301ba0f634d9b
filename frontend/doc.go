// Package frontend is the REST API users submit jobs to: it validates each
// job (naming the field and the reason when it is wrong), stores it with its
// submit_time, and tells the jobmanager. It also answers job and worker
// queries and relays strategy switches. It serves the web dashboard at /ui/
// (static files built in, ui.go) and relays its task migrations to the
// globalmanager.
//
//	client ──POST /api/v1/jobs or /RESTfulSwarm/FE/request_new_job──► validate ─► store ─► Scheduler.JobSubmitted
//	client ──GET /api/v1/jobs/{name}, /api/v1/jobs, /api/v1/workers──► store
//	client ──GET switch_scheduler/{name}, PUT /api/v1/scheduler──► Scheduler.SwitchStrategy
package frontend

// The rest of this file is the general information of the frontend's Swagger
// document, read by swag (scripts/swagger.sh; `make swagger` regenerates
// swagger/frontend). The operations are annotated on their handlers. The
// Swagger UI at /swagger/index.html, /healthz and /readyz need no token, so
// that anyone who can reach the port can read the API's description.

// @title						RSwarm frontend API
// @version					1.0
// @description				Submit jobs (groups of containers bin-packed onto whole CPU cores of Docker Swarm workers), follow them, cancel them, and see the workers.
// @description				The original RESTfulSwarm paths (/RESTfulSwarm/FE/...) keep their original bodies and plain-text answers; the resource API lives under /api/v1.
// @description				Every error is JSON: {"error": {"code", "message", "field"}}.
// @BasePath					/
//
// @tag.name					jobs
// @tag.description			Submit, list, get and cancel jobs, on the original path and under /api/v1.
// @tag.name					tasks
// @tag.description			One task (container) of a job: its state, exit code, error and output.
// @tag.name					workers
// @tag.description			The hosts that run tasks, with their cores (free, or busy with which task).
// @tag.name					scheduler
// @tag.description			The jobmanager's placement strategy.
// @tag.name					events
// @tag.description			Lifecycle changes as Server-Sent Events.
// @tag.name					monitoring
// @tag.description			Health, readiness and Prometheus metrics.
//
// @securityDefinitions.apikey	BearerAuth
// @in							header
// @name						Authorization
// @description				"Bearer <token>", the token given to rswarm with --api-token or --api-token-file. Without a token configured (allowed on loopback addresses only, or with --insecure) every request is accepted. A request without the right token gets 401 and changes nothing.

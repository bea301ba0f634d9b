// Package globalmanager drives the Docker Swarm: it initialises the swarm,
// registers workers (telling a new host how to join), creates and prunes
// each job's attachable overlay network, and deploys placed jobs by sending
// each task's run command to exactly one worker, which must acknowledge it.
//
//	jobmanager ──deploy_job (bus, the whole job)──► DeployPlaced ─► network ─► run_task ──bus──► worker (ack)
//	REST client ──POST request_new_job──► Deploy (reads the job from the store first) ─┘
//	worker ──register──► Register ─► swarm join token, or a worker record in the store
//	                                 (its allocation: worker_registered ──bus──► jobmanager)
//	ticker ──► prune: networks of jobs that are final (or gone) are removed
//
// It never writes a worker's allocation nor a placed task's node or
// cpuset_cpus: it asks the jobmanager, their single writer, and waits
// (see State for who writes what).
//
// It serves the original RESTfulSwarm /RESTfulSwarm/GM/... paths and
// RSwarm's /api/v1 cluster operations.
package globalmanager

// The rest of this file is the general information of the globalmanager's
// Swagger document, read by swag (scripts/swagger.sh; `make swagger`
// regenerates swagger/globalmanager). The operations are annotated on their
// handlers. The Swagger UI at /swagger/index.html and /healthz need no token,
// so that anyone who can reach the port can read the API's description.

// @title						RSwarm globalmanager API
// @version					1.0
// @description				Drives the Docker Swarm: initialises it, registers and removes workers, deploys placed jobs, and carries out cluster operations (checkpoints, migrations, resource updates, drains).
// @description				The original RESTfulSwarm paths (/RESTfulSwarm/GM/...) keep their original bodies; RSwarm's cluster operations live under /api/v1.
// @description				Every error is JSON: {"error": {"code", "message", "field"}}.
// @BasePath					/
//
// @tag.name					swarm
// @tag.description			The Docker Swarm itself and its nodes as Docker describes them.
// @tag.name					jobs
// @tag.description			Deploying, stopping and moving jobs placed by the jobmanager.
// @tag.name					tasks
// @tag.description			Single tasks (containers): submit one, update its cores and memory, read its output.
// @tag.name					workers
// @tag.description			Joining, draining, activating and removing workers.
// @tag.name					checkpoints
// @tag.description			Checkpoints of running containers (CRIU).
// @tag.name					migrations
// @tag.description			Moving running tasks between workers.
// @tag.name					monitoring
// @tag.description			Liveness.
//
// @securityDefinitions.apikey	BearerAuth
// @in							header
// @name						Authorization
// @description				"Bearer <token>", the token given to rswarm with --api-token or --api-token-file. Without a token configured (allowed on loopback addresses only, or with --insecure) every request is accepted. A request without the right token gets 401 and changes nothing.

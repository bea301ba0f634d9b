// Package globalmanager drives the Docker Swarm: it initialises the swarm,
// registers workers (telling a new host how to join), creates and prunes
// each job's attachable overlay network, and deploys placed jobs by sending
// each task's run command to exactly one worker, which must acknowledge it.
//
//	jobmanager ──POST request_new_job──► Deploy ─► network ─► run_task ──bus──► worker (ack)
//	worker ──register──► Register ─► swarm join token, or a worker record in the store
//	ticker ──► prune: networks of jobs that are final (or gone) are removed
//
// It serves the original RESTfulSwarm /RESTfulSwarm/GM/... paths and
// RSwarm's /api/v1 cluster operations.
package globalmanager

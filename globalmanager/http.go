package globalmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	swaggerFiles "github.com/swaggo/files"
	ginSwagger "github.com/swaggo/gin-swagger"

	"github.com/rswarm/rswarm/api"
	_ "github.com/rswarm/rswarm/swagger/globalmanager" // registers the Swagger document swaggerInstance
)

// swaggerInstance is the name the globalmanager's Swagger document is
// registered under (swag --instanceName); the UI is served at /swagger/index.html.
const swaggerInstance = "globalmanager"

// Router returns the globalmanager's HTTP API: the original RESTfulSwarm
// paths, RSwarm's /api/v1 cluster operations and /metrics. mw run before
// every handler except /healthz, /readyz and the Swagger UI
// (authentication, logging). The Swagger
// UI and its document are served without the token on purpose: they
// describe the API, change nothing, and say how to send the token.
func (m *Manager) Router(mw ...gin.HandlerFunc) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), m.metrics.instrument)
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) {
		respond(c, 0, nil, fmt.Errorf("no route %s %s: %w", c.Request.Method, c.Request.URL.Path, api.ErrNotFound))
	})
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, api.ErrorBody{Error: api.ErrorDetail{Code: "method_not_allowed",
			Message: fmt.Sprintf("%s is not allowed on %s", c.Request.Method, c.Request.URL.Path)}})
	})
	r.GET("/healthz", handleHealthz)
	r.GET("/readyz", m.handleReady)
	r.GET("/swagger/*any", ginSwagger.WrapHandler(swaggerFiles.NewHandler(), ginSwagger.InstanceName(swaggerInstance)))
	g := r.Group("/", mw...)
	g.GET("/metrics", m.handleMetrics)
	g.GET("/RESTfulSwarm/GM/init", m.handleInit)
	g.POST("/RESTfulSwarm/GM/request_new_job", m.handleDeploy)
	g.GET("/RESTfulSwarm/GM/get_worker_list", m.handleWorkerList)
	g.GET("/RESTfulSwarm/GM/:hostname/describe_worker", m.handleDescribe)
	g.GET("/RESTfulSwarm/GM/:hostname/describe_manager", m.handleDescribe)
	g.POST("/RESTfulSwarm/GM/request_join", m.handleJoin)
	g.POST("/RESTfulSwarm/GM/request_new_task", m.handleNewTask)
	g.POST("/RESTfulSwarm/GM/checkpoint_cons", m.handleCheckpoint)
	g.POST("/RESTfulSwarm/GM/request_migrate", m.handleMigrate)
	g.POST("/RESTfulSwarm/GM/request_group_migration", m.handleGroupMigration)
	g.POST("/RESTfulSwarm/GM/request_leave", m.handleLeave)
	g.POST("/RESTfulSwarm/GM/request_update_container", m.handleUpdate)
	g.POST("/api/v1/checkpoints", m.handleCheckpoint)
	g.POST("/api/v1/migrations", m.handleMigrate)
	g.POST("/api/v1/migrations/group", m.handleGroupMigration)
	g.POST("/api/v1/jobs/:name/migrate", m.handleMigrateJob)
	g.POST("/api/v1/tasks/:name/migrate", m.handleMigrateTask)
	g.PATCH("/api/v1/tasks/:name", m.handlePatchTask)
	g.POST("/api/v1/tasks/:name/checkpoint", m.handleCheckpointTask)
	g.POST("/api/v1/jobs/:name/tasks/:task/update", m.handleUpdateTask)
	g.POST("/api/v1/workers/:id/drain", m.handleDrain)
	g.POST("/api/v1/workers/:id/activate", m.handleActivate)
	g.POST("/api/v1/workers/:id/leave", m.handleLeaveWorker)
	g.DELETE("/api/v1/workers/:id", m.handleLeaveWorker)
	g.POST("/api/v1/jobs/:name/stop", m.handleStop)
	g.GET("/api/v1/jobs/:name/tasks/:task/logs", m.handleLogs)
	g.GET("/api/v1/nodes", m.handleWorkerList)
	return r
}

// handleHealthz answers as long as the process serves HTTP.
// @Summary Liveness
// @Description Answers 200 as long as the globalmanager process serves HTTP. Needs no token.
// @Tags monitoring
// @Produce json
// @Success 200 {object} object{status=string} "{"status": "ok"}"
// @Router /healthz [get]
func handleHealthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

func respond(c *gin.Context, status int, v any, err error) {
	if err != nil {
		code, body := api.ErrorResponse(err)
		c.JSON(code, body)
		return
	}
	if s, ok := v.(string); ok {
		c.String(status, s)
		return
	}
	c.JSON(status, v)
}

// handleInit makes the local engine a swarm manager.
// @Summary Initialise the swarm (original RESTfulSwarm path)
// @Description Makes the globalmanager's Docker Engine a swarm manager, or confirms that it is one: calling it again is harmless. Answers plain text as the original did.
// @Tags swarm
// @Produce plain
// @Produce json
// @Success 200 {string} string "OK: Initialize Swarm environment succeed."
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 500 {object} api.ErrorBody "the engine refused (its words)"
// @Failure 503 {object} api.ErrorBody "the engine did not answer"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/init [get]
func (m *Manager) handleInit(c *gin.Context) {
	_, err := m.Init(c.Request.Context())
	respond(c, http.StatusOK, "OK: Initialize Swarm environment succeed.", err)
}

// handleDeploy deploys a placed job.
// @Summary Deploy a placed job (original RESTfulSwarm path)
// @Description The original's path, kept for its clients (the jobmanager hands placed jobs over on the bus instead). Takes a job whose tasks all have a node and cpuset_cpus, and that the store holds and has not ended: creates the job's attachable overlay network and sends each task to its worker, which must acknowledge it. If a worker does not, the tasks already sent are stopped and the error names the worker. Answers plain text "OK" as the original did.
// @Tags jobs
// @Accept json
// @Produce plain
// @Produce json
// @Param job body api.Job true "the placed job, as stored"
// @Success 200 {string} string "OK"
// @Failure 400 {object} api.ErrorBody "malformed, or a task is not placed"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "a task's worker is not registered"
// @Failure 503 {object} api.ErrorBody "a worker did not acknowledge its task"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/request_new_job [post]
func (m *Manager) handleDeploy(c *gin.Context) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, api.MaxJobBytes+1))
	if err != nil {
		respond(c, 0, nil, api.Invalid("", "reading body: %v", err))
		return
	}
	if len(body) > api.MaxJobBytes {
		respond(c, 0, nil, api.Invalid("", "job larger than %d bytes", api.MaxJobBytes))
		return
	}
	var j api.Job
	if err := json.Unmarshal(body, &j); err != nil {
		respond(c, 0, nil, api.Invalid("", "malformed job: %v", err))
		return
	}
	respond(c, http.StatusOK, "OK", m.Deploy(c.Request.Context(), &j))
}

// handleWorkerList answers the swarm's nodes as Docker describes them.
// @Summary List swarm nodes
// @Description Every node of the swarm, each as the Docker Engine API's node object (ID, Description, Status, Spec, ...). /RESTfulSwarm/GM/get_worker_list is the original path; /api/v1/nodes answers the same. Registered workers with their cores are at the frontend's GET /api/v1/workers.
// @Tags swarm
// @Produce json
// @Success 200 {array} object "Docker node objects"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 503 {object} api.ErrorBody "the engine did not answer"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/get_worker_list [get]
// @Router /api/v1/nodes [get]
func (m *Manager) handleWorkerList(c *gin.Context) {
	nodes, err := m.swarm.Nodes(c.Request.Context())
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	out := make([]json.RawMessage, 0, len(nodes))
	for _, n := range nodes {
		if n.Raw != nil {
			out = append(out, n.Raw)
			continue
		}
		b, _ := json.Marshal(n)
		out = append(out, b)
	}
	respond(c, http.StatusOK, out, nil)
}

// handleDescribe answers one swarm node as Docker describes it.
// @Summary Describe a swarm node (original RESTfulSwarm paths)
// @Description One node of the swarm as the Docker Engine API's node object. describe_worker and describe_manager answer the same (the original's were broken and always answered 500).
// @Tags swarm
// @Produce json
// @Param hostname path string true "the node's ID or host name"
// @Success 200 {object} object "a Docker node object"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such node"
// @Failure 503 {object} api.ErrorBody "the engine did not answer"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/{hostname}/describe_worker [get]
// @Router /RESTfulSwarm/GM/{hostname}/describe_manager [get]
func (m *Manager) handleDescribe(c *gin.Context) {
	_, raw, err := m.swarm.Node(c.Request.Context(), c.Param("hostname"))
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", raw)
}

// handleStop stops a job's containers.
// @Summary Stop a job's containers
// @Description Stops every task of the job that has not ended. It does not change the job's record or free its cores: to cancel a job, use DELETE /api/v1/jobs/{name} on the frontend, which calls this.
// @Tags jobs
// @Accept json
// @Produce json
// @Param name path string true "job_name"
// @Param reason body object{reason=string} false "why (optional; the default is: stopped on request)"
// @Success 200 {object} object{stopped=string} "the job's name"
// @Failure 400 {object} api.ErrorBody "a malformed body"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job"
// @Failure 503 {object} api.ErrorBody "a worker did not acknowledge"
// @Security BearerAuth
// @Router /api/v1/jobs/{name}/stop [post]
func (m *Manager) handleStop(c *gin.Context) {
	var body struct {
		Reason string `json:"reason"`
	}
	if c.Request.ContentLength != 0 {
		b, err := io.ReadAll(io.LimitReader(c.Request.Body, 1<<20))
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			err = api.DecodeStrict(b, &body)
		}
		if err != nil {
			respond(c, 0, nil, err)
			return
		}
	}
	if body.Reason == "" {
		body.Reason = "stopped on request"
	}
	respond(c, http.StatusOK, gin.H{"stopped": c.Param("name")}, m.Stop(c.Request.Context(), c.Param("name"), body.Reason))
}

// handleLogs answers the last lines a task printed.
// @Summary Task output
// @Description The last lines a task's container printed: asked of its worker while it runs, read from the record once it has ended.
// @Tags tasks
// @Produce json
// @Param name path string true "job_name"
// @Param task path string true "container_name"
// @Param tail query int false "how many lines, from the end" default(100) minimum(1) maximum(10000)
// @Success 200 {object} object{task=string,lines=[]string}
// @Failure 400 {object} api.ErrorBody "a bad tail"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job or task"
// @Failure 503 {object} api.ErrorBody "the worker did not answer"
// @Security BearerAuth
// @Router /api/v1/jobs/{name}/tasks/{task}/logs [get]
func (m *Manager) handleLogs(c *gin.Context) {
	tail := 100
	if s := c.Query("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			respond(c, 0, nil, api.Invalid("tail", "must be an integer from 1 to 10000"))
			return
		}
		tail = n
	}
	lines, err := m.Logs(c.Request.Context(), c.Param("name"), c.Param("task"), tail)
	respond(c, http.StatusOK, gin.H{"task": c.Param("task"), "lines": lines}, err)
}

// decode reads a JSON body strictly into v, naming the bad field.
func decode(c *gin.Context, v any) bool {
	b, err := io.ReadAll(io.LimitReader(c.Request.Body, api.MaxJobBytes+1))
	if err == nil && len(b) > api.MaxJobBytes {
		err = api.Invalid("", "body larger than %d bytes", api.MaxJobBytes)
	}
	if err == nil {
		err = api.DecodeStrict(b, v)
	}
	if err != nil {
		respond(c, 0, nil, err)
		return false
	}
	return true
}

// handleJoin registers a host that joins the swarm by itself.
// @Summary Register a joining host (original RESTfulSwarm path)
// @Description For a host that joins the swarm by itself (docker swarm join): waits, without busy-waiting and at most the join timeout, until a swarm node with the given address appears, then registers it as a worker. Hosts running `rswarm worker` register themselves and need no call.
// @Tags workers
// @Accept json
// @Produce json
// @Param worker body JoinRequest true "the joining host"
// @Success 200 {object} api.RegisterReply
// @Failure 400 {object} api.ErrorBody "no address, or an unknown field"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 503 {object} api.ErrorBody "no such node joined in time, or the globalmanager runs without a swarm"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/request_join [post]
func (m *Manager) handleJoin(c *gin.Context) {
	var r JoinRequest
	if decode(c, &r) {
		reply, err := m.Join(c.Request.Context(), r)
		respond(c, http.StatusOK, reply, err)
	}
}

// handleNewTask submits one task as a job of its own.
// @Summary Submit one task (original RESTfulSwarm path)
// @Description Submits one task as a job of its own, named after the <job>_ prefix of its container_name, through the same queue as every job, so that its cores are accounted for. Its node and cpuset_cpus are honoured under the no-scheduler strategy. Tasks ask for whole cores with req_cores.
// @Tags tasks
// @Accept json
// @Produce json
// @Param task body TaskRequest true "the task, with the network to put it on"
// @Success 200 {object} object{job_name=string,status=string} "the job it became, Ready"
// @Failure 400 {object} api.ErrorBody "malformed or invalid; error.field names the field"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 409 {object} api.ErrorBody "a job of that name exists"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/request_new_task [post]
func (m *Manager) handleNewTask(c *gin.Context) {
	var r TaskRequest
	if decode(c, &r) {
		job, err := m.SubmitTask(c.Request.Context(), r)
		respond(c, http.StatusOK, gin.H{"job_name": job, "status": api.Ready.String()}, err)
	}
}

// handleCheckpoint checkpoints running containers.
// @Summary Checkpoint containers
// @Description Checkpoints containers on their workers, leaving them running. Every node is checked before anything is sent. Where CRIU does not work (as on kernels newer than Debian 12's CRIU supports), the error carries CRIU's own words. /RESTfulSwarm/GM/checkpoint_cons is the original path; /api/v1/checkpoints answers the same.
// @Tags checkpoints
// @Accept json
// @Produce json
// @Param checkpoints body []CheckpointRequest true "nodes and their containers"
// @Success 200 {object} object{checkpoints=[]CheckpointResult} "each container's checkpoint"
// @Failure 400 {object} api.ErrorBody "an empty list or a malformed item"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "a node is not a registered worker"
// @Failure 422 {object} api.ErrorBody "some checkpoints failed; the message names the first"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/checkpoint_cons [post]
// @Router /api/v1/checkpoints [post]
func (m *Manager) handleCheckpoint(c *gin.Context) {
	var r []CheckpointRequest
	if decode(c, &r) {
		res, err := m.Checkpoint(c.Request.Context(), r)
		respondPartial(c, "checkpoints", res, err)
	}
}

// handleMigrate moves one running task to another worker.
// @Summary Migrate a task
// @Description Moves a running task to another worker: the jobmanager reserves cores there, the task is stopped on its worker and started on the new one, and only then are its old cores freed. If the start fails the task is started again where it was. Moves are cold (restarts); note says why. from and to name workers by node ID, address or host name. /RESTfulSwarm/GM/request_migrate is the original path; /api/v1/migrations answers the same.
// @Tags migrations
// @Accept json
// @Produce json
// @Param migration body MigrateRequest true "the task and where it goes"
// @Success 200 {object} MigrateResult
// @Failure 400 {object} api.ErrorBody "malformed, or the task already runs there"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job, task or worker"
// @Failure 409 {object} api.ErrorBody "the task does not run (on from), or the target is not ready or has no room"
// @Failure 503 {object} api.ErrorBody "a worker or the jobmanager did not answer"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/request_migrate [post]
// @Router /api/v1/migrations [post]
func (m *Manager) handleMigrate(c *gin.Context) {
	var r MigrateRequest
	if decode(c, &r) {
		res, err := m.Migrate(c.Request.Context(), r)
		respond(c, http.StatusOK, res, err)
	}
}

// handleGroupMigration moves several tasks, one after the other.
// @Summary Migrate several tasks
// @Description Migrates each item in turn; one failure does not stop the others. /RESTfulSwarm/GM/request_group_migration is the original path; /api/v1/migrations/group answers the same.
// @Tags migrations
// @Accept json
// @Produce json
// @Param migrations body []MigrateRequest true "the migrations, in order"
// @Success 200 {object} object{migrations=[]MigrateResult} "each move"
// @Failure 400 {object} api.ErrorBody "an empty list or a malformed item"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 422 {object} api.ErrorBody "some migrations failed; the message counts them"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/request_group_migration [post]
// @Router /api/v1/migrations/group [post]
func (m *Manager) handleGroupMigration(c *gin.Context) {
	var r []MigrateRequest
	if decode(c, &r) {
		res, err := m.MigrateGroup(c.Request.Context(), r)
		respondPartial(c, "migrations", res, err)
	}
}

// handleMigrateJob moves every running task of a job to one worker.
// @Summary Migrate a job
// @Description Migrates every running or deployed task of the job to the worker to, one after the other, as POST /api/v1/migrations/group would.
// @Tags migrations
// @Accept json
// @Produce json
// @Param name path string true "job_name"
// @Param target body object{to=string,mode=string} true "the worker to move to (node ID, address or host name), and live, cold or auto (default)"
// @Success 200 {object} object{migrations=[]MigrateResult} "each move"
// @Failure 400 {object} api.ErrorBody "a malformed body"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job"
// @Failure 409 {object} api.ErrorBody "the job has no running task"
// @Failure 422 {object} api.ErrorBody "some moves failed"
// @Security BearerAuth
// @Router /api/v1/jobs/{name}/migrate [post]
func (m *Manager) handleMigrateJob(c *gin.Context) {
	var r struct {
		To   string `json:"to"`
		Mode string `json:"mode"`
	}
	if !decode(c, &r) {
		return
	}
	ctx := c.Request.Context()
	j, err := m.st.GetJob(ctx, c.Param("name"))
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	var reqs []MigrateRequest
	for _, t := range j.Info.Tasks {
		if t.Status == api.Running || t.Status == api.Deployed {
			reqs = append(reqs, MigrateRequest{Job: j.Name, Container: t.ContainerName, From: t.Node, To: r.To, Mode: r.Mode})
		}
	}
	if len(reqs) == 0 {
		respond(c, 0, nil, &api.FieldError{Field: "job", Kind: api.ErrConflict, Reason: fmt.Sprintf("job %s has no running task", j.Name)})
		return
	}
	res, err := m.MigrateGroup(ctx, reqs)
	respondPartial(c, "migrations", res, err)
}

// handleMigrateTask moves one running task to another worker.
// @Summary Migrate a task
// @Description Moves the running task (its job is the part of its name before the last "_") to the worker to, as POST /api/v1/migrations would: mode live, cold or auto (default; live where both hosts can checkpoint, else cold). The answer says which mode was used and why.
// @Tags migrations
// @Accept json
// @Produce json
// @Param name path string true "container_name"
// @Param target body object{to=string,mode=string} true "the worker to move to (node ID, address or host name), and the mode"
// @Success 200 {object} MigrateResult "the move"
// @Failure 400 {object} api.ErrorBody "a malformed body, a bad mode or task name"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job, task or worker"
// @Failure 409 {object} api.ErrorBody "the task does not run, or the target is not ready or has no room"
// @Failure 422 {object} api.ErrorBody "live asked where a host cannot checkpoint (names the host and CRIU's reason), or the move failed (the task runs on where it was)"
// @Security BearerAuth
// @Router /api/v1/tasks/{name}/migrate [post]
func (m *Manager) handleMigrateTask(c *gin.Context) {
	var r struct {
		To   string `json:"to"`
		Mode string `json:"mode"`
	}
	if !decode(c, &r) {
		return
	}
	ctx := c.Request.Context()
	j, t, err := m.taskByName(ctx, c.Param("name"))
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	res, err := m.Migrate(ctx, MigrateRequest{Job: j.Name, Container: t.ContainerName, From: t.Node, To: r.To, Mode: r.Mode})
	respond(c, http.StatusOK, res, err)
}

// taskByName finds a task by its container name (<job>_<suffix>).
func (m *Manager) taskByName(ctx context.Context, name string) (*api.Job, *api.Task, error) {
	i := strings.LastIndexByte(name, '_')
	if i <= 0 {
		return nil, nil, api.Invalid("name", "%q is not a task name (<job>_<task>)", name)
	}
	j, err := m.st.GetJob(ctx, name[:i])
	if err != nil {
		return nil, nil, err
	}
	t := j.Info.Tasks.Get(name)
	if t == nil {
		return nil, nil, &api.FieldError{Field: "name", Kind: api.ErrNotFound, Reason: fmt.Sprintf("job %s has no task %q", j.Name, name)}
	}
	return j, t, nil
}

// handlePatchTask changes a running task's cores and memory limit.
// @Summary Update a task's cores and memory
// @Description Changes the running task's cpuset and memory limit in place, as request_update_container does: the jobmanager must grant the new cores (free, or the task's own) first. An empty field keeps the current value.
// @Tags tasks
// @Accept json
// @Produce json
// @Param name path string true "container_name"
// @Param update body object{cpuset_cpus=string,mem_limit=string} true "the new limits"
// @Success 200 {object} api.Task "the task as updated"
// @Failure 400 {object} api.ErrorBody "malformed, or a bad cpuset or memory limit"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job or task"
// @Failure 409 {object} api.ErrorBody "the task does not run, or the cores are taken"
// @Failure 503 {object} api.ErrorBody "the worker or the jobmanager did not answer"
// @Security BearerAuth
// @Router /api/v1/tasks/{name} [patch]
func (m *Manager) handlePatchTask(c *gin.Context) {
	var r struct {
		CpusetCpus string `json:"cpuset_cpus"`
		MemLimit   string `json:"mem_limit"`
	}
	if !decode(c, &r) {
		return
	}
	ctx := c.Request.Context()
	j, t, err := m.taskByName(ctx, c.Param("name"))
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	task, err := m.Update(ctx, UpdateRequest{Job: j.Name, ContainerName: t.ContainerName, CpusetCpus: r.CpusetCpus, MemLimit: r.MemLimit})
	respond(c, http.StatusOK, task, err)
}

// handleCheckpointTask checkpoints one task, leaving it running.
// @Summary Checkpoint a task
// @Description Checkpoints the task's container with CRIU on its worker, leaving it running, as checkpoint_cons does for one container. On hosts where CRIU fails the answer is 422 with CRIU's own words.
// @Tags tasks
// @Produce json
// @Param name path string true "container_name"
// @Success 200 {object} object{checkpoints=[]CheckpointResult} "the checkpoint's name"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job or task"
// @Failure 409 {object} api.ErrorBody "the task is not placed"
// @Failure 422 {object} api.ErrorBody "the checkpoint failed (CRIU's reason)"
// @Security BearerAuth
// @Router /api/v1/tasks/{name}/checkpoint [post]
func (m *Manager) handleCheckpointTask(c *gin.Context) {
	ctx := c.Request.Context()
	_, t, err := m.taskByName(ctx, c.Param("name"))
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	if t.Node == "" {
		respond(c, 0, nil, &api.FieldError{Field: "name", Kind: api.ErrConflict, Reason: fmt.Sprintf("task %s is not placed on a worker", t.ContainerName)})
		return
	}
	res, err := m.Checkpoint(ctx, []CheckpointRequest{{Node: t.Node, Containers: []string{t.ContainerName}}})
	respondPartial(c, "checkpoints", res, err)
}

// handleLeave takes a worker out of the swarm.
// @Summary Remove a worker (original RESTfulSwarm path)
// @Description Takes a worker out: its unfinished tasks fail ("worker left"), the jobmanager forgets its cores, the worker stops its containers and leaves the swarm, and its node is removed. No shell command is run. The swarm manager itself cannot leave.
// @Tags workers
// @Accept json
// @Produce json
// @Param worker body object{hostname=string} true "the worker's node ID, address or host name"
// @Success 200 {object} api.Worker "the worker, now left"
// @Failure 400 {object} api.ErrorBody "malformed, or the swarm manager"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "not a registered worker"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/request_leave [post]
func (m *Manager) handleLeave(c *gin.Context) {
	var r struct {
		Hostname string `json:"hostname"`
	}
	if decode(c, &r) {
		w, err := m.Leave(c.Request.Context(), r.Hostname)
		respond(c, http.StatusOK, w, err)
	}
}

// handleLeaveWorker takes a worker out of the swarm.
// @Summary Remove a worker
// @Description Takes a worker out: its unfinished tasks fail ("worker left"), the jobmanager forgets its cores, the worker stops its containers and leaves the swarm, and its node is removed. The swarm manager itself cannot leave.
// @Tags workers
// @Produce json
// @Param id path string true "the worker's node ID, address or host name"
// @Success 200 {object} api.Worker "the worker, now left"
// @Failure 400 {object} api.ErrorBody "the swarm manager"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "not a registered worker"
// @Security BearerAuth
// @Router /api/v1/workers/{id}/leave [post]
// @Router /api/v1/workers/{id} [delete]
func (m *Manager) handleLeaveWorker(c *gin.Context) {
	w, err := m.Leave(c.Request.Context(), c.Param("id"))
	respond(c, http.StatusOK, w, err)
}

// handleUpdate changes a running task's cores and memory limit.
// @Summary Update a task's cores and memory (original RESTfulSwarm path)
// @Description Changes a running task's cpuset and memory limit in place. The jobmanager must grant the new cores (free, or the task's own) first. An empty cpuset_cpus or mem_limit keeps the current one; node, if given, must be the task's worker.
// @Tags tasks
// @Accept json
// @Produce json
// @Param update body UpdateRequest true "the task and its new limits"
// @Success 200 {object} api.Task "the task as updated"
// @Failure 400 {object} api.ErrorBody "malformed, or a bad cpuset or memory limit"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job, task or worker"
// @Failure 409 {object} api.ErrorBody "the task does not run, runs elsewhere, or the cores are taken"
// @Failure 503 {object} api.ErrorBody "the worker or the jobmanager did not answer"
// @Security BearerAuth
// @Router /RESTfulSwarm/GM/request_update_container [post]
func (m *Manager) handleUpdate(c *gin.Context) {
	var r UpdateRequest
	if decode(c, &r) {
		t, err := m.Update(c.Request.Context(), r)
		respond(c, http.StatusOK, t, err)
	}
}

// handleUpdateTask changes a running task's cores and memory limit.
// @Summary Update a task's cores and memory
// @Description Changes a running task's cpuset and memory limit in place, as request_update_container does; the job and the task come from the path (job and container_name in the body are ignored). An empty cpuset_cpus or mem_limit keeps the current one.
// @Tags tasks
// @Accept json
// @Produce json
// @Param name path string true "job_name"
// @Param task path string true "container_name"
// @Param update body UpdateRequest true "the new limits"
// @Success 200 {object} api.Task "the task as updated"
// @Failure 400 {object} api.ErrorBody "malformed, or a bad cpuset or memory limit"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job, task or worker"
// @Failure 409 {object} api.ErrorBody "the task does not run, runs elsewhere, or the cores are taken"
// @Failure 503 {object} api.ErrorBody "the worker or the jobmanager did not answer"
// @Security BearerAuth
// @Router /api/v1/jobs/{name}/tasks/{task}/update [post]
func (m *Manager) handleUpdateTask(c *gin.Context) {
	var r UpdateRequest
	if decode(c, &r) {
		r.Job, r.ContainerName = c.Param("name"), c.Param("task")
		t, err := m.Update(c.Request.Context(), r)
		respond(c, http.StatusOK, t, err)
	}
}

// handleDrain stops placing new tasks on a worker and moves its tasks away.
// @Summary Drain a worker
// @Description The worker gets no new tasks (status "drained") until it is activated again, and its running tasks are migrated (mode auto) to the other ready workers with room for them, most free cores first. Tasks that fit nowhere now stay, listed under remaining with the reason; empty says whether the worker has no live task left. Draining again retries them.
// @Tags workers
// @Produce json
// @Param id path string true "the worker's node ID, address or host name"
// @Success 200 {object} DrainResult "the worker, with the moves made and the tasks left"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "not a registered worker"
// @Failure 409 {object} api.ErrorBody "the worker has left"
// @Security BearerAuth
// @Router /api/v1/workers/{id}/drain [post]
func (m *Manager) handleDrain(c *gin.Context) {
	res, err := m.Drain(c.Request.Context(), c.Param("id"))
	respond(c, http.StatusOK, res, err)
}

// handleActivate resumes placing new tasks on a drained worker.
// @Summary Activate a worker
// @Description A drained worker gets new tasks again (status "ready").
// @Tags workers
// @Produce json
// @Param id path string true "the worker's node ID, address or host name"
// @Success 200 {object} api.Worker
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "not a registered worker"
// @Failure 409 {object} api.ErrorBody "the worker has left"
// @Security BearerAuth
// @Router /api/v1/workers/{id}/activate [post]
func (m *Manager) handleActivate(c *gin.Context) {
	w, err := m.SetDrained(c.Request.Context(), c.Param("id"), false)
	respond(c, http.StatusOK, w, err)
}

// respondPartial answers a batch operation: the per-item results under key,
// alongside the error when some items failed.
func respondPartial[T any](c *gin.Context, key string, res []T, err error) {
	if err != nil && res == nil {
		respond(c, 0, nil, err)
		return
	}
	if err != nil {
		code, body := api.ErrorResponse(err)
		c.JSON(code, gin.H{"error": body.Error, key: res})
		return
	}
	c.JSON(http.StatusOK, gin.H{key: res})
}

package globalmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/rswarm/rswarm/api"
)

// Router returns the globalmanager's HTTP API: the original RESTfulSwarm
// paths and RSwarm's /api/v1 cluster operations. mw run before every handler
// (authentication, logging).
func (m *Manager) Router(mw ...gin.HandlerFunc) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	g := r.Group("/", mw...)
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
	g.POST("/api/v1/jobs/:name/tasks/:task/update", m.handleUpdateTask)
	g.POST("/api/v1/workers/:id/drain", m.handleDrain)
	g.POST("/api/v1/workers/:id/activate", m.handleActivate)
	g.POST("/api/v1/workers/:id/leave", m.handleLeaveWorker)
	g.POST("/api/v1/jobs/:name/stop", m.handleStop)
	g.GET("/api/v1/jobs/:name/tasks/:task/logs", m.handleLogs)
	g.GET("/api/v1/nodes", m.handleWorkerList)
	return r
}

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

func (m *Manager) handleInit(c *gin.Context) {
	_, err := m.Init(c.Request.Context())
	respond(c, http.StatusOK, "OK: Initialize Swarm environment succeed.", err)
}

func (m *Manager) handleDeploy(c *gin.Context) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, 8<<20))
	if err != nil {
		respond(c, 0, nil, api.Invalid("", "reading body: %v", err))
		return
	}
	var j api.Job
	if err := json.Unmarshal(body, &j); err != nil {
		respond(c, 0, nil, api.Invalid("", "malformed job: %v", err))
		return
	}
	respond(c, http.StatusOK, "OK", m.Deploy(c.Request.Context(), &j))
}

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

func (m *Manager) handleDescribe(c *gin.Context) {
	_, raw, err := m.swarm.Node(c.Request.Context(), c.Param("hostname"))
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", raw)
}

func (m *Manager) handleStop(c *gin.Context) {
	var body struct {
		Reason string `json:"reason"`
	}
	if c.Request.ContentLength != 0 {
		if err := json.NewDecoder(c.Request.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			respond(c, 0, nil, api.Invalid("", "malformed body: %v", err))
			return
		}
	}
	if body.Reason == "" {
		body.Reason = "stopped on request"
	}
	respond(c, http.StatusOK, gin.H{"stopped": c.Param("name")}, m.Stop(c.Request.Context(), c.Param("name"), body.Reason))
}

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
	b, err := io.ReadAll(io.LimitReader(c.Request.Body, 8<<20))
	if err == nil {
		err = api.DecodeStrict(b, v)
	}
	if err != nil {
		respond(c, 0, nil, err)
		return false
	}
	return true
}

func (m *Manager) handleJoin(c *gin.Context) {
	var r JoinRequest
	if decode(c, &r) {
		reply, err := m.Join(c.Request.Context(), r)
		respond(c, http.StatusOK, reply, err)
	}
}

func (m *Manager) handleNewTask(c *gin.Context) {
	var r TaskRequest
	if decode(c, &r) {
		job, err := m.SubmitTask(c.Request.Context(), r)
		respond(c, http.StatusOK, gin.H{"job_name": job, "status": api.Ready.String()}, err)
	}
}

func (m *Manager) handleCheckpoint(c *gin.Context) {
	var r []CheckpointRequest
	if decode(c, &r) {
		res, err := m.Checkpoint(c.Request.Context(), r)
		respond(c, http.StatusOK, gin.H{"checkpoints": res}, err)
	}
}

func (m *Manager) handleMigrate(c *gin.Context) {
	var r MigrateRequest
	if decode(c, &r) {
		res, err := m.Migrate(c.Request.Context(), r)
		respond(c, http.StatusOK, res, err)
	}
}

func (m *Manager) handleGroupMigration(c *gin.Context) {
	var r []MigrateRequest
	if decode(c, &r) {
		res, err := m.MigrateGroup(c.Request.Context(), r)
		respond(c, http.StatusOK, gin.H{"migrations": res}, err)
	}
}

func (m *Manager) handleMigrateJob(c *gin.Context) {
	var r struct {
		To string `json:"to"`
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
			reqs = append(reqs, MigrateRequest{Job: j.Name, Container: t.ContainerName, From: t.Node, To: r.To})
		}
	}
	if len(reqs) == 0 {
		respond(c, 0, nil, &api.FieldError{Field: "job", Kind: api.ErrConflict, Reason: fmt.Sprintf("job %s has no running task", j.Name)})
		return
	}
	res, err := m.MigrateGroup(ctx, reqs)
	respond(c, http.StatusOK, gin.H{"migrations": res}, err)
}

func (m *Manager) handleLeave(c *gin.Context) {
	var r struct {
		Hostname string `json:"hostname"`
	}
	if decode(c, &r) {
		w, err := m.Leave(c.Request.Context(), r.Hostname)
		respond(c, http.StatusOK, w, err)
	}
}

func (m *Manager) handleLeaveWorker(c *gin.Context) {
	w, err := m.Leave(c.Request.Context(), c.Param("id"))
	respond(c, http.StatusOK, w, err)
}

func (m *Manager) handleUpdate(c *gin.Context) {
	var r UpdateRequest
	if decode(c, &r) {
		t, err := m.Update(c.Request.Context(), r)
		respond(c, http.StatusOK, t, err)
	}
}

func (m *Manager) handleUpdateTask(c *gin.Context) {
	var r UpdateRequest
	if decode(c, &r) {
		r.Job, r.ContainerName = c.Param("name"), c.Param("task")
		t, err := m.Update(c.Request.Context(), r)
		respond(c, http.StatusOK, t, err)
	}
}

func (m *Manager) handleDrain(c *gin.Context) {
	w, err := m.SetDrained(c.Request.Context(), c.Param("id"), true)
	respond(c, http.StatusOK, w, err)
}

func (m *Manager) handleActivate(c *gin.Context) {
	w, err := m.SetDrained(c.Request.Context(), c.Param("id"), false)
	respond(c, http.StatusOK, w, err)
}

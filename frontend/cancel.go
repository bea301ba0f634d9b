package frontend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/rswarm/rswarm/api"
)

// Deleted is the answer to DELETE /api/v1/jobs/{name}.
type Deleted struct {
	JobName string `json:"job_name"`
	// Action is "cancelled" (the job was waiting or running), "deleted" (it
	// had ended, and its record is gone) or "none" (it ended while being
	// cancelled).
	Action string `json:"action"`
	Status string `json:"status,omitempty"`
}

var errEnded = errors.New("frontend: job already ended")

// Cancel ends a job that has not ended: its record is marked Cancelled, its
// containers are stopped, and the jobmanager frees its cores and drops it
// from the queue. A job that has ended is deleted instead, so that its name
// can be used again.
func (s *Server) Cancel(ctx context.Context, name string) (Deleted, error) {
	j, err := s.jobs.GetJob(ctx, name)
	if errors.Is(err, api.ErrNotFound) {
		return Deleted{}, fmt.Errorf("job %q: %w", name, api.ErrNotFound)
	}
	if err != nil {
		return Deleted{}, err
	}
	if j.Status.Final() {
		if err := s.jobs.DeleteJob(ctx, name); err != nil && !errors.Is(err, api.ErrNotFound) {
			return Deleted{}, err
		}
		return Deleted{JobName: name, Action: "deleted"}, nil
	}
	// The jobmanager must hear of the cancellation to free the cores: when
	// it does not answer, nothing is changed and the caller is told so at
	// once, rather than waiting for it.
	if err := s.call(ctx, func(ctx context.Context) error { _, err := s.sched.Strategy(ctx); return err }); err != nil {
		return Deleted{}, fmt.Errorf("job %q not cancelled: the jobmanager did not answer within %s (%v); try again once it is back: %w", name, s.cfg.CallTimeout, err, api.ErrUnavailable)
	}
	now := float64(s.cfg.Now().UnixNano()) / 1e9
	j, err = s.jobs.UpdateJob(ctx, name, func(j *api.Job) error {
		if j.Status.Final() {
			return errEnded
		}
		j.Finish(api.Cancelled, "cancelled by user", now)
		return nil
	})
	if errors.Is(err, errEnded) {
		// It ended between the read and the write: nothing left to cancel.
		j, err = s.jobs.GetJob(ctx, name)
		if err != nil {
			return Deleted{}, err
		}
		return Deleted{JobName: name, Action: "none", Status: j.Status.String()}, nil
	}
	if err != nil {
		return Deleted{}, err
	}
	// Stop the containers first, then free the cores, so that no new task
	// lands on a core whose old container is still alive.
	if err := s.call(ctx, func(ctx context.Context) error { return s.cluster.Stop(ctx, name, "cancelled by user") }); err != nil {
		s.log.Warn("stopping a cancelled job's containers", "job_id", name, "err", err)
	}
	if err := s.call(ctx, func(ctx context.Context) error { return s.sched.JobCancelled(ctx, name) }); err != nil {
		s.log.Warn("telling the jobmanager of a cancellation; its resync will free the cores", "job_id", name, "err", err)
	}
	return Deleted{JobName: name, Action: "cancelled", Status: j.Status.String()}, nil
}

// handleDelete cancels a job that has not ended, or deletes one that has.
// @Summary Cancel or delete a job
// @Description A waiting or running job is cancelled: its containers are stopped and removed, its cores freed, and its record marked Cancelled (action "cancelled"). A job that has ended is deleted, so that its name can be used again (action "deleted"). Both are idempotent: cancelling a cancelled job deletes it, and a deleted job is a 404.
// @Tags jobs
// @Produce json
// @Param name path string true "job_name"
// @Success 200 {object} Deleted
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job"
// @Failure 500 {object} api.ErrorBody "the store failed"
// @Failure 503 {object} api.ErrorBody "the jobmanager did not answer within seconds: nothing was cancelled"
// @Security BearerAuth
// @Router /api/v1/jobs/{name} [delete]
func (s *Server) handleDelete(c *gin.Context) {
	d, err := s.Cancel(c.Request.Context(), c.Param("name"))
	respond(c, http.StatusOK, d, err)
}

func (s *Server) task(ctx context.Context, job, task string) (*api.Task, error) {
	j, err := s.jobs.GetJob(ctx, job)
	if errors.Is(err, api.ErrNotFound) {
		return nil, fmt.Errorf("job %q: %w", job, api.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	t := j.Info.Tasks.Get(task)
	if t == nil {
		return nil, fmt.Errorf("job %q has no task %q: %w", job, task, api.ErrNotFound)
	}
	return t, nil
}

// handleTask answers one task of a job.
// @Summary Get a task
// @Description One task of a job: its state, node, cores, and once it has ended its exit code, error and last output lines.
// @Tags tasks
// @Produce json
// @Param name path string true "job_name"
// @Param task path string true "container_name"
// @Success 200 {object} api.Task
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job, or no such task in it"
// @Failure 500 {object} api.ErrorBody "the store failed"
// @Security BearerAuth
// @Router /api/v1/jobs/{name}/tasks/{task} [get]
func (s *Server) handleTask(c *gin.Context) {
	t, err := s.task(c.Request.Context(), c.Param("name"), c.Param("task"))
	respond(c, http.StatusOK, t, err)
}

// Logs is the answer to GET .../logs: the last lines of a task's output.
type Logs struct {
	Task  string   `json:"task"`
	Lines []string `json:"lines"`
}

// handleLogs answers the last lines a task printed.
// @Summary Task output
// @Description The last lines a task's container printed: read from its worker while it runs, from the record once it has ended.
// @Tags tasks
// @Produce json
// @Param name path string true "job_name"
// @Param task path string true "container_name"
// @Param tail query int false "how many lines, from the end" default(100) minimum(1) maximum(10000)
// @Success 200 {object} Logs
// @Failure 400 {object} api.ErrorBody "a bad tail"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job or task"
// @Failure 503 {object} api.ErrorBody "the globalmanager or the worker did not answer"
// @Security BearerAuth
// @Router /api/v1/jobs/{name}/tasks/{task}/logs [get]
func (s *Server) handleLogs(c *gin.Context) {
	tail := 100
	if v := c.Query("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			respond(c, 0, nil, api.Invalid("tail", "must be an integer from 1 to 10000, got %q", v))
			return
		}
		tail = n
	}
	ctx := c.Request.Context()
	t, err := s.task(ctx, c.Param("name"), c.Param("task"))
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	lines := t.Logs
	if t.Status >= api.Deployed && !t.Status.Final() {
		lines, err = s.cluster.Logs(ctx, c.Param("name"), t.ContainerName, tail)
		if err != nil {
			// The container may not exist yet (the task was delivered,
			// not started: it printed nothing yet) or any more (it ended,
			// and its record now holds its last lines).
			if t2, terr := s.task(ctx, c.Param("name"), t.ContainerName); terr == nil && (t2.Status == api.Deployed || t2.Status.Final()) {
				lines, err = t2.Logs, nil
			}
		}
		if err != nil {
			respond(c, 0, nil, err)
			return
		}
	}
	if len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	if lines == nil {
		lines = []string{}
	}
	respond(c, http.StatusOK, Logs{Task: t.ContainerName, Lines: lines}, nil)
}

// handleWorker answers one worker.
// @Summary Get a worker
// @Description One worker: its cores (CPUs says which are busy, core_tasks by which task), memory, status, last heartbeat, and whether checkpointing works on its host.
// @Tags workers
// @Produce json
// @Param id path string true "the worker's node ID (its hostname field)"
// @Success 200 {object} api.Worker
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such worker"
// @Failure 500 {object} api.ErrorBody "the store failed"
// @Security BearerAuth
// @Router /api/v1/workers/{id} [get]
func (s *Server) handleWorker(c *gin.Context) {
	w, err := s.jobs.GetWorker(c.Request.Context(), c.Param("id"))
	if errors.Is(err, api.ErrNotFound) {
		err = fmt.Errorf("worker %q: %w", c.Param("id"), api.ErrNotFound)
	}
	respond(c, http.StatusOK, w, err)
}

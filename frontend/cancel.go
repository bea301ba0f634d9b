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
	// Action is "cancelled" (the job was waiting or running) or "deleted"
	// (it had ended, and its record is gone).
	Action string `json:"action"`
	Status string `json:"status,omitempty"`
}

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
	now := float64(s.cfg.Now().UnixNano()) / 1e9
	j, err = s.jobs.UpdateJob(ctx, name, func(j *api.Job) error {
		j.Finish(api.Cancelled, "cancelled by user", now)
		return nil
	})
	if err != nil {
		return Deleted{}, err
	}
	// Stop the containers first, then free the cores, so that no new task
	// lands on a core whose old container is still alive.
	if err := s.cluster.Stop(ctx, name, "cancelled by user"); err != nil {
		s.log.Warn("stopping a cancelled job's containers", "job_id", name, "err", err)
	}
	if err := s.sched.JobCancelled(ctx, name); err != nil {
		s.log.Warn("telling the jobmanager of a cancellation; its resync will free the cores", "job_id", name, "err", err)
	}
	return Deleted{JobName: name, Action: "cancelled", Status: j.Status.String()}, nil
}

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

func (s *Server) handleTask(c *gin.Context) {
	t, err := s.task(c.Request.Context(), c.Param("name"), c.Param("task"))
	respond(c, http.StatusOK, t, err)
}

// Logs is the answer to GET .../logs: the last lines of a task's output.
type Logs struct {
	Task  string   `json:"task"`
	Lines []string `json:"lines"`
}

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
		if lines, err = s.cluster.Logs(ctx, c.Param("name"), t.ContainerName, tail); err != nil {
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

func (s *Server) handleWorker(c *gin.Context) {
	w, err := s.jobs.GetWorker(c.Request.Context(), c.Param("id"))
	if errors.Is(err, api.ErrNotFound) {
		err = fmt.Errorf("worker %q: %w", c.Param("id"), api.ErrNotFound)
	}
	respond(c, http.StatusOK, w, err)
}

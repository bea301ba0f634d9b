// Package client is the Go client of RSwarm's REST APIs: the frontend's jobs
// API and the globalmanager's cluster API, as the `rswarm job|task|node|...`
// commands use them. It speaks in the servers' own types (api.Job,
// api.Worker, frontend.Event, globalmanager.MigrateRequest, ...), never in
// copies of them, and every error a server answers comes back as an
// *api.StatusError that prints the server's message and field.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/frontend"
	"github.com/rswarm/rswarm/globalmanager"
)

// Default addresses of the frontend and the globalmanager.
const (
	DefaultAddr   = "127.0.0.1:5001"
	DefaultGMAddr = "127.0.0.1:5000"
)

// Client talks to one frontend and one globalmanager. It is safe for
// concurrent use.
type Client struct {
	fe, gm *api.Client
	feBase string
	token  string
	stream *http.Client // for the events stream: no overall timeout
}

// New returns a client of the frontend at addr and the globalmanager at
// gmAddr, each a host:port or a URL (see BaseURL). token, when set, is sent
// as a bearer token to both.
func New(addr, gmAddr, token string) (*Client, error) {
	fe, err := BaseURL(addr)
	if err != nil {
		return nil, fmt.Errorf("frontend address: %w", err)
	}
	gm, err := BaseURL(gmAddr)
	if err != nil {
		return nil, fmt.Errorf("globalmanager address: %w", err)
	}
	return &Client{fe: api.NewClient(fe, token), gm: api.NewClient(gm, token), feBase: fe, token: token, stream: &http.Client{}}, nil
}

// BaseURL turns a server address into the base URL requests are made
// against: "host:port" and ":port" (on 127.0.0.1) become http URLs, and an
// http or https URL is kept, without its trailing slash (a path is kept, for
// servers behind a reverse proxy).
func BaseURL(addr string) (string, error) {
	s := strings.TrimSpace(addr)
	if s == "" {
		return "", errors.New("empty address")
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("%q is neither host:port nor an http(s) URL", addr)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		s = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %w", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: the scheme must be http or https", addr)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q: no host", addr)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: a server address takes no query or fragment", addr)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func esc(s string) string { return url.PathEscape(s) }

// Submit submits jobs in the original format: data holds one job or a JSON
// array of jobs. It answers one entry per job, in order; a job the server
// refused has Error set (and Code its HTTP status), and the others are
// stored. A body the server refuses as a whole is an error.
func (c *Client) Submit(ctx context.Context, data []byte) ([]frontend.Accepted, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var out []frontend.Accepted
		err := c.fe.Do(ctx, http.MethodPost, "/api/v1/jobs", json.RawMessage(data), &out)
		return out, err
	}
	var one frontend.Accepted
	if err := c.fe.Do(ctx, http.MethodPost, "/api/v1/jobs", json.RawMessage(data), &one); err != nil {
		return nil, err
	}
	one.Code = http.StatusCreated
	return []frontend.Accepted{one}, nil
}

// SubmitJobs submits jobs as a batch (see Submit).
func (c *Client) SubmitJobs(ctx context.Context, jobs ...*api.Job) ([]frontend.Accepted, error) {
	b, err := json.Marshal(jobs)
	if err != nil {
		return nil, err
	}
	return c.Submit(ctx, b)
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, name string) (*api.Job, error) {
	return c.fe.Job(ctx, name)
}

// Jobs returns one page of the jobs matching f (the server's default page
// size when f.Limit is 0) and the total that match.
func (c *Client) Jobs(ctx context.Context, f api.JobFilter) (*api.JobList, error) {
	return c.fe.Jobs(ctx, f)
}

// AllJobs returns every job matching f, reading page after page.
func (c *Client) AllJobs(ctx context.Context, f api.JobFilter) ([]*api.Job, error) {
	const page = 1000
	f.Limit, f.Offset = page, 0
	var out []*api.Job
	for {
		l, err := c.fe.Jobs(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, l.Jobs...)
		if len(l.Jobs) < page || len(out) >= l.Total {
			return out, nil
		}
		f.Offset += len(l.Jobs)
	}
}

// Task returns one task of a job.
func (c *Client) Task(ctx context.Context, job, task string) (*api.Task, error) {
	var t api.Task
	if err := c.fe.Do(ctx, http.MethodGet, "/api/v1/jobs/"+esc(job)+"/tasks/"+esc(task), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Delete cancels a job that has not ended, or deletes the record of one
// that has (Deleted.Action says which).
func (c *Client) Delete(ctx context.Context, name string) (frontend.Deleted, error) {
	var d frontend.Deleted
	err := c.fe.Do(ctx, http.MethodDelete, "/api/v1/jobs/"+esc(name), nil, &d)
	return d, err
}

// Logs returns the last tail lines a task printed (1 to 10000).
func (c *Client) Logs(ctx context.Context, job, task string, tail int) ([]string, error) {
	var l frontend.Logs
	err := c.fe.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%s/tasks/%s/logs?tail=%d", esc(job), esc(task), tail), nil, &l)
	return l.Lines, err
}

// Workers returns every registered worker.
func (c *Client) Workers(ctx context.Context) ([]*api.Worker, error) {
	return c.fe.Workers(ctx)
}

// Worker returns one worker by its node ID.
func (c *Client) Worker(ctx context.Context, id string) (*api.Worker, error) {
	var w api.Worker
	if err := c.fe.Do(ctx, http.MethodGet, "/api/v1/workers/"+esc(id), nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Scheduler returns the current placement strategy and the valid ones.
func (c *Client) Scheduler(ctx context.Context) (api.StrategyInfo, error) {
	var si api.StrategyInfo
	err := c.fe.Do(ctx, http.MethodGet, "/api/v1/scheduler", nil, &si)
	return si, err
}

// SetScheduler switches the placement strategy and returns the one in use.
func (c *Client) SetScheduler(ctx context.Context, name string) (api.StrategyInfo, error) {
	var si api.StrategyInfo
	err := c.fe.Do(ctx, http.MethodPut, "/api/v1/scheduler", map[string]string{"name": name}, &si)
	return si, err
}

// Checkpoint checkpoints containers on their node, leaving them running.
func (c *Client) Checkpoint(ctx context.Context, node string, containers ...string) ([]globalmanager.CheckpointResult, error) {
	var out struct {
		Checkpoints []globalmanager.CheckpointResult `json:"checkpoints"`
	}
	err := c.gm.Do(ctx, http.MethodPost, "/api/v1/checkpoints", []globalmanager.CheckpointRequest{{Node: node, Containers: containers}}, &out)
	return out.Checkpoints, err
}

// Migrate moves a running task to another worker. mode is "" (the server's
// default, auto), "auto", "cold" or "live"; the answer says which was used
// and why.
func (c *Client) Migrate(ctx context.Context, r globalmanager.MigrateRequest, mode string) (globalmanager.MigrateResult, error) {
	var res globalmanager.MigrateResult
	r.Mode = mode
	err := c.gm.Do(ctx, http.MethodPost, "/api/v1/migrations", r, &res)
	return res, err
}

// MigrateJob moves every running task of a job to the worker to, each with
// mode ("" for the server's default).
func (c *Client) MigrateJob(ctx context.Context, job, to, mode string) ([]globalmanager.MigrateResult, error) {
	var out struct {
		Migrations []globalmanager.MigrateResult `json:"migrations"`
	}
	body := map[string]string{"to": to}
	if mode != "" {
		body["mode"] = mode
	}
	err := c.gm.Do(ctx, http.MethodPost, "/api/v1/jobs/"+esc(job)+"/migrate", body, &out)
	return out.Migrations, err
}

// UpdateTask changes a running task's cpuset and memory limit; an empty
// one keeps the current value.
func (c *Client) UpdateTask(ctx context.Context, job, task, cpuset, memLimit string) (*api.Task, error) {
	var t api.Task
	body := globalmanager.UpdateRequest{CpusetCpus: cpuset, MemLimit: memLimit}
	if err := c.gm.Do(ctx, http.MethodPost, "/api/v1/jobs/"+esc(job)+"/tasks/"+esc(task)+"/update", body, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

func (c *Client) workerOp(ctx context.Context, id, op string) (*api.Worker, error) {
	var w api.Worker
	if err := c.gm.Do(ctx, http.MethodPost, "/api/v1/workers/"+esc(id)+"/"+op, nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Drain stops placing new tasks on a worker; its running tasks stay.
func (c *Client) Drain(ctx context.Context, id string) (*api.Worker, error) {
	return c.workerOp(ctx, id, "drain")
}

// Activate lets a drained worker take new tasks again.
func (c *Client) Activate(ctx context.Context, id string) (*api.Worker, error) {
	return c.workerOp(ctx, id, "activate")
}

// Leave takes a worker out of the cluster: its unfinished tasks fail.
func (c *Client) Leave(ctx context.Context, id string) (*api.Worker, error) {
	return c.workerOp(ctx, id, "leave")
}

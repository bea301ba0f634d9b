package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client speaks RSwarm's REST APIs: the frontend's jobs API and the
// globalmanager's cluster API. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client of the server at base ("http://127.0.0.1:5001").
// token, when set, is sent as a bearer token.
func NewClient(base, token string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// NewClientHTTP is NewClient over a given HTTP client (one whose transport
// dials through an SSH connection, for example).
func NewClientHTTP(base, token string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: hc}
}

// Do sends a request with an optional JSON body (a json.RawMessage is sent
// as is) and decodes a JSON reply into out (when non-nil). Error replies
// come back as *StatusError; out is then filled from the reply where it
// matches (a batch's per-item results beside the error).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if raw, ok := body.(json.RawMessage); ok {
		rd = bytes.NewReader(raw) // sent as given: the server says what is wrong with it
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w: %w", method, path, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read reply: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Message == "" {
			eb.Error.Message = strings.TrimSpace(string(data))
		}
		if out != nil {
			// Batch operations answer the items that did succeed beside the error.
			_ = json.Unmarshal(data, out)
		}
		return &StatusError{Status: resp.StatusCode, Detail: eb.Error}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode reply: %w", method, path, err)
		}
	}
	return nil
}

// SubmitJob submits one job to the frontend.
func (c *Client) SubmitJob(ctx context.Context, j *Job) error {
	return c.Do(ctx, http.MethodPost, "/api/v1/jobs", j, nil)
}

// Job returns one job from the frontend.
func (c *Client) Job(ctx context.Context, name string) (*Job, error) {
	var j Job
	if err := c.Do(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(name), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// JobList is a page of jobs.
type JobList struct {
	Jobs  []*Job `json:"jobs"`
	Total int    `json:"total"`
}

// Jobs lists jobs from the frontend.
func (c *Client) Jobs(ctx context.Context, f JobFilter) (*JobList, error) {
	q := url.Values{}
	for _, s := range f.Status {
		q.Add("status", s.String())
	}
	if f.Session != "" {
		q.Set("session", f.Session)
	}
	if f.Node != "" {
		q.Set("node", f.Node)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	var l JobList
	if err := c.Do(ctx, http.MethodGet, "/api/v1/jobs?"+q.Encode(), nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Workers lists the workers from the frontend.
func (c *Client) Workers(ctx context.Context) ([]*Worker, error) {
	var ws []*Worker
	err := c.Do(ctx, http.MethodGet, "/api/v1/workers", nil, &ws)
	return ws, err
}

// Deploy asks the globalmanager to deploy a placed job.
func (c *Client) Deploy(ctx context.Context, j *Job) error {
	return c.Do(ctx, http.MethodPost, "/RESTfulSwarm/GM/request_new_job", j, nil)
}

// Stop asks the globalmanager to stop a job's remaining containers.
func (c *Client) Stop(ctx context.Context, job, reason string) error {
	return c.Do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(job)+"/stop", map[string]string{"reason": reason}, nil)
}

// Logs asks the globalmanager for the last tail lines of a running task.
func (c *Client) Logs(ctx context.Context, job, task string, tail int) ([]string, error) {
	var out struct {
		Lines []string `json:"lines"`
	}
	path := fmt.Sprintf("/api/v1/jobs/%s/tasks/%s/logs?tail=%d", url.PathEscape(job), url.PathEscape(task), tail)
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out.Lines, err
}

// CancelJob cancels a waiting or running job, or deletes an ended one.
func (c *Client) CancelJob(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/jobs/"+url.PathEscape(name), nil, nil)
}

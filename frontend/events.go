package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rswarm/rswarm/api"
)

// Changes is the store's feed of changed jobs: every write to a job gives it
// a new, increasing sequence number.
type Changes interface {
	// JobsChangedSince returns jobs written after sequence number after, in
	// write order, at most limit of them, and the sequence number to ask
	// from next time. With after < 0 it returns no jobs, only the current head.
	JobsChangedSince(ctx context.Context, after int64, limit int) ([]*api.Job, int64, error)
}

// Event is one lifecycle change, as streamed by GET /api/v1/events.
type Event struct {
	Seq      uint64  `json:"seq"`
	Type     string  `json:"type"`
	Job      string  `json:"job,omitempty"`
	Task     string  `json:"task,omitempty"`
	Session  string  `json:"session,omitempty"`
	State    string  `json:"state,omitempty"`
	Node     string  `json:"node,omitempty"`
	ExitCode *int    `json:"exit_code,omitempty"`
	Error    string  `json:"error,omitempty"`
	Time     float64 `json:"time"`
}

// Event types, in the order a job goes through them.
const (
	EventJobAccepted      = "job.accepted"
	EventJobPlaced        = "job.placed"
	EventJobDeployed      = "job.deployed"
	EventJobRunning       = "job.running"
	EventTaskRunning      = "task.running"
	EventTaskFailed       = "task.failed"
	EventTaskEnded        = "task.ended"
	EventJobFinished      = "job.finished"
	EventSessionFinished  = "session.finished"
	eventSubscriberBuffer = 4096
)

// snapshot is what the hub last saw of a job.
type snapshot struct {
	status api.State
	placed bool
	tasks  map[string]api.State
}

// Diff returns the events that lead from what was seen of a job (nil for
// a job not seen before) to its current state, in lifecycle order. It is
// pure: the hub calls it for every changed job.
func Diff(prev *snapshot, j *api.Job) ([]Event, *snapshot) {
	now := j.EndTime
	if now == 0 {
		now = max(j.StartTime, j.SubmitTime)
	}
	ev := func(typ string) Event {
		return Event{Type: typ, Job: j.Name, Session: string(j.Session), State: j.Status.String(), Time: now}
	}
	next := &snapshot{status: j.Status, tasks: make(map[string]api.State, len(j.Info.Tasks))}
	var out []Event
	if prev == nil {
		prev = &snapshot{status: api.Ready, tasks: map[string]api.State{}}
		out = append(out, ev(EventJobAccepted))
	}
	placed := prev.placed
	for _, t := range j.Info.Tasks {
		if t.Status >= api.Scheduled && t.Node != "" {
			placed = true
		}
	}
	next.placed = placed
	if placed && !prev.placed {
		out = append(out, ev(EventJobPlaced))
	}
	if j.Status >= api.Deployed && prev.status < api.Deployed && !(j.Status.Final() && !placed) {
		out = append(out, ev(EventJobDeployed))
	}
	for _, t := range j.Info.Tasks {
		was := prev.tasks[t.ContainerName]
		next.tasks[t.ContainerName] = t.Status
		if t.Status == was {
			continue
		}
		if t.Status >= api.Running && was < api.Running && t.StartTime > 0 {
			e := ev(EventTaskRunning)
			e.Task, e.Node, e.State, e.Time = t.ContainerName, t.Node, api.Running.String(), t.StartTime
			out = append(out, e)
		}
		if t.Status.Final() {
			typ := EventTaskEnded
			if t.Status == api.Failed {
				typ = EventTaskFailed
			}
			e := ev(typ)
			e.Task, e.Node, e.State, e.ExitCode, e.Error, e.Time = t.ContainerName, t.Node, t.Status.String(), t.ExitCode, t.Error, t.EndTime
			out = append(out, e)
		}
	}
	if j.Status >= api.Running && prev.status < api.Running && j.StartTime > 0 {
		e := ev(EventJobRunning)
		e.Time = j.StartTime
		// A job is running from its first task's start: put it before the task events.
		out = insertAfter(out, e, EventJobDeployed, EventJobPlaced, EventJobAccepted)
	}
	if j.Status.Final() && !prev.status.Final() {
		e := ev(EventJobFinished)
		e.Error = j.Error
		out = append(out, e)
	}
	return out, next
}

// insertAfter puts e right after the last event of one of the given types.
func insertAfter(out []Event, e Event, types ...string) []Event {
	at := 0
	for i, o := range out {
		for _, t := range types {
			if o.Type == t {
				at = i + 1
			}
		}
	}
	out = append(out, Event{})
	copy(out[at+1:], out[at:])
	out[at] = e
	return out
}

// hub polls the store's change feed while anyone listens and fans the
// events out to the subscribers.
type hub struct {
	s        *Server
	changes  Changes
	interval time.Duration

	mu     sync.Mutex
	subs   map[chan Event]struct{}
	seq    uint64
	wake   chan struct{}
	primed chan struct{} // closed once the current listeners' view is primed
	cursor int64
	seen   map[string]*snapshot
}

func newHub(s *Server, ch Changes, interval time.Duration) *hub {
	return &hub{s: s, changes: ch, interval: interval, subs: map[chan Event]struct{}{}, wake: make(chan struct{}, 1),
		primed: make(chan struct{})}
}

// subscribe adds a listener and returns once the hub's view of the jobs is
// primed, so that every change made after it returns is streamed.
func (h *hub) subscribe(ctx context.Context) (chan Event, error) {
	c := make(chan Event, eventSubscriberBuffer)
	h.mu.Lock()
	h.subs[c] = struct{}{}
	primed := h.primed
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	select {
	case <-primed:
		return c, nil
	case <-ctx.Done():
		h.unsubscribe(c)
		return nil, ctx.Err()
	}
}

func (h *hub) unsubscribe(c chan Event) {
	h.mu.Lock()
	if _, ok := h.subs[c]; ok {
		delete(h.subs, c)
		close(c)
	}
	h.mu.Unlock()
}

func (h *hub) listeners() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// run polls until ctx ends. With no listener it sleeps; when the first one
// arrives it primes its view with every unfinished job.
func (h *hub) run(ctx context.Context) error {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.mu.Lock()
			for c := range h.subs {
				delete(h.subs, c)
				close(c)
			}
			h.mu.Unlock()
			return nil
		case <-t.C:
		case <-h.wake:
		}
		if h.listeners() == 0 {
			if h.seen != nil {
				h.seen = nil
				h.mu.Lock()
				h.primed = make(chan struct{})
				h.mu.Unlock()
			}
			continue
		}
		if h.seen == nil {
			if err := h.prime(ctx); err != nil {
				h.s.log.Warn("events: reading the store", "err", err)
				continue
			}
			h.mu.Lock()
			close(h.primed)
			h.mu.Unlock()
		}
		if err := h.poll(ctx); err != nil && ctx.Err() == nil {
			h.s.log.Warn("events: reading the store", "err", err)
		}
	}
}

func (h *hub) prime(ctx context.Context) error {
	_, head, err := h.changes.JobsChangedSince(ctx, -1, 0)
	if err != nil {
		return err
	}
	jobs, err := h.s.jobs.ListJobs(ctx, api.JobFilter{Status: []api.State{api.Ready, api.Scheduled, api.Deployed, api.Running, api.Migrating}})
	if err != nil {
		return err
	}
	h.seen = make(map[string]*snapshot, len(jobs))
	for _, j := range jobs {
		_, h.seen[j.Name] = Diff(nil, j)
	}
	h.cursor = head
	return nil
}

func (h *hub) poll(ctx context.Context) error {
	for {
		jobs, next, err := h.changes.JobsChangedSince(ctx, h.cursor, 1000)
		if err != nil {
			return err
		}
		h.cursor = next
		sessions := map[string]bool{}
		for _, j := range jobs {
			evs, snap := Diff(h.seen[j.Name], j)
			if j.Status.Final() {
				delete(h.seen, j.Name)
				if j.Session != "" && len(evs) > 0 {
					sessions[string(j.Session)] = true
				}
			} else {
				h.seen[j.Name] = snap
			}
			h.publish(evs)
		}
		for s := range sessions {
			n, err := h.s.jobs.CountJobs(ctx, api.JobFilter{Session: s, Status: []api.State{api.Ready, api.Scheduled, api.Deployed, api.Running, api.Migrating}})
			if err == nil && n == 0 {
				h.publish([]Event{{Type: EventSessionFinished, Session: s, Time: float64(time.Now().UnixNano()) / 1e9}})
			}
		}
		if len(jobs) < 1000 {
			return nil
		}
	}
}

func (h *hub) publish(evs []Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range evs {
		h.seq++
		e.Seq = h.seq
		for c := range h.subs {
			select {
			case c <- e:
			default:
				// A listener that cannot keep up is dropped rather than
				// allowed to stall everyone; it sees its stream end.
				delete(h.subs, c)
				close(c)
			}
		}
	}
}

// handleEvents streams lifecycle changes as Server-Sent Events.
// @Summary Stream lifecycle events
// @Description A text/event-stream of lifecycle changes, so that a client can wait without polling. Each event is sent as "id: <seq>", "event: <type>" and "data: <the Event as JSON>" lines; the types are job.accepted, job.placed, job.deployed, job.running, task.running, task.failed (with exit_code), task.ended, job.finished and session.finished (every job of the session has ended). A comment line is sent every 15 seconds to keep the connection open. A client that reads too slowly sees its stream end.
// @Tags events
// @Produce text/event-stream
// @Produce json
// @Param job query string false "only events of this job"
// @Param session query string false "only events of this session"
// @Success 200 {object} Event "the stream; each data line holds one Event"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 503 {object} api.ErrorBody "the store gives no change feed"
// @Security BearerAuth
// @Router /api/v1/events [get]
func (s *Server) handleEvents(c *gin.Context) {
	if s.hub == nil {
		respond(c, 0, nil, fmt.Errorf("events: the store gives no change feed: %w", api.ErrUnavailable))
		return
	}
	job, session := c.Query("job"), c.Query("session")
	sub, err := s.hub.subscribe(c.Request.Context())
	if err != nil {
		respond(c, 0, nil, fmt.Errorf("events: %w: %w", api.ErrUnavailable, err))
		return
	}
	defer s.hub.unsubscribe(sub)
	w := c.Writer
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": rswarm events\n\n")
	w.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	ctx := c.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keep.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			w.Flush()
		case e, ok := <-sub:
			if !ok {
				return
			}
			if (job != "" && e.Job != job) || (session != "" && e.Session != session) {
				continue
			}
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, b)
			w.Flush()
		}
	}
}

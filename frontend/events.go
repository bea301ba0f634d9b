package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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

// Event is one lifecycle change, as streamed by GET /api/v1/events. State
// and Time are those of the transition the event tells (job.accepted is
// Ready at the submit time), not the job's state when it was seen.
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
	// Counts, on session.finished, counts the session's jobs by final state.
	Counts *SessionCounts `json:"counts,omitempty"`
	// Lost, on stream.gap, is how many events the client missed because
	// the server no longer keeps them (0 when unknown: the client's last
	// id is from an earlier server process).
	Lost uint64 `json:"lost,omitempty"`
}

// SessionCounts counts a finished session's jobs by final state.
type SessionCounts struct {
	Jobs      int `json:"jobs"`
	Down      int `json:"down"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
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
	// EventStreamGap is sent (without an id) to a client resuming with a
	// Last-Event-ID older than the events the server still holds.
	EventStreamGap = "stream.gap"
)

// snapshot is what the hub last saw of a job.
type snapshot struct {
	status api.State
	placed bool
	tasks  map[string]api.State
}

// Diff returns the events that lead from what was seen of a job (nil for
// a job not seen before) to its current state, in lifecycle order. Each
// event carries the state and time of its own transition, from the job's
// record (submit, place, deploy, start and end times); a record written
// before it held place and deploy times gives now, the time the change was
// observed, kept between the submit time and the start (or end) time. It
// is pure: the hub calls it for every changed job.
func Diff(prev *snapshot, j *api.Job, now float64) ([]Event, *snapshot) {
	observed := now
	if j.StartTime > 0 && observed > j.StartTime {
		observed = j.StartTime
	}
	if j.EndTime > 0 && observed > j.EndTime {
		observed = j.EndTime
	}
	observed = max(observed, j.SubmitTime)
	ev := func(typ string, state api.State, at float64) Event {
		return Event{Type: typ, Job: j.Name, Session: string(j.Session), State: state.String(), Time: at}
	}
	next := &snapshot{status: j.Status, tasks: make(map[string]api.State, len(j.Info.Tasks))}
	var out []Event
	if prev == nil {
		prev = &snapshot{status: api.Ready, tasks: map[string]api.State{}}
		out = append(out, ev(EventJobAccepted, api.Ready, j.SubmitTime))
	}
	placed := prev.placed
	for _, t := range j.Info.Tasks {
		if t.Status >= api.Scheduled && t.Node != "" {
			placed = true
		}
	}
	next.placed = placed
	if placed && !prev.placed {
		out = append(out, ev(EventJobPlaced, api.Scheduled, recorded(j.PlaceTime, observed)))
	}
	if j.Status >= api.Deployed && prev.status < api.Deployed && !(j.Status.Final() && !placed) {
		out = append(out, ev(EventJobDeployed, api.Deployed, recorded(j.DeployTime, observed)))
	}
	for _, t := range j.Info.Tasks {
		was := prev.tasks[t.ContainerName]
		next.tasks[t.ContainerName] = t.Status
		if t.Status == was {
			continue
		}
		if t.Status >= api.Running && was < api.Running && t.StartTime > 0 {
			e := ev(EventTaskRunning, api.Running, t.StartTime)
			e.Task, e.Node = t.ContainerName, t.Node
			out = append(out, e)
		}
		if t.Status.Final() && !was.Final() {
			typ := EventTaskEnded
			if t.Status == api.Failed {
				typ = EventTaskFailed
			}
			e := ev(typ, t.Status, t.EndTime)
			e.Task, e.Node, e.ExitCode, e.Error = t.ContainerName, t.Node, t.ExitCode, t.Error
			out = append(out, e)
		}
	}
	if j.Status >= api.Running && prev.status < api.Running && j.StartTime > 0 {
		// A job is running from its first task's start: put it before the task events.
		out = insertAfter(out, ev(EventJobRunning, api.Running, j.StartTime), EventJobDeployed, EventJobPlaced, EventJobAccepted)
	}
	if j.Status.Final() && !prev.status.Final() {
		e := ev(EventJobFinished, j.Status, j.EndTime)
		e.Error = j.Error
		out = append(out, e)
	}
	return out, next
}

// recorded is the time the record holds, or the observed one when it holds none.
func recorded(t, observed float64) float64 {
	if t > 0 {
		return t
	}
	return observed
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

// Bounds of what the hub remembers.
const (
	// eventRing is how many recent events are kept for clients resuming
	// with Last-Event-ID.
	eventRing = 1 << 15
	// finishedKept is how many finished jobs are remembered, so that a
	// later write to one (a task's record completed after the job failed)
	// tells only what is new instead of the job's whole life again.
	finishedKept = 1 << 16
)

// hub polls the store's change feed while anyone listens (and for
// Config.EventRetention after the last one left, so that a client can
// resume), keeps the recent events, and fans them out to the subscribers.
type hub struct {
	s         *Server
	changes   Changes
	interval  time.Duration
	retention time.Duration

	mu   sync.Mutex
	subs map[chan Event]struct{}
	base uint64 // the Seq before this hub's first event
	// reset is the last Seq published before the hub last stopped
	// following the store: changes made while it did not follow were
	// never told, so a client resuming from it or before has a gap.
	reset  uint64
	seq    uint64 // the last event's Seq
	ring   ring   // the last events
	wake   chan struct{}
	primed chan struct{} // closed once the current listeners' view is primed
	idle   time.Time     // when the last listener left (zero while any listens)

	// Owned by run.
	cursor    int64
	seen      map[string]*snapshot
	finished  []string        // finished jobs kept in seen, oldest first
	announced map[string]bool // sessions whose session.finished was sent
}

func newHub(s *Server, ch Changes, interval time.Duration) *hub {
	// Seq starts from the hub's start time in microseconds: ids keep
	// growing across restarts of the frontend (a client resuming from an
	// earlier process's id is told of the gap instead of skipping new
	// events), and stay below 2^53, exact in JavaScript.
	base := uint64(time.Now().UnixMicro()) // not cfg.Now: the ids need the real clock
	return &hub{s: s, changes: ch, interval: interval, retention: s.cfg.EventRetention, subs: map[chan Event]struct{}{},
		base: base, seq: base, wake: make(chan struct{}, 1), primed: make(chan struct{})}
}

// subscribe adds a listener and returns once the hub's view of the jobs is
// primed, so that every change made after it returns is streamed. With
// after > 0 (a client's Last-Event-ID) the kept events after it come
// first, preceded by a stream.gap event when some of them are no longer
// kept; after and the replay are taken together with the registration, so
// that nothing is lost or repeated between them.
func (h *hub) subscribe(ctx context.Context, after uint64) (chan Event, error) {
	h.mu.Lock()
	var replay []Event
	if after > 0 {
		first := h.seq + 1 - uint64(h.ring.n) // the oldest kept event's Seq
		if after+1 < first || after <= h.reset {
			gap := Event{Type: EventStreamGap, Time: float64(h.s.cfg.Now().UnixNano()) / 1e9}
			if after >= h.base && after > h.reset {
				gap.Lost = first - after - 1
			}
			replay = append(replay, gap)
		}
		replay = h.ring.after(after, replay)
	}
	c := make(chan Event, eventSubscriberBuffer+len(replay))
	for _, e := range replay {
		c <- e
	}
	h.subs[c] = struct{}{}
	h.idle = time.Time{}
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

// ring holds the last events, at most eventRing of them.
type ring struct {
	buf      []Event
	start, n int
}

func (r *ring) push(e Event) {
	if r.buf == nil {
		r.buf = make([]Event, eventRing)
	}
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = e
		r.n++
		return
	}
	r.buf[r.start] = e
	r.start = (r.start + 1) % len(r.buf)
}

// after appends the kept events with Seq > seq to out, oldest first.
func (r *ring) after(seq uint64, out []Event) []Event {
	for i := 0; i < r.n; i++ {
		if e := r.buf[(r.start+i)%len(r.buf)]; e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

func (h *hub) unsubscribe(c chan Event) {
	h.mu.Lock()
	if _, ok := h.subs[c]; ok {
		delete(h.subs, c)
		close(c)
		if len(h.subs) == 0 {
			h.idle = h.s.cfg.Now()
		}
	}
	h.mu.Unlock()
}

// active reports whether the hub should follow the feed: someone listens,
// or the last listener left less than the retention ago.
func (h *hub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0 || (!h.idle.IsZero() && h.s.cfg.Now().Sub(h.idle) < h.retention)
}

// run polls until ctx ends. While inactive it sleeps and forgets; when the
// first listener arrives it primes its view with every unfinished job.
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
		if !h.active() {
			if h.seen != nil {
				h.seen, h.finished, h.announced = nil, nil, nil
				h.mu.Lock()
				h.primed = make(chan struct{})
				h.ring = ring{}
				h.reset = h.seq
				h.idle = time.Time{}
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

func (h *hub) now() float64 { return float64(h.s.cfg.Now().UnixNano()) / 1e9 }

func (h *hub) prime(ctx context.Context) error {
	_, head, err := h.changes.JobsChangedSince(ctx, -1, 0)
	if err != nil {
		return err
	}
	jobs, err := h.s.jobs.ListJobs(ctx, api.JobFilter{Status: unfinished})
	if err != nil {
		return err
	}
	h.seen = make(map[string]*snapshot, len(jobs))
	h.announced = map[string]bool{}
	now := h.now()
	for _, j := range jobs {
		_, h.seen[j.Name] = Diff(nil, j, now)
	}
	h.cursor = head
	return nil
}

var unfinished = []api.State{api.Ready, api.Scheduled, api.Deployed, api.Running, api.Migrating}

func (h *hub) poll(ctx context.Context) error {
	for {
		jobs, next, err := h.changes.JobsChangedSince(ctx, h.cursor, 1000)
		if err != nil {
			return err
		}
		h.cursor = next
		now := h.now()
		sessions := map[string]bool{}
		for _, j := range jobs {
			prev := h.seen[j.Name]
			evs, snap := Diff(prev, j, now)
			if prev == nil && j.Session != "" {
				delete(h.announced, string(j.Session)) // the session has a new job: it is open again
			}
			h.seen[j.Name] = snap
			if j.Status.Final() && (prev == nil || !prev.status.Final()) {
				h.finished = append(h.finished, j.Name)
				if j.Session != "" {
					sessions[string(j.Session)] = true
				}
			}
			h.publish(evs)
		}
		for len(h.finished) > finishedKept {
			if s := h.seen[h.finished[0]]; s != nil && s.status.Final() {
				delete(h.seen, h.finished[0])
			}
			h.finished = h.finished[1:]
		}
		for s := range sessions {
			if h.announced[s] {
				continue
			}
			if e, ok := h.sessionFinished(ctx, s, now); ok {
				h.announced[s] = true
				h.publish([]Event{e})
			}
		}
		if len(jobs) < 1000 {
			return nil
		}
	}
}

// sessionFinished returns the session.finished event of session s, with
// its counts, if every job of it has ended.
func (h *hub) sessionFinished(ctx context.Context, s string, now float64) (Event, bool) {
	n, err := h.s.jobs.CountJobs(ctx, api.JobFilter{Session: s, Status: unfinished})
	if err != nil || n > 0 {
		return Event{}, false
	}
	c := &SessionCounts{}
	for _, k := range []struct {
		st  api.State
		dst *int
	}{{api.Down, &c.Down}, {api.Failed, &c.Failed}, {api.Cancelled, &c.Cancelled}} {
		if *k.dst, err = h.s.jobs.CountJobs(ctx, api.JobFilter{Session: s, Status: []api.State{k.st}}); err != nil {
			return Event{}, false
		}
	}
	c.Jobs = c.Down + c.Failed + c.Cancelled
	return Event{Type: EventSessionFinished, Session: s, Time: now, Counts: c}, true
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
		h.ring.push(e)
		for c := range h.subs {
			select {
			case c <- e:
			default:
				// A listener that cannot keep up is dropped rather than
				// allowed to stall everyone; it sees its stream end and
				// can resume from its last id.
				delete(h.subs, c)
				close(c)
				if len(h.subs) == 0 {
					h.idle = h.s.cfg.Now()
				}
			}
		}
	}
}

// handleEvents streams lifecycle changes as Server-Sent Events.
// @Summary Stream lifecycle events
// @Description A text/event-stream of lifecycle changes, so that a client can wait without polling. Each event is sent as "id: <seq>", "event: <type>" and "data: <the Event as JSON>" lines; the types are job.accepted, job.placed, job.deployed, job.running, task.running, task.failed (with exit_code), task.ended, job.finished and session.finished (every job of the session has ended; counts holds how many ended Down, Failed and Cancelled). Each event carries the state and time of its own transition. A client that reconnects with the Last-Event-ID header (or the last_event_id parameter) gets the events it missed first, without loss or repetition, as long as the server still keeps them (the last 32768 events, for 5 minutes after the last listener left); otherwise a stream.gap event (without an id) says so first. A comment line is sent every 15 seconds to keep the connection open. A client that reads too slowly sees its stream end, and can resume.
// @Tags events
// @Produce text/event-stream
// @Produce json
// @Param job query string false "only events of this job"
// @Param session query string false "only events of this session"
// @Param Last-Event-ID header string false "resume after this event id"
// @Param last_event_id query string false "resume after this event id (for clients that cannot set the header)"
// @Success 200 {object} Event "the stream; each data line holds one Event"
// @Failure 400 {object} api.ErrorBody "a malformed Last-Event-ID"
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
	var after uint64
	if v := strings.TrimSpace(firstNonEmpty(c.GetHeader("Last-Event-ID"), c.Query("last_event_id"))); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			respond(c, 0, nil, api.Invalid("Last-Event-ID", "must be an event id (a non-negative integer), got %q", v))
			return
		}
		after = n
	}
	sub, err := s.hub.subscribe(c.Request.Context(), after)
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
			b, _ := json.Marshal(e)
			if e.Type == EventStreamGap {
				fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b)
				w.Flush()
				continue
			}
			if (job != "" && e.Job != job) || (session != "" && e.Session != session) {
				continue
			}
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, b)
			w.Flush()
		}
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

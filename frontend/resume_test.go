package frontend_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/frontend"
	"github.com/rswarm/rswarm/store"
)

// openMore opens another events stream on a server openEvents started,
// with the given Last-Event-ID (none when empty).
func openMore(t *testing.T, ts *httptest.Server, lastID string) *bufio.Reader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("events with Last-Event-ID %q: status %d", lastID, resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	return r
}

// short1 writes an event as "type:job" for comparisons.
func short1(e sse) string { return e.event + ":" + e.data.Job }

// TestEventsResume: a client reconnecting with Last-Event-ID gets the
// events after that id, then the live ones, with none lost or repeated;
// one whose id the server no longer holds is told so by stream.gap.
func TestEventsResume(t *testing.T) {
	fw := &feedWatch{polled: make(chan struct{})}
	e := newFE(t, feOption{jobs: func(s *store.SQLite) frontend.Jobs { fw.SQLite = s; return fw }})
	ts, r := openEvents(t, e, "/api/v1/events")
	<-fw.polled
	// One change at a time: the feed gives a job's latest version only.
	var first []sse
	post(t, ts, "POST", "/api/v1/jobs", jobJSON(t, "r1"))
	first = append(first, nextEvent(t, r))
	post(t, ts, "POST", "/api/v1/jobs", jobJSON(t, "r2"))
	first = append(first, nextEvent(t, r))
	post(t, ts, "DELETE", "/api/v1/jobs/r1", "")
	first = append(first, nextEvent(t, r), nextEvent(t, r))
	want := []string{"job.accepted:r1", "job.accepted:r2", "task.ended:r1", "job.finished:r1"}
	for i, ev := range first {
		if short1(ev) != want[i] {
			t.Fatalf("first stream: event %d is %s, want %s", i, short1(ev), want[i])
		}
	}

	// Resuming after the first event: the three after it, then live ones.
	r2 := openMore(t, ts, first[0].id)
	for i := 1; i < 4; i++ {
		got := nextEvent(t, r2)
		if got.id != first[i].id || short1(got) != want[i] {
			t.Errorf("resumed: got %s id %s, want %s id %s", short1(got), got.id, want[i], first[i].id)
		}
	}
	post(t, ts, "POST", "/api/v1/jobs", jobJSON(t, "r3"))
	if got := nextEvent(t, r2); short1(got) != "job.accepted:r3" {
		t.Errorf("resumed stream, next live event: %s, want job.accepted:r3", short1(got))
	}
	if got := nextEvent(t, r); short1(got) != "job.accepted:r3" {
		t.Errorf("first stream, next live event: %s, want job.accepted:r3", short1(got))
	}

	// Resuming from the last event: nothing is repeated.
	r3 := openMore(t, ts, fmt.Sprint(first[3].data.Seq+1))
	post(t, ts, "POST", "/api/v1/jobs", jobJSON(t, "r4"))
	if got := nextEvent(t, r3); short1(got) != "job.accepted:r4" {
		t.Errorf("resumed at the head: first event %s, want job.accepted:r4", short1(got))
	}

	// An id from before this server's events (an earlier process): a
	// gap, without an id, then every kept event.
	r4 := openMore(t, ts, "1")
	gap := nextEvent(t, r4)
	if gap.event != frontend.EventStreamGap || gap.id != "" || gap.data.Lost != 0 {
		t.Errorf("from an unknown id: first %s id %q lost %d, want %s without id, lost unknown", gap.event, gap.id, gap.data.Lost, frontend.EventStreamGap)
	}
	if got := nextEvent(t, r4); got.id != first[0].id {
		t.Errorf("after the gap: %s id %s, want the first kept event, id %s", short1(got), got.id, first[0].id)
	}

	wantError(t, e.do(t, "GET", "/api/v1/events", "", "Last-Event-ID", "yesterday"), 400, "invalid", "Last-Event-ID")
}

// TestSessionFinishedOnce: session.finished comes once, with the counts,
// when the session's last job ends, and not again when a finished job of
// the session is written again. (Regression: it came twice, without counts.)
func TestSessionFinishedOnce(t *testing.T) {
	fw := &feedWatch{polled: make(chan struct{})}
	e := newFE(t, feOption{jobs: func(s *store.SQLite) frontend.Jobs { fw.SQLite = s; return fw }})
	ts, r := openEvents(t, e, "/api/v1/events?session=s")
	<-fw.polled
	inS := func(j *api.Job) { j.Session = "s" }
	var got []string
	var fin sse
	read := func(n int) {
		for range n {
			ev := nextEvent(t, r)
			got = append(got, short1(ev))
			if ev.event == frontend.EventSessionFinished {
				fin = ev
			}
		}
	}
	// One change at a time: the feed gives a job's latest version only.
	post(t, ts, "POST", "/api/v1/jobs", jobJSON(t, "s1", inS))
	read(1)
	post(t, ts, "POST", "/api/v1/jobs", jobJSON(t, "s2", inS))
	read(1)
	post(t, ts, "DELETE", "/api/v1/jobs/s1", "")
	read(2)
	post(t, ts, "DELETE", "/api/v1/jobs/s2", "")
	read(3)
	want := "job.accepted:s1 job.accepted:s2 task.ended:s1 job.finished:s1 task.ended:s2 job.finished:s2 session.finished:"
	if strings.Join(got, " ") != want {
		t.Fatalf("events\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if c := fin.data.Counts; c == nil || *c != (frontend.SessionCounts{Jobs: 2, Cancelled: 2}) {
		t.Errorf("session.finished counts %+v, want 2 jobs, 2 cancelled", c)
	}
	// A finished job written again tells nothing more.
	if _, err := e.st.UpdateJob(context.Background(), "s2", func(j *api.Job) error { j.Error = "written again"; return nil }); err != nil {
		t.Fatal(err)
	}
	post(t, ts, "POST", "/api/v1/jobs", jobJSON(t, "s3", inS))
	if ev := nextEvent(t, r); short1(ev) != "job.accepted:s3" {
		t.Errorf("after a finished job was written again: %s, want job.accepted:s3", short1(ev))
	}
}

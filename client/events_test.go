package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rswarm/rswarm/frontend"
)

// TestEventsReconnects: a stream that breaks is reopened with the id of
// the last event handed over, and the events go on without a repeat.
func TestEventsReconnects(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string // the Last-Event-ID of each connection
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		if r.URL.Query().Get("job") != "j" {
			http.Error(w, "no job filter", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": rswarm events\n\n")
		// Each connection sends two events after the client's last id
		// (the first connection from 10), then drops.
		from := uint64(10)
		if n > 1 {
			fmt.Sscan(r.Header.Get("Last-Event-ID"), &from)
		}
		for q := from + 1; q <= from+2; q++ {
			fmt.Fprintf(w, "id: %d\nevent: job.accepted\ndata: {\"seq\":%d,\"type\":\"job.accepted\",\"job\":\"j\"}\n\n", q, q)
		}
	}))
	defer ts.Close()
	c, err := New(ts.URL, ts.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []uint64
	retries := 0
	opts := EventOptions{Job: "j", Retrying: func(error, time.Duration) { retries++ }}
	err = c.Events(ctx, opts, 10, func(e frontend.Event) error {
		got = append(got, e.Seq)
		if len(got) == 6 {
			return ErrStop
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[11 12 13 14 15 16]" {
		t.Errorf("events %v, want 11..16 once each", got)
	}
	if retries != 2 {
		t.Errorf("Retrying told %d times, want 2 (two broken streams)", retries)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(lastIDs) != "[10 12 14]" {
		t.Errorf("Last-Event-ID per connection %q, want 10, 12, 14", lastIDs)
	}
}

// TestEventsRefused: a server's refusal ends Events with its error,
// printed as the server's message and field; a callback's error ends it too.
func TestEventsRefused(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"invalid","message":"must be an event id","field":"Last-Event-ID"}}`)
	}))
	defer ts.Close()
	c, _ := New(ts.URL, ts.URL, "")
	err := c.Events(context.Background(), EventOptions{}, 5, func(frontend.Event) error { return nil })
	if err == nil || err.Error() != "must be an event id (field Last-Event-ID)" {
		t.Errorf("Events against a refusing server: %v", err)
	}

	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "id: 1\ndata: {\"seq\":1,\"type\":\"job.accepted\"}\n\n")
	}))
	defer ok.Close()
	c, _ = New(ok.URL, ok.URL, "")
	boom := errors.New("boom")
	if err := c.Events(context.Background(), EventOptions{}, 0, func(frontend.Event) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Events with a failing callback: %v, want boom", err)
	}
}

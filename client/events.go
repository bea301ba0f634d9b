package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/frontend"
)

// EventOptions selects events (those of one job, or of one session) and
// says what to do when a stream opens.
type EventOptions struct {
	Job     string
	Session string
	// Connected, when set, is called each time the server has opened a
	// stream: every change from then on will be told.
	Connected func()
	// Retrying, when set, is told why a stream broke (or could not be
	// opened) and how long until it is opened again.
	Retrying func(err error, wait time.Duration)
}

// silence is how long a stream may say nothing (the server sends a
// comment every 15 s) before it is taken as dead and reopened.
const silence = 45 * time.Second

// Events follows the frontend's event stream, calling fn for each event
// in order. It starts after the event with id after (0: from now) and
// reopens a stream that broke with Last-Event-ID, so that no event is lost
// or repeated; when the server no longer holds the missed events, fn gets
// a frontend.EventStreamGap event first. It returns nil when ctx ends, fn's
// error when fn fails (ErrStop ends it cleanly), and the server's error
// when it refuses the stream (a bad token, a store without change feed).
func (c *Client) Events(ctx context.Context, f EventOptions, after uint64, fn func(frontend.Event) error) error {
	q := url.Values{}
	if f.Job != "" {
		q.Set("job", f.Job)
	}
	if f.Session != "" {
		q.Set("session", f.Session)
	}
	u := c.feBase + "/api/v1/events?" + q.Encode()
	backoff := 100 * time.Millisecond
	for {
		connected, err := c.stream1(ctx, u, &after, f.Connected, fn)
		switch {
		case ctx.Err() != nil, errors.Is(err, ErrStop):
			return nil
		case err == nil:
		case errors.As(err, new(*fnError)):
			return err.(*fnError).err
		case !retryable(err):
			return err
		}
		if connected {
			backoff = 100 * time.Millisecond
		}
		if f.Retrying != nil {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			f.Retrying(err, backoff)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// ErrStop, returned by an Events callback, ends the stream without error.
var ErrStop = errors.New("client: stop following")

// fnError is the callback's own error, which ends Events.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// retryable reports whether a failed stream is worth reopening: the
// connection broke or the server is unavailable, not refused.
func retryable(err error) bool {
	var se *api.StatusError
	if errors.As(err, &se) {
		return se.Status >= 500
	}
	return true
}

// stream1 reads one connection of the stream; after is advanced past each
// event handed to fn. It reports whether the server answered.
func (c *Client) stream1(ctx context.Context, u string, after *uint64, connected func(), fn func(frontend.Event) error) (bool, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if *after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(*after, 10))
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var eb api.ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error.Message == "" {
			eb.Error.Message = strings.TrimSpace(string(b))
		}
		return true, &api.StatusError{Status: resp.StatusCode, Detail: eb.Error}
	}
	if connected != nil {
		connected()
	}
	watchdog := time.AfterFunc(silence, cancel)
	defer watchdog.Stop()
	r := bufio.NewReader(resp.Body)
	var id, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return true, err
		}
		watchdog.Reset(silence)
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data == "" {
				id = ""
				continue
			}
			var e frontend.Event
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				return true, fmt.Errorf("events: bad data %q: %w", data, err)
			}
			if id != "" {
				n, err := strconv.ParseUint(id, 10, 64)
				if err != nil {
					return true, fmt.Errorf("events: bad id %q", id)
				}
				*after = n
			}
			id, data = "", ""
			if err := fn(e); err != nil {
				if errors.Is(err, ErrStop) {
					return true, err
				}
				return true, &fnError{err}
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(line[5:], " ")
		}
	}
}

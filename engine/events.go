package engine

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/events"
)

// Container event actions that Events reports.
const (
	ActionStart   = "start"
	ActionDie     = "die"
	ActionOOM     = "oom"
	ActionDestroy = "destroy"
)

// Event is one container lifecycle event.
type Event struct {
	// ID is the container ID.
	ID string
	// Name is the container name.
	Name string
	// Action is ActionStart, ActionDie, ActionOOM or ActionDestroy.
	Action string
	// ExitCode is the container's exit code (die events only).
	ExitCode int
	// Labels are the container's labels.
	Labels map[string]string
	Time   time.Time
}

// eventAttributes are the attributes the engine adds to a container
// event's Actor next to the container's labels.
var eventAttributes = map[string]bool{
	"name": true, "image": true, "exitCode": true, "signal": true, "execDuration": true,
}

// Events streams the start, die, oom and destroy events of the containers
// that carry all of labels (a label with an empty value matches any value)
// until ctx ends. The stream begins when Events returns: events that
// happen after the call are delivered, including those the engine records
// while the subscription is being set up. The event channel is closed when
// the stream ends; the error channel then receives one error if the stream
// broke before ctx ended, and is closed.
func (c *Client) Events(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error) {
	f := labelFilters(labels)
	f.Add("type", string(events.ContainerEventType))
	for _, a := range []string{ActionStart, ActionDie, ActionOOM, ActionDestroy} {
		f.Add("event", a)
	}
	// Since replays what the engine buffered between now and the moment
	// the subscription is in place, so nothing falls in between.
	since := time.Now()
	msgs, errs := c.cli.Events(ctx, events.ListOptions{
		Since:   strconv.FormatInt(since.Unix(), 10) + "." + fmt.Sprintf("%09d", since.Nanosecond()),
		Filters: f,
	})
	out := make(chan Event)
	errOut := make(chan error, 1)
	go func() {
		defer close(errOut)
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					errOut <- fmt.Errorf("engine: event stream: %w", err)
				}
				return
			case m := <-msgs:
				select {
				case out <- eventFrom(m):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, errOut
}

func eventFrom(m events.Message) Event {
	e := Event{
		ID:     m.Actor.ID,
		Name:   m.Actor.Attributes["name"],
		Action: string(m.Action),
		Labels: map[string]string{},
		Time:   time.Unix(0, m.TimeNano),
	}
	if m.TimeNano == 0 {
		e.Time = time.Unix(m.Time, 0)
	}
	if code, ok := m.Actor.Attributes["exitCode"]; ok {
		e.ExitCode, _ = strconv.Atoi(code)
	}
	for k, v := range m.Actor.Attributes {
		if !eventAttributes[k] {
			e.Labels[k] = v
		}
	}
	return e
}

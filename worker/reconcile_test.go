package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// Reconciliation, the worker's side: its heartbeats list the tasks it
// holds; it stops, without a word, the tasks discovery says it should not
// run; and a task of a restarted job replaces the copy of an earlier attempt.

func TestHeartbeatsListHeldTasks(t *testing.T) {
	e := startAgent(t, nil, func(c *Config, _ *agentEnv) { c.HeartbeatPeriod = 10 * time.Millisecond })
	rt := runTask("j_task2", 2)
	rt.Attempt = 1
	for _, r := range []api.RunTask{runTask("j_task1", 1), rt} {
		if _, err := e.command(api.KindRunTask, r); err != nil {
			t.Fatal(err)
		}
	}
	want := []api.HeldTask{{Job: "j", Task: "j_task1", Cores: 1}, {Job: "j", Task: "j_task2", Attempt: 1, Cores: 2}}
	apitest.Eventually(t, wait, func() error {
		hbs := e.dc.heartbeats()
		if len(hbs) == 0 {
			return errors.New("no heartbeat yet")
		}
		if got := hbs[len(hbs)-1].Running; !slices.Equal(got, want) {
			return fmt.Errorf("last heartbeat lists %+v, want %+v", got, want)
		}
		return nil
	})
	for _, st := range e.reported(t, "j_task2", api.Running) {
		if st.Attempt != 1 {
			t.Errorf("status %+v: want attempt 1", st)
		}
	}
}

func TestUnwantedTaskStoppedSilently(t *testing.T) {
	e := startAgent(t, nil, func(c *Config, _ *agentEnv) { c.HeartbeatPeriod = 10 * time.Millisecond })
	for _, n := range []string{"j_task1", "j_task2"} {
		if _, err := e.command(api.KindRunTask, runTask(n, 1)); err != nil {
			t.Fatal(err)
		}
		e.reported(t, n, api.Running)
	}
	// Discovery judged j_task1 an orphan (its job failed meanwhile).
	e.dc.stopInNextReply(api.StopTask{Job: "j", Task: "j_task1", Orphan: true, Reason: "its task is Failed"})
	apitest.Eventually(t, wait, func() error {
		hbs := e.dc.heartbeats()
		if len(hbs) == 0 {
			return errors.New("no heartbeat yet")
		}
		hb := hbs[len(hbs)-1]
		if hb.CoresBusy != 1 || len(hb.Running) != 1 || hb.Running[0].Task != "j_task2" {
			return fmt.Errorf("last heartbeat: %d busy, holding %+v; want only j_task2", hb.CoresBusy, hb.Running)
		}
		return nil
	})
	// Its end is not reported: the store's record is not the worker's to change.
	// A stop of j_task2 afterwards is reported; statuses come in order, so
	// had j_task1's end been reported it would be there by then.
	if _, err := e.command(api.KindStopTask, api.StopTask{Task: "j_task2", Reason: "cancelled"}); err != nil {
		t.Fatal(err)
	}
	e.reported(t, "j_task2", api.Running, api.Cancelled)
	e.reported(t, "j_task1", api.Running)
}

func TestRunTaskOfALaterAttemptReplacesTheEarlierCopy(t *testing.T) {
	e := startAgent(t, nil)
	const name = "j_task1"
	if _, err := e.command(api.KindRunTask, runTask(name, 1)); err != nil {
		t.Fatal(err)
	}
	e.reported(t, name, api.Running)
	rt := runTask(name, 1)
	rt.Attempt = 1
	// The job was restarted and placed here again: the old copy is stopped
	// and the sender told to try again.
	if _, err := e.command(api.KindRunTask, rt); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("run_task of attempt 1 while attempt 0 runs = %v, want ErrUnavailable", err)
	}
	apitest.Eventually(t, wait, func() error {
		got, err := e.command(api.KindRunTask, rt)
		if err != nil || got != "accepted" {
			return fmt.Errorf("run_task again = %v, %v; want accepted", got, err)
		}
		return nil
	})
	sts := e.reported(t, name, api.Running, api.Running)
	if sts[0].Attempt != 0 || sts[1].Attempt != 1 {
		t.Errorf("attempts reported %d, %d; want 0 then 1", sts[0].Attempt, sts[1].Attempt)
	}
}

// adoptingSim is a runtime whose tasks outlived the previous agent; it
// records the tasks it is told to stop.
type adoptingSim struct {
	*Sim
	held    []api.HeldTask
	stopped chan string
}

func (s adoptingSim) Held(context.Context, string) ([]api.HeldTask, error) { return s.held, nil }

func (s adoptingSim) Stop(ctx context.Context, task string, grace time.Duration) error {
	if s.stopped != nil {
		s.stopped <- task
	}
	return s.Sim.Stop(ctx, task, grace)
}

// A worker restarted while its containers ran holds them again: they are
// in its first heartbeat, and a retried run_task is not started twice.
func TestRestartedWorkerAdoptsRunningTasks(t *testing.T) {
	held := []api.HeldTask{{Job: "j", Task: "j_task1", Attempt: 2, Cores: 2}}
	e := startAgent(t, func(s *Sim) Runtime { return adoptingSim{s, held, nil} },
		func(c *Config, _ *agentEnv) { c.HeartbeatPeriod = 10 * time.Millisecond })
	apitest.Eventually(t, wait, func() error {
		hbs := e.dc.heartbeats()
		if len(hbs) == 0 {
			return errors.New("no heartbeat yet")
		}
		if hb := hbs[0]; hb.CoresBusy != 2 || !slices.Equal(hb.Running, held) {
			return fmt.Errorf("first heartbeat: %d busy, holding %+v; want 2 busy holding %+v", hb.CoresBusy, hb.Running, held)
		}
		return nil
	})
	rt := runTask("j_task1", 2)
	rt.Attempt = 2
	if got, err := e.command(api.KindRunTask, rt); err != nil || got != "already running" {
		t.Fatalf("run_task of an adopted task = %v, %v; want already running", got, err)
	}
}

// A run command repeated after the task ended (its end not stored when the
// command was sent again) does not run it a second time; a later attempt does.
func TestRunTaskRepeatedAfterTheEndIsNotRunAgain(t *testing.T) {
	e := startAgent(t, nil)
	const name = "j_task1"
	if _, err := e.command(api.KindRunTask, runTask(name, 1)); err != nil {
		t.Fatal(err)
	}
	e.reported(t, name, api.Running)
	if _, err := e.command(api.KindStopTask, api.StopTask{Task: name, Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	e.reported(t, name, api.Running, api.Cancelled)
	if got, err := e.command(api.KindRunTask, runTask(name, 1)); err != nil || got != "already ran" {
		t.Fatalf("run_task repeated after the end = %v, %v; want already ran", got, err)
	}
	rt := runTask(name, 1)
	rt.Attempt = 1
	if got, err := e.command(api.KindRunTask, rt); err != nil || got != "accepted" {
		t.Fatalf("run_task of the next attempt = %v, %v; want accepted", got, err)
	}
	e.reported(t, name, api.Running, api.Cancelled, api.Running)
}

// An adopted task whose job the control plane does not know (another
// RSwarm's container on a shared engine) is forgotten, not stopped.
func TestAdoptedTaskOfAnUnknownJobIsForgottenNotStopped(t *testing.T) {
	held := []api.HeldTask{{Job: "other", Task: "other_t1", Cores: 1}}
	stopped := make(chan string, 1)
	e := startAgent(t, func(s *Sim) Runtime { return adoptingSim{s, held, stopped} },
		func(c *Config, _ *agentEnv) { c.HeartbeatPeriod = 10 * time.Millisecond })
	e.dc.stopInNextReply(api.StopTask{Job: "other", Task: "other_t1", Orphan: true, Forget: true, Reason: "not in this cluster's store"})
	apitest.Eventually(t, wait, func() error {
		hbs := e.dc.heartbeats()
		if len(hbs) == 0 || len(hbs[len(hbs)-1].Running) != 0 {
			return errors.New("other_t1 still held")
		}
		return nil
	})
	select {
	case n := <-stopped:
		t.Fatalf("%s stopped", n)
	default:
	}
}

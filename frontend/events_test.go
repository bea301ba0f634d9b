package frontend

import (
	"slices"
	"testing"

	"github.com/rswarm/rswarm/api"
)

// Tests of Diff, the pure core of the event stream: from what was last
// seen of a job to the events that lead to its current state. Each case
// is a history of snapshots of one job (as the store's change feed may
// deliver them, skipping states in between) with the events expected at
// each step, written "type" or "type:task".

// tk describes a task of the job "j" in a snapshot.
type tk struct {
	state      api.State
	node       string
	start, end float64
	exit       *int
	err        string
}

// diffJob builds job "j" (session "s1", submitted at 1) in state st with
// tasks j_t1, j_t2, ... as given.
func diffJob(st api.State, start, end float64, errMsg string, tasks ...tk) *api.Job {
	j := &api.Job{Name: "j", Status: st, SubmitTime: 1, StartTime: start, EndTime: end, Error: errMsg, Session: "s1"}
	for i, t := range tasks {
		j.Info.Tasks = append(j.Info.Tasks, &api.Task{
			ContainerName: "j_t" + string(rune('1'+i)), Node: t.node, Status: t.state,
			StartTime: t.start, EndTime: t.end, ExitCode: t.exit, Error: t.err, ReqCores: 1,
		})
	}
	return j
}

func exit(c int) *int { return &c }

// refreshed derives the job's state and times from its tasks, as the
// writers of the store do (Job.Refresh).
func refreshed(j *api.Job, now float64) *api.Job {
	j.Refresh(now)
	return j
}

// short writes events as "type" or "type:task", for comparing sequences.
func short(evs []Event) []string {
	out := []string{}
	for _, e := range evs {
		s := e.Type
		if e.Task != "" {
			s += ":" + e.Task
		}
		out = append(out, s)
	}
	return out
}

func TestDiff(t *testing.T) {
	var (
		readyJob   = diffJob(api.Ready, 0, 0, "", tk{state: api.Ready}, tk{state: api.Ready})
		placedJob  = diffJob(api.Ready, 0, 0, "", tk{state: api.Scheduled, node: "w1"}, tk{state: api.Scheduled, node: "w2"})
		deployed   = diffJob(api.Deployed, 0, 0, "", tk{state: api.Deployed, node: "w1"}, tk{state: api.Deployed, node: "w2"})
		oneRunning = diffJob(api.Running, 10, 0, "", tk{state: api.Running, node: "w1", start: 10}, tk{state: api.Deployed, node: "w2"})
		running    = diffJob(api.Running, 10, 0, "", tk{state: api.Running, node: "w1", start: 10}, tk{state: api.Running, node: "w2", start: 11})
		down       = diffJob(api.Down, 10, 25, "",
			tk{state: api.Down, node: "w1", start: 10, end: 20, exit: exit(0)},
			tk{state: api.Down, node: "w2", start: 11, end: 25, exit: exit(0)})
		failed = diffJob(api.Failed, 10, 25, "task j_t2: exited with code 2",
			tk{state: api.Down, node: "w1", start: 10, end: 20, exit: exit(0)},
			tk{state: api.Failed, node: "w2", start: 11, end: 25, exit: exit(2), err: "exited with code 2"})
		// j_t1 failed: the job failed while j_t2 still ran; j_t2 is cancelled later.
		failedFirst = diffJob(api.Failed, 10, 20, "task j_t1: exited with code 1",
			tk{state: api.Failed, node: "w1", start: 10, end: 20, exit: exit(1)}, tk{state: api.Running, node: "w2", start: 11})
		failedLater = diffJob(api.Failed, 10, 20, "task j_t1: exited with code 1",
			tk{state: api.Failed, node: "w1", start: 10, end: 20, exit: exit(1)}, tk{state: api.Cancelled, node: "w2", start: 11, end: 21})
		migrating = diffJob(api.Running, 10, 0, "", tk{state: api.Migrating, node: "w1", start: 10}, tk{state: api.Running, node: "w2", start: 11})
		moved     = diffJob(api.Running, 10, 0, "", tk{state: api.Running, node: "w3", start: 10}, tk{state: api.Running, node: "w2", start: 11})
		cancelled = diffJob(api.Cancelled, 0, 30, "", tk{state: api.Cancelled, end: 30, err: "cancelled by user"}, tk{state: api.Cancelled, end: 30, err: "cancelled by user"})
		// Image missing: the task failed without ever running.
		neverRan = diffJob(api.Failed, 0, 12, "task j_t1: image not found",
			tk{state: api.Failed, node: "w1", end: 12, err: "image not found"},
			tk{state: api.Failed, node: "w2", end: 12, err: "image not found"})
		// j_t1 failed at its start (no start time) while j_t2 was still
		// deployed: the job stays Deployed (a task that never ran does not
		// make it run); then j_t2 starts at 15 and the job runs.
		failedEarly  = refreshed(diffJob(api.Deployed, 0, 0, "", tk{state: api.Failed, node: "w1", end: 12, err: "image not found"}, tk{state: api.Deployed, node: "w2"}), 12)
		otherStarted = refreshed(diffJob(api.Deployed, 0, 0, "", tk{state: api.Failed, node: "w1", end: 12, err: "image not found"}, tk{state: api.Running, node: "w2", start: 15}), 15)
	)
	if failedEarly.Status != api.Deployed || failedEarly.StartTime != 0 || otherStarted.Status != api.Running || otherStarted.StartTime != 15 {
		t.Fatalf("fixture: Refresh gave %v from %v, then from %v", failedEarly.Status, failedEarly.StartTime, otherStarted.StartTime)
	}
	type step struct {
		job  *api.Job
		want []string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "a job seen for the first time is accepted first", steps: []step{
			{readyJob, []string{EventJobAccepted}},
		}},
		{name: "one step at a time", steps: []step{
			{readyJob, []string{EventJobAccepted}},
			{placedJob, []string{EventJobPlaced}},
			{deployed, []string{EventJobDeployed}},
			// The job runs from its first task's start: job.running comes before the task's event.
			{oneRunning, []string{EventJobRunning, EventTaskRunning + ":j_t1"}},
			{running, []string{EventTaskRunning + ":j_t2"}},
			{down, []string{EventTaskEnded + ":j_t1", EventTaskEnded + ":j_t2", EventJobFinished}},
		}},
		{name: "from Ready straight to Down every step is still told, in lifecycle order", steps: []step{
			{readyJob, []string{EventJobAccepted}},
			{down, []string{
				EventJobPlaced, EventJobDeployed, EventJobRunning,
				EventTaskRunning + ":j_t1", EventTaskEnded + ":j_t1",
				EventTaskRunning + ":j_t2", EventTaskEnded + ":j_t2",
				EventJobFinished,
			}},
		}},
		{name: "a finished job seen for the first time tells its whole life", steps: []step{
			{down, []string{
				EventJobAccepted, EventJobPlaced, EventJobDeployed, EventJobRunning,
				EventTaskRunning + ":j_t1", EventTaskEnded + ":j_t1",
				EventTaskRunning + ":j_t2", EventTaskEnded + ":j_t2",
				EventJobFinished,
			}},
		}},
		{name: "a failed task gives task.failed", steps: []step{
			{running, []string{EventJobAccepted, EventJobPlaced, EventJobDeployed, EventJobRunning, EventTaskRunning + ":j_t1", EventTaskRunning + ":j_t2"}},
			{failed, []string{EventTaskEnded + ":j_t1", EventTaskFailed + ":j_t2", EventJobFinished}},
		}},
		{name: "the same state again yields nothing", steps: []step{
			{readyJob, []string{EventJobAccepted}},
			{readyJob, nil},
			{running, []string{EventJobPlaced, EventJobDeployed, EventJobRunning, EventTaskRunning + ":j_t1", EventTaskRunning + ":j_t2"}},
			{running, nil},
			{running, nil},
		}},
		{name: "a migration does not announce the task running again", steps: []step{
			{running, []string{EventJobAccepted, EventJobPlaced, EventJobDeployed, EventJobRunning, EventTaskRunning + ":j_t1", EventTaskRunning + ":j_t2"}},
			{migrating, nil},
			{moved, nil},
		}},
		{name: "cancelled while queued: never placed, deployed or running", steps: []step{
			{readyJob, []string{EventJobAccepted}},
			{cancelled, []string{EventTaskEnded + ":j_t1", EventTaskEnded + ":j_t2", EventJobFinished}},
		}},
		// job.running comes when a task really starts, not when another
		// task fails before starting.
		{name: "a task failing before any starts: job.running once one does", steps: []step{
			{deployed, []string{EventJobAccepted, EventJobPlaced, EventJobDeployed}},
			{failedEarly, []string{EventTaskFailed + ":j_t1"}},
			{otherStarted, []string{EventJobRunning, EventTaskRunning + ":j_t2"}},
		}},
		// Regression: a job written again after it finished (a task's
		// record completed later) gave job.finished a second time.
		{name: "a finished job written again tells only the new task end", steps: []step{
			{running, []string{EventJobAccepted, EventJobPlaced, EventJobDeployed, EventJobRunning, EventTaskRunning + ":j_t1", EventTaskRunning + ":j_t2"}},
			{failedFirst, []string{EventTaskFailed + ":j_t1", EventJobFinished}},
			{failedLater, []string{EventTaskEnded + ":j_t2"}},
			{failedLater, nil},
		}},
		{name: "failed before running: no running events", steps: []step{
			{placedJob, []string{EventJobAccepted, EventJobPlaced}},
			{neverRan, []string{EventJobDeployed, EventTaskFailed + ":j_t1", EventTaskFailed + ":j_t2", EventJobFinished}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var snap *snapshot
			for i, s := range tt.steps {
				var evs []Event
				evs, snap = Diff(snap, s.job, 100)
				want := s.want
				if want == nil {
					want = []string{}
				}
				if got := short(evs); !slices.Equal(got, want) {
					t.Errorf("step %d (%v): events\n got %v\nwant %v", i, s.job.Status, got, want)
				}
				for _, e := range evs {
					if e.Job != "j" || e.Session != "s1" {
						t.Errorf("step %d: %s names job %q session %q, want j, s1", i, e.Type, e.Job, e.Session)
					}
				}
			}
		})
	}
}

func TestDiffEventFields(t *testing.T) {
	evs, _ := Diff(nil, diffJob(api.Failed, 10, 25, "task j_t2: exited with code 2",
		tk{state: api.Down, node: "w1", start: 10, end: 20, exit: exit(0)},
		tk{state: api.Failed, node: "w2", start: 11, end: 25, exit: exit(2), err: "exited with code 2"}), 30)
	byKey := map[string]Event{}
	for _, e := range evs {
		byKey[e.Type+":"+e.Task] = e
	}
	timed := diffJob(api.Running, 10, 0, "", tk{state: api.Running, node: "w1", start: 10})
	timed.PlaceTime, timed.DeployTime = 3, 4
	tevs, _ := Diff(nil, timed, 30)
	for _, e := range tevs {
		byKey[e.Type+":timed"+e.Task] = e
	}
	tests := []struct {
		name  string
		key   string
		check func(e Event) bool
		want  string
	}{
		{"job.running at the first task's start", EventJobRunning + ":",
			func(e Event) bool { return e.Time == 10 }, "time 10"},
		{"task.running names the node and its start", EventTaskRunning + ":j_t2",
			func(e Event) bool { return e.Node == "w2" && e.State == "Running" && e.Time == 11 }, "w2, Running, time 11"},
		{"task.ended carries its end and exit code 0", EventTaskEnded + ":j_t1",
			func(e Event) bool {
				return e.State == "Down" && e.Time == 20 && e.ExitCode != nil && *e.ExitCode == 0
			}, "Down, time 20, exit 0"},
		{"task.failed carries the exit code and error", EventTaskFailed + ":j_t2",
			func(e Event) bool {
				return e.State == "Failed" && e.Node == "w2" && e.Time == 25 && e.ExitCode != nil && *e.ExitCode == 2 && e.Error == "exited with code 2"
			}, "Failed on w2, time 25, exit 2, its error"},
		{"job.finished carries the job's state and error", EventJobFinished + ":",
			func(e Event) bool {
				return e.State == "Failed" && e.Time == 25 && e.Error == "task j_t2: exited with code 2"
			}, "Failed, time 25, the job's error"},
		// Regression: job.accepted carried the job's state when first seen
		// (Running, Failed) and its latest time.
		{"job.accepted is Ready at the submit time", EventJobAccepted + ":",
			func(e Event) bool { return e.State == "Ready" && e.Time == 1 }, "Ready, time 1"},
		// A record without place and deploy times (written before it had
		// them): the time they were observed (30), but not later than the start (10).
		{"job.placed is Scheduled, no later than the start", EventJobPlaced + ":",
			func(e Event) bool { return e.State == "Scheduled" && e.Time == 10 }, "Scheduled, time 10"},
		{"job.deployed is Deployed, no later than the start", EventJobDeployed + ":",
			func(e Event) bool { return e.State == "Deployed" && e.Time == 10 }, "Deployed, time 10"},
		{"job.running is Running at the start", EventJobRunning + ":",
			func(e Event) bool { return e.State == "Running" }, "Running"},
		// The record's own times, as the jobmanager and the globalmanager write them.
		{"job.placed at the record's place time", EventJobPlaced + ":timed",
			func(e Event) bool { return e.State == "Scheduled" && e.Time == 3 }, "Scheduled, time 3"},
		{"job.deployed at the record's deploy time", EventJobDeployed + ":timed",
			func(e Event) bool { return e.State == "Deployed" && e.Time == 4 }, "Deployed, time 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := byKey[tt.key]
			if !ok {
				t.Fatalf("no %s event among %v", tt.key, short(evs))
			}
			if !tt.check(e) {
				t.Errorf("%s = %+v, want %s", tt.key, e, tt.want)
			}
		})
	}
}

func TestDiffSnapshot(t *testing.T) {
	// A job queued and not yet placed: the snapshot remembers Ready, not
	// placed, and each task's state, so that the next Diff tells only what changed.
	_, snap := Diff(nil, diffJob(api.Ready, 0, 0, "", tk{state: api.Ready}, tk{state: api.Scheduled, node: "w1"}), 5)
	if snap.status != api.Ready || !snap.placed {
		t.Errorf("snapshot = %v placed %v, want Ready placed (one task has a node)", snap.status, snap.placed)
	}
	if snap.tasks["j_t1"] != api.Ready || snap.tasks["j_t2"] != api.Scheduled || len(snap.tasks) != 2 {
		t.Errorf("snapshot tasks = %v", snap.tasks)
	}
	// Once placed, a re-queue (the node cleared) does not un-place the job: no second job.placed later.
	_, snap = Diff(snap, diffJob(api.Ready, 0, 0, "", tk{state: api.Ready}, tk{state: api.Ready}), 6)
	if !snap.placed {
		t.Errorf("a re-queued job forgot it was placed")
	}
	evs, _ := Diff(snap, diffJob(api.Ready, 0, 0, "", tk{state: api.Scheduled, node: "w2"}, tk{state: api.Scheduled, node: "w2"}), 7)
	if got := short(evs); len(got) != 0 {
		t.Errorf("placing a re-queued job again gave %v, want nothing", got)
	}
}

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// Tests of the shared vocabulary: states and their transitions, how a
// task status moves a job, validation and strict parsing of submitted
// jobs, the small parsers (command, memory, cpuset, port) and the one
// error-to-HTTP mapping. Everything here is pure, so every test is a
// named table with the expected values worked out in comments.

var allStates = []api.State{api.Ready, api.Scheduled, api.Deployed, api.Running, api.Migrating, api.Down, api.Failed, api.Cancelled}

func TestStateNames(t *testing.T) {
	tests := []struct {
		state api.State
		name  string
		final bool
	}{
		{api.Ready, "Ready", false},
		{api.Scheduled, "Scheduled", false},
		{api.Deployed, "Deployed", false},
		{api.Running, "Running", false},
		{api.Migrating, "Migrating", false},
		// The last three are terminal.
		{api.Down, "Down", true},
		{api.Failed, "Failed", true},
		{api.Cancelled, "Cancelled", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Declared in lifecycle order: range checks such as s < Running rely on it.
			if int(tt.state) != i {
				t.Errorf("%s = %d, want %d (lifecycle order)", tt.name, tt.state, i)
			}
			if got := tt.state.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			if got := tt.state.Final(); got != tt.final {
				t.Errorf("Final() = %v, want %v", got, tt.final)
			}
			got, err := api.ParseState(tt.name)
			if err != nil || got != tt.state {
				t.Errorf("ParseState(%q) = %v, %v; want %v", tt.name, got, err, tt.state)
			}
			// JSON carries the name, and reads back to the same state.
			b, err := json.Marshal(tt.state)
			if err != nil || string(b) != `"`+tt.name+`"` {
				t.Errorf("json.Marshal = %s, %v; want %q", b, err, tt.name)
			}
			var back api.State
			if err := json.Unmarshal(b, &back); err != nil || back != tt.state {
				t.Errorf("json.Unmarshal(%s) = %v, %v; want %v", b, back, err, tt.state)
			}
			// As a map key and inside a struct too (MarshalText).
			m := map[api.State]int{tt.state: 1}
			mb, err := json.Marshal(m)
			if err != nil || string(mb) != `{"`+tt.name+`":1}` {
				t.Errorf("map key: %s, %v", mb, err)
			}
		})
	}
}

func TestStateParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"lower case is not a state name", "running"},
		{"empty name", ""},
		{"unknown name", "Paused"},
		{"padded name", " Ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := api.ParseState(tt.in)
			if err == nil {
				t.Fatalf("ParseState(%q) = nil error", tt.in)
			}
			// The error lists the valid names, so a user can fix the input.
			if !strings.Contains(err.Error(), "Running") {
				t.Errorf("error %q does not list the valid names", err)
			}
		})
	}
}

func TestStateJSONDecoding(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    api.State
		wantErr bool
	}{
		{"name", `"Failed"`, api.Failed, false},
		// The empty string is Ready (UnmarshalText), as in the original's job files.
		{"empty string means Ready", `""`, api.Ready, false},
		{"unknown name", `"Bogus"`, 0, true},
		{"number is refused", `3`, 0, true},
		{"object is refused", `{}`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := api.Cancelled
			err := json.Unmarshal([]byte(tt.in), &s)
			if (err != nil) != tt.wantErr {
				t.Fatalf("json.Unmarshal(%s) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if !tt.wantErr && s != tt.want {
				t.Errorf("json.Unmarshal(%s) = %v, want %v", tt.in, s, tt.want)
			}
		})
	}
	// An out-of-range value still prints something useful.
	if got := api.State(200).String(); got != "State(200)" {
		t.Errorf("State(200).String() = %q", got)
	}
	if api.State(200).Final() != true {
		t.Errorf("an out-of-range state counts as final (>= Down), so nothing moves it")
	}
}

func TestCanTransition(t *testing.T) {
	tests := []struct {
		name     string
		from, to api.State
		want     bool
	}{
		// Forward moves, one step at a time.
		{"ready to scheduled", api.Ready, api.Scheduled, true},
		{"scheduled to deployed", api.Scheduled, api.Deployed, true},
		{"deployed to running", api.Deployed, api.Running, true},
		{"running to down", api.Running, api.Down, true},
		{"running to failed", api.Running, api.Failed, true},
		{"running to cancelled", api.Running, api.Cancelled, true},
		// Forward moves that skip states: observations may be lost or coalesced.
		{"deployed straight to down (quick exit seen first)", api.Deployed, api.Down, true},
		{"deployed to failed (image missing)", api.Deployed, api.Failed, true},
		{"ready to cancelled (cancelled while queued)", api.Ready, api.Cancelled, true},
		{"scheduled to failed (dispatch failed)", api.Scheduled, api.Failed, true},
		{"ready to running", api.Ready, api.Running, true},
		{"running to migrating", api.Running, api.Migrating, true},
		// Migration: back to Deployed or Running on the new worker, or an end.
		{"migrating to deployed", api.Migrating, api.Deployed, true},
		{"migrating to running", api.Migrating, api.Running, true},
		{"migrating to down", api.Migrating, api.Down, true},
		{"migrating to failed", api.Migrating, api.Failed, true},
		{"migrating to cancelled", api.Migrating, api.Cancelled, true},
		{"migrating to scheduled", api.Migrating, api.Scheduled, false},
		{"migrating to ready", api.Migrating, api.Ready, false},
		// Re-queue before the task started: its dispatch failed.
		{"scheduled re-queued", api.Scheduled, api.Ready, true},
		{"deployed re-queued", api.Deployed, api.Ready, true},
		{"running cannot be re-queued", api.Running, api.Ready, false},
		// Other backward moves are stale observations.
		{"running back to deployed", api.Running, api.Deployed, false},
		{"running back to scheduled", api.Running, api.Scheduled, false},
		{"deployed back to scheduled", api.Deployed, api.Scheduled, false},
		// Nothing leaves a final state, not even for another final state.
		{"down to running", api.Down, api.Running, false},
		{"down to failed", api.Down, api.Failed, false},
		{"failed to ready", api.Failed, api.Ready, false},
		{"failed to down", api.Failed, api.Down, false},
		{"cancelled to failed", api.Cancelled, api.Failed, false},
		{"cancelled to migrating", api.Cancelled, api.Migrating, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := api.CanTransition(tt.from, tt.to); got != tt.want {
				t.Errorf("CanTransition(%v, %v) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
	// Invariants over every pair.
	for _, from := range allStates {
		for _, to := range allStates {
			got := api.CanTransition(from, to)
			if from == to && got {
				t.Errorf("CanTransition(%v, %v): staying put is not a move", from, to)
			}
			if from.Final() && got {
				t.Errorf("CanTransition(%v, %v): a final state is never left", from, to)
			}
		}
	}
}

// twoTaskJob returns job "j" with tasks j_task1 and j_task2 on w1, both in
// state st (the job in jobState), as the globalmanager leaves them.
func twoTaskJob(t *testing.T, st, jobState api.State) *api.Job {
	t.Helper()
	j := apitest.Job("j", 2, 1, "sleep 1")
	if err := j.Validate(api.DefaultLimits()); err != nil {
		t.Fatalf("fixture does not validate: %v", err)
	}
	for i, tk := range j.Info.Tasks {
		tk.Node, tk.CpusetCpus, tk.Status = "w1", fmt.Sprint(i), st
	}
	j.Status, j.SubmitTime = jobState, 1
	return j
}

func intp(v int) *int { return &v }

func TestApplyStatus(t *testing.T) {
	const t1, t2 = "j_task1", "j_task2"
	type step struct {
		task    string
		state   api.State
		at      float64
		exit    *int
		err     string
		changed bool
	}
	tests := []struct {
		name      string
		start     api.State // both tasks' state; the job is Deployed unless the tasks are Scheduled (Ready)
		steps     []step
		wantJob   api.State
		wantStart float64
		wantEnd   float64
		wantErr   string
		wantTasks [2]api.State
	}{
		{
			name:    "the first task running makes the job Running from its start",
			start:   api.Deployed,
			steps:   []step{{task: t1, state: api.Running, at: 10, changed: true}},
			wantJob: api.Running, wantStart: 10,
			wantTasks: [2]api.State{api.Running, api.Deployed},
		},
		{
			// Statuses arrive out of order: start_time is the earliest start (10), not the last applied.
			name:  "start_time is the first task's start",
			start: api.Deployed,
			steps: []step{
				{task: t2, state: api.Running, at: 12, changed: true},
				{task: t1, state: api.Running, at: 10, changed: true},
			},
			wantJob: api.Running, wantStart: 10,
			wantTasks: [2]api.State{api.Running, api.Running},
		},
		{
			// Job Ready while one task is still Scheduled; Deployed once both are.
			name:  "job Deployed once every task is deployed",
			start: api.Scheduled,
			steps: []step{
				{task: t1, state: api.Deployed, at: 5, changed: true},
				{task: t2, state: api.Deployed, at: 6, changed: true},
			},
			wantJob:   api.Deployed,
			wantTasks: [2]api.State{api.Deployed, api.Deployed},
		},
		{
			name:  "one deployed task of two leaves the job Ready",
			start: api.Scheduled,
			steps: []step{
				{task: t1, state: api.Deployed, at: 5, changed: true},
			},
			wantJob:   api.Ready,
			wantTasks: [2]api.State{api.Deployed, api.Scheduled},
		},
		{
			// t1 runs 10..20, t2 11..25: the job runs 10..25.
			name:  "every task down: job Down, end_time is the last end",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Running, at: 10, changed: true},
				{task: t2, state: api.Running, at: 11, changed: true},
				{task: t1, state: api.Down, at: 20, exit: intp(0), changed: true},
				{task: t2, state: api.Down, at: 25, exit: intp(0), changed: true},
			},
			wantJob: api.Down, wantStart: 10, wantEnd: 25,
			wantTasks: [2]api.State{api.Down, api.Down},
		},
		{
			// t2 ends at 30 but its status comes first; t1's end at 20 comes
			// last: end_time is still 30, the latest end, not the last applied.
			name:  "end_time is the latest end even when statuses arrive out of order",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Running, at: 10, changed: true},
				{task: t2, state: api.Running, at: 11, changed: true},
				{task: t2, state: api.Down, at: 30, exit: intp(0), changed: true},
				{task: t1, state: api.Down, at: 20, exit: intp(0), changed: true},
			},
			wantJob: api.Down, wantStart: 10, wantEnd: 30,
			wantTasks: [2]api.State{api.Down, api.Down},
		},
		{
			name:  "one running task keeps the job Running after another ended",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Running, at: 10, changed: true},
				{task: t2, state: api.Running, at: 11, changed: true},
				{task: t1, state: api.Down, at: 20, exit: intp(0), changed: true},
			},
			wantJob: api.Running, wantStart: 10,
			wantTasks: [2]api.State{api.Down, api.Running},
		},
		{
			// The job fails only when every task is final; its error names the failed task.
			name:  "a failed task fails the job, naming the task",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Running, at: 10, changed: true},
				{task: t2, state: api.Running, at: 10, changed: true},
				{task: t2, state: api.Failed, at: 15, exit: intp(2), err: "exited with code 2", changed: true},
				{task: t1, state: api.Down, at: 20, exit: intp(0), changed: true},
			},
			wantJob: api.Failed, wantStart: 10, wantEnd: 20, wantErr: "task j_task2: exited with code 2",
			wantTasks: [2]api.State{api.Down, api.Failed},
		},
		{
			name:  "a cancelled task with the others down: job Cancelled",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Running, at: 10, changed: true},
				{task: t1, state: api.Down, at: 12, exit: intp(0), changed: true},
				{task: t2, state: api.Cancelled, at: 13, err: "cancelled by user", changed: true},
			},
			wantJob: api.Cancelled, wantStart: 10, wantEnd: 13,
			wantTasks: [2]api.State{api.Down, api.Cancelled},
		},
		{
			name:  "failed wins over cancelled",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Cancelled, at: 12, changed: true},
				{task: t2, state: api.Failed, at: 13, err: "image not found", changed: true},
			},
			wantJob: api.Failed, wantEnd: 13, wantErr: "task j_task2: image not found",
			wantTasks: [2]api.State{api.Cancelled, api.Failed},
		},
		{
			// Delivery is at least once: the second copy changes nothing (start stays 10).
			name:  "the same status twice changes nothing",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Running, at: 10, changed: true},
				{task: t1, state: api.Running, at: 11, changed: false},
			},
			wantJob: api.Running, wantStart: 10,
			wantTasks: [2]api.State{api.Running, api.Deployed},
		},
		{
			name:  "a stale Running after Down is ignored",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Running, at: 10, changed: true},
				{task: t1, state: api.Down, at: 20, exit: intp(0), changed: true},
				{task: t1, state: api.Running, at: 21, changed: false},
			},
			wantJob: api.Running, wantStart: 10,
			wantTasks: [2]api.State{api.Down, api.Deployed},
		},
		{
			name:  "a second final status does not rewrite the first",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Down, at: 20, exit: intp(0), changed: true},
				{task: t1, state: api.Failed, at: 21, exit: intp(137), err: "killed", changed: false},
			},
			// Down without a Running seen: the task started at its end (20), and so did the job.
			wantJob: api.Running, wantStart: 20,
			wantTasks: [2]api.State{api.Down, api.Deployed},
		},
		{
			// A migrating task is still "running" for its job; back to Running keeps the first start.
			name:  "migration keeps the job Running and the first start",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Running, at: 10, changed: true},
				{task: t1, state: api.Migrating, at: 12, changed: true},
				{task: t1, state: api.Running, at: 14, changed: true},
			},
			wantJob: api.Running, wantStart: 10,
			wantTasks: [2]api.State{api.Running, api.Deployed},
		},
		{
			// Refresh never moves a job backwards: it stays Deployed; the jobmanager re-queues jobs itself.
			name:  "a deployed task can be re-queued",
			start: api.Deployed,
			steps: []step{
				{task: t1, state: api.Ready, at: 10, changed: true},
			},
			wantJob:   api.Deployed,
			wantTasks: [2]api.State{api.Ready, api.Deployed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobState := api.Deployed
			if tt.start < api.Deployed {
				jobState = api.Ready
			}
			j := twoTaskJob(t, tt.start, jobState)
			for i, s := range tt.steps {
				changed, err := j.ApplyStatus(api.TaskStatus{Node: "w1", Job: "j", Task: s.task, State: s.state, Time: s.at, ExitCode: s.exit, Error: s.err})
				if err != nil {
					t.Fatalf("step %d: ApplyStatus: %v", i, err)
				}
				if changed != s.changed {
					t.Errorf("step %d (%s %v@%v): changed = %v, want %v", i, s.task, s.state, s.at, changed, s.changed)
				}
			}
			if j.Status != tt.wantJob {
				t.Errorf("job status = %v, want %v", j.Status, tt.wantJob)
			}
			if j.StartTime != tt.wantStart || j.EndTime != tt.wantEnd {
				t.Errorf("job times = %v..%v, want %v..%v", j.StartTime, j.EndTime, tt.wantStart, tt.wantEnd)
			}
			if j.Error != tt.wantErr {
				t.Errorf("job error = %q, want %q", j.Error, tt.wantErr)
			}
			for i, want := range tt.wantTasks {
				if got := j.Info.Tasks[i].Status; got != want {
					t.Errorf("task %d status = %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

func TestApplyStatusRecordsTheEnd(t *testing.T) {
	j := twoTaskJob(t, api.Deployed, api.Deployed)
	logs := []string{"line 1", "line 2"}
	if _, err := j.ApplyStatus(api.TaskStatus{Task: "j_task1", State: api.Running, Time: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.ApplyStatus(api.TaskStatus{Task: "j_task1", State: api.Failed, Time: 12, ExitCode: intp(3), Error: "exited with code 3", Logs: logs}); err != nil {
		t.Fatal(err)
	}
	tk := j.Info.Tasks.Get("j_task1")
	if tk.StartTime != 10 || tk.EndTime != 12 {
		t.Errorf("task times = %v..%v, want 10..12", tk.StartTime, tk.EndTime)
	}
	if tk.ExitCode == nil || *tk.ExitCode != 3 || tk.Error != "exited with code 3" || !slices.Equal(tk.Logs, logs) {
		t.Errorf("task end = exit %v, error %q, logs %q", tk.ExitCode, tk.Error, tk.Logs)
	}
}

func TestApplyStatusUnknownTask(t *testing.T) {
	j := twoTaskJob(t, api.Deployed, api.Deployed)
	before := j.Clone()
	changed, err := j.ApplyStatus(api.TaskStatus{Task: "j_task9", State: api.Running, Time: 10})
	if !errors.Is(err, api.ErrNotFound) {
		t.Errorf("ApplyStatus(unknown task) error = %v, want ErrNotFound", err)
	}
	if changed {
		t.Errorf("ApplyStatus(unknown task) reported a change")
	}
	if !reflect.DeepEqual(j, before) {
		t.Errorf("ApplyStatus(unknown task) changed the job")
	}
}

func TestFinish(t *testing.T) {
	tests := []struct {
		name      string
		prepare   func(j *api.Job)
		state     api.State
		reason    string
		wantJob   api.State
		wantErr   string
		wantTasks [2]api.State
		wantEnd   float64
	}{
		{
			name:    "cancel a running job",
			prepare: func(j *api.Job) { mustApply(j, "j_task1", api.Running, 10) },
			state:   api.Cancelled, reason: "cancelled by user",
			wantJob: api.Cancelled, wantTasks: [2]api.State{api.Cancelled, api.Cancelled}, wantEnd: 50,
		},
		{
			// Finished tasks keep their state; the others fail, and the job's error names the first failed one.
			name: "fail a job whose first task ended",
			prepare: func(j *api.Job) {
				mustApply(j, "j_task1", api.Running, 10)
				mustApply(j, "j_task1", api.Down, 20)
			},
			state: api.Failed, reason: "deploy: worker w1 did not answer",
			wantJob: api.Failed, wantErr: "task j_task2: deploy: worker w1 did not answer",
			wantTasks: [2]api.State{api.Down, api.Failed}, wantEnd: 50,
		},
		{
			name:    "fail a job that never ran",
			prepare: func(*api.Job) {},
			state:   api.Failed, reason: "deploy: no worker",
			wantJob: api.Failed, wantErr: "task j_task1: deploy: no worker",
			wantTasks: [2]api.State{api.Failed, api.Failed}, wantEnd: 50,
		},
		{
			// Regression (was a bug in api/transition.go Finish): on a job that is already
			// final, Refresh returns at once and Finish then sets
			// j.Error = reason, so a Down job carries a failure message.
			// A finished job must stay as it was.
			name: "finishing a finished job changes nothing",
			prepare: func(j *api.Job) {
				mustApply(j, "j_task1", api.Down, 20)
				mustApply(j, "j_task2", api.Down, 21)
			},
			state: api.Failed, reason: "deploy: too late",
			wantJob: api.Down, wantErr: "",
			wantTasks: [2]api.State{api.Down, api.Down}, wantEnd: 21,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := twoTaskJob(t, api.Deployed, api.Deployed)
			tt.prepare(j)
			j.Finish(tt.state, tt.reason, 50)
			if j.Status != tt.wantJob || j.Error != tt.wantErr || j.EndTime != tt.wantEnd {
				t.Errorf("job = %v %q end %v, want %v %q end %v", j.Status, j.Error, j.EndTime, tt.wantJob, tt.wantErr, tt.wantEnd)
			}
			for i, want := range tt.wantTasks {
				if got := j.Info.Tasks[i].Status; got != want {
					t.Errorf("task %d = %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

func mustApply(j *api.Job, task string, s api.State, at float64) {
	if _, err := j.ApplyStatus(api.TaskStatus{Task: task, State: s, Time: at}); err != nil {
		panic(err)
	}
}

func TestJobHelpers(t *testing.T) {
	j := apitest.Job("j", 3, 2, "sleep 1")
	if got := j.Cores(); got != 6 {
		t.Errorf("Cores() = %d, want 3 tasks x 2 = 6", got)
	}
	if j.Info.Tasks.Get("j_task2") != j.Info.Tasks[1] || j.Info.Tasks.Get("nope") != nil {
		t.Errorf("Tasks.Get finds the wrong task")
	}
	// Clone is deep: changing the copy leaves the original alone.
	c := j.Clone()
	c.Info.Tasks[0].Environment["X"] = "1"
	c.Info.Tasks[0].Status = api.Running
	if len(j.Info.Tasks[0].Environment) != 0 || j.Info.Tasks[0].Status != api.Ready {
		t.Errorf("Clone shares memory with the original")
	}
	tests := []struct {
		name               string
		submit, start, end float64
		wait, exec, total  float64
	}{
		// submit 100, start 103, end 110: waited 3, ran 7, 10 in all.
		{"finished job", 100, 103, 110, 3, 7, 10},
		{"running job: only the waiting time is known", 100, 103, 0, 3, 0, 0},
		{"queued job: nothing known", 100, 0, 0, 0, 0, 0},
		// Failed before it ran: no start, but submit..end is known.
		{"failed before start", 100, 0, 104, 0, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &api.Job{SubmitTime: tt.submit, StartTime: tt.start, EndTime: tt.end}
			w, e, tot := j.Waiting()
			if w != tt.wait || e != tt.exec || tot != tt.total {
				t.Errorf("Waiting() = %v, %v, %v; want %v, %v, %v", w, e, tot, tt.wait, tt.exec, tt.total)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(j *api.Job)
		lim       api.Limits
		wantField string // "" = valid
	}{
		{name: "valid fixture", mutate: func(*api.Job) {}},
		// Names follow Docker's rules.
		{name: "job name required", mutate: func(j *api.Job) { j.Name = "" }, wantField: "job_name"},
		{name: "job name with a space", mutate: func(j *api.Job) { j.Name = "my job" }, wantField: "job_name"},
		{name: "job name starting with a dash", mutate: func(j *api.Job) { j.Name = "-j" }, wantField: "job_name"},
		{name: "job name with a slash", mutate: func(j *api.Job) { j.Name = "../j" }, wantField: "job_name"},
		{name: "job name of 129 characters", mutate: func(j *api.Job) { j.Name = strings.Repeat("a", 129) }, wantField: "job_name"},
		{name: "no tasks", mutate: func(j *api.Job) { j.Info.Tasks = nil }, wantField: "job_info.tasks"},
		// Network.
		{name: "network name invalid", mutate: func(j *api.Job) { j.Info.Network.Name = "net/1" }, wantField: "job_info.network.name"},
		{name: "macvlan driver refused", mutate: func(j *api.Job) { j.Info.Network.Driver = "macvlan" }, wantField: "job_info.network.driver"},
		{name: "bridge driver accepted", mutate: func(j *api.Job) { j.Info.Network.Driver = "bridge" }},
		{name: "overlay driver accepted", mutate: func(j *api.Job) { j.Info.Network.Driver = "overlay" }},
		{name: "subnet without prefix length", mutate: func(j *api.Job) { j.Info.Network.Subnet = "10.52.1.0" }, wantField: "job_info.network.subnet"},
		{name: "IPv6 subnet refused", mutate: func(j *api.Job) { j.Info.Network.Subnet = "fd00::/64" }, wantField: "job_info.network.subnet"},
		{name: "IPv4 subnet accepted", mutate: func(j *api.Job) { j.Info.Network.Subnet = "10.52.1.0/24" }},
		// container_name is <job_name>_<suffix>.
		{name: "container name of another job", mutate: func(j *api.Job) { j.Info.Tasks[0].ContainerName = "k_task1" }, wantField: "job_info.tasks.k_task1.container_name"},
		{name: "container name sharing only a prefix", mutate: func(j *api.Job) { j.Info.Tasks[0].ContainerName = "jx_task1" }, wantField: "job_info.tasks.jx_task1.container_name"},
		{name: "container name with an empty suffix", mutate: func(j *api.Job) { j.Info.Tasks[0].ContainerName = "j_" }, wantField: "job_info.tasks.j_.container_name"},
		{name: "container name with a space", mutate: func(j *api.Job) { j.Info.Tasks[0].ContainerName = "j_task 1" }, wantField: "job_info.tasks.j_task 1.container_name"},
		// Image.
		{name: "image required", mutate: func(j *api.Job) { j.Info.Tasks[0].Image = "" }, wantField: "job_info.tasks.j_task1.image"},
		{name: "image with a command separator", mutate: func(j *api.Job) { j.Info.Tasks[0].Image = "busybox;rm -rf /" }, wantField: "job_info.tasks.j_task1.image"},
		{name: "image with command substitution", mutate: func(j *api.Job) { j.Info.Tasks[0].Image = "busybox$(id)" }, wantField: "job_info.tasks.j_task1.image"},
		{name: "image with a backquote", mutate: func(j *api.Job) { j.Info.Tasks[0].Image = "busybox`id`" }, wantField: "job_info.tasks.j_task1.image"},
		{name: "image with upper case", mutate: func(j *api.Job) { j.Info.Tasks[0].Image = "BusyBox" }, wantField: "job_info.tasks.j_task1.image"},
		{name: "image with registry, port and tag", mutate: func(j *api.Job) { j.Info.Tasks[0].Image = "registry.local:5000/team/app:1.0" }},
		{name: "image by digest", mutate: func(j *api.Job) { j.Info.Tasks[0].Image = "busybox@sha256:" + strings.Repeat("ab", 32) }},
		// req_cores: at least 1, at most the cap (1024 by default).
		{name: "zero cores", mutate: func(j *api.Job) { j.Info.Tasks[0].ReqCores = 0 }, wantField: "job_info.tasks.j_task1.req_cores"},
		{name: "negative cores", mutate: func(j *api.Job) { j.Info.Tasks[0].ReqCores = -1 }, wantField: "job_info.tasks.j_task1.req_cores"},
		{name: "1024 cores under the default cap", mutate: func(j *api.Job) { j.Info.Tasks[0].ReqCores = 1024 }},
		{name: "1025 cores over the default cap", mutate: func(j *api.Job) { j.Info.Tasks[0].ReqCores = 1025 }, wantField: "job_info.tasks.j_task1.req_cores"},
		{name: "cores at the configured cap", mutate: func(j *api.Job) { j.Info.Tasks[0].ReqCores = 4 }, lim: api.Limits{MaxCores: 4}},
		{name: "cores over the configured cap", mutate: func(j *api.Job) { j.Info.Tasks[0].ReqCores = 5 }, lim: api.Limits{MaxCores: 4}, wantField: "job_info.tasks.j_task1.req_cores"},
		// Command.
		{name: "unbalanced quote in command", mutate: func(j *api.Job) { j.Info.Tasks[0].Command = `echo "hi` }, wantField: "job_info.tasks.j_task1.command"},
		// mem_limit: a Docker size, at least 6m.
		{name: "no memory limit", mutate: func(j *api.Job) { j.Info.Tasks[0].MemLimit = "" }},
		{name: "memory limit unparsable", mutate: func(j *api.Job) { j.Info.Tasks[0].MemLimit = "10x" }, wantField: "job_info.tasks.j_task1.mem_limit"},
		{name: "memory limit below 6m", mutate: func(j *api.Job) { j.Info.Tasks[0].MemLimit = "5m" }, wantField: "job_info.tasks.j_task1.mem_limit"},
		{name: "memory limit of exactly 6m", mutate: func(j *api.Job) { j.Info.Tasks[0].MemLimit = "6m" }},
		// 6m = 6291456 bytes; one byte less is refused.
		{name: "memory limit one byte below 6m", mutate: func(j *api.Job) { j.Info.Tasks[0].MemLimit = "6291455" }, wantField: "job_info.tasks.j_task1.mem_limit"},
		// cpuset_cpus: parsable, as many cores as req_cores, and a node.
		{name: "cpuset unparsable", mutate: func(j *api.Job) { pin(j, "a", "w1", 1) }, wantField: "job_info.tasks.j_task1.cpuset_cpus"},
		{name: "cpuset naming a core twice", mutate: func(j *api.Job) { pin(j, "1,1", "w1", 2) }, wantField: "job_info.tasks.j_task1.cpuset_cpus"},
		{name: "cpuset with more cores than req_cores", mutate: func(j *api.Job) { pin(j, "0,1", "w1", 1) }, wantField: "job_info.tasks.j_task1.cpuset_cpus"},
		{name: "cpuset with fewer cores than req_cores", mutate: func(j *api.Job) { pin(j, "0", "w1", 2) }, wantField: "job_info.tasks.j_task1.cpuset_cpus"},
		{name: "cpuset without a node", mutate: func(j *api.Job) { pin(j, "0-1", "", 2) }, wantField: "job_info.tasks.j_task1.node"},
		{name: "cpuset pinned to a node", mutate: func(j *api.Job) { pin(j, "0-1", "w1", 2) }},
		// Ports.
		{name: "port mapping", mutate: func(j *api.Job) { j.Info.Tasks[0].Ports = map[string]any{"80/tcp": 8080.0, "53/udp": nil} }},
		{name: "port with unknown protocol", mutate: func(j *api.Job) { j.Info.Tasks[0].Ports = map[string]any{"80/icmp": nil} }, wantField: "job_info.tasks.j_task1.ports.80/icmp"},
		{name: "host port out of range", mutate: func(j *api.Job) { j.Info.Tasks[0].Ports = map[string]any{"80": 70000.0} }, wantField: "job_info.tasks.j_task1.ports.80"},
		// Volumes: named volumes; host paths only when the operator allows them.
		{name: "named volume", mutate: func(j *api.Job) { j.Info.Tasks[0].Volumes = map[string]api.Volume{"data": {Bind: "/data", Mode: "rw"}} }},
		{name: "volume bound to a relative path", mutate: func(j *api.Job) { j.Info.Tasks[0].Volumes = map[string]api.Volume{"data": {Bind: "data"}} }, wantField: "job_info.tasks.j_task1.volumes.data.bind"},
		{name: "volume with unknown mode", mutate: func(j *api.Job) { j.Info.Tasks[0].Volumes = map[string]api.Volume{"data": {Bind: "/data", Mode: "rx"}} }, wantField: "job_info.tasks.j_task1.volumes.data.mode"},
		{name: "volume with an invalid name", mutate: func(j *api.Job) { j.Info.Tasks[0].Volumes = map[string]api.Volume{"my data": {Bind: "/data"}} }, wantField: "job_info.tasks.j_task1.volumes.my data"},
		{name: "host path refused by default", mutate: func(j *api.Job) {
			j.Info.Tasks[0].Volumes = map[string]api.Volume{"/etc": {Bind: "/host-etc", Mode: "ro"}}
		}, wantField: "job_info.tasks.j_task1.volumes./etc"},
		{name: "host path allowed by the operator", mutate: func(j *api.Job) { j.Info.Tasks[0].Volumes = map[string]api.Volume{"/srv/data": {Bind: "/data"}} }, lim: api.Limits{AllowHostVolumes: true}},
		// Environment variable names.
		{name: "environment", mutate: func(j *api.Job) { j.Info.Tasks[0].Environment = map[string]string{"PATH": "/bin", "X": ""} }},
		{name: "empty variable name", mutate: func(j *api.Job) { j.Info.Tasks[0].Environment = map[string]string{"": "x"} }, wantField: "job_info.tasks.j_task1.environment"},
		{name: "variable name with '='", mutate: func(j *api.Job) { j.Info.Tasks[0].Environment = map[string]string{"A=B": "x"} }, wantField: "job_info.tasks.j_task1.environment"},
		{name: "variable name with NUL", mutate: func(j *api.Job) { j.Info.Tasks[0].Environment = map[string]string{"A\x00": "x"} }, wantField: "job_info.tasks.j_task1.environment"},
		{name: "negative duration", mutate: func(j *api.Job) { j.Info.Tasks[0].Duration = -1 }, wantField: "job_info.tasks.j_task1.duration"},
		// The second task is checked too.
		{name: "problem in the second task", mutate: func(j *api.Job) { j.Info.Tasks[1].ReqCores = 0 }, wantField: "job_info.tasks.j_task2.req_cores"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := apitest.Job("j", 2, 1, "sleep 1")
			tt.mutate(j)
			err := j.Validate(tt.lim)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *api.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, tt.wantField)
			}
			if fe.Field != tt.wantField {
				t.Errorf("Validate() field = %q (%v), want %q", fe.Field, err, tt.wantField)
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
		})
	}
}

func pin(j *api.Job, cpuset, node string, cores int) {
	tk := j.Info.Tasks[0]
	tk.CpusetCpus, tk.Node, tk.ReqCores = cpuset, node, cores
}

func TestValidateFillsDefaultsAndResetsState(t *testing.T) {
	j := apitest.Job("j", 1, 1, "sleep 1")
	j.Info.Network = api.Network{Subnet: "10.52.1.7/24"}
	// A client cannot smuggle in progress: states, times and errors are reset.
	j.Status, j.StartTime, j.EndTime, j.Error, j.WaitingReason = api.Running, 5, 6, "x", "y"
	tk := j.Info.Tasks[0]
	tk.Status, tk.ExitCode, tk.Error, tk.Logs, tk.StartTime, tk.EndTime = api.Failed, intp(1), "e", []string{"l"}, 5, 6
	if err := j.Validate(api.Limits{}); err != nil {
		t.Fatal(err)
	}
	want := api.Network{Name: "rsnet_j", Driver: "auto", Subnet: "10.52.1.0/24"}
	if j.Info.Network != want {
		t.Errorf("network = %+v, want %+v (name and driver filled, subnet masked)", j.Info.Network, want)
	}
	if j.Status != api.Ready || j.StartTime != 0 || j.EndTime != 0 || j.Error != "" || j.WaitingReason != "" {
		t.Errorf("job not reset: %v %v..%v %q %q", j.Status, j.StartTime, j.EndTime, j.Error, j.WaitingReason)
	}
	if tk.Status != api.Ready || tk.ExitCode != nil || tk.Error != "" || tk.Logs != nil || tk.StartTime != 0 || tk.EndTime != 0 {
		t.Errorf("task not reset: %+v", tk)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"letters digits and punctuation", "job-1_a.b", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"129 characters", strings.Repeat("a", 129), false},
		{"starts with underscore", "_a", false},
		{"starts with dot", ".a", false},
		{"empty", "", false},
		{"unicode", "jöb", false},
		{"colon", "a:b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := api.ValidName("f", tt.in)
			if (err == nil) != tt.ok {
				t.Errorf("ValidName(%q) = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

// validJobJSON is a job in the original format, with tasks in the order
// t3, t1, t2 (not sorted), so that order preservation is visible.
const validJobJSON = `{
  "job_name": "j",
  "job_info": {
    "network": {"name": "rsnet_j", "driver": "overlay", "subnet": "10.52.1.0/24"},
    "tasks": {
      "j_t3": {"container_name": "j_t3", "node": "", "image": "rswarm/busybox:latest", "detach": true, "command": "sleep 3",
               "req_cores": 1, "cpuset_cpus": "", "mem_limit": "10m", "ports": {}, "volumes": {}, "environment": {}, "status": "Ready", "deadline": 0},
      "j_t1": {"container_name": "j_t1", "image": "rswarm/busybox:latest", "command": "sleep 1", "req_cores": 2},
      "j_t2": {"container_name": "j_t2", "image": "rswarm/busybox:latest", "command": "sleep 2", "req_cores": 1, "duration": 2.5}
    }
  },
  "status": "Ready", "start_time": 0, "end_time": 0, "priority": 3, "session": 1700000000
}`

func TestParseJob(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantField  string // "" = accepted
		wantReason string // a substring of the reason, when it matters
	}{
		{name: "original format", in: validJobJSON},
		{name: "malformed JSON", in: `{"job_name": "j",`, wantReason: "malformed JSON"},
		{name: "syntax error", in: `{"job_name" "j"}`, wantReason: "malformed JSON"},
		{name: "empty body", in: ``, wantReason: "empty body"},
		{name: "trailing object", in: `{"job_name":"j"} {}`, wantReason: "more than one JSON value"},
		{name: "trailing garbage", in: `{"job_name":"j"} x`, wantReason: "more than one JSON value"},
		{name: "job name of the wrong type", in: `{"job_name": 5}`, wantField: "job_name", wantReason: "must be a string"},
		{name: "req_cores as a string", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":{"req_cores":"2"}}}}`,
			wantField: "job_info.tasks.j_t1.req_cores", wantReason: "must be an integer"},
		{name: "req_cores as a fraction", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":{"req_cores":1.5}}}}`,
			wantField: "job_info.tasks.j_t1.req_cores", wantReason: "must be an integer"},
		{name: "detach as a string", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":{"detach":"yes"}}}}`,
			wantField: "job_info.tasks.j_t1.detach", wantReason: "must be a boolean"},
		{name: "network name of the wrong type", in: `{"job_name":"j","job_info":{"network":{"name":1}}}`,
			wantField: "job_info.network.name", wantReason: "must be a string"},
		{name: "task that is not an object", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":5}}}`,
			wantField: "job_info.tasks.j_t1", wantReason: "must be an object"},
		{name: "tasks as an array", in: `{"job_name":"j","job_info":{"tasks":[]}}`,
			wantField: "job_info.tasks", wantReason: "keyed by container name"},
		{name: "unknown top-level field", in: `{"job_name":"j","bogus":1}`, wantField: "bogus", wantReason: "unknown field"},
		// Regression (was a bug in api/validate.go fieldFromJSON): encoding/json names only the
		// field ("foo"), not its path, so the reported field is "foo".
		{name: "unknown field in network", in: `{"job_name":"j","job_info":{"network":{"name":"n","foo":1}}}`,
			wantField: "job_info.network.foo", wantReason: "unknown field"},
		{name: "unknown field in a task", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":{"container_name":"j_t1","gpu":1}}}}`,
			wantField: "job_info.tasks.j_t1.gpu", wantReason: "unknown field"},
		// The original Swagger documented cpu_count: the error says what to write instead.
		{name: "cpu_count gets a hint", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":{"container_name":"j_t1","cpu_count":2}}}}`,
			wantField: "job_info.tasks.j_t1.cpu_count", wantReason: "spelled req_cores"},
		{name: "key differs from container_name", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":{"container_name":"j_t2"}}}}`,
			wantField: "job_info.tasks.j_t1.container_name", wantReason: "must equal its task key"},
		{name: "duplicate task key", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":{},"j_t1":{}}}}`,
			wantField: "job_info.tasks.j_t1", wantReason: "duplicate"},
		// The same key spelled with an escape is still the same key.
		{name: "duplicate task key through an escape", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":{},"j_\u00741":{}}}}`,
			wantField: "job_info.tasks.j_t1", wantReason: "duplicate"},
		{name: "unknown state name", in: `{"job_name":"j","status":"Paused"}`,
			// Regression (was a bug in api/validate.go fieldFromJSON): the error of State.UnmarshalText
			// comes back without a field (Field == "").
			wantField: "status", wantReason: "unknown state"},
		{name: "state as a number", in: `{"job_name":"j","status":3}`, wantField: "status"},
		{name: "session as a boolean", in: `{"job_name":"j","session":true}`, wantField: "session"},
		{name: "container_name may be left out", in: `{"job_name":"j","job_info":{"tasks":{"j_t1":{"image":"busybox"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := api.ParseJob([]byte(tt.in))
			if tt.wantField == "" && tt.wantReason == "" {
				if err != nil {
					t.Fatalf("ParseJob() = %v, want accepted", err)
				}
				if j == nil {
					t.Fatal("ParseJob() = nil job")
				}
				return
			}
			var fe *api.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseJob() = %v (%T), want *FieldError", err, err)
			}
			if fe.Field != tt.wantField {
				t.Errorf("field = %q, want %q (error: %v)", fe.Field, tt.wantField, err)
			}
			if !strings.Contains(fe.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", fe.Reason, tt.wantReason)
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
		})
	}
}

func TestParseJobKeepsTaskOrder(t *testing.T) {
	j, err := api.ParseJob([]byte(validJobJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"j_t3", "j_t1", "j_t2"}
	if got := taskNames(j); !slices.Equal(got, want) {
		t.Fatalf("parsed order = %v, want %v (submission order)", got, want)
	}
	if j.Info.Tasks[2].Duration != 2.5 || j.Priority != 3 || j.Session != "1700000000" {
		t.Errorf("extensions lost: duration %v priority %v session %q", j.Info.Tasks[2].Duration, j.Priority, j.Session)
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	// The keys appear in the same order in the marshalled object.
	i3, i1, i2 := bytes.Index(b, []byte(`"j_t3":`)), bytes.Index(b, []byte(`"j_t1":`)), bytes.Index(b, []byte(`"j_t2":`))
	if !(i3 >= 0 && i3 < i1 && i1 < i2) {
		t.Errorf("marshalled key order wrong (t3 at %d, t1 at %d, t2 at %d): %s", i3, i1, i2, b)
	}
	back, err := api.ParseJob(b)
	if err != nil {
		t.Fatalf("re-parse of %s: %v", b, err)
	}
	if got := taskNames(back); !slices.Equal(got, want) {
		t.Errorf("order after a round trip = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(back, j) {
		t.Errorf("round trip changed the job:\n got %+v\nwant %+v", back, j)
	}
}

func taskNames(j *api.Job) []string {
	var out []string
	for _, t := range j.Info.Tasks {
		out = append(out, t.ContainerName)
	}
	return out
}

func TestSession(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    api.Session
		wantErr bool
	}{
		// The original wrote sessions as numbers in some files and strings in others.
		{"integer", `1700000000`, "1700000000", false},
		{"fraction", `1.5`, "1.5", false},
		{"string", `"exp-1"`, "exp-1", false},
		{"numeric string", `"12"`, "12", false},
		{"null", `null`, "", false},
		{"boolean", `true`, "", true},
		{"object", `{}`, "", true},
		{"array", `[1]`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s api.Session
			err := json.Unmarshal([]byte(tt.in), &s)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Unmarshal(%s) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if s != tt.want {
				t.Errorf("Unmarshal(%s) = %q, want %q", tt.in, s, tt.want)
			}
		})
	}
	// It is always written back as a string.
	b, _ := json.Marshal(api.Session("12"))
	if string(b) != `"12"` {
		t.Errorf("Marshal(Session(12)) = %s", b)
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "only blanks", in: " \t\n", want: nil},
		{name: "words", in: "sleep 5", want: []string{"sleep", "5"}},
		{name: "runs of blanks", in: "  a \t b\nc  ", want: []string{"a", "b", "c"}},
		{name: "single quotes keep blanks", in: `echo 'a  b'`, want: []string{"echo", "a  b"}},
		{name: "single quotes keep backslashes", in: `echo 'a\nb'`, want: []string{"echo", `a\nb`}},
		{name: "double quotes keep blanks", in: `echo "a  b"`, want: []string{"echo", "a  b"}},
		{name: "escaped double quote", in: `echo "say \"hi\""`, want: []string{"echo", `say "hi"`}},
		// Inside double quotes a backslash escapes only " \ $ and `; elsewhere it stays.
		{name: "escaped dollar", in: `echo "\$HOME"`, want: []string{"echo", "$HOME"}},
		{name: "backslash before another character stays", in: `echo "a\nb"`, want: []string{"echo", `a\nb`}},
		{name: "escaped backslash", in: `echo "a\\b"`, want: []string{"echo", `a\b`}},
		{name: "backslash escapes a blank", in: `a\ b c`, want: []string{"a b", "c"}},
		{name: "quotes join a word", in: `a'b'"c"d`, want: []string{"abcd"}},
		{name: "empty quotes make an empty word", in: `echo '' ""`, want: []string{"echo", "", ""}},
		// No shell: nothing is expanded or interpreted.
		{name: "no expansion", in: `echo $HOME *`, want: []string{"echo", "$HOME", "*"}},
		{name: "no separators", in: `a;b|c&&d`, want: []string{"a;b|c&&d"}},
		{name: "unterminated single quote", in: `echo 'a`, wantErr: "unterminated single quote"},
		{name: "unterminated double quote", in: `echo "a`, wantErr: "unterminated double quote"},
		{name: "escaped closing double quote", in: `echo "a\"`, wantErr: "unterminated double quote"},
		{name: "trailing backslash", in: `echo a\`, wantErr: "trailing backslash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := api.SplitCommand(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SplitCommand(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("SplitCommand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseMem(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "bytes", in: "100", want: 100},
		{name: "bytes with b", in: "100b", want: 100},
		// Units are binary, as Docker reads them: 1k = 1024.
		{name: "kilobytes", in: "512k", want: 512 << 10},
		{name: "megabytes", in: "10m", want: 10 << 20},
		{name: "upper-case unit", in: "10M", want: 10 << 20},
		{name: "unit with b", in: "10mb", want: 10 << 20},
		{name: "upper-case unit with B", in: "10MB", want: 10 << 20},
		{name: "gigabytes", in: "2g", want: 2 << 30},
		{name: "fraction", in: "1.5k", want: 1536},
		{name: "surrounding blanks", in: " 10m ", want: 10 << 20},
		{name: "empty", in: "", wantErr: true},
		{name: "unit alone", in: "m", wantErr: true},
		{name: "b alone", in: "b", wantErr: true},
		{name: "words", in: "lots", wantErr: true},
		{name: "unknown unit", in: "10x", wantErr: true},
		// Docker's go-units: t and p, and the IEC spellings.
		{name: "terabytes", in: "1t", want: 1 << 40},
		{name: "IEC unit", in: "2GiB", want: 2 << 30},
		{name: "IEC unit, lower case", in: "512mib", want: 512 << 20},
		{name: "one blank before the unit", in: "10 m", want: 10 << 20},
		{name: "petabyte is the largest", in: "1p", want: 1 << 50},
		{name: "more than a petabyte", in: "2p", wantErr: true},
		{name: "exponent", in: "1e3", wantErr: true},
		{name: "i without b", in: "10mi", wantErr: true},
		{name: "negative", in: "-1m", wantErr: true},
		{name: "zero", in: "0", wantErr: true},
		// More than 2^50 bytes (1 PiB) is refused.
		{name: "absurdly large", in: "1e20g", wantErr: true},
		{name: "infinity", in: "inf", wantErr: true},
		// Regression (was a bug in api/validate.go ParseMem): "nan" passes the checks (NaN <= 0
		// and NaN > 2^50 are both false) and returns int64(NaN), which is
		// math.MinInt64 on amd64, with a nil error. The globalmanager's update
		// endpoint then reserves a negative memory size.
		{name: "not a number", in: "nan", wantErr: true},
		{name: "not a number with a unit", in: "NaNm", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := api.ParseMem(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseMem(%q) = %d, %v; wantErr %v", tt.in, got, err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("ParseMem(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseCpuset(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []int
		wantErr string
		hangs   bool
	}{
		{name: "one core", in: "0", want: []int{0}},
		{name: "list", in: "0,1", want: []int{0, 1}},
		{name: "unsorted list comes back sorted", in: "3,1,2", want: []int{1, 2, 3}},
		{name: "range", in: "0-3", want: []int{0, 1, 2, 3}},
		{name: "range and list", in: "0-2,5", want: []int{0, 1, 2, 5}},
		{name: "one-core range", in: "2-2", want: []int{2}},
		{name: "blanks around parts", in: " 1 , 2 ", want: []int{1, 2}},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "blank", in: "  ", wantErr: "empty"},
		{name: "letters", in: "a", wantErr: "not a cpuset"},
		{name: "empty part", in: "1,,2", wantErr: "not a cpuset"},
		{name: "negative", in: "-1", wantErr: "not a cpuset"},
		{name: "backwards range", in: "3-1", wantErr: "not a cpuset"},
		{name: "open range", in: "1-", wantErr: "not a cpuset"},
		{name: "duplicate core", in: "1,1", wantErr: "twice"},
		{name: "duplicate through a range", in: "0-2,1", wantErr: "twice"},
		{name: "too many cores in a range", in: "0-5000", wantErr: "too many"},
		// Regression (was a bug in api/validate.go ParseCpuset): the loop `for c := a; c <= b; c++`
		// never ends when b is math.MaxInt64 (c wraps around to MinInt64),
		// filling the map until memory runs out. A job submitted with this
		// cpuset_cpus, or a globalmanager update request, hangs the server.
		// Skipped so that the suite does not hang; un-skip once fixed.
		{name: "range ending at the largest int", in: "9223372036854775806-9223372036854775807", wantErr: "not a cpuset", hangs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.hangs {
			}
			got, err := api.ParseCpuset(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCpuset(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ParseCpuset(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatCpuset(t *testing.T) {
	tests := []struct {
		name  string
		cores []int
		want  string
	}{
		{"none", nil, ""},
		{"one", []int{0}, "0"},
		{"several", []int{0, 1, 5}, "0,1,5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := api.FormatCpuset(tt.cores); got != tt.want {
				t.Errorf("FormatCpuset(%v) = %q, want %q", tt.cores, got, tt.want)
			}
		})
	}
	// Parse then format writes Docker's canonical list.
	cores, err := api.ParseCpuset("5,0-2")
	if err != nil || api.FormatCpuset(cores) != "0,1,2,5" {
		t.Errorf("FormatCpuset(ParseCpuset(5,0-2)) = %q, %v", api.FormatCpuset(cores), err)
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		host     any
		wantSpec string
		wantHost int
		wantErr  string
	}{
		{name: "docker chooses the host port", key: "3000/tcp", host: nil, wantSpec: "3000/tcp"},
		{name: "tcp by default", key: "3000", host: 8080.0, wantSpec: "3000/tcp", wantHost: 8080},
		{name: "udp with a host port as a string", key: "53/udp", host: "5353", wantSpec: "53/udp", wantHost: 5353},
		{name: "sctp", key: "9/sctp", host: nil, wantSpec: "9/sctp"},
		{name: "highest ports", key: "65535", host: 65535.0, wantSpec: "65535/tcp", wantHost: 65535},
		{name: "unknown protocol", key: "80/icmp", wantErr: "protocol"},
		{name: "port zero", key: "0", wantErr: "container port"},
		{name: "port too large", key: "65536", wantErr: "container port"},
		{name: "port not a number", key: "http", wantErr: "container port"},
		{name: "no port", key: "/tcp", wantErr: "container port"},
		{name: "fractional host port", key: "80", host: 1.5, wantErr: "integer"},
		{name: "negative host port", key: "80", host: -1.0, wantErr: "0-65535"},
		{name: "host port too large", key: "80", host: 65536.0, wantErr: "0-65535"},
		{name: "host port string not a number", key: "80", host: "x", wantErr: "must be a number"},
		{name: "host port of the wrong type", key: "80", host: true, wantErr: "number, a string or null"},
		{name: "host port as a list", key: "80", host: []any{8080.0}, wantErr: "number, a string or null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, host, err := api.ParsePort(tt.key, tt.host)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePort(%q, %v) = %q, %d, %v; want error %q", tt.key, tt.host, spec, host, err, tt.wantErr)
				}
				return
			}
			if err != nil || spec != tt.wantSpec || host != tt.wantHost {
				t.Errorf("ParsePort(%q, %v) = %q, %d, %v; want %q, %d", tt.key, tt.host, spec, host, err, tt.wantSpec, tt.wantHost)
			}
		})
	}
}

// storeNotFound and storeExists are declared the way the store declares its sentinels.
var (
	storeNotFound = api.NewKind("store: not found", api.ErrNotFound)
	storeExists   = api.NewKind("store: already exists", api.ErrConflict)
)

func TestErrorResponse(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		status    int
		code      string
		field     string
		wantInMsg string
	}{
		{name: "field error", err: api.Invalid("job_name", "required"),
			status: http.StatusBadRequest, code: "invalid", field: "job_name", wantInMsg: "job_name: required"},
		{name: "wrapped field error keeps its field", err: fmt.Errorf("submit: %w", api.Invalid("job_info.tasks", "required")),
			status: http.StatusBadRequest, code: "invalid", field: "job_info.tasks", wantInMsg: "required"},
		{name: "field error of kind conflict", err: &api.FieldError{Field: "job_name", Reason: "exists", Kind: api.ErrConflict},
			status: http.StatusConflict, code: "conflict", field: "job_name", wantInMsg: "exists"},
		{name: "field error of kind not found", err: &api.FieldError{Field: "node", Reason: "no such worker", Kind: api.ErrNotFound},
			status: http.StatusNotFound, code: "not_found", field: "node", wantInMsg: "no such worker"},
		// Other kinds are classified by errors.Is through FieldError.Is.
		{name: "field error of kind unavailable", err: &api.FieldError{Field: "node", Reason: "down", Kind: api.ErrUnavailable},
			status: http.StatusServiceUnavailable, code: "unavailable"},
		{name: "field error of kind unprocessable", err: &api.FieldError{Field: "task", Reason: "criu", Kind: api.ErrUnprocessable},
			status: http.StatusUnprocessableEntity, code: "unprocessable"},
		{name: "wrapped ErrInvalid", err: fmt.Errorf("bad page size: %w", api.ErrInvalid),
			status: http.StatusBadRequest, code: "invalid", wantInMsg: "bad page size"},
		{name: "unauthorized", err: fmt.Errorf("GET /x: %w", api.ErrUnauthorized),
			status: http.StatusUnauthorized, code: "unauthorized"},
		{name: "not found", err: fmt.Errorf("job j: %w", api.ErrNotFound),
			status: http.StatusNotFound, code: "not_found", wantInMsg: "job j"},
		{name: "a package's not-found sentinel", err: fmt.Errorf("get job j: %w", storeNotFound),
			status: http.StatusNotFound, code: "not_found", wantInMsg: "store: not found"},
		{name: "conflict", err: fmt.Errorf("x: %w", api.ErrConflict), status: http.StatusConflict, code: "conflict"},
		{name: "a package's conflict sentinel", err: fmt.Errorf("create job j: %w", storeExists),
			status: http.StatusConflict, code: "conflict", wantInMsg: "already exists"},
		{name: "unprocessable", err: fmt.Errorf("checkpoint: %w", api.ErrUnprocessable),
			status: http.StatusUnprocessableEntity, code: "unprocessable"},
		{name: "unavailable", err: fmt.Errorf("jobmanager: %w", api.ErrUnavailable),
			status: http.StatusServiceUnavailable, code: "unavailable"},
		{name: "deadline exceeded", err: fmt.Errorf("ask worker: %w", context.DeadlineExceeded),
			status: http.StatusServiceUnavailable, code: "unavailable"},
		{name: "plain error", err: errors.New("disk on fire"),
			status: http.StatusInternalServerError, code: "internal", wantInMsg: "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := api.ErrorResponse(tt.err)
			if status != tt.status || body.Error.Code != tt.code || body.Error.Field != tt.field {
				t.Errorf("ErrorResponse(%v) = %d %q field %q, want %d %q field %q",
					tt.err, status, body.Error.Code, body.Error.Field, tt.status, tt.code, tt.field)
			}
			if !strings.Contains(body.Error.Message, tt.wantInMsg) || body.Error.Message == "" {
				t.Errorf("message = %q, want it to contain %q", body.Error.Message, tt.wantInMsg)
			}
			// The body has the documented shape.
			b, _ := json.Marshal(body)
			var shape struct {
				Error map[string]string `json:"error"`
			}
			if err := json.Unmarshal(b, &shape); err != nil || shape.Error["code"] != tt.code {
				t.Errorf("body %s is not {\"error\": {\"code\": ...}}", b)
			}
			// A client rebuilding the error from the status classifies it the same way.
			if status != http.StatusInternalServerError {
				se := &api.StatusError{Status: status, Detail: body.Error}
				for _, kind := range []error{api.ErrInvalid, api.ErrUnauthorized, api.ErrNotFound, api.ErrConflict, api.ErrUnprocessable, api.ErrUnavailable} {
					if errors.Is(se, kind) != errors.Is(tt.err, kind) && !(kind == api.ErrUnavailable && errors.Is(tt.err, context.DeadlineExceeded)) {
						t.Errorf("errors.Is(StatusError %d, %v) = %v, server-side %v", status, kind, errors.Is(se, kind), errors.Is(tt.err, kind))
					}
				}
			}
		})
	}
}

func TestStatusError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		is     error // nil: none of the kinds
	}{
		{"bad request", http.StatusBadRequest, api.ErrInvalid},
		{"unauthorized", http.StatusUnauthorized, api.ErrUnauthorized},
		{"not found", http.StatusNotFound, api.ErrNotFound},
		{"conflict", http.StatusConflict, api.ErrConflict},
		{"unprocessable", http.StatusUnprocessableEntity, api.ErrUnprocessable},
		{"service unavailable", http.StatusServiceUnavailable, api.ErrUnavailable},
		// A proxy in front of a server that is down answers 502 or 504.
		{"bad gateway", http.StatusBadGateway, api.ErrUnavailable},
		{"gateway timeout", http.StatusGatewayTimeout, api.ErrUnavailable},
		{"internal error", http.StatusInternalServerError, nil},
		{"teapot", http.StatusTeapot, nil},
	}
	kinds := []error{api.ErrInvalid, api.ErrUnauthorized, api.ErrNotFound, api.ErrConflict, api.ErrUnprocessable, api.ErrUnavailable}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fmt.Errorf("GET /x: %w", &api.StatusError{Status: tt.status})
			for _, k := range kinds {
				if got := errors.Is(err, k); got != (k == tt.is) {
					t.Errorf("errors.Is(%d, %v) = %v, want %v", tt.status, k, got, k == tt.is)
				}
			}
		})
	}
	// The message is the server's, or the status text when it sent none.
	if got := (&api.StatusError{Status: 404, Detail: api.ErrorDetail{Message: "no job j"}}).Error(); got != "no job j" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&api.StatusError{Status: 404}).Error(); got != "Not Found" {
		t.Errorf("Error() = %q, want the status text", got)
	}
}

func TestNewKind(t *testing.T) {
	err := api.NewKind("engine: not found", api.ErrNotFound)
	wrapped := fmt.Errorf("inspect c1: %w", err)
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"is its kind", err, api.ErrNotFound, true},
		{"is itself", err, err, true},
		{"wrapped is its kind", wrapped, api.ErrNotFound, true},
		{"wrapped is the sentinel", wrapped, err, true},
		{"is not another kind", err, api.ErrConflict, false},
		{"is not another sentinel of the same kind", err, api.NewKind("engine: not found", api.ErrNotFound), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Errorf("errors.Is(%v, %v) = %v, want %v", tt.err, tt.target, got, tt.want)
			}
		})
	}
	if err.Error() != "engine: not found" {
		t.Errorf("Error() = %q, want the message alone", err.Error())
	}
}

func TestFieldErrorIs(t *testing.T) {
	tests := []struct {
		name   string
		err    *api.FieldError
		target error
		want   bool
	}{
		{"plain field error is invalid input", api.Invalid("f", "bad"), api.ErrInvalid, true},
		{"plain field error is not a conflict", api.Invalid("f", "bad"), api.ErrConflict, false},
		{"conflict kind is a conflict", &api.FieldError{Kind: api.ErrConflict}, api.ErrConflict, true},
		{"conflict kind is not invalid input", &api.FieldError{Kind: api.ErrConflict}, api.ErrInvalid, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Errorf("errors.Is = %v, want %v", got, tt.want)
			}
		})
	}
	if got := api.Invalid("a.b", "must be %d", 3).Error(); got != "a.b: must be 3" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&api.FieldError{Reason: "body empty"}).Error(); got != "body empty" {
		t.Errorf("Error() without field = %q", got)
	}
}

func TestHistogramObserve(t *testing.T) {
	tests := []struct {
		name       string
		values     []float64
		wantCounts []uint64
		wantSum    float64
	}{
		{"empty", nil, []uint64{0, 0, 0}, 0},
		// Cumulative, bounds inclusive: 0.5 <= 1, 5 <= 5, 7 <= 10, 100 above all.
		{"cumulative and inclusive", []float64{0.5, 5, 7, 100}, []uint64{1, 2, 3}, 112.5},
		{"on the bound", []float64{1}, []uint64{1, 1, 1}, 1},
		{"above every bound counts only in Count", []float64{11}, []uint64{0, 0, 0}, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := api.NewHistogram(1, 5, 10)
			for _, v := range tt.values {
				h.Observe(v)
			}
			if !slices.Equal(h.Counts, tt.wantCounts) || h.Count != uint64(len(tt.values)) || h.Sum != tt.wantSum {
				t.Errorf("histogram = counts %v count %d sum %v; want %v %d %v", h.Counts, h.Count, h.Sum, tt.wantCounts, len(tt.values), tt.wantSum)
			}
		})
	}
	// A clone does not share memory.
	h := api.NewHistogram(1)
	c := h.Clone()
	c.Observe(0)
	if h.Counts[0] != 0 || h.Count != 0 {
		t.Errorf("Clone shares counts with the original")
	}
}

func TestWorkerAllocation(t *testing.T) {
	tests := []struct {
		name      string
		cores     int
		memTotal  int64
		busy      map[int]string
		mem       int64
		wantCPUs  map[string]bool
		wantTasks map[string]string
		wantFree  string
		wantBusy  []int
	}{
		{
			name: "nothing allocated", cores: 2, memTotal: 2e9,
			wantCPUs: map[string]bool{"0": false, "1": false}, wantTasks: map[string]string{},
			wantFree: "2000.000m", wantBusy: nil,
		},
		{
			// 1e9 - 250e6 = 750e6 bytes = 750 MB (decimal, as the original).
			name: "two cores of four", cores: 4, memTotal: 1e9, busy: map[int]string{0: "j_t1", 2: "j_t2"}, mem: 250e6,
			wantCPUs:  map[string]bool{"0": true, "1": false, "2": true, "3": false},
			wantTasks: map[string]string{"0": "j_t1", "2": "j_t2"},
			wantFree:  "750.000m", wantBusy: []int{0, 2},
		},
		{
			// Numeric order: core 10 after core 2, not "10" < "2".
			name: "more than ten cores", cores: 12, memTotal: 1e6, busy: map[int]string{10: "a", 2: "b"},
			wantCPUs:  map[string]bool{"0": false, "1": false, "2": true, "3": false, "4": false, "5": false, "6": false, "7": false, "8": false, "9": false, "10": true, "11": false},
			wantTasks: map[string]string{"2": "b", "10": "a"},
			wantFree:  "1.000m", wantBusy: []int{2, 10},
		},
		{
			// A core id the worker does not have is not recorded.
			name: "core beyond the worker", cores: 1, memTotal: 0, busy: map[int]string{5: "x"},
			wantCPUs: map[string]bool{"0": false}, wantTasks: map[string]string{},
			wantFree: "0.000m", wantBusy: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &api.Worker{ID: "w1", Cores: tt.cores, MemTotal: tt.memTotal}
			w.SetAllocation(tt.busy, tt.mem)
			if !reflect.DeepEqual(w.CPUs, tt.wantCPUs) {
				t.Errorf("CPUs = %v, want %v", w.CPUs, tt.wantCPUs)
			}
			if !reflect.DeepEqual(w.CoreTasks, tt.wantTasks) {
				t.Errorf("CoreTasks = %v, want %v", w.CoreTasks, tt.wantTasks)
			}
			if w.MemFree != tt.wantFree || w.MemAllocated != tt.mem {
				t.Errorf("MemFree = %q, MemAllocated = %d; want %q, %d", w.MemFree, w.MemAllocated, tt.wantFree, tt.mem)
			}
			if got := w.BusyCores(); !slices.Equal(got, tt.wantBusy) {
				t.Errorf("BusyCores() = %v, want %v", got, tt.wantBusy)
			}
		})
	}
	// BusyCores ignores keys that are not core ids (a hand-edited record).
	w := &api.Worker{CPUs: map[string]bool{"1": true, "x": true, "0": false}}
	if got := w.BusyCores(); !slices.Equal(got, []int{1}) {
		t.Errorf("BusyCores() = %v, want [1]", got)
	}
}

func TestFormatMB(t *testing.T) {
	tests := []struct {
		name string
		in   int64
		want string
	}{
		{"zero", 0, "0.000m"},
		{"one and a half MB", 1_500_000, "1.500m"},
		{"rounded to kB", 1_234_567, "1.235m"},
		{"over-committed", -1_000_000, "-1.000m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := api.FormatMB(tt.in); got != tt.want {
				t.Errorf("FormatMB(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got := (api.UsagePoint{Node: "w1", Time: 1.5, Ratio: 0.25}).String(); got != "w1@1.500=0.250" {
		t.Errorf("UsagePoint.String() = %q", got)
	}
}

// FuzzParseJob: ParseJob never panics; whatever it refuses is a
// *FieldError; whatever it accepts marshals to JSON that it accepts again
// and that is a fixed point (marshal, parse, marshal gives the same bytes
// and an equal job). Validate never panics on an accepted job.
func FuzzParseJob(f *testing.F) {
	seed, _ := json.Marshal(apitest.Job("j", 2, 1, "sleep 1"))
	for _, s := range []string{
		validJobJSON,
		string(seed),
		`{"job_name":"j","job_info":{"tasks":{"j_t1":{"container_name":"j_t1","cpu_count":2}}}}`,
		`{"job_name":"j","session":12.5,"job_info":{"tasks":{"j_t1":null}}}`,
		`{"job_name":"j","job_info":{"tasks":{"j_t1":{"ports":{"80/tcp":8080},"volumes":{"v":{"bind":"/v"}},"logs":[],"exit_code":1}}}}`,
		`{"job_name":"j","job_info":{"tasks":{"j_t1":{},"j_t1":{}}}}`,
		`{"job_name":`,
		`null`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := api.ParseJob(data)
		if err != nil {
			var fe *api.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseJob refused with %T %v, want *FieldError", err, err)
			}
			return
		}
		b1, err := json.Marshal(j)
		if err != nil {
			t.Fatalf("Marshal accepted job: %v", err)
		}
		j2, err := api.ParseJob(b1)
		if err != nil {
			t.Fatalf("ParseJob refuses its own output %s: %v", b1, err)
		}
		b2, err := json.Marshal(j2)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("round trip not stable:\n%s\n%s", b1, b2)
		}
		// Compared after one round trip: the first parse may hold an empty
		// slice (logs: []) that omitempty then writes as absent (nil).
		j3, err := api.ParseJob(b2)
		if err != nil || !reflect.DeepEqual(j2, j3) {
			t.Fatalf("round trip changed the job: %v", err)
		}
		_ = j.Validate(api.DefaultLimits())
	})
}

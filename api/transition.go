package api

import (
	"fmt"
)

// JobFilter selects jobs. Zero values match everything.
type JobFilter struct {
	Status  []State // any of these
	Session string
	Node    string // jobs with at least one task on this node
	Limit   int    // 0 = no limit
	Offset  int
}

// ApplyStatus applies a task's observed state to its job and refreshes the
// job's state and times. It reports whether anything changed: a status that
// would move the task backwards, or out of a final state, is stale and
// ignored, so applying the same status twice is harmless. So is a status
// about an earlier attempt (the job was restarted since), or from a node
// the task is not placed on (an orphan of a deploy that was given up),
// except while the task migrates.
func (j *Job) ApplyStatus(st TaskStatus) (bool, error) {
	t := j.Info.Tasks.Get(st.Task)
	if t == nil {
		return false, fmt.Errorf("job %s has no task %s: %w", j.Name, st.Task, ErrNotFound)
	}
	if t.Status == st.State || !CanTransition(t.Status, st.State) || st.Attempt < j.Restarts {
		return false, nil
	}
	if st.Node != "" && st.Node != t.Node && t.Status != Migrating {
		return false, nil
	}
	t.Status = st.State
	switch {
	case st.State == Running:
		if t.StartTime == 0 {
			t.StartTime = st.Time
		}
	case st.State.Final():
		if t.StartTime == 0 && st.State == Down {
			t.StartTime = st.Time
		}
		t.EndTime = st.Time
		t.ExitCode = st.ExitCode
		t.Error = st.Error
		if len(st.Logs) > 0 {
			t.Logs = st.Logs
		}
	}
	j.Refresh(st.Time)
	return true, nil
}

// Refresh derives the job's state from its tasks': final when every task
// is final (Failed if any failed, else Cancelled if any was cancelled, else
// Down), Running once any task runs, Deployed once every task is deployed.
// start_time is the first task's start and end_time the last task's end.
func (j *Job) Refresh(now float64) {
	if j.Status.Final() {
		return
	}
	allFinal, allDeployed := true, true
	anyRunning, anyFailed, anyCancelled := false, false, false
	var firstErr string
	for _, t := range j.Info.Tasks {
		switch {
		case t.Status == Failed:
			anyFailed = true
			if firstErr == "" {
				firstErr = fmt.Sprintf("task %s: %s", t.ContainerName, t.Error)
			}
		case t.Status == Cancelled:
			anyCancelled = true
		}
		if !t.Status.Final() {
			allFinal = false
		}
		if t.Status < Deployed {
			allDeployed = false
		}
		// A job runs once a task has run: a task that ended without ever
		// starting (a missing image) does not count.
		if t.Status == Running || t.Status == Migrating || (t.Status.Final() && t.StartTime > 0) {
			anyRunning = true
		}
		if t.StartTime > 0 && (j.StartTime == 0 || t.StartTime < j.StartTime) {
			j.StartTime = t.StartTime
		}
	}
	switch {
	case allFinal:
		j.Status = Down
		if anyFailed {
			j.Status = Failed
			j.Error = firstErr
		} else if anyCancelled {
			j.Status = Cancelled
		}
		j.EndTime = now
		for _, t := range j.Info.Tasks {
			if t.EndTime > j.EndTime {
				j.EndTime = t.EndTime
			}
		}
		j.WaitingReason = ""
	case anyRunning:
		j.Status = Running
	case allDeployed:
		j.Status = Deployed
	}
}

// Finish moves every task that is not final to state (Failed or Cancelled)
// with reason, and the job with them. It is how cancellation, dispatch
// failures and lost workers end a job.
func (j *Job) Finish(state State, reason string, now float64) {
	if j.Status.Final() {
		return
	}
	for _, t := range j.Info.Tasks {
		if !t.Status.Final() {
			t.Status = state
			t.Error = reason
			t.EndTime = now
		}
	}
	j.Refresh(now)
	if j.Error == "" && state == Failed {
		j.Error = reason
	}
}

package api

import (
	"fmt"
	"strconv"
	"strings"
)

// Restart policies, the job's optional "restart" field.
const (
	// RestartNever leaves a job that lost a worker Failed.
	RestartNever = "never"
	// RestartOnFailure puts a job that lost a worker back in the queue, up
	// to a limit ("on-failure:3"; "on-failure" alone means once).
	RestartOnFailure = "on-failure"
	// maxRestarts bounds the limit a job may ask for.
	maxRestarts = 100
)

// WorkerLost begins the error of every task failed because its worker was
// lost (silent past the heartbeat grace, or no longer running the task):
// the failures a restart policy applies to.
const WorkerLost = "worker lost"

// ParseRestart returns how many times a job with restart policy s may be
// restarted: "" and "on-failure" once, "on-failure:N" N times (0 to 100),
// "never" none.
func ParseRestart(s string) (int, error) {
	switch s {
	case "", RestartOnFailure:
		return 1, nil
	case RestartNever:
		return 0, nil
	}
	rest, ok := strings.CutPrefix(s, RestartOnFailure+":")
	if !ok {
		return 0, fmt.Errorf("%q is not a restart policy: use %q, %q or %q", s, RestartNever, RestartOnFailure, RestartOnFailure+":N")
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n > maxRestarts {
		return 0, fmt.Errorf("%q: the limit must be a whole number from 0 to %d", s, maxRestarts)
	}
	return n, nil
}

// CanRestart reports whether a Failed job is to go back in the queue: it
// failed because a worker was lost (no task failed for another reason), and
// its policy allows another restart.
func (j *Job) CanRestart() bool {
	if j.Status != Failed {
		return false
	}
	limit, err := ParseRestart(j.Restart)
	if err != nil || j.Restarts >= limit {
		return false
	}
	lost := false
	for _, t := range j.Info.Tasks {
		if t.Status != Failed {
			continue
		}
		if !strings.HasPrefix(t.Error, WorkerLost) {
			return false
		}
		lost = true
	}
	return lost
}

// Requeue puts a failed job back in the queue as a new attempt: every task
// Ready again, its placement forgotten unless the client pinned it (the
// no-scheduler strategy), its times and results cleared.
func (j *Job) Requeue() {
	limit, _ := ParseRestart(j.Restart)
	why := j.Error
	j.Restarts++
	j.Status = Ready
	j.StartTime, j.EndTime, j.Error = 0, 0, ""
	j.WaitingReason = fmt.Sprintf("restart %d of %d after: %s", j.Restarts, limit, why)
	for _, t := range j.Info.Tasks {
		t.Status = Ready
		if j.Strategy != "no-scheduler" {
			t.Node, t.CpusetCpus = "", ""
		}
		t.StartTime, t.EndTime, t.ExitCode, t.Error, t.Logs = 0, 0, nil, "", nil
	}
}

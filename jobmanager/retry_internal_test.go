package jobmanager

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
)

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		// base 200 ms doubled n times, capped at 5 s; then jittered over its upper half.
		{0, 0, 100 * time.Millisecond},          // 200/2
		{0, 0.999999, 200 * time.Millisecond},   // ~200
		{1, 0, 200 * time.Millisecond},          // 400/2
		{3, 0.5, 1200 * time.Millisecond},       // 1600: 800 + 400
		{5, 0, 2500 * time.Millisecond},         // 6400 capped at 5000: 2500
		{50, 0.999999, 5000 * time.Millisecond}, // still capped (no overflow)
	}
	for _, tt := range tests {
		got := retryDelay(tt.n, tt.jitter)
		if d := got - tt.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("retryDelay(%d, %v) = %v, want %v", tt.n, tt.jitter, got, tt.want)
		}
	}
}

func TestJudgeDeploy(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want verdict
	}{
		{"success", nil, deployed},
		{"connection refused", fmt.Errorf("POST: %w: connection refused", api.ErrUnavailable), retry},
		{"timeout", fmt.Errorf("deploy: %w", context.DeadlineExceeded), retry},
		{"503", &api.StatusError{Status: 503}, retry},
		{"502", &api.StatusError{Status: 502}, retry},
		{"500 (a crash mid-request)", &api.StatusError{Status: 500}, retry},
		{"400: not placed", &api.StatusError{Status: 400}, refused},
		{"404: the job was deleted", &api.StatusError{Status: 404}, refused},
		{"invalid in-process", api.Invalid("job_info.tasks", "required"), refused},
		{"anything else is a definite answer", errors.New("image not found"), refused},
	}
	for _, tt := range tests {
		if got := judgeDeploy(tt.err); got != tt.want {
			t.Errorf("%s: judgeDeploy = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestJudgeRedeploy(t *testing.T) {
	placed := func(status api.State, tasks ...api.State) *api.Job {
		j := &api.Job{Name: "a", Status: status}
		for i, s := range tasks {
			j.Info.Tasks = append(j.Info.Tasks, &api.Task{ContainerName: fmt.Sprintf("a_t%d", i), Node: fmt.Sprintf("w%d", i+1), CpusetCpus: "0", Status: s})
		}
		return j
	}
	allUp := func(string) bool { return true }
	w2Down := func(n string) bool { return n != "w2" }
	tests := []struct {
		name string
		job  *api.Job
		up   func(string) bool
		want redeployAction
	}{
		{"deleted", nil, allUp, redeployDrop},
		{"cancelled meanwhile", placed(api.Cancelled, api.Cancelled), allUp, redeployDrop},
		{"deployed meanwhile (reply lost)", placed(api.Deployed, api.Deployed), allUp, redeployDone},
		{"delivered and running meanwhile", placed(api.Running, api.Running, api.Deployed), allUp, redeployDone},
		{"still placed, workers up", placed(api.Ready, api.Scheduled, api.Scheduled), allUp, redeploySend},
		{"one task delivered (running), the other not yet", placed(api.Running, api.Running, api.Scheduled), allUp, redeploySend},
		{"one worker down", placed(api.Ready, api.Scheduled, api.Scheduled), w2Down, redeployRequeue},
		{"a task unplaced", placed(api.Ready, api.Scheduled, api.Ready), allUp, redeployRequeue},
		{"the undelivered task's worker down, the other task running", placed(api.Running, api.Running, api.Scheduled), w2Down, redeployLost},
	}
	for _, tt := range tests {
		if got := judgeRedeploy(tt.job, tt.up); got != tt.want {
			t.Errorf("%s: judgeRedeploy = %v, want %v", tt.name, got, tt.want)
		}
	}
}

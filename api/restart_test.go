package api_test

import (
	"strings"
	"testing"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

func TestParseRestart(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr string
	}{
		{"", 1, ""}, // the default: on-failure, once
		{"on-failure", 1, ""},
		{"never", 0, ""},
		{"on-failure:0", 0, ""},
		{"on-failure:3", 3, ""},
		{"on-failure:100", 100, ""},
		{"on-failure:101", 0, "from 0 to 100"},
		{"on-failure:-1", 0, "from 0 to 100"},
		{"on-failure:x", 0, "from 0 to 100"},
		{"always", 0, "not a restart policy"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := api.ParseRestart(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRestart(%q) = %d, %v; want an error holding %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRestart(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestValidateRestart(t *testing.T) {
	j := apitest.Job("job1", 1, 1, "sleep 1")
	j.Restart = "sometimes"
	err := j.Validate(api.DefaultLimits())
	var fe *api.FieldError
	if !asFieldError(err, &fe) || fe.Field != "restart" {
		t.Fatalf("Validate with restart %q = %v; want a FieldError on restart", j.Restart, err)
	}
	j.Restart, j.Restarts = "on-failure:2", 5
	if err := j.Validate(api.DefaultLimits()); err != nil || j.Restarts != 0 {
		t.Fatalf("Validate = %v, restarts %d; want nil and restarts reset to 0 (a client does not choose it)", err, j.Restarts)
	}
}

func asFieldError(err error, fe **api.FieldError) bool {
	f, ok := err.(*api.FieldError)
	*fe = f
	return ok
}

// failed returns job1 with two tasks placed on w1 and w2, failed with the
// given task errors ("" = cancelled as the rest of a failed gang).
func failed(policy string, restarts int, errs ...string) *api.Job {
	j := apitest.Job("job1", len(errs), 1, "sleep 1")
	j.Restart, j.Restarts, j.Strategy = policy, restarts, "best-fit"
	for i, t := range j.Info.Tasks {
		t.Node, t.CpusetCpus = []string{"w1", "w2"}[i%2], "0"
		if errs[i] == "" {
			j.Info.Tasks[i].Status = api.Cancelled
			continue
		}
		t.Status, t.Error = api.Failed, errs[i]
	}
	j.Refresh(10)
	return j
}

func TestCanRestartAndRequeue(t *testing.T) {
	lost := api.WorkerLost + ": w1 silent for 3s"
	tests := []struct {
		name string
		job  *api.Job
		want bool
	}{
		{"lost, default policy, first time", failed("", 0, lost, ""), true},
		{"lost, default policy, already restarted once", failed("", 1, lost, ""), false},
		{"lost, on-failure:3 after two restarts", failed("on-failure:3", 2, lost, ""), true},
		{"lost, never", failed("never", 0, lost, ""), false},
		{"a task's own failure is final", failed("", 0, "exited with code 1"), false},
		{"lost and an own failure: final", failed("", 0, lost, "exited with code 1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.job.Status != api.Failed {
				t.Fatalf("setup: job is %v, want Failed", tt.job.Status)
			}
			if got := tt.job.CanRestart(); got != tt.want {
				t.Fatalf("CanRestart = %v, want %v", got, tt.want)
			}
			if !tt.want {
				return
			}
			before := tt.job.Restarts
			tt.job.Requeue()
			j := tt.job
			if j.Status != api.Ready || j.Restarts != before+1 || j.Error != "" || j.EndTime != 0 || !strings.Contains(j.WaitingReason, lost) {
				t.Errorf("after Requeue: %v restarts %d error %q end %v reason %q", j.Status, j.Restarts, j.Error, j.EndTime, j.WaitingReason)
			}
			for _, tk := range j.Info.Tasks {
				if tk.Status != api.Ready || tk.Node != "" || tk.CpusetCpus != "" || tk.Error != "" {
					t.Errorf("task %s after Requeue: %v on %q/%q error %q; want Ready, unplaced", tk.ContainerName, tk.Status, tk.Node, tk.CpusetCpus, tk.Error)
				}
			}
		})
	}
}

func TestApplyStatusIgnoresEarlierAttemptsAndOtherNodes(t *testing.T) {
	j := apitest.Job("job1", 1, 1, "sleep 1")
	tk := j.Info.Tasks[0]
	tk.Node, tk.Status, j.Restarts = "w2", api.Deployed, 1
	steps := []struct {
		name    string
		st      api.TaskStatus
		changed bool
	}{
		// The first attempt's copy on w1 ends: stale twice over.
		{"earlier attempt", api.TaskStatus{Node: "w2", Task: tk.ContainerName, State: api.Down, Time: 5, Attempt: 0}, false},
		{"another node", api.TaskStatus{Node: "w1", Task: tk.ContainerName, State: api.Running, Time: 5, Attempt: 1}, false},
		{"this attempt on its node", api.TaskStatus{Node: "w2", Task: tk.ContainerName, State: api.Running, Time: 6, Attempt: 1}, true},
	}
	for _, s := range steps {
		got, err := j.ApplyStatus(s.st)
		if err != nil || got != s.changed {
			t.Fatalf("%s: ApplyStatus = %v, %v; want %v", s.name, got, err, s.changed)
		}
	}
	if tk.Status != api.Running {
		t.Fatalf("task is %v, want Running", tk.Status)
	}
}

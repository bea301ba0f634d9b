package frontend_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/frontend"
)

// TestLogsOutOfReach: a task's container can be out of its worker's reach
// while the record says Deployed (not created yet) or just after it ended
// (its end not recorded yet). Such a task's output is what its record holds
// by the time of the answer; a running task's failure is still an error.
func TestLogsOutOfReach(t *testing.T) {
	gone := errors.New("engine: no such container")
	tests := []struct {
		name string
		st   api.State
		// endedMeanwhile: the task's end is recorded while its worker is asked.
		endedMeanwhile bool
		status         int
		want           []string
	}{
		{name: "delivered, not created yet: nothing printed yet", st: api.Deployed, status: 200, want: []string{}},
		{name: "ended meanwhile: the record's last lines", st: api.Running, endedMeanwhile: true, status: 200, want: []string{"bye"}},
		{name: "running and out of reach: an error", st: api.Running, status: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFE(t, feOption{})
			j := jobWith("lj", tt.st, epoch, "", "w1")
			if err := e.st.CreateJob(context.Background(), j); err != nil {
				t.Fatal(err)
			}
			e.cluster.logs = func(job, task string, _ int) ([]string, error) {
				if tt.endedMeanwhile {
					if _, err := e.st.UpdateJob(context.Background(), job, func(j *api.Job) error {
						t := j.Info.Tasks.Get(task)
						t.Status, t.Logs = api.Down, []string{"bye"}
						return nil
					}); err != nil {
						return nil, err
					}
				}
				return nil, gone
			}
			w := e.do(t, "GET", "/api/v1/jobs/lj/tasks/lj_task1/logs", "")
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.status == 200 {
				if got := decodeBody[frontend.Logs](t, w); !slices.Equal(got.Lines, tt.want) {
					t.Errorf("lines %q, want %q", got.Lines, tt.want)
				}
			}
		})
	}
}

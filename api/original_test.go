package api_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rswarm/rswarm/api"
)

// TestOriginalJobFiles: the original's job files are taken as they are:
// the Weave driver becomes an attachable overlay, and the stress client's
// per-task NFS directories become named volumes of the job, each with a
// note; a directory shared between tasks (which needs a network
// filesystem) is refused, saying why.
func TestOriginalJobFiles(t *testing.T) {
	nfs := func(task string) map[string]api.Volume {
		return map[string]api.Volume{"/nfs/RESTfulSwarm/job1/" + task: {Bind: "/home/mnt/", Mode: "rw"}}
	}
	tests := []struct {
		name      string
		driver    string
		vols      func(task string) map[string]api.Volume
		wantVols  map[string]string // task -> its volume's name
		wantNotes int
		field     string // of the refusal
		reason    string
	}{
		{name: "weave runs as an overlay", driver: "weaveworks/net-plugin:latest_release", wantNotes: 1},
		{name: "per-task NFS directories are the tasks' own volumes", vols: nfs,
			wantVols:  map[string]string{"job1_task1": "rsnfs_job1_task1", "job1_task2": "rsnfs_job1_task2"},
			wantNotes: 2},
		{name: "the manager-side path too",
			vols: func(task string) map[string]api.Volume {
				return map[string]api.Volume{"/var/nfs/RESTfulSwarm/job1/" + task: {Bind: "/data"}}
			},
			wantVols: map[string]string{"job1_task1": "rsnfs_job1_task1", "job1_task2": "rsnfs_job1_task2"}, wantNotes: 2},
		{name: "a directory shared by two tasks needs a network filesystem",
			vols: func(string) map[string]api.Volume {
				return map[string]api.Volume{"/nfs/RESTfulSwarm/job1": {Bind: "/shared"}}
			},
			field: "job_info.tasks.job1_task2.volumes./nfs/RESTfulSwarm/job1", reason: "needs a network filesystem"},
		{name: "other host paths are still refused",
			vols:  func(string) map[string]api.Volume { return map[string]api.Volume{"/etc": {Bind: "/x"}} },
			field: "job_info.tasks.job1_task1.volumes./etc", reason: "host-path volumes are refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := &api.Job{Name: "job1"}
			j.Info.Network = api.Network{Name: "kangNetwork", Driver: tc.driver}
			for _, n := range []string{"task1", "task2"} {
				tk := &api.Task{ContainerName: "job1_" + n, Image: "rswarm/busybox:latest", Command: "sleep 5", ReqCores: 1,
					MemLimit: "10m", Volumes: map[string]api.Volume{}, Environment: map[string]string{}}
				if tc.vols != nil {
					tk.Volumes = tc.vols(n)
				}
				j.Info.Tasks = append(j.Info.Tasks, tk)
			}
			err := j.Validate(api.DefaultLimits())
			if tc.field != "" {
				var fe *api.FieldError
				if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
					t.Fatalf("got %v, want a refusal of %s saying %q", err, tc.field, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The original's files name Weave (an overlay here) or no driver (auto).
			if d := j.Info.Network.Driver; (d != "overlay" && d != "auto") || len(j.Notes) != tc.wantNotes {
				t.Errorf("driver %q, notes %q", j.Info.Network.Driver, j.Notes)
			}
			for task, vol := range tc.wantVols {
				v, ok := j.Info.Tasks.Get(task).Volumes[vol]
				if !ok || len(j.Info.Tasks.Get(task).Volumes) != 1 || !strings.HasPrefix(v.Bind, "/") {
					t.Errorf("%s volumes %v, want %s", task, j.Info.Tasks.Get(task).Volumes, vol)
				}
			}
		})
	}
}

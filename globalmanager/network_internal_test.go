package globalmanager

import (
	"errors"
	"testing"

	"github.com/rswarm/rswarm/api"
)

// TestMovableNetwork: a task of a job on a local network stays with its
// running siblings; a one-task job, or one on the overlay, moves.
func TestMovableNetwork(t *testing.T) {
	job := func(driver string, tasks ...*api.Task) *api.Job {
		j := &api.Job{Name: "j"}
		j.Info.Network = api.Network{Name: "rsnet_j", Driver: driver}
		j.Info.Tasks = tasks
		return j
	}
	task := func(name, node string, st api.State) *api.Task {
		return &api.Task{ContainerName: name, Node: node, Status: st}
	}
	for _, tc := range []struct {
		name    string
		j       *api.Job
		refused bool
	}{
		{"one-task auto job on one worker moves", job("auto", task("j_a", "w1", api.Running)), false},
		{"auto job with a running sibling on the same worker stays", job("auto", task("j_a", "w1", api.Running), task("j_b", "w1", api.Running)), true},
		{"auto job whose sibling has ended moves", job("auto", task("j_a", "w1", api.Running), task("j_b", "w1", api.Down)), false},
		{"auto job spread over two workers is on the overlay: moves", job("auto", task("j_a", "w1", api.Running), task("j_b", "w2", api.Running)), false},
		{"overlay job with a running sibling moves", job("overlay", task("j_a", "w1", api.Running), task("j_b", "w1", api.Running)), false},
		{"bridge job with a running sibling stays", job("bridge", task("j_a", "w1", api.Running), task("j_b", "w1", api.Running)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := movableNetwork(tc.j, tc.j.Info.Tasks[0])
			var fe *api.FieldError
			if got := errors.As(err, &fe) && fe.Field == "container" && errors.Is(err, api.ErrConflict); got != tc.refused {
				t.Fatalf("movableNetwork = %v; refused %v, want %v", err, got, tc.refused)
			}
		})
	}
}

// TestRunTaskCarriesTheNetwork: a moved task is started on its job's
// network as deployed, decided from where the tasks were.
func TestRunTaskCarriesTheNetwork(t *testing.T) {
	j := &api.Job{Name: "j"}
	j.Info.Network = api.Network{Name: "rsnet_j", Driver: "auto", Subnet: "10.9.0.0/24"}
	j.Info.Tasks = api.Tasks{{ContainerName: "j_a", Node: "w1", Status: api.Running}}
	rt := (&Manager{}).runTask(j, api.Task{ContainerName: "j_a", Node: "w2"})
	if rt.Network != "rsnet_j" || rt.NetworkDriver != api.DriverBridge || rt.NetworkSubnet != "10.9.0.0/24" || rt.Task.Node != "w2" {
		t.Fatalf("runTask = %+v, want the local network rsnet_j on 10.9.0.0/24 for the task on w2", rt)
	}
	j.Info.Tasks = append(j.Info.Tasks, &api.Task{ContainerName: "j_b", Node: "w3", Status: api.Running})
	if rt := (&Manager{}).runTask(j, *j.Info.Tasks[0]); rt.NetworkDriver != api.DriverOverlay {
		t.Fatalf("spread job: driver %q, want overlay", rt.NetworkDriver)
	}
}

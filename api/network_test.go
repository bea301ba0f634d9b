package api_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rswarm/rswarm/api"
)

// TestNetworkDriverFor is the decision a placed job's network follows: the
// driver asked for and the workers its tasks were placed on.
func TestNetworkDriverFor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		asked string
		nodes []string
		want  string // "" = refused
	}{
		// One worker: no overlay needed.
		{name: "auto, one task", asked: "auto", nodes: []string{"w1"}, want: "bridge"},
		{name: "auto, three tasks on one worker", asked: "auto", nodes: []string{"w1", "w1", "w1"}, want: "bridge"},
		{name: "no driver recorded is auto", asked: "", nodes: []string{"w1"}, want: "bridge"},
		// Two workers: tasks must reach each other across hosts.
		{name: "auto, spread over two workers", asked: "auto", nodes: []string{"w1", "w2", "w1"}, want: "overlay"},
		// Asked for explicitly.
		{name: "overlay on one worker stays overlay", asked: "overlay", nodes: []string{"w1"}, want: "overlay"},
		{name: "overlay spread", asked: "overlay", nodes: []string{"w1", "w2"}, want: "overlay"},
		{name: "bridge on one worker", asked: "bridge", nodes: []string{"w1", "w1"}, want: "bridge"},
		{name: "bridge spread is refused", asked: "bridge", nodes: []string{"w2", "w1"}},
		{name: "unknown driver is refused", asked: "macvlan", nodes: []string{"w1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := api.NetworkDriverFor(tc.asked, tc.nodes)
			if tc.want == "" {
				var fe *api.FieldError
				if !errors.As(err, &fe) || fe.Field != "job_info.network.driver" {
					t.Fatalf("NetworkDriverFor(%q, %v) = %q, %v; want a refusal of job_info.network.driver", tc.asked, tc.nodes, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NetworkDriverFor(%q, %v) = %q, %v; want %q", tc.asked, tc.nodes, got, err, tc.want)
			}
		})
	}
}

// TestValidateNetworkDriver: what a submitted job may name, and what it is mapped to.
func TestValidateNetworkDriver(t *testing.T) {
	for _, tc := range []struct{ asked, want string }{
		{"", "auto"}, {"auto", "auto"}, {"overlay", "overlay"}, {"bridge", "bridge"},
		{"weave", "overlay"}, {"weaveworks/net-plugin:2.8.1", "overlay"}, {"host", ""}, {"macvlan", ""},
	} {
		j := &api.Job{Name: "j"}
		j.Info.Network.Driver = tc.asked
		j.Info.Tasks = api.Tasks{{ContainerName: "j_t", Image: "busybox", ReqCores: 1}}
		err := j.Validate(api.DefaultLimits())
		if tc.want == "" {
			var fe *api.FieldError
			if !errors.As(err, &fe) || fe.Field != "job_info.network.driver" || !strings.Contains(fe.Reason, tc.asked) {
				t.Errorf("driver %q: %v, want a refusal of job_info.network.driver naming it", tc.asked, err)
			}
			continue
		}
		if err != nil || j.Info.Network.Driver != tc.want {
			t.Errorf("driver %q: %v, driver %q; want %q", tc.asked, err, j.Info.Network.Driver, tc.want)
		}
	}
}

package engine

import (
	"errors"
	"testing"

	"github.com/rswarm/rswarm/api"
)

func TestAttachLag(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"the swarm does not know the new network yet", errors.New("Error response from daemon: Could not attach to network rsnet_j1: rpc error: code = NotFound desc = network rsnet_j1 not found"), true},
		{"an unknown container", errors.New("Error response from daemon: No such container: abc"), false},
		{"another attach failure", errors.New("Error response from daemon: Could not attach to network rsnet_j1: context deadline exceeded"), false},
		{"cpuset out of range", errors.New("Error response from daemon: Requested CPUs are not available"), false},
	} {
		if got := attachLag(tc.err); got != tc.want {
			t.Errorf("%s: attachLag = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMineScopedToCluster: one engine can serve the workers of several
// RSwarm clusters; a runtime told its cluster watches, reports and removes
// only that cluster's containers (a second instance's worker on the same
// engine once removed the first's ended containers before it read them).
func TestMineScopedToCluster(t *testing.T) {
	lab := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name          string
		node, cluster string
		labels        map[string]string
		want          bool
	}{
		{"not RSwarm's", "n1", "c1", lab("rswarm.task", "j_t1"), false},
		{"ours", "n1", "c1", lab(api.LabelManaged, "1", api.LabelNode, "n1", api.LabelCluster, "c1"), true},
		{"another cluster on this engine", "n1", "c1", lab(api.LabelManaged, "1", api.LabelNode, "n1", api.LabelCluster, "c2"), false},
		{"no cluster label, runtime scoped", "n1", "c1", lab(api.LabelManaged, "1", api.LabelNode, "n1"), false},
		{"not scoped yet: any cluster on this node", "n1", "", lab(api.LabelManaged, "1", api.LabelNode, "n1", api.LabelCluster, "c2"), true},
		{"another node", "n1", "c1", lab(api.LabelManaged, "1", api.LabelNode, "n2", api.LabelCluster, "c1"), false},
	} {
		r := &Runtime{node: tc.node}
		r.SetCluster(tc.cluster)
		if got := r.mine(tc.labels); got != tc.want {
			t.Errorf("%s: mine = %v, want %v", tc.name, got, tc.want)
		}
	}
}

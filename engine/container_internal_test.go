package engine

import (
	"errors"
	"testing"
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

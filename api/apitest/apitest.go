// Package apitest holds helpers shared by the tests of several packages:
// the rule for real parts that may be missing, polling with a deadline, and
// job fixtures.
package apitest

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Required reports whether RSWARM_REQUIRE asks for the named real part
// ("docker", "mongo", "zmq", ...) or for all of them ("all").
func Required(part string) bool {
	for _, p := range strings.Split(os.Getenv("RSWARM_REQUIRE"), ",") {
		if p = strings.TrimSpace(p); p == "all" || p == part {
			return true
		}
	}
	return false
}

// Need skips the test when a real part is missing (err != nil), naming the
// part and the reason; under RSWARM_REQUIRE=all (as in CI) it fails instead.
func Need(t testing.TB, part string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if Required(part) {
		t.Fatalf("%s is required (RSWARM_REQUIRE=%s) but not available: %v", part, os.Getenv("RSWARM_REQUIRE"), err)
	}
	t.Skipf("%s not available: %v (set RSWARM_REQUIRE=all to fail instead)", part, err)
}

// Eventually polls cond every few milliseconds until it returns nil or the
// timeout passes, then fails the test with cond's last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(wait)
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// Job returns a valid job named name with n tasks of cores cores each,
// running command in rswarm/busybox:latest with a 16m memory limit.
func Job(name string, n, cores int, command string) *api.Job {
	j := &api.Job{Name: name}
	j.Info.Network = api.Network{Name: "rsnet_" + name, Driver: "overlay"}
	for i := 1; i <= n; i++ {
		j.Info.Tasks = append(j.Info.Tasks, &api.Task{
			ContainerName: fmt.Sprintf("%s_task%d", name, i),
			Image:         "rswarm/busybox:latest",
			Detach:        true,
			Command:       command,
			ReqCores:      cores,
			MemLimit:      "16m",
			Environment:   map[string]string{},
		})
	}
	return j
}

// Recorder is an ordered log of the calls test fakes receive, safe for
// concurrent use: fakes Add a line per call, tests compare All.
type Recorder struct {
	mu    sync.Mutex
	calls []string
}

// Add appends one call, formatted as fmt.Sprintf does.
func (r *Recorder) Add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

// All returns the calls so far, in order.
func (r *Recorder) All() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Reset forgets the calls so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

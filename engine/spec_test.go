package engine_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rswarm/rswarm/engine"
)

func TestInfo(t *testing.T) {
	c := newClient(t)
	in, err := c.Info(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	if in.ID == "" || in.Hostname == "" || in.ServerVersion == "" || in.APIVersion == "" || in.NCPU < 1 || in.MemTotal <= 0 {
		t.Errorf("info = %+v, want identity, versions, cores and memory", in)
	}
	t.Logf("engine %s, API %s, experimental %t, %d cores, swarm %q", in.ServerVersion, in.APIVersion, in.Experimental, in.NCPU, in.Swarm.LocalNodeState)
}

// TestRunSpec checks that each part of a RunSpec reaches the container, by
// what the container prints.
func TestRunSpec(t *testing.T) {
	c := newClient(t)
	labels := testRun(t, c)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		spec engine.RunSpec
		want []string
	}{
		{"env", engine.RunSpec{
			Cmd: []string{"sh", "-c", "echo $A-$B"},
			Env: map[string]string{"A": "1", "B": "two words"},
		}, []string{"1-two words"}},
		{"cpuset", engine.RunSpec{
			Cmd:        []string{"sh", "-c", "grep Cpus_allowed_list /proc/self/status"},
			CpusetCpus: "0",
		}, []string{"Cpus_allowed_list:\t0"}},
		{"read-only bind mount", engine.RunSpec{
			Cmd:    []string{"sh", "-c", "cat /data/x; touch /data/y 2>/dev/null || echo read-only"},
			Mounts: []engine.Mount{{Source: dir, Target: "/data", ReadOnly: true}},
		}, []string{"from the host", "read-only"}},
		{"published ports", engine.RunSpec{
			Cmd:   []string{"echo", "ok"},
			Ports: map[string]int{"3000/tcp": 0, "3001": 0},
		}, []string{"ok"}},
		{"no network", engine.RunSpec{
			Cmd:     []string{"sh", "-c", "ls /sys/class/net"},
			Network: "none",
		}, []string{"lo"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, id := run(t, c, labels, tc.spec)
			ct := waitExited(t, c, id)
			got, err := c.Logs(ctxFor(t, 30*time.Second), id, 0)
			if err != nil {
				t.Fatalf("logs: %v", err)
			}
			if ct.ExitCode != 0 || !slices.Equal(got, tc.want) {
				t.Errorf("exit %d, output %q; want 0, %q", ct.ExitCode, got, tc.want)
			}
		})
	}

	t.Run("bad port", func(t *testing.T) {
		_, err := c.Create(ctxFor(t, 30*time.Second), engine.RunSpec{Name: unique(t), Image: testImage, Labels: labels, Ports: map[string]int{"http/tcp": 0}})
		if err == nil {
			t.Fatal("create with port \"http/tcp\" succeeded")
		}
	})
}

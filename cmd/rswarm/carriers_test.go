package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/bus"
)

// openFiles counts the descriptors process pid holds.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("counting open files: %v", err)
	}
	return len(fds)
}

// TestSimWorkersShareBusConnections runs 300 simulated workers in `rswarm
// up` and 100 more in a `rswarm worker --workers 100` beside it: every
// worker registers, heartbeats and runs tasks, while neither process
// holds a descriptor per worker (with a bus connection each per server,
// 400 workers held 3,200). An authorised key that tries to speak for one
// of those workers over a carrier of its own is refused and logged.
func TestSimWorkersShareBusConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (skipped by -short)")
	}
	const inUp, inWorker, cores = 300, 100, 4
	sys := newSystem(t)
	up := startProc(t, "rswarm up --runtime sim", append([]string{"up", "--runtime", "sim", "--workers", fmt.Sprint(inUp), "--cores", fmt.Sprint(cores), "--sim-id", "up"}, sys.flags()...)...)
	c := sys.client()
	waitWorkers(t, c, inUp)
	wk := startProc(t, "rswarm worker --workers", append([]string{"worker", "--runtime", "sim", "--workers", fmt.Sprint(inWorker), "--cores", fmt.Sprint(cores), "--sim-id", "ext"}, sys.flags()...)...)
	ws := waitWorkers(t, c, inUp+inWorker)

	// Fewer descriptors than workers, in each process: one per worker
	// would already be too many.
	if n := openFiles(t, up.cmd.Process.Pid); n >= inUp+inWorker {
		t.Errorf("rswarm up holds %d open files with %d workers (%d its own), want fewer than %d", n, inUp+inWorker, inUp, inUp+inWorker)
	} else {
		t.Logf("rswarm up: %d open files for %d workers (%d in-process)", n, inUp+inWorker, inUp)
	}
	if n := openFiles(t, wk.cmd.Process.Pid); n >= inWorker {
		t.Errorf("rswarm worker holds %d open files for %d workers, want fewer than %d", n, inWorker, inWorker)
	}

	// Every worker heartbeats over its carrier: each one's last heartbeat
	// moves past the one seen at registration.
	first := map[string]float64{}
	for _, w := range ws {
		first[w.ID] = w.LastHeartbeat
	}
	apitest.Eventually(t, 60*time.Second, func() error {
		ws, err := c.Workers(context.Background())
		if err != nil {
			return err
		}
		stale := []string{}
		for _, w := range ws {
			if w.Status != api.WorkerReady || w.LastHeartbeat <= first[w.ID] {
				stale = append(stale, w.ID+" ("+string(w.Status)+")")
			}
		}
		if len(ws) != inUp+inWorker || len(stale) > 0 {
			return fmt.Errorf("%d workers, %d without a new heartbeat: %q", len(ws), len(stale), stale[:min(len(stale), 5)])
		}
		return nil
	})

	// Commands reach the right workers through the carriers: one task per
	// core of the cluster, all running at once, so every worker must run
	// four, as its own heartbeat reports.
	var jobs []*api.Job
	for i := range (inUp + inWorker) * cores / 2 {
		jobs = append(jobs, apitest.Job(fmt.Sprintf("car%04d", i), 2, 1, "sleep 3600"))
	}
	if err := c.Do(context.Background(), "POST", "/api/v1/jobs", jobs, nil); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, 2*time.Minute, func() error {
		ws, err := c.Workers(context.Background())
		if err != nil {
			return err
		}
		idle := []string{}
		for _, w := range ws {
			if w.CoresBusy != cores || len(w.BusyCores()) != cores {
				idle = append(idle, fmt.Sprintf("%s (%d busy, %d allocated)", w.ID, w.CoresBusy, len(w.BusyCores())))
			}
		}
		if len(idle) > 0 {
			return fmt.Errorf("%d workers not running %d tasks: %q", len(idle), cores, idle[:min(len(idle), 5)])
		}
		return nil
	})

	// A key the control plane accepts, carrying an identity owned by the
	// workers' key: its registration is dropped, and logged.
	attacker, err := bus.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(sys.dataDir, "bus", "authorized")
	if err := os.MkdirAll(authorized, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(authorized, "attacker.pub"), []byte(attacker.Public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gmPub, err := os.ReadFile(filepath.Join(sys.dataDir, "bus", "globalmanager.pub"))
	if err != nil {
		t.Fatal(err)
	}
	car, err := bus.DialCarrier(sys.gmBus, "attacker-carrier", nil, bus.WithCurveClient(strings.TrimSpace(string(gmPub)), attacker))
	if err != nil {
		t.Fatal(err)
	}
	defer car.Close()
	victim := ws[0].ID
	as, err := car.Attach(victim, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := attackCtx()
	refused(t, "register for "+victim+" over a carrier with another key", as.Request(ctx, api.KindRegister, api.Register{NodeID: victim, Runtime: "sim", Cores: 64, MemTotal: 1 << 40}, nil))
	cancel()
	after, err := c.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range after {
		if w.ID == victim && (w.Cores != cores || w.Status != api.WorkerReady) {
			t.Errorf("worker %s has %d cores and is %s after the attack, want %d and ready", victim, w.Cores, w.Status, cores)
		}
	}
	apitest.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(up.output(), "refusing a peer that speaks for another identity") || !strings.Contains(up.output(), attacker.Public) {
			return errors.New("rswarm up has not logged the refused carrier")
		}
		return nil
	})
}

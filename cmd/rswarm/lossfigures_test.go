package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// TestWorkerLossFigures measures, over ten trials, how long the control
// plane takes to declare a killed worker down (detection) and to have its
// task running again on another worker (recovery), from the kill -9, with
// every role in its own process and the default heartbeat (1 s) and grace
// (3 s). It prints the figures (the README's); it asserts only that each
// trial recovers. It runs when RSWARM_FIGURES is set:
//
//	RSWARM_FIGURES=1 go test -run TestWorkerLossFigures -v ./cmd/rswarm
func TestWorkerLossFigures(t *testing.T) {
	if os.Getenv("RSWARM_FIGURES") == "" {
		t.Skip("prints figures: set RSWARM_FIGURES=1 to run")
	}
	sys := newSystem(t)
	logs := t.TempDir()
	common := append(sys.flags(), "--log-format", "json")
	role := func(name string, args ...string) *chaosProc {
		return &chaosProc{t: t, name: name, args: append(append([]string{}, args...), common...), log: filepath.Join(logs, name+".log")}
	}
	ps := []*chaosProc{role("jobmanager", "jobmanager"), role("discovery", "discovery"), role("globalmanager", "globalmanager", "--no-swarm"), role("frontend", "frontend")}
	workers := map[string]*chaosProc{}
	for i := range 3 {
		id := fmt.Sprintf("loss%d", i+1)
		workers[id] = role(id, "worker", "--runtime", "sim", "--sim-id", id, "--cores", "2")
		ps = append(ps, workers[id])
	}
	for _, p := range ps {
		p.start()
		t.Cleanup(p.stop)
	}
	c := sys.client()
	ctx := context.Background()
	waitWorkers(t, c, 3)
	// Each worker heartbeating, so that a trial measures a worker that was watched.
	apitest.Eventually(t, time.Minute, func() error {
		ws, err := c.Workers(ctx)
		if err != nil {
			return err
		}
		for _, x := range ws {
			if x.CPUs == nil || x.LastHeartbeat == x.JoinTime {
				return fmt.Errorf("worker %s: no heartbeat recorded yet", x.ID)
			}
		}
		return nil
	})
	const trials = 10
	var detect, recover []time.Duration
	for i := range trials {
		j := apitest.Job("loss"+strconv.Itoa(i), 1, 2, "sleep 600")
		if err := c.SubmitJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		first := waitJob(t, c, j.Name, time.Minute, running)
		node := first.Info.Tasks[0].Node
		w := workers[node]
		killed := time.Now()
		w.kill9()
		var down, again time.Time
		apitest.Eventually(t, time.Minute, func() error {
			now := time.Now()
			if down.IsZero() {
				ws, err := c.Workers(ctx)
				if err != nil {
					return err
				}
				for _, x := range ws {
					if x.ID == node && x.Status == api.WorkerDown {
						down = now
					}
				}
			}
			jj, err := c.Job(ctx, j.Name)
			if err != nil {
				return err
			}
			if tk := jj.Info.Tasks[0]; jj.Restarts == 1 && tk.Status == api.Running && tk.Node != node {
				again = now
			}
			if down.IsZero() || again.IsZero() {
				return fmt.Errorf("trial %d: worker %s down %v, task running elsewhere %v", i+1, node, !down.IsZero(), !again.IsZero())
			}
			return nil
		})
		detect = append(detect, down.Sub(killed))
		recover = append(recover, again.Sub(killed))
		t.Logf("trial %d: %s killed; down after %v, its task running on another worker after %v", i+1, node,
			down.Sub(killed).Round(time.Millisecond), again.Sub(killed).Round(time.Millisecond))
		restarted := float64(time.Now().UnixNano()) / 1e9
		w.start()
		if err := c.CancelJob(ctx, j.Name); err != nil {
			t.Fatal(err)
		}
		// The restarted worker is back once discovery has its heartbeat.
		apitest.Eventually(t, time.Minute, func() error {
			ws, err := c.Workers(ctx)
			if err != nil {
				return err
			}
			for _, x := range ws {
				if x.ID == node && (x.Status != api.WorkerReady || x.LastHeartbeat < restarted) {
					return fmt.Errorf("worker %s is %s, last heartbeat %.3f (restarted at %.3f)", node, x.Status, x.LastHeartbeat, restarted)
				}
			}
			return nil
		})
		allFree(t, c)
	}
	slices.Sort(detect)
	slices.Sort(recover)
	t.Logf("worker loss over %d trials (heartbeat 1 s, grace 3 s): detection p50 %v (min %v, max %v); task running elsewhere p50 %v (min %v, max %v)",
		trials, detect[trials/2].Round(time.Millisecond), detect[0].Round(time.Millisecond), detect[trials-1].Round(time.Millisecond),
		recover[trials/2].Round(time.Millisecond), recover[0].Round(time.Millisecond), recover[trials-1].Round(time.Millisecond))
}

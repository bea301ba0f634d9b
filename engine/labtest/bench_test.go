package labtest_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine/labtest"
)

// The lab's figures (README, "Several hosts"), as benchmarks reporting
// medians: go test -run XXX -bench Lab -benchtime 20x ./engine/labtest/

// p50 is the median of xs, in seconds.
func p50(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// BenchmarkLabColdMigration moves one small task between two hosts, back
// and forth: the time the task does not run, and the whole operation as
// the client sees it.
func BenchmarkLabColdMigration(b *testing.B) {
	c := startCluster(b, 2)
	ctx := context.Background()
	name := fmt.Sprintf("labbench%d", time.Now().UnixNano())
	j := apitest.Job(name, 1, 1, stateful)
	if err := c.fe.SubmitJob(ctx, j); err != nil {
		b.Fatal(err)
	}
	task := j.Info.Tasks[0].ContainerName
	got := c.waitTasks(b, name, 60*time.Second, api.Running)
	at := c.hostOf(got.Info.Tasks[0].Node)
	var down, total []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		to := c.other(at)
		start := time.Now()
		res, err := c.migrate(ctx, task, to.Name, "cold")
		if err != nil {
			b.Fatal(err)
		}
		total = append(total, time.Since(start).Seconds())
		down = append(down, res.DowntimeSeconds)
		at = to
	}
	b.StopTimer()
	b.ReportMetric(p50(down), "downtime-p50-s")
	b.ReportMetric(p50(total), "total-p50-s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLabLiveMigration moves a counting task live between two hosts,
// back and forth (it needs a CRIU that works: RSWARM_CRIU_DIR), and
// reports the downtime's parts: the checkpoint, the transfer, the restore.
func BenchmarkLabLiveMigration(b *testing.B) {
	c := startCluster(b, 2)
	ctx := context.Background()
	name := fmt.Sprintf("lablivebench%d", time.Now().UnixNano())
	j := apitest.Job(name, 1, 1, `sh -c 'i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.2; done'`)
	if err := c.fe.SubmitJob(ctx, j); err != nil {
		b.Fatal(err)
	}
	task := j.Info.Tasks[0].ContainerName
	got := c.waitTasks(b, name, 60*time.Second, api.Running)
	at := c.hostOf(got.Info.Tasks[0].Node)
	if ws, err := c.fe.Workers(ctx); err != nil {
		b.Fatal(err)
	} else if w := find(ws, at.Name); !w.Checkpoint {
		b.Skipf("live migration not possible here: CRIU on %s: %s", w.Host, w.CheckpointError)
	}
	var down, ck, xfer, restore, total []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		to := c.other(at)
		start := time.Now()
		res, err := c.migrate(ctx, task, to.Name, "live")
		if err != nil {
			b.Fatal(err)
		}
		total = append(total, time.Since(start).Seconds())
		down = append(down, res.DowntimeSeconds)
		ck, xfer, restore = append(ck, res.FreezeSeconds), append(xfer, res.TransferSeconds), append(restore, res.StartSeconds)
		at = to
	}
	b.StopTimer()
	b.ReportMetric(p50(down), "downtime-p50-s")
	b.ReportMetric(p50(ck), "checkpoint-p50-s")
	b.ReportMetric(p50(xfer), "transfer-p50-s")
	b.ReportMetric(p50(restore), "restore-p50-s")
	b.ReportMetric(p50(total), "total-p50-s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLabDockerRun is the comparison: a plain `docker run --rm` of the
// same image on a lab engine (create, start, exit, remove).
func BenchmarkLabDockerRun(b *testing.B) {
	lab := labtest.Get(b, 3)
	h := lab.Host(2)
	var runs []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if out, err := exec.Command("docker", "-H", h.DockerHost, "run", "--rm", "rswarm/busybox:latest", "true").CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v: %s", err, out)
		}
		runs = append(runs, time.Since(start).Seconds())
	}
	b.StopTimer()
	b.ReportMetric(p50(runs), "run-p50-s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLabWorkerJoin starts `rswarm worker` on a host outside the
// swarm and times it until the worker is registered and ready (join token
// over the bus, swarm join, checkpoint probe, registration); the worker
// then leaves, for the next round.
func BenchmarkLabWorkerJoin(b *testing.B) {
	c := startClusterOn(b, labtest.Get(b, 3), 1)
	ctx := context.Background()
	cp, h := c.lab.Host(1), c.lab.Host(3)
	var joins []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		p := c.lab.Start(b, h, "worker on "+h.Name, workerArgs(b, c.cpDir, cp, h)...)
		var id string
		apitest.Eventually(b, 60*time.Second, func() error {
			ws, err := c.fe.Workers(ctx)
			if err != nil {
				return err
			}
			w := find(ws, h.Name)
			if w == nil || w.Status != api.WorkerReady {
				return fmt.Errorf("%s not ready", h.Name)
			}
			id = w.ID
			return nil
		})
		joins = append(joins, time.Since(start).Seconds())
		b.StopTimer()
		if err := c.gm.Do(ctx, "DELETE", "/api/v1/workers/"+id, nil, nil); err != nil {
			b.Fatal(err)
		}
		apitest.Eventually(b, 30*time.Second, func() error {
			info, err := h.Engine.Info(ctx)
			if err != nil || info.Swarm.LocalNodeState != "inactive" {
				return fmt.Errorf("%s still in the swarm: %v", h.Name, err)
			}
			return nil
		})
		if err := p.Stop(30 * time.Second); err != nil && !isExit(err) {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(p50(joins), "join-p50-s")
	b.ReportMetric(0, "ns/op")
}

func isExit(err error) bool {
	_, ok := err.(*exec.ExitError)
	return ok
}

// BenchmarkLabUpToCluster times `lab.sh up 3` on a fresh lab plus RSwarm
// on it (control plane on host 1, workers on 2 and 3) until both workers
// are ready: from nothing to a usable 3-host cluster.
func BenchmarkLabUpToCluster(b *testing.B) {
	var ups []float64
	for i := 0; i < b.N; i++ {
		start := time.Now()
		lab := labtest.Fresh(b, 3)
		startClusterOn(b, lab, 2)
		ups = append(ups, time.Since(start).Seconds())
	}
	b.ReportMetric(p50(ups), "up-p50-s")
	b.ReportMetric(0, "ns/op")
}

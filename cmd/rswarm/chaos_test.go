package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/store"
	"github.com/rswarm/rswarm/worker"
)

// TestChaos is issue 10's hostile tester as a test: every role as its own
// process on simulated workers, a steady load of sleep jobs, and each role
// killed (-9), paused (-STOP longer than the heartbeat grace, then -CONT)
// and restarted: the globalmanager in the middle of deployments (and the
// found sequence: paused, resumed, killed 30 ms later), a worker killed and
// restarted within the grace under the same id, a worker paused past the
// grace, discovery paused past the grace. At the end it checks, from the
// store and from the workers' own logs of what they ran:
//
//   - every accepted job is final, and none Failed (sleep tasks do not fail
//     on their own: a Failed job is one the control plane lost);
//   - with the cluster full of long jobs, each worker's busy cores (its
//     heartbeats) equal its allocation (the jobmanager's), and no core is
//     held by two live tasks;
//   - no task ran on two workers, or twice on one, at the same time.
//
// RSWARM_CHAOS_ROUNDS repeats the fault schedule (default 1, about two
// minutes in all); scripts/chaos.sh runs it longer.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test (skipped by -short)")
	}
	rounds := 1
	if v := os.Getenv("RSWARM_CHAOS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("RSWARM_CHAOS_ROUNDS=%q: want a positive number", v)
		}
		rounds = n
	}
	sys := newSystem(t)
	logs := t.TempDir()
	common := append(sys.flags(), "--log-format", "json")
	role := func(name string, args ...string) *chaosProc {
		return &chaosProc{t: t, name: name, args: append(append([]string{}, args...), common...), log: filepath.Join(logs, name+".log")}
	}
	const grace = 3 * time.Second // the default --heartbeat-grace
	jm := role("jobmanager", "jobmanager")
	dc := role("discovery", "discovery", "--reconcile-interval", "1s")
	gm := role("globalmanager", "globalmanager", "--no-swarm")
	fe := role("frontend", "frontend")
	const workers, cores = 3, 8
	var ws []*chaosProc
	for i := range workers {
		id := fmt.Sprintf("chaos%d", i+1)
		ws = append(ws, role(id, "worker", "--runtime", "sim", "--sim-id", id, "--cores", strconv.Itoa(cores), "--memory", "8g",
			"--log-level", "debug"))
	}
	all := append([]*chaosProc{jm, dc, gm, fe}, ws...)
	for _, p := range all {
		p.start()
		t.Cleanup(p.stop)
	}
	c := sys.client()
	waitWorkers(t, c, workers)

	// The load: about six jobs a second of one or two tasks of one or two
	// cores, sleeping one to three seconds (the cluster's 24 cores are
	// about full). Restarts are allowed often enough that a job lost with
	// two workers in turn is still not Failed.
	ld := &load{c: c}
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var lwg sync.WaitGroup
	lwg.Add(1)
	go func() { defer lwg.Done(); ld.run(ctx, 6) }()

	ch := &chaos{}
	pause := func(d time.Duration) { time.Sleep(d) } // the faults' pacing, not synchronisation
	for r := range rounds {
		t.Logf("chaos round %d of %d", r+1, rounds)
		pause(3 * time.Second)
		// The globalmanager killed in the middle of deployments, then the found sequence.
		ch.kill(gm, 500*time.Millisecond)
		pause(3 * time.Second)
		ch.stall(gm, 2*time.Second)
		time.Sleep(30 * time.Millisecond)
		ch.kill(gm, 0)
		pause(3 * time.Second)
		ch.kill(jm, 500*time.Millisecond)
		pause(3 * time.Second)
		ch.stall(jm, grace+time.Second)
		pause(2 * time.Second)
		// Discovery stalled past the grace: its workers' queued heartbeats show them alive.
		ch.stall(dc, grace+2*time.Second)
		pause(2 * time.Second)
		ch.kill(dc, 500*time.Millisecond)
		pause(3 * time.Second)
		ch.kill(fe, 500*time.Millisecond)
		pause(2 * time.Second)
		ch.stall(fe, grace+time.Second)
		pause(2 * time.Second)
		// A worker killed and back within the grace under the same id.
		ch.kill(ws[0], 500*time.Millisecond)
		pause(4 * time.Second)
		// A worker paused past the grace: declared lost, its jobs restarted elsewhere.
		ch.stall(ws[1], grace+2*time.Second)
		pause(3 * time.Second)
		ch.stall(gm, grace+time.Second)
		pause(2 * time.Second)
	}
	stopLoad()
	lwg.Wait()

	// Every accepted job ends, none Failed.
	accepted := ld.accepted()
	apitest.Eventually(t, 3*time.Minute, func() error {
		n := 0
		for _, j := range storedJobs(t, sys, "chaos") {
			if !j.Status.Final() {
				n++
			}
		}
		if n > 0 {
			return fmt.Errorf("%d of %d jobs not final yet", n, len(accepted))
		}
		return nil
	})
	jobs := map[string]*api.Job{}
	for _, j := range storedJobs(t, sys, "chaos") {
		jobs[j.Name] = j
	}
	lost, failed, restarted := 0, 0, 0
	for _, name := range accepted {
		j := jobs[name]
		switch {
		case j == nil || !j.Status.Final():
			lost++
			t.Errorf("accepted job %s: %v", name, j)
		case j.Status != api.Down:
			failed++
			t.Errorf("job %s is %s: %s", name, j.Status, j.Error)
		}
		if j != nil && j.Restarts > 0 {
			restarted++
		}
	}

	// The cluster filled with long jobs: each worker's heartbeats report
	// its allocation, and no core is held twice.
	var hold []string
	for i := range workers * cores / 2 {
		j := apitest.Job(fmt.Sprintf("chaoshold%d", i), 1, 2, "sleep 600")
		j.Session = "chaos-hold"
		if err := c.SubmitJob(context.Background(), j); err != nil {
			t.Fatalf("submitting %s: %v", j.Name, err)
		}
		hold = append(hold, j.Name)
	}
	apitest.Eventually(t, time.Minute, func() error {
		for _, name := range hold {
			j, err := c.Job(context.Background(), name)
			if err != nil {
				return err
			}
			if j.Status != api.Running {
				return fmt.Errorf("job %s is %s", name, j.Status)
			}
		}
		return nil
	})
	doubleBooked := 0
	apitest.Eventually(t, time.Minute, func() error {
		st, err := store.OpenSQLite(sys.dataDir)
		if err != nil {
			return err
		}
		defer st.Close()
		wl, err := st.ListWorkers(context.Background())
		if err != nil {
			return err
		}
		for _, w := range wl {
			if w.CoresBusy != len(w.BusyCores()) {
				return fmt.Errorf("worker %s: %d cores busy by its heartbeats, %d allocated", w.ID, w.CoresBusy, len(w.BusyCores()))
			}
		}
		live, err := st.ListJobs(context.Background(), api.JobFilter{Status: []api.State{api.Ready, api.Deployed, api.Running}})
		if err != nil {
			return err
		}
		doubleBooked = doubleBookedCores(live)
		return nil
	})
	if doubleBooked > 0 {
		t.Errorf("%d cores held by two live tasks", doubleBooked)
	}

	// No task ran twice at once, by the workers' own logs.
	runs := map[string][]run{}
	for _, w := range ws {
		for task, rs := range w.runs(t) {
			runs[task] = append(runs[task], rs...)
		}
	}
	// Every task of a job that ended Down ran at least once: the logs
	// account for it, or the check below would look at nothing.
	copies := 0
	for _, rs := range runs {
		copies += len(rs)
	}
	for _, j := range jobs {
		for _, tk := range j.Info.Tasks {
			if j.Status == api.Down && len(runs[tk.ContainerName]) == 0 {
				t.Errorf("task %s ended Down but no worker logged running it", tk.ContainerName)
			}
		}
	}
	dur := map[string]time.Duration{}
	for _, j := range jobs {
		for _, tk := range j.Info.Tasks {
			dur[tk.ContainerName] = worker.SimDuration(tk)
		}
	}
	clip(runs, dur)
	twice, afterResume, longest := overlaps(runs)
	for _, o := range twice {
		t.Errorf("task %s ran twice at once: %s", o.task, o.what)
	}
	t.Logf("chaos: %d rounds; jobs accepted %d (refused while the frontend was down: %d), restarted by policy %d; kills %d, pauses %d; "+
		"task copies run %d; lost=%d failed=%d double-booked=%d ran-twice=%d (copies on a worker paused past the grace, ending after its resume: %d, the longest %v after it)",
		rounds, len(accepted), ld.refused.Load(), restarted, ch.kills, ch.pauses, copies, lost, failed, doubleBooked, len(twice), afterResume, longest.Round(time.Millisecond))
}

// chaosProc is one rswarm process, killed, paused and restarted by the test.
// Its output is appended to log across restarts.
type chaosProc struct {
	t    testing.TB
	name string
	args []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}  // closed when the current process has exited
	frozen [][2]time.Time // pauses
	killed []time.Time
}

func (p *chaosProc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(binary, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
}

// kill9 kills the process and waits for it to be gone.
func (p *chaosProc) kill9() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	p.mu.Lock()
	p.killed = append(p.killed, time.Now())
	p.mu.Unlock()
}

// freeze stops the process for d, then lets it go on.
func (p *chaosProc) freeze(d time.Duration) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	from := time.Now()
	_ = cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(d) // the length of the fault
	_ = cmd.Process.Signal(syscall.SIGCONT)
	p.mu.Lock()
	p.frozen = append(p.frozen, [2]time.Time{from, time.Now()})
	p.mu.Unlock()
}

// stop interrupts the process as a user would and waits for it; its log
// is shown when the test failed.
func (p *chaosProc) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		p.t.Errorf("%s did not stop within 30 s of SIGINT", p.name)
	}
	if p.t.Failed() {
		if b, err := os.ReadFile(p.log); err == nil {
			const tail = 20000
			if len(b) > tail {
				b = b[len(b)-tail:]
			}
			p.t.Logf("---- end of the output of %s ----\n%s", p.name, b)
		}
	}
}

// chaos counts the faults it caused.
type chaos struct{ kills, pauses int }

// kill kills p with -9 and starts it again after down.
func (c *chaos) kill(p *chaosProc, down time.Duration) {
	p.kill9()
	c.kills++
	time.Sleep(down) // the length of the outage
	p.start()
}

// stall pauses p for d.
func (c *chaos) stall(p *chaosProc, d time.Duration) {
	p.freeze(d)
	c.pauses++
}

// load submits jobs at a steady rate until its context ends.
type load struct {
	c       *api.Client
	mu      sync.Mutex
	ok      []string
	refused atomic.Int64
}

func (l *load) run(ctx context.Context, perSecond int) {
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		j := apitest.Job(fmt.Sprintf("chaos%d", i), 1+rand.IntN(2), 1+rand.IntN(2), fmt.Sprintf("sleep %d", 1+rand.IntN(3)))
		j.Session, j.Restart = "chaos", "on-failure:5"
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.c.SubmitJob(sctx, j); err != nil {
				// The frontend down or paused: the client sees the refusal (not accepted).
				l.refused.Add(1)
				return
			}
			l.mu.Lock()
			l.ok = append(l.ok, j.Name)
			l.mu.Unlock()
		}()
	}
}

func (l *load) accepted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ok...)
}

// doubleBookedCores counts the (node, core) pairs held by more than one
// placed, live task.
func doubleBookedCores(jobs []*api.Job) int {
	held := map[string]int{}
	for _, j := range jobs {
		for _, t := range j.Info.Tasks {
			if t.Status == api.Ready || t.Status.Final() || t.Node == "" {
				continue
			}
			cs, err := api.ParseCpuset(t.CpusetCpus)
			if err != nil {
				continue
			}
			for _, c := range cs {
				held[fmt.Sprintf("%s/%d", t.Node, c)]++
			}
		}
	}
	n := 0
	for _, k := range held {
		if k > 1 {
			n++
		}
	}
	return n
}

// run is one copy of a task running on a worker process, by its logs:
// from its start to its end, or to the worker's kill, or to now.
type run struct {
	worker   string
	attempt  int
	from, to time.Time
	orphan   bool           // ended by reconciliation
	frozen   [][2]time.Time // its worker's pauses
}

// runs reads the worker's log: every task it started and when it ended.
func (p *chaosProc) runs(t *testing.T) map[string][]run {
	t.Helper()
	f, err := os.Open(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.mu.Lock()
	kills := append([]time.Time(nil), p.killed...)
	frozen := append([][2]time.Time(nil), p.frozen...)
	p.mu.Unlock()
	type line struct {
		Time    time.Time `json:"time"`
		Msg     string    `json:"msg"`
		Task    string    `json:"task_id"`
		Attempt int       `json:"attempt"`
		Orphan  bool      `json:"orphan"`
	}
	open := map[string]*run{}
	out := map[string][]run{}
	closeAll := func(at time.Time) {
		for task, r := range open {
			r.to = at
			out[task] = append(out[task], *r)
			delete(open, task)
		}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l line
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Task == "" {
			continue
		}
		// A kill ends every task the process ran before it.
		for len(kills) > 0 && l.Time.After(kills[0]) {
			closeAll(kills[0])
			kills = kills[1:]
		}
		switch l.Msg {
		case "task started":
			open[l.Task] = &run{worker: p.name, attempt: l.Attempt, from: l.Time, frozen: frozen}
		case "task ended":
			if r := open[l.Task]; r != nil {
				r.to, r.orphan = l.Time, l.Orphan
				out[l.Task] = append(out[l.Task], *r)
				delete(open, l.Task)
			}
		}
	}
	if len(kills) > 0 {
		closeAll(kills[0])
	}
	for task, r := range open {
		r.to = time.Now()
		out[task] = append(out[task], *r)
	}
	return out
}

type overlap struct{ task, what string }

// clip ends each copy no later than its simulated duration after its
// start (its own end, however late the logs say it).
func clip(runs map[string][]run, dur map[string]time.Duration) {
	for task, rs := range runs {
		d, ok := dur[task]
		if !ok {
			continue
		}
		for i := range rs {
			if end := rs[i].from.Add(d); end.Before(rs[i].to) {
				rs[i].to = end
			}
		}
	}
}

// overlaps finds the copies of one task that ran at the same time. A copy
// does not run while its worker is paused, nor past its simulated
// duration (a copy whose time ran out during a pause is logged as ending
// at the resume: the frozen process catching up; see clip). A copy on a
// worker paused past the grace, still due to run after the resume, overlaps
// its replacement (started meanwhile) until the first heartbeat reply
// after the resume stops it as an orphan: those are counted apart, with
// the longest such overlap after the resume, as the cost of a paused worker
// coming back; any other overlap is a task run twice.
func overlaps(runs map[string][]run) (twice []overlap, afterResume int, longest time.Duration) {
	names := make([]string, 0, len(runs))
	for n := range runs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, task := range names {
		rs := runs[task]
		for i := range rs {
			for k := i + 1; k < len(rs); k++ {
				a, b := rs[i], rs[k]
				from, to := later(a.from, b.from), earlier(a.to, b.to)
				if !from.Before(to) {
					continue
				}
				if covered(from, to, a.frozen) || covered(from, to, b.frozen) {
					continue
				}
				resumed, ok := resumedIn(from, a)
				if !ok {
					resumed, ok = resumedIn(from, b)
				}
				if ok {
					afterResume++
					longest = max(longest, to.Sub(resumed))
					continue
				}
				twice = append(twice, overlap{task, fmt.Sprintf("%s (attempt %d) %s..%s and %s (attempt %d) %s..%s", a.worker, a.attempt,
					a.from.Format(time.StampMilli), a.to.Format(time.StampMilli), b.worker, b.attempt, b.from.Format(time.StampMilli), b.to.Format(time.StampMilli))})
			}
		}
	}
	return twice, afterResume, longest
}

// covered reports whether [from, to) lies within one of the pauses.
func covered(from, to time.Time, frozen [][2]time.Time) bool {
	for _, f := range frozen {
		if !from.Before(f[0]) && !to.After(f[1]) {
			return true
		}
	}
	return false
}

// resumedIn reports whether an overlap beginning at from began while r's
// worker was paused, the copy r then stopped as an orphan after the
// resume; it returns the resume.
func resumedIn(from time.Time, r run) (time.Time, bool) {
	if !r.orphan {
		return time.Time{}, false
	}
	for _, f := range r.frozen {
		if !from.Before(f[0]) && !from.After(f[1]) && r.to.After(f[1]) {
			return f[1], true
		}
	}
	return time.Time{}, false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// TestChaosOverlaps checks the chaos test's own judge of "ran twice at
// once" on hand-made runs (seconds after an epoch).
func TestChaosOverlaps(t *testing.T) {
	at := func(s float64) time.Time { return time.Unix(1000, 0).Add(time.Duration(s * float64(time.Second))) }
	pause := [][2]time.Time{{at(10), at(15)}}
	tests := []struct {
		name             string
		runs             []run
		twice, afterRsme int
	}{
		{"one after the other", []run{{worker: "w1", from: at(0), to: at(2)}, {worker: "w2", from: at(2), to: at(4)}}, 0, 0},
		{"side by side on two workers", []run{{worker: "w1", from: at(0), to: at(3)}, {worker: "w2", from: at(2), to: at(4)}}, 1, 0},
		{"twice on one worker", []run{{worker: "w1", from: at(0), to: at(3)}, {worker: "w1", from: at(1), to: at(2)}}, 1, 0},
		{"replacement while its worker was paused, the copy ending at the resume (not clipped)",
			[]run{{worker: "w1", from: at(9), to: at(15.01), frozen: pause}, {worker: "w2", from: at(13), to: at(16)}}, 1, 0},
		{"replacement while its worker was paused, the copy stopped as an orphan after the resume",
			[]run{{worker: "w1", from: at(9), to: at(15.2), frozen: pause, orphan: true}, {worker: "w2", from: at(13), to: at(16)}}, 0, 1},
		{"replacement while its worker was paused, the copy running on after the resume to its own end",
			[]run{{worker: "w1", from: at(9), to: at(20), frozen: pause}, {worker: "w2", from: at(13), to: at(16)}}, 1, 0},
		{"replacement after the resume, the copy running on",
			[]run{{worker: "w1", from: at(9), to: at(20), frozen: pause}, {worker: "w2", from: at(16), to: at(18)}}, 1, 0},
		{"overlap only within the pause", []run{{worker: "w1", from: at(9), to: at(14), frozen: pause}, {worker: "w2", from: at(12), to: at(16)}}, 0, 0},
	}
	// The copy of a 2 s task started at 9 on a worker paused from 10 to 15
	// was due to end at 11: logged ending at 15.01, clipped to 11, it never
	// overlaps a replacement started at 13.
	clipped := map[string][]run{"t": {{worker: "w1", from: at(9), to: at(15.01), frozen: pause}, {worker: "w2", from: at(13), to: at(16)}}}
	clip(clipped, map[string]time.Duration{"t": 2 * time.Second})
	if twice, after, _ := overlaps(clipped); len(twice) != 0 || after != 0 {
		t.Errorf("clipped: %v twice, %d after a resume; want none", twice, after)
	}
	for _, tt := range tests {
		twice, after, _ := overlaps(map[string][]run{"t": tt.runs})
		if len(twice) != tt.twice || after != tt.afterRsme {
			t.Errorf("%s: %d twice (%v), %d after a resume; want %d, %d", tt.name, len(twice), twice, after, tt.twice, tt.afterRsme)
		}
	}
}

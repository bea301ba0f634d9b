package discovery

import (
	"fmt"
	"sort"

	"github.com/rswarm/rswarm/api"
)

// Reconciliation compares what each live worker says it holds (the task
// list in its heartbeats) with what the store wants it to run:
//
//   - a task the store does not want there is stopped: its job ended or
//     was cancelled, it was placed again (Ready, or on another node: the
//     orphan of a deployment given up), or it is an earlier attempt of a
//     restarted job; a task of a job the store does not know (deleted, or
//     another RSwarm's on a shared engine) is only forgotten;
//   - a wanted task the worker holds is left alone (adopted: a Scheduled or
//     Deployed one is marked Running, unless the worker says it is still
//     starting: its own report of Running, or of the start's failure, is
//     on its way);
//   - a task the store has Deployed or Running on the worker, missing from
//     its reports, is failed as lost with its worker (a worker restarted
//     within the grace, say); a task goes missing only when two reports
//     in a row lack it, the second read after the first was judged, so a
//     task deployed while a report was on its way is not taken for lost.
//
// The comparison is pure; discovery feeds it the reports and the store.

// Placement is the store's view of one task.
type Placement struct {
	Job     string
	Node    string
	State   api.State
	Attempt int // the job's restart count
}

// Report is the latest task list of one worker and when the worker made
// it, on discovery's clock (Table.SentAt: a report delivered late is as
// old as when it was sent, not as when it was read).
type Report struct {
	Read    float64
	Running []api.HeldTask
}

// Verdict is what a reconciliation pass decided.
type Verdict struct {
	// Stop holds the tasks to stop, by node.
	Stop map[string][]api.StopTask
	// Adopt and Lost are statuses to apply: Running for tasks found on
	// their worker, Failed for tasks missing from it.
	Adopt, Lost []api.TaskStatus
}

// Reconciler keeps the tasks found missing once, waiting for a second
// report to confirm them.
type Reconciler struct {
	suspect map[string]float64 // task -> when the pass that found it missing ran
}

// NewReconciler returns a reconciler with nothing suspected.
func NewReconciler() *Reconciler { return &Reconciler{suspect: map[string]float64{}} }

// Pass compares the reports of the live nodes with want (every task of the
// jobs the store has placed, and of those the reports name) at now; the
// reports must all have been read before want was.
func (r *Reconciler) Pass(now float64, reports map[string]Report, want map[string]Placement) Verdict {
	v := Verdict{Stop: map[string][]api.StopTask{}}
	held := map[string]map[string]int{} // node -> task -> highest attempt held
	nodes := make([]string, 0, len(reports))
	for n := range reports {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		rep := reports[n]
		held[n] = map[string]int{}
		for _, h := range rep.Running {
			if a, ok := held[n][h.Task]; !ok || h.Attempt > a {
				held[n][h.Task] = h.Attempt
			}
			p, ok := want[h.Task]
			if why := unwanted(n, h, p, ok); why != "" {
				v.Stop[n] = append(v.Stop[n], api.StopTask{Job: h.Job, Task: h.Task, Attempt: h.Attempt, Orphan: true, Forget: !ok, Reason: why})
				continue
			}
			if h.Cores > 0 && !h.Starting && (p.State == api.Scheduled || p.State == api.Deployed) {
				v.Adopt = append(v.Adopt, api.TaskStatus{Node: n, Job: p.Job, Task: h.Task, State: api.Running, Time: rep.Read, Attempt: p.Attempt})
			}
		}
	}
	missing := map[string]bool{}
	tasks := make([]string, 0, len(want))
	for t := range want {
		tasks = append(tasks, t)
	}
	sort.Strings(tasks)
	for _, t := range tasks {
		p := want[t]
		rep, live := reports[p.Node]
		if !live || (p.State != api.Deployed && p.State != api.Running) {
			continue
		}
		if a, ok := held[p.Node][t]; ok && a >= p.Attempt {
			continue
		}
		missing[t] = true
		since, suspected := r.suspect[t]
		if !suspected {
			r.suspect[t] = now
			continue
		}
		if rep.Read > since {
			v.Lost = append(v.Lost, api.TaskStatus{Node: p.Node, Job: p.Job, Task: t, State: api.Failed, Time: now, Attempt: p.Attempt,
				Error: fmt.Sprintf("%s: task not running on %s (the worker restarted?)", api.WorkerLost, p.Node)})
			delete(r.suspect, t)
		}
	}
	for t := range r.suspect {
		if !missing[t] {
			delete(r.suspect, t)
		}
	}
	return v
}

// Unwanted returns the stops for the tasks node holds that want does not
// place there (the first half of a pass, with nothing to confirm).
func Unwanted(node string, running []api.HeldTask, want map[string]Placement) []api.StopTask {
	var out []api.StopTask
	for _, h := range running {
		p, ok := want[h.Task]
		if why := unwanted(node, h, p, ok); why != "" {
			out = append(out, api.StopTask{Job: h.Job, Task: h.Task, Attempt: h.Attempt, Orphan: true, Forget: !ok, Reason: why})
		}
	}
	return out
}

// unwanted says why task h held by node should not run there, or "".
func unwanted(node string, h api.HeldTask, p Placement, known bool) string {
	switch {
	case !known:
		return "its job is not in this cluster's store"
	case p.State.Final():
		return "its task is " + p.State.String()
	case p.State == api.Migrating:
		return "" // on its way between two workers: theirs to settle
	case p.State == api.Ready:
		return "its job was placed again"
	case p.Node != node:
		return "its task is placed on " + p.Node
	case h.Attempt < p.Attempt:
		return fmt.Sprintf("attempt %d of its job superseded by attempt %d", h.Attempt, p.Attempt)
	}
	return ""
}

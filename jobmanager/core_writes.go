package jobmanager

import (
	"errors"
	"fmt"
	"slices"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/placement"
)

// The single-writer rule: every write of a core allocation, a task's
// cpuset_cpus or a task's node, anywhere in the system, is an effect of
// the core. Rounds (Placed, then the shell's placement write), moves
// (CommitMove) and flushes (WriteAllocations) were the core's already; the
// events below are the ones the globalmanager used to carry out by itself
// and now asks for: a worker registering again (it rewrote its allocation),
// a task resized in place (it wrote the task's cpuset), and a job put back
// in the queue by a drain (it cleared its tasks' nodes and cpusets).

// Events asked for by the globalmanager.
type (
	// WorkerRegistered: Worker registered, or registered again, with Cores
	// cores and Mem bytes. It is added, or resized with its allocations
	// kept (a smaller size that would drop held cores is refused), and
	// placed on; its allocation is written at once (WriteAllocations), so
	// that its record's core map matches its new size.
	WorkerRegistered struct {
		Worker string
		Cores  int
		Mem    int64
	}
	// TaskResized: R.Task's worker applied the cores R.Cpuset (and
	// R.MemLimit) that a Reallocate gave it: its record is written
	// (WriteTask, with R.Job). Refused unless the task holds exactly
	// those cores on R.Node.
	TaskResized struct{ R api.Reservation }
	// Unplace: Job is to be placed again from scratch (a drain could not
	// move one of its tasks): Tasks, stopped where they ran, give their
	// cores back, and the job is reset to Ready with Note (UnplaceJob).
	Unplace struct {
		Job   string
		Tasks []string
		Note  string
	}
)

func (WorkerRegistered) coreEvent() {}
func (TaskResized) coreEvent()      {}
func (Unplace) coreEvent()          {}

// Effects that write a task's record.
type (
	// WriteTask writes where Task of Job runs: its node and cpuset_cpus
	// (Cores); with Resize, also its req_cores and mem_limit (MemLimit).
	WriteTask struct {
		Job, Task, Node string
		Cores           []int
		Resize          bool
		MemLimit        string
	}
	// UnplaceJob resets Job to Ready: every task Ready, its placement
	// forgotten unless the client pinned it (no-scheduler), its times and
	// results cleared, Note added to the job's notes; the shell then
	// queues it (Enqueue). A job that ended meanwhile is left alone and
	// the asker told so.
	UnplaceJob struct{ Job, Note string }
)

func (WriteTask) coreEffect()  {}
func (UnplaceJob) coreEffect() {}

func (c *Core) workerRegistered(ev WorkerRegistered) []Effect {
	v, known := c.cluster.Worker(ev.Worker)
	changed := false
	if !known || v.Cores != ev.Cores || v.MemTotal != ev.Mem {
		if err := c.cluster.AddWorker(ev.Worker, ev.Cores, ev.Mem); err != nil {
			if errors.Is(err, placement.ErrInvalidWorker) {
				return []Effect{Reply{Err: api.Invalid("cores", "%v", err)}}
			}
			return []Effect{Reply{Err: &api.FieldError{Field: "cores", Kind: api.ErrConflict, Reason: err.Error()}}}
		}
		changed = true
	}
	if v, _ = c.cluster.Worker(ev.Worker); !v.Up {
		c.cluster.SetUp(ev.Worker, true)
		changed = true
	}
	// Written now, not at the next flush.
	delete(c.touched, ev.Worker)
	v, _ = c.cluster.Worker(ev.Worker)
	out := []Effect{Reply{OK: true}, WriteAllocations{Workers: []Allocation{{Worker: v.ID, Busy: v.Busy, Mem: v.MemTotal - v.MemFree}}}}
	if changed {
		out = append(out, Reschedule{})
	}
	return out
}

func (c *Core) taskResized(ev TaskResized) []Effect {
	r := ev.R
	if r.Job == "" {
		return []Effect{Reply{Err: api.Invalid("job", "required: the job whose task is written")}}
	}
	want := slices.Sorted(slices.Values(r.Cpuset))
	node, cores, held := c.cluster.Holds(r.Task)
	slices.Sort(cores)
	if !held || node != r.Node || !slices.Equal(cores, want) {
		return []Effect{Reply{Err: &api.FieldError{Field: "cpuset_cpus", Kind: api.ErrConflict,
			Reason: fmt.Sprintf("task %s does not hold cores %s on %s (reallocate them first)", r.Task, api.FormatCpuset(want), r.Node)}}}
	}
	return []Effect{Reply{OK: true}, WriteTask{Job: r.Job, Task: r.Task, Node: node, Cores: cores, Resize: true, MemLimit: r.MemLimit}}
}

func (c *Core) unplace(ev Unplace) []Effect {
	out := []Effect{Reply{OK: true}}
	if c.release(ev.Tasks...) {
		out = append(out, Reschedule{})
	}
	c.unqueue(ev.Job)
	delete(c.stopped, ev.Job)
	c.forget(ev.Job)
	return append(out, UnplaceJob{Job: ev.Job, Note: ev.Note})
}

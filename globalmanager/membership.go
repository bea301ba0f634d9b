package globalmanager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Workers joining and leaving the swarm, and being drained: the original
// request_join and request_leave, and the drained mark.

// JoinRequest is the original request_join body.
type JoinRequest struct {
	Hostname string `json:"hostname"`
	Address  string `json:"address"`
	CPUs     int    `json:"CPUs"`
	MemFree  string `json:"MemFree"`
}

// Join records a host that joins the swarm by itself: it waits (polling,
// never spinning) until a swarm node with the given address appears, at
// most JoinTimeout, then registers it. Hosts running `rswarm worker`
// register themselves over the bus and need no call.
func (m *Manager) Join(ctx context.Context, r JoinRequest) (api.RegisterReply, error) {
	if r.Address == "" {
		return api.RegisterReply{}, api.Invalid("address", "required: the IP address of the joining node")
	}
	if m.cfg.NoSwarm {
		return api.RegisterReply{}, fmt.Errorf("globalmanager runs without a swarm: %w", api.ErrUnavailable)
	}
	deadline := time.NewTimer(m.cfg.JoinTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		nodes, err := m.swarm.Nodes(ctx)
		if err != nil {
			return api.RegisterReply{}, err
		}
		for _, n := range nodes {
			if n.Addr != r.Address {
				continue
			}
			// A worker already registered (by `rswarm worker`, which reports
			// its own memory and checkpoint probe) keeps its record.
			if w, err := m.st.GetWorker(ctx, n.ID); err == nil && w.Status != api.WorkerLeft {
				m.log.Info("request_join for a registered worker: record kept", "node_id", n.ID, "host", w.Host)
				return api.RegisterReply{NodeID: n.ID}, nil
			}
			mem := n.MemBytes
			if r.MemFree != "" {
				if b, err := api.ParseMem(strings.TrimSuffix(strings.ReplaceAll(r.MemFree, " ", ""), "B")); err == nil {
					mem = b
				}
			}
			cores := r.CPUs
			if cores <= 0 {
				cores = n.NCPU
			}
			return m.Register(ctx, api.Register{NodeID: n.ID, Host: firstNonEmpty(r.Hostname, n.Hostname), Address: r.Address,
				Runtime: "docker", Cores: cores, MemTotal: mem, CheckpointError: "not probed (joined without rswarm worker)"})
		}
		select {
		case <-ctx.Done():
			return api.RegisterReply{}, ctx.Err()
		case <-deadline.C:
			return api.RegisterReply{}, fmt.Errorf("no swarm node with address %s joined within %v; run `rswarm worker --globalmanager-bus tcp://<this host>:3100` on that host, which joins by itself: %w",
				r.Address, m.cfg.JoinTimeout, api.ErrUnavailable)
		case <-tick.C:
		}
	}
}

// Leave takes a worker out: its tasks fail ("worker left"), the jobmanager
// forgets its cores, the worker stops its containers and leaves the swarm,
// and the node is removed. The swarm manager itself cannot leave.
func (m *Manager) Leave(ctx context.Context, ref string) (*api.Worker, error) {
	w, err := m.worker(ctx, "hostname", ref)
	if err != nil {
		return nil, err
	}
	if w.ID == m.nodeID {
		return nil, api.Invalid("hostname", "node %s is the swarm manager (the globalmanager's own engine): it cannot leave", w.ID)
	}
	if w.TransferAddr != "" && w.Status != api.WorkerLeft {
		// Drain first: tasks that can move with their state do; the rest fail below.
		if _, err := m.Drain(ctx, w.ID); err != nil {
			m.log.Warn("draining a leaving worker", "node_id", w.ID, "err", err)
		}
	}
	if _, err := m.st.UpdateWorker(ctx, w.ID, func(w *api.Worker) error {
		w.Status = api.WorkerLeft
		return nil
	}); err != nil {
		return nil, err
	}
	if err := m.nt.WorkersChanged(ctx); err != nil {
		m.log.Warn("telling the jobmanager a worker left", "node_id", w.ID, "err", err)
	}
	if done := m.failTasksOn(ctx, w.ID, fmt.Sprintf("worker %s left the swarm", w.ID)); len(done) > 0 {
		if err := m.nt.TasksDone(ctx, done); err != nil {
			m.log.Warn("telling the jobmanager tasks ended", "err", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	if err := m.workers.Request(cctx, w.ID, api.KindLeave, struct{}{}, nil); err != nil {
		m.log.Warn("worker did not acknowledge leave; removing its node anyway", "node_id", w.ID, "err", err)
	}
	cancel()
	if w.Runtime != "sim" && !m.cfg.NoSwarm {
		if err := m.swarm.RemoveNode(ctx, w.ID, true); err != nil && !errors.Is(err, api.ErrNotFound) {
			return nil, fmt.Errorf("remove node %s: %w", w.ID, err)
		}
	}
	m.log.Info("worker left", "node_id", w.ID)
	return m.st.GetWorker(ctx, w.ID)
}

// failTasksOn fails every unfinished task on node and returns them.
func (m *Manager) failTasksOn(ctx context.Context, node, reason string) []api.TaskRef {
	jobs, err := m.st.ListJobs(ctx, api.JobFilter{Node: node, Status: []api.State{api.Ready, api.Deployed, api.Running}})
	if err != nil {
		m.log.Warn("listing the tasks of a leaving worker", "node_id", node, "err", err)
		return nil
	}
	var done []api.TaskRef
	t := now()
	for _, j := range jobs {
		_, err := m.st.UpdateJob(ctx, j.Name, func(j *api.Job) error {
			for _, task := range j.Info.Tasks {
				if task.Node == node && !task.Status.Final() && task.Status >= api.Scheduled {
					if _, err := j.ApplyStatus(api.TaskStatus{Node: node, Job: j.Name, Task: task.ContainerName, State: api.Failed, Error: reason, Time: t, Attempt: j.Restarts}); err != nil {
						return err
					}
					done = append(done, api.TaskRef{Job: j.Name, Task: task.ContainerName, Node: node, State: api.Failed})
				}
			}
			return nil
		})
		if err != nil {
			m.log.Warn("failing a leaving worker's task", "job_id", j.Name, "err", err)
		}
	}
	return done
}

// SetDrained stops (or resumes) placing new tasks on a worker; its running
// tasks are left alone.
func (m *Manager) SetDrained(ctx context.Context, ref string, drained bool) (*api.Worker, error) {
	w, err := m.worker(ctx, "id", ref)
	if err != nil {
		return nil, err
	}
	w, err = m.st.UpdateWorker(ctx, w.ID, func(w *api.Worker) error {
		switch {
		case w.Status == api.WorkerLeft:
			return &api.FieldError{Field: "id", Kind: api.ErrConflict, Reason: fmt.Sprintf("worker %s has left", w.ID)}
		case drained:
			w.Status = api.WorkerDrained
		case w.Status == api.WorkerDrained:
			w.Status = api.WorkerReady
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := m.nt.WorkersChanged(ctx); err != nil {
		m.log.Warn("telling the jobmanager a worker changed", "node_id", w.ID, "err", err)
	}
	return w, nil
}

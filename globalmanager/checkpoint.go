package globalmanager

import (
	"context"
	"fmt"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Checkpoints of running containers, left running (checkpoint_cons).

// CheckpointRequest is one item of the original checkpoint_cons body.
type CheckpointRequest struct {
	Node       string   `json:"node"`
	Containers []string `json:"containers"`
}

// CheckpointResult is the outcome of one container's checkpoint.
type CheckpointResult struct {
	Node       string `json:"node"`
	Container  string `json:"container"`
	Checkpoint string `json:"checkpoint,omitempty"`
	Error      string `json:"error,omitempty"`
}

// ErrCheckpoint classifies a checkpoint that the engine refused or CRIU failed.
var ErrCheckpoint = api.NewKind("globalmanager: checkpoint failed", api.ErrUnprocessable)

// Checkpoint checkpoints containers (leaving them running) on their nodes.
// Every node is checked before anything is sent. The results say, per
// container, the checkpoint's name or why it failed (on hosts where CRIU
// does not work, its own words).
func (m *Manager) Checkpoint(ctx context.Context, reqs []CheckpointRequest) ([]CheckpointResult, error) {
	if len(reqs) == 0 {
		return nil, api.Invalid("", "a list of {node, containers} is required")
	}
	nodes := make([]*api.Worker, len(reqs))
	for i, r := range reqs {
		w, err := m.worker(ctx, fmt.Sprintf("[%d].node", i), r.Node)
		if err != nil {
			return nil, err
		}
		if len(r.Containers) == 0 {
			return nil, api.Invalid(fmt.Sprintf("[%d].containers", i), "at least one container is required")
		}
		nodes[i] = w
	}
	var out []CheckpointResult
	failed := 0
	for i, r := range reqs {
		for _, c := range r.Containers {
			res := CheckpointResult{Node: nodes[i].ID, Container: c}
			name := fmt.Sprintf("%s_%d", c, time.Now().UnixMilli())
			cctx, cancel := context.WithTimeout(ctx, 2*m.cfg.CommandTimeout)
			var got string
			err := m.workers.Request(cctx, nodes[i].ID, api.KindCheckpoint, api.Checkpoint{Task: c, Name: name, LeaveRunning: true}, &got)
			cancel()
			if err != nil {
				res.Error, failed = err.Error(), failed+1
			} else {
				res.Checkpoint = got
			}
			out = append(out, res)
		}
	}
	if failed > 0 {
		return out, fmt.Errorf("%w: %d of %d checkpoints failed (first: %s on %s: %s)", ErrCheckpoint, failed, len(out), firstFailed(out).Container, firstFailed(out).Node, firstFailed(out).Error)
	}
	return out, nil
}

func firstFailed(rs []CheckpointResult) CheckpointResult {
	for _, r := range rs {
		if r.Error != "" {
			return r
		}
	}
	return CheckpointResult{}
}

package engine_test

import (
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/rswarm/rswarm/engine"
)

// needSwarm makes the local engine a single-node swarm manager (what
// `rswarm up` does on this host) and returns its node ID. It is left a
// manager afterwards: other tests on this engine may use the swarm at the
// same time, so leaving it would pull the ground from under them.
func needSwarm(t testing.TB, c *engine.Client) string {
	t.Helper()
	id, err := c.SwarmInit(ctxFor(t, 60*time.Second), "127.0.0.1", "127.0.0.1:2377")
	if err != nil {
		t.Fatalf("swarm init: %v", err)
	}
	return id
}

func TestSwarm(t *testing.T) {
	c := newClient(t)
	ctx := ctxFor(t, 60*time.Second)

	first := needSwarm(t, c)
	second, err := c.SwarmInit(ctx, "127.0.0.1", "127.0.0.1:2377")
	if err != nil || second != first || first == "" {
		t.Fatalf("second swarm init = %q, %v; want %q and no error", second, err, first)
	}

	in, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	if s := in.Swarm; s.NodeID != first || s.LocalNodeState != "active" || !s.ControlAvailable || s.Cluster == "" {
		t.Errorf("info swarm = %+v, want an active manager with node %s", s, first)
	}

	token, addr, err := c.JoinToken(ctx)
	if err != nil {
		t.Fatalf("join token: %v", err)
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port != "2377" || token == "" {
		t.Errorf("join token = %q, manager %q; want a token and host:2377", token, addr)
	}

	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatalf("nodes: %v", err)
	}
	var self *engine.Node
	for i := range nodes {
		if nodes[i].ID == first {
			self = &nodes[i]
		}
	}
	if self == nil {
		t.Fatalf("nodes = %+v, want one with ID %s", nodes, first)
	}
	if self.Role != "manager" || !self.Leader || self.State != "ready" || self.Availability != "active" ||
		self.Hostname != in.Hostname || self.NCPU != in.NCPU || self.MemBytes <= 0 {
		t.Errorf("self node = %+v, want the ready, active leader %s with %d CPUs", *self, in.Hostname, in.NCPU)
	}

	n, raw, err := c.Node(ctx, first)
	if err != nil || !reflect.DeepEqual(n, *self) {
		t.Errorf("node %s = %+v, %v; want %+v", first, n, err, *self)
	}
	var doc struct{ ID string }
	if err := json.Unmarshal(raw, &doc); err != nil || doc.ID != first {
		t.Errorf("raw inspect = %.80s (%v), want JSON with ID %s", raw, err, first)
	}

	missing := unique(t)
	if _, _, err := c.Node(ctx, missing); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("node %s = %v, want ErrNotFound", missing, err)
	}
	if err := c.RemoveNode(ctx, missing, true); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("remove node %s = %v, want ErrNotFound", missing, err)
	}
}

package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine"
)

// testSubnet picks a /24 in 10.213.0.0/16, away from the swarm's default
// pool (10.0.x.0/24) and Docker's bridges (172.16.0.0/12), at random so
// that concurrent runs rarely collide.
func testSubnet() string {
	return fmt.Sprintf("10.213.%d.0/24", rand.IntN(256))
}

func TestOverlayNetwork(t *testing.T) {
	c := newClient(t)
	needSwarm(t, c)
	labels := testRun(t, c)
	ctx := ctxFor(t, 120*time.Second)

	name, subnet := unique(t), testSubnet()
	t.Cleanup(func() {
		// The test removes it itself; this is for early failures.
		_ = c.RemoveNetwork(ctxFor(t, 30*time.Second), name)
	})
	n, err := c.CreateNetwork(ctx, name, subnet, labels)
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	if n.ID == "" || n.Name != name || n.Driver != "overlay" || n.Subnet != subnet || n.Labels[labelRun] != labels[labelRun] {
		t.Errorf("network = %+v, want overlay %s on %s with the test labels", n, name, subnet)
	}

	again, err := c.CreateNetwork(ctx, name, subnet, labels)
	if err != nil || again.ID != n.ID {
		t.Errorf("second create = %+v, %v; want the same network %s", again, err, n.ID)
	}

	overlap := []struct {
		name   string
		subnet string
	}{
		{"same subnet", subnet},
		{"inside it", strings.TrimSuffix(subnet, "/24") + "/25"},
		{"around it", "10.213.0.0/16"},
		{"docker0", "172.17.0.0/24"},
	}
	for _, tc := range overlap {
		t.Run("overlap "+tc.name, func(t *testing.T) {
			other := unique(t)
			_, err := c.CreateNetwork(ctx, other, tc.subnet, labels)
			if err == nil {
				_ = c.RemoveNetwork(ctx, other)
			}
			if !errors.Is(err, engine.ErrSubnetOverlap) || !errors.Is(err, engine.ErrConflict) {
				t.Fatalf("create %s on %s = %v, want ErrSubnetOverlap", other, tc.subnet, err)
			}
			if !strings.Contains(err.Error(), "overlap") {
				t.Errorf("error %q does not say overlap", err)
			}
		})
	}

	list, err := c.Networks(ctx, map[string]string{labelRun: labels[labelRun]})
	if err != nil || len(list) != 1 || list[0].ID != n.ID {
		t.Errorf("networks by label = %+v, %v; want only %s", list, err, name)
	}

	ctName, ctID := run(t, c, labels, engine.RunSpec{Cmd: []string{"sleep", "3600"}, Network: name})
	ct, err := c.Inspect(ctx, ctID)
	if err != nil || !slices.Equal(ct.Networks, []string{name}) {
		t.Errorf("container %s networks = %v, %v; want [%s]", ctName, ct.Networks, err, name)
	}
	if list, err = c.Networks(ctx, map[string]string{labelRun: labels[labelRun]}); err != nil || len(list) != 1 || list[0].Containers != 1 {
		t.Errorf("networks with a container = %+v, %v; want one with 1 container", list, err)
	}

	if err := c.RemoveNetwork(ctx, name); !errors.Is(err, engine.ErrNetworkInUse) || !errors.Is(err, engine.ErrConflict) {
		t.Errorf("remove network in use = %v, want ErrNetworkInUse", err)
	}

	if err := c.Remove(ctx, ctID, true); err != nil {
		t.Fatalf("remove container: %v", err)
	}
	if err := c.RemoveNetwork(ctx, name); err != nil {
		t.Fatalf("remove network: %v", err)
	}
	apitest.Eventually(t, 30*time.Second, func() error {
		list, err := c.Networks(ctx, map[string]string{labelRun: labels[labelRun]})
		if err != nil || len(list) != 0 {
			return fmt.Errorf("networks after remove = %+v, %v", list, err)
		}
		return nil
	})
	if err := c.RemoveNetwork(ctx, name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("second remove = %v, want ErrNotFound", err)
	}
}

// TestLocalNetwork: a job's local bridge network is made once (a second
// creation returns it), refuses an overlapping subnet, and is removed.
func TestLocalNetwork(t *testing.T) {
	c := newClient(t)
	labels := testRun(t, c)
	ctx := ctxFor(t, 60*time.Second)
	name, subnet := unique(t), testSubnet()
	t.Cleanup(func() { _ = c.RemoveNetwork(ctxFor(t, 30*time.Second), name) })
	n, err := c.CreateLocalNetwork(ctx, name, subnet, labels)
	if err != nil {
		t.Fatalf("create local network: %v", err)
	}
	if n.ID == "" || n.Name != name || n.Driver != "bridge" {
		t.Errorf("network = %+v, want bridge %s", n, name)
	}
	again, err := c.CreateLocalNetwork(ctx, name, subnet, labels)
	if err != nil || again.ID != n.ID {
		t.Errorf("second create = %+v, %v; want the same network %s", again, err, n.ID)
	}
	other := unique(t) + "o"
	if _, err := c.CreateLocalNetwork(ctx, other, subnet, labels); !errors.Is(err, engine.ErrSubnetOverlap) {
		_ = c.RemoveNetwork(ctx, other)
		t.Errorf("another network on %s: %v, want ErrSubnetOverlap", subnet, err)
	}
	if err := c.RemoveNetwork(ctx, name); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := c.RemoveNetwork(ctx, name); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
}

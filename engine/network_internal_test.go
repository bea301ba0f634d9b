package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api/apitest"
)

// TestSwarmRefusesOverlap checks the path behind the local overlap check:
// the swarm accepts a network whose subnet overlaps another and never
// allocates it; CreateNetwork must notice, say so, and remove it.
func TestSwarmRefusesOverlap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := New("")
	if err == nil {
		_, err = c.Info(ctx)
	}
	apitest.Need(t, "docker", err)
	defer c.Close()
	if _, err := c.SwarmInit(ctx, "127.0.0.1", "127.0.0.1:2377"); err != nil {
		t.Fatalf("swarm init: %v", err)
	}

	run := fmt.Sprintf("rswarm-enginetest-%08x", rand.Uint32())
	labels := map[string]string{"rswarm.test": "engine", "rswarm.testrun": run}
	subnet := fmt.Sprintf("10.214.%d.0/24", rand.IntN(256))
	first, second := run+"-a", run+"-b"
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, n := range []string{first, second} {
			_ = c.RemoveNetwork(cctx, n)
		}
	})

	if _, err := c.CreateNetwork(ctx, first, subnet, labels); err != nil {
		t.Fatalf("create %s: %v", first, err)
	}
	_, err = c.createNetwork(ctx, second, subnet, labels, false)
	if !errors.Is(err, ErrSubnetOverlap) {
		t.Fatalf("create %s on the same subnet without the local check = %v, want ErrSubnetOverlap", second, err)
	}
	t.Logf("swarm refusal: %v", err)
	apitest.Eventually(t, 30*time.Second, func() error {
		n, err := c.networkByName(ctx, second)
		if err != nil || n.ID != "" {
			return fmt.Errorf("unallocated network %s still there: %+v, %v", second, n, err)
		}
		return nil
	})
}

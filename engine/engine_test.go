package engine_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine"
)

// testImage is the local image scripts/setup.sh imports (nothing is pulled).
const testImage = "rswarm/busybox:latest"

// Labels on everything these tests create: labelTest marks the package,
// labelRun one test, so cleanup only ever touches its own objects.
const (
	labelTest = "rswarm.test"
	labelRun  = "rswarm.testrun"
)

// newClient returns a client of the local engine, skipping the test (or
// failing it under RSWARM_REQUIRE=all) when there is no engine or no test
// image.
func newClient(t testing.TB) *engine.Client {
	t.Helper()
	c, err := engine.New("")
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err = c.Info(ctx); err == nil {
			var ok bool
			if ok, err = c.ImageExists(ctx, testImage); err == nil && !ok {
				err = fmt.Errorf("image %s is missing (scripts/setup.sh imports it)", testImage)
			}
		}
		if err != nil {
			_ = c.Close()
		}
	}
	apitest.Need(t, "docker", err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// unique returns "rswarm-enginetest-<random hex>".
func unique(t testing.TB) string {
	t.Helper()
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "rswarm-enginetest-" + hex.EncodeToString(b[:])
}

// testRun labels a test's objects and removes, when the test ends, every
// container carrying them. It returns the labels.
func testRun(t testing.TB, c *engine.Client) map[string]string {
	t.Helper()
	labels := map[string]string{labelTest: "engine", labelRun: unique(t)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		list, err := c.Containers(ctx, map[string]string{labelRun: labels[labelRun]}, true)
		if err != nil {
			t.Errorf("cleanup: list containers: %v", err)
			return
		}
		for _, ct := range list {
			if err := c.Remove(ctx, ct.ID, true); err != nil {
				t.Errorf("cleanup: remove %s: %v", ct.Name, err)
			}
		}
	})
	return labels
}

// ctxFor returns a context that ends with the test or after d.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// run creates and starts a labelled busybox container running cmd and
// returns its name and ID.
func run(t testing.TB, c *engine.Client, labels map[string]string, spec engine.RunSpec) (name, id string) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	if spec.Name == "" {
		spec.Name = unique(t)
	}
	if spec.Image == "" {
		spec.Image = testImage
	}
	if spec.StopTimeout == 0 {
		spec.StopTimeout = 1 // busybox sleep as PID 1 ignores SIGTERM
	}
	spec.Labels = labels
	id, err := c.Create(ctx, spec)
	if err != nil {
		t.Fatalf("create %s: %v", spec.Name, err)
	}
	if err := c.Start(ctx, id); err != nil {
		t.Fatalf("start %s: %v", spec.Name, err)
	}
	return spec.Name, id
}

// waitExited polls until the container has stopped running and returns it.
func waitExited(t testing.TB, c *engine.Client, id string) engine.Container {
	t.Helper()
	var ct engine.Container
	apitest.Eventually(t, 30*time.Second, func() error {
		var err error
		ct, err = c.Inspect(context.Background(), id)
		if err != nil {
			return err
		}
		if ct.Running || ct.Status != "exited" {
			return fmt.Errorf("container %s is %s", ct.Name, ct.Status)
		}
		return nil
	})
	return ct
}

package globalmanager_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/globalmanager"
)

func TestReadyz(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*globalmanager.Config)
		init    bool
		status  int
		message string
	}{
		{name: "the swarm not initialised yet", status: 503, message: "swarm is not initialised"},
		{name: "initialised", init: true, status: 200},
		{name: "without a swarm there is nothing to initialise", cfg: func(c *globalmanager.Config) { c.NoSwarm = true }, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newGM(t, tt.cfg)
			if tt.init {
				if _, err := e.m.Init(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			// /readyz needs no token: the middleware refuses everything else.
			w := e.do(t, "GET", "/readyz", "")
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.message) {
				t.Errorf("GET /readyz: %d %s, want %d %q", w.Code, w.Body, tt.status, tt.message)
			}
		})
	}
	t.Run("the workers' bus not up yet", func(t *testing.T) {
		e := newGM(t, func(c *globalmanager.Config) { c.NoSwarm = true })
		cfg := globalmanager.DefaultConfig()
		cfg.NoSwarm = true
		m, err := globalmanager.New(cfg, e.sw, nil, e.st, e.nt)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "bus") {
			t.Errorf("Ready without a bus: %v, want an error naming the bus", err)
		}
	})
}

func TestMetrics(t *testing.T) {
	e := newGM(t, nil)
	if err := e.st.PutWorker(context.Background(), &api.Worker{ID: "w1", Cores: 4, Status: api.WorkerReady}); err != nil {
		t.Fatal(err)
	}
	if w := e.do(t, "GET", "/api/v1/nodes", ""); w.Code != 200 {
		t.Fatalf("GET /api/v1/nodes: %d %s", w.Code, w.Body)
	}
	e.do(t, "POST", "/api/v1/workers/nope/drain", "")
	if err := e.m.Deploy(context.Background(), &api.Job{Name: "empty"}); err == nil {
		t.Fatal("a job without tasks was deployed")
	}
	w := e.do(t, "GET", "/metrics", "")
	if w.Code != 200 {
		t.Fatalf("GET /metrics: %d", w.Code)
	}
	for _, want := range []string{
		`rswarm_globalmanager_requests_total{code="200",route="/api/v1/nodes"} 1`,
		`rswarm_globalmanager_requests_total{code="404",route="/api/v1/workers/:id/drain"} 1`,
		`rswarm_globalmanager_deploys_total{outcome="failed"} 1`,
		`rswarm_globalmanager_workers{status="ready"} 1`,
		`rswarm_globalmanager_workers{status="drained"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

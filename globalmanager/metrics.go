package globalmanager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rswarm/rswarm/api"
)

// metrics is the globalmanager's Prometheus registry: its API requests and
// deployments as they happen, and its workers read from the store at
// scrape time.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	deploys  *prometheus.CounterVec
	deployT  prometheus.Histogram
	handler  http.Handler
}

var (
	descGMWorkers   = prometheus.NewDesc("rswarm_globalmanager_workers", "Registered workers, by status.", []string{"status"}, nil)
	descGMScrapeErr = prometheus.NewDesc("rswarm_globalmanager_scrape_errors", "Sources that could not be read during this scrape.", []string{"source"}, nil)
)

func newMetrics(m *Manager) *metrics {
	mt := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rswarm_globalmanager_requests_total", Help: "API requests answered, by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rswarm_globalmanager_request_seconds", Help: "Time to answer an API request, by route.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30},
		}, []string{"route"}),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rswarm_globalmanager_deploys_total", Help: "Jobs deployed to their workers, by outcome (ok or failed).",
		}, []string{"outcome"}),
		deployT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rswarm_globalmanager_deploy_seconds", Help: "Time to create a job's network and have every task acknowledged.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10},
		}),
	}
	mt.reg.MustRegister(mt.requests, mt.latency, mt.deploys, mt.deployT, &gmCollector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mt.handler = promhttp.HandlerFor(mt.reg, promhttp.HandlerOpts{})
	return mt
}

// observeDeploy counts one deployment.
func (mt *metrics) observeDeploy(start time.Time, err error) {
	if err != nil {
		mt.deploys.WithLabelValues("failed").Inc()
		return
	}
	mt.deploys.WithLabelValues("ok").Inc()
	mt.deployT.Observe(time.Since(start).Seconds())
}

// instrument counts every request by its route pattern (not its path, so
// that job names do not become labels).
func (mt *metrics) instrument(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	mt.requests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Inc()
	mt.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

type gmCollector struct{ m *Manager }

func (c *gmCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descGMWorkers
	ch <- descGMScrapeErr
}

func (c *gmCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, err := c.m.st.ListWorkers(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descGMScrapeErr, prometheus.GaugeValue, 1, "store")
		return
	}
	by := map[api.WorkerStatus]int{api.WorkerReady: 0, api.WorkerDown: 0, api.WorkerLeft: 0, api.WorkerDrained: 0}
	for _, w := range ws {
		by[w.Status]++
	}
	for st, n := range by {
		ch <- prometheus.MustNewConstMetric(descGMWorkers, prometheus.GaugeValue, float64(n), string(st))
	}
}

// handleMetrics serves the Prometheus metrics.
// @Summary Prometheus metrics
// @Description Metrics in the Prometheus text format: API requests by route and status code and their latency, deployments by outcome and their duration, workers by status, and the Go runtime's and the process's figures.
// @Tags monitoring
// @Produce plain
// @Success 200 {string} string "the Prometheus text exposition format"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Security BearerAuth
// @Router /metrics [get]
func (m *Manager) handleMetrics(c *gin.Context) { m.metrics.handler.ServeHTTP(c.Writer, c.Request) }

// errNotReady classifies a globalmanager that cannot serve yet.
var errNotReady = api.NewKind("globalmanager: not ready", api.ErrUnavailable)

// Ready reports whether the globalmanager can do its work: the store
// answers, the swarm is initialised (unless it runs without one) and the
// workers' bus is up.
func (m *Manager) Ready(ctx context.Context) error {
	if _, err := m.st.GetWorker(ctx, "\x00readyz"); err != nil && !errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("store: %w: %w", api.ErrUnavailable, err)
	}
	m.initMu.Lock()
	inited := m.cfg.NoSwarm || m.nodeID != ""
	m.initMu.Unlock()
	if !inited {
		return fmt.Errorf("%w: the swarm is not initialised yet", errNotReady)
	}
	if m.workers == nil {
		return fmt.Errorf("%w: the workers' bus is not up yet", errNotReady)
	}
	return nil
}

// handleReady checks the store, the swarm and the bus.
// @Summary Readiness
// @Description 200 when the store answers within two seconds, the swarm is initialised (unless the globalmanager runs without one) and the workers' bus is up; 503 naming what is not. Needs no token.
// @Tags monitoring
// @Produce json
// @Success 200 {object} object{status=string} "{"status": "ready"}"
// @Failure 503 {object} api.ErrorBody "the store is unreachable, or the swarm or the bus is not up yet"
// @Router /readyz [get]
func (m *Manager) handleReady(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := m.Ready(ctx); err != nil {
		respond(c, 0, nil, err)
		return
	}
	respond(c, http.StatusOK, gin.H{"status": "ready"}, nil)
}

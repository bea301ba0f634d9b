package frontend

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rswarm/rswarm/api"
)

// metrics is the frontend's Prometheus registry. Job, worker and core
// figures are read from the store and the jobmanager at scrape time, so
// they are right whichever process changed them.
type metrics struct {
	reg       *prometheus.Registry
	submitted *prometheus.CounterVec
	submitLat prometheus.Histogram
	handler   gin.HandlerFunc
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rswarm_jobs_submitted_total", Help: "Jobs submitted, by outcome (accepted or refused).",
		}, []string{"outcome"}),
		submitLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rswarm_submission_seconds", Help: "Time to validate, store and announce one submitted job.",
			Buckets: []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1},
		}),
	}
	m.reg.MustRegister(m.submitted, m.submitLat, &collector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = gin.WrapH(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return m
}

func (m *metrics) observeSubmit(start time.Time, err error) {
	if err != nil {
		m.submitted.WithLabelValues("refused").Inc()
		return
	}
	m.submitted.WithLabelValues("accepted").Inc()
	m.submitLat.Observe(time.Since(start).Seconds())
}

// handleMetrics serves the Prometheus metrics.
// @Summary Prometheus metrics
// @Description Metrics in the Prometheus text format: jobs by state, queue length, placements, placement and submission latency, workers by state, allocated and free cores.
// @Tags monitoring
// @Produce plain
// @Success 200 {string} string "the Prometheus text exposition format"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Security BearerAuth
// @Router /metrics [get]
func (s *Server) handleMetrics(c *gin.Context) { s.metrics.handler(c) }

var (
	descJobs      = prometheus.NewDesc("rswarm_jobs", "Jobs in the store, by state.", []string{"state"}, nil)
	descWorkers   = prometheus.NewDesc("rswarm_workers", "Workers, by status.", []string{"status"}, nil)
	descCores     = prometheus.NewDesc("rswarm_cores", "Cores of ready workers, allocated or free.", []string{"use"}, nil)
	descQueue     = prometheus.NewDesc("rswarm_queue_length", "Jobs waiting in the jobmanager's queue.", nil, nil)
	descPlaced    = prometheus.NewDesc("rswarm_placements_total", "Jobs placed by the jobmanager since it started.", nil, nil)
	descRound     = prometheus.NewDesc("rswarm_placement_round_seconds", "Time one placement round took to decide.", nil, nil)
	descDelay     = prometheus.NewDesc("rswarm_placement_delay_seconds", "Time from a job's submission to its placement.", nil, nil)
	descStrategy  = prometheus.NewDesc("rswarm_strategy_info", "The jobmanager's current placement strategy.", []string{"strategy"}, nil)
	descScrapeErr = prometheus.NewDesc("rswarm_scrape_errors", "Sources that could not be read during this scrape.", []string{"source"}, nil)
)

type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJobs, descWorkers, descCores, descQueue, descPlaced, descRound, descDelay, descStrategy, descScrapeErr} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fail := func(src string) { ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.GaugeValue, 1, src) }
	for st := api.Ready; st <= api.Cancelled; st++ {
		n, err := c.s.jobs.CountJobs(ctx, api.JobFilter{Status: []api.State{st}})
		if err != nil {
			fail("store")
			break
		}
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n), st.String())
	}
	if ws, err := c.s.jobs.ListWorkers(ctx); err != nil {
		fail("store")
	} else {
		by := map[api.WorkerStatus]int{api.WorkerReady: 0, api.WorkerDown: 0, api.WorkerLeft: 0}
		busy, free := 0, 0
		for _, w := range ws {
			by[w.Status]++
			if w.Status == api.WorkerReady {
				b := len(w.BusyCores())
				busy += b
				free += w.Cores - b
			}
		}
		for st, n := range by {
			ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(n), string(st))
		}
		ch <- prometheus.MustNewConstMetric(descCores, prometheus.GaugeValue, float64(busy), "allocated")
		ch <- prometheus.MustNewConstMetric(descCores, prometheus.GaugeValue, float64(free), "free")
	}
	st, err := c.s.sched.Stats(ctx)
	if err != nil {
		fail("jobmanager")
		return
	}
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(st.Queued))
	ch <- prometheus.MustNewConstMetric(descPlaced, prometheus.CounterValue, float64(st.Placed))
	ch <- prometheus.MustNewConstMetric(descStrategy, prometheus.GaugeValue, 1, st.Strategy)
	for _, h := range []struct {
		d *prometheus.Desc
		h api.Histogram
	}{{descRound, st.RoundSeconds}, {descDelay, st.PlacementDelay}} {
		buckets := make(map[float64]uint64, len(h.h.Bounds))
		for i, b := range h.h.Bounds {
			buckets[b] = h.h.Counts[i]
		}
		if m, err := prometheus.NewConstHistogram(h.d, h.h.Count, h.h.Sum, buckets); err == nil {
			ch <- m
		}
	}
}

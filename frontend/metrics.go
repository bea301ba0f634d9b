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
// @Description Metrics in the Prometheus text format: jobs by state, queue length, placements, placement and submission latency, workers by state, allocated and free cores, and the gaps between placement rounds while jobs wait and between status applications while statuses wait (rswarm_placement_round_gap_*, rswarm_status_apply_gap_*).
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

	// The gaps (api.Gaps): a stalled loop shows in them.
	descRoundGap      = prometheus.NewDesc("rswarm_placement_round_gap_seconds", "Gaps between placement rounds while jobs wait: from a round, or a job's submission if later, to the next round.", nil, nil)
	descRoundGapMax   = prometheus.NewDesc("rswarm_placement_round_gap_max_seconds", "The longest gap between placement rounds while jobs waited, since the jobmanager started.", nil, nil)
	descRoundGapAt    = prometheus.NewDesc("rswarm_placement_round_gap_max_end_time_seconds", "Unix time at which the longest gap between placement rounds ended.", nil, nil)
	descStatusGap     = prometheus.NewDesc("rswarm_status_apply_gap_seconds", "Gaps between applications of task statuses while statuses wait: from a batch applied, or a status's arrival if later, to the next batch applied.", nil, nil)
	descStatusGapMax  = prometheus.NewDesc("rswarm_status_apply_gap_max_seconds", "The longest gap between applications of task statuses while statuses waited, since discovery started.", nil, nil)
	descStatusGapAt   = prometheus.NewDesc("rswarm_status_apply_gap_max_end_time_seconds", "Unix time at which the longest gap between applications of task statuses ended.", nil, nil)
	descStatusApplied = prometheus.NewDesc("rswarm_statuses_applied_total", "Task statuses discovery applied since it started.", nil, nil)
)

// statusTimeout bounds the read of discovery's figures: a scrape should
// not wait long for a discovery that is away.
const statusTimeout = 2 * time.Second

type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJobs, descWorkers, descCores, descQueue, descPlaced, descRound, descDelay, descStrategy, descScrapeErr,
		descRoundGap, descRoundGapMax, descRoundGapAt, descStatusGap, descStatusGapMax, descStatusGapAt, descStatusApplied} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fail := func(src string) { ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.GaugeValue, 1, src) }
	if c.s.cfg.Statuses != nil {
		sctx, scancel := context.WithTimeout(ctx, statusTimeout)
		st, err := c.s.cfg.Statuses.StatusStats(sctx)
		scancel()
		if err != nil {
			fail("discovery")
		} else {
			gapMetrics(ch, st.ApplyGaps, descStatusGap, descStatusGapMax, descStatusGapAt)
			ch <- prometheus.MustNewConstMetric(descStatusApplied, prometheus.CounterValue, float64(st.Applied))
		}
	}
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
		histogram(ch, h.d, h.h)
	}
	gapMetrics(ch, st.RoundGaps, descRoundGap, descRoundGapMax, descRoundGapAt)
}

func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h api.Histogram) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	if m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum, buckets); err == nil {
		ch <- m
	}
}

// gapMetrics sends a record of gaps as its histogram, its longest gap and
// when that one ended.
func gapMetrics(ch chan<- prometheus.Metric, g api.Gaps, hist, longest, at *prometheus.Desc) {
	histogram(ch, hist, g.Hist)
	ch <- prometheus.MustNewConstMetric(longest, prometheus.GaugeValue, g.Max)
	ch <- prometheus.MustNewConstMetric(at, prometheus.GaugeValue, g.MaxAt)
}

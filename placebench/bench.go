// Package placebench owns the placement benchmark behind `rswarm bench
// placement`: a seeded sequence of requests and frees run on placement's
// indexed strategies and, on the same sequence, on its naive reference,
// with the clock, the heap figures, the cross-check of their decisions and
// the printed report. The timing lives here so that placement stays pure.
package placebench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/rswarm/rswarm/placement"
)

// Options describe a placement benchmark: Workers workers of Cores
// cores, and single-task requests of 1..Cores/8 cores (at least 1), drawn
// from a seeded generator. Before measuring, both implementations fill the
// cluster with the same requests until utilisation first passes MaxUtil;
// then each measured decision is preceded by releasing random live tasks
// while utilisation is above MaxUtil, so placements and frees alternate.
type Options struct {
	Workers  int
	Cores    int
	Tasks    int    // measured decisions of the indexed implementation
	Strategy string // a bin-packing strategy or priority (best fit per job)
	Seed     uint64
	// NaiveTasks is the measured decisions of the naive reference: 0 means
	// min(Tasks, 100000); negative skips the naive run.
	NaiveTasks int
	// MaxUtil is the utilisation (0..1) above which tasks are released; 0 means 0.9.
	MaxUtil float64
	// MemPerCore is the memory each requested core brings (bytes); workers
	// get twice that per core, so memory is checked on every decision
	// without being what runs out. 0 means 256 MB.
	MemPerCore int64
	// SampleEvery times one decision in so many (0 means 64), so that
	// reading the clock does not dominate.
	SampleEvery int
	// Clock, if set, measures the throughput figures (decisions/s and
	// +frees/s), for example the process's CPU time, so that other
	// processes sharing the machine do not count against the run; nil means
	// wall time. ClockName names it in the report. Latency samples always
	// use wall time.
	Clock     func() time.Duration
	ClockName string
}

// Run is what one implementation did and cost.
type Run struct {
	Name      string
	Warmup    int           // unmeasured decisions that filled the cluster
	Decisions int           // measured decisions
	Placed    int           // measured decisions that placed the task
	Frees     int           // tasks released during the measured phase
	Elapsed   time.Duration // time of the measured phase, frees included (Options.Clock)
	Placing   time.Duration // the part of Elapsed spent placing (frees excluded)
	// PerSecond is Decisions / Placing: decisions per second of deciding.
	PerSecond float64
	// WithFrees is Decisions / Elapsed: the rate when each decision also
	// pays for the frees that make room for it.
	WithFrees float64
	// P50 and P99 are per-decision latencies from the sampled decisions,
	// less the median cost of timing an empty interval.
	P50, P99 time.Duration
	// AllocsPerDecision is heap allocations (runtime.MemStats.Mallocs) per
	// measured decision, frees included.
	AllocsPerDecision float64
	// PeakHeap is the peak of HeapInuse during the run (sampled) above its
	// value before the cluster was built: the cluster, its index, the
	// driver's state, and garbage not yet collected.
	PeakHeap uint64
	// LiveHeap is HeapInuse after a collection at the end of the run, above
	// the same base: what the cluster and its index (and the driver) keep.
	LiveHeap uint64
}

// Report is the result of Bench.
type Report struct {
	Options Options
	Indexed Run
	Naive   *Run // nil when skipped
	// Ratio is Indexed.PerSecond / Naive.PerSecond: what the index buys
	// when deciding.
	Ratio float64
	// RatioWithFrees is Indexed.WithFrees / Naive.WithFrees: the same with
	// the frees that make room for each decision counted on both sides.
	RatioWithFrees float64
	// Compared is how many decisions (warm-up included) both made on the
	// same sequence; Agreed how many chose the same worker and the same
	// core list (or both placed nothing).
	Compared, Agreed int
	// Disagreement describes the first decision they differed on, if any.
	Disagreement string
}

var (
	// ErrBadOptions: Options that cannot run.
	ErrBadOptions = errors.New("placebench: bad benchmark options")
	// ErrDisagreed: the indexed and naive placements made different
	// decisions on the same sequence; one of them is wrong.
	ErrDisagreed = errors.New("placebench: the indexed and naive placements disagreed")
)

// Check returns nil when the naive reference agreed on every decision
// compared (or was skipped), and an error wrapping ErrDisagreed otherwise:
// the benchmark is also a cross-check, and its caller must fail on it.
func (r Report) Check() error {
	if r.Naive == nil || r.Agreed == r.Compared {
		return nil
	}
	return fmt.Errorf("%w on %d of %d decisions; first: %s", ErrDisagreed, r.Compared-r.Agreed, r.Compared, r.Disagreement)
}

func (o *Options) fill() error {
	switch {
	case o.Workers < 1:
		return fmt.Errorf("%w: workers must be at least 1, got %d", ErrBadOptions, o.Workers)
	case o.Cores < 1:
		return fmt.Errorf("%w: cores must be at least 1, got %d", ErrBadOptions, o.Cores)
	case o.Tasks < 1:
		return fmt.Errorf("%w: tasks must be at least 1, got %d", ErrBadOptions, o.Tasks)
	case o.MaxUtil < 0 || o.MaxUtil > 1:
		return fmt.Errorf("%w: max utilisation must be within 0..1, got %g", ErrBadOptions, o.MaxUtil)
	}
	if o.Strategy == "" {
		o.Strategy = placement.Default
	}
	if _, err := placement.NewNaive(o.Strategy); errors.Is(err, placement.ErrNoNaive) {
		return fmt.Errorf("%w: strategy %s does not take single unpinned requests", ErrBadOptions, o.Strategy)
	} else if err != nil {
		return err
	}
	if o.NaiveTasks == 0 {
		o.NaiveTasks = min(o.Tasks, 100000)
	}
	if o.MaxUtil == 0 {
		o.MaxUtil = 0.9
	}
	if o.MemPerCore <= 0 {
		o.MemPerCore = 256e6
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 64
	}
	if o.Clock == nil {
		epoch := time.Now()
		o.Clock = func() time.Duration { return time.Since(epoch) }
		o.ClockName = "wall time"
	}
	return nil
}

// target is one implementation under test: *placement.Naive is one.
type target interface {
	Place(j placement.Job) ([]placement.Assignment, bool)
	Release(task string) bool
}

// indexed is the indexed cluster and strategy as a target.
type indexed struct {
	c *placement.Cluster
	s placement.Strategy
}

func (t *indexed) Place(j placement.Job) ([]placement.Assignment, bool) {
	as, _, ok := t.s.Place(t.c, j)
	return as, ok
}

func (t *indexed) Release(task string) bool {
	_, _, ok := t.c.Release(task)
	return ok
}

// driver generates the seeded sequence of requests and frees. Every
// request has a fresh task name, as a jobmanager sees new tasks.
type driver struct {
	o      Options
	rng    *rand.Rand
	maxReq int
	names  []string    // one task name per request, made before measuring
	next   int         // the next name
	live   []liveEntry // live tasks
	req    int         // cores of the pending request
	busy   int
	limit  int // release while busy > limit
	task   [1]placement.Task
	job    placement.Job
}

// liveEntry is a live task of the benchmark: its name and cores.
type liveEntry struct {
	name, cores int32
}

func newDriver(o Options, names []string) *driver {
	d := &driver{
		o:      o,
		rng:    rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		maxReq: max(1, o.Cores/8),
		names:  names,
		live:   make([]liveEntry, 0, min(len(names), warmBound(o))),
		limit:  int(o.MaxUtil * float64(o.Workers) * float64(o.Cores)),
	}
	d.job.Tasks = d.task[:]
	return d
}

// warmBound bounds the requests of the warm-up: each placed request takes
// at least one core, and warming stops past the limit or at the first
// failure.
func warmBound(o Options) int {
	return int(o.MaxUtil*float64(o.Workers)*float64(o.Cores)) + 2
}

// taskNames makes one task name per request of a warm-up and decisions.
func taskNames(o Options, decisions int) []string {
	names := make([]string, warmBound(o)+decisions)
	for i := range names {
		names[i] = "t" + strconv.Itoa(i)
	}
	return names
}

// frees releases random live tasks while utilisation is above the limit.
func (d *driver) frees(t target) int {
	n := 0
	for d.busy > d.limit && len(d.live) > 0 {
		k := d.rng.IntN(len(d.live))
		e := d.live[k]
		d.live[k] = d.live[len(d.live)-1]
		d.live = d.live[:len(d.live)-1]
		t.Release(d.names[e.name])
		d.busy -= int(e.cores)
		n++
	}
	return n
}

// request draws the next request into d.job.
func (d *driver) request() {
	r := 1 + d.rng.IntN(d.maxReq)
	d.req = r
	d.task[0] = placement.Task{Name: d.names[d.next], Cores: r, Mem: int64(r) * d.o.MemPerCore}
	d.job.Name = d.task[0].Name
	d.next++
}

// done records the outcome of the pending request.
func (d *driver) done(ok bool) {
	if ok {
		d.live = append(d.live, liveEntry{int32(d.next - 1), int32(d.req)})
		d.busy += d.req
	}
}

// record keeps the decisions of the indexed run, up to a capacity:
// decision i chose worker workers[i] ("" when it placed nothing) and the
// cores cores[ends[i-1]:ends[i]]. The core lists share one array made
// before measuring, so noting a decision does not allocate. The naive run
// is compared with it decision by decision (a record made by against), so
// that only one run's decisions are kept.
type record struct {
	workers []string
	ends    []int32
	cores   []int32

	// Set by against: the record compared with, how many decisions were
	// compared and agreed, and the first disagreement in words.
	want             *record
	compared, agreed int
	first            string
}

// newRecord makes room for n decisions of up to maxReq cores each.
func newRecord(n, maxReq int) *record {
	return &record{workers: make([]string, 0, n), ends: make([]int32, 0, n), cores: make([]int32, 0, n*maxReq)}
}

// against returns a record that compares the decisions noted in it with
// want's, in order, instead of keeping them.
func (r *record) against() *record { return &record{want: r} }

// note records one decision, or compares it (nothing once full or past
// the decisions compared with; r may be nil).
func (r *record) note(as []placement.Assignment, ok bool) {
	switch {
	case r == nil:
	case r.want != nil:
		r.compare(as, ok)
	case len(r.workers) == cap(r.workers):
	default:
		if ok {
			r.workers = append(r.workers, as[0].Worker)
			for _, c := range as[0].Cores {
				r.cores = append(r.cores, int32(c))
			}
		} else {
			r.workers = append(r.workers, "")
		}
		r.ends = append(r.ends, int32(len(r.cores)))
	}
}

// compare checks the next decision against the same one in r.want: the
// same worker and the same core list, or nothing placed by both.
func (r *record) compare(as []placement.Assignment, ok bool) {
	i := r.compared
	if i >= len(r.want.workers) {
		return
	}
	r.compared++
	w, cores := r.want.at(i)
	same := ok == (w != "")
	if same && ok {
		same = as[0].Worker == w && len(as[0].Cores) == len(cores)
		for k := 0; same && k < len(cores); k++ {
			same = as[0].Cores[k] == int(cores[k])
		}
	}
	if same {
		r.agreed++
		return
	}
	if r.first == "" {
		got := "nothing"
		if ok {
			got = fmt.Sprintf("worker %q cores %v", as[0].Worker, as[0].Cores)
		}
		r.first = fmt.Sprintf("decision %d: indexed chose %s, naive %s", i, r.want.describe(i), got)
	}
}

// at returns decision i: its worker ("" for none) and cores.
func (r *record) at(i int) (string, []int32) {
	lo := int32(0)
	if i > 0 {
		lo = r.ends[i-1]
	}
	return r.workers[i], r.cores[lo:r.ends[i]]
}

// describe says what decision i chose, in words.
func (r *record) describe(i int) string {
	w, cores := r.at(i)
	if w == "" {
		return "nothing"
	}
	return fmt.Sprintf("worker %q cores %v", w, cores)
}

// warm fills the cluster with requests until utilisation first passes the
// limit (or a request fails) and returns how many it made.
func (d *driver) warm(t target, rec *record) int {
	n := 0
	for d.busy <= d.limit {
		d.request()
		as, ok := t.Place(d.job)
		rec.note(as, ok)
		d.done(ok)
		n++
		if !ok {
			break // as full as this sequence gets
		}
	}
	return n
}

// run warms the cluster, then measures decisions; rec, if not nil, gets
// the decisions (warm-up first) up to its capacity.
func (d *driver) run(name string, t target, decisions int, rec *record) Run {
	warmup := d.warm(t, rec)
	r := d.measure(name, t, decisions, rec)
	r.Warmup = warmup
	return r
}

// measure makes decisions in batches of SampleEvery, each batch preceded by
// the frees that bring utilisation back under the limit.
func (d *driver) measure(name string, t target, decisions int, rec *record) Run {
	r := Run{Name: name}
	samples := make([]int64, 0, decisions/d.o.SampleEvery+1)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	peak := ms.HeapInuse
	const peekEvery = 1 << 16
	clock := d.o.Clock
	start := clock()
	var placing time.Duration
	lastPeek := 0
	for i := 0; i < decisions; {
		// A batch: release while above the limit, then SampleEvery
		// decisions, timing the first alone and the batch as a whole.
		r.Frees += d.frees(t)
		c0 := clock()
		t0 := time.Now()
		for k := 0; k < d.o.SampleEvery && i < decisions; k, i = k+1, i+1 {
			d.request()
			as, ok := t.Place(d.job)
			if k == 0 {
				samples = append(samples, int64(time.Since(t0)))
			}
			rec.note(as, ok)
			d.done(ok)
			if ok {
				r.Placed++
			}
		}
		placing += clock() - c0
		if i/peekEvery != lastPeek {
			lastPeek = i / peekEvery
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	r.Elapsed = clock() - start
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapInuse)
	r.Decisions = decisions
	r.Placing = placing
	r.PerSecond = float64(decisions) / placing.Seconds()
	r.WithFrees = float64(decisions) / r.Elapsed.Seconds()
	r.AllocsPerDecision = float64(ms.Mallocs-mallocs) / float64(decisions)
	r.PeakHeap = peak
	slices.Sort(samples)
	if n := len(samples); n > 0 {
		clock := clockCost()
		r.P50 = time.Duration(max(0, samples[n/2]-clock))
		r.P99 = time.Duration(max(0, samples[min(n-1, n*99/100)]-clock))
	}
	return r
}

// Bench measures the indexed implementation of a strategy and, on the same
// seeded sequence, placement's naive reference that scans every worker,
// and compares every decision they made (worker and whole core list); a
// caller must fail when Report.Check does. It runs on the calling
// goroutine; GOMAXPROCS is the caller's choice.
func Bench(o Options) (Report, error) {
	return bench(o, nil)
}

// bench is Bench with a seam: wrap, if not nil, stands between the run and
// the naive reference (tests use it to make the reference choose wrongly).
func bench(o Options, wrap func(target) target) (Report, error) {
	if err := o.fill(); err != nil {
		return Report{}, err
	}
	rep := Report{Options: o}
	s, err := placement.New(o.Strategy, placement.Options{})
	if err != nil {
		return rep, err
	}

	maxReq := max(1, o.Cores/8)
	var want *record
	if o.NaiveTasks > 0 {
		want = newRecord(warmBound(o)+o.NaiveTasks, maxReq)
	}
	names := taskNames(o, o.Tasks)

	idx, err := runIndexed(o, s, names, want)
	if err != nil {
		return rep, err
	}
	rep.Indexed = idx
	if o.NaiveTasks <= 0 {
		return rep, nil
	}
	got := want.against()
	nr, err := runNaive(o, names, got, wrap)
	if err != nil {
		return rep, err
	}
	rep.Naive = &nr
	rep.Ratio = rep.Indexed.PerSecond / nr.PerSecond
	rep.RatioWithFrees = rep.Indexed.WithFrees / nr.WithFrees
	rep.Compared, rep.Agreed, rep.Disagreement = got.compared, got.agreed, got.first
	return rep, nil
}

// runIndexed builds the indexed cluster and runs the sequence on it. The
// cluster is garbage once it returns, so the naive run is measured alone.
func runIndexed(o Options, s placement.Strategy, names []string, rec *record) (Run, error) {
	base := heapBase()
	c := placement.NewCluster()
	for i := range o.Workers {
		if err := c.AddWorker(workerName(i), o.Cores, 2*int64(o.Cores)*o.MemPerCore); err != nil {
			return Run{}, err
		}
	}
	r := newDriver(o, names).run("indexed", &indexed{c: c, s: s}, o.Tasks, rec)
	r.PeakHeap -= min(r.PeakHeap, base)
	live := heapBase()
	r.LiveHeap = live - min(live, base)
	runtime.KeepAlive(c)
	runtime.KeepAlive(names) // part of the base: keep it out of the difference
	return r, nil
}

// runNaive builds the naive reference and runs the same sequence on it.
func runNaive(o Options, names []string, rec *record, wrap func(target) target) (Run, error) {
	base := heapBase()
	n, err := placement.NewNaive(o.Strategy)
	if err != nil {
		return Run{}, err
	}
	for i := range o.Workers {
		n.AddWorker(workerName(i), o.Cores, 2*int64(o.Cores)*o.MemPerCore)
	}
	var t target = n
	if wrap != nil {
		t = wrap(t)
	}
	r := newDriver(o, names).run("naive", t, o.NaiveTasks, rec)
	r.PeakHeap -= min(r.PeakHeap, base)
	live := heapBase()
	r.LiveHeap = live - min(live, base)
	runtime.KeepAlive(n)
	runtime.KeepAlive(names)
	return r, nil
}

// clockCost returns the median time measured for an empty interval: what
// reading the clock adds to each sample.
func clockCost() int64 {
	const n = 1001
	d := make([]int64, n)
	for i := range d {
		t0 := time.Now()
		d[i] = int64(time.Since(t0))
	}
	slices.Sort(d)
	return d[n/2]
}

func workerName(i int) string { return "w" + strconv.Itoa(i) }

// heapBase collects garbage and returns HeapInuse.
func heapBase() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Write prints the report as a table.
func (r Report) Write(w io.Writer) error {
	o := r.Options
	p := &errWriter{w: w}
	p.printf("placement benchmark: strategy %s, %d workers x %d cores, requests of 1..%d cores (memory %s per core), seed %d\n",
		o.Strategy, o.Workers, o.Cores, max(1, o.Cores/8), strconv.FormatFloat(float64(o.MemPerCore)/1e6, 'f', -1, 64)+" MB", o.Seed)
	p.printf("each run first fills the cluster to %.0f%% utilisation (unmeasured), then measures decisions, first\n", 100*o.MaxUtil)
	p.printf("releasing random live tasks while utilisation is above it, in batches of %d decisions.\n", o.SampleEvery)
	p.printf("decisions/s counts the time spent placing; +frees/s also the frees; p50/p99 from 1 decision in %d\n", o.SampleEvery)
	p.printf("(less the %d ns that timing an empty interval measures here); throughput by %s.\n\n", clockCost(), o.ClockName)
	p.printf("%-8s %8s %9s %9s %9s %12s %12s %8s %8s %10s %10s %10s\n",
		"", "warm-up", "decisions", "placed", "frees", "decisions/s", "+frees/s", "p50 ns", "p99 ns", "allocs/dec", "peak heap", "live heap")
	runs := []Run{r.Indexed}
	if r.Naive != nil {
		runs = append(runs, *r.Naive)
	}
	for _, b := range runs {
		p.printf("%-8s %8d %9d %9d %9d %12.0f %12.0f %8d %8d %10.2f %10s %10s\n",
			b.Name, b.Warmup, b.Decisions, b.Placed, b.Frees, b.PerSecond, b.WithFrees, b.P50.Nanoseconds(), b.P99.Nanoseconds(),
			b.AllocsPerDecision, formatBytes(b.PeakHeap), formatBytes(b.LiveHeap))
	}
	if r.Naive == nil {
		p.printf("\nnaive reference skipped\n")
		return p.err
	}
	if r.Naive.Decisions < r.Indexed.Decisions {
		p.printf("\nthe naive reference measured fewer decisions (%d, --naive-tasks) to keep the run short\n", r.Naive.Decisions)
	} else {
		p.printf("\n")
	}
	p.printf("speed ratio indexed/naive: %.1fx deciding, %.1fx with the frees counted\n", r.Ratio, r.RatioWithFrees)
	if r.Agreed == r.Compared {
		p.printf("decisions compared: %d (warm-up included); the naive reference agreed on every one\n", r.Compared)
	} else {
		p.printf("decisions compared: %d; DISAGREED on %d; first: %s\n", r.Compared, r.Compared-r.Agreed, r.Disagreement)
	}
	return p.err
}

// formatBytes writes a byte count in binary units: "12.3 MiB".
func formatBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return strconv.FormatFloat(float64(b)/(1<<30), 'f', 1, 64) + " GiB"
	case b >= 1<<20:
		return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB"
	case b >= 1<<10:
		return strconv.FormatFloat(float64(b)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatUint(b, 10) + " B"
}

type errWriter struct {
	w   io.Writer
	err error
}

func (p *errWriter) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

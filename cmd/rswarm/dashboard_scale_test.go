package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// TestDashboardThousandWorkers loads the cluster view of 1,000 simulated
// workers, half of their cores busy, and checks that every worker has its
// row and that the filter finds one. It prints how long a redraw takes.
func TestDashboardThousandWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (skipped by -short)")
	}
	browser := newBrowser(t)
	const workers, cores = 1000, 16
	sys := newSystem(t)
	start(t, "rswarm up --runtime sim", append([]string{"up", "--runtime", "sim", "--workers", fmt.Sprint(workers), "--cores", fmt.Sprint(cores)}, sys.flags()...)...)
	c := sys.client()
	waitWorkers(t, c, workers)
	batch := make([]*api.Job, 0, 1000)
	for i := range cap(batch) {
		batch = append(batch, apitest.Job(fmt.Sprintf("big%04d", i), 2, 4, "sleep 3600"))
	}
	if err := c.Do(context.Background(), "POST", "/api/v1/jobs", batch, nil); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, 2*time.Minute, func() error {
		l, err := c.Jobs(context.Background(), api.JobFilter{Status: []api.State{api.Running}, Limit: 1})
		if err != nil || l.Total < len(batch) {
			return fmt.Errorf("%v jobs running (%v)", l, err)
		}
		return nil
	})

	tab, cancel := chromedp.NewContext(browser)
	defer cancel()
	ctx, cancel := context.WithTimeout(tab, 3*time.Minute)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1360, 900), chromedp.Navigate("http://"+sys.fe+"/ui/#/cluster")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "a row per worker", fmt.Sprintf(`document.querySelectorAll("#workers tr[data-worker]").length === %d`, workers))
	waitJS(t, ctx, "every busy core coloured", fmt.Sprintf(`document.querySelectorAll("#workers .core[data-job]").length === %d`, len(batch)*8))
	// A full redraw (every row rebuilt), and a redraw where nothing changed.
	ms := evalJS[[]float64](t, ctx, `(() => {
		let t0 = performance.now(); clusterSig = new Map(); renderCluster(); document.body.offsetHeight; const full = performance.now() - t0;
		t0 = performance.now(); renderCluster(); document.body.offsetHeight; return [full, performance.now() - t0]; })()`)
	t.Logf("cluster view of %d workers x %d cores: full redraw %.0f ms, unchanged redraw %.0f ms", workers, cores, ms[0], ms[1])
	// The window's worth: the whole page is a thousand rows tall.
	saveShot(t, ctx, "dashboard-cluster-1000", func(b *[]byte, _ int) chromedp.EmulateAction { return chromedp.CaptureScreenshot(b) })
	if err := chromedp.Run(ctx, chromedp.SendKeys("#w-filter", "big0420", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the filter finds the workers of one job", `(() => { const r = document.querySelectorAll("#workers tr[data-worker]");
		return r.length >= 1 && r.length <= 2 && [...r].every(tr => tr.querySelector('.core[data-job="big0420"]')); })()`)
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// The dashboard (/ui/) is checked in headless Chromium against a running
// `rswarm up` with simulated workers and an API token.

// submitThroughCLI submits a job as a user would, with the client CLI:
// `rswarm job submit -q FILE --api-token TOKEN`.
func submitThroughCLI(t *testing.T, sys *system, token string, j *api.Job) {
	t.Helper()
	r := mustCLI(t, sys, "job", "submit", "-q", writeJob(t, j), "--api-token", token)
	if strings.TrimSpace(r.stdout) != j.Name {
		t.Fatalf("rswarm job submit printed %q, want %s", r.stdout, j.Name)
	}
}

// screenshotDir is where the dashboard tests put their screenshots:
// $RSWARM_SCREENSHOT_DIR when set, else the test's artifact directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("RSWARM_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

// screenshot saves the whole page as name.png and checks that something was drawn.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	saveShot(t, ctx, name, chromedp.FullScreenshot)
}

// saveShot saves what take captures as name.png.
func saveShot(t *testing.T, ctx context.Context, name string, take func(*[]byte, int) chromedp.EmulateAction) {
	t.Helper()
	var shot []byte
	if err := chromedp.Run(ctx, take(&shot, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	checkRendered(t, shot)
	file := filepath.Join(screenshotDir(t), name+".png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", file)
}

// waitJS polls a JavaScript expression in the page until it is true. On a
// timeout the test fails with what and the page's text.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(pctx, chromedp.Poll(expr, nil, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		var text string
		_ = chromedp.Run(ctx, chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &text))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, text)
	}
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	var v T
	if err := chromedp.Run(ctx, chromedp.Evaluate(expr, &v)); err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// TestDashboard drives the dashboard as a user: it asks for the API token
// (again when the first one is wrong), shows a submitted job appear and
// reach Down in the jobs table without a reload, shows a running job's
// cores on the cluster view with their task and job on hover, opens the
// job's page, cancels the job there, and shows its cores free.
func TestDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (skipped by -short)")
	}
	browser := newBrowser(t)
	const token = "dashboard-test-token"
	sys := newSystem(t)
	start(t, "rswarm up --runtime sim", append([]string{"up", "--runtime", "sim", "--workers", "10", "--cores", "12", "--api-token", token}, sys.flags()...)...)
	c := api.NewClient("http://"+sys.fe, token)
	waitWorkers(t, c, 10)
	base := "http://" + sys.fe + "/ui/"

	// Jobs that keep cores busy, so that the cluster view has something to show.
	stamp := strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
	for i, shape := range [][2]int{{3, 2}, {2, 3}, {4, 1}, {1, 4}, {2, 2}, {3, 1}, {1, 5}, {2, 1}, {4, 2}, {1, 6}, {3, 3}, {2, 4}, {1, 2}, {5, 1}} {
		submitThroughCLI(t, sys, token, apitest.Job(fmt.Sprintf("load%d-%s", i, stamp), shape[0], shape[1], "sleep 3600"))
	}

	tab, cancel := chromedp.NewContext(browser)
	defer cancel()
	ctx, cancel := context.WithTimeout(tab, 4*time.Minute)
	defer cancel()

	t.Run("asks for the token", func(t *testing.T) {
		if code, _ := httpStatus(t, "http://"+sys.fe+"/api/v1/workers"); code != http.StatusUnauthorized {
			t.Fatalf("GET /api/v1/workers without the token: %d, want 401", code)
		}
		if err := chromedp.Run(ctx, chromedp.Navigate(base)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the token dialog opens", `document.querySelector("#token-dialog").open`)
		if err := chromedp.Run(ctx,
			chromedp.SendKeys("#token-input", "wrong-token", chromedp.ByQuery),
			chromedp.Click("#token-ok", chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "a refused token is asked for again",
			`document.querySelector("#token-dialog").open && document.querySelector("#token-why").textContent.includes("refused")`)
		if err := chromedp.Run(ctx,
			chromedp.SendKeys("#token-input", token, chromedp.ByQuery),
			chromedp.Click("#token-ok", chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the cluster view lists the 10 workers", `document.querySelectorAll("#workers tr[data-worker]").length === 10`)
		if got := evalJS[string](t, ctx, `sessionStorage.getItem("rswarm.token")`); got != token {
			t.Errorf("sessionStorage holds %q, want the token", got)
		}
		// A reload keeps the token for the session: no second question.
		if err := chromedp.Run(ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "after a reload the workers are listed", `document.querySelectorAll("#workers tr[data-worker]").length === 10`)
		if evalJS[bool](t, ctx, `document.querySelector("#token-dialog").open`) {
			t.Error("the token was asked for again after a reload")
		}
		waitJS(t, ctx, "the event stream is live", `document.querySelector("#conn").classList.contains("live")`)
	})
	if t.Failed() {
		return
	}

	t.Run("a job appears and reaches Down without a reload", func(t *testing.T) {
		if err := chromedp.Run(ctx, chromedp.Navigate(base+"#/jobs")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the jobs table lists the load", `document.querySelectorAll("#jobs-table tr[data-job]").length >= 14`)
		waitJS(t, ctx, "the event stream is live", `document.querySelector("#conn").classList.contains("live")`)
		// A mark on the window is lost if the page reloads.
		_ = evalJS[bool](t, ctx, `window.rswarmNotReloaded = true`)
		name := "quick-" + stamp
		submitThroughCLI(t, sys, token, apitest.Job(name, 2, 1, "sleep 2"))
		row := fmt.Sprintf(`document.querySelector('#jobs-table tr[data-job="%s"]')`, name)
		waitJS(t, ctx, "the new job appears in the table", row+` !== null`)
		waitJS(t, ctx, "the new job reaches Down in the table", row+` && `+row+`.querySelector("td.status").textContent === "Down"`)
		if !evalJS[bool](t, ctx, `window.rswarmNotReloaded === true`) {
			t.Error("the page reloaded")
		}
		screenshot(t, ctx, "dashboard-jobs")
		// The status filter: only Down jobs.
		if err := chromedp.Run(ctx, chromedp.Click(`#status-chips button[data-status="Down"]`, chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the Down filter keeps only the ended job",
			`(() => { const r = document.querySelectorAll("#jobs-table tr[data-job]"); return r.length === 1 && r[0].dataset.job === "`+name+`"; })()`)
		if err := chromedp.Run(ctx, chromedp.Click(`#status-chips button[data-status="Down"]`, chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
	})

	victim := "cancel-" + stamp
	t.Run("cluster view, job page, cancel", func(t *testing.T) {
		submitThroughCLI(t, sys, token, apitest.Job(victim, 2, 2, "sleep 3600"))
		waitJob(t, c, victim, time.Minute, running)
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(1360, 680), chromedp.Navigate(base+"#/cluster")); err != nil {
			t.Fatal(err)
		}
		cores := fmt.Sprintf(`document.querySelectorAll('#workers .core[data-job="%s"]').length`, victim)
		waitJS(t, ctx, "the cluster view shows the job's 4 cores", cores+` === 4`)
		// Hovering a core names its task, its job and since when.
		_ = evalJS[bool](t, ctx, fmt.Sprintf(`document.querySelector('#workers .core[data-job="%s"]').dispatchEvent(new MouseEvent("mouseover", {bubbles: true})) || true`, victim))
		tip := evalJS[string](t, ctx, `document.querySelector("#tip").hidden ? "" : document.querySelector("#tip").textContent`)
		for _, want := range []string{"task " + victim + "_task", "job " + victim, "since "} {
			if !strings.Contains(tip, want) {
				t.Errorf("the core's tooltip %q lacks %q", tip, want)
			}
		}
		screenshot(t, ctx, "dashboard-cluster")
		// The keyboard: a worker's row, focused, says the same.
		row := fmt.Sprintf(`document.querySelector('#workers .core[data-job="%s"]').closest("tr")`, victim)
		_ = evalJS[bool](t, ctx, row+`.focus() || true`)
		if tip := evalJS[string](t, ctx, `document.querySelector("#tip").hidden ? "" : document.querySelector("#tip").textContent`); !strings.Contains(tip, "of job "+victim) {
			t.Errorf("the focused row's tip %q does not name job %s", tip, victim)
		}

		// The job's page, opened from the jobs table.
		if err := chromedp.Run(ctx, chromedp.Navigate(base+"#/jobs")); err != nil {
			t.Fatal(err)
		}
		link := fmt.Sprintf(`#jobs-table tr[data-job="%s"] a`, victim)
		if err := chromedp.Run(ctx, chromedp.WaitVisible(link, chromedp.ByQuery), chromedp.Click(link, chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the job's page shows its running tasks",
			fmt.Sprintf(`document.querySelector("#h-job").textContent === "%s" && document.querySelectorAll('#tasks-table tr[data-task]').length === 2 &&
			 [...document.querySelectorAll('#tasks-table td.state')].every(td => td.textContent === "Running") &&
			 document.querySelectorAll('#tasks-table .migrate-btn').length === 2`, victim))
		j, err := c.Job(context.Background(), victim)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range j.Info.Tasks {
			got := evalJS[[]string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll('#tasks-table tr[data-task="%s"] td')].map(td => td.textContent)`, task.ContainerName))
			if len(got) < 4 || got[2] != task.Node || !strings.Contains(got[3], task.CpusetCpus) {
				t.Errorf("task %s's row %q, want node %s and cores %s", task.ContainerName, got, task.Node, task.CpusetCpus)
			}
		}
		screenshot(t, ctx, "dashboard-job")

		// Move its first task to a worker with room, from the page.
		task := j.Info.Tasks[0]
		to := ""
		ws, err := c.Workers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if w.ID != task.Node && w.ID != j.Info.Tasks[1].Node && w.Cores-len(w.BusyCores()) >= task.ReqCores {
				to = w.ID
				break
			}
		}
		if to == "" {
			t.Fatal("no worker has room for the migration")
		}
		row = fmt.Sprintf(`#tasks-table tr[data-task="%s"]`, task.ContainerName)
		_ = evalJS[bool](t, ctx, fmt.Sprintf(`(() => { const s = document.querySelector('%s select'); s.value = "%s"; return s.value === "%s"; })()`, row, to, to))
		if err := chromedp.Run(ctx, chromedp.Click(row+" .migrate-btn", chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the page shows the task on its new worker", fmt.Sprintf(
			`(() => { const r = document.querySelector('%s'); return r && r.children[2].textContent === "%s" && r.children[1].textContent === "Running"; })()`, row, to))
		if j = waitJob(t, c, victim, 30*time.Second, running); j.Info.Tasks[0].Node != to {
			t.Fatalf("task %s runs on %s, want %s", task.ContainerName, j.Info.Tasks[0].Node, to)
		}

		// Cancel it from the page.
		if err := chromedp.Run(ctx, chromedp.Click("#job-cancel", chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the cancel is confirmed first", `document.querySelector("#confirm-dialog").open`)
		if err := chromedp.Run(ctx, chromedp.Click("#confirm-yes", chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the job's page says Cancelled", `document.querySelector("#job-status").textContent === "Cancelled"`)
		if j := waitJob(t, c, victim, 10*time.Second, final); j.Status != api.Cancelled {
			t.Fatalf("the job is %s, want Cancelled", j.Status)
		}

		// Its cores are free on the cluster view.
		if err := chromedp.Run(ctx, chromedp.Navigate(base+"#/cluster")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the job's cores are free on the cluster view", cores+` === 0 && document.querySelectorAll("#workers .core[data-job]").length > 0`)
		for _, task := range j.Info.Tasks {
			for core, holder := range busyOn(t, c, task.Node) {
				if holder == task.ContainerName {
					t.Errorf("core %s of %s is still held by %s", core, task.Node, holder)
				}
			}
		}
	})

	t.Run("queue, utilisation and events views", func(t *testing.T) {
		if err := chromedp.Run(ctx, chromedp.Navigate(base+"#/queue")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the queue lists the strategies", `document.querySelectorAll('#strategy-options input[name="strategy"]').length > 1`)
		cur := evalJS[string](t, ctx, `document.querySelector("#strategy-current").textContent`)
		pick := evalJS[string](t, ctx, `[...document.querySelectorAll('#strategy-options input')].find(i => !i.checked).value`)
		if err := chromedp.Run(ctx, chromedp.Click(fmt.Sprintf(`#strategy-options input[value="%s"]`, pick), chromedp.ByQuery),
			chromedp.Click("#strategy-apply", chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the strategy is switched", fmt.Sprintf(`document.querySelector("#strategy-current").textContent === "%s"`, pick))
		screenshot(t, ctx, "dashboard-queue")
		var info api.StrategyInfo
		if err := c.Do(context.Background(), http.MethodGet, "/api/v1/scheduler", nil, &info); err != nil || info.Name != pick {
			t.Errorf("the jobmanager's strategy is %q (%v), want %q (was %q)", info.Name, err, pick, cur)
		}

		if err := chromedp.Run(ctx, chromedp.Navigate(base+"#/events")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the event feed lists the cancelled job's end",
			fmt.Sprintf(`[...document.querySelectorAll("#events li")].some(li => li.textContent.includes("job.finished") && li.textContent.includes("%s"))`, victim))
		screenshot(t, ctx, "dashboard-events")

		if err := chromedp.Run(ctx, chromedp.Navigate(base+"#/utilisation")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the heat map has drawn samples", `(() => {
			const c = document.querySelector("#u-heat"); const d = c.getContext("2d").getImageData(c.width - 3, 1, 1, 1).data;
			return d[3] === 255 && !(d[0] === 240 && d[1] === 242 && d[2] === 245); })()`)
		screenshot(t, ctx, "dashboard-utilisation")
	})

	t.Run("narrow window and labels", func(t *testing.T) {
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(400, 800), chromedp.Navigate(base+"#/jobs")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the jobs table is listed", `document.querySelectorAll("#jobs-table tr[data-job]").length > 0`)
		for _, view := range []string{"cluster", "jobs", "queue", "utilisation", "events"} {
			if err := chromedp.Run(ctx, chromedp.Navigate(base+"#/"+view)); err != nil {
				t.Fatal(err)
			}
			waitJS(t, ctx, view+" is shown", fmt.Sprintf(`!document.querySelector("#view-%s").hidden`, view))
			if view == "cluster" {
				saveShot(t, ctx, "dashboard-narrow-cluster", func(b *[]byte, _ int) chromedp.EmulateAction { return chromedp.CaptureScreenshot(b) })
			}
			// Nothing sticks out of the window (its scroll bar aside).
			if wide := evalJS[[]string](t, ctx, `(() => { const w = document.documentElement.clientWidth;
				return [...document.querySelectorAll("body *")].filter(e => e.offsetParent !== null && !e.closest(".table-wrap, .grid-wrap") &&
					e.getBoundingClientRect().right > w + 0.5).slice(0, 8).map(e => e.tagName + "#" + e.id + "." + e.className + " " + Math.round(e.getBoundingClientRect().right) + " > " + w); })()`); len(wide) > 0 {
				t.Errorf("%s: elements stick out of a 400 px window: %q", view, wide)
			}
		}
		// Every control has a name a screen reader can say.
		unnamed := evalJS[[]string](t, ctx, `[...document.querySelectorAll("input, select, button")].filter(e =>
			!(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim()).map(e => e.outerHTML)`)
		if len(unnamed) > 0 {
			t.Errorf("controls without a label: %q", unnamed)
		}
	})
}

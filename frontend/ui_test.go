package frontend_test

import (
	"context"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/frontend"
)

// TestDashboardFiles: the dashboard's files are served at /ui/ without the
// token (the API behind them still needs it), with a policy that keeps the
// page to its own origin, and they load nothing from elsewhere.
func TestDashboardFiles(t *testing.T) {
	auth := func(c *gin.Context) {
		code, body := api.ErrorResponse(api.ErrUnauthorized)
		c.AbortWithStatusJSON(code, body)
	}
	e := newFE(t, feOption{mw: []gin.HandlerFunc{auth}})
	if w := e.do(t, "GET", "/ui", ""); w.Code != 301 || w.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d, Location %q; want 301 to /ui/", w.Code, w.Header().Get("Location"))
	}
	tests := []struct {
		path, contentType, contains string
	}{
		{"/ui/", "text/html", `<script src="app.js" defer></script>`},
		{"/ui/app.js", "javascript", "/api/v1/events"},
		{"/ui/app.css", "text/css", ".core"},
	}
	for _, tc := range tests {
		w := e.do(t, "GET", tc.path, "")
		body := w.Body.String()
		if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), tc.contentType) || !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: %d %q, want 200 %s holding %q", tc.path, w.Code, w.Header().Get("Content-Type"), tc.contentType, tc.contains)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		for _, far := range []string{"http://", "https://", "src=\"//", "href=\"//", "url(//", "@import"} {
			if strings.Contains(body, far) {
				t.Errorf("%s refers to %q: the dashboard must load nothing from elsewhere", tc.path, far)
			}
		}
	}
	if w := e.do(t, "GET", "/ui/nope.js", ""); w.Code != 404 {
		t.Errorf("GET /ui/nope.js: %d, want 404", w.Code)
	}
	wantError(t, e.do(t, "GET", "/api/v1/workers", ""), 401, "unauthorized", "")
}

// fakeMigrator is the globalmanager's migration endpoint.
type fakeMigrator struct {
	rec *apitest.Recorder
	err error
}

func (f *fakeMigrator) MigrateTask(_ context.Context, job, task, from, to string) (any, error) {
	f.rec.Add("gm.Migrate(%s, %s, %s -> %s)", job, task, from, to)
	if f.err != nil {
		return nil, f.err
	}
	return map[string]string{"job": job, "container": task, "to": to, "mode": "cold"}, nil
}

// TestMigrateTask: POST /api/v1/jobs/{name}/tasks/{task}/migrate checks its
// input, relays to the globalmanager, and answers its result or its error.
func TestMigrateTask(t *testing.T) {
	tests := []struct {
		name, path, body string
		noMigrator       bool
		gmErr            error
		status           int
		code, field      string
		calls            []string
	}{
		{name: "moved", path: "/api/v1/jobs/m/tasks/m_task1/migrate", body: `{"to": "w2"}`, status: 200,
			calls: []string{"gm.Migrate(m, m_task1, w1 -> w2)"}},
		{name: "no target", path: "/api/v1/jobs/m/tasks/m_task1/migrate", body: `{}`, status: 400, code: "invalid", field: "to"},
		{name: "unknown field", path: "/api/v1/jobs/m/tasks/m_task1/migrate", body: `{"to": "w2", "mode": "live"}`, status: 400, code: "invalid", field: "mode"},
		{name: "unknown task", path: "/api/v1/jobs/m/tasks/m_task9/migrate", body: `{"to": "w2"}`, status: 404, code: "not_found"},
		{name: "unknown job", path: "/api/v1/jobs/nope/tasks/m_task1/migrate", body: `{"to": "w2"}`, status: 404, code: "not_found"},
		{name: "a task on no worker", path: "/api/v1/jobs/w/tasks/w_task1/migrate", body: `{"to": "w2"}`, status: 409, code: "conflict"},
		{name: "no globalmanager", path: "/api/v1/jobs/m/tasks/m_task1/migrate", body: `{"to": "w2"}`, noMigrator: true, status: 503, code: "unavailable"},
		{name: "the globalmanager refuses", path: "/api/v1/jobs/m/tasks/m_task1/migrate", body: `{"to": "w2"}`, status: 409, code: "conflict",
			gmErr: &api.StatusError{Status: 409, Detail: api.ErrorDetail{Code: "conflict", Message: "worker w2 has no room"}},
			calls: []string{"gm.Migrate(m, m_task1, w1 -> w2)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mig *fakeMigrator
			e := newFE(t, feOption{cfg: func(c *frontend.Config) {
				if !tc.noMigrator {
					mig = &fakeMigrator{err: tc.gmErr}
					c.Migrator = mig
				}
			}})
			if mig != nil {
				mig.rec = e.rec
			}
			e.put(t, jobWith("m", api.Running, 1, "", "w1"))
			e.put(t, jobWith("w", api.Ready, 1, ""))
			w := e.do(t, "POST", tc.path, tc.body)
			if tc.status != 200 {
				d := wantError(t, w, tc.status, tc.code, tc.field)
				if tc.gmErr != nil && d.Message != tc.gmErr.Error() {
					t.Errorf("message %q, want the globalmanager's %q", d.Message, tc.gmErr.Error())
				}
			} else {
				got := decodeBody[map[string]string](t, w)
				if w.Code != 200 || got["to"] != "w2" || got["mode"] != "cold" {
					t.Errorf("got %d %v", w.Code, got)
				}
			}
			wantCalls(t, e.rec.All(), tc.calls...)
		})
	}
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/frontend"
	"github.com/rswarm/rswarm/store"
)

// TestAuthMiddlewareRefusesOpenNonLoopback: without a token, only a
// loopback address may be served, unless insecure is set.
func TestAuthMiddlewareRefusesOpenNonLoopback(t *testing.T) {
	tests := []struct {
		name, addr, token string
		insecure          bool
		// refused: authMiddleware returns an error; guarded: it returns a middleware.
		refused, guarded bool
	}{
		{name: "IPv4 loopback without a token", addr: "127.0.0.1:5001"},
		{name: "other 127/8 address without a token", addr: "127.0.0.2:5001"},
		{name: "localhost without a token", addr: "localhost:5001"},
		{name: "IPv6 loopback without a token", addr: "[::1]:5001"},
		{name: "all interfaces without a token", addr: "0.0.0.0:5001", refused: true},
		{name: "empty host (all interfaces) without a token", addr: ":5001", refused: true},
		{name: "LAN address without a token", addr: "10.1.2.3:5001", refused: true},
		{name: "host name without a token", addr: "frontend.example:5001", refused: true},
		{name: "IPv6 any without a token", addr: "[::]:5001", refused: true},
		{name: "address without a port", addr: "127.0.0.1", refused: true},
		{name: "LAN address, insecure", addr: "10.1.2.3:5001", insecure: true},
		{name: "LAN address with a token", addr: "10.1.2.3:5001", token: "s3cret", guarded: true},
		{name: "loopback with a token", addr: "127.0.0.1:5001", token: "s3cret", guarded: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mw, err := authMiddleware(tc.addr, tc.token, tc.insecure)
			if tc.refused {
				if err == nil || !strings.Contains(err.Error(), tc.addr) || !strings.Contains(err.Error(), "--insecure") {
					t.Errorf("err %v, want a refusal naming %s and --insecure", err, tc.addr)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if (len(mw) > 0) != tc.guarded {
				t.Errorf("%d middleware, want guarded = %v", len(mw), tc.guarded)
			}
		})
	}
}

// TestAuthMiddlewareToken: with a token, a request needs exactly
// "Authorization: Bearer <token>"; any other gets 401 with the JSON error
// and never reaches the handler.
func TestAuthMiddlewareToken(t *testing.T) {
	mw, err := authMiddleware("0.0.0.0:5001", "s3cret", false)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	reached := 0
	r.GET("/x", append(mw, func(c *gin.Context) { reached++; c.String(http.StatusOK, "in") })...)
	tests := []struct {
		name   string
		header []string // Authorization values; none: no header
		status int
	}{
		{name: "no token", status: 401},
		{name: "empty header", header: []string{""}, status: 401},
		{name: "wrong token", header: []string{"Bearer guess"}, status: 401},
		{name: "token prefix", header: []string{"Bearer s3cre"}, status: 401},
		{name: "token with a suffix", header: []string{"Bearer s3cret2"}, status: 401},
		{name: "token without the scheme", header: []string{"s3cret"}, status: 401},
		{name: "basic scheme", header: []string{"Basic s3cret"}, status: 401},
		{name: "right token", header: []string{"Bearer s3cret"}, status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := reached
			req := httptest.NewRequest("GET", "/x", nil)
			for _, h := range tc.header {
				req.Header.Add("Authorization", h)
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status == 200 {
				if reached != before+1 || w.Body.String() != "in" {
					t.Errorf("handler not run: %q", w.Body)
				}
				return
			}
			if reached != before {
				t.Error("the handler ran")
			}
			var eb api.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code != "unauthorized" || eb.Error.Message == "" ||
				!strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
				t.Errorf("body %s (%v), Content-Type %q", w.Body, err, w.Header().Get("Content-Type"))
			}
		})
	}
}

// authScheduler is a jobmanager that records what it was told.
type authScheduler struct{ submitted []string }

func (s *authScheduler) JobSubmitted(_ context.Context, names ...string) error {
	s.submitted = append(s.submitted, names...)
	return nil
}
func (s *authScheduler) JobCancelled(context.Context, string) error   { return nil }
func (s *authScheduler) SwitchStrategy(context.Context, string) error { return nil }
func (s *authScheduler) Strategy(context.Context) (api.StrategyInfo, error) {
	return api.StrategyInfo{Name: "fifo"}, nil
}
func (s *authScheduler) Stats(context.Context) (api.SchedulerStats, error) {
	return api.SchedulerStats{}, nil
}

// authCluster is a globalmanager that is never needed here.
type authCluster struct{}

func (authCluster) Stop(context.Context, string, string) error { return nil }
func (authCluster) Logs(context.Context, string, string, int) ([]string, error) {
	return nil, nil
}

// TestAuthFrontend: the frontend behind authMiddleware; a request without
// the right token gets 401 and changes nothing.
func TestAuthFrontend(t *testing.T) {
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mw, err := authMiddleware("0.0.0.0:5001", "s3cret", false)
	if err != nil {
		t.Fatal(err)
	}
	sched := &authScheduler{}
	cfg := frontend.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h := frontend.New(cfg, st, sched, authCluster{}).Router(mw...)
	job, err := json.Marshal(apitest.Job("a", 1, 1, "sleep 1"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, token string
		body                      string
		status                    int
		stored                    bool
	}{
		{name: "healthz needs no token", method: "GET", path: "/healthz", status: 200},
		{name: "submit without a token", method: "POST", path: "/api/v1/jobs", body: string(job), status: 401},
		{name: "original submit without a token", method: "POST", path: "/RESTfulSwarm/FE/request_new_job", body: string(job), status: 401},
		{name: "submit with a wrong token", method: "POST", path: "/api/v1/jobs", token: "Bearer nope", body: string(job), status: 401},
		{name: "list without a token", method: "GET", path: "/api/v1/jobs", status: 401},
		{name: "submit with the token", method: "POST", path: "/api/v1/jobs", token: "Bearer s3cret", body: string(job), status: 201, stored: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", tc.token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			_, err := st.GetJob(context.Background(), "a")
			if stored := err == nil; stored != tc.stored {
				t.Errorf("job stored = %v (%v), want %v", stored, err, tc.stored)
			}
			if got := len(sched.submitted) > 0; got != tc.stored {
				t.Errorf("jobmanager told %q", sched.submitted)
			}
		})
	}
}

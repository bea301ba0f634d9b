package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// TestDeleteWhileJobmanagerDown: issue 10 saw DELETE of a job answered
// after 629 s while the jobmanager was down. Now the frontend answers 503
// within its call deadline (5 s) and changes nothing.
func TestDeleteWhileJobmanagerDown(t *testing.T) {
	sys, procs, _ := simSystem(t)
	c := sys.client()
	j := apitest.Job(fmt.Sprintf("del%d", time.Now().UnixNano()), 1, 1, "sleep 3600")
	submitOriginal(t, sys, j)
	waitJob(t, c, j.Name, 60*time.Second, func(j *api.Job) error {
		if j.Status != api.Running {
			return fmt.Errorf("job %s", j.Status)
		}
		return nil
	})
	procs["jobmanager"].stop(t)

	// The client's own deadline is far above the frontend's: it only keeps
	// a broken frontend from hanging the test.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, "http://"+sys.fe+"/api/v1/jobs/"+j.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("DELETE answered %d after %v: %s", resp.StatusCode, time.Since(start).Round(time.Millisecond), body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "jobmanager") {
		t.Fatalf("DELETE while the jobmanager is down: %d %s, want 503 naming the jobmanager", resp.StatusCode, body)
	}
	got, err := c.Job(context.Background(), j.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != api.Running {
		t.Errorf("job %s after a refused DELETE, want it untouched (Running)", got.Status)
	}
}

package stressclient_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/stressclient"
)

// BenchmarkRunner measures the stress client alone: b.N jobs of four
// tasks, all due at once, submitted over loopback HTTP to a server that
// reads each body and accepts it. It reports the client's ceiling in jobs
// per second and its submission latency.
func BenchmarkRunner(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"job_name":"x","status":"Ready"}`)
	}))
	defer srv.Close()
	for _, conc := range []int{16, 64} {
		b.Run("concurrency="+strconv.Itoa(conc), func(b *testing.B) {
			p := stressclient.DefaultParams()
			p.FeedConstant, p.Turns = b.N, 1
			plan, err := stressclient.Schedule(p, 1)
			if err != nil {
				b.Fatal(err)
			}
			r := &stressclient.Runner{Submitter: api.NewClient(srv.URL, ""), Session: "bench", Concurrency: conc}
			b.ResetTimer()
			res, err := r.Run(context.Background(), plan)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if res.Counters.Accepted != int64(b.N) {
				b.Fatalf("%d of %d accepted", res.Counters.Accepted, b.N)
			}
			b.ReportMetric(float64(b.N)/res.End.Sub(res.Start).Seconds(), "jobs/s")
			b.ReportMetric(float64(time.Duration(res.Latency.ValueAtQuantile(50))*time.Microsecond)/1e6, "p50-ms")
			b.ReportMetric(float64(time.Duration(res.Latency.ValueAtQuantile(99))*time.Microsecond)/1e6, "p99-ms")
		})
	}
}

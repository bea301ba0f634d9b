package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	zmq "github.com/pebbe/zmq4"

	"github.com/rswarm/rswarm/api"
)

// BenchmarkRoundTrip measures client -> server request/reply on loopback
// with a heartbeat-sized body: ns/op is the latency of one round trip when
// requests are made one after another ("serial"), and roundtrips/s the
// throughput, also with many concurrent callers ("parallel"). "raw-zmq" is
// the floor on the same machine in the same run: a bare DEALER/ROUTER echo of
// the same JSON with blocking calls, no envelope, queue or handler goroutine.
func BenchmarkRoundTrip(b *testing.B) {
	needZMQ(b)
	ack := func(context.Context, string, string, []byte) (any, error) { return "ack", nil }
	srv := listen(b, "tcp://127.0.0.1:*", ack)
	cli := dial(b, srv.Addr(), "bench", nil)
	hb := api.Heartbeat{Node: "bench", Time: 1700000000.5, Cores: 8, CoresBusy: 3, MemTotal: 16 << 30, MemUsed: 5 << 30, Tasks: 3}
	ctx := context.Background()
	if err := cli.Request(ctx, api.KindHeartbeat, hb, nil); err != nil {
		b.Fatal(err)
	}

	b.Run("serial", func(b *testing.B) {
		var reply string
		for b.Loop() {
			if err := cli.Request(ctx, api.KindHeartbeat, hb, &reply); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16) // 16 callers per GOMAXPROCS
		b.RunParallel(func(pb *testing.PB) {
			var reply string
			for pb.Next() {
				if err := cli.Request(ctx, api.KindHeartbeat, hb, &reply); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
	})
	b.Run("raw-zmq", func(b *testing.B) {
		rawRoundTrip(b, hb)
	})
}

// BenchmarkCarrierRoundTrip is BenchmarkRoundTrip over one Carrier that
// speaks for 1,000 identities, callers taking them in turn: "to-server"
// is the identities' requests (a worker's heartbeats), "to-identities"
// the server's requests to them (commands), both with many callers.
func BenchmarkCarrierRoundTrip(b *testing.B) {
	needZMQ(b)
	const n = 1000
	ack := func(context.Context, string, string, []byte) (any, error) { return "ack", nil }
	srv, err := Listen("tcp://127.0.0.1:*", ack, nil, WithCarrying(nil))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	car := dialCarrier(b, srv.Addr(), "carrier")
	ids := make([]string, n)
	subs := make([]*Carried, n)
	ctx := context.Background()
	hb := api.Heartbeat{Time: 1700000000.5, Cores: 8, CoresBusy: 3, MemTotal: 16 << 30, MemUsed: 5 << 30, Tasks: 3}
	for i := range ids {
		ids[i] = fmt.Sprintf("sim-%04d", i)
		subs[i] = attach(b, car, ids[i], ack)
		if err := subs[i].Request(ctx, api.KindHeartbeat, hb, nil); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	parallel := func(b *testing.B, call func(i int) error) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := call(int(next.Add(1) % n)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
	}
	b.Run("to-server", func(b *testing.B) {
		parallel(b, func(i int) error { return subs[i].Request(ctx, api.KindHeartbeat, hb, nil) })
	})
	b.Run("to-identities", func(b *testing.B) {
		parallel(b, func(i int) error { return srv.Request(ctx, ids[i], api.KindRunTask, hb, nil) })
	})
}

func rawRoundTrip(b *testing.B, body any) {
	msg, err := json.Marshal(body)
	if err != nil {
		b.Fatal(err)
	}
	zctx, err := zmq.NewContext()
	if err != nil {
		b.Fatal(err)
	}
	router, err1 := zctx.NewSocket(zmq.ROUTER)
	dealer, err2 := zctx.NewSocket(zmq.DEALER)
	defer func() {
		_ = dealer.Close()
		_ = zctx.Term() // after the echo goroutine closed router
	}()
	if err := errors.Join(err1, err2, router.SetLinger(0), dealer.SetLinger(0), router.Bind("tcp://127.0.0.1:*")); err != nil {
		b.Fatal(err)
	}
	addr, err := router.GetLastEndpoint()
	if err != nil {
		b.Fatal(err)
	}
	if err := dealer.Connect(addr); err != nil {
		b.Fatal(err)
	}
	echoDone := make(chan struct{})
	go func() { // owns router; stops on an empty message
		defer close(echoDone)
		defer func() { _ = router.Close() }()
		for {
			frames, err := router.RecvMessageBytes(0)
			if err != nil || len(frames) < 2 || len(frames[1]) == 0 {
				return
			}
			if _, err := router.SendMessage(frames); err != nil {
				return
			}
		}
	}()
	for b.Loop() {
		if _, err := dealer.SendBytes(msg, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := dealer.RecvBytes(0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
	if _, err := dealer.SendBytes([]byte{}, 0); err != nil {
		b.Fatal(err)
	}
	<-echoDone
}

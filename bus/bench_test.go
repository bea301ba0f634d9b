package bus

import (
	"context"
	"encoding/json"
	"errors"
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

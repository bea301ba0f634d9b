package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// guard bounds every wait in these tests so that a bug fails the test
// instead of hanging it; no test depends on how fast anything is.
const guard = 20 * time.Second

// needZMQ skips (or, under RSWARM_REQUIRE=all, fails) when libzmq cannot
// make a context.
func needZMQ(t testing.TB) {
	t.Helper()
	zctx, err := zmq.NewContext()
	if err == nil {
		err = zctx.Term()
	}
	apitest.Need(t, "zmq", err)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return nil
}

// mux routes requests by kind; "ping" always answers "pong".
type mux map[string]func(ctx context.Context, from string, body []byte) (any, error)

func (m mux) handle(ctx context.Context, from, kind string, body []byte) (any, error) {
	if f, ok := m[kind]; ok {
		return f(ctx, from, body)
	}
	if kind == "ping" {
		return "pong", nil
	}
	return nil, fmt.Errorf("no handler for %q", kind)
}

// echoed is what the "echo" handler answers.
type echoed struct {
	Me   string          `json:"me"`
	From string          `json:"from"`
	Body json.RawMessage `json:"body"`
}

func echo(me string) func(context.Context, string, []byte) (any, error) {
	return func(_ context.Context, from string, body []byte) (any, error) {
		return echoed{Me: me, From: from, Body: body}, nil
	}
}

func listen(t testing.TB, addr string, h Handler) *Server {
	t.Helper()
	s, err := Listen(addr, h, testLogger(t))
	if err != nil {
		t.Fatalf("Listen(%q): %v", addr, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func dial(t testing.TB, addr, id string, h Handler) *Client {
	t.Helper()
	c, err := Dial(addr, id, h, testLogger(t))
	if err != nil {
		t.Fatalf("Dial(%q, %q): %v", addr, id, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func guarded() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), guard)
}

// waitPeer polls until srv can reach the client id (the ROUTER learns an
// identity only once that client's connection is up).
func waitPeer(t testing.TB, srv *Server, id string) {
	t.Helper()
	apitest.Eventually(t, guard, func() error {
		ctx, cancel := guarded()
		defer cancel()
		return srv.Request(ctx, id, "ping", nil, nil)
	})
}

func TestRequestReply(t *testing.T) {
	needZMQ(t)
	const id = "kih8tvugahpz559kvzuwjn0a3"
	srv := listen(t, "tcp://127.0.0.1:*", mux{"echo": echo("server")}.handle)
	cli := dial(t, srv.Addr(), id, mux{"echo": echo("client")}.handle)
	waitPeer(t, srv, id)

	hb := api.Heartbeat{Node: id, Time: 1700000000.5, Cores: 4, CoresBusy: 2, MemTotal: 8 << 30, MemUsed: 1 << 30, Tasks: 2}
	tests := []struct {
		name     string
		request  func(ctx context.Context, body, reply any) error
		wantMe   string
		wantFrom string
		body     any
	}{
		{"client to server", func(ctx context.Context, body, reply any) error {
			return cli.Request(ctx, "echo", body, reply)
		}, "server", id, hb},
		{"server to client", func(ctx context.Context, body, reply any) error {
			return srv.Request(ctx, id, "echo", body, reply)
		}, "client", srv.Addr(), api.StopTask{Job: "job1", Task: "job1_task1", Reason: "cancelled"}},
		{"nil body", func(ctx context.Context, body, reply any) error {
			return cli.Request(ctx, "echo", body, reply)
		}, "server", id, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := guarded()
			defer cancel()
			var got echoed
			if err := tt.request(ctx, tt.body, &got); err != nil {
				t.Fatalf("Request: %v", err)
			}
			want, _ := json.Marshal(tt.body)
			if got.Me != tt.wantMe || got.From != tt.wantFrom || string(got.Body) != string(want) {
				t.Errorf("reply = {me %q, from %q, body %s}, want {me %q, from %q, body %s}",
					got.Me, got.From, got.Body, tt.wantMe, tt.wantFrom, want)
			}
			// A nil reply discards the answer.
			if err := tt.request(ctx, tt.body, nil); err != nil {
				t.Errorf("Request with nil reply: %v", err)
			}
		})
	}
}

func TestUnknownPeer(t *testing.T) {
	needZMQ(t)
	srv := listen(t, "tcp://127.0.0.1:*", nil)
	dial(t, srv.Addr(), "10.0.0.12", nil)
	gone := dial(t, srv.Addr(), "gone", nil)
	// A nil handler answers with a remote error, which proves the client is
	// reachable.
	reachable := func(id string) {
		apitest.Eventually(t, guard, func() error {
			ctx, cancel := guarded()
			defer cancel()
			var re *RemoteError
			if err := srv.Request(ctx, id, "ping", nil, nil); !errors.As(err, &re) {
				return fmt.Errorf("%s not reachable yet: %v", id, err)
			}
			return nil
		})
	}
	reachable("10.0.0.12")
	reachable("gone")
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	// The ROUTER forgets an identity once its connection is torn down,
	// which happens a moment after Close (the zmq context is shared, so the
	// teardown is asynchronous); a request sent in that moment times out.
	apitest.Eventually(t, guard, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := srv.Request(ctx, "gone", "ping", nil, nil); !errors.Is(err, ErrUnknownPeer) {
			return fmt.Errorf("request to closed client: %v", err)
		}
		return nil
	})

	tests := []struct{ name, to string }{
		{"never connected", "10.0.0.99"},
		{"prefix of a connected identity", "10.0.0.1"},
		{"extension of a connected identity", "10.0.0.123"},
		{"empty identity", ""},
		{"closed client", "gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No deadline: ErrUnknownPeer must come at once, not from a timeout.
			err := srv.Request(context.Background(), tt.to, api.KindRunTask, api.RunTask{Job: "j"}, nil)
			if !errors.Is(err, ErrUnknownPeer) {
				t.Fatalf("Request(%q) = %v, want ErrUnknownPeer", tt.to, err)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	needZMQ(t)
	const id = "w1"
	// "block" waits for the test to let it go, ignoring its context, so its
	// reply arrives after the requester's deadline and must be dropped.
	// "deadline" reports whether the requester's deadline reached the handler.
	newMux := func(me string, release <-chan struct{}) mux {
		return mux{
			"echo": echo(me),
			"block": func(ctx context.Context, _ string, _ []byte) (any, error) {
				<-release
				return "late", nil
			},
			"deadline": func(ctx context.Context, _ string, _ []byte) (any, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			},
		}
	}
	srvRelease, cliRelease := make(chan struct{}), make(chan struct{})
	srv := listen(t, "tcp://127.0.0.1:*", newMux("server", srvRelease).handle)
	cli := dial(t, srv.Addr(), id, newMux("client", cliRelease).handle)
	waitPeer(t, srv, id)

	tests := []struct {
		name    string
		request func(ctx context.Context, kind string, reply any) error
		release chan struct{}
		wantMe  string
	}{
		{"client to server", func(ctx context.Context, kind string, reply any) error {
			return cli.Request(ctx, kind, 1, reply)
		}, srvRelease, "server"},
		{"server to client", func(ctx context.Context, kind string, reply any) error {
			return srv.Request(ctx, id, kind, 1, reply)
		}, cliRelease, "client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err := tt.request(ctx, "block", nil)
			if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("blocked handler: err = %v, want ErrTimeout and DeadlineExceeded", err)
			}
			close(tt.release) // its late reply is dropped, not given to the next request

			ctx2, cancel2 := guarded()
			defer cancel2()
			var got echoed
			if err := tt.request(ctx2, "echo", &got); err != nil || got.Me != tt.wantMe {
				t.Fatalf("request after a timeout = %+v, %v; want an echo from %s", got, err, tt.wantMe)
			}

			// A handler that waits on its context is released by the
			// requester's deadline, which travels in the envelope.
			ctx3, cancel3 := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel3()
			if err := tt.request(ctx3, "deadline", nil); !errors.Is(err, ErrTimeout) {
				t.Fatalf("deadline handler: err = %v, want ErrTimeout", err)
			}
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := cli.Request(ctx, "echo", nil, nil)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want context.Canceled and not ErrTimeout", err)
		}
	})
}

func TestRemoteError(t *testing.T) {
	needZMQ(t)
	const id = "w1"
	h := mux{
		"fail": func(context.Context, string, []byte) (any, error) {
			return "ignored", errors.New("image not found: rswarm/nope:latest")
		},
		"panic": func(context.Context, string, []byte) (any, error) { panic("boom") },
		"unencodable": func(context.Context, string, []byte) (any, error) {
			return func() {}, nil
		},
	}.handle
	srv := listen(t, "tcp://127.0.0.1:*", h)
	cli := dial(t, srv.Addr(), id, h)
	waitPeer(t, srv, id)
	srvNoHandler := listen(t, "tcp://127.0.0.1:*", nil)
	cliToNoHandler := dial(t, srvNoHandler.Addr(), id, nil)

	tests := []struct {
		name    string
		request func(ctx context.Context, kind string) error
		kind    string
		wantMsg string
	}{
		{"client to server", func(ctx context.Context, kind string) error {
			return cli.Request(ctx, kind, nil, nil)
		}, "fail", "image not found: rswarm/nope:latest"},
		{"server to client", func(ctx context.Context, kind string) error {
			return srv.Request(ctx, id, kind, nil, nil)
		}, "fail", "image not found: rswarm/nope:latest"},
		{"unknown kind", func(ctx context.Context, kind string) error {
			return cli.Request(ctx, kind, nil, nil)
		}, api.KindTaskLogs, `no handler for "task_logs"`},
		{"handler panics", func(ctx context.Context, kind string) error {
			return srv.Request(ctx, id, kind, nil, nil)
		}, "panic", `bus: handler for "panic" panicked: boom`},
		{"reply cannot be encoded", func(ctx context.Context, kind string) error {
			return cli.Request(ctx, kind, nil, nil)
		}, "unencodable", "bus: encoding unencodable reply"},
		{"peer serves no requests", func(ctx context.Context, kind string) error {
			return cliToNoHandler.Request(ctx, kind, nil, nil)
		}, api.KindHeartbeat, "bus: this peer serves no requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := guarded()
			defer cancel()
			err := tt.request(ctx, tt.kind)
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want *RemoteError", err, err)
			}
			if re.Kind != tt.kind || !strings.HasPrefix(re.Msg, tt.wantMsg) {
				t.Errorf("RemoteError = %+v, want kind %q and message starting %q", *re, tt.kind, tt.wantMsg)
			}
		})
	}
}

func TestIdentitiesAreExact(t *testing.T) {
	needZMQ(t)
	// The original's PUB/SUB topics were prefix matches: "10.0.0.1" also got
	// the messages for "10.0.0.12". Each client records what it receives.
	ids := []string{"10.0.0.1", "10.0.0.12"}
	var mu sync.Mutex
	got := map[string][]string{}
	srv := listen(t, "tcp://127.0.0.1:*", mux{"echo": echo("server")}.handle)
	for _, id := range ids {
		dial(t, srv.Addr(), id, mux{api.KindStopTask: func(_ context.Context, _ string, body []byte) (any, error) {
			var st api.StopTask
			if err := json.Unmarshal(body, &st); err != nil {
				return nil, err
			}
			mu.Lock()
			got[id] = append(got[id], st.Task)
			mu.Unlock()
			return id, nil
		}}.handle)
		waitPeer(t, srv, id)
	}

	const n = 20
	want := map[string][]string{}
	for i := range n {
		for _, to := range ids {
			task := fmt.Sprintf("for %s #%d", to, i)
			want[to] = append(want[to], task)
			ctx, cancel := guarded()
			var answeredBy string
			err := srv.Request(ctx, to, api.KindStopTask, api.StopTask{Job: "j", Task: task}, &answeredBy)
			cancel()
			if err != nil || answeredBy != to {
				t.Fatalf("request to %s answered by %q, err %v", to, answeredBy, err)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if !slices.Equal(got[id], want[id]) {
			t.Errorf("%s received %q, want exactly %q", id, got[id], want[id])
		}
	}
	// Both pinged back (waitPeer answers count as sending).
	if peers := srv.Peers(); !slices.Equal(peers, ids) {
		t.Errorf("Peers() = %q, want %q", peers, ids)
	}
}

func TestConcurrentRequests(t *testing.T) {
	needZMQ(t)
	const id = "w1"
	type msg struct{ G, I int }
	h := mux{"echo": func(_ context.Context, _ string, body []byte) (any, error) {
		var m msg
		err := json.Unmarshal(body, &m)
		return m, err
	}}.handle
	srv := listen(t, "tcp://127.0.0.1:*", h)
	cli := dial(t, srv.Addr(), id, h)
	waitPeer(t, srv, id)

	tests := []struct {
		name              string
		goroutines, count int
		request           func(ctx context.Context, body, reply any) error
	}{
		{"client to server", 100, 100, func(ctx context.Context, body, reply any) error {
			return cli.Request(ctx, "echo", body, reply)
		}},
		{"server to client", 100, 20, func(ctx context.Context, body, reply any) error {
			return srv.Request(ctx, id, "echo", body, reply)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := make(chan error, tt.goroutines)
			var wg sync.WaitGroup
			for g := range tt.goroutines {
				wg.Go(func() {
					for i := range tt.count {
						ctx, cancel := guarded()
						var got msg
						err := tt.request(ctx, msg{g, i}, &got)
						cancel()
						if err == nil && got != (msg{g, i}) {
							err = fmt.Errorf("got %+v", got)
						}
						if err != nil {
							errs <- fmt.Errorf("goroutine %d request %d: %w", g, i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestReconnect(t *testing.T) {
	needZMQ(t)
	const id = "w1"
	h := mux{"echo": echo("server")}.handle
	tests := []struct {
		name string
		// start returns the address the client dials and a server that is
		// down (nil) or up (to be closed) when the client dials.
		start func(t *testing.T) (addr string, first *Server)
	}{
		{"server restarts on the same port", func(t *testing.T) (string, *Server) {
			s := listen(t, "tcp://127.0.0.1:*", h)
			return s.Addr(), s
		}},
		{"client dials before the server is up", func(t *testing.T) (string, *Server) {
			s := listen(t, "tcp://127.0.0.1:*", h)
			addr := s.Addr()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return addr, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, first := tt.start(t)
			cli := dial(t, addr, id, mux{"echo": echo("client")}.handle)
			ok := func(srv *Server) {
				t.Helper()
				// Requests made while the server is away time out; the
				// caller retries, as callers in RSwarm do.
				apitest.Eventually(t, guard, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
					defer cancel()
					return cli.Request(ctx, "echo", nil, nil)
				})
				waitPeer(t, srv, id)
			}
			if first != nil {
				ok(first)
				if err := first.Close(); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				err := cli.Request(ctx, "echo", nil, nil)
				cancel()
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("request while the server is down: %v, want ErrTimeout", err)
				}
			}
			ok(listen(t, addr, h))
		})
	}
}

func TestClose(t *testing.T) {
	needZMQ(t)
	const id = "w1"
	baseline := runtime.NumGoroutine()

	// "hang" blocks until its context ends, as a handler must allow.
	started := make(chan string, 2)
	hang := func(me string) Handler {
		return mux{"hang": func(ctx context.Context, _ string, _ []byte) (any, error) {
			started <- me
			<-ctx.Done()
			return nil, ctx.Err()
		}}.handle
	}
	srv, err := Listen("tcp://127.0.0.1:*", hang("server"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Dial(srv.Addr(), id, hang("client"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	waitPeer(t, srv, id)

	// One request each way, with no deadline, each stuck in a handler.
	srvReq, cliReq := make(chan error, 1), make(chan error, 1)
	go func() { srvReq <- srv.Request(context.Background(), id, "hang", nil, nil) }()
	go func() { cliReq <- cli.Request(context.Background(), "hang", nil, nil) }()
	for range 2 {
		<-started
	}

	closeBoth := []struct {
		name    string
		close   func() error
		waiting chan error
		request func() error
	}{
		{"server", srv.Close, srvReq, func() error { return srv.Request(context.Background(), id, "hang", nil, nil) }},
		{"client", cli.Close, cliReq, func() error { return cli.Request(context.Background(), "hang", nil, nil) }},
	}
	for _, tt := range closeBoth {
		t.Run(tt.name, func(t *testing.T) {
			closed := make(chan error, 1)
			go func() { closed <- tt.close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("Close: %v", err)
				}
			case <-time.After(guard):
				t.Fatal("Close did not return: a handler or the socket loop is stuck")
			}
			if err := <-tt.waiting; !errors.Is(err, ErrClosed) {
				t.Errorf("request waiting during Close: %v, want ErrClosed", err)
			}
			if err := tt.close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if err := tt.request(); !errors.Is(err, ErrClosed) {
				t.Errorf("request after Close: %v, want ErrClosed", err)
			}
		})
	}

	apitest.Eventually(t, guard, func() error {
		if n := runtime.NumGoroutine(); n > baseline {
			return fmt.Errorf("%d goroutines, baseline %d", n, baseline)
		}
		return nil
	})
}

func TestListenAndDial(t *testing.T) {
	needZMQ(t)
	taken := listen(t, "tcp://127.0.0.1:*", nil)
	tests := []struct {
		name       string
		addr       string
		wantPrefix string // of Addr(); "" means Listen must fail
	}{
		{"ephemeral port with *", "tcp://127.0.0.1:*", "tcp://127.0.0.1:"},
		{"ephemeral port with 0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:"},
		{"port in use", taken.Addr(), ""},
		{"malformed endpoint", "127.0.0.1:3100", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Listen(tt.addr, nil, testLogger(t))
			if tt.wantPrefix == "" {
				if err == nil {
					_ = s.Close()
					t.Fatalf("Listen(%q) succeeded, want an error", tt.addr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Listen(%q): %v", tt.addr, err)
			}
			defer func() { _ = s.Close() }()
			port := strings.TrimPrefix(s.Addr(), tt.wantPrefix)
			if !strings.HasPrefix(s.Addr(), tt.wantPrefix) || port == "" || port == "0" || port == "*" {
				t.Errorf("Addr() = %q, want %s<real port>", s.Addr(), tt.wantPrefix)
			}
		})
	}

	badIDs := []struct{ name, id string }{
		{"empty", ""},
		{"leading zero byte", "\x00w1"},
		{"too long", strings.Repeat("w", 256)},
	}
	for _, tt := range badIDs {
		t.Run("identity "+tt.name, func(t *testing.T) {
			if c, err := Dial(taken.Addr(), tt.id, nil, nil); err == nil {
				_ = c.Close()
				t.Fatalf("Dial with identity %q succeeded, want an error", tt.id)
			}
		})
	}
}

// TestWireFormat talks to a Server with a raw DEALER socket, checking the
// envelope the package documents and the refusal of other versions.
func TestWireFormat(t *testing.T) {
	needZMQ(t)
	srv := listen(t, "tcp://127.0.0.1:*", mux{"echo": echo("server")}.handle)
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := zctx.NewSocket(zmq.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sock.Close()
		_ = zctx.Term()
	})
	if err := errors.Join(sock.SetLinger(0), sock.SetIdentity("raw"), sock.SetRcvtimeo(guard), sock.Connect(srv.Addr())); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		frames  []string
		wantRep string // exact JSON reply envelope
	}{
		{"version 1 request",
			[]string{`{"v":1,"id":7,"type":"req","kind":"echo","body":{"x":1}}`},
			`{"v":1,"id":7,"type":"rep","kind":"echo","body":{"me":"server","from":"raw","body":{"x":1}}}`},
		{"with an empty delimiter frame, as from a REQ socket",
			[]string{"", `{"v":1,"id":8,"type":"req","kind":"echo","body":"hi"}`},
			`{"v":1,"id":8,"type":"rep","kind":"echo","body":{"me":"server","from":"raw","body":"hi"}}`},
		{"unknown version",
			[]string{`{"v":2,"id":9,"type":"req","kind":"echo","body":null}`},
			`{"v":1,"id":9,"type":"rep","kind":"echo","err":"bus: unsupported envelope version 2 (this peer speaks version 1)","body":null}`},
		{"missing version",
			[]string{`{"id":10,"type":"req","kind":"echo"}`},
			`{"v":1,"id":10,"type":"rep","kind":"echo","err":"bus: unsupported envelope version 0 (this peer speaks version 1)","body":null}`},
		{"unknown type",
			[]string{`{"v":1,"id":11,"type":"pub","kind":"echo"}`},
			`{"v":1,"id":11,"type":"rep","kind":"echo","err":"bus: unknown envelope type \"pub\"","body":null}`},
		{"speaking for another identity, to a server that takes no carriers",
			[]string{`{"v":1,"id":13,"type":"req","kind":"echo","as":"other","body":null}`},
			`{"v":1,"id":13,"type":"rep","kind":"echo","as":"other","err":"bus: this connection may not speak for \"other\"","body":null}`},
		{"speaking for itself",
			[]string{`{"v":1,"id":14,"type":"req","kind":"echo","as":"raw","body":1}`},
			`{"v":1,"id":14,"type":"rep","kind":"echo","as":"raw","body":{"me":"server","from":"raw","body":1}}`},
		{"not JSON is dropped, then the next request is served",
			[]string{"newJob job1"},
			""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := sock.SendMessage(tt.frames); err != nil {
				t.Fatal(err)
			}
			if tt.wantRep == "" {
				if _, err := sock.SendMessage(`{"v":1,"id":12,"type":"req","kind":"ping"}`); err != nil {
					t.Fatal(err)
				}
				tt.wantRep = `{"v":1,"id":12,"type":"rep","kind":"ping","body":"pong"}`
			}
			got, err := sock.RecvMessage(0)
			if err != nil {
				t.Fatalf("receive: %v", err)
			}
			if len(got) != 1 || got[0] != tt.wantRep {
				t.Errorf("reply frames = %q, want [%s]", got, tt.wantRep)
			}
		})
	}
}

// TestSerialRequestsOnQuietSockets sends requests one at a time, in turn in
// each direction, with no other traffic: a wake-up the loop missed would
// leave a request unanswered until something else happened on its socket,
// and here nothing else does, so the request would time out.
func TestSerialRequestsOnQuietSockets(t *testing.T) {
	needZMQ(t)
	const id = "w1"
	h := mux{"echo": echo("")}.handle
	srv := listen(t, "tcp://127.0.0.1:*", h)
	cli := dial(t, srv.Addr(), id, h)
	waitPeer(t, srv, id)
	for i := range 2000 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		if i%2 == 0 {
			err = cli.Request(ctx, "echo", i, nil)
		} else {
			err = srv.Request(ctx, id, "echo", i, nil)
		}
		cancel()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

package bus

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// refusedWait is how long a test lets a refused peer try before it checks
// that nothing got through; a refusal never becomes an acceptance later, so
// the figure only bounds the test's length.
const refusedWait = 400 * time.Millisecond

func keyPair(t testing.TB) KeyPair {
	t.Helper()
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// allow authorises exactly the given public keys.
func allow(keys ...KeyPair) Authorizer {
	return AuthorizerFunc(func(k string) (string, bool) {
		for _, kp := range keys {
			if kp.Public == k {
				return "test", true
			}
		}
		return "", false
	})
}

func secureListen(t testing.TB, h Handler, server KeyPair, auth Authorizer) *Server {
	t.Helper()
	s, err := Listen("tcp://127.0.0.1:*", h, testLogger(t), WithCurveServer(server.Secret, auth))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func secureDial(t testing.TB, addr, id string, h Handler, server string, kp KeyPair) *Client {
	t.Helper()
	c, err := Dial(addr, id, h, testLogger(t), WithCurveClient(server, kp))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// counting answers "ping" and counts every request it serves.
func counting(n *atomic.Int64, answer string) Handler {
	return func(context.Context, string, string, []byte) (any, error) {
		n.Add(1)
		return answer, nil
	}
}

func refusedRequest(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), refusedWait)
	defer cancel()
	if err := c.Request(ctx, "ping", nil, nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("request of a refused client: err = %v, want a timeout (never connected)", err)
	}
}

func TestCurveAcceptsOnlyAuthorisedKeys(t *testing.T) {
	needZMQ(t)
	server, good, bad := keyPair(t), keyPair(t), keyPair(t)
	var served atomic.Int64
	srv := secureListen(t, counting(&served, "pong"), server, allow(good))

	ok := secureDial(t, srv.Addr(), "good", nil, server.Public, good)
	ctx, cancel := guarded()
	defer cancel()
	var got string
	if err := ok.Request(ctx, "ping", nil, &got); err != nil || got != "pong" {
		t.Fatalf("authorised client: %q, %v", got, err)
	}

	// An unknown key, and a client without CURVE at all, never get a request through.
	refusedRequest(t, secureDial(t, srv.Addr(), "bad", nil, server.Public, bad))
	refusedRequest(t, dial(t, srv.Addr(), "plain", nil))
	if n := served.Load(); n != 1 {
		t.Errorf("handler served %d requests, want 1 (only the authorised client's)", n)
	}
	if peers := srv.Peers(); len(peers) != 1 || peers[0] != "good" {
		t.Errorf("Peers() = %q, want only the authorised client", peers)
	}
}

func TestCurveClientRefusesAServerWithoutTheKey(t *testing.T) {
	needZMQ(t)
	// A process that binds the port of a server that is down cannot pose as
	// it: it does not hold the server's secret key.
	real, fake, client := keyPair(t), keyPair(t), keyPair(t)
	var served atomic.Int64
	srv := secureListen(t, counting(&served, "fake"), fake, AuthorizerFunc(func(string) (string, bool) { return "any", true }))
	var commands atomic.Int64
	c := secureDial(t, srv.Addr(), "w1", counting(&commands, "ran"), real.Public, client)
	refusedRequest(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), refusedWait)
	defer cancel()
	if err := srv.Request(ctx, "w1", "run_task", nil, nil); err == nil {
		t.Fatal("the fake server reached the client")
	}
	if served.Load() != 0 || commands.Load() != 0 {
		t.Errorf("fake server served %d, client ran %d commands; want 0 and 0", served.Load(), commands.Load())
	}
}

func TestCurveIdentityIsBoundToKey(t *testing.T) {
	needZMQ(t)
	server, owner, other := keyPair(t), keyPair(t), keyPair(t)
	var impostorSeen atomic.Int64
	auth := AuthorizerFunc(func(k string) (string, bool) {
		if k == other.Public {
			impostorSeen.Add(1)
		}
		return "test", k == owner.Public || k == other.Public
	})
	srv := secureListen(t, mux{}.handle, server, auth)
	var ownerRan, impostorRan atomic.Int64
	ownerC := secureDial(t, srv.Addr(), "w1", counting(&ownerRan, "owner"), server.Public, owner)
	waitPeer(t, srv, "w1")
	reaches := func(want string) {
		t.Helper()
		ctx, cancel := guarded()
		defer cancel()
		var who string
		if err := srv.Request(ctx, "w1", "run_task", nil, &who); err != nil || who != want {
			t.Fatalf("request to w1: answered by %q, err %v; want %q", who, err, want)
		}
	}

	// Another authorised key connects under the same identity: it takes
	// the connection over (ZMQ_ROUTER_HANDOVER) but nothing is sent to it,
	// and what it sends is dropped.
	imp := secureDial(t, srv.Addr(), "w1", counting(&impostorRan, "impostor"), server.Public, other)
	// (A request written in the instant between the takeover and the
	// reading of the impostor's probe would reach it: the test waits for
	// the probe, see the package doc.)
	apitest.Eventually(t, guard, func() error {
		if srv.l.hijacks.Load() == 0 {
			return errors.New("the impostor's probe has not been read yet")
		}
		return nil
	})
	ctx, cancel := guarded()
	defer cancel()
	if err := srv.Request(ctx, "w1", "run_task", nil, nil); !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), "key") {
		t.Fatalf("request to w1 held by an impostor: %v, want ErrUnknownPeer naming the key", err)
	}
	refusedRequest(t, imp)

	// The owner reconnects (as a restarted worker does) and is reachable again.
	_ = ownerC.Close()
	secureDial(t, srv.Addr(), "w1", counting(&ownerRan, "owner"), server.Public, owner)
	apitest.Eventually(t, guard, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), refusedWait)
		defer cancel()
		return srv.Request(ctx, "w1", "run_task", nil, nil)
	})
	reaches("owner")
	if n := impostorRan.Load(); n != 0 {
		t.Fatalf("the impostor received %d commands meant for w1", n)
	}
}

func TestCheckKey(t *testing.T) {
	kp := KeyPair{Public: strings.Repeat("a", 40)}
	for _, tc := range []struct {
		name, key string
		ok        bool
	}{
		{"forty z85 characters", kp.Public, true},
		{"too short", "abc", false},
		{"not z85", strings.Repeat("~", 40), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckKey(tc.key); (err == nil) != tc.ok {
				t.Errorf("CheckKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
			}
		})
	}
}

// BenchmarkRoundTripCurve is BenchmarkRoundTrip's serial and parallel runs
// over CURVE (encryption, and the key check of every received message).
func BenchmarkRoundTripCurve(b *testing.B) {
	needZMQ(b)
	server, client := keyPair(b), keyPair(b)
	ack := func(context.Context, string, string, []byte) (any, error) { return "ack", nil }
	srv := secureListen(b, ack, server, allow(client))
	cli := secureDial(b, srv.Addr(), "bench", nil, server.Public, client)
	hb := api.Heartbeat{Node: "bench", Time: 1700000000.5, Cores: 8, CoresBusy: 3, MemTotal: 16 << 30, MemUsed: 5 << 30, Tasks: 3}
	ctx := context.Background()
	if err := cli.Request(ctx, api.KindHeartbeat, hb, nil); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := cli.Request(ctx, api.KindHeartbeat, hb, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := cli.Request(ctx, api.KindHeartbeat, hb, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
	})
}

func TestCurveIdentityFollowsARotatedKey(t *testing.T) {
	needZMQ(t)
	server, old, fresh := keyPair(t), keyPair(t), keyPair(t)
	var mu sync.Mutex
	allowed := map[string]bool{old.Public: true, fresh.Public: true}
	auth := AuthorizerFunc(func(k string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		return "test", allowed[k]
	})
	srv := secureListen(t, mux{}.handle, server, auth)
	var n atomic.Int64
	oc := secureDial(t, srv.Addr(), "w1", counting(&n, "old"), server.Public, old)
	waitPeer(t, srv, "w1")
	_ = oc.Close()

	// The worker's keys are made anew; the operator removes the old key.
	mu.Lock()
	delete(allowed, old.Public)
	mu.Unlock()
	secureDial(t, srv.Addr(), "w1", counting(&n, "fresh"), server.Public, fresh)
	apitest.Eventually(t, guard, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), refusedWait)
		defer cancel()
		var who string
		if err := srv.Request(ctx, "w1", "run_task", nil, &who); err != nil {
			return err
		}
		if who != "fresh" {
			return errors.New("answered by " + who)
		}
		return nil
	})
}

// TestCurveHandlerSeesThePeersKey: a server's handler learns the key each
// request was authenticated with, whatever identity its client chose, so
// that it can serve some requests to some keys only.
func TestCurveHandlerSeesThePeersKey(t *testing.T) {
	needZMQ(t)
	server, a, b := keyPair(t), keyPair(t), keyPair(t)
	srv := secureListen(t, func(ctx context.Context, _, _ string, _ []byte) (any, error) {
		return PeerKey(ctx), nil
	}, server, allow(a, b))
	for _, tc := range []struct {
		name string
		id   string
		kp   KeyPair
	}{
		{"first key", "same-id-a", a},
		{"second key", "same-id-b", b},
		// b choosing an identity that names a: the key still says b.
		{"second key under a telling identity", "jobmanager", b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := secureDial(t, srv.Addr(), tc.id, nil, server.Public, tc.kp)
			ctx, cancel := guarded()
			defer cancel()
			var got string
			if err := c.Request(ctx, "whoami", nil, &got); err != nil {
				t.Fatal(err)
			}
			if got != tc.kp.Public {
				t.Errorf("PeerKey = %q, want the client's key %q", got, tc.kp.Public)
			}
		})
	}
	// Without CURVE there is no key.
	plain, err := Listen("tcp://127.0.0.1:*", func(ctx context.Context, _, _ string, _ []byte) (any, error) {
		return PeerKey(ctx), nil
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := guarded()
	defer cancel()
	got := "unset"
	if err := dial(t, plain.Addr(), "p", nil).Request(ctx, "whoami", nil, &got); err != nil || got != "" {
		t.Errorf("PeerKey without CURVE = %q, %v; want \"\"", got, err)
	}
}

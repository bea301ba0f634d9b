package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rswarm/rswarm/api/apitest"
)

func dialCarrier(t testing.TB, addr, id string, opts ...Option) *Carrier {
	t.Helper()
	c, err := DialCarrier(addr, id, testLogger(t), opts...)
	if err != nil {
		t.Fatalf("DialCarrier: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func attach(t testing.TB, c *Carrier, id string, h Handler) *Carried {
	t.Helper()
	s, err := c.Attach(id, h)
	if err != nil {
		t.Fatalf("Attach(%q): %v", id, err)
	}
	return s
}

// logBuffer is a logger whose output the test reads.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCarrierCarriesManyIdentities puts 300 identities on one connection
// beside a plain Client, and checks that requests both ways reach exactly
// the identity they are for.
func TestCarrierCarriesManyIdentities(t *testing.T) {
	needZMQ(t)
	const n = 300
	srv, err := Listen("tcp://127.0.0.1:*", mux{"echo": echo("server")}.handle, testLogger(t), WithCarrying(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	car := dialCarrier(t, srv.Addr(), "carrier-1")
	ids := make([]string, n)
	subs := make([]*Carried, n)
	for i := range ids {
		// Identities that are prefixes of one another, as in TestIdentitiesAreExact.
		ids[i] = fmt.Sprintf("w%d", i)
		subs[i] = attach(t, car, ids[i], mux{"echo": echo(ids[i])}.handle)
	}
	if _, err := car.Attach("w7", nil); err == nil {
		t.Error("attaching an identity twice succeeded")
	}
	if _, err := car.Attach("", nil); err == nil {
		t.Error("attaching an empty identity succeeded")
	}
	plain := dial(t, srv.Addr(), "plain", mux{"echo": echo("plain")}.handle)

	// Every identity speaks first (the server learns a carried identity
	// from its messages, as it learns a Client's from its connection),
	// then both ways at once, all identities together.
	var wg sync.WaitGroup
	errs := make(chan error, 2*n+2)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := guarded()
			defer cancel()
			var got echoed
			if err := subs[i].Request(ctx, "echo", i, &got); err != nil {
				errs <- fmt.Errorf("%s to server: %w", ids[i], err)
				return
			}
			if got.From != ids[i] || string(got.Body) != fmt.Sprint(i) {
				errs <- fmt.Errorf("%s to server: the server saw from %q body %s", ids[i], got.From, got.Body)
				return
			}
			got = echoed{}
			if err := srv.Request(ctx, ids[i], "echo", i, &got); err != nil {
				errs <- fmt.Errorf("server to %s: %w", ids[i], err)
				return
			}
			if got.Me != ids[i] || got.From != srv.Addr() || string(got.Body) != fmt.Sprint(i) {
				errs <- fmt.Errorf("server to %s: answered by %q (from %q, body %s)", ids[i], got.Me, got.From, got.Body)
			}
		}()
	}
	wg.Wait()
	ctx, cancel := guarded()
	defer cancel()
	var got echoed
	if err := plain.Request(ctx, "echo", nil, &got); err != nil || got.From != "plain" {
		errs <- fmt.Errorf("plain client beside the carrier: from %q, %v", got.From, err)
	}
	if err := srv.Request(ctx, "plain", "echo", nil, &got); err != nil || got.Me != "plain" {
		errs <- fmt.Errorf("server to the plain client: answered by %q, %v", got.Me, err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Peers lists the carried identities and the plain client, not the
	// carrier's own identity (it never spoke for itself).
	want := append(slices.Clone(ids), "plain")
	slices.Sort(want)
	if got := srv.Peers(); !slices.Equal(got, want) {
		t.Errorf("Peers() has %d identities, want %d (the %d carried and plain); first %q", len(got), len(want), n, got[:min(len(got), 5)])
	}

	// A detached identity is unknown at once, as a closed Client (after
	// the request reached its carrier); the others are still served.
	if err := subs[3].Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Request(ctx, "w3", "echo", nil, nil); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("request to a detached identity: %v, want ErrUnknownPeer", err)
	}
	if err := subs[3].Request(ctx, "echo", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("request of a detached identity: %v, want ErrClosed", err)
	}
	if err := srv.Request(ctx, "w30", "echo", nil, &got); err != nil || got.Me != "w30" {
		t.Errorf("request to w30 after w3 left: answered by %q, %v", got.Me, err)
	}
	// Closing the carrier takes every identity with it.
	if err := car.Close(); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, guard, func() error {
		// (As for a closed Client, a request sent while the connection is
		// torn down times out.)
		ctx, cancel := context.WithTimeout(context.Background(), refusedWait)
		defer cancel()
		if err := srv.Request(ctx, "w30", "echo", nil, nil); !errors.Is(err, ErrUnknownPeer) {
			return fmt.Errorf("request to w30 after its carrier closed: %v", err)
		}
		return nil
	})
}

// TestCarrierMaySpeakOnlyForIdentitiesItsKeyOwns checks the carrying
// rule with CURVE: a key not allowed to carry is refused with an error
// reply; an allowed key cannot speak for an identity another key owns
// (refused and logged, and requests to that identity still reach its
// owner); and a server without carriers refuses them all.
func TestCarrierMaySpeakOnlyForIdentitiesItsKeyOwns(t *testing.T) {
	needZMQ(t)
	server, owner, carrier, stranger := keyPair(t), keyPair(t), keyPair(t), keyPair(t)
	var logs logBuffer
	var froms sync.Map // from -> true, every identity a request was served for
	h := func(_ context.Context, from, kind string, body []byte) (any, error) {
		froms.Store(from, true)
		return mux{"echo": echo("server")}.handle(context.Background(), from, kind, body)
	}
	srv, err := Listen("tcp://127.0.0.1:*", h, slog.New(slog.NewTextHandler(&logs, nil)),
		WithCurveServer(server.Secret, allow(owner, carrier, stranger)), WithCarrying(allow(carrier)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	var ownerRan, thiefRan atomic.Int64
	secureDial(t, srv.Addr(), "w1", counting(&ownerRan, "owner"), server.Public, owner)
	waitPeer(t, srv, "w1")

	car := dialCarrier(t, srv.Addr(), "carrier", WithCurveClient(server.Public, carrier))
	stolen := attach(t, car, "w1", counting(&thiefRan, "thief"))
	mine := attach(t, car, "w2", mux{"echo": echo("w2")}.handle)
	ctx, cancel := guarded()
	defer cancel()
	var got echoed
	if err := mine.Request(ctx, "echo", nil, &got); err != nil || got.From != "w2" {
		t.Fatalf("the carrier's own identity w2: server saw %q, %v", got.From, err)
	}
	// Speaking for w1, whose key is the owner's: dropped, as an impostor's.
	refusedCtx, cancelRefused := context.WithTimeout(context.Background(), refusedWait)
	defer cancelRefused()
	if err := stolen.Request(refusedCtx, "echo", nil, nil); !errors.Is(err, ErrTimeout) {
		t.Errorf("a carrier speaking for w1 (owned by another key): %v, want a timeout (dropped)", err)
	}
	var who string
	if err := srv.Request(ctx, "w1", "run_task", nil, &who); err != nil || who != "owner" {
		t.Errorf("request to w1 after the carrier spoke for it: answered by %q, %v; want the owner", who, err)
	}
	if thiefRan.Load() != 0 {
		t.Errorf("the carrier received %d requests meant for w1", thiefRan.Load())
	}

	// A key the server accepts but does not let carry: refused with a reason.
	other := dialCarrier(t, srv.Addr(), "stranger", WithCurveClient(server.Public, stranger))
	w3 := attach(t, other, "w3", nil)
	var re *RemoteError
	if err := w3.Request(ctx, "echo", nil, nil); !errors.As(err, &re) || !strings.Contains(re.Msg, "may not speak for") {
		t.Errorf("a key not allowed to carry: %v, want a remote error saying it may not speak for w3", err)
	}
	if err := srv.Request(ctx, "w3", "echo", nil, nil); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("request to w3, never carried: %v, want ErrUnknownPeer", err)
	}

	if _, ok := froms.Load("w3"); ok {
		t.Error("the handler served a request from w3")
	}
	if srv.l.refusals.Load() < 2 {
		t.Errorf("%d refusals counted, want at least 2", srv.l.refusals.Load())
	}
	out := logs.String()
	for _, want := range [][]string{{"as=w1", carrier.Public, owner.Public}, {"as=w3", stranger.Public}} {
		if !slices.ContainsFunc(strings.Split(out, "\n"), func(line string) bool {
			return !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) })
		}) {
			t.Errorf("no refusal logged with %q; log:\n%s", want, out)
		}
	}

	// A server that takes no carriers refuses them, with a reason.
	plainSrv := listen(t, "tcp://127.0.0.1:*", mux{}.handle)
	pc := dialCarrier(t, plainSrv.Addr(), "carrier")
	if err := attach(t, pc, "w4", nil).Request(ctx, "ping", nil, nil); !errors.As(err, &re) || !strings.Contains(re.Msg, "may not speak for") {
		t.Errorf("carrier on a server without carrying: %v, want a remote error", err)
	}
}

// TestCarrierAnnouncesItsIdentities checks that a Server reaches carried
// identities that never spoke to it: a Carrier names them all on each new
// connection, as a Client's connection names its identity. Here the
// server is started anew, as a globalmanager restarted while a process of
// simulated workers runs (they speak to it only when they register).
func TestCarrierAnnouncesItsIdentities(t *testing.T) {
	needZMQ(t)
	first, err := Listen("tcp://127.0.0.1:*", nil, testLogger(t), WithCarrying(nil))
	if err != nil {
		t.Fatal(err)
	}
	addr := first.Addr()
	car := dialCarrier(t, addr, "carrier")
	ids := []string{"w1", "w2", "w3"}
	for _, id := range ids {
		attach(t, car, id, mux{"echo": echo(id)}.handle)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := Listen(addr, nil, testLogger(t), WithCarrying(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	for _, id := range ids {
		apitest.Eventually(t, guard, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), refusedWait)
			defer cancel()
			var got echoed
			if err := second.Request(ctx, id, "echo", nil, &got); err != nil {
				return err
			}
			if got.Me != id {
				return fmt.Errorf("request to %s answered by %q", id, got.Me)
			}
			return nil
		})
	}
	if got := second.Peers(); !slices.Equal(got, ids) {
		t.Errorf("Peers() = %q, want %q (announced)", got, ids)
	}
}

package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// TestFailOnDisconnect: a request in flight when its server goes away ends
// with ErrConnectionLost (an api.ErrUnavailable) on a Client dialed
// WithFailOnDisconnect, and only with its own deadline on another; a
// request sent after the server is back is served.
func TestFailOnDisconnect(t *testing.T) {
	needZMQ(t)
	for _, tc := range []struct {
		name string
		opts []Option
		want error
	}{
		{"with the option", []Option{WithFailOnDisconnect()}, ErrConnectionLost},
		{"without it", nil, ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, release := make(chan struct{}, 1), make(chan struct{})
			defer close(release)
			srv, err := Listen("tcp://127.0.0.1:*", func(context.Context, string, string, []byte) (any, error) {
				started <- struct{}{}
				<-release // never answers while the test looks
				return nil, nil
			}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			addr := srv.Addr()
			c, err := Dial(addr, "client", nil, testLogger(t), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			// The "without it" case can only end by its deadline: a
			// short one bounds the test (it is no assertion on time).
			wait := guard
			if tc.want == ErrTimeout {
				wait = 500 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- c.Request(ctx, "slow", nil, nil) }()
			<-started
			closed := make(chan error, 1)
			go func() { closed <- srv.Close() }() // returns once release is closed
			err = <-errc
			if !errors.Is(err, tc.want) {
				t.Fatalf("request in flight when the server went away: %v, want %v", err, tc.want)
			}
			if tc.want == ErrConnectionLost && !errors.Is(err, api.ErrUnavailable) {
				t.Errorf("%v is not an api.ErrUnavailable", err)
			}

			// The server back on the same address: new requests are served.
			release <- struct{}{} // the old handler returns; Close completes
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
			srv2, err := Listen(addr, func(context.Context, string, string, []byte) (any, error) { return "back", nil }, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer srv2.Close()
			// (A server back at once on the same address, in the same
			// process, may take a first request on its predecessor's dying
			// listener: ask until it answers.)
			apitest.Eventually(t, guard, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				defer cancel()
				var got string
				if err := c.Request(ctx, "ping", nil, &got); err != nil {
					return err
				}
				if got != "back" {
					return fmt.Errorf("answer %q, want back", got)
				}
				return nil
			})
		})
	}
}

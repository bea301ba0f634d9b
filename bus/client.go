package bus

import (
	"context"
	"fmt"
	"log/slog"

	zmq "github.com/pebbe/zmq4"
)

// Client is the connecting side of the bus: a DEALER socket under a fixed
// identity. It sends requests to its server and serves the server's requests
// with its Handler. It reconnects by itself. Its methods are safe for
// concurrent use.
type Client struct {
	l *loop
}

// Dial connects a DEALER socket to addr (e.g. "tcp://127.0.0.1:3100") under
// identity, which must be unique among the server's peers (a worker uses its
// Swarm node ID): the server addresses requests to it by exactly this
// string, and a newer connection with the same identity takes over. The
// server need not be up yet. Incoming requests are served by h (a nil h
// answers each with a remote error) and passed the server's address as from.
// A nil logger discards logs.
func Dial(addr, identity string, h Handler, logger *slog.Logger, opts ...Option) (*Client, error) {
	l, err := dialLoop(addr, identity, h, logger, opts, nil)
	if err != nil {
		return nil, err
	}
	return &Client{l: l}, nil
}

// dialLoop starts the loop of a DEALER connected to addr under identity;
// more, when not nil, sets further socket options.
func dialLoop(addr, identity string, h Handler, logger *slog.Logger, opts []Option, more func(*zmq.Socket) error) (*loop, error) {
	if err := validIdentity(identity); err != nil {
		return nil, fmt.Errorf("bus: dial %s: %w", addr, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts = append(opts, func(o *options) { o.self = identity })
	return newLoop(zmq.DEALER, addr, h, logger.With("bus", addr, "identity", identity), opts, func(s *zmq.Socket) error {
		err := s.SetIdentity(identity)
		if err == nil {
			// Queue only on a completed connection, so nothing written while
			// the server is away is delivered after its caller gave up.
			err = s.SetImmediate(true)
		}
		if err == nil && more != nil {
			err = more(s)
		}
		if err != nil {
			return fmt.Errorf("bus: socket options: %w", err)
		}
		if err := s.Connect(addr); err != nil {
			return fmt.Errorf("bus: dial %s: %w", addr, err)
		}
		return nil
	})
}

// Request sends kind+body (JSON-encoded) to the server and waits for its
// reply, decoded into reply (which may be nil). While the server is
// unreachable the request waits to be sent until ctx ends. It returns
// ErrTimeout when ctx's deadline passes first (the error also matches
// context.DeadlineExceeded), ctx's error when it is cancelled, a
// *RemoteError when the server's handler fails, and ErrClosed after Close.
func (c *Client) Request(ctx context.Context, kind string, body, reply any) error {
	return c.l.request(ctx, "", "", kind, body, reply)
}

// Close disconnects: waiting Requests return ErrClosed, handlers' contexts
// are cancelled, and Close returns once the socket goroutine and every
// handler have finished. It is idempotent. It must not be called from a
// Handler, since it waits for handlers.
func (c *Client) Close() error { return c.l.close() }

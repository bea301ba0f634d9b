package bus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// Server is the binding side of the bus: a ROUTER socket that any number of
// Clients connect to, each under its own identity. It serves their requests
// with its Handler and sends requests to exactly one of them. Its methods
// are safe for concurrent use.
type Server struct {
	l    *loop
	addr string
}

// Listen binds a ROUTER socket to addr (e.g. "tcp://127.0.0.1:3100" or
// "tcp://*:3100"; "tcp://127.0.0.1:*" picks a free port, see Addr) and
// serves incoming requests with h. A nil h answers every request with a
// remote error. A nil logger discards logs.
func Listen(addr string, h Handler, logger *slog.Logger, opts ...Option) (*Server, error) {
	var bound string
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l, err := newLoop(zmq.ROUTER, "", h, logger.With("bus", addr), opts, func(s *zmq.Socket) error {
		if err := s.SetRouterMandatory(1); err != nil {
			return fmt.Errorf("bus: socket options: %w", err)
		}
		// A socket closed a moment ago in this process releases its port
		// asynchronously (the zmq context is shared): retry briefly.
		for wait := time.Millisecond; ; wait *= 2 {
			err := s.Bind(addr)
			if err == nil {
				break
			}
			if zmq.AsErrno(err) != zmq.Errno(syscall.EADDRINUSE) || wait > 512*time.Millisecond {
				return fmt.Errorf("bus: listen %s: %w", addr, err)
			}
			time.Sleep(wait)
		}
		var err error
		if bound, err = s.GetLastEndpoint(); err != nil {
			return fmt.Errorf("bus: listen %s: %w", addr, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Server{l: l, addr: bound}, nil
}

// Addr returns the bound endpoint with its real port, e.g.
// "tcp://127.0.0.1:40123" after Listen("tcp://127.0.0.1:*", ...).
func (s *Server) Addr() string { return s.addr }

// Request sends kind+body (JSON-encoded) to exactly the connected client
// whose identity is to and waits for its reply, decoded into reply (which may
// be nil). It fails at once with ErrUnknownPeer when no client with that
// identity is connected, returns ErrTimeout when ctx's deadline passes first
// (the error also matches context.DeadlineExceeded), ctx's error when it is
// cancelled, a *RemoteError when the client's handler fails, and ErrClosed
// after Close.
func (s *Server) Request(ctx context.Context, to, kind string, body, reply any) error {
	return s.l.request(ctx, to, "", kind, body, reply)
}

// Peers lists, sorted, the identities that have sent anything within the
// last minute (best effort: a client that is connected but silent is
// missing, and one that left may linger for up to a minute).
func (s *Server) Peers() []string {
	ids := s.l.peers()
	slices.Sort(ids)
	return ids
}

// Close stops serving: waiting Requests return ErrClosed, handlers' contexts
// are cancelled, and Close returns once the socket goroutine and every
// handler have finished. It is idempotent. It must not be called from a
// Handler, since it waits for handlers.
func (s *Server) Close() error { return s.l.close() }

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/rswarm/rswarm/bus"
	"github.com/rswarm/rswarm/worker"
)

// simCarriers are the bus connections the simulated workers of one process
// share: one bus.Carrier per server (the globalmanager's and discovery's),
// each carrying every worker's identity. With a connection of their own
// per server, ten thousand workers held some 80,000 descriptors here and
// 20,000 in the control plane; with carriers they hold two (see the bus
// package's doc for the rule that keeps it sound). A Docker worker, alone
// in its process, keeps a Client of its own.
type simCarriers struct {
	ep  *endpoints
	log *slog.Logger

	mu       sync.Mutex
	byServer map[string]*bus.Carrier
	closed   bool
}

func newSimCarriers(ep *endpoints, log *slog.Logger) *simCarriers {
	return &simCarriers{ep: ep, log: log, byServer: make(map[string]*bus.Carrier)}
}

// dialer returns a worker.Dialer that attaches workers to the carrier of
// server's bus at addr, dialing it on first use.
func (s *simCarriers) dialer(server, addr string) worker.Dialer {
	return func(id string, h worker.Handler) (worker.Link, error) {
		c, err := s.carrier(server, addr)
		if err != nil {
			return nil, err
		}
		var bh bus.Handler
		if h != nil {
			bh = bus.Handler(h)
		}
		return c.Attach(id, bh)
	}
}

func (s *simCarriers) carrier(server, addr string) (*bus.Carrier, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("connect to %s: %w", server, bus.ErrClosed)
	}
	if c := s.byServer[server]; c != nil {
		return c, nil
	}
	opts, err := s.ep.clientOptions("worker", server, addr, s.log)
	if err != nil {
		return nil, err
	}
	// Commands for thousands of workers arrive on this one connection: let
	// as many run at once as a server serves.
	opts = append(opts, bus.WithMaxHandlers(busHandlers))
	c, err := bus.DialCarrier(addr, identity("simworkers")+"-"+server, s.log, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s at %s: %w", server, addr, err)
	}
	s.byServer[server] = c
	return c, nil
}

// Close closes the carriers, once every worker using them has stopped.
func (s *simCarriers) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for _, c := range s.byServer {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

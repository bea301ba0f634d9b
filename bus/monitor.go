package bus

import (
	"fmt"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// monitorWatch reads a socket's monitor (ZeroMQ's events about its
// connections) on its own goroutine and hands each event to its callback,
// until stop. The bus watches three kinds of event this way: refused CURVE
// handshakes on a server (watchHandshakes), a lost connection on a Client
// WithFailOnDisconnect (watchLoss), and a completed handshake on a Carrier,
// which then says hello.
type monitorWatch struct {
	done chan struct{}
	exit chan struct{}
}

// watchMonitor connects to addr, the endpoint a socket's Monitor publishes
// its events on (Monitor must have been called on it already), and calls on
// with each event read, always from the same goroutine, so that on may keep
// state of its own without a lock.
func watchMonitor(zctx *zmq.Context, addr string, on func(ev zmq.Event, endpoint string, code int)) (*monitorWatch, error) {
	mon, err := zctx.NewSocket(zmq.PAIR)
	if err == nil {
		if err = mon.SetLinger(0); err == nil {
			err = mon.Connect(addr)
		}
	}
	if err != nil {
		if mon != nil {
			_ = mon.Close()
		}
		return nil, fmt.Errorf("bus: socket monitor: %w", err)
	}
	w := &monitorWatch{done: make(chan struct{}), exit: make(chan struct{})}
	go w.run(mon, on)
	return w, nil
}

func (w *monitorWatch) run(mon *zmq.Socket, on func(zmq.Event, string, int)) {
	defer close(w.exit)
	defer mon.Close()
	poller := zmq.NewPoller()
	poller.Add(mon, zmq.POLLIN)
	for {
		select {
		case <-w.done:
			return
		default:
		}
		polled, err := poller.Poll(250 * time.Millisecond)
		if err != nil {
			if isErrno(err, zmq.ETERM) {
				return
			}
			continue
		}
		if len(polled) == 0 {
			continue
		}
		if ev, endpoint, code, err := mon.RecvEvent(0); err == nil {
			on(ev, endpoint, code)
		}
	}
}

// stop ends the watch and waits for its goroutine.
func (w *monitorWatch) stop() {
	close(w.done)
	<-w.exit
}

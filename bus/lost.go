package bus

import (
	"fmt"
	"sync/atomic"

	zmq "github.com/pebbe/zmq4"

	"github.com/rswarm/rswarm/api"
)

// ErrConnectionLost ends, on a Client dialed WithFailOnDisconnect, a
// request that was sent and whose connection then closed: the server may
// or may not have served it, and its reply will not come. It is of kind
// api.ErrUnavailable: sending it again is for the caller to decide.
var ErrConnectionLost = api.NewKind("bus: connection lost while waiting for the reply (the request may have been served)", api.ErrUnavailable)

// WithFailOnDisconnect makes a Client end its sent requests with
// ErrConnectionLost as soon as its connection closes (the server was
// stopped or killed), rather than when their contexts end: for callers
// that wait long (the jobmanager waits up to its dispatch timeout for a
// deployment) and send again anyway. Requests not yet sent are not
// affected: they go once the connection is back. It costs a socket monitor
// and a goroutine, so it is for few Clients.
func WithFailOnDisconnect() Option {
	return func(o *options) { o.failOnDisconnect = true }
}

var lossWatches atomic.Int64 // names the monitors' endpoints

// watchLoss fails the loop's sent requests when a connection of its
// socket closes.
func watchLoss(l *loop) (*monitorWatch, error) {
	addr := fmt.Sprintf("inproc://rswarm-loss-%d", lossWatches.Add(1))
	if err := l.sock.Monitor(addr, zmq.EVENT_DISCONNECTED); err != nil {
		return nil, fmt.Errorf("bus: socket monitor: %w", err)
	}
	return watchMonitor(l.zctx, addr, func(_ zmq.Event, endpoint string, _ int) {
		if n := l.failSent(ErrConnectionLost); n > 0 {
			l.log.Warn("bus: connection lost; requests waiting for replies end now", "endpoint", endpoint, "requests", n)
		}
	})
}

// failSent ends every request that was sent and waits for its reply with
// err, and returns how many there were. A request sent on a new connection
// just before a late disconnect event is read ends too: its caller sends
// it again, which a request may always be (delivery is at least once).
func (l *loop) failSent(err error) int {
	l.pmu.Lock()
	var ended []*call
	for id, c := range l.pending {
		if c.sent.Load() {
			ended = append(ended, c)
			delete(l.pending, id)
		}
	}
	l.pmu.Unlock()
	for _, c := range ended {
		c.ch <- callResult{err: err}
	}
	return len(ended)
}

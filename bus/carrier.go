package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// noPeerHere is the error a Carrier (or a Client) answers a request with
// when it carries no identity the request is for; a Server turns it into
// ErrUnknownPeer, since the request reached no peer.
const noPeerHere = "bus: no peer with this identity is carried here"

// carrierBacklog bounds what a Carrier holds while it cannot write: it
// speaks for thousands of identities, each of which may have a request
// waiting while the connection comes up.
const carrierBacklog = 200000

// carrierHWM is a Carrier's high-water mark, for the same reason.
const carrierHWM = 200000

// maxRefusalsLogged bounds the memory of refusals already logged.
const maxRefusalsLogged = 4096

// WithCarrying lets a Server accept Carriers: connections that speak for
// other identities than their own (see the package doc). With CURVE, only
// connections whose key carriers authorises may, and each identity a
// Carrier speaks for is bound to its key as a Client's is; a nil carriers
// authorises every key the Server accepts. Without CURVE the bus is open
// and carriers is not consulted. A Server without this option refuses
// messages that speak for another identity, with an error reply.
func WithCarrying(carriers Authorizer) Option {
	return func(o *options) { o.carrying, o.carriers = true, carriers }
}

// carry decides whether the connection route, whose key is key, may speak
// for env.As; when it may, requests to env.As go through route from now
// on. It logs a refusal once per connection and identity.
func (l *loop) carry(route, key string, env envelope) bool {
	as := env.As
	refuse := func(why string, attrs ...any) {
		l.refusals.Add(1)
		k := route + "\x00" + as
		if !l.refused[k] {
			if len(l.refused) >= maxRefusalsLogged {
				clear(l.refused) // many refusals: at worst log again
			}
			l.refused[k] = true
			l.log.Warn("bus: refusing a peer that speaks for another identity: "+why, append([]any{"peer", route, "as", as, "peer_key", key}, attrs...)...)
		}
	}
	switch {
	case !l.opts.carrying:
		refuse("this server accepts no carriers")
	case l.domain != "" && l.opts.carriers != nil && !carrierAllowed(l.opts.carriers, key):
		refuse("its key may not carry other identities")
	case validIdentity(as) != nil:
		refuse("invalid identity")
	default:
		if own, ok := l.owns(as, key); !ok {
			// Dropped without a reply, as the messages of a connection
			// that took over an identity owned by another key.
			refuse("the identity is owned by another key", "owner_key", own)
			return false
		}
		l.carriers[as] = route
		return true
	}
	if env.Type == typeReq && env.ID != 0 {
		l.replyError(route, env, fmt.Sprintf("bus: this connection may not speak for %q", as))
	}
	return false
}

// hello handles a Carrier's list of its identities, sent on each new
// connection: each one the connection may speak for is routed through it
// from now on, so that a Server started anew reaches them before they
// speak (a worker speaks to the globalmanager only when it registers).
func (l *loop) hello(route, key string, env envelope) {
	var ids []string
	if err := json.Unmarshal(env.Body, &ids); err != nil {
		l.log.Warn("bus: dropping a malformed hello", "from", route, "err", err)
		return
	}
	now := time.Now()
	for _, id := range ids {
		if id == route {
			continue
		}
		e := env
		e.As = id
		if l.carry(route, key, e) {
			l.touch(id, now)
		}
	}
}

func carrierAllowed(a Authorizer, key string) bool {
	_, ok := a.Authorize(key)
	return ok
}

// validIdentity checks a routing identity: ZeroMQ's are 1 to 255 bytes,
// and a leading zero byte is reserved for those a ROUTER makes itself.
func validIdentity(id string) error {
	if id == "" || len(id) > 255 || id[0] == 0 {
		return fmt.Errorf("invalid identity %q: want 1 to 255 bytes, not starting with a zero byte", id)
	}
	return nil
}

// subTable is a Carrier's identities and their handlers.
type subTable struct {
	mu sync.RWMutex
	h  map[string]Handler
}

func (t *subTable) handler(id string) Handler {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.h[id]
}

// Carrier is one DEALER connection that carries the traffic of many
// identities, each Attached with its own Handler: the simulated workers
// of one process share one Carrier per server instead of a Client each,
// so ten thousand of them need two connections, not twenty thousand. The
// server must accept carriers (WithCarrying). Its methods are safe for
// concurrent use.
type Carrier struct {
	l         *loop
	subs      *subTable
	watch     *monitorWatch
	closeOnce sync.Once
}

// DialCarrier connects a Carrier to addr under identity (its own, which
// must differ from every identity it carries and be unique among the
// server's peers); it takes the options of Dial.
func DialCarrier(addr, identity string, logger *slog.Logger, opts ...Option) (*Carrier, error) {
	subs := &subTable{h: make(map[string]Handler)}
	c := &Carrier{subs: subs}
	opts = append(opts, func(o *options) { o.subs, o.backlogMax = subs, carrierBacklog })
	monitor := fmt.Sprintf("inproc://rswarm-carrier-%d", carrierSeq.Add(1))
	// The handler is never called: invoke picks the carried identity's.
	l, err := dialLoop(addr, identity, func(context.Context, string, string, []byte) (any, error) {
		return nil, errors.New(noPeerHere)
	}, logger, opts, func(s *zmq.Socket) error {
		return errors.Join(s.SetSndhwm(carrierHWM), s.SetRcvhwm(carrierHWM),
			s.Monitor(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED))
	})
	if err != nil {
		return nil, err
	}
	c.l = l
	c.watch, err = watchMonitor(l.zctx, monitor, func(ev zmq.Event, _ string, _ int) {
		if ev == zmq.EVENT_HANDSHAKE_SUCCEEDED {
			c.sayHello()
		}
	})
	if err != nil {
		_ = l.close()
		return nil, err
	}
	return c, nil
}

var carrierSeq atomic.Int64

// helloExpiry bounds how long a hello waits to be written: a connection
// that completed its handshake takes it at once, and the next connection
// sends its own.
const helloExpiry = 10 * time.Second

// sayHello tells the server, on a new connection, every identity carried.
func (c *Carrier) sayHello() {
	c.subs.mu.RLock()
	ids := make([]string, 0, len(c.subs.h))
	for id := range c.subs.h {
		ids = append(ids, id)
	}
	c.subs.mu.RUnlock()
	if len(ids) == 0 {
		return
	}
	body, err := json.Marshal(ids)
	if err == nil {
		var raw []byte
		raw, err = json.Marshal(envelope{V: version, Type: typeHello, Kind: typeHello, Body: body})
		if err == nil {
			_ = c.l.enqueue(outMsg{env: raw, expires: time.Now().Add(helloExpiry)})
			return
		}
	}
	c.l.log.Error("bus: encoding a hello", "err", err)
}

// Attach starts carrying identity, whose incoming requests h serves (a nil
// h answers each with a remote error). It fails when identity is invalid
// or already carried here.
func (c *Carrier) Attach(identity string, h Handler) (*Carried, error) {
	if err := validIdentity(identity); err != nil {
		return nil, fmt.Errorf("bus: attach: %w", err)
	}
	if h == nil {
		h = func(context.Context, string, string, []byte) (any, error) {
			return nil, errors.New("bus: this peer serves no requests")
		}
	}
	c.subs.mu.Lock()
	defer c.subs.mu.Unlock()
	if _, ok := c.subs.h[identity]; ok {
		return nil, fmt.Errorf("bus: attach: identity %q is already carried here", identity)
	}
	c.subs.h[identity] = h
	return &Carried{c: c, id: identity}, nil
}

// Close closes the connection: the Requests of every carried identity
// waiting then return ErrClosed. It is idempotent, and must not be called
// from a Handler.
func (c *Carrier) Close() error {
	c.closeOnce.Do(c.watch.stop)
	return c.l.close()
}

// Carried is one identity carried by a Carrier: a Client's Request and
// Close for it alone.
type Carried struct {
	c      *Carrier
	id     string
	closed atomic.Bool
}

// Request sends a request as this identity; see Client.Request.
func (s *Carried) Request(ctx context.Context, kind string, body, reply any) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.c.l.request(ctx, "", s.id, kind, body, reply)
}

// Close stops carrying the identity: the server's requests to it are
// answered as for a peer that is not connected. Its own Requests still
// waiting end with their contexts. It is idempotent.
func (s *Carried) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.c.subs.mu.Lock()
	delete(s.c.subs.h, s.id)
	s.c.subs.mu.Unlock()
	return nil
}

package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// Tuning. The HWMs bound memory per peer; the backlog and inbox bound what
// the loop holds in Go memory while a socket cannot take more or every
// handler slot is busy.
const (
	hwm            = 10000
	maxBacklog     = 10000
	maxInbox       = 10000
	maxRecvBatch   = 256 // messages read per wake-up before sending again
	reconnectIvl   = 100 * time.Millisecond
	heartbeatIvl   = 2 * time.Second
	heartbeatLimit = 20 * time.Second // generous: one loaded process may hold a thousand connections
	maxMsgSize     = 64 << 20
	backlogRecheck = time.Second // drop abandoned backlog entries at least this often
	peerWindow     = time.Minute
)

// outMsg is a message waiting for the loop to write it.
type outMsg struct {
	to      string    // recipient identity (ROUTER only)
	env     []byte    // encoded envelope
	id      uint64    // correlation id of a request this side sent; 0 for replies
	expires time.Time // replies: drop when still unsent by then (zero: never)
	served  bool      // written by a handler goroutine that has finished
}

// inMsg is a request waiting for a handler slot.
type inMsg struct {
	from     string
	key      string // the sender's CURVE public key ("" without CURVE)
	env      envelope
	deadline time.Time // from the envelope's TTL; zero: none
}

// call is a request waiting for its reply.
type call struct {
	to   string
	ch   chan callResult // buffered 1; written once, by whoever removes the call from pending
	sent atomic.Bool
}

type callResult struct {
	env *envelope
	err error
}

// loop owns one ZeroMQ socket (ROUTER for a Server, DEALER for a Client) and
// the goroutine that reads and writes it; everything else talks to that
// goroutine through the queue and the pending table.
type loop struct {
	log     *slog.Logger
	handler Handler
	router  bool
	remote  string // DEALER: the dialed address, passed to handlers as from
	opts    options
	domain  string        // ROUTER with CURVE: its ZAP domain; "" without CURVE
	watch   *monitorWatch // ROUTER with CURVE: logs refused handshakes
	loss    *monitorWatch // DEALER WithFailOnDisconnect: ends sent requests on disconnect

	// Owned by run (ROUTER): the key that owns each identity, and the
	// identities whose current connection has another key (see curve.go).
	owner    map[string]string
	hijacked map[string]bool
	hijacks  atomic.Int64 // identities found taken over by another key

	// Owned by run (ROUTER): the connection that carries each identity
	// spoken for by a Carrier, and the refusals already logged (see
	// carrier.go).
	carriers map[string]string
	refused  map[string]bool
	refusals atomic.Int64 // messages refused for an identity they may not speak for

	zctx *zmq.Context
	sock *zmq.Socket // owned by run
	// fd is a duplicate of the socket's ZMQ_FD in Go's netpoller: the loop
	// waits on it without holding an OS thread, and other goroutines wake
	// the loop by moving its read deadline into the past.
	fd *os.File
	rc syscall.RawConn

	mu        sync.Mutex // guards queue, signalled, closed
	queue     []outMsg
	signalled bool
	closed    bool

	pmu     sync.Mutex // guards pending
	pending map[uint64]*call
	nextID  atomic.Uint64

	smu       sync.Mutex // guards seen, pruned
	seen      map[string]time.Time
	pruned    time.Time
	handlerWG sync.WaitGroup

	ctx       context.Context // parent of handler contexts; cancelled by Close
	cancel    context.CancelFunc
	done      chan struct{} // closed when Close starts
	exited    chan struct{} // closed when run returns
	fatal     error         // why run returned by itself; read after exited
	closeOnce sync.Once
	closeErr  error // closing the sockets; set by run before exited is closed

	// Owned by run.
	backlog []outMsg // writes that would have blocked (a DEALER not connected yet)
	inbox   []inMsg  // requests waiting for a handler slot
	running int      // handlers started and not finished
}

// One zmq context serves every loop of the process: a context per loop
// would cost an I/O thread and its descriptors each. It has two I/O
// threads: CURVE's handshakes and encryption run on them, and with one, a
// thousand simulated workers (a Client each then) took twice as long to
// connect. Its socket limit (ZMQ_MAX_SOCKETS, 1,023 by default) is raised
// to 65,536 for processes with many Clients; a Server's connections are
// not sockets, and simulated workers now share one Carrier per server.
var (
	shared struct {
		once sync.Once
		ctx  *zmq.Context
		err  error
	}
)

func sharedContext() (*zmq.Context, error) {
	shared.once.Do(func() {
		c, err := zmq.NewContext()
		if err == nil {
			err = c.SetMaxSockets(1 << 16)
		}
		if err == nil {
			err = c.SetIoThreads(2)
		}
		shared.ctx, shared.err = c, err
	})
	return shared.ctx, shared.err
}

// newLoop creates the sockets, lets setup configure and
// bind or connect the main socket, and starts the loop goroutine.
func newLoop(typ zmq.Type, remote string, h Handler, logger *slog.Logger, opts []Option, setup func(*zmq.Socket) error) (*loop, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	zctx, err := sharedContext()
	if err != nil {
		return nil, fmt.Errorf("bus: zmq context: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &loop{
		log:      logger,
		handler:  h,
		router:   typ == zmq.ROUTER,
		remote:   remote,
		opts:     o,
		zctx:     zctx,
		pending:  make(map[uint64]*call),
		seen:     make(map[string]time.Time),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		owner:    make(map[string]string),
		hijacked: make(map[string]bool),
		carriers: make(map[string]string),
		refused:  make(map[string]bool),
	}
	// Random first id: a reply meant for an earlier incarnation of this
	// process cannot match a request of this one.
	l.nextID.Store(rand.Uint64() >> 1)

	ok := false
	defer func() {
		if !ok {
			cancel()
			if l.fd != nil {
				_ = l.fd.Close()
			}
			if l.sock != nil {
				_ = l.sock.Close()
			}
			if l.watch != nil {
				l.watch.stop()
			}
			if l.loss != nil {
				l.loss.stop()
			}
			if l.domain != "" {
				zap.unregister(l.domain)
			}
		}
	}()
	if l.sock, err = zctx.NewSocket(typ); err != nil {
		return nil, fmt.Errorf("bus: socket: %w", err)
	}
	if err := configure(l.sock); err != nil {
		return nil, err
	}
	if l.router {
		if l.domain, err = o.secureServer(l.sock, logger); err != nil {
			return nil, err
		}
		if l.domain != "" {
			if l.watch, err = watchHandshakes(zctx, l.sock, l.domain, logger); err != nil {
				return nil, err
			}
		}
		// A client that reconnects under its identity takes over from its
		// dead connection; with CURVE, a connection with another key that
		// does so is found out by its probe (see curve.go).
		if err := l.sock.SetRouterHandover(true); err != nil {
			return nil, fmt.Errorf("bus: socket options: %w", err)
		}
	} else {
		if err := o.secureClient(l.sock); err != nil {
			return nil, err
		}
		// Announce every new connection with an empty message, which
		// carries this side's key to the server (see curve.go).
		if err := l.sock.SetProbeRouter(1); err != nil {
			return nil, fmt.Errorf("bus: socket options: %w", err)
		}
	}
	if err := setup(l.sock); err != nil {
		return nil, err
	}
	if !l.router && o.failOnDisconnect {
		if l.loss, err = watchLoss(l); err != nil {
			return nil, err
		}
	}
	if l.fd, l.rc, err = pollable(l.sock); err != nil {
		return nil, err
	}
	ok = true
	go l.run()
	return l, nil
}

// configure applies the options every main socket gets.
func configure(s *zmq.Socket) error {
	err := errors.Join(
		s.SetLinger(0),
		s.SetSndhwm(hwm),
		s.SetRcvhwm(hwm),
		s.SetMaxmsgsize(maxMsgSize),
		s.SetTcpKeepalive(1),
		s.SetTcpKeepaliveIdle(30),
		s.SetTcpKeepaliveIntvl(10),
		s.SetTcpKeepaliveCnt(3),
		s.SetReconnectIvl(reconnectIvl),
		s.SetHeartbeatIvl(heartbeatIvl),
		s.SetHeartbeatTimeout(heartbeatLimit),
		s.SetHeartbeatTtl(heartbeatLimit),
	)
	if err != nil {
		return fmt.Errorf("bus: socket options: %w", err)
	}
	return nil
}

func isErrno(err error, e zmq.Errno) bool { return err != nil && zmq.AsErrno(err) == e }

var errAgain = zmq.Errno(syscall.EAGAIN)

// errHijacked refuses a write to an identity whose connection has a key
// other than the one that owns it.
var errHijacked = errors.New("its connection's key is not the key that owns this identity")

// pollable returns a duplicate of the socket's ZMQ_FD registered with Go's
// netpoller. ZMQ_FD is edge-triggered: it signals that the socket's state
// may have changed, and ZMQ_EVENTS says what it is (see wait).
func pollable(sock *zmq.Socket) (*os.File, syscall.RawConn, error) {
	zfd, err := sock.GetFd()
	if err != nil {
		return nil, nil, fmt.Errorf("bus: socket descriptor: %w", err)
	}
	// A duplicate, so that closing the file (which Go does, and its
	// finalizer would) never closes zmq's own descriptor. It shares zmq's
	// O_NONBLOCK, which is what makes os.NewFile use the netpoller.
	dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(zfd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil, nil, fmt.Errorf("bus: socket descriptor: %w", errno)
	}
	f := os.NewFile(uintptr(dup), "zmq")
	rc, err := f.SyscallConn()
	if err == nil {
		// A deadline can be set only on a descriptor in the netpoller.
		err = f.SetReadDeadline(time.Time{})
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("bus: socket descriptor: %w", err)
	}
	return f, rc, nil
}

// run is the loop goroutine: the only code that touches sock.
func (l *loop) run() {
	defer close(l.exited)
	// No runtime.LockOSThread: zmq allows a socket to move between threads
	// across a full memory barrier, which the Go scheduler provides, and
	// only this goroutine ever uses the socket.
	defer func() {
		if l.watch != nil {
			l.watch.stop()
		}
		if l.loss != nil {
			l.loss.stop()
		}
		if err := errors.Join(l.fd.Close(), l.sock.Close()); err != nil {
			l.closeErr = fmt.Errorf("bus: close: %w", err)
		}
		if l.domain != "" {
			zap.unregister(l.domain)
		}
	}()
	var spare []outMsg
	for {
		events, err := l.sock.GetEvents()
		if err != nil {
			l.stop(fmt.Errorf("bus: socket events: %w", err))
			return
		}
		more := false
		if events&zmq.POLLIN != 0 {
			more = l.receive()
		}

		l.mu.Lock()
		batch := l.queue
		l.queue = spare[:0]
		l.signalled = false
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return
		}
		l.flushBacklog()
		for i := range batch {
			if batch[i].served {
				l.running--
			}
			l.send(batch[i])
			batch[i] = outMsg{}
		}
		spare = batch
		l.dispatch()
		if more {
			continue // a full batch was read: there may be more waiting
		}
		if err := l.wait(); err != nil {
			l.stop(err)
			return
		}
	}
}

// wait parks the loop in Go's netpoller until the socket may have
// something to read (or, with a backlog, may take writes again), until
// another goroutine queues a message (enqueue moves the read deadline into
// the past), or until the backlog is due for a recheck.
func (l *loop) wait() error {
	deadline := time.Time{}
	if len(l.backlog) > 0 {
		deadline = time.Now().Add(backlogRecheck)
	}
	if err := l.fd.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("bus: socket deadline: %w", err)
	}
	// After resetting the deadline, look again: a message queued before
	// the reset is seen here, one queued after it moves the deadline.
	l.mu.Lock()
	busy := len(l.queue) > 0 || l.closed
	l.mu.Unlock()
	if busy {
		return nil
	}
	// ZMQ_FD only signals changes after the last look at ZMQ_EVENTS, and
	// every send or receive may have taken a signal: look at ZMQ_EVENTS
	// inside the wait, which Go calls after it forgets earlier readiness
	// and before it parks (a look before the wait loses an edge that comes
	// between the two), and again after each wake-up of the descriptor.
	var evErr error
	err := l.rc.Read(func(uintptr) bool {
		events, err := l.sock.GetEvents()
		if err != nil {
			evErr = err
			return true
		}
		return events&zmq.POLLIN != 0 || (len(l.backlog) > 0 && events&zmq.POLLOUT != 0)
	})
	if evErr != nil {
		return fmt.Errorf("bus: socket events: %w", evErr)
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("bus: waiting on the socket: %w", err)
	}
	return nil
}

// wake makes a waiting loop go round.
func (l *loop) wake() {
	if err := l.fd.SetReadDeadline(aLongTimeAgo); err != nil && !errors.Is(err, os.ErrClosed) {
		l.log.Error("bus: waking message loop", "err", err)
	}
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// stop records why the loop ends on its own and refuses further messages.
func (l *loop) stop(err error) {
	l.log.Error("bus: message loop stopped", "err", err)
	l.fatal = err
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// receive reads what is waiting on the main socket, a bounded batch at a
// time; it reports whether it stopped at the bound (more may be waiting).
func (l *loop) receive() bool {
	for range maxRecvBatch {
		var (
			frames [][]byte
			meta   map[string]string
			err    error
		)
		if l.domain != "" {
			frames, meta, err = recvWithKey(l.sock)
		} else {
			frames, err = l.sock.RecvMessageBytes(zmq.DONTWAIT)
		}
		if err != nil {
			if !isErrno(err, errAgain) {
				l.log.Warn("bus: receive", "err", err)
			}
			return false
		}
		l.handleFrames(frames, meta["User-Id"])
	}
	return true
}

// recvWithKey reads a message and the User-Id of its last frame (the
// routing id frame a ROUTER prepends carries none).
func recvWithKey(s *zmq.Socket) ([][]byte, map[string]string, error) {
	var frames [][]byte
	for {
		b, meta, err := s.RecvBytesWithMetadata(zmq.DONTWAIT, "User-Id")
		if err != nil {
			return frames, nil, err
		}
		frames = append(frames, b)
		more, err := s.GetRcvmore()
		if err != nil {
			return frames, nil, err
		}
		if !more {
			return frames, meta, nil
		}
	}
}

// handleFrames processes one received message; key is the sender's CURVE
// public key on a ROUTER with CURVE ("" otherwise).
func (l *loop) handleFrames(frames [][]byte, key string) {
	from := l.remote
	if l.router {
		if len(frames) < 2 {
			l.log.Warn("bus: dropping message without envelope", "frames", len(frames))
			return
		}
		from = string(frames[0])
		if !l.claim(from, key) {
			return
		}
		if len(frames) == 2 && len(frames[1]) == 0 {
			return // a new connection's probe
		}
	}
	if len(frames) == 0 {
		return
	}
	env, err := decodeEnvelope(frames[len(frames)-1])
	if err != nil {
		l.log.Warn("bus: dropping message with a malformed envelope", "from", from, "err", err)
		return
	}
	if l.router {
		if env.Type == typeHello && env.V == version {
			l.hello(from, key, env)
			return
		}
		// A message of a Carrier speaks for the identity in its envelope,
		// if this connection may (see carrier.go).
		if env.As != "" && env.As != from {
			if !l.carry(from, key, env) {
				return
			}
			from = env.As
		} else {
			delete(l.carriers, from) // it speaks for itself again
		}
		l.touch(from, time.Now())
	}
	if env.V != version {
		msg := fmt.Sprintf("bus: unsupported envelope version %d (this peer speaks version %d)", env.V, version)
		l.log.Warn("bus: refusing envelope", "from", from, "version", env.V, "kind", env.Kind)
		switch {
		case env.Type == typeRep:
			l.resolve(from, env.ID, callResult{err: errors.New(msg)})
		case env.ID != 0:
			l.replyError(from, env, msg)
		}
		return
	}
	switch env.Type {
	case typeReq:
		if !l.router && l.opts.subs == nil && env.As != "" && env.As != l.opts.self {
			l.replyError(from, env, noPeerHere)
			return
		}
		l.accept(from, key, env)
	case typeRep:
		l.resolve(from, env.ID, callResult{env: &env})
	default:
		l.log.Warn("bus: refusing envelope of unknown type", "from", from, "type", env.Type)
		if env.ID != 0 {
			l.replyError(from, env, fmt.Sprintf("bus: unknown envelope type %q", env.Type))
		}
	}
}

// claim checks that the connection now holding identity id has the key
// that owns it (the first key seen under id); it reports false, and
// refuses requests to id until the owner speaks again, when not.
func (l *loop) claim(id, key string) bool {
	if own, ok := l.owns(id, key); !ok {
		if !l.hijacked[id] {
			l.hijacks.Add(1)
			l.log.Warn("bus: refusing a peer that claims an identity owned by another key", "peer", id, "peer_key", key, "owner_key", own)
		}
		l.hijacked[id] = true
		return false
	}
	delete(l.hijacked, id)
	return true
}

// owns reports whether key owns identity id, making it the owner when id
// has none yet or its owner's key is no longer authorised; when not, it
// returns the owner's key.
func (l *loop) owns(id, key string) (owner string, ok bool) {
	own, seen := l.owner[id]
	switch {
	case !seen:
		l.owner[id] = key
	case own != key && !l.authorised(own):
		// The owner's key is no longer authorised (a worker whose keys
		// were made anew, the old one removed): the new key may have it.
		l.log.Info("bus: identity now owned by another key (its owner's key is no longer authorised)", "peer", id, "peer_key", key, "owner_key", own)
		l.owner[id] = key
	case own != key:
		return own, false
	}
	return key, true
}

// authorised reports whether the Server's authoriser still accepts key.
func (l *loop) authorised(key string) bool {
	if l.opts.auth == nil {
		return true
	}
	_, ok := l.opts.auth.Authorize(key)
	return ok
}

// touch records that identity id sent something at now.
func (l *loop) touch(id string, now time.Time) {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.seen[id] = now
	if now.Sub(l.pruned) > peerWindow {
		l.pruneLocked(now)
	}
}

func (l *loop) pruneLocked(now time.Time) {
	l.pruned = now
	for id, t := range l.seen {
		if now.Sub(t) > peerWindow {
			delete(l.seen, id)
		}
	}
}

// peers lists the identities seen within peerWindow.
func (l *loop) peers() []string {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.pruneLocked(time.Now())
	ids := make([]string, 0, len(l.seen))
	for id := range l.seen {
		ids = append(ids, id)
	}
	return ids
}

// resolve hands a reply to the request waiting for it, if any.
func (l *loop) resolve(from string, id uint64, res callResult) {
	l.pmu.Lock()
	c := l.pending[id]
	if c != nil && l.router && c.to != from {
		c = nil // only the addressed peer may answer
	}
	if c != nil {
		delete(l.pending, id)
	}
	l.pmu.Unlock()
	if c == nil {
		l.log.Debug("bus: dropping late or unmatched reply", "id", id, "from", from)
		return
	}
	c.ch <- res
}

// fail ends the request id with err, if it is still waiting.
func (l *loop) fail(id uint64, err error) {
	l.pmu.Lock()
	c := l.pending[id]
	delete(l.pending, id)
	l.pmu.Unlock()
	if c != nil {
		c.ch <- callResult{err: err}
	}
}

func (l *loop) lookup(id uint64) *call {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	return l.pending[id]
}

// replyError answers request env from the loop itself.
func (l *loop) replyError(to string, req envelope, msg string) {
	rep := envelope{V: version, ID: req.ID, Type: typeRep, Kind: req.Kind, As: req.As, Err: msg, Body: json.RawMessage("null")}
	raw, err := json.Marshal(rep)
	if err != nil {
		l.log.Error("bus: encoding error reply", "err", err)
		return
	}
	l.send(outMsg{to: to, env: raw})
}

// accept starts a handler for a request, or queues it when every slot is busy.
func (l *loop) accept(from, key string, env envelope) {
	if l.handler == nil {
		l.replyError(from, env, "bus: this peer serves no requests")
		return
	}
	in := inMsg{from: from, key: key, env: env}
	if env.TTL > 0 {
		in.deadline = time.Now().Add(time.Duration(env.TTL) * time.Millisecond)
	}
	if l.running < l.opts.maxHandlers && len(l.inbox) == 0 {
		l.start(in)
		return
	}
	if len(l.inbox) >= maxInbox {
		l.log.Warn("bus: too many queued requests, refusing", "from", from, "kind", env.Kind)
		l.replyError(from, env, "bus: peer busy: too many queued requests")
		return
	}
	l.inbox = append(l.inbox, in)
}

// dispatch starts queued requests while slots are free.
func (l *loop) dispatch() {
	now := time.Now()
	for l.running < l.opts.maxHandlers && len(l.inbox) > 0 {
		in := l.inbox[0]
		l.inbox[0] = inMsg{}
		l.inbox = l.inbox[1:]
		if !in.deadline.IsZero() && !now.Before(in.deadline) {
			l.log.Debug("bus: dropping request whose requester gave up", "from", in.from, "kind", in.env.Kind)
			continue
		}
		l.start(in)
	}
	if len(l.inbox) == 0 {
		l.inbox = nil
	}
}

func (l *loop) start(in inMsg) {
	l.running++
	l.handlerWG.Add(1)
	go l.serve(in)
}

// serve runs the handler for one request in its own goroutine and queues
// the reply.
func (l *loop) serve(in inMsg) {
	defer l.handlerWG.Done()
	ctx, cancel := l.ctx, context.CancelFunc(func() {})
	if !in.deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, in.deadline)
	}
	defer cancel()
	if in.key != "" {
		ctx = context.WithValue(ctx, peerKeyCtx{}, in.key)
	}

	rep := envelope{V: version, ID: in.env.ID, Type: typeRep, Kind: in.env.Kind, As: in.env.As, Body: json.RawMessage("null")}
	result, err := l.invoke(ctx, in)
	if err == nil {
		rep.Body, err = json.Marshal(result)
		if err != nil {
			err = fmt.Errorf("bus: encoding %s reply: %w", in.env.Kind, err)
			rep.Body = json.RawMessage("null")
		}
	}
	if err != nil {
		rep.Err = err.Error()
		if rep.Err == "" {
			rep.Err = "unknown error"
		}
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		// Only reachable with an invalid RawMessage, which Marshal above cannot produce.
		l.log.Error("bus: encoding reply envelope", "kind", in.env.Kind, "err", err)
		raw = nil
	}
	// served is queued even without a reply: it frees the handler slot.
	_ = l.enqueue(outMsg{to: in.from, env: raw, expires: in.deadline, served: true})
}

// invoke calls the handler, turning a panic into an error reply.
func (l *loop) invoke(ctx context.Context, in inMsg) (reply any, err error) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("bus: handler panicked", "kind", in.env.Kind, "from", in.from, "panic", r, "stack", string(debug.Stack()))
			reply, err = nil, fmt.Errorf("bus: handler for %q panicked: %v", in.env.Kind, r)
		}
	}()
	h := l.handler
	if l.opts.subs != nil {
		if h = l.opts.subs.handler(in.env.As); h == nil {
			return nil, errors.New(noPeerHere)
		}
	}
	return h(ctx, in.from, in.env.Kind, in.env.Body)
}

// enqueue gives m to the loop and wakes it. Any goroutine may call it.
func (l *loop) enqueue(m outMsg) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.queue = append(l.queue, m)
	// One wake-up per batch: the loop takes the whole queue when it wakes.
	signal := !l.signalled
	l.signalled = true
	l.mu.Unlock()
	if signal {
		l.wake()
	}
	return nil
}

// stale reports whether nobody wants m any more: its request was abandoned
// or its reply's requester has stopped waiting.
func (l *loop) stale(m outMsg, now time.Time) bool {
	if m.env == nil {
		return true
	}
	if m.id != 0 {
		return l.lookup(m.id) == nil
	}
	return !m.expires.IsZero() && !now.Before(m.expires)
}

// send writes m now, or parks it in the backlog behind earlier messages.
func (l *loop) send(m outMsg) {
	if l.stale(m, time.Now()) {
		return
	}
	if len(l.backlog) > 0 {
		l.park(m)
		return
	}
	if err := l.write(m); isErrno(err, errAgain) && !l.router {
		l.park(m)
	} else {
		l.wrote(m, err)
	}
}

// flushBacklog writes parked messages, oldest first, until the socket is full.
func (l *loop) flushBacklog() {
	now := time.Now()
	for len(l.backlog) > 0 {
		m := l.backlog[0]
		if !l.stale(m, now) {
			err := l.write(m)
			if isErrno(err, errAgain) {
				return
			}
			l.wrote(m, err)
		}
		l.backlog[0] = outMsg{}
		l.backlog = l.backlog[1:]
	}
	l.backlog = nil
}

func (l *loop) park(m outMsg) {
	if len(l.backlog) >= l.opts.backlogMax {
		l.wrote(m, errors.New("send queue full"))
		return
	}
	l.backlog = append(l.backlog, m)
}

func (l *loop) write(m outMsg) (err error) {
	// A request counts as sent (for failSent) from before the write: its
	// peer can answer, or go away, before the write returns, and a
	// disconnect read in between must end it. One whose write fails is
	// not sent after all.
	if m.id != 0 {
		if c := l.lookup(m.id); c != nil {
			c.sent.Store(true)
			defer func() {
				if err != nil {
					c.sent.Store(false)
				}
			}()
		}
	}
	if l.router {
		route := m.to
		if r, ok := l.carriers[m.to]; ok {
			route = r
		}
		if l.hijacked[route] {
			return errHijacked
		}
		_, err = l.sock.SendMessageDontwait(route, m.env)
		return err
	}
	_, err = l.sock.SendBytes(m.env, zmq.DONTWAIT)
	return err
}

// wrote settles m after a write attempt that did not leave it parked.
func (l *loop) wrote(m outMsg, err error) {
	switch {
	case err == nil:
		return
	case errors.Is(err, errHijacked):
		err = fmt.Errorf("%w: %q: %w", ErrUnknownPeer, m.to, err)
	case isErrno(err, zmq.EHOSTUNREACH):
		err = fmt.Errorf("%w: %q", ErrUnknownPeer, m.to)
	case isErrno(err, errAgain):
		err = fmt.Errorf("bus: send to %q: peer is not keeping up (queue full)", l.peerName(m.to))
	default:
		err = fmt.Errorf("bus: send to %q: %w", l.peerName(m.to), err)
	}
	if m.id != 0 {
		l.fail(m.id, err)
		return
	}
	l.log.Debug("bus: dropping reply", "to", m.to, "err", err)
}

func (l *loop) peerName(to string) string {
	if l.router {
		return to
	}
	return l.remote
}

// request sends a request to peer to (ignored by a DEALER) and waits for
// its reply; as is the identity a Carrier speaks for ("" for a Client).
func (l *loop) request(ctx context.Context, to, as, kind string, body, reply any) error {
	select {
	case <-l.done:
		return ErrClosed
	default:
	}
	peer := l.peerName(to)
	if err := ctx.Err(); err != nil {
		return ctxError(err, kind, peer, "")
	}
	if l.router && to == "" {
		return fmt.Errorf("%w: empty identity", ErrUnknownPeer)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("bus: encoding %s body: %w", kind, err)
	}
	dl, hasDL := ctx.Deadline()
	if l.router && l.opts.carrying {
		as = to // the Carrier that may carry it needs to know for whom
	}
	env := envelope{V: version, ID: l.nextID.Add(1), Type: typeReq, Kind: kind, As: as, TTL: ttlOf(dl, hasDL, time.Now()), Body: raw}
	data, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("bus: encoding %s envelope: %w", kind, err)
	}

	c := &call{to: to, ch: make(chan callResult, 1)}
	l.pmu.Lock()
	l.pending[env.ID] = c
	l.pmu.Unlock()
	defer func() {
		l.pmu.Lock()
		delete(l.pending, env.ID)
		l.pmu.Unlock()
	}()
	if err := l.enqueue(outMsg{to: to, env: data, id: env.ID}); err != nil {
		return err
	}

	select {
	case res := <-c.ch:
		if res.err != nil {
			return res.err
		}
		// A reply processed at or after the deadline is late even if the
		// context's timer has not fired yet: the serving side's deadline is
		// never earlier than ours, so this keeps timeouts deterministic.
		if hasDL && !time.Now().Before(dl) {
			return ctxError(context.DeadlineExceeded, kind, peer, "")
		}
		if res.env.Err == noPeerHere && l.router {
			// Delivered to the process that carried it, which hosts no
			// such identity now: not delivered to the peer, as when a
			// Client has gone.
			return fmt.Errorf("%w: %q (its carrier hosts it no longer)", ErrUnknownPeer, to)
		}
		if res.env.Err != "" {
			return &RemoteError{Kind: kind, Msg: res.env.Err}
		}
		if reply != nil {
			if err := json.Unmarshal(res.env.Body, reply); err != nil {
				return fmt.Errorf("bus: decoding %s reply: %w", kind, err)
			}
		}
		return nil
	case <-ctx.Done():
		note := ""
		if !l.router && !c.sent.Load() {
			note = " (never sent: not connected)"
		}
		return ctxError(ctx.Err(), kind, peer, note)
	case <-l.done:
		return ErrClosed
	case <-l.exited:
		if l.fatal != nil {
			return fmt.Errorf("%w: %w", ErrClosed, l.fatal)
		}
		return ErrClosed
	}
}

// ctxError explains why a request stopped waiting: ErrTimeout for a
// deadline (still matching context.DeadlineExceeded), else the context's error.
func ctxError(err error, kind, peer, note string) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("bus: %s to %q: %w", kind, peer, err)
	}
	return fmt.Errorf("%w: %s to %q%s: %w", ErrTimeout, kind, peer, note, err)
}

// close stops the loop and the handlers and releases the sockets. It is
// idempotent.
func (l *loop) close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.cancel()
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.wake()
		<-l.exited
		l.handlerWG.Wait()
	})
	return l.closeErr
}

package bus

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/rswarm/rswarm/api"
	"time"
)

// Handler serves one incoming request. from is the sender's identity (on a
// Client, the address of the server it dialed); kind names the message type
// (see the Kind* constants in api/message.go); body is its JSON. The returned
// reply is JSON-encoded and sent back; a non-nil error is sent back as a
// remote error instead.
//
// Handlers may run concurrently, each in its own goroutine, and must respect
// ctx: it ends when the requester stops waiting (its deadline travels with
// the request) or when the Server or Client is closed.
type Handler func(ctx context.Context, from, kind string, body []byte) (reply any, err error)

var (
	// ErrTimeout means the request's context deadline passed before a reply came.
	ErrTimeout = errors.New("bus: timed out waiting for a reply")
	// ErrUnknownPeer means no client with the requested identity is
	// connected; it is api.ErrUnknownPeer, so that callers need not import
	// the bus to recognise it.
	ErrUnknownPeer = api.ErrUnknownPeer
	// ErrClosed means the Server or Client was closed.
	ErrClosed = api.NewKind("bus: closed", api.ErrUnavailable)
)

// PeerKey returns, inside a Handler of a Server with CURVE, the Z85 public
// key the requester authenticated with: the key, not the identity a client
// chooses, says who it is, so a handler that serves some peers only checks
// it. It returns "" without CURVE and on a Client.
func PeerKey(ctx context.Context) string {
	k, _ := ctx.Value(peerKeyCtx{}).(string)
	return k
}

type peerKeyCtx struct{}

// RemoteError is an error returned by the peer's handler (or by the peer's
// bus, for a request it could not serve). Kind is the request's kind.
type RemoteError struct{ Kind, Msg string }

// Error implements error.
func (e *RemoteError) Error() string {
	return "bus: " + e.Kind + ": remote error: " + e.Msg
}

// Option changes a default of Listen or Dial.
type Option func(*options)

type options struct {
	maxHandlers int

	// CURVE (see curve.go): a Server's secret key and authoriser, a
	// Client's view of its server and its own keys.
	serverSecret string
	auth         Authorizer
	serverPublic string
	clientKeys   KeyPair

	// Carrying (see carrier.go): whether a Server accepts messages that
	// speak for other identities, and which keys may send them; a
	// Client's own identity, and a Carrier's table of carried identities.
	carrying   bool
	carriers   Authorizer
	self       string
	subs       *subTable
	backlogMax int

	// A Client's sent requests end when its connection closes (lost.go).
	failOnDisconnect bool
}

func defaultOptions() options {
	return options{maxHandlers: 64, backlogMax: maxBacklog}
}

// WithMaxHandlers bounds how many handlers run at once (64 by default);
// further requests wait, in order, for a free slot. n < 1 means 1.
func WithMaxHandlers(n int) Option {
	return func(o *options) { o.maxHandlers = max(n, 1) }
}

// Envelope versions and types.
const (
	version = 1
	typeReq = "req"
	typeRep = "rep"
	// typeHello is a Carrier's list of the identities it carries, sent on
	// every new connection (see carrier.go); it has no reply.
	typeHello = "hello"
)

// envelope is the JSON frame every message carries (see the package doc).
type envelope struct {
	V    int             `json:"v"`
	ID   uint64          `json:"id"`
	Type string          `json:"type"`
	Kind string          `json:"kind"`
	As   string          `json:"as,omitempty"`
	Err  string          `json:"err,omitempty"`
	TTL  int64           `json:"ttl_ms,omitempty"`
	Body json.RawMessage `json:"body"`
}

// ttlOf returns the envelope TTL for a request whose context ends at
// deadline, rounded up to a whole millisecond so the serving side never
// gives up before the requester does; 0 when there is no deadline.
func ttlOf(deadline time.Time, ok bool, now time.Time) int64 {
	if !ok {
		return 0
	}
	d := deadline.Sub(now)
	if d <= 0 {
		return 1
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// decodeEnvelope decodes one envelope frame.
func decodeEnvelope(b []byte) (envelope, error) {
	var env envelope
	err := json.Unmarshal(b, &env)
	return env, err
}

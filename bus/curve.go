package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// KeyPair is a CURVE key pair in Z85 (40 characters each).
type KeyPair struct {
	Public string
	Secret string
}

// NewKeyPair generates a CURVE key pair.
func NewKeyPair() (KeyPair, error) {
	pub, sec, err := zmq.NewCurveKeypair()
	if err != nil {
		return KeyPair{}, fmt.Errorf("bus: generating a CURVE key pair: %w", err)
	}
	return KeyPair{Public: pub, Secret: sec}, nil
}

// KeyPairOf returns the key pair of a Z85 secret key.
func KeyPairOf(secret string) (KeyPair, error) {
	if err := CheckKey(secret); err != nil {
		return KeyPair{}, err
	}
	pub, err := zmq.AuthCurvePublic(secret)
	if err != nil {
		return KeyPair{}, fmt.Errorf("bus: deriving a public key: %w", err)
	}
	return KeyPair{Public: pub, Secret: secret}, nil
}

const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// CheckKey reports whether k is a Z85-encoded CURVE key (40 characters).
func CheckKey(k string) error {
	if len(k) != 40 {
		return fmt.Errorf("bus: a CURVE key is 40 Z85 characters, got %d", len(k))
	}
	for _, c := range k {
		if !strings.ContainsRune(z85Alphabet, c) {
			return fmt.Errorf("bus: a CURVE key is Z85; %q is not a Z85 character", c)
		}
	}
	return nil
}

// Authorizer decides which client keys a Server accepts.
type Authorizer interface {
	// Authorize reports whether the Z85 public key may connect, and a
	// name for it in logs (for example the file it was read from).
	Authorize(publicKey string) (name string, ok bool)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(publicKey string) (string, bool)

// Authorize implements Authorizer.
func (f AuthorizerFunc) Authorize(k string) (string, bool) { return f(k) }

// WithCurveServer makes a Server speak CURVE with its secret key and
// accept only the clients auth authorises.
func WithCurveServer(secret string, auth Authorizer) Option {
	return func(o *options) { o.serverSecret, o.auth = secret, auth }
}

// WithCurveClient makes a Client speak CURVE with its key pair and connect
// only to the server whose public key is serverPublic.
func WithCurveClient(serverPublic string, kp KeyPair) Option {
	return func(o *options) { o.serverPublic, o.clientKeys = serverPublic, kp }
}

// secureServer applies o's CURVE settings to a ROUTER socket.
func (o *options) secureServer(s *zmq.Socket, log *slog.Logger) (domain string, err error) {
	if o.serverSecret == "" {
		return "", nil
	}
	if o.auth == nil {
		return "", errors.New("bus: a CURVE server needs an Authorizer")
	}
	if err := CheckKey(o.serverSecret); err != nil {
		return "", fmt.Errorf("bus: server secret key: %w", err)
	}
	if !zmq.HasCurve() {
		return "", errors.New("bus: this libzmq was built without CURVE")
	}
	domain, err = zap.register(o.auth, log)
	if err != nil {
		return "", err
	}
	if err := s.ServerAuthCurve(domain, o.serverSecret); err != nil {
		zap.unregister(domain)
		return "", fmt.Errorf("bus: CURVE server: %w", err)
	}
	return domain, nil
}

// secureClient applies o's CURVE settings to a DEALER socket.
func (o *options) secureClient(s *zmq.Socket) error {
	if o.serverPublic == "" {
		return nil
	}
	for _, k := range []string{o.serverPublic, o.clientKeys.Public, o.clientKeys.Secret} {
		if err := CheckKey(k); err != nil {
			return err
		}
	}
	if err := s.ClientAuthCurve(o.serverPublic, o.clientKeys.Public, o.clientKeys.Secret); err != nil {
		return fmt.Errorf("bus: CURVE client: %w", err)
	}
	return nil
}

// zap is the process's ZAP handler: one REP socket on the shared context
// answering the handshakes of every CURVE Server of the process, each
// under its own domain. Like the shared context, it lives as long as the
// process once started.
var zap zapHandler

type zapHandler struct {
	once    sync.Once
	err     error
	mu      sync.Mutex // guards domains, next, logged
	domains map[string]zapDomain
	next    int
	logged  map[string]time.Time // domain+key: when a refusal was last logged
}

type zapDomain struct {
	auth Authorizer
	log  *slog.Logger
}

// refusalLogEvery bounds how often one refused key is logged per Server (a
// refused client retries every reconnect interval).
const refusalLogEvery = time.Minute

// maxLoggedRefusals bounds the refusal-log memory.
const maxLoggedRefusals = 4096

func (z *zapHandler) register(a Authorizer, log *slog.Logger) (string, error) {
	z.once.Do(func() { z.err = z.start() })
	if z.err != nil {
		return "", z.err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.next++
	d := fmt.Sprintf("rswarm-%d", z.next)
	z.domains[d] = zapDomain{auth: a, log: log}
	return d, nil
}

func (z *zapHandler) unregister(domain string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.domains, domain)
	for k := range z.logged {
		if strings.HasPrefix(k, domain+"\x00") {
			delete(z.logged, k)
		}
	}
}

func (z *zapHandler) start() error {
	zctx, err := sharedContext()
	if err != nil {
		return fmt.Errorf("bus: zmq context: %w", err)
	}
	s, err := zctx.NewSocket(zmq.REP)
	if err != nil {
		return fmt.Errorf("bus: ZAP socket: %w", err)
	}
	if err := s.Bind("inproc://zeromq.zap.01"); err != nil {
		_ = s.Close()
		return fmt.Errorf("bus: ZAP handler: %w", err)
	}
	z.domains = make(map[string]zapDomain)
	z.logged = make(map[string]time.Time)
	go z.serve(s)
	return nil
}

// serve answers ZAP requests until the socket fails (for the life of the process).
func (z *zapHandler) serve(s *zmq.Socket) {
	for {
		req, err := s.RecvMessageBytes(0)
		if err != nil {
			if isErrno(err, zmq.ETERM) {
				return
			}
			continue
		}
		if _, err := s.SendMessage(z.answer(req)...); err != nil && isErrno(err, zmq.ETERM) {
			return
		}
	}
}

// answer builds the ZAP reply to one request:
// [version, request id, domain, address, identity, mechanism, credentials...]
// -> [version, request id, status code, status text, user id, metadata].
func (z *zapHandler) answer(req [][]byte) []any {
	if len(req) < 6 {
		return []any{"1.0", "", "500", "malformed ZAP request", "", ""}
	}
	version, id, domain, address, mech := string(req[0]), req[1], string(req[2]), string(req[3]), string(req[5])
	if version != "1.0" {
		return []any{"1.0", id, "500", "unsupported ZAP version", "", ""}
	}
	z.mu.Lock()
	d, ok := z.domains[domain]
	z.mu.Unlock()
	if !ok || mech != "CURVE" || len(req) != 7 || len(req[6]) != 32 {
		return []any{"1.0", id, "400", "not a CURVE handshake of a known server", "", ""}
	}
	key := zmq.Z85encode(string(req[6]))
	name, allowed := d.auth.Authorize(key)
	if !allowed {
		z.mu.Lock()
		k := domain + "\x00" + key
		last, seen := z.logged[k]
		now := time.Now()
		logIt := !seen || now.Sub(last) >= refusalLogEvery
		if logIt {
			if len(z.logged) >= maxLoggedRefusals {
				clear(z.logged) // many distinct keys: forget, at worst log again
			}
			z.logged[k] = now
		}
		z.mu.Unlock()
		if logIt && d.log != nil {
			d.log.Warn("bus: refusing a peer whose key is not authorised", "peer_addr", address, "peer_key", key)
		}
		return []any{"1.0", id, "400", "key not authorised", "", ""}
	}
	if d.log != nil {
		d.log.Debug("bus: peer authenticated", "peer_addr", address, "peer_key", key, "key_name", name)
	}
	return []any{"1.0", id, "200", "OK", key, ""}
}

// watchHandshakes logs the connections a CURVE server refuses before any
// key is known: peers without CURVE, or expecting another server key. (A
// peer with an unknown key is logged by the ZAP handler, with its key.) A
// refused peer retries every reconnect interval, so it logs at most once
// per refusalLogEvery, with the count since the last line.
func watchHandshakes(zctx *zmq.Context, sock *zmq.Socket, domain string, log *slog.Logger) (*monitorWatch, error) {
	addr := "inproc://rswarm-handshakes-" + domain
	if err := sock.Monitor(addr, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL|zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL); err != nil {
		return nil, fmt.Errorf("bus: socket monitor: %w", err)
	}
	var last time.Time
	refused := 0
	return watchMonitor(zctx, addr, func(ev zmq.Event, endpoint string, code int) {
		refused++
		if now := time.Now(); now.Sub(last) >= refusalLogEvery {
			log.Warn("bus: refusing a peer whose handshake failed: it speaks no CURVE, or expects another server key", "endpoint", endpoint, "event", ev.String(), "code", code, "refused", refused)
			last, refused = now, 0
		}
	})
}

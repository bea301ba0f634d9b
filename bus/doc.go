// Package bus owns the messaging between RSwarm processes: typed
// request/reply over ZeroMQ, addressed to exactly one peer, acknowledged,
// and bounded by the caller's context.
//
// A [Server] binds a ROUTER socket; each [Client] connects a DEALER socket
// under an identity that must be unique per peer (a worker uses its Swarm
// node ID). Both sides can send requests and serve them: the globalmanager's
// Server sends commands to worker Clients and gets acknowledgements, and
// workers' Clients send statuses to discovery's Server. A Server addresses a
// client by its whole identity through ZMQ_ROUTER_MANDATORY, so "10.0.0.1"
// never receives what was meant for "10.0.0.12" (the original's PUB/SUB
// topics were prefix matches) and a request to a peer that is not connected
// fails at once with [ErrUnknownPeer].
//
// # Wire format
//
// Every message is a multipart ZeroMQ message whose last frame is a JSON
// envelope (a ROUTER adds the peer's identity as the first frame):
//
//	{"v":1,"id":42,"type":"req","kind":"run_task","ttl_ms":5000,"body":{...}}
//	{"v":1,"id":42,"type":"rep","kind":"run_task","err":"","body":{...}}
//
// v is the envelope version (1). id correlates a reply with its request; it
// is chosen by the requester, and a reply that arrives after its request gave
// up is dropped. kind names the message type (the api.Kind* constants) and
// body is the message as JSON. err, on a reply, is the remote handler's
// error, returned to the caller as a [*RemoteError]. ttl_ms, on a request,
// is the time the requester still waits; the serving side gives its handler
// a context with that deadline, so work nobody waits for is abandoned. An
// envelope of another version is refused with an error reply naming the
// version.
//
// as, when present, names the identity a message speaks for, when that is
// not the identity of the connection it travels on (see Carriers below);
// a reply repeats its request's as.
//
// # Carriers
//
// A [Carrier] is one DEALER connection that speaks for many identities,
// each [Carrier.Attach]ed with its own handler: the simulated workers of
// one process share one connection per server, because ten thousand
// workers with two connections each would hold some 80,000 descriptors
// (a socket at both ends, ZeroMQ's mailbox per socket, the poller's
// duplicate) and a server alone 20,000, beyond a usual open-files limit.
// Each message of a Carrier carries in as the identity it is for. A Server
// given [WithCarrying] hands it to its handler as from, lists it in Peers,
// and sends its requests to that identity through the connection that
// last spoke for it (setting as, so the Carrier picks the handler); a
// Carrier that no longer carries the identity answers with an error the
// Server turns into [ErrUnknownPeer]. On every new connection (after each
// completed handshake, seen on the socket's monitor) a Carrier sends
//
//	{"v":1,"type":"hello","kind":"hello","body":["sim-0000","sim-0001",...]}
//
// naming every identity it carries, with no reply: so a Server started
// anew reaches them before they speak, as it reaches a Client as soon as
// its connection is back. Plain Clients are unchanged: they
// never set as, and ignore one equal to their own identity.
//
// The rule that keeps this sound: a connection may speak for another
// identity only on a Server that takes carriers, only when its CURVE key
// is one the Server lets carry (rswarm lets the keys it accepts carry: its
// own data directory's, whose processes trust each other, and those
// authorised explicitly), and only for an identity its key owns. Carried
// identities share the ownership of Clients' identities (see
// Authentication): the first key seen under an identity owns it, whether
// it came on a connection of its own or in a Carrier's as. So a Carrier
// cannot speak for, nor receive the requests of, a worker connected with
// another key; what it sends for such an identity is dropped and logged,
// and a connection refused the right to carry gets an error reply and a
// log line. Without CURVE the bus is open (anyone may connect under any
// identity) and so is carrying, on a Server that takes carriers.
//
// # Threading
//
// ZeroMQ sockets are not safe for concurrent use, so each Server, Client and
// Carrier has one goroutine that owns its socket. It waits in Go's
// netpoller on the socket's ZMQ_FD (a duplicate of it), not in a blocking
// zmq_poll: when a process ran a thousand simulated workers with two
// sockets each (before carriers), two thousand OS threads parked in C,
// each holding a scheduler slot until the runtime noticed, made every
// wake-up slow; and a process with many Clients still has a socket each. Callers put outgoing messages
// in a queue and wake the loop by moving its read deadline into the past
// (at most once per batch), so a request is written at once. Handlers run
// in their own goroutines, at most 64 at a time by default
// ([WithMaxHandlers]); requests beyond that wait in order inside the loop.
// Close stops the loop, cancels the handlers' contexts, and waits for both.
//
// # Reconnection
//
// Clients reconnect by themselves every 100 ms. A Client's DEALER only queues
// messages on a completed connection (ZMQ_IMMEDIATE), so a request made while
// the server is down waits inside the loop until the connection is back or
// the caller's context ends, and is never delivered after its caller gave up.
// Requests that were in flight when a peer went away time out (or, on a
// Client dialed [WithFailOnDisconnect], end at once with
// [ErrConnectionLost]); callers retry, and receivers apply messages
// idempotently (delivery is at least once). The
// Server uses ZMQ_ROUTER_HANDOVER, so a client that reconnects under the same
// identity takes over from its dead connection.
//
// # Authentication
//
// A Server given [WithCurveServer] speaks ZeroMQ CURVE: every connection is
// encrypted, and a client may complete the handshake only when the
// server's [Authorizer] accepts its public key (ZAP, RFC 27). A Client given
// [WithCurveClient] connects only to a server that holds the secret key of
// the public key it was given, so a process that binds a server's port while
// the server is down cannot pose as it.
//
// The key, not the routing identity a client chooses, decides who the
// client is: the first key a Server sees under an identity owns it for the
// life of the Server, or until that key is no longer authorised (a client
// whose keys were made anew takes its identity back once the old key is
// removed). Every client connection announces itself with an
// empty probe message (ZMQ_PROBE_ROUTER) that carries its key, so a
// connection that takes over an identity owned by another key (through
// ZMQ_ROUTER_HANDOVER) is noticed before anything is sent to it: requests
// to that identity fail until its owner reconnects, and what the impostor
// sends is dropped and logged.
//
// Residual risks, by design: a holder of an authorised key can cut another
// client off by taking its identity over (it cannot receive that client's
// requests or speak for it; the owner reconnecting takes the identity
// back); a request written in the instant between a takeover and the
// reading of the impostor's probe reaches the impostor; the first key
// seen under an identity after a Server starts owns it; and a holder of a
// key allowed to carry can make a Server remember any number of new
// identities (their owner and route) at the price of one name each, where
// a Client needs a connection per identity.
package bus

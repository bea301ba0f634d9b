package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/rswarm/rswarm/api"
)

// Sentinel errors. Methods wrap them with %w and the name of the object
// concerned; test with errors.Is.
var (
	// ErrNotFound means the container, network or node does not exist.
	ErrNotFound = api.NewKind("engine: not found", api.ErrNotFound)
	// ErrImageNotFound means the image is not present in the local engine
	// (and, for Pull, could not be fetched).
	ErrImageNotFound = errors.New("engine: image not found")
	// ErrConflict means the operation clashes with the engine's current
	// state: a name already in use, a network subnet overlap, a network
	// still in use, a container in the wrong state.
	ErrConflict = api.NewKind("engine: conflict", api.ErrConflict)
	// ErrCheckpointUnsupported means the engine cannot checkpoint or
	// restore containers: it is not running in experimental mode, CRIU is
	// missing, or CRIU fails on this kernel. The engine's own message is
	// wrapped with it.
	ErrCheckpointUnsupported = errors.New("engine: checkpoint unsupported")

	// ErrSubnetOverlap means a network's subnet overlaps one already in
	// use. It wraps ErrConflict.
	ErrSubnetOverlap = fmt.Errorf("%w: subnet overlaps an existing network", ErrConflict)
	// ErrNetworkInUse means a network still has containers attached. It
	// wraps ErrConflict.
	ErrNetworkInUse = fmt.Errorf("%w: network is in use", ErrConflict)
)

// Client talks to one Docker Engine. It is safe for concurrent use.
type Client struct {
	cli *client.Client

	ckMu     sync.Mutex
	ckDone   bool
	ckOK     bool
	ckReason string
}

// New returns a Client for the engine at host, a Docker host URL such as
// "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375". An empty host
// means DOCKER_HOST, or the default socket when that is unset. The API
// version is negotiated with the engine on first use, so older engines
// (Docker 20.10, API 1.41) are accepted. New does not contact the engine:
// call Info to check that it answers.
func New(host string) (*Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("engine: new client for %q: %w", host, err)
	}
	return &Client{cli: cli}, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() error {
	return c.cli.Close()
}

// Info describes the engine and its Swarm membership.
type Info struct {
	ID            string
	Hostname      string
	ServerVersion string
	// APIVersion is the API version negotiated with the engine.
	APIVersion   string
	Experimental bool
	NCPU         int
	MemTotal     int64
	Swarm        SwarmState
}

// SwarmState is the engine's view of its Swarm membership.
type SwarmState struct {
	// NodeID is this engine's Swarm node ID ("" outside a swarm).
	NodeID string
	// NodeAddr is the address this node advertises to the swarm.
	NodeAddr string
	// LocalNodeState is "inactive", "pending", "active", "error" or "locked".
	LocalNodeState string
	// ControlAvailable is true on managers.
	ControlAvailable bool
	// Cluster is the swarm's cluster ID, known on managers only.
	Cluster string
}

// Info asks the engine who it is. It is the cheapest way to check that the
// engine answers.
func (c *Client) Info(ctx context.Context) (Info, error) {
	in, err := c.cli.Info(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("engine: info: %w", err)
	}
	out := Info{
		ID:            in.ID,
		Hostname:      in.Name,
		ServerVersion: in.ServerVersion,
		APIVersion:    c.cli.ClientVersion(),
		Experimental:  in.ExperimentalBuild,
		NCPU:          in.NCPU,
		MemTotal:      in.MemTotal,
		Swarm: SwarmState{
			NodeID:           in.Swarm.NodeID,
			NodeAddr:         in.Swarm.NodeAddr,
			LocalNodeState:   string(in.Swarm.LocalNodeState),
			ControlAvailable: in.Swarm.ControlAvailable,
		},
	}
	if in.Swarm.Cluster != nil {
		out.Swarm.Cluster = in.Swarm.Cluster.ID
	}
	return out, nil
}

// classify turns an engine error about one object into the package's
// vocabulary: not-found and conflict answers become ErrNotFound and
// ErrConflict naming the object (with the engine's words kept for
// conflicts); anything else is wrapped with the operation.
func classify(err error, op, object string) error {
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s %s: %w", op, object, ErrNotFound)
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("%s %s: %w: %w", op, object, ErrConflict, err)
	default:
		return fmt.Errorf("%s %s: %w", op, object, err)
	}
}

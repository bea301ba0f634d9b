package engine

import (
	"github.com/rswarm/rswarm/api"

	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/swarm"
)

// swarmPort is the port Swarm managers listen on for cluster traffic.
const swarmPort = "2377"

// SwarmInit makes this engine the manager of a new single-node swarm and
// returns its node ID. advertiseAddr is the address other nodes reach it on
// (an IP or interface name; "" lets the engine choose, which fails on hosts
// with several addresses); listenAddr defaults to "0.0.0.0:2377".
//
// It is idempotent: when the engine already manages a swarm it returns the
// current node ID and no error. An engine that is a worker of another swarm
// gives ErrConflict.
func (c *Client) SwarmInit(ctx context.Context, advertiseAddr, listenAddr string) (string, error) {
	if id, err := c.managerNodeID(ctx); err != nil || id != "" {
		return id, err
	}
	if listenAddr == "" {
		listenAddr = "0.0.0.0:" + swarmPort
	}
	id, err := c.cli.SwarmInit(ctx, swarm.InitRequest{
		ListenAddr:    listenAddr,
		AdvertiseAddr: advertiseAddr,
	})
	if err == nil {
		return id, nil
	}
	// Someone else may have initialised the swarm between the check and
	// the call: look again before failing.
	if id, ierr := c.managerNodeID(ctx); ierr == nil && id != "" {
		return id, nil
	}
	return "", fmt.Errorf("engine: swarm init (advertise %q, listen %q): %w", advertiseAddr, listenAddr, err)
}

// managerNodeID returns this node's ID when it is an active swarm manager,
// "" when it is in no swarm, and ErrConflict when it belongs to a swarm
// without being a manager of it.
func (c *Client) managerNodeID(ctx context.Context) (string, error) {
	in, err := c.Info(ctx)
	if err != nil {
		return "", err
	}
	switch s := in.Swarm; {
	case s.LocalNodeState == string(swarm.LocalNodeStateInactive):
		return "", nil
	case s.LocalNodeState == string(swarm.LocalNodeStateActive) && s.ControlAvailable:
		return s.NodeID, nil
	default:
		return "", fmt.Errorf("engine: swarm init: %w: this engine is already in a swarm (state %q, manager %t)",
			ErrConflict, s.LocalNodeState, s.ControlAvailable)
	}
}

// JoinToken returns the token workers need to join this manager's swarm and
// the manager address ("host:2377") they should join through.
func (c *Client) JoinToken(ctx context.Context) (workerToken, managerAddr string, err error) {
	sw, err := c.cli.SwarmInspect(ctx)
	if err != nil {
		return "", "", fmt.Errorf("engine: swarm inspect: %w", err)
	}
	in, err := c.cli.Info(ctx)
	if err != nil {
		return "", "", fmt.Errorf("engine: info: %w", err)
	}
	for _, p := range in.Swarm.RemoteManagers {
		if p.NodeID == in.Swarm.NodeID && p.Addr != "" {
			managerAddr = p.Addr
			break
		}
	}
	if managerAddr == "" && in.Swarm.NodeAddr != "" {
		managerAddr = net.JoinHostPort(in.Swarm.NodeAddr, swarmPort)
	}
	return sw.JoinTokens.Worker, managerAddr, nil
}

// SwarmJoin makes this engine join the swarm managed at remoteAddr
// ("host:2377") with token. advertiseAddr and listenAddr are as in
// SwarmInit.
func (c *Client) SwarmJoin(ctx context.Context, remoteAddr, token, advertiseAddr, listenAddr string) error {
	if listenAddr == "" {
		listenAddr = "0.0.0.0:" + swarmPort
	}
	err := c.cli.SwarmJoin(ctx, swarm.JoinRequest{
		ListenAddr:    listenAddr,
		AdvertiseAddr: advertiseAddr,
		RemoteAddrs:   []string{remoteAddr},
		JoinToken:     token,
	})
	if err != nil {
		return fmt.Errorf("engine: swarm join %s: %w", remoteAddr, err)
	}
	return nil
}

// SwarmLeave makes this engine leave its swarm. A manager needs force.
// Leaving when not in a swarm is not an error.
func (c *Client) SwarmLeave(ctx context.Context, force bool) error {
	err := c.cli.SwarmLeave(ctx, force)
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "not part of a swarm") {
		return nil
	}
	return fmt.Errorf("engine: swarm leave: %w", err)
}

// Node is one member of the swarm, as its managers see it.
// Role is "manager" or "worker"; State is "unknown", "down", "ready" or
// "disconnected"; Availability is "active", "pause" or "drain".
type Node = api.SwarmNode

// Nodes lists the swarm's nodes, sorted by hostname then ID. It needs a
// manager.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	list, err := c.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("engine: node list: %w", err)
	}
	out := make([]Node, 0, len(list))
	for _, n := range list {
		out = append(out, nodeFrom(n))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Hostname != out[j].Hostname {
			return out[i].Hostname < out[j].Hostname
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Node returns one node by ID or hostname, with the engine's raw inspect
// JSON (for describe_worker). It gives ErrNotFound for an unknown node.
func (c *Client) Node(ctx context.Context, id string) (Node, json.RawMessage, error) {
	n, raw, err := c.cli.NodeInspectWithRaw(ctx, id)
	if err != nil {
		return Node{}, nil, classify(err, "engine: inspect node", id)
	}
	return nodeFrom(n), json.RawMessage(raw), nil
}

// RemoveNode removes a node from the swarm. A node that is still up needs
// force. It gives ErrNotFound for an unknown node.
func (c *Client) RemoveNode(ctx context.Context, id string, force bool) error {
	err := c.cli.NodeRemove(ctx, id, swarm.NodeRemoveOptions{Force: force})
	return classify(err, "engine: remove node", id)
}

func nodeFrom(n swarm.Node) Node {
	out := Node{
		ID:           n.ID,
		Hostname:     n.Description.Hostname,
		Addr:         n.Status.Addr,
		Role:         string(n.Spec.Role),
		State:        string(n.Status.State),
		Availability: string(n.Spec.Availability),
		NCPU:         int(n.Description.Resources.NanoCPUs / 1e9),
		MemBytes:     n.Description.Resources.MemoryBytes,
	}
	if n.ManagerStatus != nil {
		out.Leader = n.ManagerStatus.Leader
		if out.Addr == "" || out.Addr == "0.0.0.0" {
			if host, _, err := net.SplitHostPort(n.ManagerStatus.Addr); err == nil {
				out.Addr = host
			}
		}
	}
	return out
}

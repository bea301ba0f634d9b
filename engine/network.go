package engine

import (
	"github.com/rswarm/rswarm/api"

	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// Network is a network of the engine (for RSwarm, a job's attachable
// overlay network).
// Subnet is the first IPAM subnet ("" when the engine chose none yet);
// Containers counts the containers attached on this engine.
type Network = api.NetworkInfo

// CreateNetwork creates an attachable overlay network named name, with
// labels, on subnet (CIDR; "" lets the swarm pick one), and waits until the
// swarm has allocated it. The engine must be a swarm manager. When a
// network of that name exists already it is returned as is. A subnet that
// overlaps another network's gives ErrSubnetOverlap (an ErrConflict) naming
// both subnets.
func (c *Client) CreateNetwork(ctx context.Context, name, subnet string, labels map[string]string) (Network, error) {
	return c.createNetwork(ctx, name, subnet, labels, true)
}

// createNetwork is CreateNetwork; precheck false skips the local overlap
// check, so that tests can reach the swarm's own refusal.
func (c *Client) createNetwork(ctx context.Context, name, subnet string, labels map[string]string, precheck bool) (Network, error) {
	if n, err := c.networkByName(ctx, name); err != nil || n.ID != "" {
		return n, err
	}
	opts := network.CreateOptions{
		Driver:     "overlay",
		Attachable: true,
		Labels:     labels,
	}
	if subnet != "" {
		// The swarm accepts an overlapping subnet and only fails to
		// allocate it later, in its log; and it does not know the local
		// networks at all. So look first.
		if precheck {
			if err := c.checkSubnet(ctx, name, subnet); err != nil {
				return Network{}, err
			}
		}
		opts.IPAM = &network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: subnet}}}
	}
	resp, err := c.cli.NetworkCreate(ctx, name, opts)
	if err != nil {
		if overlapping(err) {
			return Network{}, fmt.Errorf("engine: create network %s: %w: %s (%w)", name, ErrSubnetOverlap, subnet, err)
		}
		// A concurrent creation of the same name wins: return it.
		if n, lerr := c.networkByName(ctx, name); lerr == nil && n.ID != "" {
			return n, nil
		}
		return Network{}, classify(err, "engine: create network", name)
	}
	n, err := c.waitAllocated(ctx, resp.ID)
	if err == nil {
		return n, nil
	}
	// Do not leave a network the swarm could not allocate behind: it would
	// come to life later, when the overlapping network goes.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = c.cli.NetworkRemove(rctx, resp.ID)
	if subnet != "" && ctx.Err() == nil {
		return Network{}, fmt.Errorf("engine: create network %s: %w: the swarm could not allocate %s (%w)", name, ErrSubnetOverlap, subnet, err)
	}
	return Network{}, fmt.Errorf("engine: create network %s: %w", name, err)
}

// CreateLocalNetwork creates a bridge network named name on this engine
// only, with labels, on subnet ("" lets the engine pick one); containers
// on it resolve each other by name. When a network of that name exists
// already it is returned as is. An overlapping subnet gives
// ErrSubnetOverlap.
func (c *Client) CreateLocalNetwork(ctx context.Context, name, subnet string, labels map[string]string) (Network, error) {
	opts := network.CreateOptions{Driver: "bridge", Labels: labels}
	if subnet != "" {
		if err := c.checkSubnet(ctx, name, subnet); err != nil {
			if n, lerr := c.networkByName(ctx, name); lerr == nil && n.ID != "" {
				return n, nil // its own subnet, from an earlier task of the job
			}
			return Network{}, err
		}
		opts.IPAM = &network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: subnet}}}
	}
	// Create first and look up only on a refusal: the common case costs
	// one call to the engine.
	resp, err := c.cli.NetworkCreate(ctx, name, opts)
	if err != nil {
		if n, lerr := c.networkByName(ctx, name); lerr == nil && n.ID != "" {
			return n, nil
		}
		if overlapping(err) {
			return Network{}, fmt.Errorf("engine: create network %s: %w: %s (%w)", name, ErrSubnetOverlap, subnet, err)
		}
		return Network{}, classify(err, "engine: create network", name)
	}
	return Network{ID: resp.ID, Name: name, Driver: "bridge", Subnet: subnet, Labels: labels}, nil
}

// allocationTimeout bounds the wait for the swarm to allocate a new
// network; it normally takes milliseconds.
const allocationTimeout = 5 * time.Second

// waitAllocated polls a new swarm network until the swarm has allocated it
// (its driver and pool are set).
func (c *Client) waitAllocated(ctx context.Context, id string) (Network, error) {
	deadline := time.Now().Add(allocationTimeout)
	wait := 2 * time.Millisecond
	for {
		n, err := c.inspectNetwork(ctx, id)
		if err != nil {
			return Network{}, err
		}
		if n.Driver != "" {
			return n, nil
		}
		if time.Now().After(deadline) {
			return Network{}, fmt.Errorf("not allocated by the swarm within %v", allocationTimeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Network{}, ctx.Err()
		case <-t.C:
		}
		if wait < 100*time.Millisecond {
			wait *= 2
		}
	}
}

// checkSubnet returns ErrSubnetOverlap when subnet overlaps the subnet of
// any network the engine knows (local or swarm).
func (c *Client) checkSubnet(ctx context.Context, name, subnet string) error {
	want, err := netip.ParsePrefix(subnet)
	if err != nil {
		return fmt.Errorf("engine: create network %s: subnet %q is not a CIDR: %w", name, subnet, err)
	}
	list, err := c.cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return fmt.Errorf("engine: create network %s: list networks: %w", name, err)
	}
	for _, n := range list {
		for _, cfg := range n.IPAM.Config {
			have, err := netip.ParsePrefix(cfg.Subnet)
			if err != nil || !have.Overlaps(want) {
				continue
			}
			return fmt.Errorf("engine: create network %s: %w: %s overlaps %s of network %s",
				name, ErrSubnetOverlap, subnet, cfg.Subnet, n.Name)
		}
	}
	return nil
}

// networkByName returns the network whose name is exactly name, or a zero
// Network when there is none.
func (c *Client) networkByName(ctx context.Context, name string) (Network, error) {
	list, err := c.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return Network{}, fmt.Errorf("engine: list networks named %s: %w", name, err)
	}
	for _, s := range list {
		// The name filter matches substrings: keep the exact name only.
		if s.Name == name {
			return c.inspectNetwork(ctx, s.ID)
		}
	}
	return Network{}, nil
}

func (c *Client) inspectNetwork(ctx context.Context, id string) (Network, error) {
	in, err := c.cli.NetworkInspect(ctx, id, network.InspectOptions{})
	if err != nil {
		return Network{}, classify(err, "engine: inspect network", id)
	}
	return networkFrom(in), nil
}

func networkFrom(in network.Inspect) Network {
	n := Network{
		ID:     in.ID,
		Name:   in.Name,
		Driver: in.Driver,
		Labels: in.Labels,
	}
	for k := range in.Containers {
		// Swarm overlays hold one load-balancer endpoint per node.
		if !strings.HasPrefix(k, "lb-") {
			n.Containers++
		}
	}
	if len(in.IPAM.Config) > 0 {
		n.Subnet = in.IPAM.Config[0].Subnet
	}
	return n
}

// Networks lists the networks carrying all of labels (a label with an empty
// value matches any value), sorted by name.
func (c *Client) Networks(ctx context.Context, labels map[string]string) ([]Network, error) {
	list, err := c.cli.NetworkList(ctx, network.ListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("engine: list networks: %w", err)
	}
	out := make([]Network, 0, len(list))
	for _, s := range list {
		// The list does not count endpoints; inspect does.
		n, err := c.inspectNetwork(ctx, s.ID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // removed meanwhile
			}
			return nil, err
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveNetwork removes a network by name or ID. It gives ErrNotFound when
// there is no such network and ErrNetworkInUse (an ErrConflict) when
// containers are still attached.
func (c *Client) RemoveNetwork(ctx context.Context, nameOrID string) error {
	err := c.cli.NetworkRemove(ctx, nameOrID)
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return classify(err, "engine: remove network", nameOrID)
	case inUse(err):
		return fmt.Errorf("engine: remove network %s: %w (%w)", nameOrID, ErrNetworkInUse, err)
	default:
		return classify(err, "engine: remove network", nameOrID)
	}
}

// inUse reports whether err is the engine refusing to remove a network that
// still has endpoints.
func inUse(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "active endpoints") || strings.Contains(m, "in use")
}

// labelFilters builds a label filter matching objects that carry all of
// labels; an empty value matches any value of that key.
func labelFilters(labels map[string]string) filters.Args {
	f := filters.NewArgs()
	for k, v := range labels {
		if v == "" {
			f.Add("label", k)
		} else {
			f.Add("label", k+"="+v)
		}
	}
	return f
}

// overlapping reports whether err is the engine refusing a subnet because
// it overlaps another pool. Engines say so only in words.
func overlapping(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "overlap")
}

package management

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// ShapeFor builds the rule for traffic from host to the host or address
// to, with the class numbered after to's place in the fleet (0x10 + its
// index) so that each destination has its own class on every host.
func (m *Manager) ShapeFor(host, to string, s Shape) (*Host, Shape, error) {
	h := m.f.Host(host)
	if h == nil {
		return nil, s, bad("--host", "%q is not a host of the fleet", host)
	}
	s.Device = h.Device
	s.Class = 0
	for i, d := range m.f.Hosts {
		if d.Name == to || d.Address == to {
			s.Class = 0x10 + i
			s.To = d.Address
		}
	}
	if s.Class == 0 {
		return nil, s, bad("--to", "%q is not a host of the fleet", to)
	}
	if ip := net.ParseIP(s.To); ip == nil {
		addrs, err := net.LookupIP(s.To)
		if err != nil || len(addrs) == 0 {
			return nil, s, bad("--to", "cannot resolve %q to an address: %v", s.To, err)
		}
		s.To = addrs[0].String()
	}
	return h, s, s.Validate()
}

// NetApply installs a rule on a host over SSH (replacing an earlier rule
// for the same destination). A rule that needs a queueing discipline the
// host's kernel lacks is refused, naming the host and the discipline.
func (m *Manager) NetApply(ctx context.Context, host, to string, s Shape) error {
	h, s, err := m.ShapeFor(host, to, s)
	if err != nil {
		return err
	}
	ss := m.newSession()
	defer ss.close()
	c, err := ss.conn(ctx, h.Name)
	if err != nil {
		return err
	}
	var p Probe
	if err := m.agent(ctx, c, h.Name, &p, "probe", "--workdir", h.Workdir); err != nil {
		return err
	}
	if !p.TC {
		return fmt.Errorf("host %s: the tc program is missing (Debian's iproute2)", h.Name)
	}
	if miss := p.Qdiscs.Missing(s); len(miss) > 0 {
		return fmt.Errorf("host %s: its kernel has no %s queueing discipline (sch_%s), which this rule needs; it has: %s", h.Name, strings.Join(miss, ", "), miss[0], p.Qdiscs)
	}
	out, _, err := c.Run(ctx, []string{TC, "qdisc", "show", "dev", s.Device}, nil)
	if err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	if !strings.Contains(string(out), "qdisc htb 1: root") {
		if _, _, err := c.Run(ctx, RootArgs(s.Device), nil); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	for _, argv := range s.RemoveArgs() {
		_, _, _ = c.Run(ctx, argv, nil) // absent the first time
	}
	for _, argv := range s.ApplyArgs() {
		if _, _, err := c.Run(ctx, argv, nil); err != nil {
			var re *RemoteError
			if errors.As(err, &re) && strings.Contains(re.Stderr, "qdisc kind is unknown") {
				return fmt.Errorf("host %s: its kernel lacks a queueing discipline this rule needs (%s): %w", h.Name, strings.Join(argv, " "), err)
			}
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	return nil
}

// NetShow returns what tc reports on each host (or on the named ones).
func (m *Manager) NetShow(ctx context.Context, hosts ...string) (map[string]string, error) {
	return m.netEach(ctx, hosts, func(c Conn, h *Host) (string, error) {
		var b strings.Builder
		for _, argv := range ShowArgs(h.Device) {
			out, _, err := c.Run(ctx, argv, nil)
			if err != nil {
				return b.String(), err
			}
			b.Write(out)
		}
		return b.String(), nil
	})
}

// NetClear removes every rule from each host (or the named ones).
func (m *Manager) NetClear(ctx context.Context, hosts ...string) (map[string]string, error) {
	return m.netEach(ctx, hosts, func(c Conn, h *Host) (string, error) {
		_, _, err := c.Run(ctx, ClearArgs(h.Device), nil)
		var re *RemoteError
		if errors.As(err, &re) {
			return "nothing to clear", nil // tc says there is no root qdisc to delete
		}
		if err != nil {
			return "", err
		}
		return "cleared", nil
	})
}

func (m *Manager) netEach(ctx context.Context, hosts []string, fn func(Conn, *Host) (string, error)) (map[string]string, error) {
	if len(hosts) == 0 {
		for _, h := range m.f.Hosts {
			hosts = append(hosts, h.Name)
		}
	}
	ss := m.newSession()
	defer ss.close()
	out := map[string]string{}
	var errs []error
	for _, n := range hosts {
		h := m.f.Host(n)
		if h == nil {
			return nil, bad("--host", "%q is not a host of the fleet", n)
		}
		c, err := ss.conn(ctx, n)
		if err != nil {
			out[n] = err.Error()
			errs = append(errs, err)
			continue
		}
		s, err := fn(c, h)
		if err != nil {
			err = fmt.Errorf("host %s: %w", n, err)
			errs = append(errs, err)
			s = err.Error()
		}
		out[n] = s
	}
	return out, errors.Join(errs...)
}

package stressclient

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/rswarm/rswarm/api"
)

// JobName names a job as the original did, job<submit epoch ms>-<session>,
// followed by -<seq>, the job's position in its plan: two jobs submitted in
// the same millisecond by one run still differ. For example
// job1700000000000-1700000000-7.
func JobName(at time.Time, session string, seq int) string {
	return "job" + strconv.FormatInt(at.UnixMilli(), 10) + "-" + session + "-" + strconv.Itoa(seq)
}

// NetworkPrefix starts the name of each job's overlay network, as in the
// original: RESTfulSwarmNetwork_<job name>.
const NetworkPrefix = "RESTfulSwarmNetwork_"

// NewJob builds the job named name with the given shape: tasks named
// <name>_task<N> (N from 1), a network of its own named
// RESTfulSwarmNetwork_<name>, in subnet when it is not empty.
func NewJob(name, session string, s Shape, subnet string) *api.Job {
	j := &api.Job{Name: name, Session: api.Session(session), Status: api.Ready}
	j.Info.Network = api.Network{Name: NetworkPrefix + name, Driver: "overlay", Subnet: subnet}
	mem := ""
	if s.MemMB > 0 {
		mem = strconv.Itoa(s.MemMB) + "m"
	}
	j.Info.Tasks = make(api.Tasks, s.Tasks)
	for i := range j.Info.Tasks {
		j.Info.Tasks[i] = &api.Task{
			ContainerName: name + "_task" + strconv.Itoa(i+1),
			Image:         s.Image,
			Detach:        true,
			Command:       s.Command,
			ReqCores:      s.Cores,
			MemLimit:      mem,
			Ports:         map[string]any{},
			Volumes:       map[string]api.Volume{},
			Environment:   map[string]string{},
			Status:        api.Ready,
			Deadline:      float64(s.Deadline),
			Duration:      s.Duration,
		}
	}
	return j
}

// SubnetPool hands each job a subnet of its own from an address pool. The
// original gave every job the same subnet, and Docker refuses a network
// whose pool overlaps another's. A pool of /24 or larger is cut into /24s,
// handed out in turn (wrapping around after the last); a smaller pool can
// only be given to every job as it is (Shared reports it). A nil pool
// hands out no subnet, leaving the choice to Docker.
type SubnetPool struct {
	base   netip.Prefix
	blocks uint32 // number of /24s, 0 when the pool is smaller than a /24
}

// NewSubnetPool returns the pool of an IPv4 CIDR; the empty string gives a nil pool.
func NewSubnetPool(cidr string) (*SubnetPool, error) {
	if cidr == "" {
		return nil, nil
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return nil, invalid("subnet %q is not an IPv4 CIDR such as 10.52.0.0/16", cidr)
	}
	p = p.Masked()
	sp := &SubnetPool{base: p}
	if p.Bits() <= 24 {
		sp.blocks = 1 << (24 - p.Bits())
	}
	return sp, nil
}

// Shared reports whether the pool is too small to give jobs subnets of
// their own, so that every job gets the same one.
func (sp *SubnetPool) Shared() bool { return sp != nil && sp.blocks == 0 }

// For returns the subnet of the seq'th job (from 1), or "" for a nil pool.
func (sp *SubnetPool) For(seq int) string {
	if sp == nil {
		return ""
	}
	if sp.blocks == 0 {
		return sp.base.String()
	}
	seq = max(seq, 1)
	a := sp.base.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) + (uint32(seq-1)%sp.blocks)<<8
	binary.BigEndian.PutUint32(a[:], v)
	return netip.PrefixFrom(netip.AddrFrom4(a), 24).String()
}

// String describes the pool for logs.
func (sp *SubnetPool) String() string {
	if sp == nil {
		return "none"
	}
	if sp.blocks == 0 {
		return sp.base.String() + " (shared by every job)"
	}
	return fmt.Sprintf("%s (%d /24 subnets in turn)", sp.base, sp.blocks)
}

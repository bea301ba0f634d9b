package api

import (
	"sort"
	"strings"
)

// Network drivers a job may ask for (job_info.network.driver).
const (
	// DriverAuto is the default: a local bridge network when every task
	// lands on one worker, the attachable overlay otherwise. It is decided
	// when the job is deployed (NetworkDriverFor) and the job then records
	// the driver it got.
	DriverAuto = "auto"
	// DriverOverlay is an attachable Swarm overlay spanning the workers.
	DriverOverlay = "overlay"
	// DriverBridge is a user-defined bridge network on one worker's engine
	// (its tasks resolve each other by name through the engine's DNS). A
	// job asking for it must have all its tasks on one worker.
	DriverBridge = "bridge"
)

// LabelLocalNetwork marks a task's container attached to a local bridge
// network; its value is the network's name, so that the worker can remove
// the network when the job's last container on it is gone.
const LabelLocalNetwork = "rswarm.local_network"

// LabelPool marks a local bridge network a Docker worker made ahead of
// need (see engine.Runtime.WarmNetworks); its value is the worker's node
// ID. Such a network carries rswarm.cluster but not rswarm.managed: it
// belongs to no job, so the globalmanager's prune of jobs' networks
// leaves it to its worker, which hands it to one job at a time and
// removes it when it stops.
const LabelPool = "rswarm.pool"

// LabelSandbox marks a container that only holds a network namespace for a
// one-task job, made ahead by a Docker worker on one of its pooled
// networks (see engine.Runtime.SandboxImage); its value is that network's
// name. On a task's container it names the sandbox the task runs in.
// Sandboxes carry rswarm.pool and rswarm.cluster but not rswarm.managed:
// they are not tasks, and their worker removes them.
const LabelSandbox = "rswarm.sandbox"

// DefaultNetworkName is the network name Validate gives a job that names
// none ("rsnet_<job>", shortened for long job names).
func DefaultNetworkName(job string) string { return networkName(job) }

// normaliseDriver maps the driver a job names to one RSwarm runs: "" is
// auto, the original's Weave plugin is the overlay. It reports whether the
// driver was Weave's, and refuses any other name.
func normaliseDriver(d string) (driver string, weave bool, err error) {
	switch {
	case d == "":
		return DriverAuto, false, nil
	case d == "weave" || strings.HasPrefix(d, "weaveworks/net-plugin"):
		return DriverOverlay, true, nil
	case d == DriverAuto || d == DriverOverlay || d == DriverBridge:
		return d, false, nil
	}
	return "", false, Invalid("job_info.network.driver",
		"%q is not supported: use \"auto\" (the default: a local bridge when the job fits on one worker, else an overlay), \"overlay\" (an attachable Swarm overlay) or \"bridge\" (a local network; all tasks on one worker)", d)
}

// NetworkDriverFor decides the network a placed job gets from the driver
// it asked for and the workers its tasks were placed on: overlay when it
// asked for one; a local bridge when its tasks are all on one worker and it
// asked for auto or bridge; the overlay for auto spread over several
// workers. A bridge job spread over several workers is refused with the
// workers named.
func NetworkDriverFor(asked string, nodes []string) (string, error) {
	distinct := map[string]bool{}
	for _, n := range nodes {
		distinct[n] = true
	}
	switch asked {
	case DriverOverlay:
		return DriverOverlay, nil
	case DriverAuto, "":
		if len(distinct) == 1 {
			return DriverBridge, nil
		}
		return DriverOverlay, nil
	case DriverBridge:
		if len(distinct) == 1 {
			return DriverBridge, nil
		}
		names := make([]string, 0, len(distinct))
		for n := range distinct {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", Invalid("job_info.network.driver",
			"\"bridge\" is a network on one worker, but the tasks were placed on %d workers (%s): use \"auto\" or \"overlay\"", len(names), strings.Join(names, ", "))
	}
	return "", Invalid("job_info.network.driver", "%q is not a network driver RSwarm runs", asked)
}

// PlacedNetworkDriver is NetworkDriverFor of a placed job's tasks.
func (j *Job) PlacedNetworkDriver() (string, error) {
	nodes := make([]string, 0, len(j.Info.Tasks))
	for _, t := range j.Info.Tasks {
		nodes = append(nodes, t.Node)
	}
	return NetworkDriverFor(j.Info.Network.Driver, nodes)
}

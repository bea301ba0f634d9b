package engine

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// RunSpec describes a container to create.
type RunSpec struct {
	// Name is the container name (Docker's name rules).
	Name string
	// Image must be present locally; nothing is pulled.
	Image string
	// Cmd replaces the image's command when not empty.
	Cmd []string
	Env map[string]string
	// CpusetCpus pins the container to cores, as "0,1" or "0-3".
	CpusetCpus string
	// Memory is the memory limit in bytes; 0 means none.
	Memory int64
	// Network is the network to attach to ("" = the engine's default), or
	// "container:<name or ID>" to run in that container's network namespace.
	Network string
	// Ports publishes container ports ("3000/tcp", or "3000" for tcp) on
	// host ports; host port 0 lets the engine choose one.
	Ports  map[string]int
	Mounts []Mount
	Labels map[string]string
	// StopTimeout is how many seconds a stop waits after SIGTERM before
	// SIGKILL; 0 means the engine's default (10 s).
	StopTimeout int
}

// Mount is a volume or bind mount of a container.
type Mount struct {
	// Source is a host path when it starts with "/" (a bind mount) and a
	// named volume otherwise.
	Source   string
	Target   string
	ReadOnly bool
}

// Create creates (but does not start) a container and returns its ID. It
// gives ErrImageNotFound when the image is not present locally and
// ErrConflict when the name is in use.
func (c *Client) Create(ctx context.Context, s RunSpec) (string, error) {
	cfg, host, netCfg, err := containerConfig(s)
	if err != nil {
		return "", fmt.Errorf("engine: create container %s: %w", s.Name, err)
	}
	resp, err := c.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, s.Name)
	if err == nil {
		return resp.ID, nil
	}
	if cerrdefs.IsNotFound(err) {
		// Not found at create time is the image, or else the network.
		if ok, ierr := c.ImageExists(ctx, s.Image); ierr == nil && !ok {
			return "", fmt.Errorf("engine: create container %s: %w: %s is not present locally", s.Name, ErrImageNotFound, s.Image)
		}
		return "", fmt.Errorf("engine: create container %s: %w: %w", s.Name, ErrNotFound, err)
	}
	return "", classify(err, "engine: create container", s.Name)
}

func containerConfig(s RunSpec) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	cfg := &container.Config{
		Image:  s.Image,
		Cmd:    s.Cmd,
		Labels: s.Labels,
	}
	if s.StopTimeout > 0 {
		t := s.StopTimeout
		cfg.StopTimeout = &t
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cfg.Env = append(cfg.Env, k+"="+s.Env[k])
	}
	host := &container.HostConfig{
		Resources: container.Resources{CpusetCpus: s.CpusetCpus, Memory: s.Memory},
	}
	if len(s.Ports) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		host.PortBindings = nat.PortMap{}
		for spec, hostPort := range s.Ports {
			proto, port := nat.SplitProtoPort(spec)
			p, err := nat.NewPort(proto, port)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("port %q: %w", spec, err)
			}
			if hostPort < 0 || hostPort > math.MaxUint16 {
				return nil, nil, nil, fmt.Errorf("port %q: host port %d out of range", spec, hostPort)
			}
			b := nat.PortBinding{}
			if hostPort > 0 {
				b.HostPort = strconv.Itoa(hostPort)
			}
			cfg.ExposedPorts[p] = struct{}{}
			host.PortBindings[p] = []nat.PortBinding{b}
		}
	}
	for _, m := range s.Mounts {
		mt := mount.Mount{Type: mount.TypeVolume, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if strings.HasPrefix(m.Source, "/") {
			mt.Type = mount.TypeBind
		}
		host.Mounts = append(host.Mounts, mt)
	}
	var netCfg *network.NetworkingConfig
	if s.Network != "" {
		host.NetworkMode = container.NetworkMode(s.Network)
		if !host.NetworkMode.IsContainer() { // one in another's namespace has no endpoint of its own
			netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{s.Network: {}}}
		}
	}
	return cfg, host, netCfg, nil
}

// Start starts a created container. It gives ErrNotFound for an unknown
// container.
//
// A container on a swarm-scoped attachable network that was created a
// moment ago can fail to start with "Could not attach to network ...: not
// found": the engine asks the swarm's managers for an attachment, and under
// load they may not have the new network yet. That answer is retried, with
// a growing pause, for up to attachRetry; every other error is returned at
// once.
func (c *Client) Start(ctx context.Context, id string) error {
	give := time.Now().Add(attachRetry)
	pause := 50 * time.Millisecond
	for {
		err := c.cli.ContainerStart(ctx, id, container.StartOptions{})
		if err == nil || !attachLag(err) || time.Now().Add(pause).After(give) {
			return classify(err, "engine: start container", id)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return classify(err, "engine: start container", id)
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}

// attachRetry bounds how long Start waits for a new network to reach the
// swarm's managers.
const attachRetry = 10 * time.Second

// attachLag tells whether err is the engine's refusal to attach a container
// to a network its swarm does not know yet.
func attachLag(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Could not attach to network") && strings.Contains(msg, "not found")
}

// Container is the state of one container.
type Container struct {
	ID string
	// Name is the container name, without Docker's leading "/".
	Name string
	// Image is the image reference the container was created from.
	Image   string
	Running bool
	// Status is "created", "running", "paused", "restarting", "removing",
	// "exited" or "dead".
	Status    string
	ExitCode  int
	OOMKilled bool
	// Error is the engine's error for a container that failed to start.
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
	CpusetCpus string
	Memory     int64
	// Networks are the names of the networks the container is attached to,
	// sorted.
	Networks []string
	Labels   map[string]string
}

// Inspect returns a container's state by name or ID. It gives ErrNotFound
// for an unknown container.
func (c *Client) Inspect(ctx context.Context, nameOrID string) (Container, error) {
	in, err := c.cli.ContainerInspect(ctx, nameOrID)
	if err != nil {
		return Container{}, classify(err, "engine: inspect container", nameOrID)
	}
	out := Container{ID: in.ID}
	if in.ContainerJSONBase != nil {
		out.Name = strings.TrimPrefix(in.Name, "/")
		out.Image = in.Image
		if st := in.State; st != nil {
			out.Running = st.Running
			out.Status = string(st.Status)
			out.ExitCode = st.ExitCode
			out.OOMKilled = st.OOMKilled
			out.Error = st.Error
			out.StartedAt = engineTime(st.StartedAt)
			out.FinishedAt = engineTime(st.FinishedAt)
		}
		if h := in.HostConfig; h != nil {
			out.CpusetCpus = h.CpusetCpus
			out.Memory = h.Memory
		}
	}
	if in.Config != nil {
		out.Image = in.Config.Image
		out.Labels = in.Config.Labels
	}
	if in.NetworkSettings != nil {
		out.Networks = sortedKeys(in.NetworkSettings.Networks)
	}
	return out, nil
}

// engineTime parses the engine's RFC 3339 times; the engine's "never"
// (0001-01-01) and anything unparsable give the zero time.
func engineTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// exitedRE finds the exit code in a list entry's status ("Exited (3) 2
// seconds ago").
var exitedRE = regexp.MustCompile(`^Exited \((-?\d+)\)`)

// Containers lists the containers carrying all of labels (a label with an
// empty value matches any value), running ones only unless all is set,
// sorted by name. The list holds what the engine's list gives: ID, Name,
// Image, Running, Status, ExitCode (for exited containers), Networks and
// Labels; use Inspect for the rest.
func (c *Client) Containers(ctx context.Context, labels map[string]string, all bool) ([]Container, error) {
	list, err := c.cli.ContainerList(ctx, container.ListOptions{All: all, Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("engine: list containers: %w", err)
	}
	out := make([]Container, 0, len(list))
	for _, s := range list {
		ct := Container{
			ID:      s.ID,
			Image:   s.Image,
			Running: s.State == container.StateRunning,
			Status:  string(s.State),
			Labels:  s.Labels,
		}
		if len(s.Names) > 0 {
			ct.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		if m := exitedRE.FindStringSubmatch(s.Status); m != nil {
			ct.ExitCode, _ = strconv.Atoi(m[1])
		}
		if s.NetworkSettings != nil {
			ct.Networks = sortedKeys(s.NetworkSettings.Networks)
		}
		out = append(out, ct)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Stop stops a container: SIGTERM, then SIGKILL after timeout (rounded up
// to whole seconds; 0 kills at once, a negative timeout uses the
// container's StopTimeout). Stopping a stopped container is not an error.
// It gives ErrNotFound for an unknown container.
func (c *Client) Stop(ctx context.Context, id string, timeout time.Duration) error {
	opts := container.StopOptions{}
	if timeout >= 0 {
		secs := int((timeout + time.Second - 1) / time.Second)
		opts.Timeout = &secs
	}
	return classify(c.cli.ContainerStop(ctx, id, opts), "engine: stop container", id)
}

// Remove removes a container and its anonymous volumes; force kills a
// running one first. It gives ErrNotFound for an unknown container.
func (c *Client) Remove(ctx context.Context, id string, force bool) error {
	err := c.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: force, RemoveVolumes: true})
	return classify(err, "engine: remove container", id)
}

// Logs returns the last tail lines of a container's stdout and stderr,
// interleaved as written, without timestamps (tail <= 0: all lines). It
// gives ErrNotFound for an unknown container.
func (c *Client) Logs(ctx context.Context, id string, tail int) ([]string, error) {
	t := "all"
	if tail > 0 {
		t = strconv.Itoa(tail)
	}
	rc, err := c.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: t})
	if err != nil {
		return nil, classify(err, "engine: logs of container", id)
	}
	defer rc.Close()
	var buf bytes.Buffer
	// RSwarm never creates TTY containers, so the stream is always
	// multiplexed; both halves go to one buffer to keep their order.
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return nil, fmt.Errorf("engine: logs of container %s: %w", id, err)
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	if s == "" {
		return nil, nil
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines, nil
}

// Update changes a running or stopped container's cores (cpuset, "" keeps
// them) and memory limit in bytes (0 keeps it). The swap limit follows the
// memory limit as Docker's default does (twice the memory). It gives
// ErrNotFound for an unknown container.
func (c *Client) Update(ctx context.Context, id string, cpuset string, memory int64) error {
	r := container.Resources{CpusetCpus: cpuset}
	if memory > 0 {
		r.Memory = memory
		r.MemorySwap = 2 * memory
	}
	_, err := c.cli.ContainerUpdate(ctx, id, container.UpdateConfig{Resources: r})
	return classify(err, "engine: update container", id)
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Runtime runs RSwarm tasks as containers on this engine: it is the Docker
// runtime of a worker. Every container it creates carries the labels
// rswarm.managed, rswarm.job, rswarm.task and rswarm.node, and it only ever
// touches containers carrying them.
type Runtime struct {
	c *Client
	// Advertise is the address this host advertises when it joins a swarm.
	Advertise string
	// Pull lets the runtime try to pull an image that is not present.
	Pull bool
	// StopTimeout is how long a container gets between SIGTERM and SIGKILL.
	StopTimeout time.Duration
	// LogLines is how many of a task's last output lines are kept when it ends.
	LogLines int
	// CheckpointImage is the image used to probe CRIU support ("" skips the probe).
	CheckpointImage string
	// WarmNetworks is how many local bridge networks the runtime keeps
	// made ahead for one-worker jobs while it watches (see pool.go); 0
	// makes each job's network with its first task.
	WarmNetworks int
	// SandboxImage is the image of the sandboxes the runtime starts on its
	// idle pooled networks, for one-task jobs to start in (see pool.go):
	// it must have sleep. "" starts none.
	SandboxImage string
	Log          *slog.Logger

	mu      sync.Mutex
	node    string
	cluster string // set by SetCluster: only this cluster's containers are ours
	// held are tasks being moved to another host: their containers stay
	// (not reported, not removed) when they stop, until Resume or Discard.
	held map[string]bool
	// incoming are tasks received from another host, created and filled
	// but not started yet (PrepareIn), by task name.
	incoming map[string]*incoming

	// netMu serialises the creation of jobs' local networks: the engine
	// makes two bridges of one name when asked at once. nets are the local
	// networks this runtime made and has not removed yet; pool the
	// networks made ahead (pool.go).
	netMu sync.Mutex
	nets  map[string]bool
	pool  netPool
}

// NewRuntime returns the Docker runtime over c.
func NewRuntime(c *Client, advertise string, log *slog.Logger) *Runtime {
	if log == nil {
		log = slog.Default()
	}
	return &Runtime{c: c, Advertise: advertise, StopTimeout: 2 * time.Second, LogLines: 20, Log: log}
}

// Host describes this engine's host: cores, memory, and its swarm node ID
// when it is an active swarm member.
func (r *Runtime) Host(ctx context.Context) (api.Register, error) {
	info, err := r.c.Info(ctx)
	if err != nil {
		return api.Register{}, err
	}
	reg := api.Register{Host: info.Hostname, Address: r.Advertise, Runtime: "docker", Cores: info.NCPU, MemTotal: info.MemTotal}
	if info.Swarm.LocalNodeState == "active" {
		reg.NodeID = info.Swarm.NodeID
	}
	if r.Advertise == "" {
		reg.Address = info.Swarm.NodeAddr
	}
	if r.CheckpointImage != "" {
		reg.Checkpoint, reg.CheckpointError = r.c.CheckpointSupport(ctx, r.CheckpointImage)
	} else {
		reg.CheckpointError = "not probed"
	}
	r.mu.Lock()
	r.node = reg.NodeID
	r.mu.Unlock()
	return reg, nil
}

// Join makes this engine join the swarm at addr and returns its node ID.
func (r *Runtime) Join(ctx context.Context, addr, token string) (string, error) {
	listen := ""
	if r.Advertise != "" {
		listen = r.Advertise + ":2377"
	}
	if err := r.c.SwarmJoin(ctx, addr, token, r.Advertise, listen); err != nil {
		return "", err
	}
	info, err := r.c.Info(ctx)
	if err != nil {
		return "", err
	}
	return info.Swarm.NodeID, nil
}

func (r *Runtime) labels(job, task string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := map[string]string{api.LabelManaged: "1", api.LabelJob: job, api.LabelTask: task, api.LabelNode: r.node}
	if r.cluster != "" {
		l[api.LabelCluster] = r.cluster
	}
	return l
}

// taskLabels are the labels of a task's container, run here or moved in:
// whose it is (cluster, node, job, task), its attempt and its cores, so
// that a restarted worker can adopt it.
func (r *Runtime) taskLabels(rt api.RunTask) map[string]string {
	l := r.labels(rt.Job, rt.Task.ContainerName)
	l[api.LabelAttempt], l[api.LabelCores] = strconv.Itoa(rt.Attempt), strconv.Itoa(rt.Task.ReqCores)
	if rt.Cluster != "" {
		l[api.LabelCluster] = rt.Cluster
	}
	return l
}

// Spec turns a task into a container spec.
func Spec(rt api.RunTask, labels map[string]string, stop time.Duration) (RunSpec, error) {
	t := rt.Task
	cmd, err := api.SplitCommand(t.Command)
	if err != nil {
		return RunSpec{}, fmt.Errorf("command: %w", err)
	}
	s := RunSpec{Name: t.ContainerName, Image: t.Image, Cmd: cmd, Env: t.Environment, CpusetCpus: t.CpusetCpus,
		Network: rt.Network, Labels: labels, StopTimeout: max(1, int(stop.Seconds()))}
	if t.MemLimit != "" {
		if s.Memory, err = api.ParseMem(t.MemLimit); err != nil {
			return RunSpec{}, fmt.Errorf("mem_limit: %w", err)
		}
	}
	if len(t.Ports) > 0 {
		s.Ports = map[string]int{}
		for k, v := range t.Ports {
			spec, host, err := api.ParsePort(k, v)
			if err != nil {
				return RunSpec{}, fmt.Errorf("ports %s: %w", k, err)
			}
			s.Ports[spec] = host
		}
	}
	for src, v := range t.Volumes {
		s.Mounts = append(s.Mounts, Mount{Source: src, Target: v.Bind, ReadOnly: v.Mode == "ro"})
	}
	return s, nil
}

// Run creates and starts a task's container. A leftover container of the
// same task (from an earlier, interrupted attempt) is removed when its
// name is found taken.
func (r *Runtime) Run(ctx context.Context, rt api.RunTask) error {
	t0 := time.Now()
	spec, err := Spec(rt, r.taskLabels(rt), r.StopTimeout)
	if err != nil {
		return err
	}
	if err := r.createTaskVolumes(ctx, rt); err != nil {
		return err
	}
	if err := r.localNetwork(ctx, rt, &spec, false); err != nil {
		return err
	}
	id, err := r.c.Create(ctx, spec)
	if errors.Is(err, ErrConflict) {
		// The name is taken: by a leftover container of this task (an
		// earlier, interrupted attempt), which is removed, or by another
		// container, which is not. Looked for only now, so that the
		// common case costs one call to the engine.
		if old, ierr := r.c.Inspect(ctx, spec.Name); ierr == nil && old.Labels[api.LabelManaged] == "1" && old.Labels[api.LabelTask] == spec.Name {
			_ = r.c.Remove(ctx, old.ID, true)
			id, err = r.c.Create(ctx, spec)
		}
	}
	if err != nil && rt.NetworkDriver == api.DriverBridge && !errors.Is(err, ErrImageNotFound) && (!r.pooled(rt) || errors.Is(err, ErrNotFound)) {
		// The job's last container here may have ended and taken the
		// network with it between the two calls (or a pooled network was
		// removed behind the worker's back): make it again, once.
		if err := r.localNetwork(ctx, rt, &spec, true); err != nil {
			return err
		}
		id, err = r.c.Create(ctx, spec)
	}
	if errors.Is(err, ErrImageNotFound) {
		if !r.Pull {
			return fmt.Errorf("image %s not found on this worker (pulling is off): %w", spec.Image, err)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		perr := r.c.Pull(pctx, spec.Image)
		cancel()
		if perr != nil {
			return fmt.Errorf("image %s not found on this worker, and pulling it failed: %w", spec.Image, perr)
		}
		id, err = r.c.Create(ctx, spec)
	}
	if err != nil {
		r.releaseNetwork(ctx, spec.Name)
		return err
	}
	t1 := time.Now()
	err = r.c.Start(ctx, id)
	if err != nil && spec.Labels[api.LabelSandbox] != "" && ctx.Err() == nil {
		// The sandbox is gone or broken (killed behind the worker's
		// back): the task runs on its network as any other.
		r.Log.Warn("starting a task in its sandbox failed; starting it on its network", "task_id", spec.Name, "err", err)
		_ = r.c.Remove(context.WithoutCancel(ctx), id, true)
		spec.Network = r.leaveSandbox(ctx, spec.Name)
		delete(spec.Labels, api.LabelSandbox)
		if id, err = r.c.Create(ctx, spec); err == nil {
			err = r.c.Start(ctx, id)
		}
	}
	if err != nil {
		if id != "" {
			_ = r.c.Remove(context.WithoutCancel(ctx), id, true)
		}
		r.releaseNetwork(ctx, spec.Name)
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	r.Log.Debug("task container started", "task_id", spec.Name, "network", spec.Network,
		"create_ms", t1.Sub(t0).Milliseconds(), "start_ms", time.Since(t1).Milliseconds())
	return nil
}

// Held lists the tasks of cluster whose containers run on this host, so
// that a worker restarted while they ran adopts them instead of losing
// them (another RSwarm's on the same engine are not its).
func (r *Runtime) Held(ctx context.Context, cluster string) ([]api.HeldTask, error) {
	if cluster == "" {
		return nil, nil
	}
	cs, err := r.c.Containers(ctx, map[string]string{api.LabelManaged: "1", api.LabelCluster: cluster}, false)
	if err != nil {
		return nil, err
	}
	var out []api.HeldTask
	for _, c := range cs {
		if !c.Running || !r.mine(c.Labels) || c.Labels[api.LabelTask] == "" {
			continue
		}
		attempt, _ := strconv.Atoi(c.Labels[api.LabelAttempt])
		cores, _ := strconv.Atoi(c.Labels[api.LabelCores])
		out = append(out, api.HeldTask{Job: c.Labels[api.LabelJob], Task: c.Labels[api.LabelTask], Attempt: attempt, Cores: cores})
	}
	return out, nil
}

// localNetwork gives the task its job's local bridge network on this
// engine when the job runs on one (rt.NetworkDriver "bridge") and marks the
// container with it, so that the network goes with the job's last
// container here: a pooled one (pool.go), or one made under the job's
// network name. A network this runtime made already is not asked for again
// unless fresh.
func (r *Runtime) localNetwork(ctx context.Context, rt api.RunTask, spec *RunSpec, fresh bool) error {
	if rt.NetworkDriver != api.DriverBridge || rt.Network == "" {
		return nil
	}
	if r.pooled(rt) {
		alone := rt.Alone && len(rt.Task.Ports) == 0 && r.sandboxes()
		n, box, err := r.claimNetwork(ctx, rt.Job, spec.Name, fresh, alone)
		if err != nil {
			return fmt.Errorf("local network of job %s: %w", rt.Job, err)
		}
		spec.Network = n
		spec.Labels[api.LabelLocalNetwork] = n
		if box != "" {
			spec.Network = "container:" + box
			spec.Labels[api.LabelSandbox] = box
		}
		return nil
	}
	spec.Labels[api.LabelLocalNetwork] = rt.Network
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if r.nets[rt.Network] && !fresh {
		return nil
	}
	labels := map[string]string{api.LabelManaged: "1", api.LabelJob: rt.Job}
	if c := r.taskLabels(rt)[api.LabelCluster]; c != "" {
		labels[api.LabelCluster] = c // so that its cluster's globalmanager prunes it, and no other
	}
	if _, err := r.c.CreateLocalNetwork(ctx, rt.Network, rt.NetworkSubnet, labels); err != nil {
		return fmt.Errorf("local network %s: %w", rt.Network, err)
	}
	if r.nets == nil {
		r.nets = map[string]bool{}
	}
	r.nets[rt.Network] = true
	return nil
}

// dropLocalNetwork removes a job's local network once its last container
// here is gone; while others are attached the engine refuses, which is the
// answer.
func (r *Runtime) dropLocalNetwork(ctx context.Context, name, job string) {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if r.pool.holds(name) {
		return // a pooled network: its claims say when it is free
	}
	err := r.c.RemoveNetwork(ctx, name)
	switch {
	case err == nil || errors.Is(err, ErrNotFound):
		delete(r.nets, name)
	case errors.Is(err, ErrNetworkInUse):
	default:
		r.Log.Warn("removing a job's local network", "network", name, "job_id", job, "err", err)
	}
}

// Stop stops a task's container, killing it after grace; its end is
// reported through Watch.
func (r *Runtime) Stop(ctx context.Context, task string, grace time.Duration) error {
	err := r.c.Stop(ctx, task, grace)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Checkpoint saves a task's container with CRIU under name, in the
// engine's default checkpoint directory.
func (r *Runtime) Checkpoint(ctx context.Context, task, name string, leaveRunning bool) error {
	return r.c.Checkpoint(ctx, task, name, "", leaveRunning)
}

// Update changes a running task's cores and memory limit in place.
func (r *Runtime) Update(ctx context.Context, task, cpuset string, mem int64) error {
	return r.c.Update(ctx, task, cpuset, mem)
}

// Leave takes this engine out of the swarm.
func (r *Runtime) Leave(ctx context.Context) error { return r.c.SwarmLeave(ctx, true) }

// Logs returns the last tail lines of a task's output.
func (r *Runtime) Logs(ctx context.Context, task string, tail int) ([]string, error) {
	return r.c.Logs(ctx, task, tail)
}

// Watch reports the end of every RSwarm container on this engine until ctx
// ends: it inspects the exit code, keeps the last log lines and removes the
// container. Containers that ended while nobody watched (at start, or
// while the event stream was broken) are reported too.
func (r *Runtime) Watch(ctx context.Context) <-chan api.TaskStatus {
	out := make(chan api.TaskStatus, 64)
	go func() {
		defer close(out)
		if r.WarmNetworks > 0 {
			pctx, stop := context.WithCancel(ctx)
			var pool sync.WaitGroup
			pool.Add(1)
			go func() { defer pool.Done(); r.keepWarm(pctx) }()
			defer func() { stop(); pool.Wait() }()
		}
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			sctx, cancel := context.WithCancel(ctx)
			events, errs := r.c.Events(sctx, map[string]string{api.LabelManaged: "1"})
			r.sweep(ctx, out)
			err := r.consume(sctx, events, errs, out)
			cancel()
			if ctx.Err() != nil {
				return
			}
			r.Log.Warn("docker event stream broke; reconnecting", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	return out
}

func (r *Runtime) consume(ctx context.Context, events <-chan Event, errs <-chan error, out chan<- api.TaskStatus) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case ev, ok := <-events:
			if !ok {
				return errors.New("event stream closed")
			}
			if ev.Action != "die" || !r.mine(ev.Labels) {
				continue
			}
			if st, ok := r.ended(ctx, ev.ID, ev.Labels); ok {
				select {
				case out <- st:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
}

func (r *Runtime) mine(labels map[string]string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return labels[api.LabelManaged] == "1" && (r.node == "" || labels[api.LabelNode] == r.node) &&
		(r.cluster == "" || labels[api.LabelCluster] == r.cluster)
}

// SetCluster scopes the runtime to one control plane's containers: one
// Docker Engine can serve the workers of several RSwarm clusters (two
// experiments on one host, or tests side by side), and each must watch,
// report and remove only its own.
func (r *Runtime) SetCluster(cluster string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cluster = cluster
}

// sweep reports and removes RSwarm containers that have exited.
func (r *Runtime) sweep(ctx context.Context, out chan<- api.TaskStatus) {
	cs, err := r.c.Containers(ctx, map[string]string{api.LabelManaged: "1"}, true)
	if err != nil {
		return
	}
	for _, c := range cs {
		if c.Running || !r.mine(c.Labels) || c.Status == "created" {
			continue
		}
		if st, ok := r.ended(ctx, c.ID, c.Labels); ok {
			select {
			case out <- st:
			case <-ctx.Done():
				return
			}
		}
	}
}

// ended builds the final status of an exited container and removes it.
func (r *Runtime) ended(ctx context.Context, id string, labels map[string]string) (api.TaskStatus, bool) {
	r.mu.Lock()
	held := r.held[labels[api.LabelTask]]
	r.mu.Unlock()
	if held {
		return api.TaskStatus{}, false
	}
	c, err := r.c.Inspect(ctx, id)
	if err != nil {
		return api.TaskStatus{}, false
	}
	if c.Running {
		return api.TaskStatus{}, false
	}
	st := api.TaskStatus{Job: labels[api.LabelJob], Task: labels[api.LabelTask], State: api.Down, Time: float64(time.Now().UnixNano()) / 1e9}
	if !c.FinishedAt.IsZero() {
		st.Time = float64(c.FinishedAt.UnixNano()) / 1e9
	}
	code := c.ExitCode
	st.ExitCode = &code
	switch {
	case c.OOMKilled:
		st.State, st.Error = api.Failed, fmt.Sprintf("killed: out of memory (memory limit %d bytes)", c.Memory)
	case code != 0:
		st.State, st.Error = api.Failed, fmt.Sprintf("exited with code %d", code)
		if c.Error != "" {
			st.Error += ": " + c.Error
		}
	}
	if lines, err := r.c.Logs(ctx, id, r.LogLines); err == nil {
		st.Logs = lines
	}
	if err := r.c.Remove(ctx, id, true); err != nil && !errors.Is(err, ErrNotFound) {
		r.Log.Warn("removing an ended container", "task_id", st.Task, "err", err)
	} else {
		r.removeTaskVolumes(ctx, st.Task)
		if n := labels[api.LabelLocalNetwork]; n != "" && !r.releaseNetwork(ctx, st.Task) {
			r.dropLocalNetwork(ctx, n, st.Job)
		}
	}
	return st, true
}

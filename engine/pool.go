package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/rswarm/rswarm/api"
)

// The pool of local networks. Making a bridge network costs the engine
// 100-200 ms, more than starting a container on it, and a job on one
// worker needs one of its own (so that its tasks reach each other by
// name, and no other job's). A runtime with WarmNetworks > 0 therefore
// keeps that many bridge networks made ahead, labelled rswarm.pool (its
// node) and rswarm.cluster, and hands each to one job at a time:
//
//   - a job's first task here claims an idle network (or, when none is
//     idle, one made there and then); the job's other tasks here join it;
//     a claim that leaves none idle wakes the filler, which makes
//     WarmNetworks in the background;
//   - the job's last container here gone, the network goes back to the
//     pool if the pool has room and the engine shows no container on it,
//     and is removed otherwise: two jobs never share one, and no job
//     finds another's containers on it;
//   - the first claim, or the filler's first pass, reconciles with the
//     engine: the pool's networks that containers of this worker use are
//     held by their jobs again (a restarted worker adopts its tasks), the
//     others are idle (or removed beyond WarmNetworks);
//   - when the runtime stops watching, and again when the worker has
//     stopped its tasks (Release), every network of its pool that no
//     running container uses is removed; one still in use (a worker told
//     to leave its containers running) is found again by the next start.
//
// Only jobs with the generated network name and no subnet of their own
// use the pool: a job that names its network or its subnet gets a bridge
// of that name (and subnet), made with its first task as before.
//
// Sandboxes. On this kind of machine most of a container's start is the
// engine making its network namespace: a container started in the
// namespace of one already running (network mode container:<id>) starts
// in about 40 % of the time of one on the default bridge (README, "Submit
// to Running"). With SandboxImage set, the filler therefore also starts on
// each idle network a sandbox: a container of that image that only
// sleeps, labelled rswarm.sandbox (its network), rswarm.pool and
// rswarm.cluster, never rswarm.managed (it is not a task). A task that is
// its job's only one (RunTask.Alone) and publishes no port claims an idle
// network with its sandbox, and its container runs in the sandbox's
// network namespace: on the job's own bridge, reachable as before, with
// the sandbox's hostname. When the task's container is gone its sandbox
// is removed (never reused: the task could have changed the namespace's
// files, such as /etc/hosts), and the network comes back to the pool,
// where the filler starts a new sandbox on it. A job of several tasks that
// claims a network with a sandbox has the sandbox removed first (its
// tasks reach each other by name, which needs each on the network
// itself). A sandbox that cannot be made (the image is missing, or has no
// sleep) turns sandboxes off for the runtime, said once in the log; a
// task whose sandbox is gone runs on its network as any other.
//
// A task moved here from another worker runs on a pooled network without
// a sandbox (its RunTask is not Alone), except one moved live out of a
// sandbox: runc hands CRIU a network namespace given by path as an
// external one, which the checkpoint leaves out and which only a
// namespace handed to the restore can stand for. Such a task is restored
// in a sandbox here too: an idle network's, or one started for it on the
// network it claims (boxTask; see PrepareIn).

// poolPrefix starts the names of pooled networks, sandboxPrefix those of
// sandboxes.
const (
	poolPrefix    = "rsnetp_"
	sandboxPrefix = "rsbox_"
)

// sandboxMemory is a sandbox's memory limit: it runs only sleep.
const sandboxMemory = 8 << 20

// netPool is the bookkeeping of the pool, guarded by Runtime.netMu.
type netPool struct {
	ready  bool                       // reconciled with the engine since the pool started
	free   []string                   // idle networks, by name
	byJob  map[string]string          // job -> the network it holds
	byTask map[string]string          // task -> the network its container is on
	users  map[string]map[string]bool // network -> the tasks on it
	making int                        // networks the filler is making
	wake   chan struct{}              // capacity 1: a network was claimed

	boxes   map[string]string // idle network -> the sandbox started on it
	taskBox map[string]string // task -> the sandbox its container runs in
	boxing  map[string]bool   // idle networks the filler is starting a sandbox on
	boxOff  bool              // a sandbox could not be made: none is tried again
}

func (p *netPool) init() {
	if p.byJob == nil {
		p.byJob, p.byTask, p.users = map[string]string{}, map[string]string{}, map[string]map[string]bool{}
		p.boxes, p.taskBox, p.boxing = map[string]string{}, map[string]string{}, map[string]bool{}
	}
	if p.wake == nil {
		p.wake = make(chan struct{}, 1)
	}
}

// holds tells whether the pool knows network n (idle or held).
func (p *netPool) holds(n string) bool {
	if len(p.users[n]) > 0 {
		return true
	}
	for _, f := range p.free {
		if f == n {
			return true
		}
	}
	return false
}

// pooled tells whether a task's local network comes from the pool: its
// job runs on a local bridge under the generated name with no subnet of
// its own, and the runtime keeps a pool and knows its cluster.
func (r *Runtime) pooled(rt api.RunTask) bool {
	if r.WarmNetworks <= 0 || rt.NetworkDriver != api.DriverBridge || rt.NetworkSubnet != "" || rt.Network != api.DefaultNetworkName(rt.Job) {
		return false
	}
	return r.poolLabels() != nil
}

// poolLabels are the labels of this runtime's pooled networks, or nil
// before it knows its cluster.
func (r *Runtime) poolLabels() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cluster == "" {
		return nil
	}
	node := r.node
	if node == "" {
		node = "-"
	}
	return map[string]string{api.LabelPool: node, api.LabelCluster: r.cluster}
}

// claimNetwork gives task, of job, its job's pooled network: the one the
// job holds here already, else an idle one, else one made now. broken
// first forgets the network the job held (the engine no longer has it).
// alone (the task is its job's only one, and publishes no port) takes an
// idle network with a sandbox when there is one and returns the sandbox
// too, for the task to run in; otherwise box is "".
func (r *Runtime) claimNetwork(ctx context.Context, job, task string, broken, alone bool) (n, box string, err error) {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	p := &r.pool
	if err := r.reconcileLocked(ctx); err != nil {
		return "", "", err
	}
	if n := p.byJob[job]; broken && n != "" {
		delete(p.byJob, job)
		for t := range p.users[n] {
			delete(p.byTask, t)
			if b := p.taskBox[t]; b != "" {
				delete(p.taskBox, t)
				r.removeSandbox(ctx, b)
			}
		}
		delete(p.users, n)
	}
	n = p.byTask[task]
	if n != "" {
		return n, p.taskBox[task], nil
	}
	n = p.byJob[job]
	if n == "" {
		if k := p.pick(alone); k >= 0 {
			n = p.free[k]
			p.free = append(p.free[:k], p.free[k+1:]...)
			box = p.boxes[n]
			delete(p.boxes, n)
		} else {
			made, err := r.makePoolNetwork(ctx)
			if err != nil {
				return "", "", err
			}
			n = made
		}
		p.byJob[job] = n
		if box != "" && !alone {
			r.removeSandbox(ctx, box)
			box = ""
		}
	}
	p.byTask[task] = n
	if box != "" {
		p.taskBox[task] = box
	}
	if p.users[n] == nil {
		p.users[n] = map[string]bool{}
	}
	p.users[n][task] = true
	if len(p.free) == 0 {
		// Run dry: top the pool up in the background. Not sooner: a job
		// gives its network back when it ends, and a pool refilled at
		// every claim would have to remove one at every end.
		p.wakeFiller()
	}
	return n, box, nil
}

// pick returns the index in free of the idle network to claim, or -1 when
// none is idle: the last one with a sandbox for a task that can run in
// one (alone), else the last one without, else the last one.
func (p *netPool) pick(alone bool) int {
	for k := len(p.free) - 1; k >= 0; k-- {
		if (p.boxes[p.free[k]] != "") == alone {
			return k
		}
	}
	return len(p.free) - 1
}

func (p *netPool) wakeFiller() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// leaveSandbox takes task out of its sandbox, which is removed: the task
// runs on its job's network itself (the sandbox was gone or broken when
// its container started). It returns the task's network.
func (r *Runtime) leaveSandbox(ctx context.Context, task string) string {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	p := &r.pool
	if b := p.taskBox[task]; b != "" {
		delete(p.taskBox, task)
		r.removeSandbox(context.WithoutCancel(ctx), b)
	}
	return p.byTask[task]
}

// releaseNetwork takes task off its pooled network; with the job's last
// task there gone, the network goes back to the pool. It reports whether
// task was on a pooled network.
func (r *Runtime) releaseNetwork(ctx context.Context, task string) bool {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	p := &r.pool
	n, ok := p.byTask[task]
	if !ok {
		return false
	}
	delete(p.byTask, task)
	delete(p.users[n], task)
	ctx = context.WithoutCancel(ctx)
	if b := p.taskBox[task]; b != "" {
		// Before the network's count below: the sandbox is on it.
		delete(p.taskBox, task)
		r.removeSandbox(ctx, b)
	}
	if len(p.users[n]) > 0 {
		return true
	}
	delete(p.users, n)
	for j, jn := range p.byJob {
		if jn == n {
			delete(p.byJob, j)
		}
	}
	if p.ready && len(p.free) < r.WarmNetworks {
		in, err := r.c.inspectNetwork(ctx, n)
		if errors.Is(err, ErrNotFound) {
			return true
		}
		if err == nil && in.Containers == 0 {
			p.free = append(p.free, n)
			if r.sandboxes() {
				p.wakeFiller() // to start a sandbox on it
			}
			return true
		}
	}
	if err := r.c.RemoveNetwork(ctx, n); err != nil && !errors.Is(err, ErrNotFound) {
		r.Log.Warn("removing a pooled local network", "network", n, "err", err)
	}
	return true
}

// reconcileLocked, once per start of the pool, reads the pool's networks
// and sandboxes from the engine: the networks this worker's containers
// are on are held by their jobs, the sandboxes they run in by them; the
// other networks are idle (or removed beyond WarmNetworks), each keeping
// one running sandbox of its own; other sandboxes are removed.
func (r *Runtime) reconcileLocked(ctx context.Context) error {
	p := &r.pool
	p.init()
	if p.ready {
		return nil
	}
	labels := r.poolLabels()
	if labels == nil {
		return errors.New("engine: pooled networks: the worker's cluster is not known yet")
	}
	nets, err := r.c.Networks(ctx, labels)
	if err != nil {
		return fmt.Errorf("engine: pooled networks: %w", err)
	}
	cs, err := r.c.Containers(ctx, map[string]string{api.LabelManaged: "1", api.LabelCluster: labels[api.LabelCluster]}, true)
	if err != nil {
		return fmt.Errorf("engine: pooled networks: %w", err)
	}
	boxes, err := r.c.Containers(ctx, sandboxLabels(labels, ""), true)
	if err != nil {
		return fmt.Errorf("engine: sandboxes: %w", err)
	}
	pooled := map[string]bool{}
	for _, n := range nets {
		pooled[n.Name] = true
	}
	inUse := map[string]bool{} // sandboxes tasks run in
	for _, c := range cs {
		n, task := c.Labels[api.LabelLocalNetwork], c.Labels[api.LabelTask]
		if !pooled[n] || task == "" || !r.mine(c.Labels) {
			continue
		}
		p.byTask[task] = n
		p.byJob[c.Labels[api.LabelJob]] = n
		if p.users[n] == nil {
			p.users[n] = map[string]bool{}
		}
		p.users[n][task] = true
		if b := c.Labels[api.LabelSandbox]; b != "" {
			p.taskBox[task] = b
			inUse[b] = true
		}
	}
	idleBox := map[string]string{} // idle network -> a running sandbox on it
	for _, b := range boxes {
		n := b.Labels[api.LabelSandbox]
		switch {
		case inUse[b.Name]:
		case b.Running && pooled[n] && len(p.users[n]) == 0 && idleBox[n] == "":
			idleBox[n] = b.Name
		default:
			r.removeSandbox(ctx, b.Name)
		}
	}
	for _, n := range nets {
		others := n.Containers
		if idleBox[n.Name] != "" {
			others--
		}
		switch {
		case len(p.users[n.Name]) > 0:
		case others == 0 && len(p.free) < r.WarmNetworks:
			p.free = append(p.free, n.Name)
			if b := idleBox[n.Name]; b != "" {
				p.boxes[n.Name] = b
			}
		default:
			if b := idleBox[n.Name]; b != "" {
				r.removeSandbox(ctx, b)
			}
			if err := r.c.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, ErrNotFound) {
				r.Log.Warn("removing a pooled local network", "network", n.Name, "err", err)
			}
		}
	}
	p.ready = true
	return nil
}

// makePoolNetwork makes one bridge network for the pool.
func (r *Runtime) makePoolNetwork(ctx context.Context) (string, error) {
	labels := r.poolLabels()
	if labels == nil {
		return "", errors.New("engine: pooled networks: the worker's cluster is not known yet")
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	name := poolPrefix + hex.EncodeToString(b[:])
	if _, err := r.c.CreateLocalNetwork(ctx, name, "", labels); err != nil {
		return "", fmt.Errorf("engine: pooled local network: %w", err)
	}
	return name, nil
}

// keepWarm makes WarmNetworks networks at the start and whenever the pool
// runs dry (a claim wakes it) until ctx ends, then removes the pool's
// networks that no container uses.
func (r *Runtime) keepWarm(ctx context.Context) {
	r.netMu.Lock()
	r.pool.init()
	wake := r.pool.wake
	r.netMu.Unlock()
	defer r.closePool(ctx)
	for {
		r.fillPool(ctx)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

// fillPool makes networks until WarmNetworks are idle or being made, and
// with sandboxes on starts one on each idle network that has none. It
// stops at the first failure (the next claim wakes it again) and before
// the cluster is known.
func (r *Runtime) fillPool(ctx context.Context) {
	for ctx.Err() == nil && r.poolLabels() != nil {
		r.netMu.Lock()
		p := &r.pool
		if err := r.reconcileLocked(ctx); err != nil {
			r.netMu.Unlock()
			r.Log.Warn("reading the pool of local networks", "err", err)
			return
		}
		if len(p.free)+p.making < r.WarmNetworks {
			p.making++
			r.netMu.Unlock()
			n, err := r.makePoolNetwork(ctx)
			r.netMu.Lock()
			p.making--
			if err == nil {
				p.free = append(p.free, n)
			}
			r.netMu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					r.Log.Warn("making a local network ahead", "err", err)
				}
				return
			}
			continue
		}
		n := ""
		if r.sandboxes() && !p.boxOff {
			for _, f := range p.free {
				if p.boxes[f] == "" && !p.boxing[f] {
					n = f
					break
				}
			}
		}
		if n == "" {
			r.netMu.Unlock()
			return
		}
		p.boxing[n] = true
		r.netMu.Unlock()
		box, err := r.makeSandbox(ctx, n)
		r.netMu.Lock()
		delete(p.boxing, n)
		switch {
		case err != nil && ctx.Err() == nil:
			p.boxOff = true
			r.Log.Warn("sandboxes turned off: tasks start on their networks as any other", "image", r.SandboxImage, "err", err)
		case err != nil:
		case slices.Contains(p.free, n) && p.boxes[n] == "":
			p.boxes[n] = box
			box = ""
		}
		if box != "" {
			// Claimed meanwhile, by a job that did not wait for it.
			r.removeSandbox(context.WithoutCancel(ctx), box)
		}
		r.netMu.Unlock()
		if err != nil {
			return
		}
	}
}

// sandboxes tells whether the runtime starts sandboxes on its idle networks.
func (r *Runtime) sandboxes() bool { return r.SandboxImage != "" && r.WarmNetworks > 0 }

// sandboxLabels are the labels of the pool's sandboxes (poolLabels plus
// LabelSandbox, its network; "" matches any).
func sandboxLabels(pool map[string]string, network string) map[string]string {
	l := maps.Clone(pool)
	l[api.LabelSandbox] = network
	return l
}

// makeSandbox starts a sandbox on idle network n and returns its name.
func (r *Runtime) makeSandbox(ctx context.Context, n string) (string, error) {
	labels := r.poolLabels()
	if labels == nil {
		return "", errors.New("engine: sandbox: the worker's cluster is not known yet")
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	name := sandboxPrefix + hex.EncodeToString(b[:])
	id, err := r.c.Create(ctx, RunSpec{Name: name, Image: r.SandboxImage, Cmd: []string{"sleep", "2147483647"},
		Memory: sandboxMemory, Network: n, Labels: sandboxLabels(labels, n), StopTimeout: 1})
	if err != nil {
		return "", fmt.Errorf("engine: sandbox on %s: %w", n, err)
	}
	if err := r.c.Start(ctx, id); err != nil {
		_ = r.c.Remove(context.WithoutCancel(ctx), id, true)
		return "", fmt.Errorf("engine: sandbox on %s: %w", n, err)
	}
	return name, nil
}

// boxTask starts a sandbox for task on its pooled network, for a task that
// must run in one (a checkpoint taken in a sandbox: see PrepareIn), and
// returns it; it goes as the sandbox of a task that claimed one does.
func (r *Runtime) boxTask(ctx context.Context, task string) (string, error) {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	p := &r.pool
	if b := p.taskBox[task]; b != "" {
		return b, nil
	}
	n := p.byTask[task]
	if n == "" {
		return "", fmt.Errorf("engine: sandbox for %s: it has no pooled network here", task)
	}
	box, err := r.makeSandbox(ctx, n)
	if err != nil {
		return "", err
	}
	p.taskBox[task] = box
	return box, nil
}

// removeSandbox removes a sandbox (killing its sleep). A conflict is
// another removal of it under way (a task's end and the worker's stop can
// meet), which is the answer.
func (r *Runtime) removeSandbox(ctx context.Context, name string) {
	if err := r.c.Remove(ctx, name, true); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
		r.Log.Warn("removing a sandbox", "sandbox", name, "err", err)
	}
}

// Release removes the networks of the runtime's pool that no running
// container uses, as its worker stops: the worker calls it once it has
// stopped its tasks (the watch ends with the worker's context, before
// that, and removes only the idle ones).
func (r *Runtime) Release(ctx context.Context) {
	if r.WarmNetworks > 0 {
		r.closePool(ctx)
	}
}

// closePool forgets the pool (the next start reconciles) and removes its
// sandboxes that no task runs in and its networks that no running
// container uses; the engine refuses the others.
func (r *Runtime) closePool(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	r.netMu.Lock()
	defer r.netMu.Unlock()
	inUse := map[string]bool{}
	for _, b := range r.pool.taskBox {
		inUse[b] = true
	}
	r.pool = netPool{wake: r.pool.wake}
	labels := r.poolLabels()
	if labels == nil {
		return
	}
	boxes, err := r.c.Containers(ctx, sandboxLabels(labels, ""), true)
	if err != nil {
		r.Log.Warn("listing the sandboxes to remove them", "err", err)
		return
	}
	if len(boxes) > 0 {
		// A task's container names the sandbox it runs in, also for a
		// pool that has not reconciled since the worker restarted.
		cs, err := r.c.Containers(ctx, map[string]string{api.LabelManaged: "1", api.LabelCluster: labels[api.LabelCluster]}, false)
		if err != nil {
			r.Log.Warn("listing the tasks to remove the sandboxes", "err", err)
			return
		}
		for _, c := range cs {
			if b := c.Labels[api.LabelSandbox]; b != "" {
				inUse[b] = true
			}
		}
	}
	for _, b := range boxes {
		if !inUse[b.Name] {
			r.removeSandbox(ctx, b.Name)
		}
	}
	nets, err := r.c.Networks(ctx, labels)
	if err != nil {
		r.Log.Warn("listing the pool of local networks to remove it", "err", err)
		return
	}
	for _, n := range nets {
		if n.Containers > 0 {
			continue
		}
		if err := r.c.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, ErrNotFound) {
			r.Log.Warn("removing a pooled local network", "network", n.Name, "err", err)
		}
	}
}

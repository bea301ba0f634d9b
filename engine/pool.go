package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

// poolPrefix starts the names of pooled networks.
const poolPrefix = "rsnetp_"

// netPool is the bookkeeping of the pool, guarded by Runtime.netMu.
type netPool struct {
	ready  bool                       // reconciled with the engine since the pool started
	free   []string                   // idle networks, by name
	byJob  map[string]string          // job -> the network it holds
	byTask map[string]string          // task -> the network its container is on
	users  map[string]map[string]bool // network -> the tasks on it
	making int                        // networks the filler is making
	wake   chan struct{}              // capacity 1: a network was claimed
}

func (p *netPool) init() {
	if p.byJob == nil {
		p.byJob, p.byTask, p.users = map[string]string{}, map[string]string{}, map[string]map[string]bool{}
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
func (r *Runtime) claimNetwork(ctx context.Context, job, task string, broken bool) (string, error) {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	p := &r.pool
	if err := r.reconcileLocked(ctx); err != nil {
		return "", err
	}
	if n := p.byJob[job]; broken && n != "" {
		delete(p.byJob, job)
		for t := range p.users[n] {
			delete(p.byTask, t)
		}
		delete(p.users, n)
	}
	n := p.byTask[task]
	if n == "" {
		n = p.byJob[job]
	}
	if n == "" {
		if k := len(p.free); k > 0 {
			n, p.free = p.free[k-1], p.free[:k-1]
		} else {
			made, err := r.makePoolNetwork(ctx)
			if err != nil {
				return "", err
			}
			n = made
		}
		p.byJob[job] = n
	}
	p.byTask[task] = n
	if p.users[n] == nil {
		p.users[n] = map[string]bool{}
	}
	p.users[n][task] = true
	if len(p.free) == 0 {
		// Run dry: top the pool up in the background. Not sooner: a job
		// gives its network back when it ends, and a pool refilled at
		// every claim would have to remove one at every end.
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return n, nil
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
	if len(p.users[n]) > 0 {
		return true
	}
	delete(p.users, n)
	for j, jn := range p.byJob {
		if jn == n {
			delete(p.byJob, j)
		}
	}
	ctx = context.WithoutCancel(ctx)
	if p.ready && len(p.free) < r.WarmNetworks {
		in, err := r.c.inspectNetwork(ctx, n)
		if errors.Is(err, ErrNotFound) {
			return true
		}
		if err == nil && in.Containers == 0 {
			p.free = append(p.free, n)
			return true
		}
	}
	if err := r.c.RemoveNetwork(ctx, n); err != nil && !errors.Is(err, ErrNotFound) {
		r.Log.Warn("removing a pooled local network", "network", n, "err", err)
	}
	return true
}

// reconcileLocked, once per start of the pool, reads the pool's networks
// from the engine: the ones this worker's containers are on are held by
// their jobs, the others idle, beyond WarmNetworks removed.
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
	pooled := map[string]bool{}
	for _, n := range nets {
		pooled[n.Name] = true
	}
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
	}
	for _, n := range nets {
		switch {
		case len(p.users[n.Name]) > 0:
		case n.Containers == 0 && len(p.free) < r.WarmNetworks:
			p.free = append(p.free, n.Name)
		default:
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

// fillPool makes networks until WarmNetworks are idle or being made. It
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
		if len(p.free)+p.making >= r.WarmNetworks {
			r.netMu.Unlock()
			return
		}
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
// networks that no running container uses; the engine refuses the others.
func (r *Runtime) closePool(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	r.netMu.Lock()
	defer r.netMu.Unlock()
	r.pool = netPool{wake: r.pool.wake}
	labels := r.poolLabels()
	if labels == nil {
		return
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

package placement

import "fmt"

// PickFree chooses n free cores on worker id for a task placed by hand (a
// move that names no cores): the lowest-numbered free ones, so that the
// same state always gives the same choice. When fewer than n are free it
// returns nil and how many are free. It changes nothing: the caller
// allocates the cores it was given.
func (c *Cluster) PickFree(id string, n int) (cores []int, free int, err error) {
	i, ok := c.byID[id]
	if !ok || c.workers[i].removed {
		return nil, 0, fmt.Errorf("%w: %s", ErrUnknownWorker, id)
	}
	if n < 0 {
		return nil, 0, fmt.Errorf("%w: %d cores asked", ErrInvalidAllocation, n)
	}
	w := &c.workers[i]
	if int(w.free) < n {
		return nil, int(w.free), nil
	}
	cores = make([]int, 0, n)
	for core := 0; core < int(w.cores) && len(cores) < n; core++ {
		if w.isFree(core) {
			cores = append(cores, core)
		}
	}
	return cores, int(w.free), nil
}

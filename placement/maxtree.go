package placement

import "math"

// maxtree is a max tree over worker index of free cores and free memory. It
// answers "the lowest index whose free cores >= k and free memory >= m" by
// descending only into subtrees whose maxima allow a fit. When cores and
// memory peak on different workers of a subtree the descent may back out of
// it, so the bound is O(log n) when one resource decides and grows only when
// memory and cores are short on different workers.
type maxtree struct {
	size  int // leaves; a power of two
	nodes []maxnode
}

// maxnode holds a subtree's maxima; node i has children 2i and 2i+1, and
// leaf j is node size+j.
type maxnode struct {
	free int32
	mem  int64
}

const (
	absentFree = -1            // leaf value of a worker that is down or removed
	absentMem  = math.MinInt64 // idem, for memory
)

// grow makes room for n leaves, keeping the current leaf values.
func (t *maxtree) grow(n int) {
	if n <= t.size {
		return
	}
	size := 64
	for size < n {
		size *= 2
	}
	nodes := make([]maxnode, 2*size)
	for i := range nodes {
		nodes[i] = maxnode{absentFree, absentMem}
	}
	if t.size > 0 {
		copy(nodes[size:size+t.size], t.nodes[t.size:])
	}
	for i := size - 1; i >= 1; i-- {
		nodes[i] = maxOf(nodes[2*i], nodes[2*i+1])
	}
	t.size, t.nodes = size, nodes
}

func maxOf(a, b maxnode) maxnode { return maxnode{max(a.free, b.free), max(a.mem, b.mem)} }

// set gives leaf i its values and updates the maxima above it.
func (t *maxtree) set(i int, free int32, mem int64) {
	p := t.size + i
	t.nodes[p] = maxnode{free, mem}
	for p > 1 {
		p >>= 1
		m := maxOf(t.nodes[2*p], t.nodes[2*p+1])
		if t.nodes[p] == m {
			return
		}
		t.nodes[p] = m
	}
}

// leaf returns leaf i's values.
func (t *maxtree) leaf(i int) (int32, int64) {
	n := t.nodes[t.size+i]
	return n.free, n.mem
}

// first returns the lowest leaf with free >= k and mem >= m, or -1.
func (t *maxtree) first(k int32, m int64) int {
	if t.size == 0 {
		return -1
	}
	return t.firstFrom(1, k, m)
}

func (t *maxtree) firstFrom(p int, k int32, m int64) int {
	for {
		if n := t.nodes[p]; n.free < k || n.mem < m {
			return -1
		}
		if p >= t.size {
			return p - t.size
		}
		l := 2 * p
		if n := t.nodes[l]; n.free >= k && n.mem >= m {
			if r := t.firstFrom(l, k, m); r >= 0 {
				return r
			}
		}
		p = l + 1
	}
}

// maxFree returns the largest free-core count of any present worker, or -1.
func (t *maxtree) maxFree() int {
	if t.size == 0 {
		return -1
	}
	return int(t.nodes[1].free)
}

// maxMem returns the most free memory of any present worker, or MinInt64.
func (t *maxtree) maxMem() int64 {
	if t.size == 0 {
		return absentMem
	}
	return t.nodes[1].mem
}

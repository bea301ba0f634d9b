package discovery

import "sort"

// Table is the pure heartbeat bookkeeping: which node was last heard from
// when. Time is passed in; nothing here reads a clock.
type Table struct {
	grace float64
	last  map[string]float64
	down  map[string]bool
}

// NewTable returns a table that declares a node expired after grace seconds of silence.
func NewTable(grace float64) *Table {
	return &Table{grace: grace, last: map[string]float64{}, down: map[string]bool{}}
}

// Observe records a heartbeat from node at now. It reports whether the node
// was unknown or expired before, that is whether it just came (back) up.
func (t *Table) Observe(node string, now float64) (up bool) {
	prev, known := t.last[node]
	if now < prev {
		now = prev
	}
	t.last[node] = now
	if !known || t.down[node] {
		delete(t.down, node)
		return true
	}
	return false
}

// Expired returns the nodes that went silent for longer than the grace
// period since the last call, in name order; each is reported once until
// it is observed again.
func (t *Table) Expired(now float64) []string {
	var out []string
	for n, at := range t.last {
		if !t.down[n] && now-at > t.grace {
			t.down[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Forget drops a node (it left the cluster).
func (t *Table) Forget(node string) {
	delete(t.last, node)
	delete(t.down, node)
}

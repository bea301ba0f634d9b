package discovery

import "sort"

// Table is the pure heartbeat bookkeeping: which node was last heard from
// when. Time is passed in; nothing here reads a clock.
//
// A node is judged by when its heartbeats were sent, not when they were
// read: a heartbeat that waited in a queue (discovery stalled, or busy)
// still shows the node alive at the time it was sent. Sent times are on
// the node's clock, so each is moved onto ours by the smallest difference
// seen between a heartbeat's arrival and its sending (the clock skew plus
// the shortest delay): skew cancels out, and a late reading cannot make a
// node look silent. And when the observer itself did not run for a while
// (Expired not called for longer than the stall bound), the silence is
// its own: every node gets a fresh grace from the moment it resumed,
// time for the heartbeats queued meanwhile to be read.
type Table struct {
	grace  float64
	stall  float64            // a gap between Expired calls longer than this is the observer's stall
	last   map[string]float64 // when the latest heartbeat was sent, on our clock
	offset map[string]float64 // smallest arrival - sending seen
	down   map[string]bool

	checked float64 // when Expired last ran
	resumed float64 // when the observer last resumed after a stall
}

// NewTable returns a table that declares a node expired after grace
// seconds of silence. It detects no stall of the observer (see WithStall).
func NewTable(grace float64) *Table {
	return &Table{grace: grace, last: map[string]float64{}, offset: map[string]float64{}, down: map[string]bool{}}
}

// WithStall makes the table treat a gap of more than stall seconds between
// two Expired calls as a stall of the observer, and returns it.
func (t *Table) WithStall(stall float64) *Table {
	t.stall = stall
	return t
}

// Observe records a heartbeat from node read at now (its sending time
// unknown). It reports whether the node was unknown or expired before,
// that is whether it just came (back) up.
func (t *Table) Observe(node string, now float64) (up bool) {
	return t.ObserveSent(node, now, 0)
}

// ObserveSent records a heartbeat from node read at now and sent at sent
// on the node's clock (0: unknown, taken as now).
func (t *Table) ObserveSent(node string, now, sent float64) (up bool) {
	if sent > 0 {
		d := now - sent
		if off, ok := t.offset[node]; !ok || d < off {
			t.offset[node] = d
		}
	}
	at := t.SentAt(node, now, sent)
	prev, known := t.last[node]
	t.last[node] = max(prev, at)
	if !known || t.down[node] {
		delete(t.down, node)
		return true
	}
	return false
}

// SentAt returns when a heartbeat from node, read at now and sent at sent
// on the node's clock (0: unknown), was sent, on the observer's clock: the
// sending time moved by the smallest delay seen from the node so far
// (clock offset and transit together), and never after now. A message that
// waited in a queue is as old as when it was sent; ObserveSent first.
func (t *Table) SentAt(node string, now, sent float64) float64 {
	off, ok := t.offset[node]
	if sent <= 0 || !ok {
		return now
	}
	return min(now, sent+off)
}

// Expired returns the nodes that went silent for longer than the grace
// period since the last call, in name order; each is reported once until
// it is observed again.
func (t *Table) Expired(now float64) []string {
	if t.stall > 0 && t.checked > 0 && now-t.checked > t.stall {
		t.resumed = now
	}
	t.checked = max(t.checked, now)
	var out []string
	for n, at := range t.last {
		if !t.down[n] && now-max(at, t.resumed) > t.grace {
			t.down[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Watching reports whether node is observed and not expired.
func (t *Table) Watching(node string) bool {
	_, ok := t.last[node]
	return ok && !t.down[node]
}

// Up returns the nodes that are not expired, in name order.
func (t *Table) Up() []string {
	var out []string
	for n := range t.last {
		if !t.down[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Forget drops a node (it left the cluster).
func (t *Table) Forget(node string) {
	delete(t.last, node)
	delete(t.offset, node)
	delete(t.down, node)
}

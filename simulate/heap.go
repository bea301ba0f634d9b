package simulate

// Event kinds.
const (
	evArrival uint8 = iota // the pending arrival enters the queue
	evRelease              // a task's cores go back (id: the task)
	evRound                // a round delayed by RoundInterval is due
)

// event is one entry of the heap: a value, so that the heap holds no
// pointer for the garbage collector to scan.
type event struct {
	t    float64 // virtual seconds from the start
	seq  uint64  // order of making: ties at one instant go first-made first
	id   int32
	kind uint8
}

func (a *event) before(b *event) bool {
	return a.t < b.t || (a.t == b.t && a.seq < b.seq)
}

// events is a 4-ary min-heap: half the depth of a binary heap, and the four
// children of a node share a cache line or two.
type events struct {
	h   []event
	seq uint64
}

func (q *events) len() int { return len(q.h) }

func (q *events) push(t float64, kind uint8, id int32) {
	q.seq++
	q.h = append(q.h, event{t: t, seq: q.seq, id: id, kind: kind})
	h := q.h
	i := len(h) - 1
	e := h[i]
	for i > 0 {
		p := (i - 1) / 4
		if !e.before(&h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = e
}

// peek returns the earliest event; the heap must not be empty.
func (q *events) peek() *event { return &q.h[0] }

func (q *events) pop() event {
	h := q.h
	top := h[0]
	n := len(h) - 1
	e := h[n]
	q.h = h[:n]
	h = q.h
	if n == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := min(c+4, n)
		for k := c + 1; k < end; k++ {
			if h[k].before(&h[m]) {
				m = k
			}
		}
		if !h[m].before(&e) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = e
	return top
}

package simulate

// Event kinds.
const (
	evArrival uint8 = iota // the pending arrival enters the queue
	evRelease              // a task's cores go back (id: its job, h: its handle)
	evRound                // a round delayed by RoundInterval is due
	evFailure              // a worker fails (id: the worker)
	evRepair               // a failed worker is back (id: the worker)
	evFree                 // without failures: a task's cores go back (h: its handle)
	evEnd                  // without failures: a job ends, after its tasks' evFree (id: the job)
)

// event is one entry of the heap: a value, so that the heap holds no
// pointer for the garbage collector to scan.
type event struct {
	t    float64 // virtual seconds from the start
	seq  uint64  // order of making: ties at one instant go first-made first
	id   int32
	h    int32 // evRelease: the task's placement.Handle
	kind uint8
}

func (a *event) before(b *event) bool {
	return a.t < b.t || (a.t == b.t && a.seq < b.seq)
}

// events is a 4-ary min-heap: half the depth of a binary heap, and the four
// children of a node share a cache line or two.
type events struct {
	h []event
}

func (q *events) len() int { return len(q.h) }

func (q *events) pushEvent(e event) {
	q.h = append(q.h, e)
	h := q.h
	i := len(h) - 1
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

// calendar is the event queue: a ring of buckets of Width virtual seconds,
// the current one a small heap. Releases are spread over minutes ahead; a
// single heap of millions of them missed the cache at every level, while a
// push here is an append to its bucket, and a pop works on one bucket's
// worth of events, which fit in the cache. Events beyond the ring wait in
// a heap of their own (far). Order is exactly the heap's: by time, then by
// order of making.
type calendar struct {
	width  float64
	ring   [][]event
	inRing int
	cur    int64 // the bucket of the current heap
	now    events
	far    events
	seq    uint64
	hint   int // the capacity a bucket starts with: about the last one's size
}

const calendarBuckets = 4096

func newCalendar(width float64) *calendar {
	return &calendar{width: width, ring: make([][]event, calendarBuckets)}
}

func (c *calendar) len() int { return c.now.len() + c.inRing + c.far.len() }

func (c *calendar) bucket(t float64) int64 { return int64(t / c.width) }

func (c *calendar) push(t float64, kind uint8, id int32) { c.pushHandle(t, kind, id, -1) }

// pushHandle is push with a handle; it returns the event's order of making.
func (c *calendar) pushHandle(t float64, kind uint8, id, h int32) uint64 {
	c.seq++
	e := event{t: t, seq: c.seq, id: id, h: h, kind: kind}
	switch b := c.bucket(t); {
	case b <= c.cur:
		c.now.pushEvent(e)
	case b < c.cur+calendarBuckets:
		k := b % calendarBuckets
		if c.ring[k] == nil {
			c.ring[k] = make([]event, 0, c.hint)
		}
		c.ring[k] = append(c.ring[k], e)
		c.inRing++
	default:
		c.far.pushEvent(e)
	}
	return c.seq
}

// fill makes the current heap hold the earliest events, if any.
func (c *calendar) fill() {
	for c.now.len() == 0 {
		if c.inRing == 0 {
			if c.far.len() == 0 {
				return
			}
			c.cur = c.bucket(c.far.peek().t) - 1 // jump over empty buckets
		}
		c.cur++
		k := c.cur % calendarBuckets
		if es := c.ring[k]; len(es) > 0 {
			c.inRing -= len(es)
			c.hint = len(es) + len(es)/8
			for _, e := range es {
				c.now.pushEvent(e)
			}
			c.ring[k] = es[:0:0] // let the bucket's array go: buckets fill one at a time
		}
		for c.far.len() > 0 && c.bucket(c.far.peek().t) <= c.cur {
			c.now.pushEvent(c.far.pop())
		}
	}
}

// peek returns the earliest event; the queue must not be empty.
func (c *calendar) peek() *event {
	c.fill()
	return c.now.peek()
}

func (c *calendar) pop() event {
	c.fill()
	return c.now.pop()
}

package store

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/rswarm/rswarm/api"
)

// jobCache remembers, for recently used jobs, the decoded form of one exact
// document text. Decoding a job's JSON was the largest single cost of a
// loaded system (every status, placement and deploy reads the job, changes
// it and writes it back); a deep copy costs a twentieth of it. A hit needs
// the very same text, so the cache is right whoever wrote the row (another
// process, a transaction rolled back after it was remembered): a stale
// entry only misses. It is bounded in entries and in bytes (the documents'
// text, which the decoded jobs roughly double): past either bound it
// forgets about half, and a document above an eighth of the byte bound is
// never remembered.
type jobCache struct {
	mu       sync.Mutex
	m        map[string]cachedJob
	max      int
	maxBytes int
	bytes    int // sum of the remembered documents' lengths
}

type cachedJob struct {
	doc string
	job *api.Job // never handed out: callers get copies
}

// jobCacheEntries bounds the cache: a few thousand live jobs, with room.
const jobCacheEntries = 16384

// jobCacheBytes bounds the documents the cache holds.
const jobCacheBytes = 64 << 20

func newJobCache(max, maxBytes int) *jobCache {
	return &jobCache{m: make(map[string]cachedJob), max: max, maxBytes: maxBytes}
}

// decode returns the job doc encodes, from the cache when name's entry has
// exactly this text, and remembers it.
func (c *jobCache) decode(name, doc string) (*api.Job, error) {
	j, hit, err := c.get(name, doc)
	if err == nil && !hit {
		c.put(name, doc, j.Clone())
	}
	return j, err
}

// lookup is decode without remembering what it decodes.
func (c *jobCache) lookup(name, doc string) (*api.Job, error) {
	j, _, err := c.get(name, doc)
	return j, err
}

func (c *jobCache) get(name, doc string) (j *api.Job, hit bool, err error) {
	c.mu.Lock()
	e, ok := c.m[name]
	c.mu.Unlock()
	if ok && e.doc == doc {
		return e.job.Clone(), true, nil
	}
	j = new(api.Job)
	if err := json.Unmarshal([]byte(doc), j); err != nil {
		return nil, false, fmt.Errorf("store: decode job: %w", err)
	}
	return j, false, nil
}

// put records that doc is the text of j, which the cache now owns.
func (c *jobCache) put(name, doc string, j *api.Job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[name]; ok {
		c.bytes -= len(old.doc)
		delete(c.m, name)
	}
	if len(doc) > c.maxBytes/8 {
		return
	}
	if len(c.m) >= c.max || c.bytes+len(doc) > c.maxBytes {
		n := 0
		for k, e := range c.m { // map order is random enough to spread the loss
			delete(c.m, k)
			c.bytes -= len(e.doc)
			if n++; n >= c.max/2 && c.bytes+len(doc) <= c.maxBytes/2 {
				break
			}
		}
	}
	c.m[name] = cachedJob{doc: doc, job: j}
	c.bytes += len(doc)
}

// forget drops a job (deleted).
func (c *jobCache) forget(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

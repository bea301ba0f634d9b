package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/rswarm/rswarm/api"
)

// DefaultMongoDatabase is the database OpenMongo uses when none is named: the original's.
const DefaultMongoDatabase = "RESTfulSwarmDB"

// Collection names. WorkersInfo and WorkersResourceInfo are the original's.
const (
	jobsCollection    = "jobs"
	workersCollection = "WorkersInfo"
	usageCollection   = "WorkersResourceInfo"
)

// Fields RSwarm adds to the original's documents. Every field starting with
// "_" is RSwarm's (or MongoDB's _id) and is dropped when a document is decoded.
const (
	revField   = "_rev"   // int64, incremented by every write: optimistic concurrency
	nodesField = "_nodes" // a job's distinct task nodes, for JobFilter.Node
	seqField   = "_seq"   // write order of jobs, for the change feed
)

// Mongo is the Store for control planes that span machines, in the
// original RESTfulSwarm's collections and document layout.
//
// Every document's _id is its record's key: a job's is its job_name, a
// worker's and a usage document's its hostname (the fields themselves stay,
// as the original has them). Every read, write and delete of one record
// therefore filters on _id alone, which is the one filter FerretDB v1's
// SQLite backend hands to SQLite (a string or ObjectID _id, and no other
// field: internal/backends/sqlite/collection.go); any other filter makes it
// decode every document of the collection into Go values, which cost it
// most of its time. (SQLite still reads every row for it, extracting _id
// from the JSON, since FerretDB's own index on _id is on another
// expression; but among 3,000 jobs a read by _id took 4-5 ms, a read by
// status 1.5-2 s.) Documents keyed otherwise, by
// RSwarm before or by the original, are moved under their key once, when
// OpenMongo first opens the database: see migrateKeys.
//
// Updates are optimistic: a document is read (or taken as this process
// last wrote it), changed and replaced only if its _rev is still the one
// read, else read again. Within one process,
// updates of the same record also queue on a lock, so goroutines do not
// spin on each other's conflicts. (The lock also keeps updates from one
// process safe on FerretDB v1, which does not apply a replace's filter
// atomically, and on which the _rev check is a read before the replace:
// see writeIfUnchanged. Across processes only a real MongoDB server is safe.)
type Mongo struct {
	client                *mongo.Client
	jobs, workers, usages *mongo.Collection

	// jobDocs and workerDocs start updates without a read: see replace.
	jobDocs, workerDocs *docCache

	// idOnly is set when the server pushes down a filter on _id alone but
	// not one on _id and _rev (FerretDB v1): see writeIfUnchanged.
	idOnly bool
	// migrated counts the documents OpenMongo moved under their key.
	migrated int

	locks [64]sync.Mutex

	seqMu     sync.Mutex // one sequence number at a time from this process
	counters  *mongo.Collection
	changes   *mongo.Collection
	mu        sync.Mutex         // guards what follows
	feed      feed               // see mongofeed.go
	initTimes map[string]float64 // cache: a node's init_time never changes once set
}

var _ Store = (*Mongo)(nil)

// OpenMongo connects to the MongoDB server at uri, uses database (or
// DefaultMongoDatabase when empty) and creates the indexes it needs.
func OpenMongo(ctx context.Context, uri, database string) (*Mongo, error) {
	if database == "" {
		database = DefaultMongoDatabase
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("store: connect to mongodb: %w", err)
	}
	db := client.Database(database)
	m := &Mongo{
		client:     client,
		jobs:       db.Collection(jobsCollection),
		workers:    db.Collection(workersCollection),
		usages:     db.Collection(usageCollection),
		counters:   db.Collection("counters"),
		changes:    db.Collection(changesCollection),
		feed:       newFeed(),
		jobDocs:    newDocCache(docCacheEntries),
		workerDocs: newDocCache(docCacheEntries),
		initTimes:  map[string]float64{},
	}
	if err := m.open(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("store: open mongodb database %s: %w", database, err)
	}
	return m, nil
}

// open moves old documents under their key, creates the indexes and asks
// the server what it pushes down.
func (m *Mongo) open(ctx context.Context) error {
	n, err := m.migrateKeys(ctx)
	if err != nil {
		return fmt.Errorf("move documents under their key: %w", err)
	}
	m.migrated = n
	if err := m.createIndexes(ctx); err != nil {
		return err
	}
	if m.idOnly, err = pushesDownIDOnly(ctx, m.jobs); err != nil {
		return err
	}
	return nil
}

// Migrated returns how many documents written under another _id (by an
// older RSwarm, or by the original) OpenMongo moved under their key.
func (m *Mongo) Migrated() int { return m.migrated }

// pushesDownIDOnly asks the server, through explain, whether it filters
// {_id, _rev} itself. FerretDB v1 answers with its own filterPushdown
// field, false for any filter but one on _id alone; MongoDB has no such
// field, and uses its _id index for either.
func pushesDownIDOnly(ctx context.Context, c *mongo.Collection) (bool, error) {
	var res bson.M
	err := c.Database().RunCommand(ctx, bson.D{
		{Key: "explain", Value: bson.D{{Key: "find", Value: c.Name()}, {Key: "filter", Value: bson.D{{Key: "_id", Value: ""}, {Key: revField, Value: int64(0)}}}}},
		{Key: "verbosity", Value: "queryPlanner"},
	}).Decode(&res)
	if err != nil {
		return false, fmt.Errorf("explain a find by _id and _rev: %w", err)
	}
	pushed, ok := res["filterPushdown"].(bool)
	return ok && !pushed, nil
}

// index is an index on fields, ascending.
type index struct {
	unique bool
	fields []string
}

// name returns the index's name as MongoDB names it by default ("status_1").
func (ix index) name() string {
	var parts []string
	for _, f := range ix.fields {
		parts = append(parts, f+"_1")
	}
	return strings.Join(parts, "_")
}

func (ix index) model() mongo.IndexModel {
	keys := bson.D{}
	for _, f := range ix.fields {
		keys = append(keys, bson.E{Key: f, Value: 1})
	}
	return mongo.IndexModel{Keys: keys, Options: options.Index().SetUnique(ix.unique).SetName(ix.name())}
}

// createIndexes creates the indexes that do not exist yet. (Asking for
// existing ones again is harmless to MongoDB, but FerretDB v1 panics.)
func (m *Mongo) createIndexes(ctx context.Context) error {
	for _, c := range []struct {
		coll    *mongo.Collection
		indexes []index
	}{
		// job_name and hostname need none: they are the _id.
		{m.jobs, []index{
			{false, []string{"status"}},
			{false, []string{"session"}},
			{false, []string{nodesField}},
			{false, []string{"submit_time", "job_name"}},
			{false, []string{seqField}},
		}},
	} {
		specs, err := c.coll.Indexes().ListSpecifications(ctx)
		if err != nil {
			return fmt.Errorf("list indexes of %s: %w", c.coll.Name(), err)
		}
		var missing []mongo.IndexModel
		for _, ix := range c.indexes {
			if !slices.ContainsFunc(specs, func(s mongo.IndexSpecification) bool { return s.Name == ix.name() }) {
				missing = append(missing, ix.model())
			}
		}
		if len(missing) == 0 {
			continue
		}
		if _, err := c.coll.Indexes().CreateMany(ctx, missing); err != nil {
			return fmt.Errorf("create indexes of %s: %w", c.coll.Name(), err)
		}
	}
	return nil
}

// toDoc converts v to a BSON document through its JSON encoding, so that
// the document has exactly the JSON's fields in the JSON's order (a job's
// tasks keep their order).
func toDoc(v any) (bson.D, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var d bson.D
	if err := bson.UnmarshalExtJSON(b, false, &d); err != nil {
		return nil, err
	}
	return d, nil
}

// fromDoc decodes a document into v through JSON, dropping the fields
// whose names start with "_" (_id and RSwarm's bookkeeping).
func fromDoc(d bson.D, v any) error {
	clean := make(bson.D, 0, len(d))
	for _, e := range d {
		if !strings.HasPrefix(e.Key, "_") {
			clean = append(clean, e)
		}
	}
	b, err := bson.MarshalExtJSON(clean, false, false)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// revOf returns a document's _rev (nil when it has none: a document the
// original wrote) and the _rev its next version gets.
func revOf(d bson.D) (rev any, next int64) {
	for _, e := range d {
		if e.Key == revField {
			return e.Value, asInt(e.Value) + 1
		}
	}
	return nil, 1
}

// asInt returns a number (a _rev, a _seq) as an int64, whatever type the
// server kept it in.
func asInt(v any) int64 {
	switch r := v.(type) {
	case int64:
		return r
	case int32:
		return int64(r)
	case float64:
		return int64(r)
	}
	return 0
}

// sameRev reports whether two _rev values (as revOf returns them) are equal.
func sameRev(a, b any) bool {
	return (a == nil) == (b == nil) && asInt(a) == asInt(b)
}

// lock serialises this process's updates of one record.
func (m *Mongo) lock(kind, key string) (unlock func()) {
	h := fnv.New32a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(key))
	mu := &m.locks[h.Sum32()%uint32(len(m.locks))]
	mu.Lock()
	return mu.Unlock
}

// byID is the filter selecting the document whose _id is id: the only one
// FerretDB v1 does not answer by decoding the whole collection.
func byID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

// findDoc returns c's document whose _id is id, or ErrNotFound.
func findDoc(ctx context.Context, c *mongo.Collection, id string, opts ...options.Lister[options.FindOneOptions]) (bson.D, error) {
	var d bson.D
	err := c.FindOne(ctx, byID(id), opts...).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	return d, err
}

// keyed returns d with _id set to id, first.
func keyed(id string, d bson.D) bson.D {
	out := make(bson.D, 0, len(d)+1)
	out = append(out, bson.E{Key: "_id", Value: id})
	for _, e := range d {
		if e.Key != "_id" {
			out = append(out, e)
		}
	}
	return out
}

// writeIfUnchanged replaces c's document id with d if its _rev is still
// rev, and reports whether it did. MongoDB does both in one step. On a
// server that would answer the filter {_id, _rev} by reading the whole
// collection (m.idOnly), it reads the document's _rev by _id, then
// replaces by _id: a write from another process between the two is lost,
// a window of one round trip (FerretDB v1 has one of its own between its
// read and its write in any case).
func (m *Mongo) writeIfUnchanged(ctx context.Context, c *mongo.Collection, id string, rev any, d bson.D) (bool, error) {
	filter := byID(id)
	if m.idOnly {
		cur, err := findDoc(ctx, c, id, options.FindOne().SetProjection(bson.D{{Key: revField, Value: 1}}))
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if now, _ := revOf(cur); !sameRev(now, rev) {
			return false, nil
		}
	} else if rev == nil {
		filter = append(filter, bson.E{Key: revField, Value: bson.D{{Key: "$exists", Value: false}}})
	} else {
		filter = append(filter, bson.E{Key: revField, Value: rev})
	}
	res, err := c.ReplaceOne(ctx, filter, d)
	if err != nil {
		return false, err
	}
	return res.MatchedCount > 0, nil
}

// replace is the optimistic read-modify-write loop of UpdateJob and
// UpdateWorker: read c's document id, decode it, apply fn, encode and
// replace it if its _rev is unchanged; else start again. It starts from the
// document in cache, the last this process read or wrote, if there is one
// (each read costs FerretDB v1 a pass over the collection's rows): the
// _rev check finds out if another process wrote it since, and fn's refusal
// of it is only believed of a document just read.
func replace[T any](ctx context.Context, m *Mongo, c *mongo.Collection, cache *docCache, id string, fn func(*T) error, encode func(*T) (bson.D, error)) (*T, error) {
	for {
		d, cached := cache.get(id)
		if !cached {
			var err error
			if d, err = findDoc(ctx, c, id); err != nil {
				return nil, err
			}
		}
		v := new(T)
		if err := fromDoc(d, v); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		if err := fn(v); err != nil {
			if cached {
				cache.drop(id)
				continue
			}
			return nil, fnError{err}
		}
		nd, err := encode(v)
		if err != nil {
			return nil, err
		}
		rev, next := revOf(d)
		nd = keyed(id, append(nd, bson.E{Key: revField, Value: next}))
		ok, err := m.writeIfUnchanged(ctx, c, id, rev, nd)
		if err != nil {
			cache.drop(id)
			return nil, err
		}
		if ok {
			cache.put(id, nd)
			return v, nil
		}
		cache.drop(id)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Another writer replaced it in between: read it again.
	}
}

// docCache holds the last document this process read or wrote of each
// record of a collection, for replace. At most max: past it, it forgets
// about half.
type docCache struct {
	mu  sync.Mutex
	m   map[string]bson.D
	max int
}

// docCacheEntries bounds each cache: a few thousand live jobs or workers.
const docCacheEntries = 4096

func newDocCache(max int) *docCache { return &docCache{m: map[string]bson.D{}, max: max} }

func (c *docCache) get(id string) (bson.D, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[id]
	return d, ok
}

// put remembers d, which the cache now owns and nobody changes.
func (c *docCache) put(id string, d bson.D) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m { // map order is random enough to spread the loss
			delete(c.m, k)
			if len(c.m) < c.max/2 {
				break
			}
		}
	}
	c.m[id] = d
}

func (c *docCache) drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// jobDoc encodes a job with its _nodes and a new _seq (without _rev), and
// returns that number, which the caller logs or abandons.
func (m *Mongo) jobDoc(ctx context.Context, j *api.Job) (bson.D, int64, error) {
	d, err := toDoc(j)
	if err != nil {
		return nil, 0, err
	}
	nodes := jobNodes(j)
	if nodes == nil {
		nodes = []string{}
	}
	seq, err := m.nextSeq(ctx)
	if err != nil {
		return nil, 0, err
	}
	return append(d, bson.E{Key: nodesField, Value: nodes}, bson.E{Key: seqField, Value: seq}), seq, nil
}

// CreateJob implements Store.
func (m *Mongo) CreateJob(ctx context.Context, j *api.Job) error {
	if j.Name == "" {
		return errors.New("store: create job: empty job_name")
	}
	d, seq, err := m.jobDoc(ctx, j)
	if err != nil {
		return fmt.Errorf("store: create job %s: %w", j.Name, err)
	}
	_, err = m.jobs.InsertOne(ctx, keyed(j.Name, append(d, bson.E{Key: revField, Value: int64(0)})))
	if mongo.IsDuplicateKeyError(err) {
		err = ErrExists
	}
	if err == nil {
		err = m.logChange(ctx, seq, j)
	} else {
		m.abandon(seq)
	}
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.Name, err)
	}
	return nil
}

// GetJob implements Store.
func (m *Mongo) GetJob(ctx context.Context, name string) (*api.Job, error) {
	d, err := findDoc(ctx, m.jobs, name)
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", name, err)
	}
	var j api.Job
	if err := fromDoc(d, &j); err != nil {
		return nil, fmt.Errorf("store: decode job %s: %w", name, err)
	}
	return &j, nil
}

// UpdateJob implements Store.
func (m *Mongo) UpdateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error) {
	j, err := m.updateJob(ctx, name, fn)
	if err != nil {
		return nil, updateErr("update job "+name, err)
	}
	return j, nil
}

func (m *Mongo) updateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error) {
	defer m.lock("job", name)()
	var seq int64 // the number of the last attempt
	j, err := replace(ctx, m, m.jobs, m.jobDocs, name, fn, func(j *api.Job) (bson.D, error) {
		if j.Name != name {
			return nil, errRenamed
		}
		m.abandon(seq) // an attempt before this one lost to another writer
		d, s, err := m.jobDoc(ctx, j)
		seq = s
		return d, err
	})
	if err != nil {
		m.abandon(seq)
		return nil, err
	}
	if err := m.logChange(ctx, seq, j); err != nil {
		return nil, err
	}
	return j, nil
}

// UpdateJobs implements Store. MongoDB has no transaction here: each job is
// updated atomically on its own, and an error part way leaves the jobs
// before it updated.
func (m *Mongo) UpdateJobs(ctx context.Context, names []string, fn func(*api.Job) error) ([]*api.Job, error) {
	var out []*api.Job
	for _, name := range names {
		j, err := m.updateJob(ctx, name, fn)
		switch {
		case err == nil:
			out = append(out, j)
		case !skippable(err):
			return nil, fmt.Errorf("update jobs: job %s: %w", name, err)
		}
	}
	return out, nil
}

// jobFilter returns the MongoDB filter selecting f's jobs.
func jobFilter(f JobFilter) bson.M {
	q := bson.M{}
	if len(f.Status) > 0 {
		q["status"] = bson.M{"$in": stateNames(f.Status)}
	}
	if f.Session != "" {
		q["session"] = f.Session
	}
	if f.Node != "" {
		q[nodesField] = f.Node
	}
	return q
}

// ListJobs implements Store.
func (m *Mongo) ListJobs(ctx context.Context, f JobFilter) ([]*api.Job, error) {
	opts := options.Find().SetSort(bson.D{{Key: "submit_time", Value: 1}, {Key: "job_name", Value: 1}})
	if f.Limit > 0 {
		opts.SetLimit(int64(f.Limit))
	}
	if f.Offset > 0 {
		opts.SetSkip(int64(f.Offset))
	}
	cur, err := m.jobs.Find(ctx, jobFilter(f), opts)
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	defer cur.Close(ctx)
	var out []*api.Job
	for cur.Next(ctx) {
		var d bson.D
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("store: list jobs: %w", err)
		}
		var j api.Job
		if err := fromDoc(d, &j); err != nil {
			return nil, fmt.Errorf("store: decode job: %w", err)
		}
		out = append(out, &j)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	return out, nil
}

// CountJobs implements Store.
func (m *Mongo) CountJobs(ctx context.Context, f JobFilter) (int, error) {
	n, err := m.jobs.CountDocuments(ctx, jobFilter(f))
	if err != nil {
		return 0, fmt.Errorf("store: count jobs: %w", err)
	}
	return int(n), nil
}

// DeleteJob implements Store.
func (m *Mongo) DeleteJob(ctx context.Context, name string) error {
	m.jobDocs.drop(name)
	res, err := m.jobs.DeleteOne(ctx, byID(name))
	if err == nil && res.DeletedCount == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete job %s: %w", name, err)
	}
	return nil
}

// PutWorker implements Store.
func (m *Mongo) PutWorker(ctx context.Context, w *api.Worker) error {
	if w.ID == "" {
		return errors.New("store: put worker: empty id")
	}
	encode := func(*api.Worker) (bson.D, error) { return toDoc(w) }
	defer m.lock("worker", w.ID)()
	for {
		// Replace the current document, if any, through the _rev check, so
		// that an UpdateWorker in flight elsewhere does not overwrite this.
		_, err := replace(ctx, m, m.workers, m.workerDocs, w.ID, func(*api.Worker) error { return nil }, encode)
		if !errors.Is(err, ErrNotFound) {
			return wrapNonNil("store: put worker "+w.ID, err)
		}
		d, err := encode(w)
		if err != nil {
			return fmt.Errorf("store: put worker %s: %w", w.ID, err)
		}
		_, err = m.workers.InsertOne(ctx, keyed(w.ID, append(d, bson.E{Key: revField, Value: int64(0)})))
		if !mongo.IsDuplicateKeyError(err) {
			return wrapNonNil("store: put worker "+w.ID, err)
		}
		// Another process inserted it in between: replace that one.
	}
}

func wrapNonNil(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// GetWorker implements Store.
func (m *Mongo) GetWorker(ctx context.Context, id string) (*api.Worker, error) {
	d, err := findDoc(ctx, m.workers, id)
	if err != nil {
		return nil, fmt.Errorf("get worker %s: %w", id, err)
	}
	var w api.Worker
	if err := fromDoc(d, &w); err != nil {
		return nil, fmt.Errorf("store: decode worker %s: %w", id, err)
	}
	return &w, nil
}

// UpdateWorker implements Store.
func (m *Mongo) UpdateWorker(ctx context.Context, id string, fn func(*api.Worker) error) (*api.Worker, error) {
	w, err := m.updateWorker(ctx, id, fn)
	if err != nil {
		return nil, updateErr("update worker "+id, err)
	}
	return w, nil
}

func (m *Mongo) updateWorker(ctx context.Context, id string, fn func(*api.Worker) error) (*api.Worker, error) {
	defer m.lock("worker", id)()
	return replace(ctx, m, m.workers, m.workerDocs, id, fn, func(w *api.Worker) (bson.D, error) {
		if w.ID != id {
			return nil, errRenamed
		}
		return toDoc(w)
	})
}

// ListWorkers implements Store.
func (m *Mongo) ListWorkers(ctx context.Context) ([]*api.Worker, error) {
	opts := options.Find().SetSort(bson.D{{Key: "join_time", Value: 1}, {Key: "hostname", Value: 1}})
	cur, err := m.workers.Find(ctx, bson.M{}, opts)
	if err != nil {
		return nil, fmt.Errorf("store: list workers: %w", err)
	}
	defer cur.Close(ctx)
	var out []*api.Worker
	for cur.Next(ctx) {
		var d bson.D
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("store: list workers: %w", err)
		}
		var w api.Worker
		if err := fromDoc(d, &w); err != nil {
			return nil, fmt.Errorf("store: decode worker: %w", err)
		}
		out = append(out, &w)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("store: list workers: %w", err)
	}
	return out, nil
}

// DeleteWorker implements Store.
func (m *Mongo) DeleteWorker(ctx context.Context, id string) error {
	m.workerDocs.drop(id)
	res, err := m.workers.DeleteOne(ctx, byID(id))
	if err == nil && res.DeletedCount == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete worker %s: %w", id, err)
	}
	return nil
}

// AppendUsage implements Store: one $push per node, all in one bulk write,
// into {hostname, init_time, details: [{offset, ratio}, ...]}. (The
// original's details held [offset, ratio] pairs, which Usage still reads,
// but FerretDB cannot store nested arrays.)
func (m *Mongo) AppendUsage(ctx context.Context, pts []api.UsagePoint) error {
	var nodes []string
	byNode := map[string][]api.UsagePoint{}
	for _, p := range pts {
		if _, ok := byNode[p.Node]; !ok {
			nodes = append(nodes, p.Node)
		}
		byNode[p.Node] = append(byNode[p.Node], p)
	}
	var models []mongo.WriteModel
	for _, n := range nodes {
		init, err := m.initTime(ctx, n, byNode[n][0].Time)
		if err != nil {
			return fmt.Errorf("store: append usage of %s: %w", n, err)
		}
		details := bson.A{}
		for _, p := range byNode[n] {
			details = append(details, bson.D{{Key: "offset", Value: p.Time - init}, {Key: "ratio", Value: p.Ratio}})
		}
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(byID(n)).
			SetUpdate(bson.M{"$push": bson.M{"details": bson.M{"$each": details}}}))
	}
	if len(models) == 0 {
		return nil
	}
	if _, err := m.usages.BulkWrite(ctx, models); err != nil {
		return fmt.Errorf("store: append usage: %w", err)
	}
	return nil
}

// initTime returns node's init_time, first creating its usage document with
// init_time t if it has none.
func (m *Mongo) initTime(ctx context.Context, node string, t float64) (float64, error) {
	m.mu.Lock()
	init, ok := m.initTimes[node]
	m.mu.Unlock()
	if ok {
		return init, nil
	}
	_, err := m.usages.UpdateOne(ctx, byID(node),
		bson.M{"$setOnInsert": bson.D{{Key: "hostname", Value: node}, {Key: "init_time", Value: t}, {Key: "details", Value: bson.A{}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil && !mongo.IsDuplicateKeyError(err) { // a duplicate: another process created it first
		return 0, err
	}
	var doc struct {
		InitTime float64 `bson:"init_time"`
	}
	if err := m.usages.FindOne(ctx, byID(node)).Decode(&doc); err != nil {
		return 0, err
	}
	m.mu.Lock()
	m.initTimes[node] = doc.InitTime
	m.mu.Unlock()
	return doc.InitTime, nil
}

// Usage implements Store.
func (m *Mongo) Usage(ctx context.Context) ([]api.Usage, error) {
	opts := options.Find().SetSort(bson.D{{Key: "hostname", Value: 1}})
	cur, err := m.usages.Find(ctx, bson.M{}, opts)
	if err != nil {
		return nil, fmt.Errorf("store: usage: %w", err)
	}
	defer cur.Close(ctx)
	var out []api.Usage
	for cur.Next(ctx) {
		var doc struct {
			Hostname string          `bson:"hostname"`
			InitTime float64         `bson:"init_time"`
			Details  []bson.RawValue `bson:"details"`
		}
		if err := cur.Decode(&doc); err != nil {
			return nil, fmt.Errorf("store: usage: %w", err)
		}
		u := api.Usage{Node: doc.Hostname, InitTime: doc.InitTime}
		for _, v := range doc.Details {
			if p, ok := usageDetail(v); ok {
				u.Details = append(u.Details, p)
			}
		}
		out = append(out, u)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("store: usage: %w", err)
	}
	return out, nil
}

// usageDetail reads one entry of a details array: {offset, ratio} as RSwarm
// writes it, or [offset, ratio] as the original wrote it.
func usageDetail(v bson.RawValue) ([2]float64, bool) {
	var offset, ratio bson.RawValue
	if doc, ok := v.DocumentOK(); ok {
		offset, ratio = doc.Lookup("offset"), doc.Lookup("ratio")
	} else if arr, ok := v.ArrayOK(); ok {
		vals, err := arr.Values()
		if err != nil || len(vals) != 2 {
			return [2]float64{}, false
		}
		offset, ratio = vals[0], vals[1]
	}
	o, ok1 := offset.AsFloat64OK()
	r, ok2 := ratio.AsFloat64OK()
	return [2]float64{o, r}, ok1 && ok2
}

// Ping implements Store.
func (m *Mongo) Ping(ctx context.Context) error {
	if err := m.client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("store: ping mongodb: %w", err)
	}
	return nil
}

// Close implements Store.
func (m *Mongo) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("store: close mongodb: %w", err)
	}
	return nil
}

// UpdateWorkers implements Store. Each worker is updated atomically on its
// own; workers that do not exist, or that fn refuses, are skipped.
func (m *Mongo) UpdateWorkers(ctx context.Context, ids []string, fn func(*api.Worker) error) ([]*api.Worker, error) {
	var out []*api.Worker
	for _, id := range ids {
		w, err := m.updateWorker(ctx, id, fn)
		switch {
		case err == nil:
			out = append(out, w)
		case !skippable(err):
			return out, fmt.Errorf("update workers: %w", err)
		}
	}
	return out, nil
}

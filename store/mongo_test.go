package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// startFerretDB runs an in-process FerretDB (MongoDB's wire protocol over
// SQLite files in a temporary directory) on a free loopback port until the
// test ends, and returns its MongoDB URI. FerretDB's errors go to the test log.
func startFerretDB(t *testing.T) (string, error) {
	t.Helper()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + t.TempDir() + "/",
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		return "", fmt.Errorf("start ferretdb: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	uri := make(chan string, 1)
	go func() { uri <- f.MongoDBURI() }() // waits until FerretDB listens
	select {
	case u := <-uri:
		return u, nil
	case <-done:
		return "", errors.New("ferretdb stopped before it listened")
	case <-time.After(time.Minute):
		return "", errors.New("ferretdb did not listen within a minute")
	}
}

// ferret is an in-process FerretDB for one test.
type ferret struct {
	uri string
	n   atomic.Int64
}

// newFerret starts FerretDB. The test is skipped (or fails under
// RSWARM_REQUIRE) when FerretDB cannot start.
func newFerret(t *testing.T) *ferret {
	uri, err := startFerretDB(t)
	apitest.Need(t, "mongo", err)
	return &ferret{uri: uri}
}

// open opens a store on database db, or on a new, empty database when db is "".
func (f *ferret) open(t *testing.T, db string) *Mongo {
	t.Helper()
	if db == "" {
		db = fmt.Sprintf("rswarm_test_%d", f.n.Add(1))
	}
	m, err := OpenMongo(t.Context(), f.uri, db)
	if err != nil {
		t.Fatalf("OpenMongo: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func TestMongo(t *testing.T) {
	f := newFerret(t)
	runConformance(t, func(t *testing.T) Store { return f.open(t, "") })
}

// TestMongoLayout checks the documents are in the original's layout.
func TestMongoLayout(t *testing.T) {
	m := newFerret(t).open(t, "")
	ctx := t.Context()
	mustCreate(t, m, richJob("layout"))
	if err := m.PutWorker(ctx, worker("w1", 5)); err != nil {
		t.Fatal(err)
	}
	if err := m.AppendUsage(ctx, []api.UsagePoint{{Node: "w1", Time: 10, Ratio: 0.5}, {Node: "w1", Time: 12, Ratio: 1}}); err != nil {
		t.Fatal(err)
	}

	var job bson.D
	if err := m.jobs.FindOne(ctx, bson.M{"job_name": "layout"}).Decode(&job); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range job {
		keys = append(keys, e.Key)
	}
	wantKeys := []string{"_id", "job_name", "job_info", "status", "submit_time", "start_time", "end_time",
		"priority", "session", "waiting_reason", "error", "strategy", "_nodes", "_seq", "_rev"}
	if fmt.Sprint(keys) != fmt.Sprint(wantKeys) {
		t.Errorf("job document keys = %v, want %v", keys, wantKeys)
	}
	var tasks []string
	for _, e := range field(field(job, "job_info").(bson.D), "tasks").(bson.D) {
		tasks = append(tasks, e.Key)
	}
	if want := "[layout_zeta layout_alpha layout_mid]"; fmt.Sprint(tasks) != want {
		t.Errorf("task keys in the document = %v, want %s", tasks, want)
	}
	if st := field(job, "status"); st != "Running" {
		t.Errorf("status in the document = %#v, want \"Running\"", st)
	}

	var w bson.M
	if err := m.workers.FindOne(ctx, bson.M{"hostname": "w1"}).Decode(&w); err != nil {
		t.Fatalf("no WorkersInfo document with hostname w1: %v", err)
	}
	var u struct {
		Hostname string  `bson:"hostname"`
		InitTime float64 `bson:"init_time"`
		Details  []struct{ Offset, Ratio float64 }
	}
	if err := m.usages.FindOne(ctx, bson.M{"hostname": "w1"}).Decode(&u); err != nil {
		t.Fatalf("no WorkersResourceInfo document with hostname w1: %v", err)
	}
	if got, want := fmt.Sprintf("%v %v", u.InitTime, u.Details), "10 [{0 0.5} {2 1}]"; got != want {
		t.Errorf("WorkersResourceInfo init_time and details = %s, want %s", got, want)
	}
}

func TestUsageDetail(t *testing.T) {
	raw := func(v any) bson.RawValue {
		t.Helper()
		typ, b, err := bson.MarshalValue(v)
		if err != nil {
			t.Fatal(err)
		}
		return bson.RawValue{Type: typ, Value: b}
	}
	tests := []struct {
		name string
		in   any
		want [2]float64
		ok   bool
	}{
		{"RSwarm's document", bson.D{{Key: "offset", Value: 2.5}, {Key: "ratio", Value: 0.5}}, [2]float64{2.5, 0.5}, true},
		{"the original's pair", bson.A{int32(3), 0.25}, [2]float64{3, 0.25}, true},
		{"the original's first pair", bson.A{int64(0), int32(0)}, [2]float64{0, 0}, true},
		{"document without ratio", bson.D{{Key: "offset", Value: 1.0}}, [2]float64{1, 0}, false},
		{"pair of three", bson.A{1.0, 2.0, 3.0}, [2]float64{}, false},
		{"not a number", bson.A{"1", 0.5}, [2]float64{0, 0.5}, false},
		{"a number alone", 1.0, [2]float64{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := usageDetail(raw(tc.in))
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("usageDetail = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestMongoConflict has a second store (another process, in effect) change
// a job between UpdateJob's read and its write: the write must not
// overwrite that change, but read the job again and retry. Both ways of
// writing are tried: MongoDB's filter on _id and _rev, and FerretDB v1's
// read of _rev before a replace by _id.
func TestMongoConflict(t *testing.T) {
	f := newFerret(t)
	for _, idOnly := range []bool{true, false} {
		t.Run(fmt.Sprintf("idOnly=%v", idOnly), func(t *testing.T) { testMongoConflict(t, f, idOnly) })
	}
}

func testMongoConflict(t *testing.T, f *ferret, idOnly bool) {
	a := f.open(t, "")
	b := f.open(t, a.jobs.Database().Name())
	a.idOnly, b.idOnly = idOnly, idOnly
	mustCreate(t, a, apitest.Job("contended", 1, 1, "true"))

	calls := 0
	got, err := a.UpdateJob(t.Context(), "contended", func(j *api.Job) error {
		calls++
		if calls == 1 {
			if _, err := b.UpdateJob(t.Context(), "contended", appendLog("from b")); err != nil {
				t.Fatalf("the other store's update: %v", err)
			}
		}
		return appendLog("from a")(j)
	})
	if err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	if calls != 2 {
		t.Errorf("fn called %d times, want 2 (once more after the conflict)", calls)
	}
	want := "[from b from a]"
	if logs := fmt.Sprint(got.Info.Tasks[0].Logs); logs != want {
		t.Errorf("UpdateJob returned logs %s, want %s", logs, want)
	}
	if logs := fmt.Sprint(mustGet(t, b, "contended").Info.Tasks[0].Logs); logs != want {
		t.Errorf("stored logs = %s, want %s", logs, want)
	}

	// A worker replaced by PutWorker while an update is in flight keeps the new record.
	if err := a.PutWorker(t.Context(), worker("w", 1)); err != nil {
		t.Fatal(err)
	}
	calls = 0
	_, err = a.UpdateWorker(t.Context(), "w", func(w *api.Worker) error {
		calls++
		if calls == 1 {
			if err := b.PutWorker(t.Context(), worker("w", 2)); err != nil {
				t.Fatalf("the other store's PutWorker: %v", err)
			}
		}
		w.CoresBusy = 4
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateWorker: %v", err)
	}
	w, err := a.GetWorker(t.Context(), "w")
	if err != nil {
		t.Fatal(err)
	}
	if w.JoinTime != 2 || w.CoresBusy != 4 || calls != 2 {
		t.Errorf("worker = join_time %v, cores_busy %d after %d calls; want 2, 4 after 2", w.JoinTime, w.CoresBusy, calls)
	}
}

// raw connects to database db of the FerretDB with the driver alone, to
// write and read documents as they are.
func (f *ferret) raw(t *testing.T, db string) *mongo.Database {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(f.uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c.Database(db)
}

func mustInsert(t *testing.T, c *mongo.Collection, docs ...bson.D) {
	t.Helper()
	for _, d := range docs {
		if _, err := c.InsertOne(t.Context(), d); err != nil {
			t.Fatalf("insert into %s: %v", c.Name(), err)
		}
	}
}

func docOf(t *testing.T, v any, extra ...bson.E) bson.D {
	t.Helper()
	d, err := toDoc(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(d, extra...)
}

// keysOf returns "_id=key" for each of c's documents, in natural order,
// and fails if one's _id is not a string.
func keysOf(t *testing.T, c *mongo.Collection, key string) []string {
	t.Helper()
	cur, err := c.Find(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.D
	if err := cur.All(t.Context(), &docs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range docs {
		out = append(out, fmt.Sprintf("%v=%v", field(d, "_id"), field(d, key)))
	}
	slices.Sort(out)
	return out
}

// TestMongoMigrateKeys opens a database written before documents were
// keyed by name: by RSwarm (a generated _id, a unique index on job_name),
// and by the original (no _rev, and one hostname twice), with one move
// left half done. Every record must be found by name, updated, listed once,
// and the move must run once.
func TestMongoMigrateKeys(t *testing.T) {
	f := newFerret(t)
	ctx := t.Context()
	raw := f.raw(t, "legacy")
	jobs, workers, usages := raw.Collection(jobsCollection), raw.Collection(workersCollection), raw.Collection(usageCollection)
	if _, err := jobs.Indexes().CreateOne(ctx, index{true, []string{"job_name"}}.model()); err != nil {
		t.Fatal(err)
	}
	old1, old2 := richJob("old1"), apitest.Job("old2", 1, 1, "true")
	mustInsert(t, jobs,
		docOf(t, old1, bson.E{Key: nodesField, Value: bson.A{"node-0", "node-1"}}, bson.E{Key: seqField, Value: int64(7)}, bson.E{Key: revField, Value: int64(3)}),
		docOf(t, old2))
	mustInsert(t, raw.Collection("counters"), bson.D{{Key: "_id", Value: "jobs"}, {Key: "seq", Value: int64(7)}})
	// The original registered w-old twice: the first is the one it read.
	// w-other's move stopped after its copy was made: the copy wins.
	mustInsert(t, workers, docOf(t, worker("w-old", 5)), docOf(t, worker("w-old", 9)), docOf(t, worker("w-other", 1)),
		keyed("w-other", docOf(t, worker("w-other", 2))))
	mustInsert(t, usages, bson.D{{Key: "hostname", Value: "w-old"}, {Key: "init_time", Value: 100.0},
		{Key: "details", Value: bson.A{bson.D{{Key: "offset", Value: 0.0}, {Key: "ratio", Value: 0.5}}}}})

	s := f.open(t, "legacy")
	if got := s.Migrated(); got != 4 {
		t.Errorf("Migrated = %d, want 4 (old1, old2, the first w-old and its usage)", got)
	}
	for c, want := range map[*mongo.Collection][]string{
		jobs:    {"old1=old1", "old2=old2"},
		workers: {"w-old=w-old", "w-other=w-other"},
		usages:  {"w-old=w-old"},
	} {
		key := "hostname"
		if c == jobs {
			key = "job_name"
		}
		if got := keysOf(t, c, key); !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", c.Name(), got, want)
		}
	}
	specs, err := jobs.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range specs {
		if sp.Name == "job_name_1" {
			t.Error("the unique index on job_name is still there")
		}
	}

	// The change feed has the writes before the move that carry a number.
	if before, _, err := s.JobsChangedSince(ctx, 0, 10); err != nil || fmt.Sprint(jobNames(before)) != "[old1]" {
		t.Errorf("change feed from 0 = %v, %v; want [old1], its last write being number 7", jobNames(before), err)
	}
	sameJSON(t, "old1 read by name", mustGet(t, s, "old1"), old1)
	sameJSON(t, "old2 read by name", mustGet(t, s, "old2"), old2)
	for _, name := range []string{"old2", "old1"} {
		if _, err := s.UpdateJob(ctx, name, func(j *api.Job) error { j.Priority = 9; return nil }); err != nil {
			t.Fatalf("UpdateJob %s: %v", name, err)
		}
	}
	for name, want := range map[string]int64{"old1": 4, "old2": 1} {
		d, err := findDoc(ctx, jobs, name)
		if err != nil {
			t.Fatal(err)
		}
		if rev := asInt(field(d, revField)); rev != want {
			t.Errorf("%s's _rev after an update = %d, want %d", name, rev, want)
		}
	}
	changed, _, err := s.JobsChangedSince(ctx, 7, 10)
	if err != nil {
		t.Fatal(err)
	}
	if names := fmt.Sprint(jobNames(changed)); names != "[old2 old1]" {
		t.Errorf("change feed after the updates = %s, want [old2 old1]", names)
	}
	all, err := s.ListJobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if names := fmt.Sprint(jobNames(all)); names != "[old2 old1]" {
		t.Errorf("ListJobs = %s, want [old2 old1]", names)
	}
	if byNode, err := s.ListJobs(ctx, JobFilter{Node: "node-1"}); err != nil || fmt.Sprint(jobNames(byNode)) != "[old1]" {
		t.Errorf("ListJobs on node-1 = %v, %v; want [old1]", jobNames(byNode), err)
	}

	for id, join := range map[string]float64{"w-old": 5, "w-other": 2} {
		w, err := s.GetWorker(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if w.JoinTime != join {
			t.Errorf("worker %s has join_time %v, want %v", id, w.JoinTime, join)
		}
	}
	if _, err := s.UpdateWorker(ctx, "w-old", func(w *api.Worker) error { w.CoresBusy = 2; return nil }); err != nil {
		t.Fatal(err)
	}
	if ws, err := s.ListWorkers(ctx); err != nil || len(ws) != 2 || ws[1].ID != "w-old" || ws[1].CoresBusy != 2 {
		t.Errorf("ListWorkers = %v, %v; want w-other, then w-old with 2 cores busy", ws, err)
	}
	if err := s.AppendUsage(ctx, []api.UsagePoint{{Node: "w-old", Time: 103, Ratio: 1}}); err != nil {
		t.Fatal(err)
	}
	u, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "usage", u, []api.Usage{{Node: "w-old", InitTime: 100, Details: [][2]float64{{0, 0.5}, {3, 1}}}})

	// Once: a later open does not go through the collections again (it
	// would move this document).
	mustInsert(t, workers, docOf(t, worker("w-late", 1)))
	if again := f.open(t, "legacy"); again.Migrated() != 0 {
		t.Errorf("the second open moved %d documents, want none", again.Migrated())
	}
	if got := keysOf(t, workers, "hostname"); len(got) != 3 || strings.HasPrefix(got[0], "w-late=") {
		t.Errorf("WorkersInfo after the second open = %v, want w-late's document where it was", got)
	}
}

// TestMongoMigrateKeysConcurrently: two processes opening an old database
// at once move every document once between them.
func TestMongoMigrateKeysConcurrently(t *testing.T) {
	f := newFerret(t)
	raw := f.raw(t, "legacy")
	var want []string
	for i := range 40 {
		name := fmt.Sprintf("j%02d", i)
		mustInsert(t, raw.Collection(jobsCollection), docOf(t, apitest.Job(name, 1, 1, "true"), bson.E{Key: revField, Value: int64(0)}))
		want = append(want, name+"="+name)
	}
	var wg sync.WaitGroup
	stores := make([]*Mongo, 2)
	errs := make([]error, 2)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = OpenMongo(t.Context(), f.uri, "legacy") })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("OpenMongo %d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = s.Close() })
	}
	if n := stores[0].Migrated() + stores[1].Migrated(); n != len(want) {
		t.Errorf("the two opens moved %d documents between them, want %d", n, len(want))
	}
	if got := keysOf(t, raw.Collection(jobsCollection), "job_name"); !slices.Equal(got, want) {
		t.Errorf("jobs = %v, want %v", got, want)
	}
	for _, s := range stores {
		mustGet(t, s, "j07")
	}
}

// TestMongoPushdown: FerretDB v1 hands SQLite a filter on _id alone, and
// the store finds that out (TestMongoConflict tries both ways of writing).
func TestMongoPushdown(t *testing.T) {
	f := newFerret(t)
	if m := f.open(t, ""); !m.idOnly {
		t.Fatal("FerretDB v1 not detected as pushing down filters on _id alone")
	}
}

func jobNames(jobs []*api.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.Name)
	}
	return out
}

// splitFeed is a store whose change feed is read through another store
// on the same database: another process, in effect.
type splitFeed struct {
	*Mongo
	reader *Mongo
}

func (s splitFeed) JobsChangedSince(ctx context.Context, after int64, limit int) ([]*api.Job, int64, error) {
	return s.reader.JobsChangedSince(ctx, after, limit)
}

// TestMongoFeed: the change feed read by a process that did not write the
// jobs, from the changes collection, one by one and all together; and
// with a reader further behind than that collection keeps, from the jobs.
func TestMongoFeed(t *testing.T) {
	f := newFerret(t)
	t.Run("another process", func(t *testing.T) {
		a := f.open(t, "")
		testChanges(t, splitFeed{a, f.open(t, a.jobs.Database().Name())})
	})
	ctx := t.Context()
	a := f.open(t, "")
	a.feed.kept, a.feed.pruneEvery = 80, 8
	b := f.open(t, a.jobs.Database().Name())
	b.feed.kept = a.feed.kept
	var want []string
	for i := range 100 {
		name := fmt.Sprintf("f%03d", i)
		mustCreate(t, a, apitest.Job(name, 1, 1, "true"))
		want = append(want, name)
	}
	if n, err := a.changes.CountDocuments(ctx, bson.D{}); err != nil || n > 88 {
		t.Errorf("the changes collection holds %d changes (%v), want at most 88", n, err)
	}
	for _, tc := range []struct {
		name  string
		after int64
		limit int
	}{
		{"behind the changes kept", 0, 1000},
		{"many changes", 30, 1000},
		{"few changes", 90, 1000},
		{"pages", 30, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			cursor := tc.after
			for {
				jobs, next, err := b.JobsChangedSince(ctx, cursor, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(jobs) > tc.limit {
					t.Fatalf("page of %d jobs, limit %d", len(jobs), tc.limit)
				}
				if next == cursor {
					break
				}
				got = append(got, jobNames(jobs)...)
				cursor = next
			}
			if !slices.Equal(got, want[tc.after:]) {
				t.Errorf("feed from %d = %v, want %v", tc.after, got, want[tc.after:])
			}
		})
	}
}

// TestMongoFeedPending: a reader stops before a number its process has
// taken and not yet logged (the write is under way), and goes on once it
// is logged or given up.
func TestMongoFeedPending(t *testing.T) {
	m := newFerret(t).open(t, "")
	ctx := t.Context()
	mustCreate(t, m, apitest.Job("first", 1, 1, "true"))
	_, head, err := m.JobsChangedSince(ctx, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	inFlight, err := m.nextSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, m, apitest.Job("second", 1, 1, "true"))
	if jobs, next, err := m.JobsChangedSince(ctx, head-1, 10); err != nil || fmt.Sprint(jobNames(jobs)) != "[first]" || next != head {
		t.Fatalf("feed with a write under way = %v, %d, %v; want [first], %d", jobNames(jobs), next, err, head)
	}
	m.abandon(inFlight)
	if jobs, _, err := m.JobsChangedSince(ctx, head, 10); err != nil || fmt.Sprint(jobNames(jobs)) != "[second]" {
		t.Fatalf("feed once the write was given up = %v, %v; want [second]", jobNames(jobs), err)
	}
}

// TestMongoStaleCache: an update starts from the document this process
// last wrote; another process's write since must be seen, whether fn
// would accept the old document or refuse it, and so must its delete.
func TestMongoStaleCache(t *testing.T) {
	f := newFerret(t)
	ctx := t.Context()
	a := f.open(t, "")
	b := f.open(t, a.jobs.Database().Name())
	mustCreate(t, a, apitest.Job("x", 1, 1, "true"), apitest.Job("y", 1, 1, "true"))
	for _, name := range []string{"x", "y"} {
		if _, err := a.UpdateJob(ctx, name, func(j *api.Job) error { j.Priority = 1; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, ok := a.jobDocs.get(name); !ok {
			t.Fatalf("%s's document not kept after an update", name)
		}
		if _, err := b.UpdateJob(ctx, name, func(j *api.Job) error { j.Priority = 2; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// fn refuses what a last wrote, and accepts what b wrote since.
	got, err := a.UpdateJob(ctx, "x", func(j *api.Job) error {
		if j.Priority != 2 {
			return errors.New("priority is not 2")
		}
		j.Priority = 3
		return nil
	})
	if err != nil || got.Priority != 3 {
		t.Fatalf("update of a job another process changed = %v, %v; want priority 3", got, err)
	}
	// fn accepts either: the write must still start from b's.
	got, err = a.UpdateJob(ctx, "y", appendLog("a"))
	if err != nil || got.Priority != 2 || mustGet(t, b, "y").Priority != 2 {
		t.Fatalf("update of a job another process changed = %v, %v; want b's priority 2 kept", got, err)
	}
	if err := b.DeleteJob(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateJob(ctx, "y", appendLog("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a job another process deleted: err = %v, want ErrNotFound", err)
	}
}

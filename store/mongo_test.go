package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"

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

// field returns the value of d's field key, or nil.
func field(d bson.D, key string) any {
	for _, e := range d {
		if e.Key == key {
			return e.Value
		}
	}
	return nil
}

// TestMongoConflict has a second store (another process, in effect) change
// a job between UpdateJob's read and its write: the write must not
// overwrite that change, but read the job again and retry.
func TestMongoConflict(t *testing.T) {
	f := newFerret(t)
	a := f.open(t, "")
	b := f.open(t, a.jobs.Database().Name())
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

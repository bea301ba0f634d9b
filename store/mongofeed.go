package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/rswarm/rswarm/api"
)

// The change feed. Every job write takes the next number from the counters
// collection (stored in the job as _seq), and once written is logged in
// the changes collection as {_id: "<number>", seq, job_name}. A reader
// looks the numbers after its cursor up by _id, one at a time (the only
// lookup FerretDB v1 does not answer by decoding a whole collection), or,
// past feedLookups of them, reads the changes collection whole. That
// collection is kept small (the last feedKept numbers), both for that and
// because SQLite reads every row even for a lookup by _id. Then it reads
// each changed job by _id. A reader further behind than feedKept numbers
// reads the jobs by _seq, the slow way (a filter FerretDB v1 answers by
// decoding every job: before this feed, every read of it did).
//
// The writes of this process are also kept in memory, by number, so that
// a reader in the same process (rswarm up runs every role in one) reads
// its jobs without asking the server; and the numbers this process has
// taken but not yet logged are known, so that a reader stops before them
// rather than skipping a write about to land.

// changesCollection is RSwarm's own (the original has no change feed).
const changesCollection = "changes"

// feedKept is how many of the last numbers the changes collection, and
// each process's memory, keep at least.
const feedKept = 4096

// feedPruneEvery: the write of every feedPruneEvery-th number deletes the
// changes older than feedKept numbers.
const feedPruneEvery = 512

// feedLookups is how many changes a reader looks up one by one; past it,
// it reads the whole (small) changes collection once instead.
const feedLookups = 64

// feed is a process's part of the change feed.
type feed struct {
	kept, pruneEvery int64

	// pending holds the numbers this process has taken and not yet
	// logged or given up; recent, this process's logged writes.
	pending map[int64]bool
	recent  map[int64]*api.Job
	latest  map[string]int64 // the number of each job's last write in recent
}

func newFeed() feed {
	return feed{kept: feedKept, pruneEvery: feedPruneEvery, pending: map[int64]bool{}, recent: map[int64]*api.Job{}, latest: map[string]int64{}}
}

func changeID(seq int64) string { return strconv.FormatInt(seq, 10) }

// changeDoc is the changes collection's record of write seq of job name.
func changeDoc(seq int64, name string) bson.D {
	return bson.D{{Key: "_id", Value: changeID(seq)}, {Key: "seq", Value: seq}, {Key: "job_name", Value: name}}
}

// nextSeq takes the next job write number from the counters collection.
// It stays pending until logChange logs it or abandon gives it up.
func (m *Mongo) nextSeq(ctx context.Context) (int64, error) {
	m.seqMu.Lock()
	defer m.seqMu.Unlock()
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := m.counters.FindOneAndUpdate(ctx, byID("jobs"), bson.M{"$inc": bson.M{"seq": int64(1)}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&doc)
	if err != nil {
		return 0, fmt.Errorf("next job sequence number: %w", err)
	}
	m.mu.Lock()
	m.feed.pending[doc.Seq] = true
	m.mu.Unlock()
	return doc.Seq, nil
}

// head returns the last number taken. It is read under seqMu so that every
// number of this process up to it is either pending or logged.
func (m *Mongo) head(ctx context.Context) (int64, error) {
	m.seqMu.Lock()
	defer m.seqMu.Unlock()
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := m.counters.FindOne(ctx, byID("jobs")).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	return doc.Seq, err
}

// abandon gives up a number whose write did not happen.
func (m *Mongo) abandon(seq int64) {
	if seq == 0 {
		return
	}
	m.mu.Lock()
	delete(m.feed.pending, seq)
	m.mu.Unlock()
}

// logChange logs j, just written with number seq, in the changes
// collection and in memory.
func (m *Mongo) logChange(ctx context.Context, seq int64, j *api.Job) error {
	for {
		_, err := m.changes.InsertOne(ctx, changeDoc(seq, j.Name))
		if err == nil {
			break
		}
		m.abandon(seq)
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("job %s written, but not logged in the change feed: %w", j.Name, err)
		}
		// FerretDB v1 gave another process the same number (its $inc is
		// a read and a write): log this write under a new one.
		if seq, err = m.nextSeq(ctx); err != nil {
			return fmt.Errorf("job %s written, but not logged in the change feed: %w", j.Name, err)
		}
	}
	m.mu.Lock()
	delete(m.feed.pending, seq)
	m.feed.recent[seq] = j.Clone()
	m.feed.latest[j.Name] = max(m.feed.latest[j.Name], seq)
	if int64(len(m.feed.recent)) > 2*m.feed.kept { // keep the last kept numbers, at amortised cost
		for s, old := range m.feed.recent {
			if s <= seq-m.feed.kept {
				delete(m.feed.recent, s)
				if m.feed.latest[old.Name] == s {
					delete(m.feed.latest, old.Name)
				}
			}
		}
	}
	m.mu.Unlock()
	if seq%m.feed.pruneEvery == 0 {
		if _, err := m.changes.DeleteMany(ctx, bson.D{{Key: "seq", Value: bson.D{{Key: "$lte", Value: seq - m.feed.kept}}}}); err != nil {
			return fmt.Errorf("prune the change feed: %w", err)
		}
	}
	return nil
}

// JobsChangedSince returns the jobs written after sequence number after,
// in write order (a job written twice comes once, at its last write), and
// the number to ask from next time; with after < 0 only the head.
//
// Within one process nothing is missed: the reader stops before a number
// this process has taken and not yet logged. Across processes a write may
// be logged just after a reader has passed its number (numbers are taken
// before the write), so a reader can miss it; a number never logged (its
// write failed) is passed over in the same way.
func (m *Mongo) JobsChangedSince(ctx context.Context, after int64, limit int) ([]*api.Job, int64, error) {
	head, err := m.head(ctx)
	if err != nil || after < 0 {
		return nil, head, err
	}
	if limit <= 0 {
		limit = 1000
	}
	if head <= after {
		return nil, after, nil
	}
	if head-after > m.feed.kept {
		return m.scanChanges(ctx, after, limit)
	}
	// Which numbers this process wrote, and which it must wait for. A
	// job written again later is passed over: it comes at its last write.
	end := min(head, after+int64(limit))
	local := map[int64]*api.Job{}
	var remote []int64
	m.mu.Lock()
	for s := after + 1; s <= end; s++ {
		if m.feed.pending[s] {
			end = s - 1
			break
		}
		if j, ok := m.feed.recent[s]; !ok {
			remote = append(remote, s)
		} else if m.feed.latest[j.Name] == s {
			local[s] = j.Clone()
		}
	}
	m.mu.Unlock()
	names, err := m.changeNames(ctx, remote, after, end)
	if err != nil {
		return nil, after, err
	}
	type read struct {
		seq int64
		job *api.Job // nil: deleted
	}
	reads := map[string]read{} // the jobs of remote changes, read once each
	var entries []*api.Job
	for s := after + 1; s <= end; s++ {
		if j, ok := local[s]; ok {
			entries = append(entries, j)
			continue
		}
		name, ok := names[s]
		if !ok {
			continue
		}
		r, ok := reads[name]
		if !ok {
			if r.job, r.seq, err = m.readJob(ctx, name); err != nil {
				return nil, after, err
			}
			reads[name] = r
		}
		if r.job != nil && r.seq <= s {
			entries = append(entries, r.job)
		}
	}
	// A job may still come twice, written here and by another process.
	seen := map[string]bool{}
	var out []*api.Job
	for i := len(entries) - 1; i >= 0; i-- {
		if j := entries[i]; !seen[j.Name] {
			seen[j.Name] = true
			out = append(out, j)
		}
	}
	slices.Reverse(out)
	return out, end, nil
}

// readJob returns the job name and its _seq, or nil if it does not exist.
func (m *Mongo) readJob(ctx context.Context, name string) (*api.Job, int64, error) {
	d, err := findDoc(ctx, m.jobs, name)
	if errors.Is(err, ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read job %s: %w", name, err)
	}
	j := new(api.Job)
	if err := fromDoc(d, j); err != nil {
		return nil, 0, fmt.Errorf("decode job %s: %w", name, err)
	}
	return j, asInt(field(d, seqField)), nil
}

// changeNames returns the job names the changes collection holds for the
// numbers seqs, all within (after, end]: looked up one by one when they
// are few, else read together.
func (m *Mongo) changeNames(ctx context.Context, seqs []int64, after, end int64) (map[int64]string, error) {
	out := map[int64]string{}
	if len(seqs) == 0 {
		return out, nil
	}
	var change struct {
		Seq     int64  `bson:"seq"`
		JobName string `bson:"job_name"`
	}
	if len(seqs) <= feedLookups {
		for _, s := range seqs {
			err := m.changes.FindOne(ctx, byID(changeID(s))).Decode(&change)
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue // not logged (yet)
			}
			if err != nil {
				return nil, fmt.Errorf("read change %d: %w", s, err)
			}
			out[s] = change.JobName
		}
		return out, nil
	}
	cur, err := m.changes.Find(ctx, bson.D{{Key: "seq", Value: bson.D{{Key: "$gt", Value: after}, {Key: "$lte", Value: end}}}})
	if err != nil {
		return nil, fmt.Errorf("read changes %d to %d: %w", after+1, end, err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if err := cur.Decode(&change); err != nil {
			return nil, err
		}
		out[change.Seq] = change.JobName
	}
	return out, cur.Err()
}

// scanChanges is JobsChangedSince for a reader further behind than the
// changes collection keeps: it reads the jobs by _seq.
func (m *Mongo) scanChanges(ctx context.Context, after int64, limit int) ([]*api.Job, int64, error) {
	cur, err := m.jobs.Find(ctx, bson.M{seqField: bson.M{"$gt": after}},
		options.Find().SetSort(bson.D{{Key: seqField, Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, after, fmt.Errorf("jobs changed since %d: %w", after, err)
	}
	defer cur.Close(ctx)
	var out []*api.Job
	next := after
	for cur.Next(ctx) {
		var d bson.D
		if err := cur.Decode(&d); err != nil {
			return nil, after, err
		}
		if v, ok := field(d, seqField).(int64); ok {
			next = v
		}
		j := new(api.Job)
		if err := fromDoc(d, j); err != nil {
			return nil, after, err
		}
		out = append(out, j)
	}
	return out, next, cur.Err()
}

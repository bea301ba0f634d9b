package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// keysMarker is the _id, in the counters collection, of the document that
// says the database's documents are keyed by name (migrateKeys ran to its
// end once).
const keysMarker = "keyed"

// migrateKeys moves every document whose _id is not its key (job_name for
// jobs, hostname for WorkersInfo and WorkersResourceInfo) under its key:
// RSwarm before keyed them by a generated ObjectID, and so does the
// original. It returns how many it moved. It runs until it has once gone
// through every collection to the end, which it records in the counters
// collection; later opens only read that record. (Documents written by an
// older RSwarm or by the original after that are not moved, and cannot be
// found by name: the two must not share a database with this one.)
//
// Each document is inserted under its key, then the old one deleted. If
// the insert finds its key taken, the document already there wins and the
// old one is deleted all the same. So:
//   - it is idempotent, and safe if two processes migrate at once, or if one
//     stopped half way: whichever inserts a key first moves the document,
//     and a second insert of it only fails;
//   - of two old documents with one key (the original kept no unique index
//     on WorkersInfo's hostname), the first in the collection's natural
//     order is kept and the others are deleted. That first one is the one
//     every lookup by name saw before (find_one and FindOne return it), and
//     the one the original's update_one and RSwarm's updates changed; the
//     others could only be listed.
//
// (One race remains while two processes open an old database at once: a
// job one of them deletes during the other's move can come back from the
// other's copy.)
func (m *Mongo) migrateKeys(ctx context.Context) (int, error) {
	err := m.counters.FindOne(ctx, byID(keysMarker)).Err()
	if err == nil {
		return 0, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("read %s: %w", keysMarker, err)
	}
	moved := 0
	for _, c := range []struct {
		coll *mongo.Collection
		key  string
	}{{m.jobs, "job_name"}, {m.workers, "hostname"}, {m.usages, "hostname"}} {
		// RSwarm's unique index on the key would refuse the copy while
		// the old document exists; _id is unique now.
		if err := dropIndex(ctx, c.coll, c.key+"_1"); err != nil {
			return moved, err
		}
		n, err := moveUnderKey(ctx, c.coll, c.key)
		moved += n
		if err != nil {
			return moved, fmt.Errorf("%s: %w", c.coll.Name(), err)
		}
	}
	if err := m.backfillChanges(ctx); err != nil {
		return moved, err
	}
	_, err = m.counters.UpdateOne(ctx, byID(keysMarker),
		bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "at", Value: float64(time.Now().UnixNano()) / 1e9}, {Key: "moved", Value: int64(moved)}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil && !mongo.IsDuplicateKeyError(err) { // a duplicate: another process's migration ended too
		return moved, fmt.Errorf("write %s: %w", keysMarker, err)
	}
	return moved, nil
}

// moveUnderKey moves c's documents whose _id is not their field key under
// their key, in natural order; see migrateKeys. Documents without a
// string key are left alone (no name could find them before either).
func moveUnderKey(ctx context.Context, c *mongo.Collection, key string) (int, error) {
	cur, err := c.Find(ctx, bson.D{})
	if err != nil {
		return 0, err
	}
	defer cur.Close(ctx)
	moved := 0
	for cur.Next(ctx) {
		var d bson.D
		if err := cur.Decode(&d); err != nil {
			return moved, err
		}
		name, ok := field(d, key).(string)
		if !ok || name == "" || field(d, "_id") == name {
			continue
		}
		_, err := c.InsertOne(ctx, keyed(name, d))
		switch {
		case err == nil:
			moved++
		case !mongo.IsDuplicateKeyError(err):
			return moved, fmt.Errorf("copy %s under its key: %w", name, err)
		}
		if _, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: field(d, "_id")}}); err != nil {
			return moved, fmt.Errorf("delete %s's old document: %w", name, err)
		}
	}
	return moved, cur.Err()
}

// dropIndex drops c's index name if it exists.
func dropIndex(ctx context.Context, c *mongo.Collection, name string) error {
	specs, err := c.Indexes().ListSpecifications(ctx)
	if err != nil {
		return fmt.Errorf("list indexes of %s: %w", c.Name(), err)
	}
	for _, s := range specs {
		if s.Name != name {
			continue
		}
		err := c.Indexes().DropOne(ctx, name)
		var ce mongo.CommandError
		if errors.As(err, &ce) && ce.Code == 27 { // IndexNotFound: another process dropped it first
			err = nil
		}
		if err != nil {
			return fmt.Errorf("drop index %s of %s: %w", name, c.Name(), err)
		}
	}
	return nil
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

// backfillChanges logs, in the changes collection, the last writes of a
// database written before there was one (its jobs carry their _seq), so
// that a reader starting within the last feedKept numbers finds them
// (the jobmanager reads the last ten thousand at start, for jobs to
// restart). Each job's last write only: the others are gone.
func (m *Mongo) backfillChanges(ctx context.Context) error {
	head, err := m.head(ctx)
	if err != nil || head == 0 {
		return err
	}
	cur, err := m.jobs.Find(ctx, bson.D{{Key: seqField, Value: bson.D{{Key: "$gt", Value: head - m.feed.kept}}}},
		options.Find().SetProjection(bson.D{{Key: seqField, Value: 1}, {Key: "job_name", Value: 1}}))
	if err != nil {
		return fmt.Errorf("read the last writes: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d bson.D
		if err := cur.Decode(&d); err != nil {
			return err
		}
		seq := asInt(field(d, seqField))
		name, _ := field(d, "job_name").(string)
		if _, err := m.changes.InsertOne(ctx, changeDoc(seq, name)); err != nil && !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("log write %d: %w", seq, err)
		}
	}
	return cur.Err()
}

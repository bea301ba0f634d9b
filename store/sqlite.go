package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/rswarm/rswarm/api"
)

// FileName is the name of the SQLite database file inside the data directory.
const FileName = "rswarm.db"

const (
	// busyTimeout is how long SQLite waits for another process's write lock.
	busyTimeout = 10 * time.Second
	// busyAttempts is how many times a write transaction is tried when SQLite
	// still reports the database busy (a lock held past busyTimeout, or a
	// busy state its busy handler does not cover, such as WAL recovery).
	busyAttempts = 3
	// readConns is the size of the reader pool.
	readConns = 4
)

const schema = `
CREATE TABLE IF NOT EXISTS jobs (
	job_name    TEXT PRIMARY KEY,
	status      TEXT NOT NULL,
	session     TEXT NOT NULL,
	submit_time REAL NOT NULL,
	seq         INTEGER NOT NULL DEFAULT 0, -- write order, for the change feed
	doc         TEXT NOT NULL -- the job as api.Job marshals it
);
DROP INDEX IF EXISTS jobs_status;
CREATE INDEX IF NOT EXISTS jobs_status_submit ON jobs (status, submit_time, job_name);
-- A session's jobs by status, in submission order, without reading their
-- documents: what a stress client waiting for its session asks twice a second.
DROP INDEX IF EXISTS jobs_session;
CREATE INDEX IF NOT EXISTS jobs_session_status ON jobs (session, status, submit_time, job_name);
CREATE INDEX IF NOT EXISTS jobs_submit ON jobs (submit_time, job_name);
CREATE INDEX IF NOT EXISTS jobs_seq ON jobs (seq);

-- job_nodes lists the distinct nodes of each job's tasks, for JobFilter.Node.
CREATE TABLE IF NOT EXISTS job_nodes (
	node     TEXT NOT NULL,
	job_name TEXT NOT NULL,
	PRIMARY KEY (node, job_name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_nodes_job ON job_nodes (job_name);

CREATE TABLE IF NOT EXISTS workers (
	id        TEXT PRIMARY KEY,
	join_time REAL NOT NULL,
	doc       TEXT NOT NULL -- the worker as api.Worker marshals it
);

-- usage_nodes holds each node's init_time: the time of its first sample.
CREATE TABLE IF NOT EXISTS usage_nodes (
	node      TEXT PRIMARY KEY,
	init_time REAL NOT NULL
);
-- usage holds the samples with absolute times, in append order (rowid).
CREATE TABLE IF NOT EXISTS usage (
	node  TEXT NOT NULL,
	t     REAL NOT NULL,
	ratio REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_node ON usage (node);
`

// SQLite is the embedded Store: one database file shared, through WAL mode
// and BEGIN IMMEDIATE write transactions, by every rswarm process on the host.
type SQLite struct {
	path string
	// w has a single connection, so this process's writers queue for it in
	// Go (cheaply, in order) instead of in SQLite's busy handler, which
	// sleeps. Its transactions begin IMMEDIATE (_txlock=immediate), taking
	// the database's write lock first, so that no other process can write
	// between a read and the write that depends on it.
	w *sql.DB
	// r is the reader pool; in WAL mode readers never block the writer.
	r *sql.DB

	gmu     sync.Mutex // guards pending and leading (group commit, see write)
	pending []*writeReq
	leading bool
	// seq is the last change feed number given out in the current write
	// transaction: MAX(seq) is read once, at its first write (it holds the
	// database's write lock, so no other process can write meanwhile),
	// instead of a subquery in every statement. Used by the group commit
	// leader only; seqKnown is reset when a transaction begins.
	seq      int64
	seqKnown bool

	jobs *jobCache // decoded documents
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database <dir>/rswarm.db,
// creating dir with mode 0700 if it does not exist.
func OpenSQLite(dir string) (*SQLite, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}).String()

	s := &SQLite{path: path, jobs: newJobCache(jobCacheEntries, jobCacheBytes)}
	var err error
	if s.w, err = sql.Open("sqlite", dsn); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	if s.r, err = sql.Open("sqlite", dsn); err != nil {
		_ = s.w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.r.SetMaxOpenConns(readConns)
	s.r.SetMaxIdleConns(readConns)
	s.r.SetConnMaxLifetime(0)

	if err := s.init(); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// init creates the schema if it does not exist.
//
// (No statement is prepared ahead: modernc.org/sqlite's prepared statements
// keep only the SQL text and compile it again on every use.)
func (s *SQLite) init() error {
	ctx := context.Background()
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// Path returns the database file's path.
func (s *SQLite) Path() string { return s.path }

// write runs fn in an IMMEDIATE transaction on the writer connection and
// commits it if fn returns nil; fn's changes are undone if it returns an
// error. Writes that arrive while another is being written are committed
// together (group commit): the first writer to find the connection free
// leads, runs every queued fn in one transaction, each inside its own
// savepoint, and hands each its own result. fn gets a context that ends
// only with the store, not with its caller, because cancelling a statement
// would roll back the whole shared transaction. If SQLite still reports the
// database busy after its busy timeout (another process holds the write
// lock), the batch is tried again, fns included.
func (s *SQLite) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &writeReq{ctx: context.WithoutCancel(ctx), fn: fn, done: make(chan error, 1)}
	s.gmu.Lock()
	s.pending = append(s.pending, req)
	if s.leading {
		s.gmu.Unlock()
		return <-req.done
	}
	s.leading = true
	for {
		batch := s.pending
		s.pending = nil
		s.gmu.Unlock()
		s.writeBatch(batch)
		s.gmu.Lock()
		if len(s.pending) == 0 {
			s.leading = false
			s.gmu.Unlock()
			return <-req.done
		}
	}
}

// writeReq is one fn waiting to be written.
type writeReq struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// maxBatch bounds how many writes share one transaction.
const maxBatch = 256

func (s *SQLite) writeBatch(batch []*writeReq) {
	for len(batch) > maxBatch {
		s.writeBatch(batch[:maxBatch])
		batch = batch[maxBatch:]
	}
	for attempt := 1; ; attempt++ {
		results, err := s.writeOnce(batch)
		if err == nil {
			for i, r := range batch {
				r.done <- results[i]
			}
			return
		}
		if !isBusy(err) || attempt == busyAttempts {
			for _, r := range batch {
				r.done <- err
			}
			return
		}
		time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
	}
}

// writeOnce runs a batch in one transaction; it returns each fn's result,
// or an error for the whole transaction.
func (s *SQLite) writeOnce(batch []*writeReq) ([]error, error) {
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	s.seqKnown = false
	results := make([]error, len(batch))
	if len(batch) == 1 {
		if results[0] = batch[0].fn(batch[0].ctx, tx); results[0] != nil {
			return results, tx.Rollback()
		}
		return results, tx.Commit()
	}
	for i, r := range batch {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
			_ = tx.Rollback()
			return nil, err
		}
		if results[i] = r.fn(r.ctx, tx); results[i] != nil {
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO w"); err != nil {
				_ = tx.Rollback()
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE w"); err != nil {
			_ = tx.Rollback()
			return nil, err
		}
	}
	return results, tx.Commit()
}

// nextSeq returns the next change feed number of the write transaction tx.
func (s *SQLite) nextSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	if !s.seqKnown {
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM jobs").Scan(&s.seq); err != nil {
			return 0, err
		}
		s.seqKnown = true
	}
	s.seq++
	return s.seq, nil
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == 5 // SQLITE_BUSY
}

// CreateJob implements Store.
func (s *SQLite) CreateJob(ctx context.Context, j *api.Job) error {
	if j.Name == "" {
		return errors.New("store: create job: empty job_name")
	}
	doc, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("store: create job %s: %w", j.Name, err)
	}
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		seq, err := s.nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO jobs (job_name, status, session, submit_time, doc, seq)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_name) DO NOTHING`,
			j.Name, j.Status.String(), string(j.Session), j.SubmitTime, string(doc), seq)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrExists
		}
		return insertJobNodes(ctx, tx, j.Name, jobNodes(j))
	})
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.Name, err)
	}
	s.jobs.put(j.Name, string(doc), j.Clone())
	return nil
}

// insertJobNodes records that the job's tasks are on nodes.
func insertJobNodes(ctx context.Context, tx *sql.Tx, name string, nodes []string) error {
	if len(nodes) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(nodes))
	for _, n := range nodes {
		args = append(args, n, name)
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO job_nodes (node, job_name) VALUES (?, ?)"+
		strings.Repeat(", (?, ?)", len(nodes)-1), args...)
	return err
}

// GetJob implements Store.
func (s *SQLite) GetJob(ctx context.Context, name string) (*api.Job, error) {
	j, err := s.scanJob(name, s.r.QueryRowContext(ctx, "SELECT doc FROM jobs WHERE job_name = ?", name))
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", name, err)
	}
	return j, nil
}

// scanJob decodes the doc column of job name's row; ErrNotFound when there is none.
func (s *SQLite) scanJob(name string, row *sql.Row) (*api.Job, error) {
	var doc string
	if err := row.Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return s.jobs.decode(name, doc)
}

// UpdateJob implements Store.
func (s *SQLite) UpdateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error) {
	var out *api.Job
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		out, err = s.updateJobTx(ctx, tx, name, fn)
		return err
	})
	if err != nil {
		return nil, updateErr("update job "+name, err)
	}
	return out, nil
}

// updateJobTx reads, changes and writes one job inside tx.
func (s *SQLite) updateJobTx(ctx context.Context, tx *sql.Tx, name string, fn func(*api.Job) error) (*api.Job, error) {
	j, err := s.scanJob(name, tx.QueryRowContext(ctx, "SELECT doc FROM jobs WHERE job_name = ?", name))
	if err != nil {
		return nil, err
	}
	before := *j
	nodes := jobNodes(j)
	if err := fn(j); err != nil {
		return nil, fnError{err}
	}
	if j.Name != name {
		return nil, errRenamed
	}
	doc, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	// Set the indexed columns only when they change: SQLite rewrites the
	// index of every column named in SET, changed or not.
	seq, err := s.nextSeq(ctx, tx)
	if err != nil {
		return nil, err
	}
	set, args := "doc = ?, seq = ?", []any{string(doc), seq}
	if j.Status != before.Status {
		set, args = set+", status = ?", append(args, j.Status.String())
	}
	if j.Session != before.Session {
		set, args = set+", session = ?", append(args, string(j.Session))
	}
	if j.SubmitTime != before.SubmitTime {
		set, args = set+", submit_time = ?", append(args, j.SubmitTime)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE jobs SET "+set+" WHERE job_name = ?", append(args, name)...); err != nil {
		return nil, err
	}
	if after := jobNodes(j); !slices.Equal(nodes, after) {
		if _, err := tx.ExecContext(ctx, "DELETE FROM job_nodes WHERE job_name = ?", name); err != nil {
			return nil, err
		}
		if err := insertJobNodes(ctx, tx, name, after); err != nil {
			return nil, err
		}
	}
	s.jobs.put(name, string(doc), j.Clone())
	return j, nil
}

// UpdateJobs implements Store: all the jobs change in one transaction.
func (s *SQLite) UpdateJobs(ctx context.Context, names []string, fn func(*api.Job) error) ([]*api.Job, error) {
	var out []*api.Job
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		out = out[:0]
		for _, name := range names {
			j, err := s.updateJobTx(ctx, tx, name, fn)
			switch {
			case err == nil:
				out = append(out, j)
			case !skippable(err):
				return fmt.Errorf("job %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update jobs: %w", err)
	}
	return out, nil
}

// jobWhere returns the WHERE clause and arguments selecting f's jobs.
func jobWhere(f JobFilter) (string, []any) {
	var conds []string
	var args []any
	if len(f.Status) > 0 {
		conds = append(conds, "status IN (?"+strings.Repeat(", ?", len(f.Status)-1)+")")
		for _, n := range stateNames(f.Status) {
			args = append(args, n)
		}
	}
	if f.Session != "" {
		conds = append(conds, "session = ?")
		args = append(args, f.Session)
	}
	if f.Node != "" {
		conds = append(conds, "job_name IN (SELECT job_name FROM job_nodes WHERE node = ?)")
		args = append(args, f.Node)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// ListJobs implements Store.
func (s *SQLite) ListJobs(ctx context.Context, f JobFilter) ([]*api.Job, error) {
	where, args := jobWhere(f)
	const order = " ORDER BY submit_time, job_name"
	q := "SELECT job_name, doc FROM jobs" + where + order
	if f.Limit > 0 || f.Offset > 0 {
		limit := f.Limit
		if limit <= 0 {
			limit = -1 // SQLite's "no limit"
		}
		// The page is chosen from the indexes alone, then its documents
		// read: sorting "SELECT doc ... LIMIT 1" made SQLite read the
		// document of every matching job (ten thousand, when a stress
		// client asks for the oldest unfinished job of its session).
		q = "SELECT job_name, doc FROM jobs WHERE rowid IN (SELECT rowid FROM jobs" + where + order +
			" LIMIT ? OFFSET ?)" + order
		args = append(args, limit, max(f.Offset, 0))
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	defer rows.Close()
	var out []*api.Job
	for rows.Next() {
		var name, doc string
		if err := rows.Scan(&name, &doc); err != nil {
			return nil, fmt.Errorf("store: list jobs: %w", err)
		}
		// Listings go through the cache without filling it: a report reads
		// every job of an experiment once.
		j, err := s.jobs.lookup(name, doc)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	return out, nil
}

// CountJobs implements Store.
func (s *SQLite) CountJobs(ctx context.Context, f JobFilter) (int, error) {
	where, args := jobWhere(f)
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM jobs"+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count jobs: %w", err)
	}
	return n, nil
}

// DeleteJob implements Store.
func (s *SQLite) DeleteJob(ctx context.Context, name string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM jobs WHERE job_name = ?", name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM job_nodes WHERE job_name = ?", name)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete job %s: %w", name, err)
	}
	s.jobs.forget(name)
	return nil
}

// PutWorker implements Store.
func (s *SQLite) PutWorker(ctx context.Context, w *api.Worker) error {
	if w.ID == "" {
		return errors.New("store: put worker: empty id")
	}
	doc, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("store: put worker %s: %w", w.ID, err)
	}
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return putWorker(ctx, tx, w.ID, w.JoinTime, doc)
	})
	if err != nil {
		return fmt.Errorf("store: put worker %s: %w", w.ID, err)
	}
	return nil
}

// putWorker inserts or replaces a worker's row.
func putWorker(ctx context.Context, tx *sql.Tx, id string, joinTime float64, doc []byte) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO workers (id, join_time, doc) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET join_time = excluded.join_time, doc = excluded.doc`,
		id, joinTime, string(doc))
	return err
}

// scanWorker decodes the doc column of a row; ErrNotFound when there is none.
func scanWorker(row *sql.Row) (*api.Worker, error) {
	var doc string
	if err := row.Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	var w api.Worker
	if err := json.Unmarshal([]byte(doc), &w); err != nil {
		return nil, fmt.Errorf("store: decode worker: %w", err)
	}
	return &w, nil
}

// GetWorker implements Store.
func (s *SQLite) GetWorker(ctx context.Context, id string) (*api.Worker, error) {
	w, err := scanWorker(s.r.QueryRowContext(ctx, "SELECT doc FROM workers WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get worker %s: %w", id, err)
	}
	return w, nil
}

// UpdateWorker implements Store.
func (s *SQLite) UpdateWorker(ctx context.Context, id string, fn func(*api.Worker) error) (*api.Worker, error) {
	var out *api.Worker
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		out, err = updateWorkerTx(ctx, tx, id, fn)
		return err
	})
	if err != nil {
		return nil, updateErr("update worker "+id, err)
	}
	return out, nil
}

// updateWorkerTx reads, changes and writes one worker inside tx.
func updateWorkerTx(ctx context.Context, tx *sql.Tx, id string, fn func(*api.Worker) error) (*api.Worker, error) {
	w, err := scanWorker(tx.QueryRowContext(ctx, "SELECT doc FROM workers WHERE id = ?", id))
	if err != nil {
		return nil, err
	}
	if err := fn(w); err != nil {
		return nil, fnError{err}
	}
	if w.ID != id {
		return nil, errRenamed
	}
	doc, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	if err := putWorker(ctx, tx, id, w.JoinTime, doc); err != nil {
		return nil, err
	}
	return w, nil
}

// UpdateWorkers implements Store: all the workers change in one transaction.
func (s *SQLite) UpdateWorkers(ctx context.Context, ids []string, fn func(*api.Worker) error) ([]*api.Worker, error) {
	var out []*api.Worker
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		out = out[:0]
		for _, id := range ids {
			w, err := updateWorkerTx(ctx, tx, id, fn)
			switch {
			case err == nil:
				out = append(out, w)
			case !skippable(err):
				return fmt.Errorf("worker %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update workers: %w", err)
	}
	return out, nil
}

// ListWorkers implements Store.
func (s *SQLite) ListWorkers(ctx context.Context) ([]*api.Worker, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT doc FROM workers ORDER BY join_time, id")
	if err != nil {
		return nil, fmt.Errorf("store: list workers: %w", err)
	}
	defer rows.Close()
	var out []*api.Worker
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("store: list workers: %w", err)
		}
		var w api.Worker
		if err := json.Unmarshal([]byte(doc), &w); err != nil {
			return nil, fmt.Errorf("store: decode worker: %w", err)
		}
		out = append(out, &w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list workers: %w", err)
	}
	return out, nil
}

// DeleteWorker implements Store.
func (s *SQLite) DeleteWorker(ctx context.Context, id string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM workers WHERE id = ?", id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete worker %s: %w", id, err)
	}
	return nil
}

// AppendUsage implements Store: the samples are written in one transaction.
func (s *SQLite) AppendUsage(ctx context.Context, pts []api.UsagePoint) error {
	if len(pts) == 0 {
		return nil
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, p := range pts {
			// Only a node's first sample sets its init_time; later ones are ignored.
			_, err := tx.ExecContext(ctx, "INSERT INTO usage_nodes (node, init_time) VALUES (?, ?) ON CONFLICT (node) DO NOTHING",
				p.Node, p.Time)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO usage (node, t, ratio) VALUES (?, ?, ?)", p.Node, p.Time, p.Ratio); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: append usage: %w", err)
	}
	return nil
}

// Usage implements Store.
func (s *SQLite) Usage(ctx context.Context) ([]api.Usage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT u.node, n.init_time, u.t, u.ratio
		FROM usage u JOIN usage_nodes n ON n.node = u.node
		ORDER BY u.node, u.rowid`)
	if err != nil {
		return nil, fmt.Errorf("store: usage: %w", err)
	}
	defer rows.Close()
	var out []api.Usage
	for rows.Next() {
		var node string
		var init, t, ratio float64
		if err := rows.Scan(&node, &init, &t, &ratio); err != nil {
			return nil, fmt.Errorf("store: usage: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Node != node {
			out = append(out, api.Usage{Node: node, InitTime: init})
		}
		u := &out[len(out)-1]
		u.Details = append(u.Details, [2]float64{t - init, ratio})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: usage: %w", err)
	}
	return out, nil
}

// Ping implements Store.
func (s *SQLite) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.path, err)
	}
	return nil
}

// Close implements Store.
func (s *SQLite) Close() error {
	var errs []error
	for _, db := range []*sql.DB{s.r, s.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// JobsChangedSince returns the jobs written after sequence number after,
// in write order (every write gives its job the next number), and the
// number to ask from next time. With after < 0 it returns only the head.
func (s *SQLite) JobsChangedSince(ctx context.Context, after int64, limit int) ([]*api.Job, int64, error) {
	if after < 0 {
		var head int64
		err := s.r.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM jobs").Scan(&head)
		return nil, head, err
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, "SELECT seq, job_name, doc FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?", after, limit)
	if err != nil {
		return nil, after, fmt.Errorf("jobs changed since %d: %w", after, err)
	}
	defer rows.Close()
	var out []*api.Job
	next := after
	for rows.Next() {
		var name, doc string
		if err := rows.Scan(&next, &name, &doc); err != nil {
			return nil, after, err
		}
		j, err := s.jobs.decode(name, doc)
		if err != nil {
			return nil, after, err
		}
		out = append(out, j)
	}
	return out, next, rows.Err()
}

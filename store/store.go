package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/rswarm/rswarm/api"
)

// Sentinel errors, wrapped with the record's name; test them with errors.Is.
var (
	// ErrNotFound means no job or worker has the given name.
	ErrNotFound = api.NewKind("store: not found", api.ErrNotFound)
	// ErrExists means a job of that name was already created.
	ErrExists = api.NewKind("store: already exists", api.ErrConflict)
)

// errRenamed is returned when an update function changes the record's key.
var errRenamed = errors.New("store: an update may not change the record's name")

// fnError carries the error an update function returned, so that it can be
// told apart from the store's own errors and handed back to the caller as is.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }
func (e fnError) Unwrap() error { return e.err }

// updateErr returns the error an update method reports for err: the update
// function's own error unchanged, anything else wrapped with what failed.
func updateErr(what string, err error) error {
	var fe fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// skippable reports whether UpdateJobs skips a job that failed with err:
// it is missing, or the update function refused it.
func skippable(err error) bool {
	var fe fnError
	return errors.Is(err, ErrNotFound) || errors.As(err, &fe)
}

// JobFilter selects jobs. Zero values match everything.
type JobFilter = api.JobFilter

// Store is durable state: jobs, workers and the worker utilisation history.
// Implementations are safe for concurrent use, and every method returns
// records the caller owns.
type Store interface {
	// CreateJob inserts a new job. ErrExists (wrapped) if a job of that name exists.
	CreateJob(ctx context.Context, j *api.Job) error
	// GetJob returns the job or ErrNotFound.
	GetJob(ctx context.Context, name string) (*api.Job, error)
	// UpdateJob atomically reads the job, calls fn on it and writes it back if fn returns nil,
	// returning the updated job. If fn returns an error nothing is written and that error is returned.
	// Atomic across goroutines AND across processes sharing the store (several rswarm processes open
	// the same SQLite file). fn may be called more than once (retry on conflict), so it must be pure.
	UpdateJob(ctx context.Context, name string, fn func(*api.Job) error) (*api.Job, error)
	// UpdateJobs is UpdateJob for many jobs in one transaction where the backend has them
	// (SQLite); names that do not exist are skipped; fn errors skip that job only (not an error).
	// Returns the jobs that were written.
	UpdateJobs(ctx context.Context, names []string, fn func(*api.Job) error) ([]*api.Job, error)
	// ListJobs returns matching jobs ordered by submit_time then job_name.
	ListJobs(ctx context.Context, f JobFilter) ([]*api.Job, error)
	// CountJobs counts matching jobs (Limit and Offset ignored).
	CountJobs(ctx context.Context, f JobFilter) (int, error)
	// DeleteJob removes the job; ErrNotFound if absent.
	DeleteJob(ctx context.Context, name string) error

	// PutWorker inserts or replaces the worker with w.ID.
	PutWorker(ctx context.Context, w *api.Worker) error
	// GetWorker returns the worker or ErrNotFound.
	GetWorker(ctx context.Context, id string) (*api.Worker, error)
	// UpdateWorker: same contract as UpdateJob.
	UpdateWorker(ctx context.Context, id string, fn func(*api.Worker) error) (*api.Worker, error)
	// UpdateWorkers is UpdateWorker for many workers, in one transaction
	// where the backend has them; the same skipping rules as UpdateJobs.
	UpdateWorkers(ctx context.Context, ids []string, fn func(*api.Worker) error) ([]*api.Worker, error)
	// ListWorkers returns all workers ordered by join_time then id.
	ListWorkers(ctx context.Context) ([]*api.Worker, error)
	// DeleteWorker removes the worker; ErrNotFound if absent.
	DeleteWorker(ctx context.Context, id string) error

	// AppendUsage appends utilisation samples (one transaction/batch). A node's first sample sets its InitTime.
	AppendUsage(ctx context.Context, pts []api.UsagePoint) error
	// Usage returns every node's utilisation series, ordered by node id; Details offsets are seconds since InitTime.
	Usage(ctx context.Context) ([]api.Usage, error)

	// JobsChangedSince is the change feed: jobs written after sequence
	// number after, in write order (each write gives its job the next
	// number), at most limit; and the number to ask from next time. With
	// after < 0 it returns only the current head.
	JobsChangedSince(ctx context.Context, after int64, limit int) ([]*api.Job, int64, error)

	// Ping checks the backend answers (used by /readyz).
	Ping(ctx context.Context) error
	// Close releases the backend's connections.
	Close() error
}

// jobNodes returns the distinct nodes of a job's tasks, in task order.
func jobNodes(j *api.Job) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range j.Info.Tasks {
		if t.Node != "" && !seen[t.Node] {
			seen[t.Node] = true
			out = append(out, t.Node)
		}
	}
	return out
}

// stateNames returns the names of the states, as stored.
func stateNames(ss []api.State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	return out
}

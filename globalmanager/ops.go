package globalmanager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Helpers of the cluster operations behind the original RESTfulSwarm GM
// endpoints, which live by subject: membership.go (join, leave, drained),
// tasks.go (single tasks, updates), checkpoint.go and migrate.go.

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// worker finds a registered worker by node ID, address or host name.
func (m *Manager) worker(ctx context.Context, field, ref string) (*api.Worker, error) {
	if ref == "" {
		return nil, api.Invalid(field, "required")
	}
	if w, err := m.st.GetWorker(ctx, ref); err == nil {
		return w, nil
	}
	ws, err := m.st.ListWorkers(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range ws {
		if w.Address == ref || w.Host == ref {
			return w, nil
		}
	}
	return nil, &api.FieldError{Field: field, Kind: api.ErrNotFound, Reason: fmt.Sprintf("%q is not a registered worker (give its node ID, address or host name)", ref)}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// refused classifies a worker's answer to a command: a worker that could
// not be reached stays unavailable (503); one that refused makes the
// operation unprocessable (422).
func refused(err error) error {
	if errors.Is(err, api.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, api.ErrUnprocessable) {
		return err
	}
	return fmt.Errorf("%w: %w", api.ErrUnprocessable, err)
}

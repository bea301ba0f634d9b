package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
)

// ImageExists reports whether the image ref is present locally.
func (c *Client) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := c.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("engine: inspect image %s: %w", ref, err)
	}
}

// Pull fetches the image ref from its registry and waits until the engine
// has finished. A registry that cannot be reached or an unknown image gives
// an error wrapping ErrImageNotFound with the engine's words; the engine's
// own retries are bounded by ctx.
func (c *Client) Pull(ctx context.Context, ref string) error {
	rc, err := c.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return pullError(ref, err)
	}
	defer rc.Close()
	// The engine reports failures inside the progress stream, not in the
	// status code: read it to the end and keep the first error.
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("engine: pull %s: %w", ref, ctx.Err())
			}
			return fmt.Errorf("engine: pull %s: reading progress: %w", ref, err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return pullError(ref, errors.New(m.ErrorDetail.Message))
		}
		if m.Error != "" {
			return pullError(ref, errors.New(m.Error))
		}
	}
}

func pullError(ref string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("engine: pull %s: %w", ref, err)
	}
	return fmt.Errorf("engine: pull %s: %w: %w", ref, ErrImageNotFound, err)
}

package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rswarm/rswarm/engine"
)

func TestImageExists(t *testing.T) {
	c := newClient(t)
	tests := []struct {
		name string
		ref  string
		want bool
	}{
		{"local image", testImage, true},
		{"absent image", "rswarm/nope:latest", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.ImageExists(ctxFor(t, 30*time.Second), tc.ref)
			if err != nil || got != tc.want {
				t.Errorf("ImageExists(%s) = %t, %v; want %t", tc.ref, got, err, tc.want)
			}
		})
	}
}

func TestPullFailsCleanly(t *testing.T) {
	c := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := c.Pull(ctx, "rswarm/nope:latest")
	if err == nil {
		t.Fatal("pull of an image that exists nowhere succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("pull ran into the deadline: %v", err)
	}
	if !errors.Is(err, engine.ErrImageNotFound) {
		t.Errorf("pull error = %v, want ErrImageNotFound", err)
	}
	t.Logf("pull: %v", err)
}

package engine_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api/apitest"
	"github.com/rswarm/rswarm/engine"
)

// TestStateRoundTrip: what a container added, changed and deleted, and
// what it wrote in a named volume, is exported as a state stream and
// imported into a fresh container, which then sees the same files.
func TestStateRoundTrip(t *testing.T) {
	c := newClient(t)
	vol, vol2 := unique(t), unique(t)
	// Registered first, so run after the containers are gone.
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "volume", "rm", vol, vol2).CombinedOutput(); err != nil {
			t.Logf("removing the test volumes: %v: %s", err, out)
		}
	})
	labels := testRun(t, c)
	ctx := ctxFor(t, 60*time.Second)
	_, src := run(t, c, labels, engine.RunSpec{
		Cmd:    []string{"sh", "-c", "mkdir -p /new/sub && echo deep > /new/sub/f && echo changed > /etc/motd && rm /bin/vi && echo v > /vol/x && touch /ready && exec sleep 3600"},
		Mounts: []engine.Mount{{Source: vol, Target: "/vol"}},
	})
	apitest.Eventually(t, 30*time.Second, func() error {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_, err := c.ExportState(ctx, src, tw)
		if err == nil && !strings.Contains(buf.String(), "fs/ready") {
			err = errors.New("the container has not written its files yet")
		}
		return err
	})
	if err := c.Pause(ctx, src); err != nil {
		t.Fatal(err)
	}
	var state bytes.Buffer
	tw := tar.NewWriter(&state)
	ex, err := c.ExportState(ctx, src, tw)
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ex.Deleted, "/bin/vi") || ex.Paths < 3 {
		t.Errorf("exported %+v", ex)
	}
	if err := c.Unpause(ctx, src); err != nil {
		t.Fatal(err)
	}

	dst, err := c.Create(ctx, engine.RunSpec{Name: unique(t), Image: testImage, Labels: labels, StopTimeout: 1,
		Cmd:    []string{"sh", "-c", "cat /new/sub/f /etc/motd /vol/x && exec sleep 3600"},
		Mounts: []engine.Mount{{Source: vol2, Target: "/vol"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The volume is named differently here: map the source's name onto it.
	im, err := c.ImportState(ctx, dst, renameVolume(t, state.Bytes(), vol, vol2), map[string]string{vol2: "/vol"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(im.Deleted, "/bin/vi") || !slices.Contains(im.Volumes, vol2) || im.Checkpoint {
		t.Errorf("imported %+v", im)
	}
	if err := c.Start(ctx, dst); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, 30*time.Second, func() error {
		lines, err := c.Logs(ctx, dst, 10)
		if err != nil {
			return err
		}
		if got := strings.Join(lines, "|"); got != "deep|changed|v" {
			return fmt.Errorf("output %q", got)
		}
		return nil
	})
}

// TestImportStateRefusesEscapes: entries that would land outside the
// container's root, or in a volume the task does not mount, are refused.
func TestImportStateRefusesEscapes(t *testing.T) {
	c := newClient(t)
	labels := testRun(t, c)
	ctx := ctxFor(t, 30*time.Second)
	for _, name := range []string{"fs/../../etc/passwd", "volumes/other/x", "checkpoint/x"} {
		t.Run(name, func(t *testing.T) {
			id, err := c.Create(ctx, engine.RunSpec{Name: unique(t), Image: testImage, Labels: labels, Cmd: []string{"true"}, StopTimeout: 1})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
			_, _ = tw.Write([]byte("x"))
			_ = tw.Close()
			if _, err := c.ImportState(ctx, id, &buf, nil, ""); err == nil {
				t.Errorf("entry %q was accepted", name)
			}
		})
	}
}

// renameVolume rewrites volumes/<from>/ entries of a state stream to volumes/<to>/.
func renameVolume(t *testing.T, state []byte, from, to string) *bytes.Reader {
	t.Helper()
	var out bytes.Buffer
	tr := tar.NewReader(bytes.NewReader(state))
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		h.Name = strings.Replace(h.Name, "volumes/"+from, "volumes/"+to, 1)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(out.Bytes())
}

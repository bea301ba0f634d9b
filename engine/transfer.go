package engine

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// A task's state, as it moves between hosts, is one tar stream:
//
//	sandbox          (empty) a live move's checkpoint was taken in a sandbox
//	                 (see MoveOut)
//	fs/<path>        what the container added or changed in its filesystem
//	                 (ContainerDiff, then CopyFromContainer of each path)
//	deleted          the paths it deleted, one a line
//	volumes/<name>/… the contents of its named volumes (see ExportVolume)
//	checkpoint/…     a CRIU checkpoint's files, for a live move
//
// in that order. ExportState writes it, ImportState reads it back
// (skipping sandbox, which Runtime.MoveOut writes and Runtime.PrepareIn
// reads).

// sandboxEntry is the stream's first entry when the task was checkpointed
// in a sandbox.
const sandboxEntry = "sandbox"

// Exported describes what ExportState wrote.
type Exported struct {
	Paths   int      // changed paths copied (a new directory counts once)
	Deleted []string // paths the container deleted
}

// Pause freezes a running container's processes.
func (c *Client) Pause(ctx context.Context, id string) error {
	return classify(c.cli.ContainerPause(ctx, id), "engine: pause container", id)
}

// Unpause thaws a paused container.
func (c *Client) Unpause(ctx context.Context, id string) error {
	return classify(c.cli.ContainerUnpause(ctx, id), "engine: unpause container", id)
}

// Kill sends SIGKILL to a running (or paused) container's processes. It
// gives ErrConflict for a container that is not running.
func (c *Client) Kill(ctx context.Context, id string) error {
	return classify(c.cli.ContainerKill(ctx, id, "KILL"), "engine: kill container", id)
}

// RemovePaths deletes paths (absolute, inside the container) in running
// container id, with the container's own rm (rm -rf --).
func (c *Client) RemovePaths(ctx context.Context, id string, paths []string) error {
	ex, err := c.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: append([]string{"rm", "-rf", "--"}, paths...)})
	if err != nil {
		return classify(err, "engine: exec in container", id)
	}
	if err := c.cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
		return classify(err, "engine: exec in container", id)
	}
	for {
		in, err := c.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return classify(err, "engine: exec in container", id)
		}
		if !in.Running {
			if in.ExitCode != 0 {
				return fmt.Errorf("engine: rm -rf in container %s exited %d", id, in.ExitCode)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ExportState writes the filesystem changes of container id (running,
// paused or stopped) as the fs/ and deleted parts of a state stream to tw.
func (c *Client) ExportState(ctx context.Context, id string, tw *tar.Writer) (Exported, error) {
	var ex Exported
	changes, err := c.cli.ContainerDiff(ctx, id)
	if err != nil {
		return ex, classify(err, "engine: container changes", id)
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	var copied []string // new directories copied whole
	under := func(p string) bool {
		for _, d := range copied {
			if strings.HasPrefix(p, d+"/") {
				return true
			}
		}
		return false
	}
	for _, ch := range changes {
		p := ch.Path
		if under(p) {
			continue
		}
		if ch.Kind == container.ChangeDelete {
			ex.Deleted = append(ex.Deleted, p)
			continue
		}
		st, err := c.cli.ContainerStatPath(ctx, id, p)
		if err != nil {
			return ex, classify(err, "engine: stat "+p+" in container", id)
		}
		if st.Mode.IsDir() {
			if ch.Kind != container.ChangeAdd {
				continue // a changed directory: its changed entries are listed too
			}
			copied = append(copied, p)
		}
		if err := c.copyOut(ctx, id, p, tw); err != nil {
			return ex, err
		}
		ex.Paths++
	}
	if err := c.exportVolumes(ctx, id, tw); err != nil {
		return ex, err
	}
	if len(ex.Deleted) > 0 {
		body := strings.Join(ex.Deleted, "\n") + "\n"
		if err := tw.WriteHeader(&tar.Header{Name: "deleted", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return ex, err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return ex, err
		}
	}
	return ex, nil
}

// copyOut copies path p of container id into tw under fs/, with its full path.
func (c *Client) copyOut(ctx context.Context, id, p string, tw *tar.Writer) error {
	rc, _, err := c.cli.CopyFromContainer(ctx, id, p)
	if err != nil {
		return classify(err, "engine: copy "+p+" from container", id)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	parent := strings.TrimPrefix(path.Dir(p), "/")
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("engine: copy %s from container %s: %w", p, id, err)
		}
		h.Name = path.Join("fs", parent, h.Name)
		if h.Typeflag == tar.TypeLink {
			h.Linkname = path.Join("fs", parent, h.Linkname)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// Imported describes what ImportState found.
type Imported struct {
	Deleted    []string // paths deleted on the source (not applied: see ImportState)
	Volumes    []string // named volumes whose contents arrived
	Checkpoint bool     // checkpoint files were written to ckDir
}

// ImportState reads a state stream from r into container id (created, not
// started): fs/ entries are copied into its filesystem, volumes/<name>/
// entries into the named volumes given by volumeTarget (volume name ->
// mount point in the container), and checkpoint/ entries are written under
// ckDir (refused when ckDir is ""). Deletions cannot be applied through the
// Engine API to a container that does not run: they are returned, for the
// caller to apply once it runs (RemovePaths).
func (c *Client) ImportState(ctx context.Context, id string, r io.Reader, volumeTarget map[string]string, ckDir string) (Imported, error) {
	var im Imported
	tr := tar.NewReader(bufio.NewReader(r))
	h, err := tr.Next()
	if err == nil && path.Clean(h.Name) == sandboxEntry {
		h, err = tr.Next()
	}
	// The fs/ and volumes/ parts go to the engine as one archive rooted at
	// "/", rewritten on the fly; the rest is handled here.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := c.cli.CopyToContainer(ctx, id, "/", pr, container.CopyToContainerOptions{AllowOverwriteDirWithFile: false})
		pr.CloseWithError(err) // unblock the writer if the engine gave up
		done <- err
	}()
	tw := tar.NewWriter(pw)
	fail := func(e error) (Imported, error) {
		pw.CloseWithError(e)
		<-done
		return im, e
	}
	seenVol := map[string]bool{}
	for ; err == nil; h, err = tr.Next() {
		name := path.Clean(h.Name)
		var dst string
		if strings.HasPrefix(name, "fs/") {
			dst = strings.TrimPrefix(name, "fs/")
		} else if strings.HasPrefix(name, "volumes/") {
			vol, rest, _ := strings.Cut(strings.TrimPrefix(name, "volumes/"), "/")
			target, ok := volumeTarget[vol]
			if !ok {
				return fail(fmt.Errorf("engine: state stream has volume %q, which the task does not mount", vol))
			}
			if !seenVol[vol] {
				seenVol[vol] = true
				im.Volumes = append(im.Volumes, vol)
			}
			if rest == "" {
				continue // the volume's own root: the mount point exists
			}
			dst = strings.TrimPrefix(path.Join(target, rest), "/")
		} else {
			break // everything for the engine has gone by
		}
		if !safeRel(dst) {
			return fail(fmt.Errorf("engine: state stream entry %q leaves the container's root", h.Name))
		}
		h.Name = dst
		if h.Typeflag == tar.TypeLink {
			h.Linkname = strings.TrimPrefix(strings.TrimPrefix(path.Clean(h.Linkname), "fs/"), "/")
		}
		if werr := tw.WriteHeader(h); werr != nil {
			return fail(werr)
		}
		if _, werr := io.Copy(tw, tr); werr != nil {
			return fail(werr)
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fail(err)
	}
	if cerr := tw.Close(); cerr != nil {
		return fail(cerr)
	}
	pw.Close()
	if cerr := <-done; cerr != nil {
		return im, classify(cerr, "engine: copy state into container", id)
	}
	// The rest: deletions and the checkpoint.
	for ; err == nil; h, err = tr.Next() {
		name := path.Clean(h.Name)
		switch {
		case name == "deleted":
			b, rerr := io.ReadAll(io.LimitReader(tr, 16<<20))
			if rerr != nil {
				return im, rerr
			}
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if l != "" {
					im.Deleted = append(im.Deleted, l)
				}
			}
		case strings.HasPrefix(name, "checkpoint/") || name == "checkpoint":
			if ckDir == "" {
				return im, errors.New("engine: state stream has a checkpoint, but this is not a live move")
			}
			im.Checkpoint = true
			if werr := writeEntry(ckDir, strings.TrimPrefix(strings.TrimPrefix(name, "checkpoint"), "/"), h, tr); werr != nil {
				return im, werr
			}
		default:
			return im, fmt.Errorf("engine: unexpected entry %q in a state stream (out of order?)", h.Name)
		}
	}
	if !errors.Is(err, io.EOF) {
		return im, err
	}
	return im, nil
}

// safeRel reports whether p is a relative path that stays below its root.
func safeRel(p string) bool {
	return p != "" && !path.IsAbs(p) && p != ".." && !strings.HasPrefix(p, "../")
}

// writeEntry writes one tar entry (a directory or a regular file) below dir.
func writeEntry(dir, rel string, h *tar.Header, r io.Reader) error {
	if rel != "" && !safeRel(path.Clean(rel)) {
		return fmt.Errorf("engine: checkpoint entry %q leaves its directory", h.Name)
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	switch h.Typeflag {
	case tar.TypeDir:
		return os.MkdirAll(p, 0o700)
	case tar.TypeReg:
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, os.FileMode(h.Mode)&0o777)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	// No links: the directory is fresh, so with none made in it no path
	// below it can lead out of it.
	return fmt.Errorf("engine: checkpoint entry %q has unsupported type %c (only files and directories)", h.Name, h.Typeflag)
}

// ExportDir writes the files below dir into tw under prefix (used for a
// CRIU checkpoint directory).
func ExportDir(dir, prefix string, tw *tar.Writer) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = path.Join(prefix, filepath.ToSlash(rel))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
}

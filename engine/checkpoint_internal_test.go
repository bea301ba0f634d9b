package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
)

func TestCheckpointError(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "criu-dump.log")
	const logText = "(00.011) Warn (criu/kerndat.c:1): nothing\n" +
		"(00.011782) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n" +
		"(00.011784) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n" +
		"(00.011785) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed\n"
	if err := os.WriteFile(log, []byte(logText), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		err     error
		want    error
		mention string
	}{
		{"not experimental (no route)", fmt.Errorf("%w: page not found", cerrdefs.ErrNotFound),
			ErrCheckpointUnsupported, "experimental mode"},
		{"not experimental (restore)", fmt.Errorf("%w: checkpoint is only supported in experimental mode", cerrdefs.ErrInvalidArgument),
			ErrCheckpointUnsupported, "experimental"},
		{"no criu", fmt.Errorf("%w: runc did not terminate successfully: exit status 1: CRIU version check failed: exec: \"criu\": executable file not found in $PATH path= /x/criu-dump.log: unknown", cerrdefs.ErrInternal),
			ErrCheckpointUnsupported, "CRIU is not installed"},
		{"criu fails", fmt.Errorf("%w: runc did not terminate successfully: exit status 1: criu failed: type DUMP errno 0 path= %s: unknown", cerrdefs.ErrInternal, log),
			ErrCheckpointUnsupported, "Unexpected rt vDSO area bounds; vdso: Failed to fill self vdso symtable"},
		{"criu fails, log gone", fmt.Errorf("%w: criu failed: type DUMP errno 0 path= /nonexistent/criu-dump.log: unknown", cerrdefs.ErrInternal),
			ErrCheckpointUnsupported, "criu failed"},
		{"no container", fmt.Errorf("%w: No such container: c1", cerrdefs.ErrNotFound), ErrNotFound, "c1"},
		{"no checkpoint", fmt.Errorf("%w: checkpoint cp1 does not exist for container c1", cerrdefs.ErrNotFound), ErrNotFound, "cp1"},
		{"not running", fmt.Errorf("%w: Container c1 is not running", cerrdefs.ErrConflict), ErrConflict, "not running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkpointError(tc.err, "engine: checkpoint container", "c1", "cp1")
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

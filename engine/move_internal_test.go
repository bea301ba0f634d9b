package engine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"io"
	"testing"
)

// TestStartsInSandbox: the mark a live move out of a sandbox puts first in
// its state stream is seen without consuming anything of the stream, and
// not seen in a stream without it.
func TestStartsInSandbox(t *testing.T) {
	stream := func(names ...string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, n := range names {
			if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(tw, "x\n"); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	tests := []struct {
		name   string
		stream []byte
		want   bool
	}{
		{"marked", stream(sandboxEntry, "fs/state", "checkpoint/inventory.img"), true},
		{"unmarked", stream("fs/state", "checkpoint/inventory.img"), false},
		{"marked later only", stream("fs/state", sandboxEntry), false},
		{"a file of that name in the container", stream("fs/sandbox"), false},
		{"empty", nil, false},
		{"cut short", stream(sandboxEntry)[:100], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(tt.stream))
			if got := startsInSandbox(br); got != tt.want {
				t.Errorf("startsInSandbox = %v, want %v", got, tt.want)
			}
			rest, err := io.ReadAll(br)
			if err != nil || !bytes.Equal(rest, tt.stream) {
				t.Errorf("the stream after the look: %d bytes (%v), want all %d", len(rest), err, len(tt.stream))
			}
		})
	}
}

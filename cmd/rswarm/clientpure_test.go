package main

import (
	"runtime/debug"
	"slices"
	"testing"
	"time"
)

// Table tests of the client commands' pure parts.

func TestCoreBar(t *testing.T) {
	tests := []struct {
		name               string
		busy, total, width int
		want               string
	}{
		{"idle", 0, 4, 16, "[....] 0/4"},
		{"one cell a core up to the width", 3, 8, 16, "[###.....] 3/8"},
		{"full", 8, 8, 16, "[########] 8/8"},
		// 64 cores in 16 cells: 4 cores a cell; 10 busy = 2.5 cells, rounded to 3 (round half away from zero).
		{"scaled beyond the width", 10, 64, 16, "[###.............] 10/64"},
		// 1 of 64 would round to 0 cells: a busy core always shows.
		{"one busy core is never an empty bar", 1, 64, 16, "[#...............] 1/64"},
		// 63 of 64 would round to 16 cells: a free core always shows.
		{"one free core is never a full bar", 63, 64, 16, "[###############.] 63/64"},
		{"more busy than cores is clamped", 9, 8, 16, "[########] 8/8"},
		{"no cores", 0, 0, 16, "[] 0/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := coreBar(tt.busy, tt.total, tt.width); got != tt.want {
				t.Errorf("coreBar(%d, %d, %d) = %q, want %q", tt.busy, tt.total, tt.width, got, tt.want)
			}
		})
	}
}

func TestBytesIEC(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0B"}, {1023, "1023B"}, {1024, "1KiB"}, {10 << 20, "10MiB"},
		{1536 << 20, "1.5GiB"}, {64 << 30, "64GiB"}, {1 << 40, "1TiB"},
	}
	for _, tt := range tests {
		if got := bytesIEC(tt.in); got != tt.want {
			t.Errorf("bytesIEC(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAge(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		t    float64
		want string
	}{
		{0, "-"}, {1_700_000_000 - 3, "3s"}, {1_700_000_000 - 125, "2m"}, {1_700_000_000 - 3*3600, "3h"},
		{1_700_000_000 - 5*86400, "5d"}, {1_700_000_000 + 2, "0s"},
	}
	for _, tt := range tests {
		if got := age(now, tt.t); got != tt.want {
			t.Errorf("age(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestNewLines(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur []string
		want      []string
	}{
		{"first read prints all", nil, []string{"a", "b"}, []string{"a", "b"}},
		{"nothing new", []string{"a", "b"}, []string{"a", "b"}, []string{}},
		{"two new lines", []string{"a", "b"}, []string{"a", "b", "c", "d"}, []string{"c", "d"}},
		// The window moved on (tail 3): a b c, then c d e: d and e are new.
		{"the window slid", []string{"a", "b", "c"}, []string{"c", "d", "e"}, []string{"d", "e"}},
		// Nothing in common: more lines came than the window holds.
		{"more than the window", []string{"a", "b"}, []string{"x", "y"}, []string{"x", "y"}},
		{"the task ended without output", []string{"a"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newLines(tt.prev, tt.cur)
			if len(got) != len(tt.want) || (len(got) > 0 && !slices.Equal(got, tt.want)) {
				t.Errorf("newLines(%q, %q) = %q, want %q", tt.prev, tt.cur, got, tt.want)
			}
		})
	}
}

func TestReadBuildVersion(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/rswarm/rswarm", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-07T09:00:00Z"},
			{Key: "vcs.modified", Value: "true"}, {Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"}}}
	tests := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"release with a dirty commit", info, true, "v1.2.3, commit 0123456789ab+dirty, 2026-12-07T09:00:00Z, go1.26.0, linux/amd64"},
		{"a checkout without VCS stamping", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, true, "(devel), go1.26.0"},
		{"no build information", nil, false, "unknown, unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readBuildVersion(tt.info, tt.ok).String(); got != tt.want {
				t.Errorf("version = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestClosestConfigKey(t *testing.T) {
	known := map[string]bool{"strategy": true, "frontend-addr": true, "workers": true, "cores": true}
	tests := []struct{ key, want string }{
		{"stratgy", "strategy"},            // one letter missing
		{"frontend_addr", "frontend-addr"}, // underscore for dash
		{"worker", "workers"},
		{"colour", ""}, // nothing near
	}
	for _, tt := range tests {
		if got := closest(tt.key, known); got != tt.want {
			t.Errorf("closest(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestParseLogLevel(t *testing.T) {
	for _, ok := range []string{"debug", "INFO", "warn", "warning", "error", ""} {
		if _, err := parseLogLevel(ok); err != nil {
			t.Errorf("parseLogLevel(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"bogus", "verbose", "3"} {
		if _, err := parseLogLevel(bad); err == nil {
			t.Errorf("parseLogLevel(%q) accepted", bad)
		}
	}
}

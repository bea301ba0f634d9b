package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// Fuzz targets (issue 10): run one with, e.g.,
//
//	go test -run '^$' -fuzz '^FuzzJobValidate$' -fuzztime 90s ./api
//
// The seeds are below; what the fuzzer finds is kept in testdata/fuzz.

// FuzzJobValidate decodes and validates arbitrary bodies: no panic, and an
// accepted job keeps the promises later roles rely on.
func FuzzJobValidate(f *testing.F) {
	f.Add([]byte(`{"job_name":"j","job_info":{"tasks":{"j_1":{"container_name":"j_1","image":"rswarm/busybox:latest","req_cores":1,"command":"sleep 1","mem_limit":"16m"}}}}`))
	f.Add([]byte(`{"job_name":"j","job_info":{"network":{"name":"n","driver":"overlay","subnet":"10.0.0.0/24"},"tasks":{"j_a":{"container_name":"j_a","image":"a","req_cores":2,"cpuset_cpus":"0-1","node":"w","volumes":{"v":{"bind":"/d","mode":"ro"}},"ports":{"80/tcp":8080},"environment":{"A":"b"}}}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"job_name":"` + strings.Repeat("a", 130) + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := ParseJob(b)
		if err != nil {
			return
		}
		if err := j.Validate(DefaultLimits()); err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("Validate returned %T %v, want a *FieldError", err, err)
			}
			return
		}
		if ValidName("job_info.network.name", j.Info.Network.Name) != nil {
			t.Fatalf("accepted job with network name %q", j.Info.Network.Name)
		}
		for _, task := range j.Info.Tasks {
			if !strings.HasPrefix(task.ContainerName, j.Name+"_") || task.ReqCores < 1 || len(task.Image) > maxImageLen {
				t.Fatalf("accepted task %+v of job %q", task, j.Name)
			}
			for host := range task.Volumes {
				if strings.HasPrefix(host, "/") {
					t.Fatalf("accepted host path %q without AllowHostVolumes", host)
				}
			}
			if _, err := SplitCommand(task.Command); err != nil {
				t.Fatalf("accepted command %q that does not split: %v", task.Command, err)
			}
			if err := CheckTask(j.Name, *task, DefaultLimits()); err != nil {
				t.Fatalf("a worker would refuse an accepted task: %v", err)
			}
		}
		// What was accepted survives a round trip through JSON.
		out, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseJob(out); err != nil {
			t.Fatalf("re-parsing an accepted job: %v\n%s", err, out)
		}
	})
}

// FuzzSplitCommand: no panic, and a command without quoting splits on the
// shell's blanks (space, tab, newline: a POSIX shell's IFS) and nothing else.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"sleep 1", `sh -c 'echo "a b"'`, `a\ b "c\"d" ''`, `'unterminated`, "\\", "x\ty\nz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitCommand(s)
		if err != nil {
			return
		}
		if !strings.ContainsAny(s, `'"\`) {
			want := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
			if !slices.Equal(words, want) && !(len(words) == 0 && len(want) == 0) {
				t.Fatalf("SplitCommand(%q) = %q, want %q", s, words, want)
			}
		}
	})
}

// FuzzParseCpuset: no panic; accepted sets are sorted, distinct,
// non-negative, and FormatCpuset writes them back to the same set.
func FuzzParseCpuset(f *testing.F) {
	for _, s := range []string{"0", "0-3", "1,3,5-7", "3-1", "0,0", "-1", "99999999999999999999", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cores, err := ParseCpuset(s)
		if err != nil {
			return
		}
		for i, c := range cores {
			if c < 0 || (i > 0 && cores[i-1] >= c) {
				t.Fatalf("ParseCpuset(%q) = %v: not sorted, distinct and non-negative", s, cores)
			}
		}
		again, err := ParseCpuset(FormatCpuset(cores))
		if err != nil || !slices.Equal(again, cores) {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}

// FuzzParseMem: no panic; accepted sizes are positive.
func FuzzParseMem(f *testing.F) {
	for _, s := range []string{"16m", "1g", "512k", "100", "1.5g", "0", "-1m", "9999999999999g", "b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseMem(s)
		if err == nil && n <= 0 {
			t.Fatalf("ParseMem(%q) = %d, want a positive size or an error", s, n)
		}
	})
}

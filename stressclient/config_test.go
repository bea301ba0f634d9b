package stressclient_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rswarm/rswarm/stressclient"
)

func TestReadConfigFileOriginals(t *testing.T) {
	// The testdata files are copies of the original's Client/*.json, as
	// committed (and, for the "-early" ones, an earlier commit).
	cases := []struct {
		name  string
		files []string
		skip  map[string]bool // keys given as flags
		want  func(p *stressclient.Params)
	}{
		{
			name:  "StressClientInfo.json sets the job shape, interval and turns",
			files: []string{"StressClientInfo.json"},
			want: func(p *stressclient.Params) {
				p.Subnet, p.Image, p.TaskCount, p.TaskCores, p.TaskMemMB = "129.59.0.0/16", "aduermael/sleeper", 4, 2, 50
				p.Interval, p.Turns = time.Second, 1
			},
		},
		{
			name:  "an early StressClientInfo.json without run_count keeps the default turns",
			files: []string{"StressClientInfo-early.json"},
			want: func(p *stressclient.Params) {
				p.Subnet, p.Image, p.TaskCount, p.TaskCores, p.TaskMemMB, p.Interval = "10.52.1.0/24", "hello-world", 1, 4, 50, 5*time.Second
			},
		},
		{
			name:  "the profile file is merged over the common one",
			files: []string{"StressClientInfo.json", "BurstyStressClientInfo.json"},
			want: func(p *stressclient.Params) {
				p.Subnet, p.Image, p.TaskCount, p.TaskCores, p.TaskMemMB = "129.59.0.0/16", "aduermael/sleeper", 4, 2, 50
				p.Interval, p.Turns, p.Lambda = time.Second, 1, 0.5
			},
		},
		{
			name:  "flags given override the files",
			files: []string{"StressClientInfo.json", "IncrementalStressClientInfo-early.json"},
			skip:  map[string]bool{"image_name": true, "constant": true, "run_count": true},
			want: func(p *stressclient.Params) {
				p.Subnet, p.TaskCount, p.TaskCores, p.TaskMemMB, p.Interval = "129.59.0.0/16", 4, 2, 50, time.Second
				p.Coefficient = 1
			},
		},
		{name: "SteadyStressClientInfo.json", files: []string{"SteadyStressClientInfo.json"}, want: func(p *stressclient.Params) { p.FeedConstant = 1 }},
		{name: "IncrementalStressClientInfo.json", files: []string{"IncrementalStressClientInfo.json"}, want: func(p *stressclient.Params) { p.Coefficient, p.Constant = 1, 0 }},
		{name: "an early IncrementalStressClientInfo.json", files: []string{"IncrementalStressClientInfo-early.json"}, want: func(p *stressclient.Params) { p.Coefficient, p.Constant = 1, -96 }},
		{name: "RandomStressClientInfo.json", files: []string{"RandomStressClientInfo.json"}, want: func(p *stressclient.Params) { p.LowerBound, p.UpperBound = 1, 3 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fc stressclient.FileConfig
			for _, f := range tc.files {
				c, unknown, err := stressclient.ReadConfigFile("testdata/" + f)
				if err != nil {
					t.Fatal(err)
				}
				if len(unknown) > 0 {
					t.Fatalf("%s: unknown keys %v", f, unknown)
				}
				fc = fc.Merge(c)
			}
			// Start from values no file holds, so that every key set is visible.
			got := stressclient.Params{Turns: 77, Interval: 77 * time.Second, Image: "x", TaskCount: 77, TaskCores: 77, TaskMemMB: 77,
				FeedConstant: 77, Lambda: 77, Coefficient: 77, Constant: 77, LowerBound: 77, UpperBound: 77}
			want := got
			tc.want(&want)
			fc.Apply(&got, func(k string) bool { return tc.skip[k] })
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name    string
		data    string
		unknown []string
		bad     string // part of the error, "" when it parses
	}{
		{name: "YAML with the same keys", data: "task_count: 3\ntime_interval: 0.5\n"},
		{name: "rswarm flag names are returned as unknown keys", data: `{"task_count": 3, "fe": "http://x", "concurrency": 8}`, unknown: []string{"concurrency", "fe"}},
		{name: "a fractional task count", data: `{"task_count": 2.5}`, bad: "task_count must be an integer"},
		{name: "a text lambda that is not a number", data: `{"lambda": "fast"}`, bad: "lambda must be a number"},
		{name: "a subnet that is a number", data: `{"subnet": 10}`, bad: "subnet must be a string"},
		{name: "not an object", data: `[1, 2]`, bad: "not a JSON or YAML object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, unknown, err := stressclient.ParseConfig([]byte(tc.data))
			if tc.bad != "" {
				if !errors.Is(err, stressclient.ErrInvalid) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("got %v, want an ErrInvalid saying %q", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(unknown, tc.unknown) {
				t.Fatalf("unknown keys %v, want %v", unknown, tc.unknown)
			}
		})
	}
}

func TestReadTrace(t *testing.T) {
	cases := []struct {
		name string
		data string
		want []stressclient.TraceEntry
		bad  string
	}{
		{name: "with a header", data: "offset,tasks,cores,duration\n0,1,2,3\n", want: []stressclient.TraceEntry{{0, 1, 2, 3}}},
		{name: "without a header, with spaces and comments", data: "# jobs\n1.5, 2, 1, 0.25\n\n4,1,1,10\n",
			want: []stressclient.TraceEntry{{1.5, 2, 1, 0.25}, {4, 1, 1, 10}}},
		{name: "a missing field", data: "0,1,2\n", bad: "want 4 fields"},
		{name: "a fractional task count", data: "0,1.5,2,3\n", bad: "tasks \"1.5\" is not an integer"},
		{name: "a negative offset", data: "-1,1,2,3\n", bad: "offset must be"},
		{name: "no cores", data: "0,1,0,3\n", bad: "cores per task"},
		{name: "a header only", data: "offset,tasks,cores,duration\n", bad: "no entries"},
		{name: "a word on a later line", data: "0,1,1,1\nten,1,1,1\n", bad: "offset \"ten\" is not a number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := stressclient.ReadTrace(strings.NewReader(tc.data))
			if tc.bad != "" {
				if !errors.Is(err, stressclient.ErrInvalid) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("got %v, want an ErrInvalid saying %q", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

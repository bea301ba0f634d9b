package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// decodeTasksReference is the straightforward decoder (json.Decoder tokens
// and a second Unmarshal per task) that Tasks.UnmarshalJSON replaced for
// speed; the two must agree on every input.
func decodeTasksReference(data []byte) (Tasks, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &FieldError{Field: "job_info.tasks", Reason: "must be an object keyed by container name"}
	}
	out := Tasks{}
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		path := "job_info.tasks." + key
		if seen[key] {
			return nil, &FieldError{Field: path, Reason: "duplicate task key"}
		}
		seen[key] = true
		var t Task
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, prefixField(err, path)
		}
		if t.ContainerName == "" {
			t.ContainerName = key
		}
		if t.ContainerName != key {
			return nil, &FieldError{Field: path + ".container_name", Reason: fmt.Sprintf("must equal its task key %q, got %q", key, t.ContainerName)}
		}
		out = append(out, &t)
	}
	return out, nil
}

// manyTasks is an object of n tasks, the last one named last.
func manyTasks(n int, last string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n - 1 {
		fmt.Fprintf(&b, `"t%d":{"req_cores":1},`, i)
	}
	fmt.Fprintf(&b, `%q:{"req_cores":2}}`, last)
	return b.String()
}

func TestTasksUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // task names in order
		wantErr string
	}{
		{name: "null", in: `null`},
		{name: "empty object", in: ` { } `, want: []string{}},
		{name: "order kept", in: `{"b":{"req_cores":1},"a":{"req_cores":2},"c":{}}`, want: []string{"b", "a", "c"}},
		{name: "whitespace everywhere", in: "\n{ \"a\" :\t{ \"req_cores\" : 1 } ,\r\n \"b\":{} }\n", want: []string{"a", "b"}},
		{name: "escaped key", in: `{"a\"b\u00e9":{}}`, want: []string{"a\"bé"}},
		{name: "braces inside strings", in: `{"a":{"command":"sh -c '}]{[' \"x\"","environment":{"K":"}"}}}`, want: []string{"a"}},
		{name: "null task", in: `{"a":null}`, want: []string{"a"}},
		{name: "container name equal to key", in: `{"a":{"container_name":"a"}}`, want: []string{"a"}},
		{name: "container name differs", in: `{"a":{"container_name":"b"}}`, wantErr: `job_info.tasks.a.container_name: must equal its task key "a", got "b"`},
		{name: "duplicate key", in: `{"a":{},"a":{}}`, wantErr: "job_info.tasks.a: duplicate task key"},
		{name: "duplicate key beyond sixteen tasks", in: manyTasks(40, "t3"), wantErr: "job_info.tasks.t3: duplicate task key"},
		{name: "forty tasks", in: manyTasks(40, "last"), want: nil},
		{name: "array", in: `[]`, wantErr: "must be an object keyed by container name"},
		{name: "string", in: `"a"`, wantErr: "must be an object keyed by container name"},
		{name: "wrong field type", in: `{"a":{"req_cores":"two"}}`, wantErr: "job_info.tasks.a.req_cores"},
		{name: "task not an object", in: `{"a":3}`, wantErr: "job_info.tasks.a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Tasks
			err := got.UnmarshalJSON([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				names := []string{}
				for _, task := range got {
					names = append(names, task.ContainerName)
				}
				if tt.in == "null" {
					names = nil
				}
				if !reflect.DeepEqual(names, tt.want) {
					t.Fatalf("tasks %q, want %q", names, tt.want)
				}
			}
			agree(t, []byte(tt.in))
		})
	}
}

// agree checks that Tasks.UnmarshalJSON, reached through json.Unmarshal as
// the store reaches it, gives what the reference decoder gives.
func agree(t *testing.T, in []byte) {
	t.Helper()
	ref, refErr := decodeTasksReference(in)
	if refErr == nil && !json.Valid(in) {
		refErr = fmt.Errorf("invalid JSON")
	}
	var got Tasks
	err := json.Unmarshal(in, &got)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("input %q: error %v, reference error %v", in, err, refErr)
	}
	if err == nil && !reflect.DeepEqual(got, ref) {
		t.Fatalf("input %q: got %+v, reference %+v", in, got, ref)
	}
}

func FuzzTasksUnmarshalJSON(f *testing.F) {
	for _, s := range []string{`null`, `{}`, `{"a":{"req_cores":1}}`, `{"a":{},"a":{}}`, `{"a\"":{"command":"}"}}`,
		`{"a":{"container_name":"b"}}`, `[1]`, `{"a":1}`, manyTasks(20, "t2")} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { agree(t, in) })
}

func BenchmarkTasksUnmarshalJSON(b *testing.B) {
	j := &Job{Name: "j", Info: JobInfo{Network: Network{Name: "n", Driver: "overlay"}, Tasks: Tasks{}}}
	for i := range 4 {
		name := fmt.Sprintf("j_task%d", i+1)
		j.Info.Tasks = append(j.Info.Tasks, &Task{ContainerName: name, Image: "rswarm/busybox", Command: "sleep 5", ReqCores: 1,
			CpusetCpus: "3", MemLimit: "16m", Node: "sim-0042", Status: Running, Environment: map[string]string{"A": "b"}})
	}
	doc, err := json.Marshal(j)
	if err != nil {
		b.Fatal(err)
	}
	tasks, err := json.Marshal(j.Info.Tasks)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("tasks", func(b *testing.B) {
		for b.Loop() {
			var out Tasks
			if err := json.Unmarshal(tasks, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tasks reference", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeTasksReference(tasks); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("job", func(b *testing.B) {
		for b.Loop() {
			var out Job
			if err := json.Unmarshal(doc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// fullJob sets every field of a job and its tasks, nested port values included.
func fullJob() *Job {
	code := 3
	return &Job{Name: "j", Status: Running, SubmitTime: 1, StartTime: 2, EndTime: 3, Priority: 4, Session: "s",
		WaitingReason: "w", Error: "e", Strategy: "best-fit",
		Info: JobInfo{Network: Network{Name: "n", Driver: "overlay", Subnet: "10.0.0.0/24"}, Tasks: Tasks{
			{ContainerName: "j_a", Node: "w1", Image: "img", Detach: true, Command: "sleep 1", ReqCores: 2, CpusetCpus: "0,1",
				MemLimit: "16m", Ports: map[string]any{"80/tcp": 8080.0, "81/tcp": []any{1.0, map[string]any{"x": "y"}}, "82/tcp": nil},
				Volumes: map[string]Volume{"/h": {Bind: "/c", Mode: "ro"}}, Environment: map[string]string{"K": "V"},
				Status: Down, Deadline: 5, Duration: 6, ExitCode: &code, Error: "x", Logs: []string{"l1", "l2"}, StartTime: 7, EndTime: 8},
			{ContainerName: "j_b"},
		}}}
}

func TestCloneIsDeepAndEqual(t *testing.T) {
	j := fullJob()
	c := j.Clone()
	if !reflect.DeepEqual(c, j) {
		t.Fatalf("clone %+v differs from %+v", c, j)
	}
	// Change everything reachable in the copy: the original must not move.
	a := c.Info.Tasks[0]
	a.Ports["80/tcp"] = 1.0
	a.Ports["81/tcp"].([]any)[1].(map[string]any)["x"] = "z"
	a.Volumes["/h"] = Volume{}
	a.Environment["K"] = "W"
	*a.ExitCode = 9
	a.Logs[0] = "changed"
	c.Info.Tasks[1] = &Task{ContainerName: "other"}
	if !reflect.DeepEqual(j, fullJob()) {
		t.Fatalf("changing the clone changed the original: %+v", j.Info.Tasks[0])
	}
	// What a clone encodes to is what the original encodes to.
	a1, _ := json.Marshal(fullJob())
	a2, _ := json.Marshal(fullJob().Clone())
	if !bytes.Equal(a1, a2) {
		t.Fatalf("clone encodes to %s, original to %s", a2, a1)
	}
}

func BenchmarkClone(b *testing.B) {
	j := fullJob()
	for b.Loop() {
		_ = j.Clone()
	}
}

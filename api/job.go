package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Job is a group of tasks (containers) sharing one overlay network, in the
// original RESTfulSwarm format. Field names are the original's; the fields
// after EndTime are RSwarm's additions.
type Job struct {
	Name       string  `json:"job_name"`
	Info       JobInfo `json:"job_info"`
	Status     State   `json:"status"`
	SubmitTime float64 `json:"submit_time"`
	StartTime  float64 `json:"start_time"`
	EndTime    float64 `json:"end_time"`

	// Priority orders jobs under the priority strategy: higher first.
	Priority int `json:"priority,omitempty"`
	// Session groups the jobs of one experiment.
	Session Session `json:"session,omitempty"`
	// WaitingReason says, in plain words, why a Ready job is not placed yet.
	WaitingReason string `json:"waiting_reason,omitempty"`
	// Error says why a Failed job failed.
	Error string `json:"error,omitempty"`
	// Strategy is the placement strategy that placed the job.
	Strategy string `json:"strategy,omitempty"`
	// Notes say how the job was adapted on submission (the original's weave
	// network and NFS directories, mapped to what this cluster has).
	Notes []string `json:"notes,omitempty"`
	// PlaceTime is when the jobmanager placed the job, and DeployTime when
	// every task was delivered to its worker (epoch seconds).
	PlaceTime  float64 `json:"place_time,omitempty"`
	DeployTime float64 `json:"deploy_time,omitempty"`
	// Restart is the job's restart policy: "never", "on-failure" or
	// "on-failure:N"; empty means "on-failure:1" (see ParseRestart).
	Restart string `json:"restart,omitempty"`
	// Restarts counts the times the job was put back in the queue after
	// losing a worker; a task's statuses from an earlier attempt are stale.
	Restarts int `json:"restarts,omitempty"`
}

// JobInfo holds a job's network and its tasks.
type JobInfo struct {
	Network Network `json:"network"`
	Tasks   Tasks   `json:"tasks"`
}

// Network is the network a job's tasks share. Driver is "auto" (the
// default: a local bridge when all tasks land on one worker, else an
// attachable overlay), "overlay" or "bridge"; once deployed the job records
// the driver it got ("bridge" or "overlay").
type Network struct {
	Name   string `json:"name"`
	Driver string `json:"driver"`
	Subnet string `json:"subnet"`
}

// Task is one container of a job. Node and CpusetCpus, in a job not yet
// placed, are the client's pin (a request); once placed they say where the
// task runs, and only the jobmanager writes them (the single-writer rule).
type Task struct {
	ContainerName string            `json:"container_name"`
	Node          string            `json:"node"`
	Image         string            `json:"image"`
	Detach        bool              `json:"detach"`
	Command       string            `json:"command"`
	ReqCores      int               `json:"req_cores"`
	CpusetCpus    string            `json:"cpuset_cpus"`
	MemLimit      string            `json:"mem_limit"`
	Ports         map[string]any    `json:"ports"`
	Volumes       map[string]Volume `json:"volumes"`
	Environment   map[string]string `json:"environment"`
	Status        State             `json:"status"`
	Deadline      float64           `json:"deadline"`

	// Duration is how long a simulated worker "runs" the task, in seconds.
	Duration float64 `json:"duration,omitempty"`
	// ExitCode is the container's exit code once it has ended.
	ExitCode *int `json:"exit_code,omitempty"`
	// Error says why the task failed.
	Error string `json:"error,omitempty"`
	// Logs holds the last lines the container printed, once it has ended.
	Logs []string `json:"logs,omitempty"`
	// StartTime and EndTime are when the container started and ended (epoch seconds).
	StartTime float64 `json:"start_time,omitempty"`
	EndTime   float64 `json:"end_time,omitempty"`
}

// Volume is a volume mount in the Docker SDK's format: {"bind": path, "mode": "rw"}.
type Volume struct {
	Bind string `json:"bind"`
	Mode string `json:"mode,omitempty"`
}

// Tasks is a job's tasks in submission order. In JSON it is an object keyed
// by container name, as in the original; the order of the keys is kept,
// because placement considers tasks in that order.
type Tasks []*Task

// Get returns the task named name, or nil.
func (ts Tasks) Get(name string) *Task {
	for _, t := range ts {
		if t.ContainerName == name {
			return t
		}
	}
	return nil
}

// MarshalJSON writes the tasks as an object keyed by container name, in order.
func (ts Tasks) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, t := range ts {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(t.ContainerName)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object of tasks, keeping the order of its keys. A
// key must equal its task's container_name. It is lenient about unknown
// task fields, because it also reads what the store wrote, many times a
// second; ParseJob refuses them in what users submit. It walks the object
// itself and decodes each task once: going through json.Decoder scanned
// every task's bytes four times, and this is the hottest decoding of the
// system.
func (ts *Tasks) UnmarshalJSON(data []byte) error {
	i := skipSpace(data, 0)
	if rest := data[i:]; len(rest) >= 4 && string(rest[:4]) == "null" {
		*ts = nil
		return nil
	}
	if i >= len(data) || data[i] != '{' {
		return &FieldError{Field: "job_info.tasks", Reason: "must be an object keyed by container name"}
	}
	out := Tasks{}
	var seen map[string]bool // beyond a few tasks; below, out is searched
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		*ts = out
		return nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return errTasksSyntax
		}
		end := stringEnd(data, i)
		if end < 0 {
			return errTasksSyntax
		}
		var key string
		if raw := data[i+1 : end-1]; plainASCII(raw) {
			key = string(raw)
		} else if err := json.Unmarshal(data[i:end], &key); err != nil {
			return err
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return errTasksSyntax
		}
		i = skipSpace(data, i+1)
		vend := valueEnd(data, i)
		if vend < 0 {
			return errTasksSyntax
		}
		path := "job_info.tasks." + key
		if len(out) == 16 {
			seen = make(map[string]bool, 32)
			for _, t := range out {
				seen[t.ContainerName] = true
			}
		}
		if (seen != nil && seen[key]) || (seen == nil && out.Get(key) != nil) {
			return &FieldError{Field: path, Reason: "duplicate task key"}
		}
		t := new(Task)
		if err := json.Unmarshal(data[i:vend], t); err != nil {
			return prefixField(err, path)
		}
		if t.ContainerName == "" {
			t.ContainerName = key
		}
		if t.ContainerName != key {
			return &FieldError{Field: path + ".container_name", Reason: fmt.Sprintf("must equal its task key %q, got %q", key, t.ContainerName)}
		}
		if seen != nil {
			seen[key] = true
		}
		out = append(out, t)
		i = skipSpace(data, vend)
		if i >= len(data) {
			return errTasksSyntax
		}
		if data[i] == '}' {
			break
		}
		if data[i] != ',' {
			return errTasksSyntax
		}
		i = skipSpace(data, i+1)
	}
	*ts = out
	return nil
}

var errTasksSyntax = &FieldError{Field: "job_info.tasks", Reason: "malformed JSON object"}

// plainASCII reports whether a JSON string's contents need no decoding:
// printable ASCII without escapes (JSON replaces invalid UTF-8).
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at b[i]
// (a quote), or -1 when it does not end.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the JSON value starting at b[i], or
// -1 when it does not end. It only finds the extent: json.Unmarshal checks
// the value itself.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				if j = stringEnd(b, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// Session identifies an experiment. The original wrote it as a number in
// some files and a string in others; both are accepted and kept as a string.
type Session string

// UnmarshalJSON accepts a JSON string or number.
func (s *Session) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = Session(v)
		return nil
	}
	if string(b) == "null" {
		*s = ""
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return &FieldError{Field: "session", Reason: "must be a string or a number"}
	}
	if _, err := strconv.ParseFloat(string(n), 64); err != nil {
		return &FieldError{Field: "session", Reason: "must be a string or a number"}
	}
	*s = Session(n)
	return nil
}

// Clone returns a deep copy of the job: nothing in it is shared with j.
func (j *Job) Clone() *Job {
	c := *j
	if j.Info.Tasks != nil {
		c.Info.Tasks = make(Tasks, len(j.Info.Tasks))
		for i, t := range j.Info.Tasks {
			c.Info.Tasks[i] = t.Clone()
		}
	}
	return &c
}

// Clone returns a deep copy of the task.
func (t *Task) Clone() *Task {
	if t == nil {
		return nil
	}
	c := *t
	if t.Ports != nil {
		c.Ports = make(map[string]any, len(t.Ports))
		for k, v := range t.Ports {
			c.Ports[k] = cloneValue(v)
		}
	}
	if t.Volumes != nil {
		c.Volumes = make(map[string]Volume, len(t.Volumes))
		for k, v := range t.Volumes {
			c.Volumes[k] = v
		}
	}
	if t.Environment != nil {
		c.Environment = make(map[string]string, len(t.Environment))
		for k, v := range t.Environment {
			c.Environment[k] = v
		}
	}
	if t.ExitCode != nil {
		code := *t.ExitCode
		c.ExitCode = &code
	}
	if t.Logs != nil {
		c.Logs = append(make([]string, 0, len(t.Logs)), t.Logs...)
	}
	return &c
}

// cloneValue deep-copies a value as JSON decodes into any: maps, slices
// and scalars (anything else is copied as it is).
func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = cloneValue(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = cloneValue(e)
		}
		return s
	}
	return v
}

// Cores returns the total number of cores the job's tasks ask for.
func (j *Job) Cores() int {
	n := 0
	for _, t := range j.Info.Tasks {
		n += t.ReqCores
	}
	return n
}

// Waiting returns start - submit, execution end - start and total end - submit,
// each zero while unknown.
func (j *Job) Waiting() (waiting, execution, total float64) {
	if j.StartTime > 0 && j.SubmitTime > 0 {
		waiting = j.StartTime - j.SubmitTime
	}
	if j.EndTime > 0 && j.StartTime > 0 {
		execution = j.EndTime - j.StartTime
	}
	if j.EndTime > 0 && j.SubmitTime > 0 {
		total = j.EndTime - j.SubmitTime
	}
	return
}

// ParseJob decodes a job as a user submitted it, strictly: malformed JSON,
// wrongly typed fields, unknown fields and state names at any level (a
// typo, or the original Swagger's cpu_count) and trailing data are refused
// with a *FieldError naming the field by its path. It does not validate
// values; see Validate.
func ParseJob(b []byte) (*Job, error) {
	if err := checkKeys(b, reflect.TypeFor[Job](), ""); err != nil {
		return nil, err
	}
	var j Job
	if err := DecodeStrict(b, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// checkKeys walks raw JSON against the struct type t and refuses the
// first key t does not have, and the first unknown state name, naming its
// path. Values of other shapes are left to the typed decoding.
func checkKeys(raw []byte, t reflect.Type, path string) error {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil // not an object: the typed decoding says what is wrong
	}
	fields := jsonFields(t)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := join(path, k)
		f, ok := fields[k]
		if !ok {
			reason := "unknown field"
			if k == "cpu_count" {
				reason = "unknown field (the original Swagger's cpu_count is spelled req_cores)"
			}
			return &FieldError{Field: p, Reason: reason}
		}
		v := obj[k]
		switch {
		case f == reflect.TypeFor[State]():
			var name string
			if json.Unmarshal(v, &name) == nil {
				if _, err := ParseState(name); err != nil {
					return &FieldError{Field: p, Reason: err.Error()}
				}
			}
		case f == reflect.TypeFor[Tasks]():
			var tasks map[string]json.RawMessage
			if json.Unmarshal(v, &tasks) == nil {
				for _, tk := range sortedKeys(tasks) {
					if err := checkKeys(tasks[tk], reflect.TypeFor[Task](), join(p, tk)); err != nil {
						return err
					}
				}
			}
		case f.Kind() == reflect.Struct:
			if err := checkKeys(v, f, p); err != nil {
				return err
			}
		case f.Kind() == reflect.Map && f.Elem().Kind() == reflect.Struct:
			var m map[string]json.RawMessage
			if json.Unmarshal(v, &m) == nil {
				for _, mk := range sortedKeys(m) {
					if err := checkKeys(m[mk], f.Elem(), join(p, mk)); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// jsonFields maps a struct's JSON names to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package stressclient

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// TraceEntry is one job of a replayed trace.
type TraceEntry struct {
	Offset   float64 // seconds from the start of the run
	Tasks    int     // tasks in the job
	Cores    int     // cores per task
	Duration float64 // seconds each task runs
}

func (e TraceEntry) validate() error {
	switch {
	case e.Offset < 0 || math.IsNaN(e.Offset) || math.IsInf(e.Offset, 0):
		return invalid("offset must be a non-negative number of seconds, got %v", e.Offset)
	case e.Tasks < 1 || e.Tasks > 9999:
		return invalid("task count must be between 1 and 9999, got %d", e.Tasks)
	case e.Cores < 1:
		return invalid("cores per task must be at least 1, got %d", e.Cores)
	case e.Duration < 0 || math.IsNaN(e.Duration) || math.IsInf(e.Duration, 0):
		return invalid("duration must be a non-negative number of seconds, got %v", e.Duration)
	}
	return nil
}

// ReadTrace reads a trace in CSV: one job per line with its submit offset in
// seconds, task count, cores per task and task duration in seconds. A
// header line (any first line whose first field is not a number) is
// skipped, as are empty lines and lines starting with '#'.
func ReadTrace(r io.Reader) ([]TraceEntry, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var out []TraceEntry
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, invalid("trace: %v", err)
		}
		if first && len(rec) > 0 {
			if _, err := strconv.ParseFloat(strings.TrimSpace(rec[0]), 64); err != nil {
				continue // header
			}
		}
		if len(rec) != 4 {
			return nil, invalid("trace line %d: want 4 fields (offset, tasks, cores, duration), got %d", line, len(rec))
		}
		var e TraceEntry
		var perr error
		num := func(i int, name string) float64 {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 64)
			if err != nil && perr == nil {
				perr = invalid("trace line %d: %s %q is not a number", line, name, rec[i])
			}
			return v
		}
		integer := func(i int, name string) int {
			v := num(i, name)
			if perr == nil && (v != math.Trunc(v) || v > math.MaxInt32 || v < math.MinInt32) {
				perr = invalid("trace line %d: %s %q is not an integer", line, name, rec[i])
			}
			return int(v)
		}
		e.Offset = num(0, "offset")
		e.Tasks = integer(1, "tasks")
		e.Cores = integer(2, "cores")
		e.Duration = num(3, "duration")
		if perr != nil {
			return nil, perr
		}
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("trace line %d: %w", line, err)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, invalid("trace holds no entries")
	}
	return out, nil
}

// ReadTraceFile reads a trace file (see ReadTrace).
func ReadTraceFile(path string) ([]TraceEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("stressclient: trace: %w", err)
	}
	defer f.Close()
	es, err := ReadTrace(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return es, nil
}

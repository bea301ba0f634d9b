package simulate

import (
	"io"
	"math"
	"sort"
	"time"

	"github.com/rswarm/rswarm/report"
	"github.com/rswarm/rswarm/stressclient"
)

// Replay is a Source of a real run's arrivals, read from its jobs.csv:
// each job arrives at its submission's offset from the first, with its
// tasks and cores (its cores split evenly over its tasks), and each task
// runs for the job's execution time (end - start) when it is known, or as
// the base shape says otherwise (its duration, else its "sleep N" command).
type Replay struct {
	arrivals []stressclient.Arrival
	i        int
}

// ReadReplay reads jobs.csv (as `rswarm report` writes it); session, when
// not empty, keeps only that session's jobs. base is the shape of every
// job (image, command, memory), of which tasks, cores and duration are
// replaced by the row's.
func ReadReplay(r io.Reader, session string, base stressclient.Shape) (*Replay, error) {
	rows, err := report.ReadJobsCSV(r)
	if err != nil {
		return nil, err
	}
	kept := rows[:0]
	for _, row := range rows {
		if (session == "" || row.Session == session) && !math.IsNaN(row.Submit) && row.Tasks > 0 {
			kept = append(kept, row)
		}
	}
	if len(kept) == 0 {
		return nil, invalid("jobs.csv holds no job with a submission time and tasks (session %q)", session)
	}
	sort.SliceStable(kept, func(a, b int) bool { return kept[a].Submit < kept[b].Submit })
	first := kept[0].Submit
	rp := &Replay{arrivals: make([]stressclient.Arrival, len(kept))}
	for i, row := range kept {
		s := base
		s.Tasks = row.Tasks
		s.Cores = max(1, (row.Cores+row.Tasks-1)/row.Tasks)
		if !math.IsNaN(row.Execution) {
			s.Duration = row.Execution
		}
		off := time.Duration(math.Round((row.Submit - first) * float64(time.Second)))
		rp.arrivals[i] = stressclient.Arrival{Seq: i + 1, Offset: off, Shape: s}
	}
	return rp, nil
}

// Jobs is the number of jobs replayed.
func (rp *Replay) Jobs() int { return len(rp.arrivals) }

// Horizon is the offset of the last arrival.
func (rp *Replay) Horizon() time.Duration { return rp.arrivals[len(rp.arrivals)-1].Offset }

// Rewind starts the replay again, for the next strategy.
func (rp *Replay) Rewind() { rp.i = 0 }

// Next returns the next arrival.
func (rp *Replay) Next() (stressclient.Arrival, bool) {
	if rp.i >= len(rp.arrivals) {
		return stressclient.Arrival{}, false
	}
	rp.i++
	return rp.arrivals[rp.i-1], true
}

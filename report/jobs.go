package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/rswarm/rswarm/api"
)

// ErrFormat is a jobs.csv or utilisation.csv that cannot be read back.
var ErrFormat = errors.New("report: malformed file")

// JobsHeader is the header of jobs.csv.
var JobsHeader = []string{"job_name", "session", "strategy", "status", "submit", "start", "end",
	"waiting", "execution", "total", "tasks", "cores"}

// Row is one job as jobs.csv holds it. Times are epoch seconds and
// durations seconds; a time or duration not known yet (a job that has not
// started or ended) is NaN, written as an empty field.
type Row struct {
	Job      string
	Session  string
	Strategy string
	Status   api.State
	Submit   float64
	Start    float64
	End      float64
	// Waiting = Start - Submit, Execution = End - Start, Total = End - Submit.
	Waiting   float64
	Execution float64
	Total     float64
	Tasks     int
	Cores     int
}

// RowOf returns the row of one job.
func RowOf(j *api.Job) Row {
	nan := math.NaN()
	r := Row{Job: j.Name, Session: string(j.Session), Strategy: j.Strategy, Status: j.Status,
		Submit: known(j.SubmitTime), Start: known(j.StartTime), End: known(j.EndTime),
		Waiting: nan, Execution: nan, Total: nan, Tasks: len(j.Info.Tasks), Cores: j.Cores()}
	if j.SubmitTime > 0 && j.StartTime > 0 {
		r.Waiting = j.StartTime - j.SubmitTime
	}
	if j.StartTime > 0 && j.EndTime > 0 {
		r.Execution = j.EndTime - j.StartTime
	}
	if j.SubmitTime > 0 && j.EndTime > 0 {
		r.Total = j.EndTime - j.SubmitTime
	}
	return r
}

func known(t float64) float64 {
	if t > 0 {
		return t
	}
	return math.NaN()
}

// Rows returns the rows of the jobs in submission order (then by name).
func Rows(jobs []*api.Job) []Row {
	rows := make([]Row, len(jobs))
	for i, j := range jobs {
		rows[i] = RowOf(j)
	}
	sort.SliceStable(rows, func(a, b int) bool {
		ra, rb := rows[a], rows[b]
		if sa, sb := orInf(ra.Submit), orInf(rb.Submit); sa != sb {
			return sa < sb
		}
		return ra.Job < rb.Job
	})
	return rows
}

func orInf(v float64) float64 {
	if math.IsNaN(v) {
		return math.Inf(1)
	}
	return v
}

func fmtF(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 6, 64)
}

// WriteJobsCSV writes jobs.csv: JobsHeader, then one row per job.
func WriteJobsCSV(w io.Writer, rows []Row) error {
	jw, err := NewJobsWriter(w)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := jw.Write(r); err != nil {
			return err
		}
	}
	return jw.Flush()
}

// JobsWriter writes jobs.csv one row at a time, for callers that do not
// hold every row (`rswarm simulate` streams millions). It writes what
// encoding/csv writes, byte for byte, but appends the numbers straight into
// its buffer instead of making a string of each: a row whose text fields
// need quoting goes through a csv.Writer.
type JobsWriter struct {
	// last is the last row's session and strategy, and lastPlain whether
	// both are plain (plainField): every row of a run repeats them.
	last      [2]string
	lastPlain bool
	// lastStatus is the last row's status, and statusPlain whether it is
	// plain.
	lastStatus  string
	statusPlain bool
	w           *bufio.Writer
	buf         []byte
	rec         []string
	q           bytes.Buffer // a row that needs quoting, written by qw
	qw          *csv.Writer
}

// NewJobsWriter writes JobsHeader and returns the writer of the rows.
func NewJobsWriter(w io.Writer) (*JobsWriter, error) {
	jw := &JobsWriter{w: bufio.NewWriterSize(w, 64<<10), rec: make([]string, len(JobsHeader))}
	jw.qw = csv.NewWriter(&jw.q)
	if err := jw.qw.Write(JobsHeader); err != nil {
		return nil, err
	}
	if err := jw.flushQuoted(); err != nil {
		return nil, err
	}
	return jw, nil
}

// flushQuoted moves what qw wrote into the output.
func (jw *JobsWriter) flushQuoted() error {
	jw.qw.Flush()
	if err := jw.qw.Error(); err != nil {
		return err
	}
	_, err := jw.w.Write(jw.q.Bytes())
	jw.q.Reset()
	return err
}

// plainField reports whether encoding/csv writes field as it is.
func plainField(field string) bool {
	if field == "" {
		return true
	}
	if field == `\.` {
		return false
	}
	for i := 0; i < len(field); i++ {
		switch field[i] {
		case '"', '\r', '\n', ',':
			return false
		}
	}
	if c := field[0]; c < utf8.RuneSelf { // ASCII, as most fields are: no rune to decode
		return c != ' ' && (c < '\t' || c > '\r')
	}
	r, _ := utf8.DecodeRuneInString(field)
	return !unicode.IsSpace(r)
}

// appendFixed6 appends v as strconv.AppendFloat(b, v, 'f', 6, 64) does,
// byte for byte, but for 1 <= |v| < 2^52 (epoch seconds: 16 digits, which
// strconv formats by its slow exact path) from the bits of v: its integer
// part, and its fraction times 10^6 rounded half to even, exactly.
func appendFixed6(b []byte, v float64) []byte {
	a := math.Abs(v)
	if !(a >= 1 && a < 1<<52) {
		return strconv.AppendFloat(b, v, 'f', 6, 64)
	}
	fb := math.Float64bits(a)
	e := uint(1075 - int(fb>>52&0x7ff)) // a = mant * 2^-e, 0 <= e <= 52
	mant := fb&(1<<52-1) | 1<<52
	ip, q := mant>>e, uint64(0)
	if e > 0 {
		hi, lo := bits.Mul64(mant&(1<<e-1), 1e6)
		q = hi<<(64-e) | lo>>e
		if r, half := lo&(1<<e-1), uint64(1)<<(e-1); r > half || (r == half && q&1 == 1) {
			q++
		}
		if q == 1e6 {
			ip, q = ip+1, 0
		}
	}
	if v < 0 {
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, ip, 10)
	var frac [7]byte
	frac[0] = '.'
	for k := 6; k > 0; k-- {
		frac[k] = byte('0' + q%10)
		q /= 10
	}
	return append(b, frac[:]...)
}

// Write writes one row.
func (jw *JobsWriter) Write(r Row) error {
	status := r.Status.String()
	if r.Session != jw.last[0] || r.Strategy != jw.last[1] || !jw.lastPlain {
		jw.last, jw.lastPlain = [2]string{r.Session, r.Strategy}, plainField(r.Session) && plainField(r.Strategy)
	}
	if status != jw.lastStatus { // a run's rows have one or two statuses
		jw.lastStatus, jw.statusPlain = status, plainField(status)
	}
	if !jw.lastPlain || !jw.statusPlain || !plainField(r.Job) {
		rec := jw.rec
		rec[0], rec[1], rec[2], rec[3] = r.Job, r.Session, r.Strategy, status
		rec[4], rec[5], rec[6] = fmtF(r.Submit), fmtF(r.Start), fmtF(r.End)
		rec[7], rec[8], rec[9] = fmtF(r.Waiting), fmtF(r.Execution), fmtF(r.Total)
		rec[10], rec[11] = strconv.Itoa(r.Tasks), strconv.Itoa(r.Cores)
		if err := jw.qw.Write(rec); err != nil {
			return err
		}
		return jw.flushQuoted()
	}
	b := jw.buf[:0]
	for _, f := range [...]string{r.Job, r.Session, r.Strategy, status} {
		b = append(append(b, f...), ',')
	}
	for _, v := range [...]float64{r.Submit, r.Start, r.End, r.Waiting, r.Execution, r.Total} {
		if !math.IsNaN(v) {
			b = appendFixed6(b, v)
		}
		b = append(b, ',')
	}
	b = strconv.AppendInt(b, int64(r.Tasks), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.Cores), 10)
	b = append(b, '\n')
	jw.buf = b
	_, err := jw.w.Write(b)
	return err
}

// Flush writes what is buffered and returns the first error of any write.
func (jw *JobsWriter) Flush() error {
	return jw.w.Flush()
}

// ReadJobsCSV reads back what WriteJobsCSV wrote.
func ReadJobsCSV(r io.Reader) ([]Row, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%w: jobs.csv: %v", ErrFormat, err)
	}
	if len(recs) == 0 || len(recs[0]) != len(JobsHeader) || recs[0][0] != JobsHeader[0] {
		return nil, fmt.Errorf("%w: jobs.csv: header is not %v", ErrFormat, JobsHeader)
	}
	out := make([]Row, 0, len(recs)-1)
	for i, rec := range recs[1:] {
		var perr error
		num := func(s string) float64 {
			if s == "" {
				return math.NaN()
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil && perr == nil {
				perr = err
			}
			return v
		}
		integer := func(s string) int {
			v, err := strconv.Atoi(s)
			if err != nil && perr == nil {
				perr = err
			}
			return v
		}
		st, err := api.ParseState(rec[3])
		if err != nil {
			perr = err
		}
		row := Row{Job: rec[0], Session: rec[1], Strategy: rec[2], Status: st,
			Submit: num(rec[4]), Start: num(rec[5]), End: num(rec[6]),
			Waiting: num(rec[7]), Execution: num(rec[8]), Total: num(rec[9]),
			Tasks: integer(rec[10]), Cores: integer(rec[11])}
		if perr != nil {
			return nil, fmt.Errorf("%w: jobs.csv line %d: %v", ErrFormat, i+2, perr)
		}
		out = append(out, row)
	}
	return out, nil
}

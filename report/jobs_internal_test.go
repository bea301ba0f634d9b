package report

import (
	"bytes"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestAppendFixed6IsStrconvs checks the jobs.csv number writer against
// strconv.AppendFloat(v, 'f', 6): exact halves at the sixth decimal
// (0.0078125 is 2^-7: a tie, rounded to even), carries into the integer
// part, signs, values outside its range, and a sweep of epoch seconds.
func TestAppendFixed6IsStrconvs(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 0.5, 1, -1, 1.0078125, 1.0234375, 1767225600.0078125, 1767225600.9999995,
		1767225600.9999994, 2.9999999999, -3.25, 1 << 52, 1<<52 - 0.5, 1e300, math.Inf(1), 2.5e-7, 123456.0000005}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		vals = append(vals, 1767225600+r.Float64()*7200, r.Float64()*1000, float64(r.IntN(1<<30))/128, (r.Float64()-0.5)*1e12)
	}
	for _, v := range vals {
		if got, want := string(appendFixed6(nil, v)), strconv.FormatFloat(v, 'f', 6, 64); got != want {
			t.Fatalf("%v: %s, strconv writes %s", v, got, want)
		}
	}
}

// TestPlainFieldIsEncodingCSVs checks plainField against encoding/csv: a
// field is plain exactly when csv.Writer writes it unquoted, for fields
// led by every ASCII byte (spaces, other control bytes, quotes, commas)
// and by some non-ASCII runes (U+0085 and U+00A0 are spaces).
func TestPlainFieldIsEncodingCSVs(t *testing.T) {
	fields := []string{"", `\.`, "a,b", `"q`, "\u0085x", "\u00a0x", "ünï", "\u2028x", "x\ny", "x\r"}
	for c := range 128 {
		fields = append(fields, string(rune(c))+"job1", "job"+string(rune(c)))
	}
	for _, f := range fields {
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		if err := w.Write([]string{f}); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if want := b.String() == f+"\n"; plainField(f) != want {
			t.Errorf("plainField(%q) = %v, encoding/csv writes it as %q", f, plainField(f), b.String())
		}
	}
}

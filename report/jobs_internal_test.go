package report

import (
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

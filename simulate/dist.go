package simulate

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid classifies bad simulation settings: a distribution, a worker
// count, a jobs.csv that cannot be replayed.
var ErrInvalid = errors.New("simulate: invalid settings")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// DistKind names a distribution of seconds.
type DistKind int

// The distributions a delay or a task duration may follow.
const (
	Fixed       DistKind = iota // always A
	Exponential                 // mean A
	Uniform                     // between A and B
	Normal                      // mean A, standard deviation B, never below 0
	Empirical                   // one of Values, uniformly (a measured sample)
)

// Dist is a distribution of non-negative seconds. The zero value is always 0.
type Dist struct {
	Kind   DistKind
	A, B   float64
	Values []float64
}

// ParseDist reads a distribution: "0.05" or "fixed:0.05", "exp:0.05" (mean),
// "uniform:0.01,0.09", "normal:0.05,0.01", or "empirical:FILE" (seconds,
// one a line; '#' starts a comment). Go durations ("50ms") are accepted
// wherever seconds are. "" is 0.
func ParseDist(s string) (Dist, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Dist{}, nil
	}
	kind, args, found := strings.Cut(s, ":")
	if !found {
		kind, args = "fixed", s
	}
	if kind == "empirical" {
		vs, err := readValues(args)
		if err != nil {
			return Dist{}, err
		}
		return Dist{Kind: Empirical, Values: vs}, nil
	}
	parts := strings.Split(args, ",")
	nums := make([]float64, len(parts))
	for i, p := range parts {
		v, err := parseSeconds(p)
		if err != nil {
			return Dist{}, invalid("distribution %q: %v", s, err)
		}
		nums[i] = v
	}
	want := map[string]int{"fixed": 1, "exp": 1, "uniform": 2, "normal": 2}
	n, ok := want[kind]
	if !ok {
		return Dist{}, invalid("distribution %q: unknown kind %q (want fixed, exp, uniform, normal or empirical)", s, kind)
	}
	if len(nums) != n {
		return Dist{}, invalid("distribution %q: %s takes %d number(s)", s, kind, n)
	}
	d := Dist{A: nums[0]}
	switch kind {
	case "exp":
		d.Kind = Exponential
	case "uniform":
		d.Kind, d.B = Uniform, nums[1]
		if d.B < d.A {
			return Dist{}, invalid("distribution %q: the upper bound is below the lower", s)
		}
	case "normal":
		d.Kind, d.B = Normal, nums[1]
	}
	return d, nil
}

// parseSeconds reads seconds, or a Go duration such as 50ms or 5m.
func parseSeconds(s string) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d, derr := parseDuration(s)
		if derr != nil {
			return 0, fmt.Errorf("%q is not a number of seconds or a duration such as 50ms", s)
		}
		v = d
	}
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q: seconds must be finite and not negative", s)
	}
	return v, nil
}

func readValues(path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, invalid("empirical distribution: %v", err)
	}
	defer f.Close()
	var vs []float64
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		t, _, _ := strings.Cut(sc.Text(), "#")
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		v, err := parseSeconds(t)
		if err != nil {
			return nil, invalid("%s line %d: %v", path, line, err)
		}
		vs = append(vs, v)
	}
	if err := sc.Err(); err != nil {
		return nil, invalid("%s: %v", path, err)
	}
	if len(vs) == 0 {
		return nil, invalid("%s: no values", path)
	}
	return vs, nil
}

// Draw returns one value.
func (d *Dist) Draw(r *rand.Rand) float64 {
	switch d.Kind {
	case Fixed:
		return d.A
	case Exponential:
		return r.ExpFloat64() * d.A
	case Uniform:
		return d.A + r.Float64()*(d.B-d.A)
	case Normal:
		return max(0, d.A+r.NormFloat64()*d.B)
	case Empirical:
		if len(d.Values) == 0 {
			return 0
		}
		return d.Values[r.IntN(len(d.Values))]
	}
	return 0
}

// Zero reports whether the distribution always gives 0.
func (d *Dist) Zero() bool {
	switch d.Kind {
	case Fixed, Exponential:
		return d.A == 0
	case Uniform, Normal:
		return d.A == 0 && d.B == 0
	case Empirical:
		return !slices.ContainsFunc(d.Values, func(v float64) bool { return v != 0 })
	}
	return true
}

// String describes the distribution as ParseDist reads it.
func (d Dist) String() string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch d.Kind {
	case Exponential:
		return "exp:" + f(d.A)
	case Uniform:
		return "uniform:" + f(d.A) + "," + f(d.B)
	case Normal:
		return "normal:" + f(d.A) + "," + f(d.B)
	case Empirical:
		return fmt.Sprintf("empirical (%d values)", len(d.Values))
	}
	return f(d.A)
}

package stressclient

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// FileConfig is what the original's configuration files hold:
// StressClientInfo.json (subnet, image_name, task_count, task_cores,
// task_mem, time_interval, run_count) and the profile files
// (SteadyStressClientInfo.json {feed_constant}, BurstyStressClientInfo.json
// {lambda}, IncrementalStressClientInfo.json {coefficient, constant},
// RandomStressClientInfo.json {lower_bound, upper_bound}). A key absent
// from the file is nil.
type FileConfig struct {
	Subnet       *string
	ImageName    *string
	TaskCount    *int
	TaskCores    *int
	TaskMem      *int // MB
	TimeInterval *float64
	RunCount     *int
	FeedConstant *int
	Lambda       *float64
	Coefficient  *float64
	Constant     *float64
	LowerBound   *int
	UpperBound   *int
}

// ConfigKeys are the keys of the original's configuration files, in the
// order of FileConfig's fields.
var ConfigKeys = []string{"subnet", "image_name", "task_count", "task_cores", "task_mem", "time_interval", "run_count",
	"feed_constant", "lambda", "coefficient", "constant", "lower_bound", "upper_bound"}

// ParseConfig reads one of the original's configuration files (JSON, or the
// same keys in YAML). Keys it does not know are returned, not refused, so
// that a caller can accept other keys in the same file (rswarm's flag
// names); a known key with a value of the wrong kind is an ErrInvalid.
func ParseConfig(data []byte) (fc FileConfig, unknown []string, err error) {
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return fc, nil, invalid("not a JSON or YAML object: %v", err)
	}
	str := func(k string) (*string, error) {
		v, ok := m[k]
		if !ok {
			return nil, nil
		}
		s, ok := v.(string)
		if !ok {
			if v == nil {
				s = ""
			} else {
				return nil, invalid("%s must be a string, got %v", k, v)
			}
		}
		return &s, nil
	}
	num := func(k string) (*float64, error) {
		v, ok := m[k]
		if !ok {
			return nil, nil
		}
		var f float64
		switch x := v.(type) {
		case int:
			f = float64(x)
		case int64:
			f = float64(x)
		case uint64:
			f = float64(x)
		case float64:
			f = x
		case string:
			p, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return nil, invalid("%s must be a number, got %q", k, x)
			}
			f = p
		default:
			return nil, invalid("%s must be a number, got %v", k, v)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, invalid("%s must be a finite number, got %v", k, v)
		}
		return &f, nil
	}
	integer := func(k string) (*int, error) {
		f, err := num(k)
		if f == nil || err != nil {
			return nil, err
		}
		if *f != math.Trunc(*f) || math.Abs(*f) > math.MaxInt32 {
			return nil, invalid("%s must be an integer, got %v", k, *f)
		}
		n := int(*f)
		return &n, nil
	}
	for _, step := range []func() error{
		func() (err error) { fc.Subnet, err = str("subnet"); return },
		func() (err error) { fc.ImageName, err = str("image_name"); return },
		func() (err error) { fc.TaskCount, err = integer("task_count"); return },
		func() (err error) { fc.TaskCores, err = integer("task_cores"); return },
		func() (err error) { fc.TaskMem, err = integer("task_mem"); return },
		func() (err error) { fc.TimeInterval, err = num("time_interval"); return },
		func() (err error) { fc.RunCount, err = integer("run_count"); return },
		func() (err error) { fc.FeedConstant, err = integer("feed_constant"); return },
		func() (err error) { fc.Lambda, err = num("lambda"); return },
		func() (err error) { fc.Coefficient, err = num("coefficient"); return },
		func() (err error) { fc.Constant, err = num("constant"); return },
		func() (err error) { fc.LowerBound, err = integer("lower_bound"); return },
		func() (err error) { fc.UpperBound, err = integer("upper_bound"); return },
	} {
		if err := step(); err != nil {
			return FileConfig{}, nil, err
		}
	}
	known := map[string]bool{}
	for _, k := range ConfigKeys {
		known[k] = true
	}
	for k := range m {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	return fc, unknown, nil
}

// ReadConfigFile reads and parses a configuration file (see ParseConfig).
func ReadConfigFile(path string) (FileConfig, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return FileConfig{}, nil, fmt.Errorf("stressclient: config: %w", err)
	}
	fc, unknown, err := ParseConfig(b)
	if err != nil {
		return FileConfig{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return fc, unknown, nil
}

// Merge returns c with the keys that o sets replaced by o's values.
func (c FileConfig) Merge(o FileConfig) FileConfig {
	return FileConfig{
		Subnet: or(c.Subnet, o.Subnet), ImageName: or(c.ImageName, o.ImageName),
		TaskCount: or(c.TaskCount, o.TaskCount), TaskCores: or(c.TaskCores, o.TaskCores), TaskMem: or(c.TaskMem, o.TaskMem),
		TimeInterval: or(c.TimeInterval, o.TimeInterval), RunCount: or(c.RunCount, o.RunCount),
		FeedConstant: or(c.FeedConstant, o.FeedConstant), Lambda: or(c.Lambda, o.Lambda),
		Coefficient: or(c.Coefficient, o.Coefficient), Constant: or(c.Constant, o.Constant),
		LowerBound: or(c.LowerBound, o.LowerBound), UpperBound: or(c.UpperBound, o.UpperBound),
	}
}

func or[T any](a, b *T) *T {
	if b != nil {
		return b
	}
	return a
}

// Apply copies the keys the file sets into p, except those for which skip
// (given the original's key, such as "task_count") reports true: a caller
// passes the keys whose command-line flags were given, since flags
// override files.
func (c FileConfig) Apply(p *Params, skip func(key string) bool) {
	if skip == nil {
		skip = func(string) bool { return false }
	}
	set(skip, "subnet", c.Subnet, &p.Subnet)
	set(skip, "image_name", c.ImageName, &p.Image)
	set(skip, "task_count", c.TaskCount, &p.TaskCount)
	set(skip, "task_cores", c.TaskCores, &p.TaskCores)
	set(skip, "task_mem", c.TaskMem, &p.TaskMemMB)
	if c.TimeInterval != nil && !skip("time_interval") {
		p.Interval = seconds(*c.TimeInterval)
	}
	set(skip, "run_count", c.RunCount, &p.Turns)
	set(skip, "feed_constant", c.FeedConstant, &p.FeedConstant)
	set(skip, "lambda", c.Lambda, &p.Lambda)
	set(skip, "coefficient", c.Coefficient, &p.Coefficient)
	set(skip, "constant", c.Constant, &p.Constant)
	set(skip, "lower_bound", c.LowerBound, &p.LowerBound)
	set(skip, "upper_bound", c.UpperBound, &p.UpperBound)
}

func set[T any](skip func(string) bool, key string, src, dst *T) {
	if src != nil && !skip(key) {
		*dst = *src
	}
}

// IntervalSeconds converts a number of seconds, as the original's
// time_interval holds, to a duration.
func IntervalSeconds(s float64) time.Duration { return seconds(s) }

package stressclient

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/rswarm/rswarm/api"
)

// ErrInvalid classifies bad parameters, configuration files and traces:
// errors.Is(err, ErrInvalid) holds for every error that names one.
var ErrInvalid = errors.New("stressclient: invalid parameters")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Profile names an arrival profile: how many jobs are submitted when.
type Profile string

// The profiles. The first four are the original's, with its formulas for
// the number of jobs submitted at turn k (at nominal time t = k*Interval).
const (
	Steady      Profile = "steady"      // FeedConstant jobs every turn
	Bursty      Profile = "bursty"      // ceil(X) jobs, X ~ Exp(Lambda) (mean 1/Lambda), drawn per turn
	Incremental Profile = "incremental" // round(Coefficient*t + Constant) jobs, never fewer than 0
	Random      Profile = "random"      // a uniform integer in [LowerBound, UpperBound]
	Poisson     Profile = "poisson"     // arrivals at rate Lambda per second: exponential gaps, not turns
	Trace       Profile = "trace"       // one job per Trace entry, at its offset and with its shape
)

// Profiles lists every profile.
var Profiles = []Profile{Steady, Bursty, Incremental, Random, Poisson, Trace}

// ParseProfile returns the profile named name, or an ErrInvalid naming the valid ones.
func ParseProfile(name string) (Profile, error) {
	for _, p := range Profiles {
		if string(p) == name {
			return p, nil
		}
	}
	return "", invalid("unknown profile %q (want one of %v)", name, Profiles)
}

// DefaultImage and DefaultCommand are what each task runs unless told
// otherwise. The original used the aduermael/sleeper image with the
// argument "5"; rswarm/busybox:latest is the image scripts/setup.sh makes.
const (
	DefaultImage   = "rswarm/busybox:latest"
	DefaultCommand = "sleep 5"
)

// Params are everything a stress run depends on besides its seed, its
// session and the frontend: the profile and its parameters, the number and
// spacing of turns, and the shape of the jobs. The JSON names of the
// original's configuration files are given in brackets.
type Params struct {
	Profile Profile
	// Turns is the number of turns [run_count]; Interval their spacing
	// [time_interval, seconds]. Poisson arrivals span Turns*Interval.
	Turns    int
	Interval time.Duration

	// TaskCount tasks per job [task_count], each asking for TaskCores whole
	// cores [task_cores] and TaskMemMB megabytes [task_mem] (0 = no limit).
	TaskCount int
	TaskCores int
	TaskMemMB int
	// Image every task runs [image_name].
	Image string
	// Command every task runs; empty means DefaultCommand, or for a trace
	// "sleep <duration>" of each entry.
	Command string
	// Duration, when positive, is how long a simulated worker runs each
	// task, in seconds (trace entries carry their own).
	Duration float64
	// Subnet, when set, is a pool of addresses [subnet]: each job's network
	// gets its own /24 from it (see SubnetPool). Empty leaves the subnet to Docker.
	Subnet string

	FeedConstant int     // steady: jobs per turn [feed_constant]
	Lambda       float64 // bursty: rate of the per-turn exponential; poisson: arrivals per second [lambda]
	Coefficient  float64 // incremental: a in a*t+b [coefficient]
	Constant     float64 // incremental: b in a*t+b [constant]
	LowerBound   int     // random: smallest count per turn [lower_bound]
	UpperBound   int     // random: largest count per turn [upper_bound]
	Trace        []TraceEntry
}

// DefaultParams returns the values of the original's committed
// configuration files, except for the image and command (see DefaultImage)
// and the subnet, which is left to Docker because one subnet shared by every
// job's network collides.
func DefaultParams() Params {
	return Params{
		Profile: Steady, Turns: 1, Interval: time.Second,
		TaskCount: 4, TaskCores: 2, TaskMemMB: 50, Image: DefaultImage,
		FeedConstant: 1, Lambda: 0.5, Coefficient: 1, Constant: 0, LowerBound: 1, UpperBound: 3,
	}
}

// maxArrivals bounds a plan, so that a typo (an incremental coefficient of
// 1e6) is refused instead of exhausting memory.
const maxArrivals = 5_000_000

// Validate checks the parameters the profile uses.
func (p *Params) Validate() error {
	if _, err := ParseProfile(string(p.Profile)); err != nil {
		return err
	}
	if p.Interval <= 0 {
		return invalid("interval must be positive, got %v", p.Interval)
	}
	if p.Profile != Trace && p.Turns < 1 {
		return invalid("turns (run_count) must be at least 1, got %d", p.Turns)
	}
	if p.TaskCount < 1 || p.TaskCount > 9999 {
		return invalid("task count must be between 1 and 9999, got %d", p.TaskCount)
	}
	if p.TaskCores < 1 {
		return invalid("task cores must be at least 1, got %d", p.TaskCores)
	}
	if p.TaskMemMB < 0 || (p.TaskMemMB > 0 && p.TaskMemMB < 6) {
		return invalid("task memory must be 0 (no limit) or at least 6 MB (Docker's minimum), got %d", p.TaskMemMB)
	}
	if p.Image == "" {
		return invalid("image is required")
	}
	if p.Command != "" {
		if _, err := api.SplitCommand(p.Command); err != nil {
			return invalid("command: %v", err)
		}
	}
	if p.Duration < 0 || math.IsNaN(p.Duration) {
		return invalid("duration must not be negative")
	}
	if _, err := NewSubnetPool(p.Subnet); err != nil {
		return err
	}
	switch p.Profile {
	case Steady:
		if p.FeedConstant < 0 {
			return invalid("feed constant must not be negative, got %d", p.FeedConstant)
		}
	case Bursty, Poisson:
		if !(p.Lambda > 0) || math.IsInf(p.Lambda, 0) {
			return invalid("lambda must be a positive rate, got %v", p.Lambda)
		}
	case Incremental:
		if math.IsNaN(p.Coefficient) || math.IsInf(p.Coefficient, 0) || math.IsNaN(p.Constant) || math.IsInf(p.Constant, 0) {
			return invalid("coefficient and constant must be finite numbers")
		}
	case Random:
		if p.LowerBound < 0 || p.UpperBound < p.LowerBound {
			return invalid("random bounds must satisfy 0 <= lower_bound <= upper_bound, got [%d, %d]", p.LowerBound, p.UpperBound)
		}
	case Trace:
		if len(p.Trace) == 0 {
			return invalid("the trace profile needs a trace with at least one entry")
		}
		for i, e := range p.Trace {
			if err := e.validate(); err != nil {
				return fmt.Errorf("trace entry %d: %w", i+1, err)
			}
		}
	}
	return nil
}

// sessionRE is what a session may look like: it becomes part of job,
// network and container names, so it follows Docker's name rules, without
// '_' (which separates a job's name from its task's suffix).
var sessionRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9.-]{0,63}$`)

// ValidSession checks that a session ID can become part of job names:
// letters, digits, '.' and '-', at most 64 characters.
func ValidSession(s string) error {
	if !sessionRE.MatchString(s) {
		return invalid("session %q: use at most 64 letters, digits, '.' and '-', starting with a letter or digit", s)
	}
	return nil
}

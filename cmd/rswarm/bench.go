package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/placebench"
	"github.com/rswarm/rswarm/placement"
)

func init() { addBenchCommand(newBenchPlacementCmd()) }

// processCPU returns the CPU time this process has used (user and system,
// all threads, so the garbage collector's work counts).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// newBenchPlacementCmd is `rswarm bench placement`: the indexed placement
// against the naive reference, at scale, in one run.
func newBenchPlacementCmd() *cobra.Command {
	o := placebench.Options{}
	procs := 1
	clock := "cpu"
	cmd := &cobra.Command{
		Use:   "placement",
		Short: "Measure placement decisions at scale against a naive reference that scans every worker",
		Long: `Places single-task requests (1..cores/8 cores each, seeded) on a simulated
cluster, first filling it to --max-util, then releasing random live tasks
whenever utilisation passes it. The indexed implementation and a naive
reference that scans every worker for every decision (the original's method)
run the same sequence; the report gives decisions per second, p50/p99
nanoseconds per decision, heap allocations per decision and peak heap for
both, their speed ratio deciding and with the frees counted, and whether they
made the same decisions (worker and core list): when they did not, the command
exits 1. The naive reference measures --naive-tasks decisions (fewer, to keep
the run short).`,
		Example: "  rswarm bench placement --workers 10000 --cores 64 --tasks 1000000 --strategy best-fit",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if procs > 0 {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			}
			switch clock {
			case "cpu":
				o.Clock, o.ClockName = processCPU, "the process's CPU time (other processes on this machine do not count)"
			case "wall":
				o.Clock, o.ClockName = nil, ""
			default:
				return &exitError{code: 2, err: fmt.Errorf("bench placement: --clock %q: use cpu or wall", clock)}
			}
			rep, err := placebench.Bench(o)
			if err != nil {
				if errors.Is(err, placebench.ErrBadOptions) || errors.Is(err, placement.ErrUnknownStrategy) {
					return &exitError{code: 2, err: fmt.Errorf("bench placement: %w", err)}
				}
				return fmt.Errorf("bench placement: %w", err)
			}
			return writeBenchPlacement(cmd.OutOrStdout(), rep)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Workers, "workers", 10000, "workers in the simulated cluster")
	f.IntVar(&o.Cores, "cores", 64, "cores per worker; requests ask for 1..cores/8")
	f.IntVar(&o.Tasks, "tasks", 1000000, "measured decisions of the indexed implementation")
	f.IntVar(&o.NaiveTasks, "naive-tasks", 100000, "measured decisions of the naive reference (0: as many as --tasks, up to 100000; -1: skip it)")
	f.StringVar(&o.Strategy, "strategy", placement.BestFit, "first-fit, best-fit, first-fit-decreasing, best-fit-decreasing or priority")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the request sequence")
	f.Float64Var(&o.MaxUtil, "max-util", 0.9, "utilisation (0..1) above which random live tasks are released")
	f.IntVar(&o.SampleEvery, "sample-every", 64, "time one decision in this many for p50/p99")
	f.IntVar(&procs, "gomaxprocs", 1, "GOMAXPROCS during the run (the goal is stated for one core; 0 leaves it)")
	f.StringVar(&clock, "clock", clock, "clock of the throughput figures: cpu (this process's CPU time, robust on a shared machine) or wall")
	return cmd
}

// writeBenchPlacement prints the report and the Go runtime it ran on, and
// fails (exit 1) when the indexed and naive placements disagreed: the
// benchmark is also the cross-check of the index.
func writeBenchPlacement(w io.Writer, rep placebench.Report) error {
	if err := rep.Write(w); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%s %s/%s, GOMAXPROCS=%d, %d CPUs\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU()); err != nil {
		return err
	}
	if err := rep.Check(); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("bench placement: %w", err)}
	}
	return nil
}

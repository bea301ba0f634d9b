// Package report owns the results of an experiment: from a set of jobs and
// the workers' utilisation history it writes jobs.csv (one row per job
// with its waiting, execution and total time), utilisation.csv (each
// worker's busy-core ratio over time), summary.md (counts by final state,
// percentiles of the times, mean and peak core utilisation, and the jobs
// lost) and PNG plots: the CDFs of waiting, execution and total time with
// one curve per session, so that strategies compare on one chart, and a
// heat map of core utilisation per worker over time. These are the
// original's notebook figures, produced by the tool itself.
//
// The package computes from values it is given and never reads a store or
// the network: `rswarm report` passes jobs and usage read from the store,
// `rswarm stress --report` jobs read through the API.
package report

// Package stressclient owns load generation against the frontend: it turns
// an arrival profile (steady, bursty, incremental, random, poisson or a
// replayed trace), its parameters and a seed into a plan of job
// submissions, and submits that plan on absolute time through a small
// Submitter interface, counting what was accepted, refused and finished.
//
// The pieces, from pure to I/O:
//
//	Params ──Schedule(seed)──► Plan{Turns, Arrivals}    pure, reproducible from the seed
//	Params ──NewStream(seed)──► Stream.Next()           the same arrivals one at a time (rswarm simulate)
//	Plan ──Runner.Run──► Submitter (an *api.Client)      turn k at start + k*interval, concurrently
//	Counters ──Progress.Run──► a progress bar or lines   while submitting and waiting
//	Wait / FetchJobs ──► Lister (an *api.Client)         poll until every job is final
//	ParseScrape / Worst / GapLines                       pure: the control plane's worst gaps in a run,
//	                                                     from /metrics read before and after it
//
// The original's configuration files (StressClientInfo.json and the
// profile files such as BurstyStressClientInfo.json) are read as they are
// by ParseConfig. Where the original was wrong, this package differs: turns
// never drift when submissions are slow, job names never collide, jobs do
// not all share one subnet, and submissions run concurrently.
package stressclient

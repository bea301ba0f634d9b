// Package management owns RSwarm's fleets: the fleet file (which host runs
// the control plane, which hosts run workers, and how to reach them over
// SSH), bringing a fleet up, reporting it and taking it down over SSH with
// verified host keys, and emulating its network with tc.
//
// The pure core is here: fleet parsing and validation (fleet.go), quoting of
// argument vectors for the remote shell (quote.go), tc argument building
// (tc.go) and the table (table.go). The SSH transport (ssh.go) and the
// host-side agent that the uploaded rswarm binary runs on each host
// (host.go, `rswarm manage host ...`) are the thin adapters around it. No
// shell string is ever built from user input: every remote command is an
// argument vector, each element quoted by Quote.
package management

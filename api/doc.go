// Package api holds the words the whole system shares: jobs and tasks in the
// original RESTfulSwarm JSON format, the one ordered state enum and its
// transition rules, workers, the messages that cross the bus, and the
// validation that turns bad input into errors naming the offending field.
//
// It imports no database, container or messaging library: every other
// package speaks in these types.
package api

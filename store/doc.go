// Package store owns RSwarm's durable state: jobs, workers and the workers'
// utilisation history.
//
// One interface, [Store], has two implementations that behave the same and
// are held to one conformance suite:
//
//   - [SQLite], the embedded default: one file, <data-dir>/rswarm.db, in WAL
//     mode so that several rswarm processes on one host can share it. Every
//     read-modify-write runs in a BEGIN IMMEDIATE transaction, so two
//     processes cannot interleave.
//   - [Mongo], for control planes that span machines: the original
//     RESTfulSwarm's collections and document layout (jobs, WorkersInfo,
//     WorkersResourceInfo), with an optimistic revision number (_rev) on each
//     job and worker document so that concurrent updates retry instead of
//     overwriting each other. Each document's _id is its record's name
//     (job_name, hostname), so that FerretDB v1 finds it without decoding
//     the collection; documents keyed otherwise are moved under their name
//     once. One difference: utilisation samples are written as {offset,
//     ratio} documents rather than the original's [offset, ratio] pairs,
//     which FerretDB cannot store (both are read). The change feed has a
//     collection of its own, changes, with the recent writes' numbers and
//     job names.
//
// Jobs are stored one row or document per job, keyed by name; no
// client-chosen name ever becomes a table, collection or file name.
//
// Every method returns fresh copies: callers may keep and modify what they
// get without affecting the store. (SQLite keeps the decoded form of each
// recently used job's document, matched on its exact text, and hands out
// deep copies of it: decoding JSON was the largest cost of a loaded system.)
package store

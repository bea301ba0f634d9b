// Package engine owns every conversation with the Docker Engine API: the
// local engine's identity, Swarm membership (init, join, leave, nodes),
// attachable overlay networks, containers (create, start, inspect, stop,
// remove, logs, resource updates), container events, local images, and
// CRIU checkpoint/restore.
//
// No moby type crosses the package boundary: callers see engine's own small
// structs (Info, RunSpec, Container, Event), api's Node and Network
// descriptions, and the sentinel errors below, which every method wraps
// with %w together with the object it was about:
//
//	ErrNotFound              the container, network or node does not exist
//	ErrImageNotFound         the image is not present locally (or cannot be pulled)
//	ErrConflict              a name is taken, a container is in the wrong state
//	ErrSubnetOverlap         a network's subnet overlaps another (an ErrConflict)
//	ErrNetworkInUse          a network still has containers (an ErrConflict)
//	ErrCheckpointUnsupported the engine cannot checkpoint (not experimental, no CRIU, CRIU fails)
//
// A Client is safe for concurrent use. Every method takes a context; Events
// runs a goroutine that ends when its context ends.
package engine

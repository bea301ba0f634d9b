package api

import "encoding/json"

// SwarmNode is a node of the Docker Swarm as the engine describes it.
type SwarmNode struct {
	ID           string `json:"id"`
	Hostname     string `json:"hostname"`
	Addr         string `json:"addr"`
	Role         string `json:"role"`
	State        string `json:"state"`
	Availability string `json:"availability"`
	NCPU         int    `json:"ncpu"`
	MemBytes     int64  `json:"mem_bytes"`
	Leader       bool   `json:"leader"`
	// Raw is the engine's full description of the node (docker node inspect).
	Raw json.RawMessage `json:"raw,omitempty"`
}

// NetworkInfo is a Docker network as the engine describes it.
type NetworkInfo struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Driver     string            `json:"driver"`
	Subnet     string            `json:"subnet"`
	Labels     map[string]string `json:"labels"`
	Containers int               `json:"containers"`
}

// Labels RSwarm puts on everything it creates, so that it only ever touches its own objects.
const (
	LabelJob  = "rswarm.job"
	LabelTask = "rswarm.task"
	LabelNode = "rswarm.node"
	// LabelAttempt and LabelCores record a task's attempt (its job's restart
	// count) and its cores, so that a restarted worker adopts its containers.
	LabelAttempt = "rswarm.attempt"
	LabelCores   = "rswarm.cores"
	LabelCluster = "rswarm.cluster"
	LabelManaged = "rswarm.managed"
)

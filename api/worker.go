package api

import (
	"fmt"
	"sort"
	"strconv"
)

// WorkerStatus is whether a worker can take tasks.
type WorkerStatus string

// Worker statuses.
const (
	WorkerReady WorkerStatus = "ready" // registered and heartbeating
	WorkerDown  WorkerStatus = "down"  // no heartbeat within the grace period
	WorkerLeft  WorkerStatus = "left"  // removed from the swarm
	// WorkerDrained keeps its running tasks but gets no new ones.
	WorkerDrained WorkerStatus = "drained"
)

// Worker is one host that runs tasks: the original's WorkersInfo record,
// extended. Its identity is its Swarm node ID, which the original stored
// under "hostname".
type Worker struct {
	ID       string `json:"hostname"`
	Host     string `json:"host"`
	Address  string `json:"address"`
	Runtime  string `json:"runtime"`
	Cores    int    `json:"cores"`
	MemTotal int64  `json:"mem_total"`

	// CPUs maps each core id ("0".."N-1") to whether it is allocated, as in
	// the original. CoreTasks names the task holding each busy core. These,
	// MemFree and MemAllocated are the worker's allocation: only the
	// jobmanager writes them (the single-writer rule); the globalmanager
	// writes the rest at registration, discovery the heartbeat figures.
	CPUs      map[string]bool   `json:"CPUs"`
	CoreTasks map[string]string `json:"core_tasks,omitempty"`
	// MemFree is the memory not reserved by tasks, in the original's "<MB>m" format.
	MemFree string `json:"MemFree"`
	// MemAllocated is the memory reserved by tasks' mem_limit, in bytes.
	MemAllocated int64 `json:"mem_allocated"`

	Status        WorkerStatus `json:"status"`
	JoinTime      float64      `json:"join_time"`
	LastHeartbeat float64      `json:"last_heartbeat"`
	// Checkpoint reports whether CRIU checkpoints work on this host;
	// CheckpointError says why not.
	Checkpoint      bool   `json:"checkpoint"`
	CheckpointError string `json:"checkpoint_error,omitempty"`
	// TransferAddr is where the worker receives migrated tasks' state
	// (host:port); empty for workers that cannot (simulated ones).
	TransferAddr string `json:"transfer_addr,omitempty"`
	// Usage is the worker's latest heartbeat figures.
	CoresBusy int   `json:"cores_busy"`
	MemUsed   int64 `json:"mem_used"`
}

// SetAllocation rewrites CPUs, CoreTasks and MemFree from a map of core id to task.
func (w *Worker) SetAllocation(busy map[int]string, memAllocated int64) {
	w.CPUs = make(map[string]bool, w.Cores)
	w.CoreTasks = make(map[string]string, len(busy))
	for c := 0; c < w.Cores; c++ {
		k := strconv.Itoa(c)
		t, ok := busy[c]
		w.CPUs[k] = ok
		if ok {
			w.CoreTasks[k] = t
		}
	}
	w.MemAllocated = memAllocated
	w.MemFree = FormatMB(w.MemTotal - memAllocated)
}

// BusyCores returns the ids of the allocated cores, ascending.
func (w *Worker) BusyCores() []int {
	var out []int
	for k, b := range w.CPUs {
		if b {
			if c, err := strconv.Atoi(k); err == nil {
				out = append(out, c)
			}
		}
	}
	sort.Ints(out)
	return out
}

// FormatMB writes bytes in the original's "<decimal MB>m" format.
func FormatMB(b int64) string {
	return strconv.FormatFloat(float64(b)/1e6, 'f', 3, 64) + "m"
}

// Usage is a worker's core utilisation over time: the original's
// WorkersResourceInfo record. Details holds [seconds since InitTime, used core ratio].
type Usage struct {
	Node     string       `json:"hostname"`
	InitTime float64      `json:"init_time"`
	Details  [][2]float64 `json:"details"`
}

// UsagePoint is one sample of a worker's core utilisation.
type UsagePoint struct {
	Node  string
	Time  float64 // epoch seconds
	Ratio float64 // busy cores / cores, 0..1
}

func (p UsagePoint) String() string { return fmt.Sprintf("%s@%.3f=%.3f", p.Node, p.Time, p.Ratio) }

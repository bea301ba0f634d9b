package api

// Messages that cross the bus. Each is a versioned JSON body under a kind
// name; receivers apply them idempotently, because delivery is at least once.

// Message kinds.
const (
	// worker -> globalmanager
	KindRegister = "register"
	// globalmanager -> worker
	KindRunTask  = "run_task"
	KindStopTask = "stop_task"
	KindTaskLogs = "task_logs"
	// worker -> discovery
	KindTaskStatuses = "task_statuses"
	KindHeartbeat    = "heartbeat"
	// frontend, discovery, globalmanager -> jobmanager
	KindJobSubmitted   = "job_submitted"
	KindJobCancelled   = "job_cancelled"
	KindTasksDone      = "tasks_done"
	KindWorkersChanged = "workers_changed"
	KindSwitchStrategy = "switch_strategy"
	KindGetStrategy    = "get_strategy"
	// jobmanager -> globalmanager (only the jobmanager's key may send them)
	KindDeployJob = "deploy_job"
	KindStopJob   = "stop_job"
)

// DeployJob hands a placed job (every task has its node and cpuset_cpus)
// to the globalmanager: the whole job travels in the message, and the
// globalmanager deploys it as it is, without reading it back from the
// store. The reply is a JobReply.
type DeployJob struct {
	Job *Job `json:"job"`
}

// StopJob asks the globalmanager to stop a job's remaining containers
// (cancelled, or a failed member of a gang). The reply is a JobReply.
type StopJob struct {
	Job    string `json:"job"`
	Reason string `json:"reason"`
}

// JobReply answers a DeployJob or a StopJob: empty when it was carried out,
// else the error as the REST API would answer it (ErrorResponse's status
// and detail), so that the jobmanager judges an outcome the same way
// whichever way it came (see Err).
type JobReply struct {
	Status int          `json:"status,omitempty"`
	Error  *ErrorDetail `json:"error,omitempty"`
}

// NewJobReply is err's JobReply.
func NewJobReply(err error) JobReply {
	if err == nil {
		return JobReply{}
	}
	code, body := ErrorResponse(err)
	return JobReply{Status: code, Error: &body.Error}
}

// Err is the reply's error (a *StatusError), nil on success.
func (r JobReply) Err() error {
	if r.Status == 0 {
		return nil
	}
	se := &StatusError{Status: r.Status}
	if r.Error != nil {
		se.Detail = *r.Error
	}
	return se
}

// Register is a worker introducing itself to the globalmanager. NodeID is
// its Swarm node ID when its engine is already in the swarm, else empty.
type Register struct {
	NodeID          string `json:"node_id"`
	Host            string `json:"host"`
	Address         string `json:"address"`
	Runtime         string `json:"runtime"`
	Cores           int    `json:"cores"`
	MemTotal        int64  `json:"mem_total"`
	Checkpoint      bool   `json:"checkpoint"`
	CheckpointError string `json:"checkpoint_error,omitempty"`
	// TransferAddr is where the worker receives migrated tasks (host:port),
	// "" when it does not.
	TransferAddr string `json:"transfer_addr,omitempty"`
}

// RegisterReply answers a Register: either the worker is registered under
// NodeID, or it must join the swarm at ManagerAddr with JoinToken and register again.
type RegisterReply struct {
	NodeID      string `json:"node_id,omitempty"`
	JoinToken   string `json:"join_token,omitempty"`
	ManagerAddr string `json:"manager_addr,omitempty"`
	// Cluster names the control plane (its store), so that a worker
	// restarted while its containers ran adopts only this cluster's.
	Cluster string `json:"cluster,omitempty"`
}

// RunTask tells a worker to start one task's container.
type RunTask struct {
	Job     string `json:"job"`
	Network string `json:"network"`
	// NetworkDriver "bridge" asks the worker to create Network as a local
	// bridge on its own engine if it does not exist yet (and to remove it
	// with the job's last container there); otherwise Network is the job's
	// overlay, created by the globalmanager.
	NetworkDriver string `json:"network_driver,omitempty"`
	// NetworkSubnet is the job's subnet for a local network ("" = the engine picks).
	NetworkSubnet string `json:"network_subnet,omitempty"`
	Task          Task   `json:"task"`
	// Attempt is the job's restart count when the task was sent: the
	// worker reports it back, so that the statuses of an earlier attempt
	// are told apart from the current one's.
	Attempt int `json:"attempt,omitempty"`
	// Cluster is set by the worker, from its registration, for its runtime
	// to label the container with.
	Cluster string `json:"cluster,omitempty"`
	// Alone says the task is its job's only one: no other task reaches it
	// by name, so a worker may start it in a network namespace made ahead
	// (see engine.Runtime.SandboxImage).
	Alone bool `json:"alone,omitempty"`
}

// StopTask tells a worker to stop and remove one task's container.
type StopTask struct {
	Job    string `json:"job"`
	Task   string `json:"task"`
	Reason string `json:"reason,omitempty"`
	// Grace is how long the container gets between SIGTERM and SIGKILL, in
	// seconds; 0 kills it at once.
	Grace float64 `json:"grace"`
	// Migrating says the task is moving to another worker: its stop is
	// reported as Migrating, not as its end.
	Migrating bool `json:"migrating,omitempty"`
	// Orphan says the control plane does not want the task (reconciliation):
	// the copy of attempt Attempt is stopped and its end is not reported.
	Orphan  bool `json:"orphan,omitempty"`
	Attempt int  `json:"attempt,omitempty"`
	// Forget, with Orphan, says the task's job is unknown to this control
	// plane: the worker drops it from what it holds without touching its
	// container, which may belong to another RSwarm on the same engine.
	Forget bool `json:"forget,omitempty"`
}

// TaskLogs asks a worker for the last Tail lines of a task's output.
type TaskLogs struct {
	Task string `json:"task"`
	Tail int    `json:"tail"`
}

// TaskStatus is a task's observed state on its worker.
type TaskStatus struct {
	Node     string   `json:"node"`
	Job      string   `json:"job"`
	Task     string   `json:"task"`
	State    State    `json:"state"`
	ExitCode *int     `json:"exit_code,omitempty"`
	Error    string   `json:"error,omitempty"`
	Logs     []string `json:"logs,omitempty"`
	Time     float64  `json:"time"`
	// Attempt is the RunTask's attempt the status is about.
	Attempt int `json:"attempt,omitempty"`
}

// TaskStatuses is several task statuses in one message, in the order they
// happened: a worker sends whatever queued up while the previous report
// was in flight, so that a busy worker's reports do not wait in line for
// one round trip each.
type TaskStatuses struct {
	Statuses []TaskStatus `json:"statuses"`
}

// Heartbeat is a worker's periodic report of its use. Time is when the
// worker sent it, on its own clock.
type Heartbeat struct {
	Node      string  `json:"node"`
	Time      float64 `json:"time"`
	Cores     int     `json:"cores"`
	CoresBusy int     `json:"cores_busy"`
	MemTotal  int64   `json:"mem_total"`
	MemUsed   int64   `json:"mem_used"`
	Tasks     int     `json:"tasks"`
	// Running lists the tasks the worker holds: those it runs, those
	// starting, and those whose end it has not delivered yet. Discovery
	// compares it with the store (reconciliation).
	Running []HeldTask `json:"running,omitempty"`
}

// HeldTask is a task a worker holds, as it reports it in its heartbeats.
type HeldTask struct {
	Job     string `json:"job"`
	Task    string `json:"task"`
	Attempt int    `json:"attempt,omitempty"`
	Cores   int    `json:"cores"`
	// Starting says its container is still being made and started: held
	// (its cores are taken), not running yet.
	Starting bool `json:"starting,omitempty"`
}

// HeartbeatReply answers a heartbeat: the tasks the worker holds that the
// control plane does not want, to stop without reporting their end.
type HeartbeatReply struct {
	Stop []StopTask `json:"stop,omitempty"`
}

// JobRef names a job.
type JobRef struct {
	Job string `json:"job"`
}

// TaskRef names a task of a job, on a node.
type TaskRef struct {
	Job  string `json:"job"`
	Task string `json:"task"`
	Node string `json:"node,omitempty"`
	// State is the final state the task reached, so that the jobmanager
	// can stop the rest of a job whose task failed without reading it.
	State State `json:"state,omitempty"`
	// JobEnded says the task's job ended with it: nothing of it is left to stop.
	JobEnded bool `json:"job_ended,omitempty"`
}

// TasksDone tells the jobmanager that tasks reached a final state, so their cores are free.
type TasksDone struct {
	Tasks []TaskRef `json:"tasks"`
}

// StrategyInfo names the jobmanager's current strategy and the valid ones.
type StrategyInfo struct {
	Name       string            `json:"name"`
	Strategies map[string]string `json:"strategies,omitempty"`
}

// KindGetStats asks the jobmanager for its counters (SchedulerStats), or
// discovery for its figures (StatusStats).
const KindGetStats = "get_stats"

// Histogram is a cumulative histogram in Prometheus' shape: Counts[i] is
// the number of observations <= Bounds[i]; Count and Sum cover all of them.
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum"`
}

// NewHistogram returns an empty histogram with the given upper bounds.
func NewHistogram(bounds ...float64) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	for i, b := range h.Bounds {
		if v <= b {
			h.Counts[i]++
		}
	}
	h.Count++
	h.Sum += v
}

// Clone returns a copy that does not share memory with h.
func (h Histogram) Clone() Histogram {
	c := h
	c.Bounds = append([]float64(nil), h.Bounds...)
	c.Counts = append([]uint64(nil), h.Counts...)
	return c
}

// SchedulerStats are the jobmanager's counters.
type SchedulerStats struct {
	Strategy   string `json:"strategy"`
	Queued     int    `json:"queued"`
	Placed     uint64 `json:"placed"`
	Rounds     uint64 `json:"rounds"`
	FreeCores  int    `json:"free_cores"`
	TotalCores int    `json:"total_cores"`
	// RoundSeconds is how long each placement round's decisions took.
	RoundSeconds Histogram `json:"round_seconds"`
	// PlacementDelay is the time from a job's submission to its placement, in seconds.
	PlacementDelay Histogram `json:"placement_delay_seconds"`
	// DeployRetries counts deployments sent again because the first
	// attempt delivered nothing for sure (the globalmanager unreachable).
	DeployRetries uint64 `json:"deploy_retries"`
	// Restarts counts jobs put back in the queue by their restart policy.
	Restarts uint64 `json:"restarts"`
	// RoundGaps are the gaps between placement rounds while jobs wait:
	// from a round (or a job's submission, if later) to the next round.
	// A full cluster with no task ending shows as a gap too.
	RoundGaps Gaps `json:"round_gaps"`
}

// StatusStats are discovery's figures.
type StatusStats struct {
	// ApplyGaps are the gaps between applications of task statuses while
	// statuses wait: from a batch's write (or a status's arrival, if
	// later) to the end of the next batch's write.
	ApplyGaps Gaps `json:"apply_gaps"`
	// Applied counts the statuses applied.
	Applied uint64 `json:"applied"`
}

// Cluster operations: globalmanager -> worker, and globalmanager -> jobmanager.
const (
	KindCheckpoint = "checkpoint"
	KindUpdateTask = "update_task"
	KindLeave      = "leave"

	KindReserve    = "reserve"
	KindCommit     = "commit"
	KindAbort      = "abort"
	KindReallocate = "reallocate"

	// The single-writer rule: the globalmanager asks the jobmanager to
	// write what only the jobmanager writes (a worker's allocation, a
	// task's node and cpuset_cpus), and waits for the answer.
	KindWorkerRegistered = "worker_registered"
	KindResized          = "resized"
	KindUnplace          = "unplace"
)

// Checkpoint asks a worker to checkpoint a task's container (CRIU).
type Checkpoint struct {
	Task         string `json:"task"`
	Name         string `json:"name"`
	LeaveRunning bool   `json:"leave_running"`
}

// UpdateTask changes a running task's cores and memory limit in place.
type UpdateTask struct {
	Task       string `json:"task"`
	CpusetCpus string `json:"cpuset_cpus"`
	MemLimit   string `json:"mem_limit"`
}

// Reservation asks the jobmanager for cores for a task: Cores cores on
// Node (the lowest free ids) when Cpuset is empty, else exactly Cpuset.
//
// Job names the task's job when the jobmanager writes where the task runs
// (a move's commit, a resize): it writes the task's node and cpuset_cpus
// (and, for a resize, req_cores and MemLimit) in the job's record.
type Reservation struct {
	Job    string `json:"job,omitempty"`
	Task   string `json:"task"`
	Node   string `json:"node"`
	Cores  int    `json:"cores"`
	Cpuset []int  `json:"cpuset,omitempty"`
	Mem    int64  `json:"mem"`
	// PrevMem is the memory the task held before a reallocation.
	PrevMem int64 `json:"prev_mem,omitempty"`
	// MemLimit is the task's new mem_limit, written with a resize.
	MemLimit string `json:"mem_limit,omitempty"`
}

// WorkerSize tells the jobmanager a worker registered (again) with this
// size: it adds or resizes the worker and writes its allocation.
type WorkerSize struct {
	Worker   string `json:"worker"`
	Cores    int    `json:"cores"`
	MemTotal int64  `json:"mem_total"`
}

// Unplace asks the jobmanager to place a job again from scratch: its
// Tasks (stopped where they ran) give their cores back, and the job is
// reset to Ready, its placements forgotten (pins kept under no-scheduler),
// with Note added to its notes, and queued.
type Unplace struct {
	Job   string   `json:"job"`
	Tasks []string `json:"tasks"`
	Note  string   `json:"note"`
}

// Reserved answers a Reservation with the core ids held.
type Reserved struct {
	Cores []int `json:"cores"`
}

// Moving a task's state between workers: the globalmanager tells the
// destination what to expect (ReceiveTask), then tells the source to send
// (SendTask). The source streams the task's state straight to the
// destination's transfer port; the destination accepts only a transfer it
// was told to expect, under its one-time token.
const (
	KindReceiveTask = "receive_task"
	KindSendTask    = "send_task"
)

// Migration modes.
const (
	ModeLive = "live" // CRIU checkpoint, restored on the destination
	ModeCold = "cold" // stopped, filesystem changes moved, started afresh
	ModeAuto = "auto" // live where both hosts can checkpoint, else cold
)

// ReceiveTask tells a worker to expect a task's state under Token and to
// run the task as RunTask says once it has arrived.
type ReceiveTask struct {
	RunTask
	Token string `json:"token"`
	Mode  string `json:"mode"`
}

// SendTask tells a task's worker to send its state to To (a transfer
// address) under Token and, once the destination runs it, to remove it here.
type SendTask struct {
	Job   string `json:"job"`
	Task  string `json:"task"`
	To    string `json:"to"`
	Token string `json:"token"`
	Mode  string `json:"mode"`
}

// Sent reports a transfer: its size and checksum, and how long the task
// did not run (from the freeze on the source to the start on the destination).
type Sent struct {
	Bytes    int64   `json:"bytes"`
	SHA256   string  `json:"sha256"`
	Downtime float64 `json:"downtime_seconds"`
	// The downtime's parts: freezing and exporting the task (for a live
	// move, the CRIU checkpoint), streaming it to the destination until it
	// is prepared there, and stopping it here for good until it runs there
	// (for a live move, the restore).
	Freeze   float64 `json:"freeze_seconds,omitempty"`
	Transfer float64 `json:"transfer_seconds,omitempty"`
	Start    float64 `json:"start_seconds,omitempty"`
	Note     string  `json:"note,omitempty"`
}

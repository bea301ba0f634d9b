package management

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Host states in tables and in `status -o json`.
const (
	StateReady       = "ready"       // its worker(s) registered with the globalmanager
	StateUnchanged   = "unchanged"   // ready, and `up` had nothing to do
	StateControl     = "control"     // runs the control plane only
	StateStarting    = "starting"    // started, not registered yet
	StateDown        = "down"        // not running
	StateStopped     = "stopped"     // `down` stopped it
	StateUnreachable = "unreachable" // SSH could not connect
	StateRefused     = "refused"     // host key unknown or mismatched
	StateFailed      = "failed"      // anything else; see Error
)

// HostReport is one host's line of a table, and its JSON in `status -o json`.
type HostReport struct {
	Host    string `json:"host"`
	Address string `json:"address"`
	State   string `json:"state"`
	// NodeID is the worker's node ID (the first one for a host of
	// several simulated workers).
	NodeID string `json:"node_id"`
	// Workers is how many of the host's workers are registered.
	Workers int   `json:"workers"`
	Cores   int   `json:"cores"`
	Memory  int64 `json:"memory"`
	// Qdiscs the host's kernel supports (htb, tbf, netem).
	Qdiscs  Qdiscs        `json:"qdiscs,omitempty"`
	Took    time.Duration `json:"-"`
	Seconds float64       `json:"seconds,omitempty"`
	Error   string        `json:"error,omitempty"`
	// Notes are what happened on the host (uploaded, started, ...).
	Notes []string `json:"notes,omitempty"`
}

// OK says whether the host ended in a good state for the operation.
func (r *HostReport) OK() bool { return r.Error == "" }

// FleetReport is the whole fleet's state.
type FleetReport struct {
	// Frontend is the frontend's address as seen from the control plane host.
	Frontend     string        `json:"frontend"`
	ControlPlane string        `json:"control_plane"`
	Hosts        []*HostReport `json:"hosts"`
}

// WriteTable prints the reports as an aligned table: host, state, node id,
// cores, memory, time, and the error or notes.
func WriteTable(w io.Writer, reports []*HostReport) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATE\tNODE ID\tCORES\tMEMORY\tTIME\tDETAIL")
	for _, r := range reports {
		node := r.NodeID
		if node == "" {
			node = "-"
		} else if r.Workers > 1 {
			node = fmt.Sprintf("%s (+%d)", node, r.Workers-1)
		}
		cores, mem, took := "-", "-", "-"
		if r.Cores > 0 {
			cores = fmt.Sprint(r.Cores)
		}
		if r.Memory > 0 {
			mem = FormatBytes(r.Memory)
		}
		if r.Took > 0 {
			took = fmt.Sprintf("%.1fs", r.Took.Seconds())
		}
		detail := r.Error
		if detail == "" {
			detail = strings.Join(r.Notes, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Host, r.State, node, cores, mem, took, detail)
	}
	return tw.Flush()
}

// FormatBytes writes a byte count in binary units with one decimal.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

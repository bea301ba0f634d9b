package api

import (
	"encoding/json"
	"fmt"
)

// State is the lifecycle state of a task, and of a job. States are declared
// in lifecycle order, so range checks such as s < Running are meaningful.
// The last three are final: nothing moves a task out of them.
type State uint8

// The states in lifecycle order. Jobs use Ready, Deployed, Running and the
// final states; tasks use all of them.
const (
	Ready     State = iota // accepted, waiting for cores
	Scheduled              // cores assigned by the jobmanager
	Deployed               // run command delivered to (and acknowledged by) the worker
	Running                // container started
	Migrating              // being moved between workers
	Down                   // exited with code 0
	Failed                 // non-zero exit, OOM, missing image, lost worker
	Cancelled              // deleted by a user
)

var stateNames = [...]string{"Ready", "Scheduled", "Deployed", "Running", "Migrating", "Down", "Failed", "Cancelled"}

// String returns the state's name as it appears in JSON ("Running").
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Final reports whether s is a terminal state (Down, Failed or Cancelled).
func (s State) Final() bool { return s >= Down }

// ParseState returns the state named name ("Running"), or an error listing the names.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("api: unknown state %q (want one of %v)", name, stateNames)
}

// MarshalText encodes the state by name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a state name. The empty string means Ready.
func (s *State) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = Ready
		return nil
	}
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

var _ json.Marshaler = State(0)

// MarshalJSON encodes the state as its name.
func (s State) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// CanTransition reports whether a task may move from one state to another.
// Moves go forward in lifecycle order, with two exceptions: a migrating task
// returns to Deployed or Running on its new worker, and a task may be
// re-queued (back to Ready) before it has started running, when its
// dispatch failed. A final state is never left, and staying put is not a move.
func CanTransition(from, to State) bool {
	switch {
	case from.Final():
		return false
	case from == Migrating:
		return to == Deployed || to == Running || to.Final()
	case to == Ready:
		return from == Scheduled || from == Deployed
	default:
		return to > from
	}
}

package discovery_test

import (
	"slices"
	"testing"

	"github.com/rswarm/rswarm/discovery"
)

// Found item 4 of issue 10: after a stall of discovery longer than the
// grace, every live worker was declared lost before its queued heartbeats
// were read. Heartbeats are now judged by when they were sent, and a stall
// of the observer gives every node a fresh grace.
func TestTableJudgesHeartbeatsBySendingAndSurvivesStalls(t *testing.T) {
	type op struct {
		do   string // "beat" (node, read at, sent at), "expired" (at, want)
		node string
		at   float64
		sent float64
		exp  []string
	}
	tests := []struct {
		name  string
		stall float64
		ops   []op
	}{
		{name: "discovery stalled 8 s: nobody lost when it resumes", stall: 1.5, ops: []op{
			// Grace 3, checks every second. Beats sent every second by a
			// worker whose clock is 100 s ahead of ours, read 0.01 s later.
			{do: "beat", node: "w", at: 0.01, sent: 100},
			{do: "expired", at: 0.5},
			{do: "beat", node: "w", at: 1.01, sent: 101},
			{do: "expired", at: 1.5},
			// Stalled from 1.6 to 9.6: the beats sent at 102..109 wait in the queue.
			// The first check after the stall runs before they are read:
			// a gap of 8.1 > 1.5 is the observer's stall, not w's silence.
			{do: "expired", at: 9.6, exp: nil},
			{do: "beat", node: "w", at: 9.61, sent: 102},
			{do: "beat", node: "w", at: 9.62, sent: 109},
			{do: "expired", at: 10.5, exp: nil},
		}},
		{name: "without stall detection the same stall declares it lost", stall: 0, ops: []op{
			{do: "beat", node: "w", at: 0.01, sent: 100},
			{do: "beat", node: "w", at: 1.01, sent: 101},
			{do: "expired", at: 9.6, exp: []string{"w"}},
		}},
		{name: "a node silent after the stall is lost a grace later", stall: 1.5, ops: []op{
			{do: "beat", node: "w", at: 0.01, sent: 100},
			{do: "expired", at: 1},
			{do: "expired", at: 9, exp: nil}, // stall: fresh grace from 9
			{do: "expired", at: 10},
			{do: "expired", at: 11},
			{do: "expired", at: 12},
			{do: "expired", at: 12.5, exp: []string{"w"}}, // 3.5 s after 9
		}},
		{name: "a backlog read late still shows when the node was alive", stall: 0, ops: []op{
			// Heartbeats sent 0..4 (worker clock 100 s behind ours), the last
			// two read late (discovery busy, not stalled: no gap between checks).
			{do: "beat", node: "w", at: 100.01, sent: 0},
			{do: "beat", node: "w", at: 101.01, sent: 1},
			{do: "beat", node: "w", at: 104.0, sent: 3},
			{do: "beat", node: "w", at: 106.5, sent: 4},
			// Sent at 4 on its clock is 104.01 on ours (offset 100.01 from the first).
			{do: "expired", at: 107.0, exp: nil}, // silent 2.99 by sending time
			{do: "expired", at: 107.1, exp: []string{"w"}},
		}},
		{name: "a node that stopped is lost a grace after its last sending", stall: 1.5, ops: []op{
			{do: "beat", node: "a", at: 0.01, sent: 0},
			{do: "beat", node: "b", at: 0.01, sent: 0},
			{do: "expired", at: 1},
			{do: "beat", node: "b", at: 1.01, sent: 1},
			{do: "expired", at: 2},
			{do: "beat", node: "b", at: 2.01, sent: 2},
			{do: "expired", at: 3},
			{do: "beat", node: "b", at: 3.01, sent: 3},
			{do: "expired", at: 3.5, exp: []string{"a"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := discovery.NewTable(3).WithStall(tt.stall)
			for i, o := range tt.ops {
				switch o.do {
				case "beat":
					tb.ObserveSent(o.node, o.at, o.sent)
				case "expired":
					if got := tb.Expired(o.at); !slices.Equal(got, o.exp) {
						t.Errorf("op %d: Expired(%v) = %v, want %v", i, o.at, got, o.exp)
					}
				}
			}
		})
	}
}

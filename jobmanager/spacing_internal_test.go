package jobmanager

import (
	"testing"
	"time"
)

// TestRoundSpacing guards the stall's amplifier: a round that took long to
// decide (a starved process reads seconds on the wall clock) must not keep
// the next round away for four times as long.
func TestRoundSpacing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		elapsed time.Duration
		want    time.Duration
	}{
		{"a quick round leaves no pause", 0, 0},
		{"a round of 10 ms: 4 x 10 = 40 ms", 10 * time.Millisecond, 40 * time.Millisecond},
		{"a round of 62.5 ms: 4 x 62.5 = 250 ms, the cap", 62500 * time.Microsecond, 250 * time.Millisecond},
		{"a round of 2.5 s: 4 x 2.5 = 10 s, capped at 250 ms", 2500 * time.Millisecond, 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := roundSpacing(tc.elapsed); got != tc.want {
				t.Errorf("roundSpacing(%v) = %v, want %v", tc.elapsed, got, tc.want)
			}
		})
	}
}

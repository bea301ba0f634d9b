package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/rswarm/rswarm/placebench"
)

// TestBenchPlacementFailsOnDisagreement: a report whose naive reference
// disagreed once is printed and fails the command with exit code 1; one
// that agreed on every decision, or skipped the reference, does not.
// (placebench's TestBenchFailsOnADisagreement shows a wrong decision
// reaching such a report.)
func TestBenchPlacementFailsOnDisagreement(t *testing.T) {
	o := placebench.Options{Workers: 1, Cores: 8, Tasks: 10, Strategy: "best-fit"}
	tests := []struct {
		name     string
		rep      placebench.Report
		wantCode int // 0: no error
	}{
		{"agreed", placebench.Report{Options: o, Naive: &placebench.Run{Name: "naive"}, Compared: 10, Agreed: 10}, 0},
		{"reference skipped", placebench.Report{Options: o}, 0},
		{"disagreed once", placebench.Report{Options: o, Naive: &placebench.Run{Name: "naive"}, Compared: 10, Agreed: 9,
			Disagreement: `decision 4: indexed chose worker "w0" cores [0 1], naive worker "w0" cores [0 2]`}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			err := writeBenchPlacement(&b, tc.rep)
			if !strings.Contains(b.String(), "GOMAXPROCS=") {
				t.Errorf("output lacks the runtime line:\n%s", b.String())
			}
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("writeBenchPlacement = %v, want nil", err)
				}
				return
			}
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != tc.wantCode || !errors.Is(err, placebench.ErrDisagreed) {
				t.Fatalf("writeBenchPlacement = %v, want exit %d wrapping ErrDisagreed", err, tc.wantCode)
			}
			if !strings.Contains(b.String(), "DISAGREED on 1;") {
				t.Errorf("output does not say it disagreed:\n%s", b.String())
			}
		})
	}
}

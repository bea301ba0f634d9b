package placement

import (
	"errors"
	"slices"
	"testing"
)

func TestPickFree(t *testing.T) {
	tests := []struct {
		name      string
		worker    spec
		n         int
		want      []int
		wantFree  int
		wantError error
	}{
		// 4 cores, none held: the two lowest.
		{name: "empty worker, lowest first", worker: spec{id: "w", cores: 4}, n: 2, want: []int{0, 1}, wantFree: 4},
		// 0 and 2 held: 1 and 3 are the free ones, in order.
		{name: "skips held cores", worker: spec{id: "w", cores: 4, held: []int{0, 2}}, n: 2, want: []int{1, 3}, wantFree: 2},
		// 3 of 4 held: one free, two asked -> nothing, and 1 free reported.
		{name: "too few free", worker: spec{id: "w", cores: 4, held: []int{0, 1, 2}}, n: 2, wantFree: 1},
		// Cores past 64 live in another word: 0..64 held, 65 and 66 free of 70.
		{name: "beyond the first word", worker: spec{id: "w", cores: 70, held: seq(0, 65)}, n: 2, want: []int{65, 66}, wantFree: 5},
		// A down worker still answers: the caller decides whether it may be used.
		{name: "down worker", worker: spec{id: "w", cores: 2, down: true}, n: 1, want: []int{0}, wantFree: 2},
		// Zero cores asked: an empty choice, not nil.
		{name: "zero cores", worker: spec{id: "w", cores: 2}, n: 0, want: []int{}, wantFree: 2},
		{name: "negative", worker: spec{id: "w", cores: 2}, n: -1, wantError: ErrInvalidAllocation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, tc.worker)
			got, free, err := c.PickFree("w", tc.n)
			if !errors.Is(err, tc.wantError) {
				t.Fatalf("err = %v, want %v", err, tc.wantError)
			}
			if free != tc.wantFree || !slices.Equal(got, tc.want) || (tc.want != nil) != (got != nil) {
				t.Fatalf("PickFree = %v, %d free; want %v, %d free", got, free, tc.want, tc.wantFree)
			}
			// The choice is only a choice: nothing changed, and it can be allocated.
			checkCluster(t, c)
			if len(got) > 0 {
				if err := c.Allocate("picked", "w", got, 0); err != nil {
					t.Fatalf("allocating the picked cores: %v", err)
				}
				checkCluster(t, c)
			}
		})
	}
	t.Run("unknown worker", func(t *testing.T) {
		c := newTestCluster(t, spec{id: "w", cores: 2})
		if _, _, err := c.PickFree("nope", 1); !errors.Is(err, ErrUnknownWorker) {
			t.Fatalf("err = %v, want ErrUnknownWorker", err)
		}
	})
}

// seq returns lo, lo+1, ..., hi-1.
func seq(lo, hi int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

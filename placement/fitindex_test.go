package placement

import (
	"math/rand/v2"
	"testing"
)

// TestFitIndex moves workers between free counts at random and checks
// first and next against a scan of the counts, at sizes that need one,
// two and three levels, and that growing keeps the members.
func TestFitIndex(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		grown   int // capacity to grow to halfway, 0 for none
		ops     int
	}{
		{name: "one word", workers: 50, ops: 5000},
		{name: "two levels", workers: 3000, ops: 20000},
		{name: "three levels, grown from one", workers: 5000, grown: 70000, ops: 20000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, uint64(tc.workers)))
			var f fitIndex
			f.grow(tc.workers)
			free := make([]int, tc.workers) // 0 = in no set
			for op := range tc.ops {
				if op == tc.ops/2 && tc.grown > 0 {
					f.grow(tc.grown)
				}
				i := rng.IntN(tc.workers)
				to := rng.IntN(fitDepth + 20) // counts above the depth count as the depth
				if rng.IntN(4) == 0 {
					to = 0
				}
				f.move(i, free[i], to)
				free[i] = to
				k := 1 + rng.IntN(fitDepth)
				from := rng.IntN(tc.workers)
				wantFirst, wantNext := -1, -1
				for w := tc.workers - 1; w >= 0; w-- {
					if free[w] >= k {
						wantFirst = w
						if w >= from {
							wantNext = w
						}
					}
				}
				if got := f.first(k); got != wantFirst {
					t.Fatalf("op %d: first(%d) = %d, want %d", op, k, got, wantFirst)
				}
				if got := f.next(k, from); got != wantNext {
					t.Fatalf("op %d: next(%d, %d) = %d, want %d", op, k, from, got, wantNext)
				}
			}
			for i := range tc.workers {
				for k := 1; k <= fitDepth; k++ {
					if f.has(k, i) != (free[i] >= k) {
						t.Fatalf("worker %d with %d free: in the set of %d is %v", i, free[i], k, f.has(k, i))
					}
				}
			}
		})
	}
}

package placement

import (
	"errors"
	"testing"
)

func TestNewNaive(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
		want     error // nil: a reference
	}{
		{"first fit", FirstFit, nil},
		{"best fit", BestFit, nil},
		{"first fit decreasing", FirstFitDecreasing, nil},
		{"best fit decreasing", BestFitDecreasing, nil},
		{"priority decides as best fit alone", Priority, nil},
		{"no-scheduler has no decision to compare", NoScheduler, ErrNoNaive},
		{"unknown", "nope", ErrUnknownStrategy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NewNaive(tc.strategy)
			if !errors.Is(err, tc.want) || (err == nil) != (n != nil) {
				t.Fatalf("NewNaive(%q) = %v, %v; want error %v", tc.strategy, n, err, tc.want)
			}
		})
	}
	// Best fit takes the exact fit at w2 (4 free for 4 cores) over the
	// looser w1 (6 free) before it, and w3's exact fit after it loses the tie
	// on index.
	n, _ := NewNaive(BestFit)
	for _, w := range []struct {
		id    string
		cores int
	}{{"w1", 6}, {"w2", 4}, {"w3", 4}} {
		n.AddWorker(w.id, w.cores, 0)
	}
	as, ok := n.Place(Job{Name: "j", Tasks: tasks("j", 4)})
	if !ok || as[0].Worker != "w2" {
		t.Fatalf("best fit placed %v %v, want w2", as, ok)
	}
	if !n.Release(as[0].Task) || n.Release(as[0].Task) {
		t.Fatal("Release: want true once, then false")
	}
}

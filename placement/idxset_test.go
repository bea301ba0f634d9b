package placement

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestIdxset(t *testing.T) {
	tests := []struct {
		name string
		cap  int
		ops  int
	}{
		{name: "one word", cap: 64, ops: 2000},
		{name: "two levels", cap: 4096, ops: 20000},
		{name: "three levels, ragged", cap: 70000, ops: 50000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.cap)))
			s := newIdxset(tc.cap / 2)
			s.grow(tc.cap) // growing keeps members: add some before
			ref := map[int]bool{}
			for range tc.ops {
				i := rng.IntN(tc.cap)
				switch rng.IntN(3) {
				case 0:
					s.add(i)
					ref[i] = true
				case 1:
					s.remove(i)
					delete(ref, i)
				default:
					want := -1
					for k := i; k < tc.cap; k++ {
						if ref[k] {
							want = k
							break
						}
					}
					if got := s.next(i); got != want {
						t.Fatalf("next(%d) = %d, want %d", i, got, want)
					}
				}
				if s.has(i) != ref[i] {
					t.Fatalf("has(%d) = %v, want %v", i, s.has(i), ref[i])
				}
			}
			var got, want []int
			for i := s.next(0); i >= 0; i = s.next(i + 1) {
				got = append(got, i)
			}
			for k := range ref {
				want = append(want, k)
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("members %v, want %v", got, want)
			}
			if s.next(tc.cap+5) != -1 {
				t.Fatal("next beyond capacity should be -1")
			}
		})
	}
}

func TestIdxsetGrowKeepsMembers(t *testing.T) {
	s := newIdxset(64)
	for _, i := range []int{0, 5, 63} {
		s.add(i)
	}
	s.grow(100000)
	s.add(99999)
	var got []int
	for i := s.next(0); i >= 0; i = s.next(i + 1) {
		got = append(got, i)
	}
	if want := []int{0, 5, 63, 99999}; !slices.Equal(got, want) {
		t.Fatalf("members after grow %v, want %v", got, want)
	}
}

func TestMaxtreeFirst(t *testing.T) {
	var tr maxtree
	tr.grow(5)
	// leaves: 0:(2,10) 1:(8,1) 2:(4,100) 3:absent 4:(8,100)
	tr.set(0, 2, 10)
	tr.set(1, 8, 1)
	tr.set(2, 4, 100)
	tr.set(4, 8, 100)
	tests := []struct {
		name string
		k    int32
		m    int64
		want int
	}{
		{name: "first with 1 core", k: 1, m: 0, want: 0},
		{name: "cores only", k: 3, m: 0, want: 1},
		{name: "cores and memory on different leaves are skipped", k: 8, m: 50, want: 4},
		{name: "memory decides", k: 4, m: 50, want: 2},
		{name: "nothing fits", k: 9, m: 0, want: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tr.first(tc.k, tc.m); got != tc.want {
				t.Fatalf("first(%d, %d) = %d, want %d", tc.k, tc.m, got, tc.want)
			}
		})
	}
	tr.grow(1000) // growing keeps leaves
	if got := tr.first(8, 50); got != 4 {
		t.Fatalf("after grow: first(8, 50) = %d, want 4", got)
	}
	if tr.maxFree() != 8 || tr.maxMem() != 100 {
		t.Fatalf("maxima %d, %d, want 8, 100", tr.maxFree(), tr.maxMem())
	}
}

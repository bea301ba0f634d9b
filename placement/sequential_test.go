package placement

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Golden vectors of the original's pure best_fit/first_fit. Arithmetic in
// the comments: free counts after each request in [brackets]; "left" is
// free - request for each worker that fits.
var sequentialVectors = []struct {
	name     string
	strategy string
	free     []int
	requests []int
	want     string // JSON, as `rswarm place` prints it
}{
	{"issue example best fit", BestFit, []int{6, 8, 9}, []int{4, 5, 3},
		// 4: left 2,4,5 -> w0 [2,8,9]; 5: left -,3,4 -> w1 [2,3,9]; 3: left -,0,6 -> w1 [2,0,9]
		"[[0,0],[1,1],[2,1]]"},
	{"issue example first fit", FirstFit, []int{6, 8, 9}, []int{4, 5, 3},
		// 4 -> w0 [2,8,9]; 5 -> w1 [2,3,9]; 3 -> w1 [2,0,9]
		"[[0,0],[1,1],[2,1]]"},
	{"best fit prefers the tight worker", BestFit, []int{8, 4}, []int{4},
		// left 4,0 -> w1
		"[[0,1]]"},
	{"first fit prefers the first worker", FirstFit, []int{8, 4}, []int{4},
		"[[0,0]]"},
	{"best fit ties to the lowest index", BestFit, []int{5, 3, 5, 3}, []int{3, 3, 3},
		// 3: left 2,0,2,0 -> w1 [5,0,5,3]; 3: left 2,-,2,0 -> w3 [5,0,5,0]; 3: left 2,-,2,- -> w0
		"[[0,1],[1,3],[2,0]]"},
	{"first fit runs out", FirstFit, []int{3, 3}, []int{3, 3, 3},
		// -> w0 [0,3]; -> w1 [0,0]; -> -1
		"[[0,0],[1,1],[2,-1]]"},
	{"best fit with no workers", BestFit, []int{}, []int{1, 2},
		"[[0,-1],[1,-1]]"},
	{"first fit with no workers", FirstFit, nil, []int{1, 2},
		"[[0,-1],[1,-1]]"},
	{"best fit with no requests", BestFit, []int{4}, []int{},
		"[]"},
	{"first fit decreasing with nothing at all", FirstFitDecreasing, nil, nil,
		"[]"},
	{"best fit request larger than any worker", BestFit, []int{4, 8}, []int{9, 8, 1},
		// 9: none -> -1; 8: left -,0 -> w1 [4,0]; 1: left 3,- -> w0
		"[[0,-1],[1,1],[2,0]]"},
	{"first fit request larger than any worker", FirstFit, []int{4, 8}, []int{9, 1, 8},
		// 9 -> -1; 1 -> w0 [3,8]; 8 -> w1 [3,0]
		"[[0,-1],[1,0],[2,1]]"},
	{"best fit zero request fits the emptiest worker", BestFit, []int{2, 0, 1}, []int{0},
		// left 2,0,1 -> w1 (free 0 >= 0)
		"[[0,1]]"},
	{"first fit zero request", FirstFit, []int{2, 0}, []int{0},
		"[[0,0]]"},
	{"best fit one worker shrinking", BestFit, []int{10}, []int{3, 3, 3, 3},
		// [7] [4] [1] then 3 > 1 -> -1
		"[[0,0],[1,0],[2,0],[3,-1]]"},
	{"first fit decreasing, the original's crash case", FirstFitDecreasing, []int{4, 8}, []int{1, 8},
		// order: #1 (8), #0 (1). 8 -> w1 (4 < 8) [4,0]; 1 -> w0 [3,0]
		"[[1,1],[0,0]]"},
	{"best fit decreasing, the original's crash case", BestFitDecreasing, []int{4, 8}, []int{1, 8},
		// 8: left -,0 -> w1 [4,0]; 1: left 3,- -> w0
		"[[1,1],[0,0]]"},
	{"first fit decreasing is stable", FirstFitDecreasing, []int{5, 5}, []int{2, 3, 2, 3},
		// order #1 (3), #3 (3), #0 (2), #2 (2): 3 -> w0 [2,5]; 3 -> w1 [2,2]; 2 -> w0 [0,2]; 2 -> w1 [0,0]
		"[[1,0],[3,1],[0,0],[2,1]]"},
	{"best fit decreasing mixed", BestFitDecreasing, []int{6, 3, 4}, []int{1, 3, 4, 2},
		// order #2 (4), #1 (3), #3 (2), #0 (1).
		// 4: left 2,-,0 -> w2 [6,3,0]; 3: left 3,0,- -> w1 [6,0,0]; 2: left 4 -> w0 [4,0,0]; 1 -> w0 [3,0,0]
		"[[2,2],[1,1],[3,0],[0,0]]"},
	{"first fit decreasing mixed", FirstFitDecreasing, []int{6, 3, 4}, []int{1, 3, 4, 2},
		// 4 -> w0 [2,3,4]; 3 -> w1 [2,0,4]; 2 -> w0 [0,0,4]; 1 -> w2 [0,0,3]
		"[[2,0],[1,1],[3,0],[0,2]]"},
	{"best fit in input order", BestFit, []int{5, 3}, []int{2, 3},
		// 2: left 3,1 -> w1 [5,1]; 3: left 2,- -> w0 [2,1]
		"[[0,1],[1,0]]"},
	{"best fit decreasing on the same input", BestFitDecreasing, []int{5, 3}, []int{2, 3},
		// order #1 (3), #0 (2): 3: left 2,0 -> w1 [5,0]; 2: left 3 -> w0
		"[[1,1],[0,0]]"},
	{"first fit nothing fits", FirstFit, []int{1, 1}, []int{2, 2},
		"[[0,-1],[1,-1]]"},
	{"best fit fills then fails", BestFit, []int{2, 2, 2}, []int{2, 1, 1, 1, 2},
		// 2: left 0,0,0 -> w0 [0,2,2]; 1: left 1,1 -> w1 [0,1,2]; 1: left 0,1 -> w1 [0,0,2];
		// 1: left 1 -> w2 [0,0,1]; 2: none -> -1
		"[[0,0],[1,1],[2,1],[3,2],[4,-1]]"},
	{"first fit fills then fails", FirstFit, []int{2, 2, 2}, []int{2, 1, 1, 1, 2},
		// 2 -> w0 [0,2,2]; 1 -> w1 [0,1,2]; 1 -> w1 [0,0,2]; 1 -> w2 [0,0,1]; 2 -> -1
		"[[0,0],[1,1],[2,1],[3,2],[4,-1]]"},
	{"best fit decreasing with no workers", BestFitDecreasing, []int{}, []int{3, 1},
		"[[0,-1],[1,-1]]"},
	{"first fit decreasing, the largest does not fit", FirstFitDecreasing, []int{4}, []int{2, 5, 2},
		// order #1 (5), #0 (2), #2 (2): 5 -> -1; 2 -> w0 [2]; 2 -> w0 [0]
		"[[1,-1],[0,0],[2,0]]"},
	{"best fit exact fit among many", BestFit, []int{9, 7, 8, 7}, []int{7},
		// left 2,0,1,0 -> w1
		"[[0,1]]"},
	{"best fit is not the first that fits", BestFit, []int{10, 2, 6, 5}, []int{5, 5},
		// 5: left 5,-,1,0 -> w3 [10,2,6,0]; 5: left 5,-,1,- -> w2
		"[[0,3],[1,2]]"},
	{"first fit on the same input", FirstFit, []int{10, 2, 6, 5}, []int{5, 5},
		// 5 -> w0 [5,2,6,5]; 5 -> w0 [0,2,6,5]
		"[[0,0],[1,0]]"},
}

func TestPlaceSequentialGolden(t *testing.T) {
	for _, tc := range sequentialVectors {
		t.Run(tc.name, func(t *testing.T) {
			free := append([]int(nil), tc.free...)
			got, err := PlaceSequential(tc.strategy, free, tc.requests)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			if string(b) != tc.want {
				t.Fatalf("PlaceSequential(%s, %v, %v) = %s, want %s", tc.strategy, tc.free, tc.requests, b, tc.want)
			}
			if fmt.Sprint(free) != fmt.Sprint(tc.free) && len(free) > 0 {
				t.Fatalf("free was modified: %v", free)
			}
		})
	}
}

// TestPlaceSequentialMatchesCluster runs every golden vector through the
// indexed Cluster and Schedule, as single-task jobs (SortBatch for the
// decreasing strategies), and checks they land on the same workers.
func TestPlaceSequentialMatchesCluster(t *testing.T) {
	for _, tc := range sequentialVectors {
		t.Run(tc.name, func(t *testing.T) {
			want, err := PlaceSequential(tc.strategy, tc.free, tc.requests)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.requests {
				if r == 0 {
					t.Skip("a request of 0 cores is not a task")
				}
			}
			// Worker i has free[i] + 2 cores, the two lowest held, so the
			// free ids start at 2.
			c := NewCluster()
			for i, f := range tc.free {
				id := fmt.Sprintf("w%d", i)
				if err := c.AddWorker(id, f+2, gb); err != nil {
					t.Fatal(err)
				}
				if err := c.Allocate(id+"-held", id, []int{0, 1}, 0); err != nil {
					t.Fatal(err)
				}
			}
			queue := make([]Job, len(tc.requests))
			for i, r := range tc.requests {
				queue[i] = Job{Name: fmt.Sprint(i), Tasks: []Task{{Name: fmt.Sprintf("r%d", i), Cores: r}}, Seq: uint64(i)}
			}
			s, err := New(tc.strategy, Options{SortBatch: true})
			if err != nil {
				t.Fatal(err)
			}
			placedJobs, _ := Schedule(c, s, queue, 0, QueueOptions{MaxWait: -1})
			got := map[string]string{}
			for _, d := range placedJobs {
				got[d.Job] = d.Assignments[0].Worker
			}
			for _, p := range want {
				w, ok := got[fmt.Sprint(p[0])]
				if p[1] < 0 && ok {
					t.Fatalf("request %d: cluster placed it on %s, sequential says -1", p[0], w)
				}
				if p[1] >= 0 && w != fmt.Sprintf("w%d", p[1]) {
					t.Fatalf("request %d: cluster placed it on %q, sequential says w%d", p[0], w, p[1])
				}
			}
			checkCluster(t, c)
		})
	}
}

func TestPlaceSequentialErrors(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
		free     []int
		requests []int
		err      error
		mention  string
	}{
		{name: "unknown strategy", strategy: "worst-fit", err: ErrUnknownStrategy, mention: "valid strategies here are best-fit, best-fit-decreasing, first-fit, first-fit-decreasing"},
		{name: "not bin packing", strategy: NoScheduler, err: ErrBadRequest, mention: "does not place single requests"},
		{name: "priority is not bin packing here", strategy: Priority, err: ErrBadRequest},
		{name: "negative free", strategy: BestFit, free: []int{1, -1}, err: ErrBadRequest, mention: "free[1] is -1"},
		{name: "negative request", strategy: FirstFit, requests: []int{-2}, err: ErrBadRequest, mention: "requests[0] is -2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlaceSequential(tc.strategy, tc.free, tc.requests)
			if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.mention) {
				t.Fatalf("error %v, want %v mentioning %q", err, tc.err, tc.mention)
			}
		})
	}
}

package placement

import (
	"errors"
	"fmt"
	"sort"
)

const sequentialNames = "best-fit, best-fit-decreasing, first-fit, first-fit-decreasing"

// ErrBadRequest: PlaceSequential input it cannot use (a negative count, or
// a strategy that is not bin packing).
var ErrBadRequest = errors.New("placement: bad request")

// PlaceSequential is the original's pure best_fit/first_fit: each request
// is placed in turn, alone, against the free core counts as they shrink. It
// returns [i, w] pairs: request i went to worker w, or w = -1 when nothing
// fits. Best fit picks the smallest leftover (free - request), ties to the
// lowest index; first fit the lowest index that fits. The decreasing
// strategies place the largest requests first (stable), and the pairs still
// name each request by its input position, listed in placement order. An
// empty worker list answers -1 for every request; an empty request list
// answers an empty list. free is not modified.
func PlaceSequential(strategy string, free []int, requests []int) ([][2]int, error) {
	var first, decreasing bool
	switch strategy {
	case FirstFit:
		first = true
	case BestFit:
	case FirstFitDecreasing:
		first, decreasing = true, true
	case BestFitDecreasing:
		decreasing = true
	default:
		if _, ok := strategies[strategy]; ok {
			return nil, fmt.Errorf("%w: strategy %s does not place single requests; use %s", ErrBadRequest, strategy, sequentialNames)
		}
		return nil, fmt.Errorf("%w %q: valid strategies here are %s", ErrUnknownStrategy, strategy, sequentialNames)
	}
	for i, f := range free {
		if f < 0 {
			return nil, fmt.Errorf("%w: free[%d] is %d; free core counts cannot be negative", ErrBadRequest, i, f)
		}
	}
	for i, r := range requests {
		if r < 0 {
			return nil, fmt.Errorf("%w: requests[%d] is %d; requests cannot be negative", ErrBadRequest, i, r)
		}
	}
	left := append([]int(nil), free...)
	order := identity(len(requests))
	if decreasing {
		sort.SliceStable(order, func(a, b int) bool { return requests[order[a]] > requests[order[b]] })
	}
	out := make([][2]int, 0, len(requests))
	for _, i := range order {
		r := requests[i]
		w := -1
		for k, f := range left {
			if f < r {
				continue
			}
			if first {
				w = k
				break
			}
			if w < 0 || f < left[w] { // smallest leftover; strict < keeps the lowest index on ties
				w = k
			}
		}
		if w >= 0 {
			left[w] -= r
		}
		out = append(out, [2]int{i, w})
	}
	return out, nil
}

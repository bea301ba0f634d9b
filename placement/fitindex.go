package placement

import "math/bits"

// fitDepth is how many free-core counts the first-fit index tells apart:
// it answers requests of up to fitDepth cores, and the max tree the rest.
const fitDepth = 64

// fitIndex is the first-fit index: for each j in 1..fitDepth, the set of
// workers with at least j free cores, so that the lowest-index worker with
// k free cores is the smallest member of set k. Each set is a 64-ary bit
// tree like idxset (add, remove and next cost O(log64 workers)), and the
// sets are interleaved word by word: word w of level l of set j is
// levels[l][w*fitDepth+j-1]. A task of k cores taken from a worker or given
// back to it moves the worker out of or into k sets, and so changes k
// adjacent words of level 0 (one or two cache lines), and words above them
// only when a word empties or stops being empty.
type fitIndex struct {
	levels [][]uint64 // levels[0] are the leaves; the last level is one word per set
	cap    int
}

// grow makes room for workers below capacity, keeping the members.
func (f *fitIndex) grow(capacity int) {
	if capacity <= f.cap && f.levels != nil {
		return
	}
	capacity = max(capacity, 64)
	old := f.levels
	f.levels = nil
	for n := capacity; ; {
		words := (n + 63) / 64
		f.levels = append(f.levels, make([]uint64, words*fitDepth))
		if words == 1 {
			break
		}
		n = words
	}
	f.cap = capacity
	if old == nil {
		return
	}
	copy(f.levels[0], old[0])
	for l := 1; l < len(f.levels); l++ {
		for k, word := range f.levels[l-1] {
			if word != 0 {
				w, j := k/fitDepth, k%fitDepth
				f.levels[l][(w>>6)*fitDepth+j] |= 1 << (uint(w) & 63)
			}
		}
	}
}

// move records that worker i's free cores went from `from` to `to`; counts
// above fitDepth count as fitDepth, and 0 (or a worker leaving or joining
// the index) means no set.
func (f *fitIndex) move(i, from, to int) {
	from, to = min(from, fitDepth), min(to, fitDepth)
	lv := f.levels[0]
	base := (i >> 6) * fitDepth
	bit := uint64(1) << (uint(i) & 63)
	for j := to; j < from; j++ { // leave the sets to+1..from
		word := lv[base+j] &^ bit
		lv[base+j] = word
		if word == 0 {
			f.emptied(i>>6, j)
		}
	}
	for j := from; j < to; j++ { // join the sets from+1..to
		word := lv[base+j]
		lv[base+j] = word | bit
		if word == 0 {
			f.filled(i>>6, j)
		}
	}
}

// emptied clears, above level 0, the bits of word w of set j+1, which emptied.
func (f *fitIndex) emptied(w, j int) {
	for _, lv := range f.levels[1:] {
		k := (w>>6)*fitDepth + j
		lv[k] &^= 1 << (uint(w) & 63)
		if lv[k] != 0 {
			return
		}
		w >>= 6
	}
}

// filled sets, above level 0, the bits of word w of set j+1, which was empty.
func (f *fitIndex) filled(w, j int) {
	for _, lv := range f.levels[1:] {
		k := (w>>6)*fitDepth + j
		old := lv[k]
		lv[k] = old | 1<<(uint(w)&63)
		if old != 0 {
			return
		}
		w >>= 6
	}
}

// first returns the lowest-index worker with at least k free cores
// (1 <= k <= fitDepth), or -1: from the top word down, one word a level.
func (f *fitIndex) first(k int) int {
	j := k - 1
	top := len(f.levels) - 1
	if top < 0 { // no workers yet
		return -1
	}
	word := f.levels[top][j]
	if word == 0 {
		return -1
	}
	pos := bits.TrailingZeros64(word)
	for l := top - 1; l >= 0; l-- {
		pos = pos<<6 | bits.TrailingZeros64(f.levels[l][pos*fitDepth+j])
	}
	return pos
}

// next returns the lowest-index worker >= i with at least k free cores
// (1 <= k <= fitDepth), or -1.
func (f *fitIndex) next(k, i int) int {
	j := k - 1
	pos := i
	for l := 0; l < len(f.levels); l++ {
		lv := f.levels[l]
		w := pos >> 6
		if w*fitDepth >= len(lv) {
			return -1
		}
		if word := lv[w*fitDepth+j] & (^uint64(0) << (uint(pos) & 63)); word != 0 {
			pos = w<<6 | bits.TrailingZeros64(word)
			for l > 0 {
				l--
				pos = pos<<6 | bits.TrailingZeros64(f.levels[l][pos*fitDepth+j])
			}
			return pos
		}
		pos = w + 1 // the next word of this level is the next bit one level up
	}
	return -1
}

// has reports whether worker i is in the set of workers with at least k
// free cores.
func (f *fitIndex) has(k, i int) bool {
	return i >= 0 && i < f.cap && f.levels[0][(i>>6)*fitDepth+k-1]&(1<<(uint(i)&63)) != 0
}

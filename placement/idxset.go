package placement

import "math/bits"

// idxset is a set of non-negative integers below its capacity, stored as a
// 64-ary tree of bit words: level 0 holds one bit per member, and each bit of
// level l+1 says whether the matching word of level l is non-zero. add,
// remove and next (the smallest member >= i) cost O(log64 capacity).
type idxset struct {
	levels [][]uint64 // levels[0] are the leaves; the last level is one word
	cap    int
}

func newIdxset(capacity int) *idxset {
	s := &idxset{}
	s.grow(capacity)
	return s
}

// grow makes room for members below capacity, keeping the current members.
func (s *idxset) grow(capacity int) {
	if capacity <= s.cap && s.levels != nil {
		return
	}
	if capacity < 64 {
		capacity = 64
	}
	old := s.levels
	s.levels = nil
	n := capacity
	for {
		words := (n + 63) / 64
		s.levels = append(s.levels, make([]uint64, words))
		if words == 1 {
			break
		}
		n = words
	}
	s.cap = capacity
	if old == nil {
		return
	}
	copy(s.levels[0], old[0])
	for l := 1; l < len(s.levels); l++ {
		for w, word := range s.levels[l-1] {
			if word != 0 {
				s.levels[l][w>>6] |= 1 << (uint(w) & 63)
			}
		}
	}
}

func (s *idxset) add(i int) {
	for _, lv := range s.levels {
		w := i >> 6
		old := lv[w]
		lv[w] = old | 1<<(uint(i)&63)
		if old != 0 {
			return
		}
		i = w
	}
}

func (s *idxset) remove(i int) {
	for _, lv := range s.levels {
		w := i >> 6
		lv[w] &^= 1 << (uint(i) & 63)
		if lv[w] != 0 {
			return
		}
		i = w
	}
}

func (s *idxset) has(i int) bool {
	return i >= 0 && i < s.cap && s.levels[0][i>>6]&(1<<(uint(i)&63)) != 0
}

// next returns the smallest member >= i, or -1.
func (s *idxset) next(i int) int {
	if i < 0 {
		i = 0
	}
	pos := i
	for l := 0; l < len(s.levels); l++ {
		lv := s.levels[l]
		w := pos >> 6
		if w >= len(lv) {
			return -1
		}
		if word := lv[w] & (^uint64(0) << (uint(pos) & 63)); word != 0 {
			pos = w<<6 | bits.TrailingZeros64(word)
			for l > 0 {
				l--
				pos = pos<<6 | bits.TrailingZeros64(s.levels[l][pos])
			}
			return pos
		}
		pos = w + 1 // the next word of this level is the next bit one level up
	}
	return -1
}

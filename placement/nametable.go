package placement

import "hash/maphash"

// nameTable maps task names to task record handles (indexes into
// Cluster.recs). It is an open-addressing hash table with linear probing
// over a power-of-two number of slots. Each slot has a control byte (0 when
// empty, else 8 bits of the name's hash, never 0) in one small array, and
// an entry (the low 32 bits of the hash and the handle plus one) in
// another. Deletion shifts later entries back, so there are no tombstones.
//
// Compared with a map[string]int32, it holds no pointers (the names live in
// the task records), so the garbage collector does not scan it; a lookup
// that finds nothing says where to insert, so placing a new task hashes and
// probes once; and looking up a new name reads only control bytes, a
// quarter of a megabyte for 128,000 tasks, which stay in cache far better
// than the entries: inserting writes its entry without reading the line.
type nameTable struct {
	ctrl    []uint8  // per slot: 0 = empty, else the entry's tag
	entries []uint64 // per slot: hash<<32 | handle+1
	n       int      // entries
	seed    maphash.Seed
}

// probe is where a name that a lookup did not find would go: its slot and
// its hash, for insert.
type probe struct {
	slot int
	hash uint32
}

// nameTableMinSlots is the size of a table's first slot array.
const nameTableMinSlots = 64

func newNameTable() nameTable { return nameTable{seed: maphash.MakeSeed()} }

// tag returns the control byte of a hash: its top 8 bits, 0 made 1.
func tag(hash uint32) uint8 { return max(uint8(hash>>24), 1) }

// lookup returns the handle of name, or -1 and where to insert it.
func (t *nameTable) lookup(recs []taskRec, name string) (int32, probe) {
	hash := uint32(maphash.String(t.seed, name))
	if len(t.ctrl) == 0 {
		return -1, probe{-1, hash}
	}
	mask := len(t.ctrl) - 1
	tg := tag(hash)
	for i := int(hash) & mask; ; i = (i + 1) & mask {
		switch t.ctrl[i] {
		case 0:
			return -1, probe{i, hash}
		case tg:
			if e := t.entries[i]; uint32(e>>32) == hash {
				if h := int32(uint32(e)) - 1; recs[h].name == name {
					return h, probe{i, hash}
				}
			}
		}
	}
}

// insert adds handle h at p, the probe of a lookup that did not find the
// name, with no insert or delete since.
func (t *nameTable) insert(p probe, h int32) {
	if (t.n+1)*4 > len(t.ctrl)*3 { // keep the load at most 3/4
		t.grow()
		p.slot = t.free(p.hash)
	}
	t.ctrl[p.slot] = tag(p.hash)
	t.entries[p.slot] = uint64(p.hash)<<32 | uint64(uint32(h)+1)
	t.n++
}

// free returns the first empty slot from hash's home slot.
func (t *nameTable) free(hash uint32) int {
	mask := len(t.ctrl) - 1
	i := int(hash) & mask
	for t.ctrl[i] != 0 {
		i = (i + 1) & mask
	}
	return i
}

// grow doubles the slots (or makes the first ones) and re-places every
// entry by its stored hash.
func (t *nameTable) grow() {
	old := t.entries
	n := max(nameTableMinSlots, 2*len(old))
	t.ctrl, t.entries = make([]uint8, n), make([]uint64, n)
	for _, e := range old {
		if e != 0 {
			hash := uint32(e >> 32)
			i := t.free(hash)
			t.ctrl[i], t.entries[i] = tag(hash), e
		}
	}
}

// remove empties slot i (found by lookup) and moves back the entries after
// it that would otherwise no longer be found from their home slots.
func (t *nameTable) remove(i int) {
	mask := len(t.ctrl) - 1
	t.n--
	for j := i; ; {
		t.ctrl[i], t.entries[i] = 0, 0
		for {
			j = (j + 1) & mask
			if t.ctrl[j] == 0 {
				return
			}
			// The entry at j stays if its home lies cyclically in (i, j]:
			// probing from there reaches j without crossing the hole at i.
			e := t.entries[j]
			if home := int(e>>32) & mask; (j-home)&mask >= (j-i)&mask {
				t.ctrl[i], t.entries[i] = t.ctrl[j], e
				i = j
				break
			}
		}
	}
}

// slotOf returns the slot of handle h, whose name has hash; h must be in
// the table. It compares entries, not names: no name is read.
func (t *nameTable) slotOf(hash uint32, h int32) int {
	mask := len(t.ctrl) - 1
	want := uint64(hash)<<32 | uint64(uint32(h)+1)
	for i := int(hash) & mask; ; i = (i + 1) & mask {
		if t.entries[i] == want {
			return i
		}
	}
}

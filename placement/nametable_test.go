package placement

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestNameTable runs random inserts, lookups and removals against a map:
// every name is found exactly while it is in, at the handle it was given,
// through growth, wrap-around at the end of the slots and the shifting back
// of entries after a removal.
func TestNameTable(t *testing.T) {
	tests := []struct {
		name  string
		names int // distinct names drawn from
		ops   int
	}{
		{name: "few names: the first slots, wrapping around", names: 40, ops: 20000},
		{name: "many names: growing", names: 5000, ops: 100000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(tc.names)))
			tbl := newNameTable()
			recs := make([]taskRec, tc.names) // handle i names name i
			for i := range recs {
				recs[i].name = "task-" + strconv.Itoa(i)
			}
			in := map[string]int32{}
			for range tc.ops {
				i := int32(rng.IntN(tc.names))
				name := recs[i].name
				h, p := tbl.lookup(recs, name)
				want, ok := in[name]
				if !ok {
					want = -1
				}
				if h != want {
					t.Fatalf("lookup(%s) = %d, want %d", name, h, want)
				}
				switch {
				case !ok && rng.IntN(3) > 0:
					tbl.insert(p, i)
					in[name] = i
				case ok && rng.IntN(2) == 0:
					tbl.remove(p.slot)
					delete(in, name)
				}
				if tbl.n != len(in) {
					t.Fatalf("table counts %d names, want %d", tbl.n, len(in))
				}
			}
			for i := range recs {
				name := recs[i].name
				want, ok := in[name]
				if !ok {
					want = -1
				}
				if h, _ := tbl.lookup(recs, name); h != want {
					t.Fatalf("at the end: lookup(%s) = %d, want %d", name, h, want)
				}
			}
			if tbl.n*4 > len(tbl.ctrl)*3 {
				t.Fatalf("%d names in %d slots: the load is above 3/4", tbl.n, len(tbl.ctrl))
			}
		})
	}
}

package frontend

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestReplay: what a client resuming after event id `after` is sent
// first: the kept events after it, preceded by a gap (with the number
// lost when known) when events it has not seen are no longer kept, or
// were never told because the hub stopped following the store.
func TestReplay(t *testing.T) {
	const base = 1000
	tests := []struct {
		name     string
		kept     []uint64 // the ring, oldest first
		seq      uint64   // the last Seq published
		reset    uint64
		after    uint64
		wantGap  bool
		wantLost uint64
		want     []uint64
	}{
		{name: "the rest after a kept event", kept: seqRange(1001, 1005), seq: 1005, after: 1003, want: []uint64{1004, 1005}},
		{name: "at the head: nothing", kept: seqRange(1001, 1005), seq: 1005, after: 1005},
		{name: "from just before the oldest kept: all, no gap", kept: seqRange(1001, 1005), seq: 1005, after: 1000, want: seqRange(1001, 1005)},
		// 1002 fell out of the ring: one event lost.
		{name: "older than the ring: a gap counting what fell out", kept: seqRange(1003, 1005), seq: 1005, after: 1001,
			wantGap: true, wantLost: 1, want: seqRange(1003, 1005)},
		{name: "an earlier process's id: a gap of unknown size", kept: seqRange(1001, 1005), seq: 1005, after: 5,
			wantGap: true, want: seqRange(1001, 1005)},
		// The hub stopped following after 1005 (nobody listened for the
		// retention) and forgot its events: changes since were never told.
		{name: "the last event before the hub stopped following", seq: 1005, reset: 1005, after: 1005, wantGap: true},
		{name: "after the hub followed again", kept: seqRange(1006, 1007), seq: 1007, reset: 1005, after: 1006, want: []uint64{1007}},
		{name: "across the stop", kept: seqRange(1006, 1007), seq: 1007, reset: 1005, after: 1004, wantGap: true, want: seqRange(1006, 1007)},
		{name: "an id from the future: nothing", kept: seqRange(1001, 1002), seq: 1002, after: 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: DefaultConfig()}
			s.cfg.Now = func() time.Time { return time.Unix(0, 0) }
			h := newHub(s, nil, time.Millisecond)
			h.base, h.seq, h.reset = base, tt.seq, tt.reset
			for _, q := range tt.kept {
				h.ring.push(Event{Seq: q, Type: EventJobAccepted})
			}
			close(h.primed)
			c, err := h.subscribe(context.Background(), tt.after)
			if err != nil {
				t.Fatal(err)
			}
			var gap *Event
			var got []uint64
			for len(c) > 0 {
				e := <-c
				if e.Type == EventStreamGap {
					if gap != nil || len(got) > 0 {
						t.Errorf("a gap event that is not first")
					}
					gap = &e
					continue
				}
				got = append(got, e.Seq)
			}
			if (gap != nil) != tt.wantGap || (gap != nil && gap.Lost != tt.wantLost) {
				t.Errorf("gap %+v, want gap %v lost %d", gap, tt.wantGap, tt.wantLost)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("replayed %v, want %v", got, tt.want)
			}
		})
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for q := from; q <= to; q++ {
		out = append(out, q)
	}
	return out
}

func TestRingKeepsTheLast(t *testing.T) {
	var r ring
	for q := uint64(1); q <= eventRing+3; q++ {
		r.push(Event{Seq: q})
	}
	got := r.after(0, nil)
	if len(got) != eventRing || got[0].Seq != 4 || got[len(got)-1].Seq != eventRing+3 {
		t.Errorf("ring holds %d events, %d..%d; want %d, 4..%d", len(got), got[0].Seq, got[len(got)-1].Seq, eventRing, eventRing+3)
	}
}

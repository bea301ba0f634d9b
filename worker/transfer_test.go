package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rswarm/rswarm/api"
	"github.com/rswarm/rswarm/api/apitest"
)

// fakeMover is a simulated host whose tasks' state is a short text.
type fakeMover struct {
	*Sim
	failIn error

	mu       sync.Mutex
	prepared map[string]string // task -> state received, not started
	got      map[string]string // task -> state received and started
	halted   []string
	resumed  []string
	discards []string
	aborted  []string
}

func (f *fakeMover) MoveOut(_ context.Context, task, mode string, w io.Writer) (string, error) {
	_, err := io.WriteString(w, "state of "+task+" ("+mode+")")
	return "", err
}

func (f *fakeMover) Halt(_ context.Context, task, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.halted = append(f.halted, task)
	return nil
}

func (f *fakeMover) Resume(_ context.Context, task, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resumed = append(f.resumed, task)
	return nil
}

func (f *fakeMover) Discard(_ context.Context, task string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discards = append(f.discards, task)
	return nil
}

func (f *fakeMover) PrepareIn(_ context.Context, rt api.RunTask, _ string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepared[rt.Task.ContainerName] = string(b)
	return nil
}

func (f *fakeMover) StartIn(_ context.Context, task string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.prepared[task]
	delete(f.prepared, task)
	if !ok {
		return "", errors.New("not prepared")
	}
	if f.failIn != nil {
		return "", f.failIn
	}
	f.got[task] = st
	return "", nil
}

func (f *fakeMover) AbortIn(_ context.Context, task string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.prepared, task)
	f.aborted = append(f.aborted, task)
}

func (f *fakeMover) snapshot() (got map[string]string, resumed, discards []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	got = map[string]string{}
	for k, v := range f.got {
		got[k] = v
	}
	return got, append([]string(nil), f.resumed...), append([]string(nil), f.discards...)
}

func moverAgent(t *testing.T, failIn error) (*agentEnv, *fakeMover) {
	var m *fakeMover
	e := startAgent(t, func(s *Sim) Runtime {
		m = &fakeMover{Sim: s, failIn: failIn, got: map[string]string{}, prepared: map[string]string{}}
		return m
	}, func(c *Config, _ *agentEnv) { c.TransferListen = "127.0.0.1:0" })
	return e, m
}

func TestTransfer(t *testing.T) {
	tests := []struct {
		name    string
		token   string // sent by the source ("" = the announced one)
		failIn  error
		wantErr string
	}{
		{name: "moves the state, once the destination runs it the source lets go"},
		{name: "a transfer nobody announced is refused", token: "forged", wantErr: "no such transfer is expected"},
		{name: "a failed start on the destination leaves the task at the source", failIn: errors.New("image not found"), wantErr: "image not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, sm := moverAgent(t, nil)
			dst, dm := moverAgent(t, tc.failIn)
			rt := runTask("j_t1", 1)
			if _, err := src.command(api.KindRunTask, rt); err != nil {
				t.Fatal(err)
			}
			src.reported(t, "j_t1", api.Running)
			if _, err := dst.command(api.KindReceiveTask, api.ReceiveTask{RunTask: rt, Token: "tok", Mode: api.ModeCold}); err != nil {
				t.Fatal(err)
			}
			token := tc.token
			if token == "" {
				token = "tok"
			}
			got, err := src.command(api.KindSendTask, api.SendTask{Job: "j", Task: "j_t1", To: dst.agent.ln.Addr().String(), Token: token, Mode: api.ModeCold})
			received, _, _ := dm.snapshot()
			_, resumed, discards := sm.snapshot()
			srcTasks, dstTasks := src.agent.usage().Tasks, dst.agent.usage().Tasks
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, api.ErrUnprocessable) {
					t.Fatalf("send: %v, want an unprocessable error saying %q", err, tc.wantErr)
				}
				if len(resumed) != 1 || len(discards) != 0 || srcTasks != 1 || dstTasks != 0 || len(received) != 0 {
					t.Errorf("resumed %v discarded %v; tasks src %d dst %d; received %v", resumed, discards, srcTasks, dstTasks, received)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sent, ok := got.(api.Sent)
			want := "state of j_t1 (cold)"
			if !ok || sent.Bytes != int64(len(want)) || len(sent.SHA256) != 64 || received["j_t1"] != want {
				t.Errorf("sent %+v, received %q", got, received["j_t1"])
			}
			if len(discards) != 1 || len(resumed) != 0 || srcTasks != 0 || dstTasks != 1 {
				t.Errorf("discarded %v resumed %v; tasks src %d dst %d", discards, resumed, srcTasks, dstTasks)
			}
			// The token was for one transfer only.
			_, err = src.command(api.KindSendTask, api.SendTask{Job: "j", Task: "j_t1", To: dst.agent.ln.Addr().String(), Token: "tok", Mode: api.ModeCold})
			if err == nil {
				t.Error("a second send of a moved task succeeded")
			}
		})
	}
}

func TestTransferChecksum(t *testing.T) {
	dst, dm := moverAgent(t, nil)
	rt := runTask("j_t1", 1)
	if _, err := dst.command(api.KindReceiveTask, api.ReceiveTask{RunTask: rt, Token: "tok", Mode: api.ModeCold}); err != nil {
		t.Fatal(err)
	}
	f := writeTemp(t, "some state")
	c, br, err := push(context.Background(), dst.agent.ln.Addr().String(),
		transferHeader{Token: "tok", Task: "j_t1", Bytes: 10, SHA256: strings.Repeat("0", 64)}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := readReply(br)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := dm.snapshot()
	if rep.OK || !strings.Contains(rep.Error, "checksum") || len(got) != 0 || dst.agent.usage().Tasks != 0 {
		t.Errorf("reply %+v, received %v", rep, got)
	}
}

func writeTemp(t *testing.T, s string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "state")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := io.Copy(f, bytes.NewReader([]byte(s))); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTransferBrokenConnection breaks the hand-over's connection at each
// step: whatever breaks, the task ends up running in exactly one place (the
// source resumed it and the destination kept nothing, or the destination
// started it and the source let go), never in both and never in neither.
func TestTransferBrokenConnection(t *testing.T) {
	tests := []struct {
		step       string
		wantMoved  bool // the task ends on the destination
		wantSendOK bool
	}{
		// Before the commit the destination has not started anything: the
		// source resumes, the destination drops what it prepared.
		{step: "dst-prepared"},
		{step: "src-prepared"},
		{step: "src-commit"},
		// The destination read the commit: it starts the task, and the
		// source, having lost the answer, asks and lets go.
		{step: "dst-commit", wantMoved: true, wantSendOK: true},
		{step: "dst-started", wantMoved: true, wantSendOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.step, func(t *testing.T) {
			var hit atomic.Bool
			transferFault = func(step string) bool {
				if step != tc.step {
					return false
				}
				hit.Store(true)
				return true
			}
			t.Cleanup(func() { transferFault = nil })
			src, sm := moverAgent(t, nil)
			dst, dm := moverAgent(t, nil)
			rt := runTask("j_t1", 1)
			if _, err := src.command(api.KindRunTask, rt); err != nil {
				t.Fatal(err)
			}
			src.reported(t, "j_t1", api.Running)
			if _, err := dst.command(api.KindReceiveTask, api.ReceiveTask{RunTask: rt, Token: "tok", Mode: api.ModeCold}); err != nil {
				t.Fatal(err)
			}
			_, err := src.command(api.KindSendTask, api.SendTask{Job: "j", Task: "j_t1", To: dst.agent.ln.Addr().String(), Token: "tok", Mode: api.ModeCold})
			if (err == nil) != tc.wantSendOK {
				t.Errorf("send: %v, want ok %t", err, tc.wantSendOK)
			}
			if !hit.Load() {
				t.Fatalf("the transfer never reached step %s", tc.step)
			}
			apitest.Eventually(t, 10*time.Second, func() error {
				got, _, _ := dm.snapshot()
				dm.mu.Lock()
				pending := len(dm.prepared)
				dm.mu.Unlock()
				srcTasks, dstTasks := src.agent.usage().Tasks, dst.agent.usage().Tasks
				_, sres, sdis := sm.snapshot()
				atSrc := len(sres) == 1 && len(sdis) == 0 && srcTasks == 1
				atDst := len(got) == 1 && len(sdis) == 1 && len(sres) == 0 && dstTasks == 1 && srcTasks == 0
				if pending != 0 {
					return fmt.Errorf("the destination still holds a prepared task")
				}
				if tc.wantMoved && !atDst || !tc.wantMoved && (!atSrc || len(got) != 0 || dstTasks != 0) {
					return fmt.Errorf("moved %t: destination started %v (tasks %d); source resumed %v discarded %v (tasks %d)",
						tc.wantMoved, got, dstTasks, sres, sdis, srcTasks)
				}
				return nil
			})
			sm.mu.Lock()
			halted := len(sm.halted)
			sm.mu.Unlock()
			if halted == 0 && tc.step != "dst-prepared" {
				t.Errorf("the source never halted the task before committing")
			}
		})
	}
}

// TestTransferInDoubt: the commit's answer is lost and the destination
// cannot be asked (it stopped listening). The source cannot know whether
// the task started there, so it keeps its copy stopped (not resumed, not
// removed) and says the move is in doubt: the task never runs twice.
func TestTransferInDoubt(t *testing.T) {
	src, sm := moverAgent(t, nil)
	dst, dm := moverAgent(t, nil)
	old := queryFor
	queryFor = 200 * time.Millisecond
	transferFault = func(step string) bool {
		if step == "src-commit" {
			dst.agent.ln.Close()
			return true
		}
		return false
	}
	t.Cleanup(func() { transferFault, queryFor = nil, old })
	rt := runTask("j_t1", 1)
	if _, err := src.command(api.KindRunTask, rt); err != nil {
		t.Fatal(err)
	}
	src.reported(t, "j_t1", api.Running)
	if _, err := dst.command(api.KindReceiveTask, api.ReceiveTask{RunTask: rt, Token: "tok", Mode: api.ModeCold}); err != nil {
		t.Fatal(err)
	}
	_, err := src.command(api.KindSendTask, api.SendTask{Job: "j", Task: "j_t1", To: dst.agent.ln.Addr().String(), Token: "tok", Mode: api.ModeCold})
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "kept stopped") {
		t.Errorf("send: %v, want unavailable, in doubt", err)
	}
	apitest.Eventually(t, 10*time.Second, func() error {
		dm.mu.Lock()
		pending := len(dm.prepared)
		dm.mu.Unlock()
		if pending != 0 {
			return errors.New("the destination still holds a prepared task")
		}
		return nil
	})
	got, _, _ := dm.snapshot()
	_, resumed, discards := sm.snapshot()
	if len(got) != 0 || len(resumed) != 0 || len(discards) != 0 {
		t.Errorf("destination started %v; source resumed %v discarded %v", got, resumed, discards)
	}
}

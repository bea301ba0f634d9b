package worker

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rswarm/rswarm/api"
)

// Moving tasks between hosts. The globalmanager tells the destination to
// expect a task (receive_task, with a one-time token and the task's spec)
// and then tells the source to send it (send_task). The source freezes the
// task, writes its state to a temporary file while hashing it, and streams
// it to the destination's transfer port:
//
//	source → destination   {"token","task","bytes","sha256"}\n, then exactly bytes bytes
//	destination → source   {"ok":true,"note":...}\n  or  {"ok":false,"error":...}\n
//
// The destination takes only what it was told to expect, checks size and
// checksum before it creates anything, and removes what it created if the
// start fails. The source removes its container only after the
// destination said ok; otherwise the task runs on where it was.

// Mover is a Runtime that can move a task's state to another host
// (engine.Runtime); workers whose runtime is not one do not listen for
// transfers.
type Mover interface {
	// MoveOut freezes task (mode cold or live) and writes its state to w.
	MoveOut(ctx context.Context, task, mode string, w io.Writer) (note string, err error)
	// Resume undoes MoveOut: the task runs here again.
	Resume(ctx context.Context, task, mode string) error
	// Discard removes the task's container once it runs elsewhere.
	Discard(ctx context.Context, task string) error
	// MoveIn creates the task as rt says from the state in r and starts it;
	// on failure nothing of it is left.
	MoveIn(ctx context.Context, rt api.RunTask, mode string, r io.Reader) (note string, err error)
}

// transferHeader opens a transfer.
type transferHeader struct {
	Token  string `json:"token"`
	Task   string `json:"task"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// transferReply ends one.
type transferReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Note  string `json:"note,omitempty"`
}

// expected is a transfer the globalmanager announced.
type expected struct {
	rt      api.ReceiveTask
	expires time.Time
}

// expectTTL bounds how long an announced transfer is awaited.
const expectTTL = 5 * time.Minute

// transferTimeout bounds one transfer connection (the globalmanager waits
// a little longer for the whole move: its MoveTimeout).
const transferTimeout = 4 * time.Minute

// maxTransfer bounds the state a task may bring (64 GiB).
const maxTransfer = 64 << 30

type transfers struct {
	mu     sync.Mutex
	expect map[string]*expected // by task name
}

func (a *Agent) mover() (Mover, bool) {
	m, ok := a.rt.(Mover)
	return m, ok
}

// receive records a transfer the globalmanager announced.
func (a *Agent) receive(rt api.ReceiveTask) (any, error) {
	if _, ok := a.mover(); !ok || a.ln == nil {
		return nil, fmt.Errorf("worker: this worker does not receive transfers: %w", api.ErrUnprocessable)
	}
	if rt.Token == "" || rt.Task.ContainerName == "" {
		return nil, api.Invalid("token", "a transfer needs a token and a task")
	}
	a.xfer.mu.Lock()
	defer a.xfer.mu.Unlock()
	now := time.Now()
	for k, e := range a.xfer.expect {
		if now.After(e.expires) {
			delete(a.xfer.expect, k)
		}
	}
	a.xfer.expect[rt.Task.ContainerName] = &expected{rt: rt, expires: now.Add(expectTTL)}
	return "expecting", nil
}

// take returns and forgets the announced transfer matching h.
func (a *Agent) take(h transferHeader) (api.ReceiveTask, bool) {
	a.xfer.mu.Lock()
	defer a.xfer.mu.Unlock()
	e := a.xfer.expect[h.Task]
	if e == nil || time.Now().After(e.expires) || subtle.ConstantTimeCompare([]byte(e.rt.Token), []byte(h.Token)) != 1 {
		return api.ReceiveTask{}, false
	}
	delete(a.xfer.expect, h.Task)
	return e.rt, true
}

// serveTransfers accepts transfers on ln until ctx ends.
func (a *Agent) serveTransfers(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			a.serveTransfer(ctx, c)
		}()
	}
}

func (a *Agent) serveTransfer(ctx context.Context, c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(transferTimeout))
	br := bufio.NewReader(io.LimitReader(c, 64<<10))
	line, err := br.ReadBytes('\n')
	if err != nil {
		return
	}
	var h transferHeader
	if err := json.Unmarshal(line, &h); err != nil {
		reply(c, transferReply{Error: "bad transfer header: " + err.Error()})
		return
	}
	log := a.log.With("task_id", h.Task, "from", c.RemoteAddr().String())
	rt, ok := a.take(h)
	if !ok {
		log.Warn("refused a transfer nobody announced")
		reply(c, transferReply{Error: "no such transfer is expected here (unknown task or token, or it expired)"})
		return
	}
	note, err := a.moveIn(ctx, rt, h, io.MultiReader(br, c))
	if err != nil {
		log.Warn("transfer failed; nothing kept", "err", err)
		reply(c, transferReply{Error: err.Error()})
		return
	}
	log.Info("task moved in", "bytes", h.Bytes, "mode", rt.Mode)
	reply(c, transferReply{OK: true, Note: note})
}

func reply(c net.Conn, r transferReply) {
	b, _ := json.Marshal(r)
	_, _ = c.Write(append(b, '\n'))
}

// moveIn reads exactly h.Bytes of state into a temporary file, checks its
// checksum, and only then starts the task from it.
func (a *Agent) moveIn(ctx context.Context, rt api.ReceiveTask, h transferHeader, r io.Reader) (string, error) {
	m, _ := a.mover()
	if h.Bytes < 0 || h.Bytes > maxTransfer {
		return "", fmt.Errorf("transfer of %d bytes refused (at most %d)", h.Bytes, int64(maxTransfer))
	}
	f, err := os.CreateTemp("", "rswarm-in-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), io.LimitReader(r, h.Bytes))
	if err != nil {
		return "", fmt.Errorf("receiving the state: %w", err)
	}
	if n != h.Bytes {
		return "", fmt.Errorf("the state was cut short: %d of %d bytes", n, h.Bytes)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.SHA256 {
		return "", fmt.Errorf("the state's checksum is %s, the sender's %s", got, h.SHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	name := rt.Task.ContainerName
	a.mu.Lock()
	if a.runCtx == nil || a.closing {
		a.mu.Unlock()
		return "", fmt.Errorf("worker: shutting down: %w", api.ErrUnavailable)
	}
	if _, dup := a.tasks[name]; dup {
		a.mu.Unlock()
		return "", fmt.Errorf("task %s already runs here: %w", name, api.ErrConflict)
	}
	mem, _ := api.ParseMem(rt.Task.MemLimit)
	a.tasks[name] = &local{job: rt.Job, cores: rt.Task.ReqCores, mem: mem}
	a.wg.Add(1)
	a.mu.Unlock()
	defer a.wg.Done()
	note, err := m.MoveIn(ctx, rt.RunTask, rt.Mode, f)
	if err != nil {
		a.mu.Lock()
		delete(a.tasks, name)
		a.mu.Unlock()
		return "", err
	}
	return note, nil
}

// send moves a local task to another worker, as the globalmanager asked.
func (a *Agent) send(ctx context.Context, st api.SendTask) (any, error) {
	m, ok := a.mover()
	if !ok {
		return nil, fmt.Errorf("worker: this worker cannot send task state: %w", api.ErrUnprocessable)
	}
	a.mu.Lock()
	l := a.tasks[st.Task]
	busy := l != nil && l.stopping
	a.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("worker: task %s does not run here: %w", st.Task, api.ErrNotFound)
	}
	if busy {
		return nil, fmt.Errorf("worker: task %s is stopping: %w", st.Task, api.ErrConflict)
	}
	f, err := os.CreateTemp("", "rswarm-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	start := time.Now()
	sum := sha256.New()
	note, err := m.MoveOut(ctx, st.Task, st.Mode, io.MultiWriter(f, sum))
	if err != nil {
		if rerr := m.Resume(ctx, st.Task, st.Mode); rerr != nil {
			a.log.Debug("resuming after a failed export", "task_id", st.Task, "err", rerr)
		}
		return nil, fmt.Errorf("worker: freeze and export %s: %w", st.Task, err)
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	h := transferHeader{Token: st.Token, Task: st.Task, Bytes: size, SHA256: hex.EncodeToString(sum.Sum(nil))}
	rep, err := push(ctx, st.To, h, f)
	if err == nil && !rep.OK {
		err = errors.New(rep.Error)
	}
	if err != nil {
		if rerr := m.Resume(ctx, st.Task, st.Mode); rerr != nil {
			a.log.Error("the transfer failed and the task could not be resumed here", "task_id", st.Task, "err", rerr)
			return nil, fmt.Errorf("worker: send %s to %s: %w (and resuming it here failed: %v)", st.Task, st.To, err, rerr)
		}
		return nil, fmt.Errorf("worker: send %s to %s: %w: %w", st.Task, st.To, api.ErrUnprocessable, err)
	}
	downtime := time.Since(start).Seconds()
	a.mu.Lock()
	if l := a.tasks[st.Task]; l != nil {
		l.stopping, l.stopState, l.reason = true, api.Migrating, "moved to "+st.To
	}
	a.mu.Unlock()
	if err := m.Discard(ctx, st.Task); err != nil {
		a.log.Warn("removing a moved task's old container", "task_id", st.Task, "err", err)
	}
	a.mu.Lock()
	delete(a.tasks, st.Task)
	a.mu.Unlock()
	if rep.Note != "" {
		note = rep.Note
	}
	return api.Sent{Bytes: size, SHA256: h.SHA256, Downtime: downtime, Note: note}, nil
}

// push streams the state in f to the transfer port at addr and returns the answer.
func push(ctx context.Context, addr string, h transferHeader, f *os.File) (transferReply, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := d.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return transferReply{}, fmt.Errorf("connect to the transfer port: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(transferTimeout))
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return transferReply{}, err
	}
	hb, _ := json.Marshal(h)
	bw := bufio.NewWriter(c)
	if _, err := bw.Write(append(hb, '\n')); err != nil {
		return transferReply{}, err
	}
	if _, err := io.Copy(bw, f); err != nil {
		return transferReply{}, fmt.Errorf("streaming the state: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return transferReply{}, err
	}
	line, err := bufio.NewReader(io.LimitReader(c, 64<<10)).ReadBytes('\n')
	if err != nil {
		return transferReply{}, fmt.Errorf("no answer from the destination: %w", err)
	}
	var r transferReply
	if err := json.Unmarshal(line, &r); err != nil {
		return transferReply{}, fmt.Errorf("bad answer from the destination: %w", err)
	}
	return r, nil
}

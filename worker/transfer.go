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
// it to the destination's transfer port. The hand-over is in two phases, so
// that whatever breaks, the task never runs in two places:
//
//	source → destination   {"token","task","bytes","sha256"}\n, then exactly bytes bytes
//	destination → source   {"ok":true,"prepared":true}\n   (created and filled, not started)
//	                       or {"ok":false,"error":...}\n    (nothing kept)
//	source → destination   {"commit":true}\n               (the source has stopped the task for good)
//	destination → source   {"ok":true,"note":...}\n         (started)
//	                       or {"ok":false,"error":...}\n    (did not start; nothing kept)
//
// The destination starts the task only after it read the commit, and
// removes what it prepared if the connection ends before. The source stops
// its container for good (Halt) before it commits, and thaws or restarts it
// only when the destination has definitely not started it: an error
// before the commit, an error answer after it, or, when the answer is
// lost, the destination's own word on a second connection:
//
//	source → destination   {"token","task","query":true}\n
//	destination → source   {"ok":true,"started":true|false}\n
//
// A query settles the transfer: one still waiting for its commit is
// aborted by it, so "not started" stays true. If the destination cannot be
// asked, the source keeps its container stopped (never running twice) and
// says so. The source removes its container once the destination started.

// Mover is a Runtime that can move a task's state to another host
// (engine.Runtime); workers whose runtime is not one do not listen for
// transfers.
type Mover interface {
	// MoveOut freezes task (mode cold or live) and writes its state to w.
	MoveOut(ctx context.Context, task, mode string, w io.Writer) (note string, err error)
	// Halt stops a frozen task for good, keeping its container for Resume.
	Halt(ctx context.Context, task, mode string) error
	// Resume undoes MoveOut (and Halt): the task runs here again.
	Resume(ctx context.Context, task, mode string) error
	// Discard removes the task's container once it runs elsewhere.
	Discard(ctx context.Context, task string) error
	// PrepareIn creates the task as rt says from the state in r, not
	// started; on failure nothing of it is left.
	PrepareIn(ctx context.Context, rt api.RunTask, mode string, r io.Reader) error
	// StartIn starts a prepared task; on failure nothing of it is left.
	StartIn(ctx context.Context, task string) (note string, err error)
	// AbortIn removes a prepared task.
	AbortIn(ctx context.Context, task string)
}

// transferHeader opens a transfer, or asks what became of one (Query).
type transferHeader struct {
	Token  string `json:"token"`
	Task   string `json:"task"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Query  bool   `json:"query,omitempty"`
}

// transferCommit is the source's go-ahead.
type transferCommit struct {
	Commit bool `json:"commit"`
}

// transferReply answers a phase or a query.
type transferReply struct {
	OK       bool   `json:"ok"`
	Prepared bool   `json:"prepared,omitempty"`
	Started  bool   `json:"started,omitempty"`
	Error    string `json:"error,omitempty"`
	Note     string `json:"note,omitempty"`
}

// transferFault, when set (by tests), is called at each named step of a
// transfer; true breaks the connection there, as a network failure would.
// Steps: "dst-prepared" (the destination prepared the task, before it
// answers), "src-prepared" (the source read that answer, before it halts
// the task), "src-commit" (the source halted the task, before it sends the
// commit), "dst-commit" (the destination read the commit, before it
// starts), "dst-started" (it started the task, before it answers).
var transferFault func(step string) bool

func fault(step string, c net.Conn) {
	if f := transferFault; f != nil && f(step) {
		c.Close()
	}
}

// outcome is what became of a transfer at the destination, by token.
type outcome struct {
	state   string        // "receiving", "prepared", "starting", "started", "aborted"
	decided chan struct{} // closed once state is started or aborted
	conn    net.Conn      // while prepared: the connection the commit comes on
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
	mu       sync.Mutex
	expect   map[string]*expected // by task name
	outcomes map[string]*outcome  // by token, kept expectTTL
	expires  map[string]time.Time // of outcomes, by token
}

// settle moves the transfer with token to state started or aborted (only
// from a state not decided yet; a query does not abort one being started)
// and reports the state it ends in.
func (x *transfers) settle(token, state string, byQuery bool) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	o := x.outcomes[token]
	if o == nil {
		return "unknown"
	}
	if o.state == "started" || o.state == "aborted" || (byQuery && o.state == "starting") {
		return o.state
	}
	if byQuery && o.conn != nil {
		o.conn.Close() // a connection waiting for a commit that will not count now
	}
	o.state = state
	close(o.decided)
	return state
}

// set moves the transfer with token to state (not a decision) unless it
// was decided meanwhile; it reports whether it did.
func (x *transfers) set(token, state string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	o := x.outcomes[token]
	if o == nil || o.state == "started" || o.state == "aborted" {
		return false
	}
	o.state = state
	return true
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
	if a.xfer.outcomes == nil {
		a.xfer.outcomes, a.xfer.expires = map[string]*outcome{}, map[string]time.Time{}
	}
	now := time.Now()
	for k, t := range a.xfer.expires {
		if now.After(t) {
			delete(a.xfer.outcomes, k)
			delete(a.xfer.expires, k)
		}
	}
	a.xfer.outcomes[h.Token] = &outcome{state: "receiving", decided: make(chan struct{})}
	a.xfer.expires[h.Token] = now.Add(expectTTL)
	return e.rt, true
}

// query answers whether the transfer h names started here, settling it
// (aborted) when it had not got that far; a transfer being started is
// waited for.
func (a *Agent) query(ctx context.Context, h transferHeader) transferReply {
	a.xfer.mu.Lock()
	o := a.xfer.outcomes[h.Token]
	if o == nil {
		// Never received: make sure it never is.
		if e := a.xfer.expect[h.Task]; e != nil && subtle.ConstantTimeCompare([]byte(e.rt.Token), []byte(h.Token)) == 1 {
			delete(a.xfer.expect, h.Task)
		}
		a.xfer.mu.Unlock()
		return transferReply{OK: true}
	}
	a.xfer.mu.Unlock()
	if a.xfer.settle(h.Token, "aborted", true) != "started" {
		select {
		case <-o.decided:
		case <-ctx.Done():
			return transferReply{Error: "shutting down"}
		}
	}
	a.xfer.mu.Lock()
	started := o.state == "started"
	a.xfer.mu.Unlock()
	return transferReply{OK: true, Started: started}
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
	br := bufio.NewReader(c)
	line, err := readLine(br)
	if err != nil {
		return
	}
	var h transferHeader
	if err := json.Unmarshal(line, &h); err != nil {
		reply(c, transferReply{Error: "bad transfer header: " + err.Error()})
		return
	}
	log := a.log.With("task_id", h.Task, "from", c.RemoteAddr().String())
	if h.Query {
		reply(c, a.query(ctx, h))
		return
	}
	rt, ok := a.take(h)
	if !ok {
		log.Warn("refused a transfer nobody announced")
		reply(c, transferReply{Error: "no such transfer is expected here (unknown task or token, or it expired)"})
		return
	}
	rep := a.moveIn(ctx, c, br, rt, h)
	if !rep.OK {
		log.Warn("transfer failed; nothing kept", "err", rep.Error)
	} else {
		log.Info("task moved in", "bytes", h.Bytes, "mode", rt.Mode)
	}
	reply(c, rep)
}

// readLine reads one line of at most 64 KiB.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, more, err := br.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, part...)
		if len(line) > 64<<10 {
			return nil, errors.New("line too long")
		}
		if !more {
			return line, nil
		}
	}
}

func reply(c net.Conn, r transferReply) {
	b, _ := json.Marshal(r)
	_, _ = c.Write(append(b, '\n'))
}

// moveIn reads exactly h.Bytes of state into a temporary file, checks its
// checksum, prepares the task from it, answers prepared, and starts the
// task once the source commits. It returns the last answer.
func (a *Agent) moveIn(ctx context.Context, c net.Conn, br *bufio.Reader, rt api.ReceiveTask, h transferHeader) transferReply {
	fail := func(err error) transferReply {
		a.xfer.settle(h.Token, "aborted", false)
		return transferReply{Error: err.Error()}
	}
	m, _ := a.mover()
	if h.Bytes < 0 || h.Bytes > maxTransfer {
		return fail(fmt.Errorf("transfer of %d bytes refused (at most %d)", h.Bytes, int64(maxTransfer)))
	}
	f, err := os.CreateTemp("", "rswarm-in-")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), io.LimitReader(br, h.Bytes))
	if err != nil {
		return fail(fmt.Errorf("receiving the state: %w", err))
	}
	if n != h.Bytes {
		return fail(fmt.Errorf("the state was cut short: %d of %d bytes", n, h.Bytes))
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.SHA256 {
		return fail(fmt.Errorf("the state's checksum is %s, the sender's %s", got, h.SHA256))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	name := rt.Task.ContainerName
	a.mu.Lock()
	if a.runCtx == nil || a.closing {
		a.mu.Unlock()
		return fail(fmt.Errorf("worker: shutting down: %w", api.ErrUnavailable))
	}
	if _, dup := a.tasks[name]; dup {
		a.mu.Unlock()
		return fail(fmt.Errorf("task %s already runs here: %w", name, api.ErrConflict))
	}
	mem, _ := api.ParseMem(rt.Task.MemLimit)
	l := &local{job: rt.Job, attempt: rt.Attempt, cores: rt.Task.ReqCores, mem: mem, starting: true}
	a.tasks[name] = l
	a.wg.Add(1)
	a.mu.Unlock()
	defer a.wg.Done()
	forget := func() {
		a.mu.Lock()
		delete(a.tasks, name)
		a.mu.Unlock()
	}
	if err := m.PrepareIn(ctx, rt.RunTask, rt.Mode, f); err != nil {
		forget()
		return fail(err)
	}
	// Phase two: wait for the commit on this connection.
	a.xfer.mu.Lock()
	if o := a.xfer.outcomes[h.Token]; o != nil && o.state == "receiving" {
		o.state, o.conn = "prepared", c
	}
	a.xfer.mu.Unlock()
	fault("dst-prepared", c)
	reply(c, transferReply{OK: true, Prepared: true})
	line, err := readLine(br)
	var cm transferCommit
	if err == nil {
		err = json.Unmarshal(line, &cm)
	}
	if err == nil && !cm.Commit {
		err = errors.New("the source did not commit")
	}
	fault("dst-commit", c)
	if err != nil || !a.xfer.set(h.Token, "starting") {
		a.xfer.settle(h.Token, "aborted", false)
		m.AbortIn(ctx, name)
		forget()
		if err == nil {
			err = errors.New("the transfer was settled as not started (the source asked)")
		}
		return transferReply{Error: "no commit: " + err.Error()}
	}
	// Committed: the source has stopped the task. Start it whatever
	// happens to the connection now; the source can ask.
	note, err := m.StartIn(context.WithoutCancel(ctx), name)
	if err != nil {
		a.xfer.settle(h.Token, "aborted", false)
		forget()
		return transferReply{Error: err.Error()}
	}
	a.mu.Lock()
	l.starting = false
	a.mu.Unlock()
	a.xfer.settle(h.Token, "started", false)
	fault("dst-started", c)
	return transferReply{OK: true, Started: true, Note: note}
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
	frozen := time.Now()
	var prepared time.Time
	started, rep, err := a.handOver(ctx, m, st, h, f, &prepared)
	if errors.Is(err, errInDoubt) {
		a.mu.Lock()
		if l := a.tasks[st.Task]; l != nil {
			l.stopping, l.stopState, l.reason = true, api.Migrating, "in doubt: moved to "+st.To+"?"
		}
		a.mu.Unlock()
		a.log.Error("a moved task is in doubt: kept stopped here", "task_id", st.Task, "to", st.To, "err", err)
		return nil, fmt.Errorf("worker: send %s to %s: %w: %w", st.Task, st.To, api.ErrUnavailable, err)
	}
	if !started {
		if err == nil {
			err = errors.New(rep.Error)
		}
		if rerr := m.Resume(ctx, st.Task, st.Mode); rerr != nil {
			a.log.Error("the transfer failed and the task could not be resumed here", "task_id", st.Task, "err", rerr)
			return nil, fmt.Errorf("worker: send %s to %s: %w (and resuming it here failed: %v)", st.Task, st.To, err, rerr)
		}
		return nil, fmt.Errorf("worker: send %s to %s: %w: %w", st.Task, st.To, api.ErrUnprocessable, err)
	}
	now := time.Now()
	if prepared.IsZero() { // asked after a lost answer
		prepared = now
	}
	sent := api.Sent{Bytes: size, SHA256: h.SHA256, Downtime: now.Sub(start).Seconds(),
		Freeze: frozen.Sub(start).Seconds(), Transfer: prepared.Sub(frozen).Seconds(), Start: now.Sub(prepared).Seconds()}
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
	sent.Note = note
	if rep.Note != "" {
		sent.Note = rep.Note
	}
	return sent, nil
}

// errInDoubt: the destination could not say whether it started a task.
var errInDoubt = errors.New("the destination could not be asked whether it started the task; it is kept stopped here so that it never runs twice")

// handOver runs the two phases with the destination (see the top of this
// file). started reports that the task runs there; when false, it
// definitely does not, and the caller resumes it here. A task in doubt
// is neither: handOver then returns an error wrapping errInDoubt and
// started true is never claimed.
// prepared is set to when the destination said it was prepared.
func (a *Agent) handOver(ctx context.Context, m Mover, st api.SendTask, h transferHeader, f *os.File, prepared *time.Time) (started bool, rep transferReply, err error) {
	c, br, err := push(ctx, st.To, h, f)
	if err != nil {
		return false, rep, err
	}
	defer c.Close()
	if rep, err = readReply(br); err != nil || !rep.OK {
		return false, rep, err // nothing started there: it starts only on a commit
	}
	*prepared = time.Now()
	fault("src-prepared", c)
	if err := m.Halt(ctx, st.Task, st.Mode); err != nil {
		return false, rep, fmt.Errorf("stopping the task here for good: %w", err)
	}
	fault("src-commit", c)
	b, _ := json.Marshal(transferCommit{Commit: true})
	if _, err = c.Write(append(b, '\n')); err == nil {
		if rep, err = readReply(br); err == nil {
			return rep.OK && rep.Started, rep, nil
		}
	}
	// The commit or its answer was lost: ask.
	a.log.Warn("the answer to a commit was lost; asking the destination", "task_id", st.Task, "to", st.To, "err", err)
	q, qerr := queryTransfer(ctx, st.To, transferHeader{Token: st.Token, Task: st.Task, Query: true})
	if qerr != nil {
		return false, rep, fmt.Errorf("%w: %w (asked after: %w)", errInDoubt, qerr, err)
	}
	if q.Started {
		return true, transferReply{OK: true, Started: true}, nil
	}
	return false, transferReply{Error: "the connection broke before the destination started the task: " + err.Error()}, nil
}

// queryFor is how long a source tries to ask the destination what became
// of a transfer whose answer was lost.
var queryFor = time.Minute

// queryTransfer asks the destination at addr what became of a transfer,
// trying again for up to queryFor.
func queryTransfer(ctx context.Context, addr string, h transferHeader) (transferReply, error) {
	deadline := time.Now().Add(queryFor)
	for {
		r, err := queryOnce(ctx, addr, h)
		if err == nil && r.OK {
			return r, nil
		}
		if err == nil {
			err = errors.New(r.Error)
		}
		if time.Now().After(deadline) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, err
		case <-time.After(min(time.Second, queryFor/4)):
		}
	}
}

func queryOnce(ctx context.Context, addr string, h transferHeader) (transferReply, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return transferReply{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	hb, _ := json.Marshal(h)
	if _, err := c.Write(append(hb, '\n')); err != nil {
		return transferReply{}, err
	}
	return readReply(bufio.NewReader(c))
}

// readReply reads one answer line.
func readReply(br *bufio.Reader) (transferReply, error) {
	line, err := readLine(br)
	if err != nil {
		return transferReply{}, fmt.Errorf("no answer from the destination: %w", err)
	}
	var r transferReply
	if err := json.Unmarshal(line, &r); err != nil {
		return transferReply{}, fmt.Errorf("bad answer from the destination: %w", err)
	}
	return r, nil
}

// push opens a transfer to the transfer port at addr and streams the state
// in f; the connection is left open for the rest of the hand-over.
func push(ctx context.Context, addr string, h transferHeader, f *os.File) (net.Conn, *bufio.Reader, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := d.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the transfer port: %w", err)
	}
	_ = c.SetDeadline(time.Now().Add(transferTimeout))
	context.AfterFunc(ctx, func() { c.Close() })
	fail := func(err error) (net.Conn, *bufio.Reader, error) {
		c.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	hb, _ := json.Marshal(h)
	bw := bufio.NewWriter(c)
	if _, err := bw.Write(append(hb, '\n')); err != nil {
		return fail(err)
	}
	if _, err := io.Copy(bw, f); err != nil {
		return fail(fmt.Errorf("streaming the state: %w", err))
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	return c, bufio.NewReader(c), nil
}

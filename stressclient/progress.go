package stressclient

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// IsTerminal reports whether f is a terminal, where a progress bar can be drawn.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Progress shows a run's counters while it goes: a progress bar on a
// terminal, a plain line every Every otherwise (logs, CI).
type Progress struct {
	Out      io.Writer
	Terminal bool
	// Every is the period of plain lines (default 5 s); a bar is redrawn
	// several times a second.
	Every    time.Duration
	Counters *Counters
}

// Run shows progress until ctx ends, then draws the last state and returns.
func (p *Progress) Run(ctx context.Context) {
	if p.Terminal {
		p.bar(ctx)
		return
	}
	every := p.Every
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(p.Out, Line(p.Counters.Snapshot(time.Now())))
			return
		case <-t.C:
			fmt.Fprintln(p.Out, Line(p.Counters.Snapshot(time.Now())))
		}
	}
}

// Line is one plain progress line.
func Line(s Snapshot) string {
	if s.Waiting {
		return fmt.Sprintf("stress: waiting: submitted %d/%d, accepted %d, refused %d, finished %d/%d",
			s.Submitted, s.Planned, s.Accepted, s.Refused, s.Finished, s.Accepted)
	}
	return fmt.Sprintf("stress: submitting: submitted %d/%d, accepted %d, refused %d, finished %d, %.1f jobs/s",
		s.Submitted, s.Planned, s.Accepted, s.Refused, s.Finished, s.Rate)
}

func (p *Progress) bar(ctx context.Context) {
	s := p.Counters.Snapshot(time.Now())
	bar := progressbar.NewOptions64(max(s.Planned, 1),
		progressbar.OptionSetWriter(p.Out),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetRenderBlankState(true),
	)
	waiting := false
	draw := func() {
		s := p.Counters.Snapshot(time.Now())
		if s.Waiting && !waiting {
			waiting = true
			bar.ChangeMax64(max(s.Accepted, 1))
		}
		// The description first: setting the value draws the bar.
		if waiting {
			bar.Describe(fmt.Sprintf("finished (accepted %d, refused %d)", s.Accepted, s.Refused))
			_ = bar.Set64(s.Finished)
			return
		}
		bar.Describe(fmt.Sprintf("submitting: accepted %d, refused %d, %.0f jobs/s", s.Accepted, s.Refused, s.Rate))
		_ = bar.Set64(s.Accepted + s.Refused)
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			draw()
			_ = bar.Exit()
			fmt.Fprintln(p.Out)
			return
		case <-t.C:
			draw()
		}
	}
}

package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dmad/workstation/core/progress"
)

// progressBar reports long work on stderr: a redrawn bar on a terminal, plain
// lines (at most one every two seconds per stage, plus stage ends) otherwise.
type progressBar struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	quiet    bool
	stage    string
	start    time.Time
	lastLine time.Time
	drawn    bool
}

func newProgress(w io.Writer, quiet bool) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{w: w, tty: tty, quiet: quiet}
}

// Update reports done of total units of stage; extra is appended (loss, etc.).
func (p *progressBar) Update(stage string, done, total int, extra string) {
	if p == nil || p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if stage != p.stage {
		p.finishLocked()
		p.stage, p.start, p.lastLine = stage, now, time.Time{}
	}
	frac := 0.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	eta := ""
	if frac > 0.02 && frac < 1 {
		left := time.Duration(float64(now.Sub(p.start)) * (1 - frac) / frac)
		eta = " ETA " + left.Round(time.Second).String()
	}
	if extra != "" {
		extra = " " + extra
	}
	if p.tty {
		const width = 30
		n := int(frac * width)
		bar := strings.Repeat("█", n) + strings.Repeat("░", width-n)
		fmt.Fprintf(p.w, "\r\033[K%-30s %s %3.0f%% %d/%d%s%s", stage, bar, 100*frac, done, total, eta, extra)
		p.drawn = true
		if total > 0 && done >= total {
			p.finishLocked()
		}
		return
	}
	if done >= total || now.Sub(p.lastLine) >= 2*time.Second {
		fmt.Fprintf(p.w, "%s: %d/%d (%.0f%%)%s%s\n", stage, done, total, 100*frac, eta, extra)
		p.lastLine = now
	}
}

// Report shows an engine event: its stage in plain words, as the GUI names
// it (prefixed by the benchmark run when there is one), and for training
// the epoch and loss terms.
func (p *progressBar) Report(e progress.Event) {
	stage := e.Stage.Label()
	if e.Run != "" {
		stage = e.Run + " " + stage
	}
	extra := ""
	if e.Stage == progress.Train {
		refit := ""
		if e.Refit {
			refit = "fine-tune "
		}
		extra = fmt.Sprintf("%sepoch %d/%d loss %.4f normal>m %.2f neg<-m %.2f anom<-m %.2f",
			refit, e.Epoch, e.Epochs, e.Loss, e.NormalAbove, e.NegBelow, e.AnomBelow)
	}
	p.Update(stage, e.Done, e.Total, extra)
}

// Log prints a message line, clearing a bar first.
func (p *progressBar) Log(format string, args ...any) {
	if p == nil || p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// Done ends the current bar.
func (p *progressBar) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
}

func (p *progressBar) finishLocked() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

package ui

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// FyneLog returns a writer for the standard log package that turns Fyne's
// diagnostics into one slog record each. Fyne reports an error as three
// log lines ("Fyne error:  reason", "  Cause: …", "  At: file:line"); they
// become one record with cause and at attributes, at Warn, except two that
// say nothing a user can act on, which go to Debug:
//   - "Getting favorite locations": every file dialog looks up the XDG user
//     folders (Documents … Videos) for its side bar and complains about
//     each that does not exist, such as ~/Videos on a workstation PC;
//   - "Preferences load error" with cause EOF: Fyne re-reads its own
//     preferences file while rewriting it on exit (the values in memory
//     are kept).
//
// Lines not from Fyne are logged at Info as they are.
func FyneLog(log *slog.Logger) io.Writer { return &fyneLog{log: log} }

type fyneLog struct {
	log *slog.Logger

	mu      sync.Mutex
	buf     []byte
	pending *fyneError
}

type fyneError struct{ reason, cause, at string }

// benign reports whether a Fyne error is one of the two above.
func (e fyneError) benign() bool {
	return strings.HasPrefix(e.reason, "Getting favorite locations") ||
		(strings.HasPrefix(e.reason, "Preferences load error") && e.cause == "EOF")
}

func (f *fyneLog) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf = append(f.buf, p...)
	for {
		i := bytes.IndexByte(f.buf, '\n')
		if i < 0 {
			break
		}
		f.line(string(f.buf[:i]))
		f.buf = f.buf[i+1:]
	}
	return len(p), nil
}

// line handles one line, without its date and time if the log package
// added them.
func (f *fyneLog) line(s string) {
	if k := strings.Index(s, "Fyne error:"); k >= 0 {
		f.flush()
		f.pending = &fyneError{reason: strings.TrimSpace(s[k+len("Fyne error:"):])}
		return
	}
	if f.pending != nil {
		if k := strings.Index(s, "  Cause:"); k >= 0 {
			f.pending.cause = strings.TrimSpace(s[k+len("  Cause:"):])
			return
		}
		if k := strings.Index(s, "  At:"); k >= 0 {
			f.pending.at = strings.TrimSpace(s[k+len("  At:"):])
			f.flush()
			return
		}
		f.flush()
	}
	f.log.Info(strings.TrimSpace(s))
}

// flush logs the pending Fyne error.
func (f *fyneLog) flush() {
	e := f.pending
	if e == nil {
		return
	}
	f.pending = nil
	level := slog.LevelWarn
	if e.benign() {
		level = slog.LevelDebug
	}
	attrs := []any{}
	if e.cause != "" {
		attrs = append(attrs, "cause", e.cause)
	}
	if e.at != "" {
		attrs = append(attrs, "at", e.at)
	}
	f.log.Log(context.Background(), level, "fyne: "+strings.TrimSuffix(e.reason, ":"), attrs...)
}

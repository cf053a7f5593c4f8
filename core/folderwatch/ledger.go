package folderwatch

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/dmad/workstation/core/internal/appendfile"
)

// Ledger statuses.
const (
	// StatusScored: the file was scored and its verdict delivered.
	StatusScored = "scored"
	// StatusFailed: the scorer returned an error for the file.
	StatusFailed = "failed"
	// StatusBad: the file never became a readable image (corrupt or
	// truncated) within Options.BadAfter.
	StatusBad = "bad"
)

// Entry is one line of the ledger: a file version that is finished with.
type Entry struct {
	// Name is the file name inside the watched folder.
	Name string `json:"name"`
	// Size and ModTimeNS identify the version of the file: a file written
	// again under the same name is a new arrival.
	Size      int64 `json:"size"`
	ModTimeNS int64 `json:"mtime_ns"`
	// Status is StatusScored, StatusFailed or StatusBad.
	Status string `json:"status"`
	// Error says why for StatusFailed and StatusBad.
	Error string `json:"error,omitempty"`
	// At is when the entry was written.
	At time.Time `json:"at"`
}

var errLocked = errors.New("locked")

type ledgerKey struct {
	name        string
	size, mtime int64
}

// Ledger is the append-only record of the files a watcher has finished
// with, one JSON object a line, each synced to disk before Record returns.
// Reopening it after a stop or a crash tells which files are done; a line
// cut short by a crash is dropped. One process at a time holds it (an
// exclusive lock on the file). It is safe for concurrent use.
type Ledger struct {
	mu   sync.Mutex
	f    *os.File
	path string
	done map[ledgerKey]struct{}
}

// OpenLedger opens (creating it if needed) the ledger file at path and
// reads the entries already in it.
func OpenLedger(path string) (*Ledger, error) {
	f, err := appendfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("ledger %s is in use by another watcher (a second watch on the same output folder?)", path)
		}
		return nil, fmt.Errorf("ledger %s: lock: %w", path, err)
	}
	l := &Ledger{f: f, path: path, done: map[ledgerKey]struct{}{}}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Name == "" {
			f.Close()
			if err == nil {
				err = errors.New("no file name")
			}
			return nil, fmt.Errorf("ledger %s line %d is not an entry (%v): move the file away to rescore everything", path, line, err)
		}
		l.done[ledgerKey{e.Name, e.Size, e.ModTimeNS}] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("ledger %s: read: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	return l, nil
}

// Done reports whether this version of the file is in the ledger.
func (l *Ledger) Done(name string, size int64, mtime time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.done[ledgerKey{name, size, mtime.UnixNano()}]
	return ok
}

// Len is the number of file versions in the ledger.
func (l *Ledger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done)
}

// Record appends e and syncs the file.
func (l *Ledger) Record(e Entry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("ledger: encode %s: %w", e.Name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("ledger %s: closed", l.path)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("ledger %s: write: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("ledger %s: sync: %w", l.path, err)
	}
	l.done[ledgerKey{e.Name, e.Size, e.ModTimeNS}] = struct{}{}
	return nil
}

// Close closes the ledger file.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("ledger %s: close: %w", l.path, err)
	}
	return nil
}

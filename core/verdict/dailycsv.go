package verdict

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dmad/workstation/core/internal/appendfile"
)

// DailyCSV appends verdicts to one CSV file per day in a folder,
// verdicts-YYYY-MM-DD.csv (the local date of the verdict's ScoredAt). Each
// file gets its header once; each row is written and synced before Append
// returns, so a crash loses at most the row being written. It is safe for
// concurrent use.
type DailyCSV struct {
	dir string

	mu  sync.Mutex
	day string
	f   *os.File
}

// OpenDailyCSV returns an appender writing into dir (created if needed).
func OpenDailyCSV(dir string) (*DailyCSV, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("daily csv: create %s: %w", dir, err)
	}
	return &DailyCSV{dir: dir}, nil
}

// FileName is the daily file a verdict scored at t goes to.
func FileName(t time.Time) string { return "verdicts-" + t.Local().Format("2006-01-02") + ".csv" }

// Append writes v as one row of its day's file.
func (d *DailyCSV) Append(v Verdict) error {
	if v.ScoredAt.IsZero() {
		v.ScoredAt = time.Now()
	}
	name := FileName(v.ScoredAt)
	d.mu.Lock()
	defer d.mu.Unlock()
	if name != d.day || d.f == nil {
		if err := d.switchTo(name); err != nil {
			return err
		}
	}
	w := csv.NewWriter(d.f)
	if err := w.Write(v.record()); err != nil {
		return fmt.Errorf("daily csv: write %s: %w", d.f.Name(), err)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("daily csv: write %s: %w", d.f.Name(), err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("daily csv: sync %s: %w", d.f.Name(), err)
	}
	return nil
}

// switchTo closes the current file and opens name, writing the header when
// the file is new (or held only a partial header).
func (d *DailyCSV) switchTo(name string) error {
	if d.f != nil {
		if err := d.f.Close(); err != nil {
			return fmt.Errorf("daily csv: close %s: %w", d.f.Name(), err)
		}
		d.f = nil
	}
	path := filepath.Join(d.dir, name)
	f, err := appendfile.Open(path)
	if err != nil {
		return fmt.Errorf("daily csv: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("daily csv: stat %s: %w", path, err)
	}
	if st.Size() == 0 {
		w := csv.NewWriter(f)
		_ = w.Write(csvHeader)
		w.Flush()
		if err := w.Error(); err != nil {
			f.Close()
			return fmt.Errorf("daily csv: write header of %s: %w", path, err)
		}
	}
	d.f, d.day = f, name
	return nil
}

// Close closes the current file.
func (d *DailyCSV) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	if err != nil {
		return fmt.Errorf("daily csv: close: %w", err)
	}
	return nil
}

// Package folderwatch watches a folder for new image files and hands each
// one, exactly once and only when it is completely written, to a scorer.
//
// New files are noticed through fsnotify, or by polling the folder (forced
// for network shares, where change notifications do not cross the wire, and
// used automatically when fsnotify cannot start). A file counts as
// completely written when its size and modification time have not changed
// for a settle interval and it passes the quick image check of the dataset
// loader (header decodes, file not truncated). Files renamed into the
// folder are picked up like written ones; hidden, temporary and non-image
// names are ignored.
//
// A ledger file records every file version that is finished with, so a
// restarted watcher neither scores a file twice nor skips one that arrived
// while it was stopped. Files that never become readable, and files the
// scorer fails on, are logged, counted and recorded; the watcher goes on.
//
// Limits: a writer that pauses longer than Settle in the middle of a
// format the quick check cannot see truncated (TIFF) may get its partial
// file scored; writing under a temporary name and renaming is safe with any
// settle interval. A crash between a verdict's delivery and its ledger line
// (one fsync) delivers that verdict again after the restart. Only the top
// level of the folder is watched unless Options.Recursive is set (cameras
// that write into dated subfolders); hidden subfolders are never entered.
package folderwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/verdict"
)

// Scorer scores the image at path. An error means this file could not be
// scored (it is logged, counted and recorded as failed); the watcher goes on.
type Scorer func(ctx context.Context, path string) (verdict.Verdict, error)

// Sink receives each verdict (write the CSV, publish). An error stops the
// watcher, and the file is not recorded as done, so a restart scores it again.
type Sink func(ctx context.Context, v verdict.Verdict) error

// Options configures a Watcher. Dir and Ledger are required.
type Options struct {
	// Dir is the folder watched (its top level only, unless Recursive).
	Dir string
	// Recursive watches every subfolder of Dir too, including ones created
	// later; files are named by their path relative to Dir (in the ledger
	// too). Hidden subfolders (".name") are skipped.
	Recursive bool
	// Ledger is the path of the ledger file, e.g. in the output folder.
	Ledger string
	// Settle is how long a file's size and modification time must stay the
	// same before it is checked (default 100ms; use seconds on network
	// shares, whose metadata lags).
	Settle time.Duration
	// PollInterval is how often the folder is listed when polling
	// (default 1s).
	PollInterval time.Duration
	// Rescan is how often the folder is listed anyway when fsnotify works,
	// in case an event was lost (default 30s; negative: never).
	Rescan time.Duration
	// ForcePolling polls instead of using fsnotify (network shares).
	ForcePolling bool
	// BadAfter is how long a settled file may keep failing the image check
	// before it is given up as bad (default 5s).
	BadAfter time.Duration
	// Accept says whether a file name is an image to score; default:
	// AcceptName.
	Accept func(name string) bool
	// Check says whether a settled file is a complete, readable image;
	// default: dataset.CheckImage.
	Check func(path string) error
	// OnBad, when set, is called for each file given up as bad or failed by
	// the scorer (for a live view's error list).
	OnBad func(path string, err error)
	// Logger receives warnings and per-file errors; nil: slog.Default().
	Logger *slog.Logger
}

// AcceptName is the default Options.Accept: an image extension the
// workstation reads (dataset.IsImage, which also drops hidden files)
// and none of the prefixes editors and copy tools give partial files.
func AcceptName(name string) bool {
	if strings.HasPrefix(name, "~") || strings.HasPrefix(name, "#") {
		return false
	}
	return dataset.IsImage(name)
}

func (o *Options) defaults() {
	if o.Settle <= 0 {
		o.Settle = 100 * time.Millisecond
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Rescan == 0 {
		o.Rescan = 30 * time.Second
	}
	if o.BadAfter <= 0 {
		o.BadAfter = 5 * time.Second
	}
	if o.BadAfter < o.Settle {
		o.BadAfter = o.Settle
	}
	if o.Accept == nil {
		o.Accept = AcceptName
	}
	if o.Check == nil {
		o.Check = func(path string) error { _, _, err := dataset.CheckImage(path); return err }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Modes a watcher runs in.
const (
	ModeNotify  = "fsnotify"
	ModePolling = "polling"
)

// Stats counts what a watcher did since it started.
type Stats struct {
	// Mode is ModeNotify or ModePolling ("" before Run starts).
	Mode string
	// Scored files had a verdict delivered; Failed ones a scorer error; Bad
	// ones never became readable images.
	Scored, Failed, Bad int64
	// Skipped files were already in the ledger when Run started.
	Skipped int64
	// Pending files are seen but not yet scored (settling or queued).
	Pending int64
}

// Watcher watches one folder. Create it with New and start it with Run.
type Watcher struct {
	opts  Options
	score Scorer
	sink  Sink

	mode                                  atomic.Value // string
	scored, failed, bad, skipped, pending atomic.Int64

	// notify starts file notifications on a folder; tests replace it to
	// see the polling fallback work.
	notify func(dir string) (*fsnotify.Watcher, error)
}

func startNotify(dir string) (*fsnotify.Watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := fsw.Add(dir); err != nil {
		fsw.Close()
		return nil, err
	}
	return fsw, nil
}

// skipDir reports whether a recursive watch leaves the subfolder name out.
func skipDir(name string) bool { return strings.HasPrefix(name, ".") }

// addTree adds notifications for every subfolder under dir (dir itself is
// added by notify). A subfolder that cannot be watched (the system's limit
// on watches) is reported; the safety rescans still find its files.
func addTree(fsw *fsnotify.Watcher, dir string, log *slog.Logger) {
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || path == dir {
			return nil
		}
		if skipDir(d.Name()) {
			return filepath.SkipDir
		}
		if err := fsw.Add(path); err != nil {
			log.Warn("cannot watch a subfolder; found by rescans only", "folder", path, "err", err)
		}
		return nil
	})
}

// New returns a watcher of opts.Dir that scores each new image with score
// and hands the verdict to sink.
func New(opts Options, score Scorer, sink Sink) (*Watcher, error) {
	if opts.Dir == "" || opts.Ledger == "" {
		return nil, errors.New("folderwatch: the folder and the ledger path are required")
	}
	if score == nil || sink == nil {
		return nil, errors.New("folderwatch: a scorer and a sink are required")
	}
	opts.defaults()
	w := &Watcher{opts: opts, score: score, sink: sink, notify: startNotify}
	w.mode.Store("")
	return w, nil
}

// Stats returns the counters so far; safe to call while Run runs.
func (w *Watcher) Stats() Stats {
	return Stats{Mode: w.mode.Load().(string), Scored: w.scored.Load(), Failed: w.failed.Load(),
		Bad: w.bad.Load(), Skipped: w.skipped.Load(), Pending: w.pending.Load()}
}

// candidate is a file seen but not yet settled.
type candidate struct {
	size    int64
	mtime   time.Time
	changed time.Time // last time size or mtime was seen changing: the file's completion time once settled
	due     time.Time // when to look at it next
}

// job is a settled file for the scoring worker.
type job struct {
	name    string
	size    int64
	mtime   time.Time
	changed time.Time
}

// Run watches until ctx is cancelled (then it returns nil after the file
// being scored, if any, is finished) or a sink or ledger error stops it.
func (w *Watcher) Run(ctx context.Context) error {
	o := w.opts
	log := o.Logger.With("folder", o.Dir)
	if st, err := os.Stat(o.Dir); err != nil {
		return fmt.Errorf("watch %s: %w", o.Dir, err)
	} else if !st.IsDir() {
		return fmt.Errorf("watch %s: not a folder", o.Dir)
	}
	ledger, err := OpenLedger(o.Ledger)
	if err != nil {
		return err
	}
	defer ledger.Close()

	// Start notifications before the first listing, so that no file lands
	// between the two unseen.
	var events chan fsnotify.Event
	var notifyErrs chan error
	var fsw *fsnotify.Watcher
	if !o.ForcePolling {
		fsw, err = w.notify(o.Dir)
		if err != nil {
			log.Warn("file notifications unavailable, polling the folder", "every", o.PollInterval, "err", err)
		} else {
			events, notifyErrs = fsw.Events, fsw.Errors
			defer fsw.Close()
			if o.Recursive {
				addTree(fsw, o.Dir, log)
			}
		}
	}
	pollEvery := o.PollInterval
	if fsw != nil {
		w.mode.Store(ModeNotify)
		pollEvery = o.Rescan
	} else {
		w.mode.Store(ModePolling)
	}
	poll := time.NewTicker(max(pollEvery, time.Millisecond))
	defer poll.Stop()
	if pollEvery <= 0 {
		poll.Stop() // no safety rescans; fallBack may start it
	}

	// One worker scores, delivers and records, so the loop below keeps
	// listening while a file is scored.
	jobs := make(chan job)
	finished := make(chan string, 1)
	fatal := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for j := range jobs {
			if err := w.process(ctx, ledger, j); err != nil {
				fatal <- err
				return
			}
			finished <- j.name
		}
	}()

	l := loop{w: w, ledger: ledger, log: log, cands: map[string]*candidate{}, busy: map[string]bool{}}
	defer func() {
		close(jobs)
		// Drain the worker's report of the file it was on, then wait for it.
		go func() {
			for range finished {
			}
		}()
		wg.Wait()
		close(finished)
	}()
	l.first = true
	l.scan(time.Now())
	l.first = false
	// One timer, set to the earliest time a candidate is due for a look.
	timer := time.NewTimer(l.nextDue(time.Now()))
	defer timer.Stop()
	for {
		var send chan job
		var next job
		if len(l.queue) > 0 {
			send, next = jobs, l.queue[0]
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-fatal:
			return err
		case send <- next:
			l.queue = l.queue[1:]
		case name := <-finished:
			delete(l.busy, name)
			l.observe(name, time.Now()) // changed again while being scored?
		case ev, ok := <-events:
			if !ok {
				events, notifyErrs = nil, nil
				w.fallBack(log, poll)
				continue
			}
			if o.Recursive && ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() && !skipDir(filepath.Base(ev.Name)) {
					// A new subfolder: watch it and everything already in it
					// (files can land before the watch is added).
					if err := fsw.Add(ev.Name); err != nil {
						log.Warn("cannot watch a subfolder; found by rescans only", "folder", ev.Name, "err", err)
					}
					addTree(fsw, ev.Name, log)
					l.scanTree(ev.Name, time.Now())
					continue
				}
			}
			if name, ok := w.relName(ev.Name); ok {
				l.observe(name, time.Now())
			}
		case err, ok := <-notifyErrs:
			if !ok {
				events, notifyErrs = nil, nil
				w.fallBack(log, poll)
				continue
			}
			// An overflow loses events: list the folder to catch up.
			log.Warn("file notification error, listing the folder", "err", err)
			l.scan(time.Now())
		case <-poll.C:
			l.scan(time.Now())
		case now := <-timer.C:
			l.settle(now)
		}
		timer.Reset(l.nextDue(time.Now()))
		w.pending.Store(int64(len(l.cands) + len(l.queue) + len(l.busy)))
	}
}

// relName is the watcher's name for the file at path: its base name in
// the watched folder, or with Recursive its path relative to Dir; ok is
// false for files outside the watch or not accepted.
func (w *Watcher) relName(path string) (string, bool) {
	o := w.opts
	rel, err := filepath.Rel(filepath.Clean(o.Dir), filepath.Clean(path))
	if err != nil || rel == "." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || rel == ".." {
		return "", false
	}
	if !o.Recursive && filepath.Base(rel) != rel {
		return "", false
	}
	for _, part := range strings.Split(filepath.Dir(rel), string(filepath.Separator)) {
		if part != "." && skipDir(part) {
			return "", false
		}
	}
	return rel, o.Accept(filepath.Base(rel))
}

// fallBack switches a running watcher to polling after fsnotify broke.
func (w *Watcher) fallBack(log *slog.Logger, poll *time.Ticker) {
	log.Warn("file notifications stopped, polling the folder", "every", w.opts.PollInterval)
	w.mode.Store(ModePolling)
	poll.Reset(w.opts.PollInterval)
}

// process scores one settled file, delivers its verdict and records it.
// Only sink and ledger errors are returned.
func (w *Watcher) process(ctx context.Context, ledger *Ledger, j job) error {
	o := w.opts
	path := filepath.Join(o.Dir, j.name)
	entry := Entry{Name: j.name, Size: j.size, ModTimeNS: j.mtime.UnixNano()}
	v, err := w.score(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped: not recorded, so the next start scores it
		}
		w.failed.Add(1)
		o.Logger.Error("scoring failed; going on", "file", path, "err", err)
		if o.OnBad != nil {
			o.OnBad(path, err)
		}
		entry.Status, entry.Error = StatusFailed, err.Error()
		return ledger.Record(entry)
	}
	if v.Path == "" {
		v.Path = path
	}
	if v.FileClosed.IsZero() {
		v.FileClosed = j.changed
	}
	if v.ScoredAt.IsZero() {
		v.ScoredAt = time.Now()
	}
	if err := w.sink(ctx, v); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("deliver the verdict of %s: %w", path, err)
	}
	entry.Status = StatusScored
	if err := ledger.Record(entry); err != nil {
		return err
	}
	w.scored.Add(1)
	return nil
}

// loop is the state of Run's event loop (used by one goroutine only).
type loop struct {
	w      *Watcher
	ledger *Ledger
	log    *slog.Logger
	cands  map[string]*candidate
	queue  []job
	busy   map[string]bool // queued or being scored
	// first is true during the listing at start, which counts Skipped.
	first   bool
	scanErr string
}

// scan lists the folder (with Recursive, its tree) and observes every
// acceptable file in it.
func (l *loop) scan(now time.Time) {
	o := l.w.opts
	ents, err := os.ReadDir(o.Dir)
	if err != nil {
		// A share that went away: say so once and keep trying.
		if err.Error() != l.scanErr {
			l.log.Warn("cannot list the folder; retrying", "err", err)
			l.scanErr = err.Error()
		}
		return
	}
	l.scanErr = ""
	seen := make(map[string]bool, len(ents))
	for _, e := range ents {
		if e.IsDir() {
			if o.Recursive && !skipDir(e.Name()) {
				for _, name := range l.scanTree(filepath.Join(o.Dir, e.Name()), now) {
					seen[name] = true
				}
			}
			continue
		}
		if !o.Accept(e.Name()) {
			continue
		}
		seen[e.Name()] = true
		l.observe(e.Name(), now)
	}
	for name := range l.cands {
		if !seen[name] {
			delete(l.cands, name)
		}
	}
}

// scanTree observes every acceptable file under the subfolder dir and
// returns their names. Unreadable subfolders are skipped.
func (l *loop) scanTree(dir string, now time.Time) []string {
	var names []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if path != dir && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if name, ok := l.w.relName(path); ok {
			names = append(names, name)
			l.observe(name, now)
		}
		return nil
	})
	return names
}

// observe looks at one file and adds or updates its candidate.
func (l *loop) observe(name string, now time.Time) {
	if l.busy[name] {
		return // looked at again when the worker is done with it
	}
	st, err := os.Stat(filepath.Join(l.w.opts.Dir, name))
	if err != nil || !st.Mode().IsRegular() {
		delete(l.cands, name) // gone (renamed away, deleted) or not a file
		return
	}
	size, mtime := st.Size(), st.ModTime()
	if l.ledger.Done(name, size, mtime) {
		if l.first {
			l.w.skipped.Add(1)
		}
		delete(l.cands, name)
		return
	}
	c, ok := l.cands[name]
	if !ok {
		c = &candidate{size: size, mtime: mtime, changed: now}
		// A file last modified more than a settle interval ago (renamed in,
		// or arrived while the watcher was stopped) has already settled;
		// mtime is trusted for this only on local folders.
		if l.w.opts.Settle > 0 && !l.w.opts.ForcePolling && now.Sub(mtime) > l.w.opts.Settle {
			c.changed = mtime
		}
		c.due = c.changed.Add(l.w.opts.Settle)
		l.cands[name] = c
		return
	}
	if c.size != size || !c.mtime.Equal(mtime) {
		c.size, c.mtime, c.changed, c.due = size, mtime, now, now.Add(l.w.opts.Settle)
	}
}

// settle moves settled, readable files to the queue and gives up on files
// that stay unreadable.
func (l *loop) settle(now time.Time) {
	o := l.w.opts
	var ready []job
	for name, c := range l.cands {
		if now.Before(c.due) {
			continue
		}
		// Confirm with a fresh look: in polling mode this is the second
		// observation across the settle interval.
		before := *c
		l.observe(name, now)
		c, ok := l.cands[name]
		if !ok || c.size != before.size || !c.mtime.Equal(before.mtime) {
			continue
		}
		path := filepath.Join(o.Dir, name)
		if err := o.Check(path); err != nil {
			if now.Sub(c.changed) < o.BadAfter {
				c.due = now.Add(o.Settle) // maybe still being written by a slow writer
				continue
			}
			delete(l.cands, name)
			l.w.bad.Add(1)
			l.log.Error("not a readable image; skipped", "file", path, "err", err)
			if o.OnBad != nil {
				o.OnBad(path, err)
			}
			e := Entry{Name: name, Size: c.size, ModTimeNS: c.mtime.UnixNano(), Status: StatusBad, Error: err.Error()}
			if err := l.ledger.Record(e); err != nil {
				l.log.Error("cannot record a bad file", "file", path, "err", err)
			}
			continue
		}
		// The check read the file as it is now: if it grew in between, the
		// check saw a newer version than c describes, and the ledger would
		// record the wrong version. Look again and wait for it to settle.
		checked := *c
		l.observe(name, now)
		if c, ok = l.cands[name]; !ok || c.size != checked.size || !c.mtime.Equal(checked.mtime) {
			continue
		}
		delete(l.cands, name)
		ready = append(ready, job{name: name, size: c.size, mtime: c.mtime, changed: c.changed})
	}
	// Oldest first, so the order of arrival is kept within one look.
	sort.Slice(ready, func(a, b int) bool {
		if !ready[a].changed.Equal(ready[b].changed) {
			return ready[a].changed.Before(ready[b].changed)
		}
		return ready[a].name < ready[b].name
	})
	for _, j := range ready {
		l.busy[j.name] = true
		l.queue = append(l.queue, j)
	}
}

// nextDue is how long until the earliest candidate is due (an hour when
// there is none: events and polls wake the loop earlier).
func (l *loop) nextDue(now time.Time) time.Duration {
	next := time.Hour
	for _, c := range l.cands {
		next = min(next, c.due.Sub(now))
	}
	return max(next, 0)
}

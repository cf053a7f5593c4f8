package folderwatch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/verdict"
)

// pngBytes encodes a w×h grey image of one shade (the shade is the score
// the test scorer reads back, so each file is recognisable).
func pngBytes(t testing.TB, w, h int, shade uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = shade
	}
	// A little noise so the PNG is not tiny and compresses in several blocks.
	for i := 0; i < len(img.Pix); i += 7 {
		img.Pix[i] ^= uint8(i)
	}
	img.Set(0, 0, color.Gray{shade})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeScorer fully decodes the file (so a partial file cannot pass) and
// scores it with the shade of its first pixel.
// damageIDAT overwrites the compressed pixel data of a PNG and writes a
// valid CRC over it, so the file is well formed chunk by chunk but does not
// decode.
func damageIDAT(t *testing.T, png []byte) []byte {
	t.Helper()
	out := bytes.Clone(png)
	for i := 8; i+12 <= len(out); {
		n := int(binary.BigEndian.Uint32(out[i:]))
		if string(out[i+4:i+8]) == "IDAT" {
			data := out[i+8 : i+8+n]
			for j := range data {
				data[j] = 0xAA
			}
			binary.BigEndian.PutUint32(out[i+8+n:], crc32.ChecksumIEEE(out[i+4:i+8+n]))
			return out
		}
		i += 12 + n
	}
	t.Fatal("damageIDAT: no IDAT chunk")
	return nil
}

func decodeScorer(ctx context.Context, path string) (verdict.Verdict, error) {
	img, err := imageio.Load(path)
	if err != nil {
		return verdict.Verdict{}, err
	}
	g := imageio.ToGray(img)
	s := float64(g.Pix[0]) / 255
	return verdict.Verdict{Score: s, Threshold: 0.5, Decision: verdict.Decide(s, 0.5)}, nil
}

// harness runs a watcher in the background and collects its verdicts.
type harness struct {
	t      *testing.T
	w      *Watcher
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	verdicts []verdict.Verdict
	bad      []string
	got      chan struct{}
}

func start(t *testing.T, opts Options, score Scorer) *harness {
	t.Helper()
	h := &harness{t: t, done: make(chan error, 1), got: make(chan struct{}, 100)}
	opts.OnBad = func(path string, err error) {
		h.mu.Lock()
		h.bad = append(h.bad, filepath.Base(path))
		h.mu.Unlock()
		h.got <- struct{}{}
	}
	w, err := New(opts, score, func(ctx context.Context, v verdict.Verdict) error {
		h.mu.Lock()
		h.verdicts = append(h.verdicts, v)
		h.mu.Unlock()
		h.got <- struct{}{}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- w.Run(ctx) }()
	// Wait until Run has started (it sets the mode first).
	for w.Stats().Mode == "" {
		time.Sleep(time.Millisecond)
	}
	t.Cleanup(func() { h.stop() })
	return h
}

// stop cancels the watcher and returns Run's error.
func (h *harness) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run did not return within 5s of cancel")
		return nil
	}
}

// waitFor waits until n verdicts+bad files have arrived.
func (h *harness) waitFor(n int) {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		h.mu.Lock()
		have := len(h.verdicts) + len(h.bad)
		h.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-h.got:
		case <-deadline:
			h.t.Fatalf("waited 10s for %d results, have %d (stats %+v)", n, have, h.w.Stats())
		}
	}
}

// names returns the base names of the verdicts so far, sorted.
func (h *harness) names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, v := range h.verdicts {
		out = append(out, filepath.Base(v.Path))
	}
	sort.Strings(out)
	return out
}

// quiet waits long enough for any stray duplicate to show up.
func quiet(opts Options) { time.Sleep(4*opts.Settle + 3*opts.PollInterval) }

func testOptions(t *testing.T, polling bool) (Options, string) {
	in, out := t.TempDir(), t.TempDir()
	return Options{Dir: in, Ledger: filepath.Join(out, "ledger.jsonl"), Settle: 50 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, BadAfter: 400 * time.Millisecond, ForcePolling: polling,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, in
}

var modes = []struct {
	name    string
	polling bool
}{{ModeNotify, false}, {ModePolling, true}}

// writeSlowly writes data in chunks with pauses, as a camera or a copy over
// a slow link does.
func writeSlowly(t *testing.T, path string, data []byte, chunks int, pause time.Duration) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	step := (len(data) + chunks - 1) / chunks
	for i := 0; i < len(data); i += step {
		if _, err := f.Write(data[i:min(i+step, len(data))]); err != nil {
			t.Fatal(err)
		}
		if i+step < len(data) {
			time.Sleep(pause)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherArrivals(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			opts, in := testOptions(t, m.polling)
			outside := t.TempDir()
			h := start(t, opts, decodeScorer)
			if got := h.w.Stats().Mode; got != m.name {
				t.Fatalf("mode = %s, want %s", got, m.name)
			}
			img := pngBytes(t, 300, 200, 200)

			// Written slowly, with pauses longer than the settle interval:
			// the truncation check keeps the partial file back.
			writeSlowly(t, filepath.Join(in, "slow.png"), img, 4, 3*opts.Settle)
			// Written quickly.
			os.WriteFile(filepath.Join(in, "fast.PNG"), pngBytes(t, 40, 30, 10), 0o644)
			// Written under a partial name, then renamed into its final name.
			writeSlowly(t, filepath.Join(in, "renamed.png.part"), img, 3, opts.Settle/5)
			os.Rename(filepath.Join(in, "renamed.png.part"), filepath.Join(in, "renamed.png"))
			// Written elsewhere and moved in.
			os.WriteFile(filepath.Join(outside, "moved.jpg.tmp"), nil, 0o644)
			os.WriteFile(filepath.Join(outside, "moved.png"), img, 0o644)
			os.Rename(filepath.Join(outside, "moved.png"), filepath.Join(in, "moved.png"))
			// The same image under a second name: a separate arrival.
			os.WriteFile(filepath.Join(in, "copy.png"), img, 0o644)
			// Names that are not for scoring.
			os.WriteFile(filepath.Join(in, ".hidden.png"), img, 0o644)
			os.WriteFile(filepath.Join(in, "~lock.png"), img, 0o644)
			os.WriteFile(filepath.Join(in, "notes.txt"), []byte("x"), 0o644)
			os.Mkdir(filepath.Join(in, "sub.png"), 0o755)

			want := []string{"copy.png", "fast.PNG", "moved.png", "renamed.png", "slow.png"}
			h.waitFor(len(want))
			quiet(opts)
			if got := h.names(); strings.Join(got, ",") != strings.Join(want, ",") {
				ledger, _ := os.ReadFile(opts.Ledger)
				t.Errorf("scored %v, want each of %v once; ledger:\n%s", got, want, ledger)
			}
			for _, v := range h.verdicts {
				if v.FileClosed.IsZero() || v.ScoredAt.Before(v.FileClosed) || v.Latency() <= 0 {
					t.Errorf("%s: file closed %v, scored %v", v.Path, v.FileClosed, v.ScoredAt)
				}
			}
			st := h.w.Stats()
			if st.Scored != 5 || st.Failed != 0 || st.Bad != 0 || st.Pending != 0 {
				t.Errorf("stats = %+v, want 5 scored and nothing else", st)
			}
		})
	}
}

func TestWatcherBadFilesDoNotStopIt(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			opts, in := testOptions(t, m.polling)
			h := start(t, opts, decodeScorer)
			good := pngBytes(t, 50, 50, 250)
			os.WriteFile(filepath.Join(in, "garbage.png"), []byte("this is not an image at all"), 0o644)
			os.WriteFile(filepath.Join(in, "truncated.png"), good[:len(good)/2], 0o644)
			os.WriteFile(filepath.Join(in, "empty.jpg"), nil, 0o644)
			// Pixel data damaged, chunk CRCs recomputed: passes the quick
			// check (which verifies every chunk's CRC), fails in the scorer.
			os.WriteFile(filepath.Join(in, "damaged.png"), damageIDAT(t, good), 0o644)
			os.WriteFile(filepath.Join(in, "good.png"), good, 0o644)
			h.waitFor(5)
			quiet(opts)
			st := h.w.Stats()
			if st.Scored != 1 || st.Bad != 3 || st.Failed != 1 {
				t.Errorf("stats = %+v, want 1 scored, 3 bad, 1 failed", st)
			}
			sort.Strings(h.bad)
			if strings.Join(h.bad, ",") != "damaged.png,empty.jpg,garbage.png,truncated.png" {
				t.Errorf("bad files reported: %v", h.bad)
			}
			// Still watching after all that.
			os.WriteFile(filepath.Join(in, "after.png"), good, 0o644)
			h.waitFor(6)
			if got := h.names(); strings.Join(got, ",") != "after.png,good.png" {
				t.Errorf("scored %v", got)
			}
			if err := h.stop(); err != nil {
				t.Errorf("Run = %v after bad files, want nil", err)
			}
			// Bad and failed files are in the ledger: a restart leaves them.
			l, err := OpenLedger(opts.Ledger)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.Len() != 6 {
				t.Errorf("ledger has %d entries, want 6", l.Len())
			}
		})
	}
}

func TestWatcherRestart(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			opts, in := testOptions(t, m.polling)
			// Files present before the first start are scored.
			os.WriteFile(filepath.Join(in, "a.png"), pngBytes(t, 20, 20, 1), 0o644)
			os.WriteFile(filepath.Join(in, "b.png"), pngBytes(t, 20, 20, 2), 0o644)
			h := start(t, opts, decodeScorer)
			h.waitFor(2)
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
			// Arrivals while stopped, and one file rewritten with new content.
			os.WriteFile(filepath.Join(in, "c.png"), pngBytes(t, 20, 20, 3), 0o644)
			os.WriteFile(filepath.Join(in, "d.png"), pngBytes(t, 20, 20, 4), 0o644)
			later := time.Now().Add(time.Minute)
			os.WriteFile(filepath.Join(in, "b.png"), pngBytes(t, 21, 20, 5), 0o644)
			os.Chtimes(filepath.Join(in, "b.png"), later, later)

			h2 := start(t, opts, decodeScorer)
			h2.waitFor(3)
			quiet(opts)
			if got := h2.names(); strings.Join(got, ",") != "b.png,c.png,d.png" {
				t.Errorf("after restart scored %v, want the rewritten b and the new c, d", got)
			}
			if st := h2.w.Stats(); st.Skipped != 1 || st.Scored != 3 {
				t.Errorf("stats after restart = %+v, want 1 skipped (a), 3 scored", st)
			}
		})
	}
}

func TestWatcherSinkErrorStopsWithoutRecording(t *testing.T) {
	opts, in := testOptions(t, false)
	os.WriteFile(filepath.Join(in, "a.png"), pngBytes(t, 20, 20, 1), 0o644)
	w, err := New(opts, decodeScorer, func(ctx context.Context, v verdict.Verdict) error {
		return errors.New("disk full")
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "a.png") {
		t.Fatalf("Run = %v, want the sink error naming a.png", err)
	}
	// Not recorded: the next start delivers it.
	h := start(t, opts, decodeScorer)
	h.waitFor(1)
	if got := h.names(); len(got) != 1 || got[0] != "a.png" {
		t.Errorf("after the failed delivery, restart scored %v", got)
	}
}

func TestWatcherCancelDuringScoring(t *testing.T) {
	opts, in := testOptions(t, false)
	os.WriteFile(filepath.Join(in, "a.png"), pngBytes(t, 20, 20, 1), 0o644)
	started := make(chan struct{})
	w, _ := New(opts, func(ctx context.Context, path string) (verdict.Verdict, error) {
		close(started)
		<-ctx.Done()
		return verdict.Verdict{}, ctx.Err()
	}, func(context.Context, verdict.Verdict) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st := w.Stats(); st.Failed != 0 {
		t.Errorf("a cancelled scoring counted as failed: %+v", st)
	}
	l, err := OpenLedger(opts.Ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Len() != 0 {
		t.Errorf("a cancelled scoring was recorded in the ledger")
	}
}

func TestNewAndRunErrors(t *testing.T) {
	score := decodeScorer
	sink := func(context.Context, verdict.Verdict) error { return nil }
	if _, err := New(Options{Dir: "x"}, score, sink); err == nil {
		t.Error("New without a ledger path succeeded")
	}
	if _, err := New(Options{Dir: "x", Ledger: "y"}, nil, sink); err == nil {
		t.Error("New without a scorer succeeded")
	}
	missing := filepath.Join(t.TempDir(), "missing")
	w, _ := New(Options{Dir: missing, Ledger: filepath.Join(t.TempDir(), "l")}, score, sink)
	if err := w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Run on a missing folder = %v, want an error naming it", err)
	}
	// A ledger that is not one is reported, not overwritten.
	opts, _ := testOptions(t, false)
	os.WriteFile(opts.Ledger, []byte("{\"name\":\"a.png\"}\nnot json\n"), 0o644)
	w, _ = New(opts, score, sink)
	if err := w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Run with a damaged ledger = %v, want an error naming line 2", err)
	}
}

func TestLedgerSurvivesCutLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(100, 5)
	if err := l.Record(Entry{Name: "a.png", Size: 10, ModTimeNS: mt.UnixNano(), Status: StatusScored}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprint(f, `{"name":"b.png","si`) // a crash mid-line
	f.Close()
	l, err = OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !l.Done("a.png", 10, mt) || l.Done("a.png", 11, mt) || l.Done("b.png", 0, time.Time{}) || l.Len() != 1 {
		t.Errorf("ledger after a cut line: len %d", l.Len())
	}
	if err := l.Record(Entry{Name: "b.png", Size: 1, Status: StatusBad}); err != nil {
		t.Fatal(err)
	}
	if !l.Done("b.png", 1, time.Unix(0, 0)) {
		t.Error("b.png not done after Record")
	}
}

func TestWatcherFallsBackToPolling(t *testing.T) {
	t.Run("notifications do not start", func(t *testing.T) {
		opts, in := testOptions(t, false)
		w, _ := New(opts, decodeScorer, func(context.Context, verdict.Verdict) error { return nil })
		w.notify = func(string) (*fsnotify.Watcher, error) { return nil, errors.New("too many open files") }
		got := make(chan string, 4)
		w.sink = func(_ context.Context, v verdict.Verdict) error { got <- filepath.Base(v.Path); return nil }
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go w.Run(ctx)
		for w.Stats().Mode == "" {
			time.Sleep(time.Millisecond)
		}
		if m := w.Stats().Mode; m != ModePolling {
			t.Fatalf("mode %s without notifications, want polling", m)
		}
		os.WriteFile(filepath.Join(in, "a.png"), pngBytes(t, 20, 20, 9), 0o644)
		select {
		case n := <-got:
			if n != "a.png" {
				t.Errorf("scored %s", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing scored in polling mode")
		}
	})
	t.Run("notifications stop while running", func(t *testing.T) {
		opts, in := testOptions(t, false)
		w, _ := New(opts, decodeScorer, func(context.Context, verdict.Verdict) error { return nil })
		started := make(chan *fsnotify.Watcher, 1)
		w.notify = func(dir string) (*fsnotify.Watcher, error) {
			fsw, err := startNotify(dir)
			started <- fsw
			return fsw, err
		}
		got := make(chan string, 4)
		w.sink = func(_ context.Context, v verdict.Verdict) error { got <- filepath.Base(v.Path); return nil }
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go w.Run(ctx)
		fsw := <-started
		for w.Stats().Mode != ModeNotify {
			time.Sleep(time.Millisecond)
		}
		fsw.Close() // as when the watch breaks (e.g. the folder's file system is unmounted and back)
		deadline := time.Now().Add(5 * time.Second)
		for w.Stats().Mode != ModePolling {
			if time.Now().After(deadline) {
				t.Fatal("still in fsnotify mode after notifications stopped")
			}
			time.Sleep(time.Millisecond)
		}
		os.WriteFile(filepath.Join(in, "b.png"), pngBytes(t, 20, 20, 9), 0o644)
		select {
		case n := <-got:
			if n != "b.png" {
				t.Errorf("scored %s", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing scored after the fallback")
		}
	})
}

func TestLedgerHeldByOneWatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLedger(path); err == nil || !strings.Contains(err.Error(), "in use by another watcher") {
		t.Errorf("second OpenLedger = %v, want in use", err)
	}
	l.Close()
	l2, err := OpenLedger(path)
	if err != nil {
		t.Fatalf("OpenLedger after Close: %v", err)
	}
	l2.Close()
}

// A recursive watch scores files in subfolders that existed at start and in
// ones created later (a camera's dated folders), written slowly or renamed
// in, each once, named by their path relative to the watched folder; hidden
// subfolders are skipped, and without Recursive subfolders are ignored.
func TestRecursiveWatch(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			opts, in := testOptions(t, m.polling)
			opts.Recursive = true
			img := pngBytes(t, 16, 16, 200)
			os.MkdirAll(filepath.Join(in, "2026-11-29", "cam1"), 0o755)
			os.WriteFile(filepath.Join(in, "2026-11-29", "cam1", "early.png"), img, 0o644)
			os.MkdirAll(filepath.Join(in, ".staging"), 0o755)
			os.WriteFile(filepath.Join(in, ".staging", "hidden.png"), img, 0o644)
			h := start(t, opts, decodeScorer)
			h.waitFor(1)

			day := filepath.Join(in, "2026-11-30", "cam2")
			if err := os.MkdirAll(day, 0o755); err != nil {
				t.Fatal(err)
			}
			writeSlowly(t, filepath.Join(day, "slow.png"), img, 4, 30*time.Millisecond)
			tmp := filepath.Join(in, ".staging", "renamed.png")
			os.WriteFile(tmp, img, 0o644)
			if err := os.Rename(tmp, filepath.Join(day, "renamed.png")); err != nil {
				t.Fatal(err)
			}
			h.waitFor(3)
			quiet(opts)
			h.mu.Lock()
			var rel []string
			for _, v := range h.verdicts {
				r, _ := filepath.Rel(in, v.Path)
				rel = append(rel, filepath.ToSlash(r))
			}
			h.mu.Unlock()
			sort.Strings(rel)
			want := []string{"2026-11-29/cam1/early.png", "2026-11-30/cam2/renamed.png", "2026-11-30/cam2/slow.png"}
			if !slices.Equal(rel, want) {
				t.Fatalf("scored %v, want %v", rel, want)
			}
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}

			// A restart scores nothing again: the ledger names files by their
			// relative path.
			h = start(t, opts, decodeScorer)
			quiet(opts)
			if st := h.w.Stats(); st.Scored != 0 || st.Skipped != 3 {
				t.Fatalf("after restart: %+v, want 0 scored and 3 skipped", st)
			}
		})
	}
	t.Run("not recursive", func(t *testing.T) {
		opts, in := testOptions(t, false)
		os.MkdirAll(filepath.Join(in, "sub"), 0o755)
		os.WriteFile(filepath.Join(in, "sub", "a.png"), pngBytes(t, 8, 8, 10), 0o644)
		os.WriteFile(filepath.Join(in, "top.png"), pngBytes(t, 8, 8, 10), 0o644)
		h := start(t, opts, decodeScorer)
		h.waitFor(1)
		quiet(opts)
		if got := h.names(); !slices.Equal(got, []string{"top.png"}) {
			t.Fatalf("scored %v, want only top.png", got)
		}
	})
}

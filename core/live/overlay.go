package live

import (
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/verdict"
)

// OverlayPath is where the overlay of v goes: out/overlays/YYYY-MM-DD/
// <image name>_overlay.png, dated by v.ScoredAt (now when unset).
func OverlayPath(out string, v *verdict.Verdict) string {
	at := v.ScoredAt
	if at.IsZero() {
		at = time.Now()
	}
	base := filepath.Base(v.Path)
	return filepath.Join(out, "overlays", at.Local().Format("2006-01-02"), strings.TrimSuffix(base, filepath.Ext(base))+"_overlay.png")
}

// SaveOverlay writes the heatmap overlay of a failed image to
// OverlayPath(out, v) and sets v.Overlay to it. The map (mapW×mapH) is
// drawn as in the inspection report (heatmap.Render at the verdict's score
// and threshold; the colour ramp ends at top threshold units). The file appears
// complete or not at all: it is written under a temporary name and renamed.
func SaveOverlay(out string, v *verdict.Verdict, img image.Image, heat []float32, mapW, mapH int, top float64) error {
	path := OverlayPath(out, v)
	if err := writeOverlay(path, img, heat, mapW, mapH, v.Score, v.Threshold, top); err != nil {
		return err
	}
	v.Overlay = path
	return nil
}

func writeOverlay(path string, img image.Image, heat []float32, mapW, mapH int, score, threshold, top float64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("live: create %s: %w", filepath.Dir(path), err)
	}
	ov := heatmap.Render(img, heat, mapW, mapH, score, heatmap.Style{Threshold: threshold, Top: top, Opacity: 0.5, Outline: true})
	tmp := path + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("live: %w", err)
	}
	// Fastest compression: default compression of a 900×900 overlay takes
	// longer than scoring the image.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	err = enc.Encode(f, ov)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("live: write overlay %s: %w", path, err)
	}
	return nil
}

// OverlayWriter writes fail overlays in the background, so that a fail's
// verdict is published as soon as it is scored (encoding a 900×900 overlay
// took ~100 ms, a third of the line's latency budget). The verdict carries
// the overlay's path at once; the file appears there complete shortly after
// (written under a temporary name and renamed). Close waits for the queue.
type OverlayWriter struct {
	out    string
	log    *slog.Logger
	jobs   chan overlayJob
	done   sync.WaitGroup
	mu     sync.Mutex
	failed int
	first  error
}

type overlayJob struct {
	path   string
	img    image.Image
	heat   []float32
	mw, mh int
	// score, threshold and top as heatmap.Render takes them.
	score, threshold, top float64
}

// NewOverlayWriter starts a writer of overlays under out. Up to queue
// overlays wait to be written; Queue blocks when that many wait (the line
// slows down rather than losing overlays).
func NewOverlayWriter(out string, queue int, log *slog.Logger) *OverlayWriter {
	if log == nil {
		log = slog.Default()
	}
	w := &OverlayWriter{out: out, log: log, jobs: make(chan overlayJob, max(queue, 1))}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for j := range w.jobs {
			if err := writeOverlay(j.path, j.img, j.heat, j.mw, j.mh, j.score, j.threshold, j.top); err != nil {
				w.log.Warn("live: overlay not written", "path", j.path, "err", err)
				w.mu.Lock()
				w.failed++
				if w.first == nil {
					w.first = err
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// Queue sets v.Overlay to the overlay's path and queues it for writing.
// heat is kept until it is written: the caller must not change it.
func (w *OverlayWriter) Queue(v *verdict.Verdict, img image.Image, heat []float32, mapW, mapH int, top float64) {
	v.Overlay = OverlayPath(w.out, v)
	w.jobs <- overlayJob{path: v.Overlay, img: img, heat: heat, mw: mapW, mh: mapH, score: v.Score, threshold: v.Threshold, top: top}
}

// Close writes what is queued and stops the writer. It returns an error
// naming how many overlays could not be written, and the first reason.
func (w *OverlayWriter) Close() error {
	close(w.jobs)
	w.done.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed > 0 {
		return fmt.Errorf("live: %d overlay(s) not written, first: %w", w.failed, w.first)
	}
	return nil
}

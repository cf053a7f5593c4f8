package ui

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/software"

	"github.com/dmad/workstation/core/backbone"
)

// Screenshots steps through every screen, prepares it with the open
// project's data (an image with a mask selected, a training run caught
// half-way and then cancelled, the latest run shown, the demo's test folder
// scored on Inspect and fed to Live, the backbone import offer) and saves
// one PNG per screen into dir, named 1-start.png, 2-data.png, .... Call it
// from a goroutine other than the UI thread, after RunDemo or with a
// project open; it returns the files written.
func (w *Workstation) Screenshots(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("screenshots: create %s: %w", dir, err)
	}
	var files []string
	settle := func() {
		w.Wait()
		time.Sleep(400 * time.Millisecond) // let the driver paint
		w.Wait()
	}
	w.shotReady = make(chan struct{}, 1)
	shoot := func(file string, show func(), signals bool) error {
		fyne.DoAndWait(show)
		if signals {
			// The step runs work that lasts (a training, live
			// inspection): wait for its signal, not for the work.
			select {
			case <-w.shotReady:
			case <-time.After(4 * time.Minute):
			}
			time.Sleep(400 * time.Millisecond)
		} else {
			settle()
		}
		var img image.Image
		fyne.DoAndWait(func() { img = w.capture() })
		path := filepath.Join(dir, file)
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("screenshots: %w", err)
		}
		if err := png.Encode(f, img); err != nil {
			f.Close()
			return fmt.Errorf("screenshots: encode %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("screenshots: close %s: %w", path, err)
		}
		files = append(files, path)
		return nil
	}
	screen := func(name string, prepare func()) func() {
		return func() {
			w.ShowScreen(name)
			if prepare != nil {
				prepare()
			}
		}
	}
	// These steps start work that lasts and signal when to shoot.
	signals := map[string]bool{"4-train.png": true, "9-live.png": true}
	steps := []struct {
		file string
		show func()
	}{
		{"1-start.png", screen(ScreenStart, nil)},
		{"2-data.png", screen(ScreenData, func() {
			for i, r := range w.data.filtered {
				if r.HasMask {
					w.data.grid.Select(i)
					w.data.grid.ScrollTo(i)
					break
				}
			}
		})},
		{"3-annotate.png", screen(ScreenAnnotate, func() {
			for i, r := range w.annotate.images {
				if r.HasMask {
					w.annotate.list.Select(i)
					break
				}
			}
		})},
		{"4-train.png", screen(ScreenTrain, w.trainHalfway)},
		{"5-results.png", screen(ScreenResults, func() {
			w.train.cancelRun() // the training of the Train shot
			w.results.tabs.SelectIndex(0)
			if len(w.results.browser.sorted) > 0 {
				w.results.browser.list.Select(0)
			}
		})},
		{"6-results-metrics.png", screen(ScreenResults, func() { w.results.tabs.SelectIndex(1) })},
		{"7-results-curves.png", screen(ScreenResults, func() { w.results.tabs.SelectIndex(2) })},
		{"8-inspect.png", screen(ScreenInspect, func() {
			if w.demoData != "" && w.inspect.run == nil {
				if entries, _ := os.ReadDir(w.demoData); len(entries) > 0 {
					w.inspect.setDir(filepath.Join(w.demoData, entries[0].Name(), "test"))
					w.inspect.score()
				}
			}
		})},
		{"8-inspect.png", func() {
			if len(w.inspect.browser.sorted) > 0 {
				w.inspect.browser.list.Select(0)
			}
		}},
		{"9-live.png", screen(ScreenLive, w.liveDemo)},
		{"10-backbone.png", w.backboneOffer},
	}
	for i, s := range steps {
		if w.project == nil && i > 0 {
			break
		}
		if err := shoot(s.file, s.show, signals[s.file]); err != nil {
			return files, err
		}
	}
	fyne.DoAndWait(func() {
		for top := w.win.Canvas().Overlays().Top(); top != nil; top = w.win.Canvas().Overlays().Top() {
			w.win.Canvas().Overlays().Remove(top)
		}
		w.train.cancelRun()
		w.live.stop()
	})
	w.Wait()
	return slices.Compact(files), nil
}

// trainHalfway starts a training run on the Train screen and
// returns (on the UI thread, after the caller's settle) once the first
// epoch's loss is plotted, so the shot shows a run in progress; the
// run is cancelled after the shot by the next step.
func (w *Workstation) trainHalfway() {
	v := w.train
	if v.running || w.deps.Engine == nil {
		w.shotReady <- struct{}{}
		return
	}
	v.epochs.SetText("8") // a second model fine-tunes for a quarter of them: 2
	v.startTraining()
	go func() {
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			n := 0
			running := true
			fyne.DoAndWait(func() { n, running = len(v.losses), v.running })
			if n >= 1 || !running {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		w.shotReady <- struct{}{}
	}()
}

// liveDemo watches a new folder beside the demo data and copies a few of
// the demo's test images into it, good and defective.
func (w *Workstation) liveDemo() {
	if w.demoData == "" || w.deps.Live == nil {
		w.shotReady <- struct{}{}
		return
	}
	in := filepath.Join(filepath.Dir(w.demoData), "live-in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		w.shotReady <- struct{}{}
		return
	}
	w.live.setInput(in)
	w.live.start()
	var srcs []string
	cats, _ := os.ReadDir(w.demoData)
	for _, c := range cats {
		for _, kind := range []string{"good", ""} {
			dirs, _ := filepath.Glob(filepath.Join(w.demoData, c.Name(), "test", "*"))
			for _, d := range dirs {
				if (kind == "good") != (filepath.Base(d) == "good") {
					continue
				}
				if imgs, _ := filepath.Glob(filepath.Join(d, "*.png")); len(imgs) > 0 {
					srcs = append(srcs, imgs[0])
					break
				}
			}
		}
	}
	go func() {
		time.Sleep(time.Second) // the watcher is up
		for i, src := range srcs {
			if b, err := os.ReadFile(src); err == nil {
				_ = os.WriteFile(filepath.Join(in, fmt.Sprintf("%02d-%s", i, filepath.Base(src))), b, 0o644)
			}
		}
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			var done int64
			fyne.DoAndWait(func() {
				if b := w.live.board; b != nil {
					done = b.Snapshot().Total
				}
			})
			if done >= int64(len(srcs)) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		w.shotReady <- struct{}{}
	}()
}

// backboneOffer shows the dialog a user meets when the backbone of new
// projects is not installed, with the store's real error for a backbone
// that is not there.
func (w *Workstation) backboneOffer() {
	w.live.stop()
	bi, ok := w.deps.Engine.(BackboneImporter)
	if !ok {
		return
	}
	_, _, err := backbone.Resolve("resnet18_imagenet")
	if err == nil {
		err = errors.New("backbone resnet18_imagenet is not installed")
	}
	w.offerBackboneImport(bi, err, nil)
}

// capture returns the window's pixels. Some GL stacks (Xvfb with Mesa) read
// back an empty front buffer; then the content and the dialogs over it are
// painted with Fyne's software painter instead (at scale 1).
func (w *Workstation) capture() image.Image {
	if img := w.win.Canvas().Capture(); !blank(img) {
		return img
	}
	return w.softwareCapture()
}

// softwareCapture paints the window's content and dialogs with Fyne's
// software painter.
func (w *Workstation) softwareCapture() image.Image {
	content := w.win.Content()
	size := w.win.Canvas().Size()
	overlays := w.win.Canvas().Overlays().List()
	c := software.NewCanvas()
	c.SetPadded(false)
	c.SetContent(content)
	c.Resize(size)
	for _, o := range overlays {
		c.Overlays().Add(o)
	}
	img := c.Capture()
	for _, o := range overlays {
		c.Overlays().Remove(o)
	}
	w.win.SetContent(content)
	for _, o := range overlays {
		o.Refresh()
	}
	return img
}

// blank reports whether every sampled pixel of img is the same.
func blank(img image.Image) bool {
	if img == nil {
		return true
	}
	b := img.Bounds()
	r0, g0, b0, a0 := img.At(b.Min.X, b.Min.Y).RGBA()
	for y := b.Min.Y; y < b.Max.Y; y += 5 {
		for x := b.Min.X; x < b.Max.X; x += 5 {
			if r, g, bl, a := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 || a != a0 {
				return false
			}
		}
	}
	return true
}

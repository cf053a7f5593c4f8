package ui

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/software"
)

// Screenshots steps through every screen, prepares it with the open
// project's data (first image selected, latest run shown, the demo's test
// folder scored on Inspect) and saves one PNG per screen into dir, named
// 1-start.png, 2-data.png, .... Call it from a goroutine other than the UI
// thread, after RunDemo or with a project open; it returns the files written.
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
	shoot := func(file string, show func()) error {
		fyne.DoAndWait(show)
		settle()
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
	steps := []struct {
		file string
		show func()
	}{
		{"1-start.png", screen(ScreenStart, nil)},
		{"2-data.png", screen(ScreenData, func() {
			if n := len(w.data.filtered); n > 0 {
				w.data.grid.Select(n - 1)
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
		{"4-train.png", screen(ScreenTrain, nil)},
		{"5-results.png", screen(ScreenResults, func() {
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
	}
	for i, s := range steps {
		if w.project == nil && i > 0 {
			break
		}
		if err := shoot(s.file, s.show); err != nil {
			return files, err
		}
	}
	return slices.Compact(files), nil
}

// capture returns the window's pixels. Some GL stacks (Xvfb with Mesa) read
// back an empty front buffer; then the content is painted with Fyne's
// software painter instead (without dialogs, at scale 1).
func (w *Workstation) capture() image.Image {
	img := w.win.Canvas().Capture()
	if !blank(img) {
		return img
	}
	content := w.win.Content()
	size := w.win.Canvas().Size()
	c := software.NewCanvas()
	c.SetPadded(false)
	c.SetContent(content)
	c.Resize(size)
	img = c.Capture()
	w.win.SetContent(content)
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

package ui

import (
	"errors"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
)

// TestSoftwareCaptureShowsDialogs: the screenshot fallback paints the
// dialogs over the window and leaves them on the window.
func TestSoftwareCaptureShowsDialogs(t *testing.T) {
	w := New(test.NewTempApp(t), Deps{})
	defer w.Close()
	w.win.Resize(fyne.NewSize(1200, 800))
	before := w.softwareCapture()
	w.showError(errors.New("backbone resnet18 is not installed"), "import it")
	after := w.softwareCapture()
	if w.win.Canvas().Overlays().Top() == nil {
		t.Fatal("the dialog is no longer on the window")
	}
	changed := 0
	b := after.Bounds()
	for y := b.Dy() * 2 / 5; y < b.Dy()*3/5; y++ {
		for x := b.Dx() * 2 / 5; x < b.Dx()*3/5; x++ {
			if before.At(x, y) != after.At(x, y) {
				changed++
			}
		}
	}
	if area := b.Dx() * b.Dy() / 25; changed < area/2 {
		t.Errorf("%d of %d pixels in the window's centre changed: the dialog is not painted", changed, area)
	}
}

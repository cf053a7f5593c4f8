package ui_test

import (
	"image/png"
	"os"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/dmad/workstation/core/review"
	"github.com/dmad/workstation/ui"
	"github.com/dmad/workstation/ui/uitest"
)

func TestTmpShots(t *testing.T) {
	h, p, _ := reviewHarness(t)
	ws := h.ws
	p.AddModel(ui.ModelInfo{ID: "m2"})
	p.SetThresholds("m2", review.Thresholds{Global: 0.3})
	test.Tap(ws.ResultsEvaluateButton())
	ws.Wait()
	ws.Window().Resize(fyne.NewSize(1300, 800))
	ws.ShowCompareTab()
	ws.Wait()
	f, _ := os.Create("/tmp/shots/9-compare.png")
	png.Encode(f, ws.Capture())
	f.Close()
	_ = uitest.DefaultThreshold
}

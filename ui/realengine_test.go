package ui_test

import (
	"errors"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/dmad/workstation/core/encoder/encodertest"
	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/project"
	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/storage"
	"github.com/dmad/workstation/ui"
	"github.com/dmad/workstation/ui/bind"
)

// realHarness is the application on the real engine (core/project, ONNX
// Runtime, storage) with the tiny test backbone and small fit settings.
func realHarness(t *testing.T) (*ui.Workstation, *bind.Engine) {
	t.Helper()
	a := env(t)
	bb, err := encodertest.Write(t.TempDir(), 5)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := ort.Open(ort.Options{Threads: 2, Device: ort.DeviceCPU})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	eng, err := bind.NewEngine(bind.Options{Runtime: rt, Backbone: bb, TrainPatches: 3000, BatchSize: 512, OODImages: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	deps := eng.Deps()
	deps.Recent, deps.DataDir = &memRecent{}, t.TempDir()
	ws := ui.New(a, deps)
	ws.Window().Resize(fyne.NewSize(1200, 800))
	t.Cleanup(ws.Close)
	return ws, eng
}

// TestRealEngineWorkflow drives the whole workflow through the views on the
// real engine: create, import, paint a mask and mark it seen, train, evaluate,
// move the threshold, score a batch and export its report.
func TestRealEngineWorkflow(t *testing.T) {
	ws, eng := realHarness(t)
	data := filepath.Join(t.TempDir(), "data")
	if err := synth.WriteDataset(data, synth.DatasetOptions{Categories: 2, TrainPerCategory: 6, TestGoodPerCategory: 3,
		TestDefectPerCategory: 4, Size: 64, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "line3.dmad")
	if err := ws.CreateProject(path, "Line 3"); err != nil {
		t.Fatal(err)
	}
	p := ws.Project()
	if !strings.Contains(ws.Window().Title(), "Line 3") {
		t.Errorf("title %q", ws.Window().Title())
	}
	// While the application holds the project, another open is refused.
	if _, err := eng.OpenProject(path); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("second open of a held project: %v, want ErrLocked", err)
	}

	ws.ImportFolder(data)
	ws.Wait()
	if n := ws.DataShown(); n != 26 {
		t.Fatalf("gallery shows %d images, want 2×(6+3+4)", n)
	}
	imgs, err := p.Images()
	if err != nil {
		t.Fatal(err)
	}
	var defect ui.ImageRecord
	for _, r := range imgs {
		if r.Label == ui.LabelDefect && r.HasMask {
			defect = r
			break
		}
	}
	if defect.ID == "" {
		t.Fatal("no defect with a ground-truth mask was imported")
	}

	// Replace the ground truth by a painted mask: a stroke through the
	// defect's centre.
	gt, err := p.Mask(defect.ID)
	if err != nil {
		t.Fatal(err)
	}
	cx, cy := centre(gt)
	if err := p.SaveMask(defect.ID, nil); err != nil {
		t.Fatal(err)
	}
	ws.ShowScreen(ui.ScreenAnnotate)
	ws.AnnotateSelect(defect.ID)
	ws.Wait()
	ed := ws.AnnotateEditor()
	if ed.Mask() == nil || ed.Mask().Bounds().Dx() != 64 || count(ed.Mask()) != 0 {
		t.Fatal("editor did not open the 64×64 image without a mask")
	}
	win := test.NewTempWindow(t, ed)
	win.SetPadded(false)
	win.Resize(fyne.NewSize(128, 128)) // 2 units per pixel
	ed.SetBrushSize(4)
	x0, x1 := float32(max(cx-6, 1)), float32(min(cx+6, 62))
	drag(ed, fyne.NewPos(2*x0, float32(2*cy)), fyne.NewPos(2*x1, float32(2*cy)), 8)
	if err := ws.AnnotateSave(); err != nil {
		t.Fatal(err)
	}
	saved, err := p.Mask(defect.ID)
	if err != nil {
		t.Fatal(err)
	}
	if saved.GrayAt(cx, cy).Y != 255 || count(saved) < 12 {
		t.Fatalf("saved mask: centre (%d, %d) = %d, %d pixels", cx, cy, saved.GrayAt(cx, cy).Y, count(saved))
	}
	ws.AnnotateSeen().SetChecked(true)
	imgs, _ = p.Images()
	seen := 0
	for _, r := range imgs {
		if r.SeenAnomaly {
			seen++
			if r.ID != defect.ID || !r.HasMask {
				t.Errorf("unexpected seen anomaly %+v", r)
			}
		}
	}
	if seen != 1 {
		t.Fatalf("%d seen anomalies, want 1", seen)
	}

	// Train semi-supervised, 2 epochs.
	ws.ShowScreen(ui.ScreenTrain)
	epochs, start, _ := ws.TrainForm()
	epochs.SetText("2")
	test.Tap(start)
	ws.Wait()
	stage, result, losses := ws.TrainStatus()
	if stage != "Stage: done" || !strings.Contains(result, "Model v1 saved: semi-supervised, 2 categories, 1 seen anomalies") || losses != 2 {
		t.Fatalf("after training: %q %q, %d loss points", stage, result, losses)
	}
	if top := ws.Window().Canvas().Overlays().Top(); top != nil {
		t.Fatalf("a dialog is open after training:\n%s", test.RenderObjectToMarkup(top))
	}
	models, err := p.Models()
	if err != nil || len(models) != 1 || models[0].ID != "1" || models[0].Epochs != 2 || models[0].SeenAnomalies != 1 ||
		models[0].Regime != ui.SemiSupervised || len(models[0].Categories) != 2 {
		t.Fatalf("models %+v, %v", models, err)
	}

	// Evaluate: 2×(3+4) test images less the seen anomaly.
	test.Tap(ws.TrainEvaluate())
	ws.Wait()
	if ws.CurrentScreen() != ui.ScreenResults {
		t.Errorf("screen %q after Evaluate", ws.CurrentScreen())
	}
	runs, err := p.Runs()
	if err != nil || len(runs) != 1 || len(runs[0].Images) != 13 {
		t.Fatalf("runs: %d, %v", len(runs), err)
	}
	run := runs[0]
	if rows := ws.ResultsMetricRows(); len(rows) != 3 || rows[2][0] != "mean" {
		t.Errorf("metric rows %v", rows)
	}
	for c, m := range run.PerCategory {
		if m.ImageAUROC < 0 || m.ImageAUROC > 1 || m.PixelAUROC <= 0 || m.PixelAUROC > 1 {
			t.Errorf("category %s metrics out of range: %+v", c, m)
		}
	}
	for _, s := range run.Images {
		if s.ImageID == "" || s.MapW != 224 || len(s.Map) != 224*224 {
			t.Fatalf("scored image %s: id %q, map %d×%d", s.Path, s.ImageID, s.MapW, s.MapH)
		}
	}
	if n := ws.ResultsCurvesDrawn(); n != 4 {
		t.Errorf("%d of 4 curves drawn", n)
	}
	// The slider starts exactly at the model's threshold; moving it to each
	// score fails exactly the images scoring at or above it.
	slider := ws.ResultsThreshold()
	if slider.Value != run.Threshold {
		t.Errorf("slider at %v, model threshold %v", slider.Value, run.Threshold)
	}
	for _, s := range run.Images {
		slider.SetValue(s.Score)
		want := 0
		for _, o := range run.Images {
			if o.Score >= slider.Value {
				want++
			}
		}
		pass, fail := ws.ResultsCounts()
		if fail != want || pass+fail != 13 {
			t.Errorf("threshold %.4f: %d fail / %d pass, want %d fail", slider.Value, fail, pass, want)
		}
	}
	slider.SetValue(slider.Max)
	if _, fail := ws.ResultsCounts(); fail != 0 {
		t.Errorf("threshold at maximum fails %d images", fail)
	}
	if th, _ := p.(ui.Reviewer).Thresholds(run.ModelID); th.Global != slider.Max || th.For("tile") != slider.Max {
		t.Errorf("threshold not saved with the model: %+v, slider at %v", th, slider.Max)
	}
	ws.ResultsSelect(0)
	ws.Wait()

	// Keyboard review: accept the first image, reject the second; then a
	// threshold typed for the tile category only.
	rb := ws.ResultsReview()
	global := slider.Value
	ws.TypeKey(fyne.KeyHome)
	ws.TypeKey(fyne.KeyA)
	ws.TypeKey(fyne.KeyR)
	accepted, rejected := ui.OverrideKey(rb.Shown()[0]), ui.OverrideKey(rb.Shown()[1])
	rb.Scope().SetSelected("tile")
	entry := rb.ThresholdEntry()
	entry.SetText("")
	test.Type(entry, "0.4321")
	entry.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	if th := rb.Thresholds(); th.For("tile") != 0.4321 || th.Global != global {
		t.Errorf("thresholds after typing for tile: %+v", th)
	}
	rb.Scope().SetSelected("every category")

	// Score one category folder as a batch and export its report.
	ws.ShowScreen(ui.ScreenInspect)
	ws.InspectScore(filepath.Join(data, "tile"))
	ws.Wait()
	pass, fail := ws.InspectCounts()
	if pass+fail != 7 {
		t.Fatalf("inspect scored %d images, want 7", pass+fail)
	}
	// One model, one set of thresholds, one number on both screens.
	if ir := ws.InspectReview(); !ir.Thresholds().Equal(rb.Thresholds()) || ir.ThresholdText() != rb.ThresholdText() {
		t.Errorf("Inspect decides at %+v (%s), Results at %+v (%s)", ir.Thresholds(), ir.ThresholdText(), rb.Thresholds(), rb.ThresholdText())
	}
	out := filepath.Join(t.TempDir(), "report")
	ws.InspectExport(out)
	ws.Wait()
	for _, f := range []string{"scores.csv", "report.html", "roc.png", "pr.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("report file %s: %v", f, err)
		}
	}
	if ov, _ := filepath.Glob(filepath.Join(out, "overlays", "*.png")); len(ov) != 7 {
		t.Errorf("%d overlay PNGs, want 7", len(ov))
	}
	rows, err := inspection.ReadScores(filepath.Join(out, "scores.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// The model's verdicts agree with the view; the images reviewed on
	// Results (the batch holds project images) carry their decisions.
	csvFail, csvOverrides := 0, 0
	for _, row := range rows {
		if row.Decision == inspection.Fail {
			csvFail++
		}
		if row.Override != "" {
			csvOverrides++
			if row.OverrideBy != project.ReviewerName() || row.OverrideAt == "" {
				t.Errorf("scores.csv override %+v", row)
			}
		}
	}
	if csvFail != fail {
		t.Errorf("csv has %d fail rows, the view shows %d", csvFail, fail)
	}
	want := 0
	for _, s := range ws.InspectReview().Shown() {
		if k := ui.OverrideKey(s); k == accepted || k == rejected {
			want++
		}
	}
	if csvOverrides != want {
		t.Errorf("scores.csv carries %d overrides, the batch holds %d reviewed images", csvOverrides, want)
	}

	// Everything is in the file: reopened elsewhere, the model and run are there.
	ws.Close()
	q, err := eng.OpenProject(path)
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := q.Models(); len(ms) != 1 || ms[0].Epochs != 2 {
		t.Errorf("reopened models %+v", ms)
	}
	if rs, _ := q.Runs(); len(rs) != 1 || len(rs[0].Images) != 13 || rs[0].Images[0].MapW != 64 {
		t.Errorf("reopened runs: %d", len(rs))
	}
	// The reviews and the tile threshold are in the file, under model 1.
	ov, err := q.Overrides(run.ModelID)
	if err != nil || len(ov) != 2 {
		t.Fatalf("reopened overrides %v: %v", ov, err)
	}
	if a, r := ov[accepted], ov[rejected]; !a.Accepted || r.Accepted || a.Who != project.ReviewerName() || r.When.IsZero() {
		t.Errorf("reopened overrides: accepted %+v, rejected %+v", a, r)
	}
	if th, _ := q.Thresholds(run.ModelID); th.For("tile") != 0.4321 {
		t.Errorf("reopened thresholds %+v", th)
	}
	if ms, _ := q.Models(); len(ms) != 1 {
		t.Errorf("editing thresholds made %d model versions", len(ms))
	}
	q.Close()
	// A new window on the file shows them in the gallery.
	deps := eng.Deps()
	deps.Recent, deps.DataDir = &memRecent{}, t.TempDir()
	ws2 := ui.New(fyne.CurrentApp(), deps)
	defer ws2.Close()
	if err := ws2.OpenProject(path); err != nil {
		t.Fatal(err)
	}
	ws2.ShowScreen(ui.ScreenResults)
	rb2 := ws2.ResultsReview()
	if !strings.Contains(rb2.Summary(), "2 reviewed (1 overridden)") || rb2.Thresholds().For("tile") != 0.4321 {
		t.Errorf("reopened gallery: %q, thresholds %+v", rb2.Summary(), rb2.Thresholds())
	}

	// Training again refits model 1 (same normal images and seen anomaly):
	// the Train screen says it fine-tunes, and its epoch count and loss
	// plot are the fine-tune's (1 of the 2 set), not padded to the 2.
	ws2.ShowScreen(ui.ScreenTrain)
	_, start2, _ := ws2.TrainForm()
	test.Tap(start2)
	ws2.Wait()
	stage, result, losses = ws2.TrainStatus()
	if ep := ws2.TrainProgressLabels()[1].Text; stage != "Stage: done" || !strings.Contains(result, "Model v2 saved") ||
		ep != "Fine-tune epoch: 1 / 1" || losses != 1 {
		t.Errorf("after retraining: %q %q %q, %d loss points", stage, ep, result, losses)
	}
}

// centre returns the centre of a mask's bounding box.
func centre(m *image.Gray) (int, int) {
	b := m.Bounds()
	x0, y0, x1, y1 := b.Max.X, b.Max.Y, b.Min.X, b.Min.Y
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if m.GrayAt(x, y).Y > 0 {
				x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			}
		}
	}
	return (x0 + x1) / 2, (y0 + y1) / 2
}

// TestRealEngineLockedProject: a project another holder has open is refused
// with storage's message, and the application keeps no half-open project.
func TestRealEngineLockedProject(t *testing.T) {
	ws, eng := realHarness(t)
	path := filepath.Join(t.TempDir(), "held.dmad")
	held, err := eng.CreateProject(path, "Held")
	if err != nil {
		t.Fatal(err)
	}
	err = ws.OpenProject(path)
	if !errors.Is(err, storage.ErrLocked) || !strings.Contains(err.Error(), "open in another process") {
		t.Fatalf("opening a held project: %v", err)
	}
	if ws.Project() != nil || ws.CurrentScreen() != ui.ScreenStart {
		t.Errorf("after the refused open: project %v, screen %q", ws.Project(), ws.CurrentScreen())
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ws.OpenProject(path); err != nil {
		t.Fatalf("open after release: %v", err)
	}
	if ws.Project().Name() != "Held" {
		t.Errorf("project name %q", ws.Project().Name())
	}
}

// TestRealEngineCancelTraining: Cancel stops the real engine's training and
// stores no model.
func TestRealEngineCancelTraining(t *testing.T) {
	ws, _ := realHarness(t)
	data := filepath.Join(t.TempDir(), "data")
	if err := synth.WriteDataset(data, synth.DatasetOptions{Categories: 1, TrainPerCategory: 4, TestGoodPerCategory: 1,
		TestDefectPerCategory: 1, Size: 48, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := ws.CreateProject(filepath.Join(t.TempDir(), "c.dmad"), "Cancel"); err != nil {
		t.Fatal(err)
	}
	p := ws.Project()
	ws.ImportFolder(data)
	ws.Wait()
	ws.ShowScreen(ui.ScreenTrain)
	epochs, start, cancel := ws.TrainForm()
	epochs.SetText("1000")
	test.Tap(start)
	if cancel.Disabled() {
		t.Fatal("Cancel disabled while training")
	}
	test.Tap(cancel)
	ws.Wait()
	if stage, result, _ := ws.TrainStatus(); stage != "Stage: cancelled" {
		t.Errorf("after cancel: %q %q", stage, result)
	}
	if ms, err := p.Models(); err != nil || len(ms) != 0 {
		t.Errorf("cancelled training stored %d models (%v)", len(ms), err)
	}
}

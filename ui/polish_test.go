package ui_test

import (
	"fmt"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/dmad/workstation/ui"
)

// trainOne trains a 2-epoch model with the fake engine.
func (h *harness) trainOne(t *testing.T) {
	t.Helper()
	h.ws.ShowScreen(ui.ScreenTrain)
	epochs, start, _ := h.ws.TrainForm()
	epochs.SetText("2")
	test.Tap(start)
	h.ws.Wait()
	if stage, result, _ := h.ws.TrainStatus(); stage != "Stage: done" {
		t.Fatalf("training: %q %q", stage, result)
	}
}

// TestHeaderHomeAndProject: every screen has a Home entry back to the start
// screen, and the header always names the project and its model version.
func TestHeaderHomeAndProject(t *testing.T) {
	h := newHarness(t)
	if proj, model := h.ws.HeaderText(); proj != "No project open" || model != "" {
		t.Errorf("header before a project: %q %q", proj, model)
	}
	if h.ws.StartResume().Visible() {
		t.Error("start screen offers to go back to a project when none is open")
	}
	h.project(t)
	proj, model := h.ws.HeaderText()
	if !strings.Contains(proj, "Line 3") || !strings.Contains(proj, "p.dmad") {
		t.Errorf("header project %q, want the name and file", proj)
	}
	if model != "Model: none trained yet" {
		t.Errorf("header model %q before training", model)
	}
	h.ws.ImportFolder(dataset(t))
	h.ws.Wait()
	h.trainOne(t)
	if _, model := h.ws.HeaderText(); !strings.HasPrefix(model, "Model: v1 · trained ") {
		t.Errorf("header model %q after training, want v1", model)
	}
	h.trainOne(t)
	for _, screen := range []string{ui.ScreenData, ui.ScreenAnnotate, ui.ScreenTrain, ui.ScreenResults, ui.ScreenInspect, ui.ScreenLive} {
		h.ws.ShowScreen(screen)
		if got := h.ws.CurrentScreen(); got != screen {
			t.Fatalf("ShowScreen(%s) shows %s", screen, got)
		}
		proj, model := h.ws.HeaderText()
		if !strings.Contains(proj, "Line 3") || !strings.HasPrefix(model, "Model: v2 ") {
			t.Errorf("%s: header %q %q, want the project and model v2", screen, proj, model)
		}
		test.Tap(h.ws.HeaderHome())
		if got := h.ws.CurrentScreen(); got != ui.ScreenStart {
			t.Errorf("Home from %s shows %s, want Start", screen, got)
		}
		if proj, _ := h.ws.HeaderText(); !strings.Contains(proj, "Line 3") {
			t.Errorf("Home from %s: header %q no longer names the open project", screen, proj)
		}
		if r := h.ws.StartResume(); !r.Visible() || !strings.Contains(r.Text, "Line 3") {
			t.Errorf("start screen resume button %q visible %v", r.Text, r.Visible())
		}
	}
	test.Tap(h.ws.StartResume())
	if got := h.ws.CurrentScreen(); got != ui.ScreenData {
		t.Errorf("Back to the project shows %s, want Data", got)
	}
}

// TestMetricsConfusionCounts: the Metrics tab counts TP/FP/TN/FN at the
// gallery's threshold, per category and in total, and lists defect types.
func TestMetricsConfusionCounts(t *testing.T) {
	h := newHarness(t)
	p := h.project(t)
	h.ws.ImportFolder(dataset(t))
	h.ws.Wait()
	h.trainOne(t)
	test.Tap(h.ws.TrainEvaluate())
	h.ws.Wait()
	runs, err := p.Runs()
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %d, %v", len(runs), err)
	}
	h.ws.ShowResultsTab("Metrics")
	slider := h.ws.ResultsThreshold()
	checked := 0
	for _, s := range runs[0].Images {
		slider.SetValue(s.Score)
		thr := slider.Value
		var tp, fp, tn, fn int
		for _, o := range runs[0].Images {
			fail := o.Score >= thr
			switch {
			case o.Label == ui.LabelDefect && fail:
				tp++
			case o.Label == ui.LabelDefect:
				fn++
			case fail:
				fp++
			default:
				tn++
			}
		}
		cats, types := h.ws.MetricsRows()
		if len(cats) != 1 || cats[0][0] != "cup" {
			t.Fatalf("category rows %v, want one row for cup", cats)
		}
		want := []string{"cup", "6", fmt.Sprint(tp), fmt.Sprint(fp), fmt.Sprint(tn), fmt.Sprint(fn)}
		if got := cats[0][:6]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("threshold %.4f: row %v, want %v", thr, got, want)
		}
		if cats[0][6] == "—" || cats[0][6] == "" {
			t.Errorf("image AUROC cell %q, want the run's value", cats[0][6])
		}
		caught, missed := 0, 0
		for _, r := range types {
			var c, m int
			fmt.Sscan(r[3], &c)
			fmt.Sscan(r[4], &m)
			caught, missed = caught+c, missed+m
		}
		if caught != tp || missed != fn {
			t.Errorf("threshold %.4f: defect-type rows %v sum to %d caught / %d missed, want %d / %d", thr, types, caught, missed, tp, fn)
		}
		if sum := h.ws.MetricsSummary(); !strings.Contains(sum, fmt.Sprintf("%d of %d defects caught", tp, tp+fn)) ||
			!strings.Contains(sum, fmt.Sprintf("%d false alarms", fp)) {
			t.Errorf("summary %q", sum)
		}
		checked++
	}
	if checked != 6 {
		t.Errorf("checked %d thresholds, want 6", checked)
	}
	if _, types := h.ws.MetricsRows(); len(types) == 0 || types[0][1] == "" || types[0][1] == "unnamed" {
		t.Errorf("defect-type rows %v do not name the types", types)
	}
}

// TestTrainProgressKeepsItsSize: a long stage name does not widen the Train
// screen (the window would grow with it).
func TestTrainProgressKeepsItsSize(t *testing.T) {
	h := newHarness(t)
	h.project(t)
	h.ws.ShowScreen(ui.ScreenTrain)
	before := h.ws.TrainContent().MinSize()
	h.ws.ObserveTraining(ui.Progress{Stage: strings.Repeat("building the normal memory ", 20), Step: 123456, Steps: 9999999,
		Fraction: 0.3})
	if l := h.ws.TrainProgressLabels()[0]; !strings.HasPrefix(l.Text, "Stage: building the normal memory") {
		t.Fatalf("stage label %q, want the event's stage", l.Text)
	}
	if after := h.ws.TrainContent().MinSize(); after.Width > before.Width {
		t.Errorf("Train screen min width grew from %.0f to %.0f with a long stage name", before.Width, after.Width)
	}
	h.ws.ObserveTraining(ui.Progress{Stage: "training the scorer", Epoch: 999999, Epochs: 999999, Fraction: 0.5})
	if after := h.ws.TrainContent().MinSize(); after.Width > before.Width {
		t.Errorf("Train screen min width grew from %.0f to %.0f with a long epoch count", before.Width, after.Width)
	}
	if l := h.ws.TrainProgressLabels()[1]; l.Text != "Epoch: 999999 / 999999" {
		t.Errorf("epoch label %q", l.Text)
	}
	// A retraining's short fine-tune says so, instead of looking like a
	// first training that stops early.
	h.ws.ObserveTraining(ui.Progress{Stage: "training the scorer", Epoch: 1, Epochs: 4, Refit: true, Fraction: 0.6})
	if l := h.ws.TrainProgressLabels()[1]; l.Text != "Fine-tune epoch: 1 / 4" {
		t.Errorf("refit epoch label %q", l.Text)
	}
	if after := h.ws.TrainContent().MinSize(); after.Width > before.Width {
		t.Errorf("Train screen min width grew from %.0f to %.0f with the fine-tune's label", before.Width, after.Width)
	}
}

// TestDataMaskPreview: selecting an image with a mask in Data loads the
// mask for the preview.
func TestDataMaskPreview(t *testing.T) {
	h := newHarness(t)
	h.project(t)
	h.ws.ImportFolder(dataset(t))
	h.ws.Wait()
	h.ws.DataFilter("All", "All", "All", "With mask")
	if h.ws.DataShown() == 0 {
		t.Fatal("no image with a mask")
	}
	h.ws.DataGrid().Select(0)
	h.ws.Wait()
	img, mask, show := h.ws.DataPreview()
	if img == nil || mask == nil || !show.Checked {
		t.Fatalf("preview image %v, mask %v, show %v", img != nil, mask != nil, show.Checked)
	}
	on := 0
	for _, v := range mask.Pix {
		if v >= 128 {
			on++
		}
	}
	if on == 0 {
		t.Error("the previewed mask marks no pixel")
	}
	h.ws.DataFilter("All", "All", "good", "All")
	h.ws.DataGrid().Select(0)
	h.ws.Wait()
	if _, mask, _ := h.ws.DataPreview(); mask != nil {
		t.Error("a good image kept the previous image's mask")
	}
}

// TestWindowKeepsItsSize: with a project trained, evaluated and scored, no
// screen needs more than the window's default 1200×800, so the window never
// grows by itself when a screen is shown or its text changes.
func TestWindowKeepsItsSize(t *testing.T) {
	h := newHarness(t)
	h.ws.RunDemo()
	h.ws.Wait()
	if h.ws.Project() == nil {
		t.Fatal("demo opened no project")
	}
	for _, screen := range []string{ui.ScreenStart, ui.ScreenData, ui.ScreenAnnotate, ui.ScreenTrain, ui.ScreenResults, ui.ScreenInspect, ui.ScreenLive} {
		h.ws.ShowScreen(screen)
		h.ws.Wait()
		if m := h.ws.Window().Content().MinSize(); m.Width > 1200 || m.Height > 800 {
			t.Errorf("%s: the window content needs %.0f×%.0f, more than 1200×800", screen, m.Width, m.Height)
		}
	}
	for _, tab := range []string{"Gallery", "Metrics", "Curves"} {
		h.ws.ShowScreen(ui.ScreenResults)
		h.ws.ShowResultsTab(tab)
		if m := h.ws.Window().Content().MinSize(); m.Width > 1200 || m.Height > 800 {
			t.Errorf("Results %s: the window content needs %.0f×%.0f, more than 1200×800", tab, m.Width, m.Height)
		}
	}
}

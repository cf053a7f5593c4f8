package ui_test

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/dmad/workstation/ui"
	"github.com/dmad/workstation/ui/uitest"
)

// env isolates Fyne's config and data folders in temp dirs.
func env(t *testing.T) fyne.App {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("LANG", "en_US.UTF-8")
	return test.NewTempApp(t)
}

type harness struct {
	ws       *ui.Workstation
	eng      *uitest.Engine
	projects map[string]*uitest.Project
	recent   *memRecent
}

type memRecent struct{ paths []string }

func (m *memRecent) Recent() []string { return m.paths }
func (m *memRecent) Add(p string)     { m.paths = append([]string{p}, m.paths...) }

func newHarness(t *testing.T) *harness {
	t.Helper()
	a := env(t)
	h := &harness{eng: &uitest.Engine{}, projects: map[string]*uitest.Project{}, recent: &memRecent{}}
	deps := ui.Deps{
		Engine: h.eng,
		CreateProject: func(path, name string) (ui.Project, error) {
			p := uitest.NewProject(path, name)
			h.projects[path] = p
			return p, nil
		},
		OpenProject: func(path string) (ui.Project, error) {
			if p, ok := h.projects[path]; ok {
				return p, nil
			}
			return nil, os.ErrNotExist
		},
		Recent:  h.recent,
		DataDir: t.TempDir(),
	}
	h.ws = ui.New(a, deps)
	h.ws.Window().Resize(fyne.NewSize(1200, 800))
	t.Cleanup(h.ws.Close)
	return h
}

// dataset writes a small MVTec-layout dataset: 1 category, 4 train, 3 good
// and 3 defective test images with masks, 48×48.
func dataset(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := uitest.WriteDataset(context.Background(), dir, []string{"cup"}, 4, 3, 3, 48); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (h *harness) project(t *testing.T) ui.Project {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.dmad")
	if err := h.ws.CreateProject(path, "Line 3"); err != nil {
		t.Fatal(err)
	}
	return h.ws.Project()
}

func TestCreateProjectAndImport(t *testing.T) {
	h := newHarness(t)
	if got := h.ws.CurrentScreen(); got != ui.ScreenStart {
		t.Fatalf("first screen %q, want Start", got)
	}
	p := h.project(t)
	if !strings.Contains(h.ws.Window().Title(), "Line 3") {
		t.Errorf("title %q does not name the project", h.ws.Window().Title())
	}
	if len(h.recent.paths) != 1 || h.recent.paths[0] != p.Path() {
		t.Errorf("recent = %v", h.recent.paths)
	}
	if got := h.ws.CurrentScreen(); got != ui.ScreenData {
		t.Errorf("screen after create %q, want Data", got)
	}
	h.ws.ImportFolder(dataset(t))
	h.ws.Wait()
	if n := h.ws.DataShown(); n != 10 {
		t.Fatalf("gallery shows %d images, want 10", n)
	}
	tests := []struct {
		cat, split, label, mask string
		want                    int
	}{
		{"All", "All", "All", "All", 10},
		{"cup", "train", "All", "All", 4},
		{"All", "test", "All", "All", 6},
		{"All", "All", "defect", "All", 3},
		{"All", "All", "All", "With mask", 3},
		{"All", "test", "good", "Without mask", 3},
	}
	for _, tt := range tests {
		h.ws.DataFilter(tt.cat, tt.split, tt.label, tt.mask)
		if n := h.ws.DataShown(); n != tt.want {
			t.Errorf("filter %v/%v/%v/%v shows %d, want %d", tt.cat, tt.split, tt.label, tt.mask, n, tt.want)
		}
	}

	// A plain folder: the view asks for category/split/label.
	plain := t.TempDir()
	for i := range 2 {
		writePNG(t, filepath.Join(plain, "x"+string(rune('a'+i))+".png"), image.NewGray(image.Rect(0, 0, 20, 20)))
	}
	scan, err := h.eng.ScanFolder(context.Background(), plain)
	if err != nil || scan.Layout != "plain" {
		t.Fatalf("scan plain: %v %v", scan.Layout, err)
	}
	h.ws.ImportPlain(plain, scan, "bolt", ui.SplitTest, ui.LabelDefect)
	h.ws.Wait()
	h.ws.DataFilter("bolt", "test", "defect", "All")
	if n := h.ws.DataShown(); n != 2 {
		t.Errorf("plain import shows %d bolt defects, want 2", n)
	}
}

// Issue 11, defect 5: an image can be removed from a project in the GUI.
func TestDataRemoveImage(t *testing.T) {
	h := newHarness(t)
	p := h.project(t)
	h.ws.ImportFolder(dataset(t))
	h.ws.Wait()
	imgs, err := p.Images()
	if err != nil || len(imgs) != 10 {
		t.Fatalf("%d images, %v", len(imgs), err)
	}
	if err := h.ws.DataRemove(imgs[3].ID); err != nil {
		t.Fatal(err)
	}
	if n := h.ws.DataShown(); n != 9 {
		t.Fatalf("gallery shows %d images after remove, want 9", n)
	}
	left, _ := p.Images()
	for _, r := range left {
		if r.ID == imgs[3].ID {
			t.Fatal("removed image still in the project")
		}
	}
}

func TestImportErrorShowsDialog(t *testing.T) {
	h := newHarness(t)
	h.project(t)
	h.ws.ImportFolder(filepath.Join(t.TempDir(), "missing"))
	h.ws.Wait()
	top := h.ws.Window().Canvas().Overlays().Top()
	if top == nil {
		t.Fatal("no error dialog shown")
	}
	markup := test.RenderObjectToMarkup(top)
	if !strings.Contains(markup, "missing") || !strings.Contains(markup, "What to do") {
		t.Errorf("dialog does not say what went wrong and what to do:\n%s", markup)
	}
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestAnnotatePaintUndoSave(t *testing.T) {
	h := newHarness(t)
	p := h.project(t)
	plain := t.TempDir()
	writePNG(t, filepath.Join(plain, "a.png"), image.NewGray(image.Rect(0, 0, 100, 100)))
	scan, _ := h.eng.ScanFolder(context.Background(), plain)
	h.ws.ImportPlain(plain, scan, "plate", ui.SplitTest, ui.LabelDefect)
	h.ws.Wait()
	imgs, _ := p.Images()
	id := imgs[0].ID

	h.ws.ShowScreen(ui.ScreenAnnotate)
	h.ws.AnnotateSelect(id)
	h.ws.Wait()
	ed := h.ws.AnnotateEditor()
	if ed.Mask() == nil || ed.Mask().Bounds().Dx() != 100 {
		t.Fatalf("editor did not open the 100×100 image")
	}
	// Lay the editor out alone in a 200×200 window: scale 2 widget units per pixel.
	win := test.NewTempWindow(t, ed)
	win.SetPadded(false)
	win.Resize(fyne.NewSize(200, 200))
	ed.SetBrushSize(3)

	// A horizontal stroke from image (10, 50) to (60, 50).
	drag(ed, fyne.NewPos(20, 100), fyne.NewPos(120, 100), 10)
	m := ed.Mask()
	for _, x := range []int{12, 30, 58} {
		if m.GrayAt(x, 50).Y != 255 {
			t.Errorf("stroke pixel (%d, 50) not painted", x)
		}
	}
	if m.GrayAt(30, 60).Y != 0 || m.GrayAt(80, 50).Y != 0 {
		t.Error("pixels off the stroke painted")
	}
	painted := count(m)

	// Eraser via the E key, then erase the middle of the stroke.
	ed.TypedRune('e')
	if ed.Tool() != ui.ToolEraser {
		t.Fatalf("E selected %v", ed.Tool())
	}
	drag(ed, fyne.NewPos(70, 95), fyne.NewPos(70, 105), 2)
	if ed.Mask().GrayAt(35, 50).Y != 0 {
		t.Error("eraser left (35, 50) painted")
	}
	erased := count(ed.Mask())
	if erased >= painted {
		t.Errorf("eraser removed nothing: %d → %d", painted, erased)
	}

	// Ctrl+Z undoes the erase, Ctrl+Y redoes it.
	ed.TypedShortcut(&fyne.ShortcutUndo{})
	if got := count(ed.Mask()); got != painted {
		t.Errorf("after undo %d pixels, want %d", got, painted)
	}
	ed.TypedShortcut(&fyne.ShortcutRedo{})
	if got := count(ed.Mask()); got != erased {
		t.Errorf("after redo %d pixels, want %d", got, erased)
	}

	// Brush size keys.
	before := ed.BrushSize()
	ed.TypedRune(']')
	if ed.BrushSize() <= before {
		t.Errorf("] did not grow the brush: %v → %v", before, ed.BrushSize())
	}
	ed.TypedRune('[')
	ed.TypedRune('[')
	if ed.BrushSize() >= before {
		t.Errorf("[ did not shrink the brush below %v: %v", before, ed.BrushSize())
	}

	// A polygon: P, three taps, Enter fills the triangle.
	ed.TypedRune('p')
	for _, pt := range []fyne.Position{{X: 20, Y: 140}, {X: 100, Y: 140}, {X: 20, Y: 190}} {
		test.TapAt(ed, pt)
	}
	ed.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	if ed.Mask().GrayAt(15, 75).Y != 255 {
		t.Error("polygon interior (15, 75) not filled")
	}
	if ed.Mask().GrayAt(45, 90).Y != 0 {
		t.Error("pixel outside the triangle (45, 90) filled")
	}

	// Save through the project and mark as seen anomaly.
	if err := h.ws.AnnotateSave(); err != nil {
		t.Fatal(err)
	}
	saved, err := p.Mask(id)
	if err != nil {
		t.Fatal(err)
	}
	if count(saved) != count(ed.Mask()) || saved.GrayAt(15, 75).Y != 255 {
		t.Errorf("saved mask has %d pixels, editor %d", count(saved), count(ed.Mask()))
	}
	h.ws.AnnotateSeen().SetChecked(true)
	imgs, _ = p.Images()
	if !imgs[0].HasMask || !imgs[0].SeenAnomaly {
		t.Errorf("record after save: %+v", imgs[0])
	}

	// Clear, then undo the clear.
	n := count(ed.Mask())
	ed.Clear()
	if count(ed.Mask()) != 0 {
		t.Error("Clear left pixels")
	}
	if !ed.Undo() || count(ed.Mask()) != n {
		t.Error("undo of Clear did not restore the mask")
	}
}

// drag simulates the driver: events carry the current position and the
// delta since the previous event.
func drag(d fyne.Draggable, from, to fyne.Position, steps int) {
	prev := from
	for i := 1; i <= steps; i++ {
		f := float32(i) / float32(steps)
		cur := fyne.NewPos(from.X+f*(to.X-from.X), from.Y+f*(to.Y-from.Y))
		d.Dragged(&fyne.DragEvent{PointEvent: fyne.PointEvent{Position: cur}, Dragged: fyne.NewDelta(cur.X-prev.X, cur.Y-prev.Y)})
		prev = cur
	}
	d.DragEnd()
}

func count(m *image.Gray) int {
	n := 0
	for _, v := range m.Pix {
		if v > 0 {
			n++
		}
	}
	return n
}

func TestTrainEvaluateThreshold(t *testing.T) {
	h := newHarness(t)
	p := h.project(t)
	h.ws.ImportFolder(dataset(t))
	h.ws.Wait()

	h.ws.ShowScreen(ui.ScreenTrain)
	epochs, start, _ := h.ws.TrainForm()
	epochs.SetText("0")
	test.Tap(start)
	h.ws.Wait()
	if top := h.ws.Window().Canvas().Overlays().Top(); top == nil {
		t.Error("epochs 0 accepted without an error dialog")
	} else {
		h.ws.Window().Canvas().Overlays().Remove(top)
	}
	// The memory setting: a size with a unit, at least membudget.Min;
	// empty is the default.
	mem := h.ws.TrainMemory()
	epochs.SetText("4")
	for _, bad := range []string{"lots", "100MiB"} {
		mem.SetText(bad)
		test.Tap(start)
		h.ws.Wait()
		if top := h.ws.Window().Canvas().Overlays().Top(); top == nil {
			t.Errorf("memory %q accepted without an error dialog", bad)
		} else {
			h.ws.Window().Canvas().Overlays().Remove(top)
		}
	}
	if ms, _ := p.Models(); len(ms) != 0 {
		t.Fatalf("a bad memory setting trained %d models", len(ms))
	}
	mem.SetText("1.5 GiB")
	test.Tap(start)
	h.ws.Wait()
	if s, _ := p.Settings(); s.Memory != 3<<29 {
		t.Errorf("saved memory setting %d, want 1.5 GiB", s.Memory)
	}
	h.ws.ShowScreen(ui.ScreenData)
	h.ws.ShowScreen(ui.ScreenTrain)
	if mem.Text != "1.50GiB" && mem.Text != "1.5GiB" {
		t.Errorf("the Train screen shows the saved memory setting as %q", mem.Text)
	}
	stage, result, losses := h.ws.TrainStatus()
	if stage != "Stage: done" || !strings.Contains(result, "Model v1 saved") || losses != 4 {
		t.Fatalf("after training: %q %q, %d loss points", stage, result, losses)
	}
	if ms, _ := p.Models(); len(ms) != 1 || ms[0].Epochs != 4 {
		t.Fatalf("models %+v", ms)
	}
	// Retraining refits unless the user asks for a training from scratch.
	if h.eng.LastTrain().FromScratch {
		t.Error("the first training asked for a training from scratch without the box ticked")
	}
	h.ws.TrainFromScratch().SetChecked(true)
	test.Tap(start)
	h.ws.Wait()
	if !h.eng.LastTrain().FromScratch {
		t.Error("Train from scratch ticked, but the request does not say so")
	}
	if ms, _ := p.Models(); len(ms) != 2 {
		t.Fatalf("after a training from scratch: %d models", len(ms))
	}

	test.Tap(h.ws.TrainEvaluate())
	h.ws.Wait()
	if h.ws.CurrentScreen() != ui.ScreenResults {
		t.Errorf("screen %q after Evaluate, want Results", h.ws.CurrentScreen())
	}
	runs, _ := p.Runs()
	if len(runs) != 1 || len(runs[0].Images) != 6 {
		t.Fatalf("runs %d", len(runs))
	}
	if rows := h.ws.ResultsMetricRows(); len(rows) != 2 || rows[0][0] != "cup" || rows[1][0] != "mean" {
		t.Errorf("metric rows %v", rows)
	}
	if n := h.ws.ResultsCurvesDrawn(); n != 4 {
		t.Errorf("%d of 4 curves drawn", n)
	}
	// Move the threshold to each image's score: the fail count is the number
	// of images scoring at or above it.
	slider := h.ws.ResultsThreshold()
	for _, s := range runs[0].Images {
		slider.SetValue(s.Score)
		want := 0
		for _, o := range runs[0].Images {
			if o.Score >= slider.Value {
				want++
			}
		}
		pass, fail := h.ws.ResultsCounts()
		if fail != want || pass+fail != 6 {
			t.Errorf("threshold %.4f: %d fail / %d pass, want %d fail", slider.Value, fail, pass, want)
		}
	}
	slider.SetValue(slider.Min)
	if pass, _ := h.ws.ResultsCounts(); pass != 0 {
		t.Errorf("threshold at minimum passes %d images", pass)
	}
	slider.SetValue(slider.Max)
	if _, fail := h.ws.ResultsCounts(); fail != 0 {
		t.Errorf("threshold at maximum fails %d images", fail)
	}
	if !strings.Contains(h.ws.ResultsSummary(), "0 fail") {
		t.Errorf("summary %q", h.ws.ResultsSummary())
	}
	if th, _ := p.(ui.Reviewer).Thresholds(runs[0].ModelID); th.Global != slider.Max {
		t.Errorf("threshold not saved with the model: %+v, slider at %v", th, slider.Max)
	}
	// Opening an image shows its overlay.
	h.ws.ResultsSelect(0)
	h.ws.Wait()
	if h.ws.ResultsViewerZoom().Zoom() != 1 {
		t.Error("viewer not at fit zoom")
	}
}

func TestTrainCancel(t *testing.T) {
	h := newHarness(t)
	p := h.project(t)
	h.ws.ImportFolder(dataset(t))
	h.ws.Wait()
	h.eng.EpochDelay = 20e6 // 20 ms
	h.ws.ShowScreen(ui.ScreenTrain)
	epochs, start, cancel := h.ws.TrainForm()
	epochs.SetText("100000")
	test.Tap(start)
	if cancel.Disabled() {
		t.Fatal("Cancel disabled while training")
	}
	test.Tap(cancel)
	h.ws.Wait()
	if stage, _, _ := h.ws.TrainStatus(); stage != "Stage: cancelled" {
		t.Errorf("stage %q after cancel", stage)
	}
	if ms, _ := p.Models(); len(ms) != 0 {
		t.Errorf("cancelled training saved %d models", len(ms))
	}
}

// modelHarness opens a project with the test dataset imported and one
// (fake) model, and shows Inspect; it returns the project and the dataset.
func modelHarness(t *testing.T) (*harness, *uitest.Project, string) {
	t.Helper()
	h := newHarness(t)
	p := h.project(t).(*uitest.Project)
	data := dataset(t)
	h.ws.ImportFolder(data)
	h.ws.Wait()
	p.AddModel(ui.ModelInfo{ID: "m1"})
	h.ws.ShowScreen(ui.ScreenInspect)
	return h, p, data
}

func TestInspectExport(t *testing.T) {
	h, _, data := modelHarness(t)
	h.ws.InspectScore(data)
	h.ws.Wait()
	pass, fail := h.ws.InspectCounts()
	if pass+fail != 10 {
		t.Fatalf("inspect scored %d images, want 10", pass+fail)
	}
	out := filepath.Join(t.TempDir(), "report")
	h.ws.InspectExport(out)
	h.ws.Wait()
	for _, f := range []string{"scores.csv", "report.html", "roc.png", "pr.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	ov, _ := filepath.Glob(filepath.Join(out, "overlays", "*.png"))
	if len(ov) != 10 {
		t.Errorf("%d overlay PNGs, want 10", len(ov))
	}
	csv, _ := os.ReadFile(filepath.Join(out, "scores.csv"))
	if got := strings.Count(string(csv), ",fail,"); got != fail {
		t.Errorf("csv has %d fail rows, view shows %d", got, fail)
	}
}

func TestGalleryLoadsOnlyVisibleThumbnails(t *testing.T) {
	h := newHarness(t)
	p := h.project(t)
	src := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	img.Set(3, 3, color.White)
	writePNG(t, filepath.Join(src, "one.png"), img)
	recs := make([]ui.ImageRecord, 10000)
	for i := range recs {
		recs[i] = ui.ImageRecord{Path: filepath.Join(src, "one.png"), Category: "c", Split: ui.SplitTrain, Label: ui.LabelGood}
	}
	if _, err := p.AddImages(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	h.ws.SetProject(p)
	if n := h.ws.DataShown(); n != 10000 {
		t.Fatalf("gallery length %d", n)
	}
	grid := h.ws.DataGrid()
	grid.ScrollTo(5000)
	grid.ScrollToBottom()
	h.ws.Close() // stops the loaders after what they were asked
	if d := h.ws.ThumbDecodes(); d > 600 {
		t.Errorf("%d thumbnails decoded for 10,000 images: the gallery is not lazy", d)
	}
}

func TestScreenshots(t *testing.T) {
	h := newHarness(t)
	h.ws.RunDemo()
	h.ws.Wait()
	if h.ws.Project() == nil {
		t.Fatal("demo opened no project")
	}
	if h.ws.CurrentScreen() != ui.ScreenResults {
		t.Errorf("demo ended on %q, want Results", h.ws.CurrentScreen())
	}
	dir := t.TempDir()
	files, err := h.ws.Screenshots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 10 {
		t.Errorf("%d screenshots: %v", len(files), files)
	}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Size() < 1000 {
			t.Errorf("screenshot %s: %v", f, err)
		}
	}
}

func TestPrefsRecent(t *testing.T) {
	a := env(t)
	r := ui.NewPrefsRecent(a.Preferences())
	for _, p := range []string{"a", "b", "a", "c", "d", "e", "f", "g", "h", "i"} {
		r.Add(p)
	}
	got := r.Recent()
	want := []string{"i", "h", "g", "f", "e", "d", "c", "a"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("recent = %v, want %v", got, want)
	}
}

// TestSearchChoiceReachesTheEngine checks the "Fast search" checks: Inspect
// scores fast by default and exactly when unchecked; Results evaluates
// exactly by default and fast when checked, and names such a run so.
func TestSearchChoiceReachesTheEngine(t *testing.T) {
	h, p, data := modelHarness(t)
	for _, fast := range []bool{true, false} {
		if fast != h.ws.InspectFastSearch().Checked {
			test.Tap(h.ws.InspectFastSearch())
		}
		h.ws.InspectScore(data)
		h.ws.Wait()
		if req := h.eng.LastScore(); req.Fast != fast || req.Dir != data {
			t.Fatalf("Inspect with fast search %v: request Fast %v Dir %q", fast, req.Fast, req.Dir)
		}
	}

	h.ws.ShowScreen(ui.ScreenResults)
	if h.ws.ResultsFastSearch().Checked {
		t.Fatal("Results evaluates with the fast search by default")
	}
	for _, fast := range []bool{false, true} {
		if fast != h.ws.ResultsFastSearch().Checked {
			test.Tap(h.ws.ResultsFastSearch())
		}
		test.Tap(h.ws.ResultsEvaluateButton())
		h.ws.Wait()
		if req := h.eng.LastScore(); req.Fast != fast || req.Dir != "" {
			t.Fatalf("Results with fast search %v: request Fast %v Dir %q", fast, req.Fast, req.Dir)
		}
	}
	runs, err := p.Runs()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(runs); n != 2 || strings.Contains(runs[0].Name, "fast") || !strings.HasSuffix(runs[1].Name, "(fast search)") {
		t.Fatalf("runs %+v: want an exact one, then one named for the fast search", runs)
	}
}

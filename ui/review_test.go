package ui_test

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/dmad/workstation/core/review"
	"github.com/dmad/workstation/ui"
	"github.com/dmad/workstation/ui/uitest"
)

// reviewHarness opens a project with two categories (cup, pen: 3 good and
// 3 defective test images each), one model, and evaluates it on Results.
func reviewHarness(t *testing.T) (*harness, *uitest.Project, string) {
	t.Helper()
	h := newHarness(t)
	p := h.project(t).(*uitest.Project)
	data := t.TempDir()
	if err := uitest.WriteDataset(context.Background(), data, []string{"cup", "pen"}, 4, 3, 3, 48); err != nil {
		t.Fatal(err)
	}
	h.ws.ImportFolder(data)
	h.ws.Wait()
	p.AddModel(ui.ModelInfo{ID: "m1"})
	h.ws.ShowScreen(ui.ScreenResults)
	test.Tap(h.ws.ResultsEvaluateButton())
	h.ws.Wait()
	if n := len(h.ws.ResultsReview().Shown()); n != 12 {
		t.Fatalf("Results lists %d images, want 12", n)
	}
	return h, p, data
}

func fmtT(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }

func TestKeyboardReviewAndOverrides(t *testing.T) {
	h, p, _ := reviewHarness(t)
	ws, rb := h.ws, h.ws.ResultsReview()
	shown := rb.Shown()
	keyAt := func(i int) string { return ui.OverrideKey(shown[i]) }

	// Navigation: J/↓ next, K/↑ previous, Home/End.
	for _, step := range []struct {
		key  fyne.KeyName
		want int
	}{{fyne.KeyJ, 0}, {fyne.KeyDown, 1}, {fyne.KeyJ, 2}, {fyne.KeyK, 1}, {fyne.KeyUp, 0}, {fyne.KeyUp, 0},
		{fyne.KeyEnd, 11}, {fyne.KeyDown, 11}, {fyne.KeyHome, 0}} {
		ws.TypeKey(step.key)
		if got := rb.SelectedIndex(); got != step.want {
			t.Fatalf("after %s: image %d selected, want %d", step.key, got, step.want)
		}
	}
	ws.Wait()
	if w, _ := rb.ViewerImage(); w != 2*48+4 {
		t.Errorf("viewer shows an image %d wide, want the original and its heatmap side by side (100)", w)
	}

	// A accepts image 0 and moves on; R rejects image 1.
	v0, v1 := rb.Verdict(shown[0]), rb.Verdict(shown[1])
	ws.TypeKey(fyne.KeyA)
	if rb.SelectedIndex() != 1 {
		t.Fatalf("after A the selection is %d, want 1", rb.SelectedIndex())
	}
	ws.TypeKey(fyne.KeyR)
	ov, _ := p.Overrides("m1")
	if len(ov) != 2 {
		t.Fatalf("%d overrides stored, want 2", len(ov))
	}
	if o := ov[keyAt(0)]; !o.Accepted || o.ModelVerdict != v0 || o.Final() != v0 || o.Who != "tester" || o.When.IsZero() {
		t.Errorf("accepted override %+v (model verdict %s)", o, v0)
	}
	if o := ov[keyAt(1)]; o.Accepted || o.ModelVerdict != v1 || o.Final() == v1 || o.Threshold != uitest.DefaultThreshold {
		t.Errorf("rejected override %+v (model verdict %s)", o, v1)
	}
	if got := rb.RowReview(0); got != "✓ tester" {
		t.Errorf("row 0 review mark %q", got)
	}
	if got := rb.RowReview(1); !strings.HasPrefix(got, "✗ "+strings.ToUpper(ov[keyAt(1)].Final())) {
		t.Errorf("row 1 review mark %q", got)
	}
	if !strings.Contains(rb.Summary(), "2 reviewed (1 overridden)") {
		t.Errorf("summary %q", rb.Summary())
	}
	// Back on image 1 its review is described; U undoes it.
	ws.TypeKey(fyne.KeyK)
	if rb.SelectedIndex() != 1 || !strings.Contains(rb.Info(), "Reviewed: tester rejected the model's "+strings.ToUpper(v1)) {
		t.Errorf("info of the rejected image %d: %q", rb.SelectedIndex(), rb.Info())
	}
	ws.TypeKey(fyne.KeyU)
	if ov, _ := p.Overrides("m1"); len(ov) != 1 || ov[keyAt(0)].Image == "" {
		t.Errorf("after U on image 1: overrides %v", ov)
	}
	if strings.Contains(rb.Info(), "Reviewed") || rb.RowReview(1) != "" {
		t.Errorf("after U the image still shows a review: %q, row %q", rb.Info(), rb.RowReview(1))
	}

	// F, M and L jump to the next fail, missed defect and false alarm.
	for _, j := range []struct {
		key  fyne.KeyName
		want func(ui.ScoredImage) bool
	}{
		{fyne.KeyF, func(s ui.ScoredImage) bool { return rb.Verdict(s) == ui.VerdictFail }},
		{fyne.KeyM, func(s ui.ScoredImage) bool { return s.Label == ui.LabelDefect && rb.Verdict(s) == ui.VerdictPass }},
		{fyne.KeyL, func(s ui.ScoredImage) bool { return s.Label == ui.LabelGood && rb.Verdict(s) == ui.VerdictFail }},
	} {
		ws.TypeKey(fyne.KeyHome)
		want := -1
		for i := 1; i <= len(shown); i++ {
			if k := i % len(shown); j.want(shown[k]) {
				want = k
				break
			}
		}
		ws.TypeKey(j.key)
		if want >= 0 && rb.SelectedIndex() != want {
			t.Errorf("%s selected %d, want %d", j.key, rb.SelectedIndex(), want)
		}
		if want < 0 && rb.SelectedIndex() != 0 {
			t.Errorf("%s moved to %d with no such image", j.key, rb.SelectedIndex())
		}
	}
	// The model's miss/false-alarm counts are non-trivial at some threshold:
	// move it so that both exist, then check L and M land on them.
	rb.Slider().SetValue(shown[5].Score)
	shown = rb.Shown()
	for _, key := range []fyne.KeyName{fyne.KeyM, fyne.KeyL} {
		ws.TypeKey(key)
		s := shown[rb.SelectedIndex()]
		miss := s.Label == ui.LabelDefect && rb.Verdict(s) == ui.VerdictPass
		alarm := s.Label == ui.LabelGood && rb.Verdict(s) == ui.VerdictFail
		if (key == fyne.KeyM && !miss && hasKind(rb, shown, true)) || (key == fyne.KeyL && !alarm && hasKind(rb, shown, false)) {
			t.Errorf("%s landed on %s (%s, %s)", key, s.Path, s.Label, rb.Verdict(s))
		}
	}
}

// hasKind reports whether shown has a missed defect (miss) or a false alarm.
func hasKind(rb ui.ReviewBrowser, shown []ui.ScoredImage, miss bool) bool {
	for _, s := range shown {
		if miss && s.Label == ui.LabelDefect && rb.Verdict(s) == ui.VerdictPass {
			return true
		}
		if !miss && s.Label == ui.LabelGood && rb.Verdict(s) == ui.VerdictFail {
			return true
		}
	}
	return false
}

func TestReviewFiltersAndSort(t *testing.T) {
	h, _, _ := reviewHarness(t)
	ws, rb := h.ws, h.ws.ResultsReview()
	ws.TypeKey(fyne.KeyJ)
	ws.TypeKey(fyne.KeyR) // one overridden image
	all := slices.Clone(rb.Shown())
	count := func(f func(ui.ScoredImage) bool) int {
		n := 0
		for _, s := range all {
			if f(s) {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		filter string
		want   func(ui.ScoredImage) bool
	}{
		{"fails", func(s ui.ScoredImage) bool { return rb.Verdict(s) == ui.VerdictFail }},
		{"passes", func(s ui.ScoredImage) bool { return rb.Verdict(s) == ui.VerdictPass }},
		{"missed defects", func(s ui.ScoredImage) bool { return s.Label == ui.LabelDefect && rb.Verdict(s) == ui.VerdictPass }},
		{"false alarms", func(s ui.ScoredImage) bool { return s.Label == ui.LabelGood && rb.Verdict(s) == ui.VerdictFail }},
		{"overridden", func(s ui.ScoredImage) bool { return ui.OverrideKey(s) == ui.OverrideKey(all[0]) }},
		{"not reviewed", func(s ui.ScoredImage) bool { return ui.OverrideKey(s) != ui.OverrideKey(all[0]) }},
	} {
		rb.Filter().SetSelected(tc.filter)
		got := rb.Shown()
		if len(got) != count(tc.want) {
			t.Errorf("filter %s shows %d images, want %d", tc.filter, len(got), count(tc.want))
		}
		for _, s := range got {
			if !tc.want(s) {
				t.Errorf("filter %s shows %s", tc.filter, s.Path)
			}
		}
	}
	rb.Filter().SetSelected("all images")
	rb.Category().SetSelected("pen")
	if got := rb.Shown(); len(got) != 6 || got[0].Category != "pen" || got[5].Category != "pen" {
		t.Errorf("category pen shows %d images", len(got))
	}
	if !slices.Contains(rb.DefectType().Options, "blob") || !slices.Contains(rb.DefectType().Options, "good") {
		t.Fatalf("defect types %v", rb.DefectType().Options)
	}
	rb.DefectType().SetSelected("blob")
	if got := rb.Shown(); len(got) != 3 || got[0].Label != ui.LabelDefect {
		t.Errorf("pen/blob shows %d images", len(got))
	}
	rb.Category().SetSelected("any")
	rb.DefectType().SetSelected("any")
	for _, tc := range []struct {
		sort string
		less func(a, b ui.ScoredImage) bool
	}{
		{"score, highest first", func(a, b ui.ScoredImage) bool { return a.Score >= b.Score }},
		{"score, lowest first", func(a, b ui.ScoredImage) bool { return a.Score <= b.Score }},
		{"name", func(a, b ui.ScoredImage) bool {
			return filepath.Join(a.Category, filepath.Base(filepath.Dir(a.Path)), filepath.Base(a.Path)) <=
				filepath.Join(b.Category, filepath.Base(filepath.Dir(b.Path)), filepath.Base(b.Path))
		}},
	} {
		rb.Sort().SetSelected(tc.sort)
		got := rb.Shown()
		for i := 1; i < len(got); i++ {
			if !tc.less(got[i-1], got[i]) {
				t.Errorf("sort %s: %s before %s", tc.sort, got[i-1].Path, got[i].Path)
			}
		}
	}
}

func TestPerCategoryThresholdsAndHistogram(t *testing.T) {
	h, p, data := reviewHarness(t)
	ws, rb := h.ws, h.ws.ResultsReview()

	// The histogram over every category: all 12 labelled images, the line
	// at the model's threshold, drawn white.
	_, good, defect, line, _, _ := rb.Histogram()
	if good != 6 || defect != 6 || line != uitest.DefaultThreshold {
		t.Errorf("histogram: %d good, %d defect, line %v", good, defect, line)
	}
	if _, px := rb.HistogramLineX(400, 90); px != [4]uint8{255, 255, 255, 255} {
		t.Errorf("threshold line pixel %v, want white", px)
	}

	// A threshold typed for pen only: pen's images are decided at it,
	// cup's keep the model's; it is stored with the model.
	rb.Scope().SetSelected("pen")
	entry := rb.ThresholdEntry()
	entry.SetText("")
	test.Type(entry, "0.0001")
	entry.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	th := rb.Thresholds()
	if th.For("pen") != 0.0001 || th.For("cup") != uitest.DefaultThreshold {
		t.Fatalf("thresholds after typing for pen: %+v", th)
	}
	if stored, _ := p.Thresholds("m1"); !stored.Equal(th) {
		t.Errorf("stored thresholds %+v, view's %+v", stored, th)
	}
	for _, s := range rb.Shown() {
		want := review.Decide(s.Score, uitest.DefaultThreshold)
		if s.Category == "pen" {
			want = ui.VerdictFail
		}
		if got := rb.Verdict(s); got != want {
			t.Errorf("%s/%s: %s, want %s", s.Category, filepath.Base(s.Path), got, want)
		}
	}
	_, good, defect, line, _, _ = rb.Histogram()
	if good+defect != 6 || line != 0.0001 {
		t.Errorf("pen histogram: %d images, line %v", good+defect, line)
	}

	// Tapping the histogram (cup) moves cup's threshold there.
	rb.Scope().SetSelected("cup")
	hist, _, _, _, lo, hi := rb.Histogram()
	size := rb.HistogramSize()
	if size.Width <= 0 {
		t.Fatal("histogram not laid out")
	}
	test.TapAt(hist, fyne.NewPos(size.Width/4, size.Height/2))
	want := lo + 0.25*(hi-lo)
	th = rb.Thresholds()
	if math.Abs(th.For("cup")-want) > 1e-9 || th.For("pen") != 0.0001 {
		t.Errorf("after tapping the histogram: %+v, want cup at %v", th, want)
	}
	if rb.ThresholdText() != fmtT(want) {
		t.Errorf("typed-value field %q, want %q", rb.ThresholdText(), fmtT(want))
	}
	if stored, _ := p.Thresholds("m1"); !stored.Equal(th) {
		t.Errorf("tapped threshold not stored: %+v", stored)
	}

	// Every category again: categories with their own thresholds are
	// shown in threshold units, the line at 1.0.
	rb.Scope().SetSelected("every category")
	if _, good, defect, line, _, _ = rb.Histogram(); good+defect != 12 || line != 1 {
		t.Errorf("normalised histogram: %d images, line %v", good+defect, line)
	}

	// Inspect decides the same images with the same thresholds.
	ws.ShowScreen(ui.ScreenInspect)
	ws.InspectScore(data)
	ws.Wait()
	ir := ws.InspectReview()
	if !ir.Thresholds().Equal(th) || ir.ThresholdText() != rb.ThresholdText() {
		t.Errorf("Inspect thresholds %+v (%s), Results %+v (%s)", ir.Thresholds(), ir.ThresholdText(), th, rb.ThresholdText())
	}
	pens := 0
	for _, s := range ir.Shown() {
		if s.Category == "pen" {
			pens++
			if ir.Verdict(s) != ui.VerdictFail {
				t.Errorf("Inspect passes %s at pen's threshold 0.0001", s.Path)
			}
		}
	}
	if pens != 10 {
		t.Errorf("Inspect lists %d pen images, want 10", pens)
	}
}

// TestResultsAndInspectShowOneThreshold: the runs' score ranges differ
// (the whole test split against one category's folder), which used to
// snap the slider to different values (0.6587 against 0.6617); both now
// show the model's threshold exactly, and showing a run stores nothing.
func TestResultsAndInspectShowOneThreshold(t *testing.T) {
	h, p, data := reviewHarness(t)
	ws := h.ws
	p.SetThresholds("m1", review.Thresholds{Global: 0.6617})
	ws.ShowScreen(ui.ScreenData)
	ws.ShowScreen(ui.ScreenResults)
	test.Tap(ws.ResultsEvaluateButton()) // a second run: shows it afresh
	ws.Wait()
	ws.ShowScreen(ui.ScreenInspect)
	ws.InspectScore(filepath.Join(data, "cup", "test", "blob"))
	ws.Wait()
	rs, is := ws.ResultsReview(), ws.InspectReview()
	if rs.Slider().Min == is.Slider().Min && rs.Slider().Max == is.Slider().Max {
		t.Fatalf("the two runs have the same score range [%v, %v]: the test proves nothing", rs.Slider().Min, rs.Slider().Max)
	}
	for name, r := range map[string]ui.ReviewBrowser{"Results": rs, "Inspect": is} {
		if r.Slider().Value != 0.6617 || r.ThresholdText() != "0.6617" || r.Thresholds().Global != 0.6617 {
			t.Errorf("%s shows %v (%q)", name, r.Slider().Value, r.ThresholdText())
		}
	}
	if th, _ := p.Thresholds("m1"); th.Global != 0.6617 {
		t.Errorf("showing the runs changed the stored threshold to %v", th.Global)
	}
}

func TestCompareVersions(t *testing.T) {
	h, p, _ := reviewHarness(t)
	ws := h.ws
	p.AddModel(ui.ModelInfo{ID: "m2"})
	p.SetThresholds("m2", review.Thresholds{Global: 0.3})
	test.Tap(ws.ResultsEvaluateButton())
	ws.Wait()
	runs, _ := p.Runs()
	if len(runs) != 2 || runs[1].ModelID != "m2" {
		t.Fatalf("runs %d", len(runs))
	}
	cmp, rows := ws.Compare(0, 1)
	want := 0
	for _, s := range runs[0].Images {
		if s.Score >= 0.3 && s.Score < 0.5 {
			want++
		}
	}
	if cmp.Common != 12 || len(cmp.Changed) != want {
		t.Errorf("comparison: %d common, %d changed, want 12 and %d", cmp.Common, len(cmp.Changed), want)
	}
	for _, c := range cmp.Changed {
		if c.VerdictA != ui.VerdictPass || c.VerdictB != ui.VerdictFail {
			t.Errorf("change %+v", c)
		}
	}
	if len(rows) != 3 || rows[2][0] != "all" || rows[0][0] != "cup" {
		t.Errorf("comparison rows %v", rows)
	}
}

package ui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/assets"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/review"
)

// runBrowser reviews a run (Results and Inspect share it): a filtered,
// sorted list of the images with thumbnails and pass/fail badges at the
// model version's thresholds (global and per category), a score histogram
// with the threshold line, the selected image beside its heatmap, and
// keyboard review (see reviewKeys) with accept/reject overrides.
type runBrowser struct {
	w       *Workstation
	content fyne.CanvasObject

	run Run
	// sorted are the images shown: filtered, then sorted.
	sorted []ScoredImage
	// th are the run's model's thresholds; threshold is the one of the
	// scope being edited (the slider's value).
	th        review.Thresholds
	threshold float64
	// topNorm is the highest score of the run in threshold units (the
	// legend's right end).
	topNorm   float64
	overrides map[string]Override
	types     map[string]string // project image id → defect type

	scope    *widget.Select
	thr      *widget.Slider
	thrEntry *widget.Entry
	thrText  *widget.Label
	summary  *widget.Label
	filter   *widget.Select
	catSel   *widget.Select
	typeSel  *widget.Select
	sortSel  *widget.Select
	list     *widget.List
	hist     *scoreHistogram
	histText *widget.Label
	status   *widget.Label

	viewer     *ZoomImage
	opacity    *widget.Slider
	contour    *widget.Check
	thrContour *widget.Check
	sideBySide *widget.Check
	info       *lineLabels
	legend     *canvas.Image
	legendHi   *widget.Label
	acceptBtn  *widget.Button
	rejectBtn  *widget.Button
	clearBtn   *widget.Button

	selected int
	base     *image.RGBA
	mask     *image.Gray
	baseKey  string // OverrideKey of the image in base
	// updating is set while the view moves the slider itself, so that
	// showing a run never writes a threshold back.
	updating bool
	// onDecisions, when set, is called after the images were decided
	// again (a threshold or the run changed): the Metrics tab follows.
	onDecisions func()

	thumbs *thumbLoader
	rowMu  sync.Mutex
	rowKey map[*canvas.Image]string // the image each list row's thumbnail shows
	keyMu  sync.Mutex
	byKey  map[string]thumbSource // read by the thumbnail workers
}

type thumbSource struct {
	p Project
	s ScoredImage
}

var (
	failColor = color.NRGBA{220, 50, 47, 255}
	passColor = color.NRGBA{40, 160, 70, 255}
)

// Choices of the browser's selects.
const (
	scopeAll = "every category"

	filterImages      = "all images"
	filterFails       = "fails"
	filterPasses      = "passes"
	filterMisses      = "missed defects"
	filterFalseAlarms = "false alarms"
	filterUnreviewed  = "not reviewed"
	filterReviewed    = "reviewed"
	filterOverridden  = "overridden"

	anyChoice = "any"

	sortScoreDown = "score, highest first"
	sortScoreUp   = "score, lowest first"
	sortName      = "name"

	rowThumb = 40
)

func newRunBrowser(w *Workstation) *runBrowser {
	b := &runBrowser{w: w, selected: -1, topNorm: 1.5, byKey: map[string]thumbSource{}}
	b.updating = true // nothing reacts to the widgets' set-up
	defer func() { b.updating = false }()
	b.thumbs = newThumbLoader(w.ctx, 2, rowThumb*2, 400, b.loadThumb, &w.workers)
	b.rowKey = map[*canvas.Image]string{}

	b.scope = widget.NewSelect([]string{scopeAll}, func(string) { b.scopeChanged() })
	b.scope.SetSelectedIndex(0)
	b.thr = widget.NewSlider(0, 1)
	b.thr.Step = 0 // no snapping: the slider shows the stored threshold exactly
	b.thr.OnChanged = func(t float64) {
		if !b.updating {
			b.applyThreshold(t)
		}
	}
	b.thr.OnChangeEnded = func(float64) {
		if !b.updating {
			b.saveThresholds()
		}
	}
	b.thrEntry = widget.NewEntry()
	b.thrEntry.SetPlaceHolder("type a value")
	b.thrEntry.OnSubmitted = func(s string) { b.typeThreshold(s) }
	b.thrText = widget.NewLabel("")
	b.thrText.Truncation = fyne.TextTruncateEllipsis
	b.summary = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	b.status = widget.NewLabel("")

	refilter := func(string) { b.applyFilter() }
	b.filter = widget.NewSelect([]string{filterImages, filterFails, filterPasses, filterMisses, filterFalseAlarms,
		filterUnreviewed, filterReviewed, filterOverridden}, refilter)
	b.catSel = widget.NewSelect([]string{anyChoice}, refilter)
	b.typeSel = widget.NewSelect([]string{anyChoice}, refilter)
	b.sortSel = widget.NewSelect([]string{sortScoreDown, sortScoreUp, sortName}, refilter)
	for _, s := range []*widget.Select{b.filter, b.catSel, b.typeSel, b.sortSel} {
		s.SetSelectedIndex(0)
	}

	b.list = widget.NewList(func() int { return len(b.sorted) }, b.newRow, b.updateRow)
	b.list.OnSelected = func(i widget.ListItemID) { b.show(i) }

	b.hist = newScoreHistogram(func(v float64) { b.setThresholdValue(v, true) })
	b.histText = widget.NewLabel("")
	b.histText.Truncation = fyne.TextTruncateEllipsis

	b.viewer = NewZoomImage()
	b.opacity = widget.NewSlider(0, 1)
	b.opacity.Step = 0.05
	b.opacity.SetValue(0.6)
	b.opacity.OnChanged = func(float64) { b.recompose() }
	b.contour = widget.NewCheck("Ground truth", func(bool) { b.recompose() })
	b.contour.SetChecked(true)
	b.thrContour = widget.NewCheck("Above-threshold outline", func(bool) { b.recompose() })
	b.thrContour.SetChecked(true)
	b.sideBySide = widget.NewCheck("Side by side", func(bool) { b.recompose() })
	b.sideBySide.SetChecked(true)
	b.info = newLineLabels(3)
	b.info.SetText("Select an image.")
	b.legend = canvas.NewImageFromImage(heatmap.Legend(256, 12, b.topNorm))
	b.legend.FillMode = canvas.ImageFillStretch
	b.legend.SetMinSize(fyne.NewSize(200, 12))
	b.legendHi = widget.NewLabel("")
	legendBox := container.NewBorder(nil, nil, widget.NewLabel("Score ÷ threshold (white mark = 1.0, no colour below):  0"), b.legendHi,
		container.NewCenter(b.legend))

	b.acceptBtn = widget.NewButtonWithIcon("Accept (A)", theme.ConfirmIcon(), func() { b.decide(true) })
	b.rejectBtn = widget.NewButtonWithIcon("Reject (R)", theme.CancelIcon(), func() { b.decide(false) })
	b.clearBtn = widget.NewButtonWithIcon("Undo (U)", theme.ContentUndoIcon(), func() { b.clearDecision() })
	nav := container.NewHBox(
		widget.NewButtonWithIcon("", theme.MoveUpIcon(), func() { b.step(-1) }),
		widget.NewButtonWithIcon("", theme.MoveDownIcon(), func() { b.step(1) }),
		widget.NewButton("Next fail (F)", func() { b.jump(filterFails) }),
		widget.NewButton("Next miss (M)", func() { b.jump(filterMisses) }),
		widget.NewButton("Next false alarm (L)", func() { b.jump(filterFalseAlarms) }),
		b.acceptBtn, b.rejectBtn, b.clearBtn)
	keysHelp := widget.NewLabelWithStyle("Keys: ↓/J next · ↑/K previous · A accept · R reject · U undo · F fail · M miss · L false alarm",
		fyne.TextAlignLeading, fyne.TextStyle{Italic: true})
	keysHelp.Truncation = fyne.TextTruncateEllipsis

	controls := container.NewVBox(
		container.NewHBox(zoomControls(b.viewer), widget.NewLabel("Heatmap"), container.NewGridWrap(fyne.NewSize(110, 36), b.opacity),
			b.sideBySide, b.thrContour, b.contour),
		legendBox)
	detail := container.NewBorder(controls, container.NewVBox(nav, b.info.box), nil, nil, b.viewer)

	thrRow := container.NewBorder(nil, nil,
		container.NewHBox(widget.NewLabel("Threshold for"), container.NewGridWrap(fyne.NewSize(170, 36), b.scope)),
		container.NewHBox(container.NewGridWrap(fyne.NewSize(110, 36), b.thrEntry), b.summary), b.thr)
	filterRow := container.NewBorder(nil, nil, container.NewHBox(widget.NewLabel("Show"), b.filter, widget.NewLabel("Category"), b.catSel,
		widget.NewLabel("Defect type"), b.typeSel, widget.NewLabel("Sort"), container.NewGridWrap(fyne.NewSize(190, 36), b.sortSel)), nil, keysHelp)
	histBox := container.NewBorder(nil, b.histText, nil, nil, b.hist)
	left := container.NewBorder(nil, container.NewVBox(histBox, b.thrText, b.status), nil, nil, b.list)
	split := container.NewHSplit(left, detail)
	split.Offset = 0.4
	top := container.NewVBox(thrRow, filterRow)
	b.content = container.NewBorder(top, nil, nil, nil, split)
	return b
}

// reviewer is the open project's review store, or nil.
func (b *runBrowser) reviewer() Reviewer {
	r, _ := b.w.project.(Reviewer)
	return r
}

// setRun shows run at its model's thresholds (from the project when it
// keeps them, else the run's own) and with its overrides.
func (b *runBrowser) setRun(run Run) {
	b.run = run
	b.th = review.Thresholds{Global: run.Threshold}
	b.overrides = map[string]Override{}
	b.types = map[string]string{}
	if r := b.reviewer(); r != nil && run.ModelID != "" {
		if t, err := r.Thresholds(run.ModelID); err == nil {
			b.th = t
		} else {
			b.w.showError(fmt.Errorf("thresholds of model %s: %w", run.ModelID, err), "the run's model may have been deleted; its own threshold is used")
		}
		if o, err := r.Overrides(run.ModelID); err == nil {
			b.overrides = o
		} else {
			b.w.showError(fmt.Errorf("reviews of model %s: %w", run.ModelID, err), "run `workstation check` on the project")
		}
	}
	if p := b.w.project; p != nil && len(run.Images) > 0 {
		if recs, err := p.Images(); err == nil {
			for _, r := range recs {
				b.types[r.ID] = r.DefectType
			}
		}
	}
	b.keyMu.Lock()
	clear(b.byKey)
	for _, s := range run.Images {
		b.byKey[OverrideKey(s)] = thumbSource{b.w.project, s}
	}
	b.keyMu.Unlock()

	cats, types := []string{anyChoice}, []string{anyChoice}
	for _, s := range run.Images {
		if s.Category != "" && !slices.Contains(cats, s.Category) {
			cats = append(cats, s.Category)
		}
		if t := defectType(s, b.types); t != "" && !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	slices.Sort(cats[1:])
	slices.Sort(types[1:])
	b.updating = true
	b.catSel.Options, b.typeSel.Options = cats, types
	b.catSel.SetSelectedIndex(0)
	b.typeSel.SetSelectedIndex(0)
	b.scope.Options = append([]string{scopeAll}, cats[1:]...)
	b.scope.SetSelectedIndex(0)
	b.updating = false

	b.selected = -1
	b.base, b.mask, b.baseKey = nil, nil, ""
	b.viewer.SetImage(nil, false)
	b.info.SetText("Select an image.")
	b.list.UnselectAll()
	b.scopeChanged()
	b.applyFilter()
}

// scopeCategory is the category whose threshold the slider edits, "" for all.
func (b *runBrowser) scopeCategory() string {
	if s := b.scope.Selected; s != scopeAll {
		return s
	}
	return ""
}

// scopeChanged puts the slider on the threshold of the chosen scope.
func (b *runBrowser) scopeChanged() {
	if b.updating {
		return
	}
	t := b.th.Global
	if c := b.scopeCategory(); c != "" {
		t = b.th.For(c)
	}
	b.setSlider(t)
	b.refreshDecisions()
}

// setSlider moves the slider to t without storing anything, its range
// covering the scope's scores and t.
func (b *runBrowser) setSlider(t float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	c := b.scopeCategory()
	for _, s := range b.run.Images {
		if c == "" || s.Category == c {
			lo, hi = math.Min(lo, s.Score), math.Max(hi, s.Score)
		}
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	lo, hi = math.Min(lo, t), math.Max(hi, t)
	if hi == lo {
		hi = lo + 1
	}
	// A margin lets the slider pass every image or fail every image.
	pad := (hi - lo) * 0.01
	b.updating = true
	b.thr.Min, b.thr.Max = lo-pad, hi+pad
	b.thr.Value = math.NaN() // SetValue ignores an unchanged value
	b.thr.SetValue(t)
	b.updating = false
	b.threshold = t
	b.thrEntry.SetText(formatThreshold(t))
}

// formatThreshold is how every screen writes a threshold.
func formatThreshold(t float64) string { return strconv.FormatFloat(t, 'f', 4, 64) }

// applyThreshold makes t the threshold of the scope (every category when
// the scope is all) and re-decides.
func (b *runBrowser) applyThreshold(t float64) {
	b.threshold = t
	b.th.Set(b.scopeCategory(), t)
	b.thrEntry.SetText(formatThreshold(t))
	b.refreshDecisions()
}

// setThresholdValue sets the scope's threshold to t (moving the slider's
// range if needed); save stores it with the model.
func (b *runBrowser) setThresholdValue(t float64, save bool) {
	b.setSlider(t)
	b.applyThreshold(t)
	if save {
		b.saveThresholds()
	}
}

func (b *runBrowser) typeThreshold(s string) {
	t, err := strconv.ParseFloat(strings.TrimSpace(strings.ReplaceAll(s, ",", ".")), 64)
	if err != nil || math.IsNaN(t) || math.IsInf(t, 0) {
		b.w.showError(fmt.Errorf("threshold %q is not a number", s), "type a decimal number such as 0.65")
		b.thrEntry.SetText(formatThreshold(b.threshold))
		return
	}
	b.setThresholdValue(t, true)
	b.w.win.Canvas().Unfocus() // the review keys work again
}

// saveThresholds stores the thresholds with the run's model.
func (b *runBrowser) saveThresholds() {
	r := b.reviewer()
	if r == nil || b.run.ModelID == "" {
		return
	}
	if err := r.SetThresholds(b.run.ModelID, b.th); err != nil {
		b.w.showError(fmt.Errorf("save the thresholds of model %s: %w", b.run.ModelID, err), "check that the project file is writable")
	}
}

// refreshDecisions re-decides every image and redraws what depends on it.
func (b *runBrowser) refreshDecisions() {
	b.topNorm = 1.25
	for _, s := range b.run.Images {
		b.topNorm = math.Max(b.topNorm, heatmap.Normalise(s.Score, b.th.For(s.Category)))
	}
	b.legend.Image = heatmap.Legend(256, 12, b.topNorm)
	b.legend.Refresh()
	b.legendHi.SetText(fmt.Sprintf("%.2f", b.topNorm))
	b.thrText.SetText(b.thresholdsText())
	b.updateSummary()
	b.updateHistogram()
	if b.filter.Selected != filterImages && b.filter.Selected != "" {
		b.applyFilter() // the verdicts decide what the filter shows
	} else {
		b.list.Refresh()
	}
	b.showInfo()
	b.recompose()
	if b.onDecisions != nil {
		b.onDecisions()
	}
}

// thresholdsText lists the thresholds in force.
func (b *runBrowser) thresholdsText() string {
	cats := make([]string, 0, len(b.th.PerCategory))
	for c := range b.th.PerCategory {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	var parts []string
	for _, c := range cats {
		parts = append(parts, c+" "+formatThreshold(b.th.PerCategory[c]))
	}
	txt := "Model " + orDash(b.run.ModelID) + " decides at " + formatThreshold(b.th.Global)
	if len(parts) > 0 {
		txt += " (per category: " + strings.Join(parts, " · ") + ")"
	}
	if b.reviewer() != nil && b.run.ModelID != "" {
		txt += "; changes are saved with the model"
	}
	return txt
}

// verdict is the model's verdict on s at its category's threshold.
func (b *runBrowser) verdict(s ScoredImage) string { return b.th.Verdict(s.Category, s.Score) }

func (b *runBrowser) isMiss(s ScoredImage) bool {
	return s.Label == LabelDefect && b.verdict(s) == VerdictPass
}

func (b *runBrowser) isFalseAlarm(s ScoredImage) bool {
	return s.Label == LabelGood && b.verdict(s) == VerdictFail
}

// counts returns the pass and fail counts of the whole run.
func (b *runBrowser) counts() (pass, fail int) {
	for _, s := range b.run.Images {
		if b.verdict(s) == VerdictFail {
			fail++
		} else {
			pass++
		}
	}
	return pass, fail
}

// errors counts false alarms and missed defects among labelled images.
func (b *runBrowser) errors() (fp, fn int, labelled bool) {
	for _, s := range b.run.Images {
		labelled = labelled || s.Label != LabelUnknown
		if b.isFalseAlarm(s) {
			fp++
		}
		if b.isMiss(s) {
			fn++
		}
	}
	return fp, fn, labelled
}

func (b *runBrowser) updateSummary() {
	pass, fail := b.counts()
	txt := fmt.Sprintf("%d fail · %d pass", fail, pass)
	if fp, fn, ok := b.errors(); ok {
		txt += fmt.Sprintf(" · %d false alarms · %d missed defects", fp, fn)
	}
	reviewed, overridden := 0, 0
	for _, s := range b.run.Images {
		if o, ok := b.overrides[OverrideKey(s)]; ok {
			reviewed++
			if !o.Accepted {
				overridden++
			}
		}
	}
	if reviewed > 0 {
		txt += fmt.Sprintf(" · %d reviewed (%d overridden)", reviewed, overridden)
	}
	b.summary.SetText(txt)
}

// applyFilter rebuilds the shown list from the filters and the sort,
// keeping the selected image selected when it is still shown.
func (b *runBrowser) applyFilter() {
	if b.updating {
		return
	}
	var keep string
	if b.selected >= 0 && b.selected < len(b.sorted) {
		keep = OverrideKey(b.sorted[b.selected])
	}
	b.sorted = b.sorted[:0]
	for _, s := range b.run.Images {
		if b.shows(s) {
			b.sorted = append(b.sorted, s)
		}
	}
	switch b.sortSel.Selected {
	case sortScoreUp:
		slices.SortStableFunc(b.sorted, func(x, y ScoredImage) int { return cmp.Compare(x.Score, y.Score) })
	case sortName:
		slices.SortStableFunc(b.sorted, func(x, y ScoredImage) int { return strings.Compare(displayName(x), displayName(y)) })
	default:
		slices.SortStableFunc(b.sorted, func(x, y ScoredImage) int { return cmp.Compare(y.Score, x.Score) })
	}
	b.selected = -1
	b.list.UnselectAll()
	for i, s := range b.sorted {
		if keep != "" && OverrideKey(s) == keep {
			b.selected = i
			b.list.Select(i)
			break
		}
	}
	if b.selected < 0 && keep != "" {
		b.base, b.mask, b.baseKey = nil, nil, ""
		b.viewer.SetImage(nil, false)
		b.info.SetText("Select an image.")
	}
	b.status.SetText(fmt.Sprintf("%d of %d images shown", len(b.sorted), len(b.run.Images)))
	b.list.Refresh()
}

// shows reports whether the filters let s through.
func (b *runBrowser) shows(s ScoredImage) bool {
	if c := b.catSel.Selected; c != anyChoice && c != "" && s.Category != c {
		return false
	}
	if t := b.typeSel.Selected; t != anyChoice && t != "" && defectType(s, b.types) != t {
		return false
	}
	return b.matches(s, b.filter.Selected)
}

// matches reports whether s is of the kind a filter names.
func (b *runBrowser) matches(s ScoredImage, kind string) bool {
	o, reviewed := b.overrides[OverrideKey(s)]
	switch kind {
	case filterFails:
		return b.verdict(s) == VerdictFail
	case filterPasses:
		return b.verdict(s) == VerdictPass
	case filterMisses:
		return b.isMiss(s)
	case filterFalseAlarms:
		return b.isFalseAlarm(s)
	case filterUnreviewed:
		return !reviewed
	case filterReviewed:
		return reviewed
	case filterOverridden:
		return reviewed && !o.Accepted
	}
	return true
}

// displayName is category/[defect folder/]file, as the list shows it.
func displayName(s ScoredImage) string {
	// MVTec-style folders reuse file names across defect types: show the
	// parent folder too when it is not the category itself.
	where, parent := s.Category, filepath.Base(filepath.Dir(s.Path))
	switch {
	case where == "":
		where = parent
	case parent != where:
		where += "/" + parent
	}
	return where + "/" + filepath.Base(s.Path)
}

type rowParts struct {
	thumb  *canvas.Image
	badge  *canvas.Rectangle
	badgeT *canvas.Text
	text   *widget.Label
	review *widget.Label
}

func (b *runBrowser) newRow() fyne.CanvasObject {
	thumb := canvas.NewImageFromImage(nil)
	thumb.FillMode = canvas.ImageFillContain
	thumb.SetMinSize(fyne.NewSize(rowThumb, rowThumb))
	badge := canvas.NewRectangle(passColor)
	badge.SetMinSize(fyne.NewSize(44, 20))
	badge.CornerRadius = 4
	txt := canvas.NewText("PASS", color.White)
	txt.TextStyle.Bold = true
	txt.TextSize = 11
	txt.Alignment = fyne.TextAlignCenter
	label := widget.NewLabel("0.000  category/image.png  (defect)")
	label.Truncation = fyne.TextTruncateEllipsis
	rev := widget.NewLabel("")
	return container.NewBorder(nil, nil, container.NewHBox(thumb, container.NewCenter(container.NewStack(badge, txt))), rev, label)
}

func (b *runBrowser) rowParts(o fyne.CanvasObject) rowParts {
	c := o.(*fyne.Container)
	left := c.Objects[1].(*fyne.Container)
	stack := left.Objects[1].(*fyne.Container).Objects[0].(*fyne.Container)
	return rowParts{thumb: left.Objects[0].(*canvas.Image), badge: stack.Objects[0].(*canvas.Rectangle),
		badgeT: stack.Objects[1].(*canvas.Text), text: c.Objects[0].(*widget.Label), review: c.Objects[2].(*widget.Label)}
}

func (b *runBrowser) updateRow(i widget.ListItemID, o fyne.CanvasObject) {
	if i < 0 || i >= len(b.sorted) {
		return
	}
	s := b.sorted[i]
	r := b.rowParts(o)
	if b.verdict(s) == VerdictFail {
		r.badge.FillColor, r.badgeT.Text = failColor, "FAIL"
	} else {
		r.badge.FillColor, r.badgeT.Text = passColor, "PASS"
	}
	r.badge.Refresh()
	r.badgeT.Refresh()
	label := ""
	if s.Label != LabelUnknown {
		label = "  (" + string(s.Label) + ")"
	}
	r.text.SetText(fmt.Sprintf("%.4f  %s%s", s.Score, displayName(s), label))
	r.review.SetText(reviewTag(b.overrides[OverrideKey(s)]))
	key := OverrideKey(s)
	b.rowMu.Lock()
	b.rowKey[r.thumb] = key
	b.rowMu.Unlock()
	if img, ok := b.thumbs.cached(key); ok {
		r.thumb.Image = img
		r.thumb.Refresh()
		return
	}
	r.thumb.Image = nil
	r.thumb.Refresh()
	thumb := r.thumb
	b.thumbs.request(key, func(img image.Image) {
		fyne.Do(func() {
			// Only this row's image changes (a list relayout from here raced
			// with the list's own under the test driver, which runs fyne.Do
			// on the calling goroutine); a recycled row shows another key.
			b.rowMu.Lock()
			same := b.rowKey[thumb] == key
			b.rowMu.Unlock()
			if same {
				thumb.Image = img
				thumb.Refresh()
			}
		})
	})
}

// reviewTag is the list's mark of a review: ✓ accepted, ✗ → final verdict.
func reviewTag(o Override) string {
	switch {
	case o.Image == "":
		return ""
	case o.Accepted:
		return "✓ " + o.Who
	}
	return "✗ " + strings.ToUpper(o.Final()) + " · " + o.Who
}

// loadThumb decodes a listed image for its thumbnail (worker goroutine).
func (b *runBrowser) loadThumb(key string) (image.Image, error) {
	b.keyMu.Lock()
	src, ok := b.byKey[key]
	b.keyMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("thumbnail %s: no longer listed", key)
	}
	if src.s.ImageID != "" && src.p != nil {
		return src.p.LoadImage(src.s.ImageID)
	}
	return decodeFile(src.s.Path)
}

func (b *runBrowser) show(i int) {
	if i < 0 || i >= len(b.sorted) {
		return
	}
	b.selected = i
	s := b.sorted[i]
	b.showInfo()
	key := OverrideKey(s)
	if b.base != nil && key == b.baseKey {
		b.recompose() // re-selected after a filter or threshold change
		return
	}
	p := b.w.project
	b.w.background(func(context.Context) {
		img, mask, err := loadScored(p, s)
		fyne.Do(func() {
			if b.selected != i {
				return
			}
			if err != nil {
				b.w.showError(err, "check that the image file still exists")
				return
			}
			b.base, b.mask, b.baseKey = toRGBA(img), mask, key
			b.recompose()
		})
	})
}

// showInfo describes the selected image: verdict, threshold, review.
func (b *runBrowser) showInfo() {
	if b.selected < 0 || b.selected >= len(b.sorted) {
		return
	}
	s := b.sorted[b.selected]
	t := b.th.For(s.Category)
	txt := fmt.Sprintf("%s\nscore %.4f (%.2f × threshold) → %s at %s (%s) · label %s · defect type %s", s.Path, s.Score,
		heatmap.Normalise(s.Score, t), strings.ToUpper(b.verdict(s)), formatThreshold(t), orDash(s.Category),
		orDash(string(s.Label)), orDash(defectType(s, b.types)))
	if o, ok := b.overrides[OverrideKey(s)]; ok {
		what := "accepted the model's " + strings.ToUpper(o.ModelVerdict)
		if !o.Accepted {
			what = "rejected the model's " + strings.ToUpper(o.ModelVerdict) + ": final verdict " + strings.ToUpper(o.Final())
		}
		txt += fmt.Sprintf("\nReviewed: %s %s on %s", o.Who, what, o.When.Local().Format("2006-01-02 15:04"))
	}
	b.info.SetText(txt)
}

// loadScored loads a scored image and its ground-truth mask (nil if none).
func loadScored(p Project, s ScoredImage) (image.Image, *image.Gray, error) {
	var img image.Image
	var err error
	if s.ImageID != "" && p != nil {
		img, err = p.LoadImage(s.ImageID)
	} else {
		img, err = decodeFile(s.Path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", s.Path, err)
	}
	var mask *image.Gray
	if s.ImageID != "" && p != nil {
		mask, err = p.Mask(s.ImageID)
		if errors.Is(err, ErrNoMask) {
			mask, err = nil, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("load mask of %s: %w", s.Path, err)
		}
	}
	if mask == nil && s.MaskPath != "" {
		m, err := decodeFile(s.MaskPath)
		if err != nil {
			return nil, nil, fmt.Errorf("load mask %s: %w", s.MaskPath, err)
		}
		mask = toGray(m)
	}
	return img, mask, nil
}

func decodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

func toGray(img image.Image) *image.Gray {
	b := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		for x := range b.Dx() {
			if color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray).Y >= 128 {
				g.Pix[y*g.Stride+x] = 255
			}
		}
	}
	return g
}

// overlay draws the heatmap of s over base: colour only where the
// (peak-calibrated) map is at or above the category's threshold, the
// outline of that region, and the ground-truth contour.
func (b *runBrowser) overlay(s ScoredImage, base *image.RGBA, mask *image.Gray) *image.RGBA {
	ov := heatmap.Render(base, s.Map, s.MapW, s.MapH, s.Score,
		heatmap.Style{Threshold: b.th.For(s.Category), Top: b.topNorm, Opacity: b.opacity.Value, Outline: b.thrContour.Checked})
	if b.contour.Checked && mask != nil {
		assets.DrawContour(ov, mask, color.RGBA{255, 255, 255, 255})
	}
	return ov
}

// recompose redraws the selected image (beside its heatmap when asked).
func (b *runBrowser) recompose() {
	if b.base == nil || b.selected < 0 || b.selected >= len(b.sorted) {
		return
	}
	var img image.Image = b.overlay(b.sorted[b.selected], b.base, b.mask)
	if b.sideBySide.Checked {
		gap := max(4, b.base.Bounds().Dx()/40)
		img = heatmap.SideBySide(b.base, img, gap, color.RGBA{40, 40, 44, 255})
	}
	b.viewer.SetImage(img, true)
}

// lineLabels shows text one truncated label per line, so that its height
// is fixed (a wrapped label under-reports its height in a Border's bottom).
type lineLabels struct {
	box   *fyne.Container
	lines []*widget.Label
	// Text is the whole text.
	Text string
}

func newLineLabels(n int) *lineLabels {
	l := &lineLabels{box: container.NewVBox()}
	for range n {
		lab := widget.NewLabel("")
		lab.Truncation = fyne.TextTruncateEllipsis
		l.lines = append(l.lines, lab)
		l.box.Add(lab)
	}
	return l
}

// SetText shows s, line by line (lines beyond the labels are dropped).
func (l *lineLabels) SetText(s string) {
	l.Text = s
	parts := strings.Split(s, "\n")
	for i, lab := range l.lines {
		if i < len(parts) {
			lab.SetText(parts[i])
		} else {
			lab.SetText("")
		}
	}
}

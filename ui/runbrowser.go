package ui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/assets"
)

// runBrowser lists a run's images by score with pass/fail badges at a
// threshold, and shows one image with its heatmap overlay.
type runBrowser struct {
	w       *Workstation
	content fyne.CanvasObject

	run       Run
	sorted    []ScoredImage
	threshold float64
	lo, hi    float64

	thr     *widget.Slider
	thrText *widget.Label
	summary *widget.Label
	list    *widget.List

	viewer   *ZoomImage
	opacity  *widget.Slider
	contour  *widget.Check
	info     *widget.Label
	legendLo *widget.Label
	legendHi *widget.Label

	selected int
	base     *image.RGBA
	mask     *image.Gray
	// onThreshold is called when the user moves the threshold.
	onThreshold func(float64)
}

var (
	failColor = color.NRGBA{220, 50, 47, 255}
	passColor = color.NRGBA{40, 160, 70, 255}
)

func newRunBrowser(w *Workstation) *runBrowser {
	b := &runBrowser{w: w, selected: -1}
	b.thr = widget.NewSlider(0, 1)
	b.thr.Step = 0.001
	b.thr.OnChanged = func(t float64) {
		b.setThreshold(t)
		if b.onThreshold != nil {
			b.onThreshold(t)
		}
	}
	b.thrText = widget.NewLabel("")
	b.summary = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	b.list = widget.NewList(func() int { return len(b.sorted) }, func() fyne.CanvasObject {
		badge := canvas.NewRectangle(passColor)
		badge.SetMinSize(fyne.NewSize(44, 20))
		badge.CornerRadius = 4
		txt := canvas.NewText("PASS", color.White)
		txt.TextStyle.Bold = true
		txt.TextSize = 11
		txt.Alignment = fyne.TextAlignCenter
		return container.NewBorder(nil, nil, container.NewCenter(container.NewStack(badge, txt)), nil, widget.NewLabel("0.000  category/image.png  (defect)"))
	}, b.updateRow)
	b.list.OnSelected = func(i widget.ListItemID) { b.show(i) }

	b.viewer = NewZoomImage()
	b.opacity = widget.NewSlider(0, 1)
	b.opacity.Step = 0.05
	b.opacity.SetValue(0.5)
	b.opacity.OnChanged = func(float64) { b.recompose() }
	b.contour = widget.NewCheck("Ground-truth contour", func(bool) { b.recompose() })
	b.contour.SetChecked(true)
	b.info = widget.NewLabel("Select an image.")
	b.info.Wrapping = fyne.TextWrapWord
	legend := canvas.NewImageFromImage(assets.Legend(256, 12))
	legend.FillMode = canvas.ImageFillStretch
	legend.SetMinSize(fyne.NewSize(160, 12))
	b.legendLo, b.legendHi = widget.NewLabel("0"), widget.NewLabel("1")
	legendBox := container.NewHBox(widget.NewLabel("Anomaly map"), b.legendLo, container.NewCenter(legend), b.legendHi)
	controls := container.NewVBox(
		container.NewHBox(zoomControls(b.viewer), widget.NewLabel("Heatmap opacity"), container.NewGridWrap(fyne.NewSize(140, 36), b.opacity), b.contour),
		legendBox)
	detail := container.NewBorder(controls, b.info, nil, nil, b.viewer)
	top := container.NewBorder(nil, nil, widget.NewLabel("Threshold"), container.NewHBox(b.thrText, b.summary), b.thr)
	split := container.NewHSplit(b.list, detail)
	split.Offset = 0.38
	b.content = container.NewBorder(top, nil, nil, nil, split)
	return b
}

// setRun shows run at threshold t (NaN keeps the run's own threshold).
func (b *runBrowser) setRun(run Run, t float64) {
	b.run = run
	b.sorted = slices.Clone(run.Images)
	slices.SortStableFunc(b.sorted, func(x, y ScoredImage) int {
		switch {
		case x.Score > y.Score:
			return -1
		case x.Score < y.Score:
			return 1
		}
		return 0
	})
	lo, hi := math.Inf(1), math.Inf(-1)
	mlo, mhi := math.Inf(1), math.Inf(-1)
	for _, s := range run.Images {
		lo, hi = math.Min(lo, s.Score), math.Max(hi, s.Score)
		for _, v := range s.Map {
			mlo, mhi = math.Min(mlo, float64(v)), math.Max(mhi, float64(v))
		}
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	if hi == lo {
		hi = lo + 1
	}
	if mlo > mhi {
		mlo, mhi = lo, hi
	}
	b.lo, b.hi = mlo, mhi
	b.legendLo.SetText(fmt.Sprintf("%.3g", mlo))
	b.legendHi.SetText(fmt.Sprintf("%.3g", mhi))
	if math.IsNaN(t) {
		t = run.Threshold
	}
	// A margin lets the slider pass every image or fail every image.
	pad := (hi - lo) * 0.01
	b.thr.Min, b.thr.Max = lo-pad, hi+pad
	b.thr.Step = (b.thr.Max - b.thr.Min) / 1000
	b.selected = -1
	b.base, b.mask = nil, nil
	b.viewer.SetImage(nil, false)
	b.info.SetText("Select an image.")
	b.list.UnselectAll()
	b.thr.SetValue(math.Max(b.thr.Min, math.Min(b.thr.Max, t)))
	b.setThreshold(b.thr.Value)
	b.list.Refresh()
}

// setThreshold re-decides every image at t.
func (b *runBrowser) setThreshold(t float64) {
	b.threshold = t
	pass, fail := b.counts()
	b.thrText.SetText(fmt.Sprintf("%.4g", t))
	txt := fmt.Sprintf("%d fail · %d pass", fail, pass)
	if fp, fn, ok := b.errors(); ok {
		txt += fmt.Sprintf(" · %d false alarms · %d missed defects", fp, fn)
	}
	b.summary.SetText(txt)
	b.list.Refresh()
}

// counts returns the pass and fail counts at the current threshold.
func (b *runBrowser) counts() (pass, fail int) {
	for _, s := range b.sorted {
		if s.Score >= b.threshold {
			fail++
		} else {
			pass++
		}
	}
	return pass, fail
}

// errors counts false alarms and missed defects among labelled images.
func (b *runBrowser) errors() (fp, fn int, labelled bool) {
	for _, s := range b.sorted {
		switch s.Label {
		case LabelGood:
			labelled = true
			if s.Score >= b.threshold {
				fp++
			}
		case LabelDefect:
			labelled = true
			if s.Score < b.threshold {
				fn++
			}
		}
	}
	return fp, fn, labelled
}

func (b *runBrowser) updateRow(i widget.ListItemID, o fyne.CanvasObject) {
	s := b.sorted[i]
	c := o.(*fyne.Container)
	lbl := c.Objects[0].(*widget.Label)
	stack := c.Objects[1].(*fyne.Container).Objects[0].(*fyne.Container)
	rect, txt := stack.Objects[0].(*canvas.Rectangle), stack.Objects[1].(*canvas.Text)
	if s.Score >= b.threshold {
		rect.FillColor, txt.Text = failColor, "FAIL"
	} else {
		rect.FillColor, txt.Text = passColor, "PASS"
	}
	rect.Refresh()
	txt.Refresh()
	label := ""
	if s.Label != LabelUnknown {
		label = "  (" + string(s.Label) + ")"
	}
	// MVTec-style folders reuse file names across defect types: show the
	// parent folder too when it is not the category itself.
	where, parent := s.Category, filepath.Base(filepath.Dir(s.Path))
	switch {
	case where == "":
		where = parent
	case parent != where:
		where += "/" + parent
	}
	lbl.SetText(fmt.Sprintf("%.4f  %s/%s%s", s.Score, where, filepath.Base(s.Path), label))
}

func (b *runBrowser) show(i int) {
	if i < 0 || i >= len(b.sorted) {
		return
	}
	b.selected = i
	s := b.sorted[i]
	decision := "PASS"
	if s.Score >= b.threshold {
		decision = "FAIL"
	}
	b.info.SetText(fmt.Sprintf("%s\nscore %.4f → %s at threshold %.4g · category %s · label %s", s.Path, s.Score, decision, b.threshold, s.Category, orDash(string(s.Label))))
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
			b.base, b.mask = toRGBA(img), mask
			b.recompose()
		})
	})
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

// recompose redraws the overlay of the selected image.
func (b *runBrowser) recompose() {
	if b.base == nil || b.selected < 0 {
		return
	}
	s := b.sorted[b.selected]
	ov := assets.HeatmapOverlay(b.base, s.Map, s.MapW, s.MapH, b.lo, b.hi, b.opacity.Value)
	if b.contour.Checked && b.mask != nil {
		assets.DrawContour(ov, b.mask, color.RGBA{255, 255, 255, 255})
	}
	b.viewer.SetImage(ov, true)
}

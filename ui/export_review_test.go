package ui

import (
	"image"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/core/review"
)

// ReviewBrowser is the test handle of the Results or Inspect gallery.
type ReviewBrowser struct{ b *runBrowser }

// ResultsReview returns the Results gallery.
func (w *Workstation) ResultsReview() ReviewBrowser { return ReviewBrowser{w.results.browser} }

// InspectReview returns the Inspect gallery.
func (w *Workstation) InspectReview() ReviewBrowser { return ReviewBrowser{w.inspect.browser} }

// TypeKey sends a key to the window as the driver does when no widget has the focus.
func (w *Workstation) TypeKey(name fyne.KeyName) {
	w.win.Canvas().OnTypedKey()(&fyne.KeyEvent{Name: name})
}

// Selected is the key of the selected image ("" when none).
func (r ReviewBrowser) Selected() string {
	if r.b.selected < 0 || r.b.selected >= len(r.b.sorted) {
		return ""
	}
	return OverrideKey(r.b.sorted[r.b.selected])
}

// SelectedIndex is the index of the selected image in the shown list.
func (r ReviewBrowser) SelectedIndex() int { return r.b.selected }

// Shown are the shown images in order.
func (r ReviewBrowser) Shown() []ScoredImage { return r.b.sorted }

// Verdict is the model's verdict on s in the view.
func (r ReviewBrowser) Verdict(s ScoredImage) string { return r.b.verdict(s) }

// Thresholds are the thresholds the view decides with.
func (r ReviewBrowser) Thresholds() review.Thresholds { return r.b.th.Clone() }

// ThresholdText is the typed-value field's text.
func (r ReviewBrowser) ThresholdText() string { return r.b.thrEntry.Text }

// ThresholdEntry is the typed-value field.
func (r ReviewBrowser) ThresholdEntry() *widget.Entry { return r.b.thrEntry }

// Slider is the threshold slider.
func (r ReviewBrowser) Slider() *widget.Slider { return r.b.thr }

// Scope selects the threshold's scope ("every category" or a category).
func (r ReviewBrowser) Scope() *widget.Select { return r.b.scope }

// Filter, Category, DefectType and Sort are the list's selects.
func (r ReviewBrowser) Filter() *widget.Select     { return r.b.filter }
func (r ReviewBrowser) Category() *widget.Select   { return r.b.catSel }
func (r ReviewBrowser) DefectType() *widget.Select { return r.b.typeSel }
func (r ReviewBrowser) Sort() *widget.Select       { return r.b.sortSel }

// Summary and Info are the summary line and the selected image's description.
func (r ReviewBrowser) Summary() string { return r.b.summary.Text }
func (r ReviewBrowser) Info() string    { return r.b.info.Text }

// RowReview is the review mark the list shows on row i.
func (r ReviewBrowser) RowReview(i int) string {
	o := r.b.newRow()
	r.b.updateRow(i, o)
	return r.b.rowParts(o).review.Text
}

// Accept is the Accept button.
func (r ReviewBrowser) Accept() *widget.Button { return r.b.acceptBtn }

// Histogram returns the histogram widget and its good/defect totals and line.
func (r ReviewBrowser) Histogram() (w fyne.Tappable, good, defect int, line, lo, hi float64) {
	h := r.b.hist
	for i := range h.good {
		good += h.good[i]
		defect += h.defect[i]
	}
	return h, good, defect, h.line, h.lo, h.hi
}

// HistogramLineX is the threshold line's column in a drawing w wide, and
// the drawing's pixel there.
func (r ReviewBrowser) HistogramLineX(w, h int) (int, [4]uint8) {
	img := r.b.hist.draw(w, h).(*image.RGBA)
	x := r.b.hist.lineX(w)
	o := img.PixOffset(x, h/2)
	return x, [4]uint8(img.Pix[o : o+4])
}

// HistogramSize is the histogram's size on screen.
func (r ReviewBrowser) HistogramSize() fyne.Size { return r.b.hist.Size() }

// ViewerImage is the image the viewer shows.
func (r ReviewBrowser) ViewerImage() (w, h int) {
	if r.b.viewer.img == nil {
		return 0, 0
	}
	b := r.b.viewer.img.Bounds()
	return b.Dx(), b.Dy()
}

// Compare returns the Results comparison's result and rows after choosing runs a and b.
func (w *Workstation) Compare(a, b int) (review.Comparison, [][]string) {
	c := w.results.compare
	c.selA.SetSelectedIndex(a)
	c.selB.SetSelectedIndex(b)
	c.compare()
	return c.result, c.rows
}

// ResultsEvaluateButton is Results' "Evaluate latest model" button.
func (w *Workstation) ResultsEvaluateButton() *widget.Button { return w.results.evalBtn }

// ShowCompareTab shows Results' comparison tab.
func (w *Workstation) ShowCompareTab() { w.results.tabs.SelectIndex(3) }

// Capture returns the window's pixels (as the screenshots do).
func (w *Workstation) Capture() image.Image { return w.capture() }

// ResultsFastSearch is Results' "Fast search" check.
func (w *Workstation) ResultsFastSearch() *widget.Check { return w.results.fast }

// InspectFastSearch is Inspect's "Fast search" check.
func (w *Workstation) InspectFastSearch() *widget.Check { return w.inspect.fast }

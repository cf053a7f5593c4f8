package ui

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/core/review"
)

// histBins is the number of bins of the score histogram.
const histBins = 40

// scoreHistogram draws good and defect scores as two overlaid histograms
// (green and red, unlabelled grey) with the threshold as a vertical line.
// Tapping it moves the threshold there when onTap is set and the axis is
// in score units.
type scoreHistogram struct {
	widget.BaseWidget
	raster *canvas.Raster

	lo, hi                float64
	line                  float64
	good, defect, unknown []int
	// tappable is false when the axis is not in score units (threshold
	// units over categories with their own thresholds).
	tappable bool
	onTap    func(v float64)
}

var (
	histBG      = color.RGBA{30, 30, 34, 255}
	histGood    = color.RGBA{60, 180, 90, 255}
	histDefect  = color.RGBA{225, 60, 55, 255}
	histUnknown = color.RGBA{150, 150, 160, 255}
)

func newScoreHistogram(onTap func(float64)) *scoreHistogram {
	h := &scoreHistogram{onTap: onTap, lo: 0, hi: 1}
	h.raster = canvas.NewRaster(h.draw)
	h.ExtendBaseWidget(h)
	return h
}

// set shows items binned over [lo, hi] with the line at threshold.
func (h *scoreHistogram) set(items []review.Item, lo, hi, threshold float64, tappable bool) {
	if !(hi > lo) {
		hi = lo + 1
	}
	h.lo, h.hi, h.line, h.tappable = lo, hi, threshold, tappable
	h.good, h.defect, h.unknown = review.Histogram(items, lo, hi, histBins)
	h.Refresh()
}

// lineX is the threshold line's x in a drawing w pixels wide.
func (h *scoreHistogram) lineX(w int) int {
	return int(math.Round((h.line - h.lo) / (h.hi - h.lo) * float64(w-1)))
}

func (h *scoreHistogram) draw(w, ht int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, ht))
	draw.Draw(img, img.Bounds(), &image.Uniform{histBG}, image.Point{}, draw.Src)
	if w < 2 || ht < 2 || len(h.good) == 0 {
		return img
	}
	peak := 1
	for i := range h.good {
		peak = max(peak, h.good[i], h.defect[i], h.unknown[i])
	}
	// Each class is drawn half-transparent so overlapping bins show both.
	for k, counts := range [][]int{h.unknown, h.good, h.defect} {
		c := [...]color.RGBA{histUnknown, histGood, histDefect}[k]
		for i, n := range counts {
			if n == 0 {
				continue
			}
			x0, x1 := i*w/histBins, max((i+1)*w/histBins-1, i*w/histBins+1)
			top := ht - 1 - int(math.Round(float64(n)/float64(peak)*float64(ht-4)))
			for y := top; y < ht; y++ {
				for x := x0; x < x1 && x < w; x++ {
					o := img.PixOffset(x, y)
					img.Pix[o] = uint8((uint16(img.Pix[o]) + uint16(c.R)) / 2)
					img.Pix[o+1] = uint8((uint16(img.Pix[o+1]) + uint16(c.G)) / 2)
					img.Pix[o+2] = uint8((uint16(img.Pix[o+2]) + uint16(c.B)) / 2)
				}
			}
		}
	}
	if x := h.lineX(w); x >= 0 && x < w {
		for y := range ht {
			for dx := -1; dx <= 1; dx++ {
				if xx := x + dx; xx >= 0 && xx < w {
					img.SetRGBA(xx, y, color.RGBA{255, 255, 255, 255})
				}
			}
		}
	}
	return img
}

// valueAt is the score under x of a widget of width w.
func (h *scoreHistogram) valueAt(x, w float32) float64 {
	if w <= 0 {
		return h.lo
	}
	return h.lo + float64(x/w)*(h.hi-h.lo)
}

// Tapped implements fyne.Tappable: the threshold moves to the tapped score.
func (h *scoreHistogram) Tapped(ev *fyne.PointEvent) {
	if h.onTap != nil && h.tappable {
		h.onTap(h.valueAt(ev.Position.X, h.Size().Width))
	}
}

// MinSize keeps the histogram readable.
func (h *scoreHistogram) MinSize() fyne.Size { return fyne.NewSize(260, 90) }

// CreateRenderer implements fyne.Widget.
func (h *scoreHistogram) CreateRenderer() fyne.WidgetRenderer {
	return widget.NewSimpleRenderer(h.raster)
}

// updateHistogram bins the run's scores of the threshold's scope: in score
// units with the scope's threshold, or — over every category when they
// have thresholds of their own — in threshold units with the line at 1.0.
func (b *runBrowser) updateHistogram() {
	c := b.scopeCategory()
	ownThresholds := false
	for _, v := range b.th.PerCategory {
		ownThresholds = ownThresholds || v != b.th.Global
	}
	normalised := c == "" && ownThresholds
	var items []review.Item
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range b.run.Images {
		if c != "" && s.Category != c {
			continue
		}
		v := s.Score
		if normalised {
			v = s.Score / math.Max(1e-12, math.Abs(b.th.For(s.Category)))
		}
		items = append(items, review.Item{Label: string(s.Label), Score: v})
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	line := b.threshold
	if normalised {
		line = 1
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	lo, hi = math.Min(lo, line), math.Max(hi, line)
	pad := math.Max((hi-lo)*0.03, 1e-6)
	b.hist.set(items, lo-pad, hi+pad, line, !normalised)
	good, defect, unknown := 0, 0, 0
	for i := range b.hist.good {
		good += b.hist.good[i]
		defect += b.hist.defect[i]
		unknown += b.hist.unknown[i]
	}
	txt := fmt.Sprintf("%d good (green) · %d defect (red)", good, defect)
	if unknown > 0 {
		txt += fmt.Sprintf(" · %d unlabelled (grey)", unknown)
	}
	if normalised {
		txt += " · x: score ÷ its category's threshold, line at 1.0"
	} else {
		txt += " · line: threshold " + formatThreshold(line) + " (tap to move it)"
	}
	b.histText.SetText(txt)
}

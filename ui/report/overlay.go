package report

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"github.com/dmad/workstation/assets"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/inspection"
	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Overlay sizes: the long side of the image part, so that small images are
// readable and large ones stay light.
const (
	overlayMinSide = 480
	overlayMaxSide = 768
)

var (
	failColour = color.RGBA{R: 190, G: 30, B: 30, A: 255}
	passColour = color.RGBA{R: 20, G: 120, B: 50, A: 255}
	ink        = color.RGBA{R: 20, G: 20, B: 20, A: 255}
	paper      = color.RGBA{R: 255, G: 255, B: 255, A: 255}
	// maskOutline is the ground-truth mask's contour.
	maskOutline = color.RGBA{R: 0, G: 255, B: 0, A: 255}
)

// faces are the Go fonts (golang.org/x/image/font/gofont) at the sizes a
// report needs, made on first use. Not safe for concurrent use.
type faces struct {
	regular, bold *opentype.Font
	made          map[[2]int]font.Face
}

func newFaces() (*faces, error) {
	r, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return nil, fmt.Errorf("report: font: %w", err)
	}
	b, err := opentype.Parse(gobold.TTF)
	if err != nil {
		return nil, fmt.Errorf("report: font: %w", err)
	}
	return &faces{regular: r, bold: b, made: map[[2]int]font.Face{}}, nil
}

func (f *faces) face(size int, bold bool) font.Face {
	k := [2]int{size, 0}
	ft := f.regular
	if bold {
		k[1], ft = 1, f.bold
	}
	if fc, ok := f.made[k]; ok {
		return fc
	}
	fc, err := opentype.NewFace(ft, &opentype.FaceOptions{Size: float64(size), DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		// Only an invalid size fails, and sizes are clamped positive.
		panic(fmt.Sprintf("report: font face of size %d: %v", size, err))
	}
	f.made[k] = fc
	return fc
}

// text draws s with its baseline's left end at (x, y) and returns its width.
func text(dst draw.Image, fc font.Face, c color.Color, x, y int, s string) int {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: fc, Dot: fixed.P(x, y)}
	d.DrawString(s)
	return d.Dot.X.Round() - x
}

func textWidth(fc font.Face, s string) int { return font.MeasureString(fc, s).Round() }

// overlay draws the heatmap over img as the desktop application does:
// colour only where the (peak-calibrated) map is at or above the threshold
// thr, on a ramp that ends at top (threshold units, see heatmap.Normalise),
// with the outline of that region and the mask's contour. The result is
// scaled so its long side is between overlayMinSide and overlayMaxSide,
// under a banner with the item's number, verdict, score and threshold,
// above a legend.
func overlay(fs *faces, img image.Image, mask *image.Gray, it Item, n int, thr, top, opacity float64) *image.RGBA {
	ov := heatmap.Render(img, it.Map, it.MapW, it.MapH, it.Score, heatmap.Style{Threshold: thr, Top: top, Opacity: opacity, Outline: true})
	if mask != nil && mask.Bounds().Size() == ov.Bounds().Size() {
		assets.DrawContour(ov, mask, maskOutline)
	}
	w, h := ov.Bounds().Dx(), ov.Bounds().Dy()
	long := max(w, h, 1)
	scale := 1.0
	switch {
	case long > overlayMaxSide:
		scale = float64(overlayMaxSide) / float64(long)
	case long < overlayMinSide:
		scale = float64(overlayMinSide) / float64(long)
	}
	sw, sh := max(1, int(math.Round(float64(w)*scale))), max(1, int(math.Round(float64(h)*scale)))
	size := min(26, max(13, sw/28))
	bold, regular := fs.face(size, true), fs.face(size, false)
	small := fs.face(max(11, size*4/5), false)
	line := size * 3 / 2
	banner := 2*line + size/2
	legendH := size + line + size/2
	out := image.NewRGBA(image.Rect(0, 0, sw, banner+sh+legendH))
	draw.Draw(out, out.Bounds(), image.NewUniform(paper), image.Point{}, draw.Src)
	xdraw.CatmullRom.Scale(out, image.Rect(0, banner, sw, banner+sh), ov, ov.Bounds(), draw.Src, nil)

	verdict, final := inspection.Decision(it.Score, thr), inspection.Decision(it.Score, thr)
	if it.Override != nil {
		final = it.Override.Verdict
	}
	bg := passColour
	if final == inspection.Fail {
		bg = failColour
	}
	draw.Draw(out, image.Rect(0, 0, sw, line+size/4), image.NewUniform(bg), image.Point{}, draw.Src)
	x := size / 2
	x += text(out, bold, paper, x, size+size/8, fmt.Sprintf("#%d  %s", n, upper(final)))
	text(out, regular, paper, x+size, size+size/8, fmt.Sprintf("score %.4f / threshold %.4f", it.Score, thr))
	desc := it.Category
	if it.DefectType != "" {
		desc += " · " + it.DefectType
	}
	switch {
	case it.Label == inspection.LabelDefect && final == inspection.Pass:
		desc += " · MISSED DEFECT"
	case it.Label == inspection.LabelGood && final == inspection.Fail:
		desc += " · FALSE ALARM"
	}
	if it.Override != nil && it.Override.Verdict != verdict {
		desc += " · model said " + verdict
		if it.Override.By != "" {
			desc += ", overridden by " + it.Override.By
		}
	}
	text(out, regular, ink, size/2, line+size/4+size+size/8, desc)
	drawLegend(out, small, image.Rect(size/2, banner+sh+size/4, sw-size/2, banner+sh+size/4+size), top)
	return out
}

// drawLegend draws heatmap.Legend's scale in bar, 0 to top threshold
// units, with the threshold marked and named.
func drawLegend(dst *image.RGBA, fc font.Face, bar image.Rectangle, top float64) {
	top = math.Max(top, 1.05) // as heatmap.Legend
	g := heatmap.Legend(bar.Dx(), bar.Dy(), top)
	draw.Draw(dst, bar, g, image.Point{}, draw.Src)
	base := bar.Max.Y + fc.Metrics().Ascent.Round() + 2
	text(dst, fc, ink, bar.Min.X, base, "0")
	hiText := fmt.Sprintf("%.2f× threshold", top)
	text(dst, fc, ink, bar.Max.X-textWidth(fc, hiText), base, hiText)
	x := bar.Min.X + heatmap.ThresholdX(bar.Dx(), top)
	for y := bar.Min.Y - 3; y < bar.Max.Y+3; y++ {
		dst.SetRGBA(x, y, ink)
	}
	label := "threshold (1.0)"
	lx := min(max(bar.Min.X+textWidth(fc, "0  "), x-textWidth(fc, label)/2), bar.Max.X-textWidth(fc, hiText+"  ")-textWidth(fc, label))
	text(dst, fc, ink, lx, base, label)
}

// legendImage is the colour legend alone, w pixels wide, for the reports.
func legendImage(fs *faces, w int, top float64) *image.RGBA {
	fc := fs.face(14, false)
	out := image.NewRGBA(image.Rect(0, 0, w, 48))
	draw.Draw(out, out.Bounds(), image.NewUniform(paper), image.Point{}, draw.Src)
	drawLegend(out, fc, image.Rect(8, 6, w-8, 22), top)
	return out
}

func upper(v string) string {
	switch v {
	case inspection.Fail:
		return "FAIL"
	case inspection.Pass:
		return "PASS"
	}
	return v
}

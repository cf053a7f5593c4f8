// Package assets holds the workstation's embedded resources and the
// heatmap colouring helpers. It imports no GUI toolkit.
package assets

import (
	"image"
	"image/color"
	"image/draw"
	"math"
)

// turboCoeffs are the polynomial approximation of Google's Turbo colour map
// (Mikhailov 2019, Apache-2.0), one row per channel, degree 0..5.
var turboCoeffs = [3][6]float64{
	{0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943},
	{0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604},
	{0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973},
}

// Turbo maps v in [0, 1] (clamped) to the Turbo colour map: blue for low,
// red for high.
func Turbo(v float64) color.RGBA {
	if math.IsNaN(v) || v < 0 {
		v = 0
	} else if v > 1 {
		v = 1
	}
	var c [3]uint8
	for ch := range 3 {
		k := turboCoeffs[ch]
		x := k[0] + v*(k[1]+v*(k[2]+v*(k[3]+v*(k[4]+v*k[5]))))
		c[ch] = uint8(math.Round(255 * math.Min(1, math.Max(0, x))))
	}
	return color.RGBA{c[0], c[1], c[2], 255}
}

// Legend draws a horizontal Turbo gradient of w×h pixels, low on the left.
func Legend(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		c := Turbo(float64(x) / float64(max(1, w-1)))
		for y := range h {
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// HeatmapOverlay blends an anomaly map over img. The map (mapW×mapH,
// row-major) is sampled bilinearly to the image's size, normalised with
// lo..hi to [0, 1] and coloured with Turbo; opacity in [0, 1] is the weight
// of the heatmap.
func HeatmapOverlay(img image.Image, m []float32, mapW, mapH int, lo, hi, opacity float64) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	if mapW <= 0 || mapH <= 0 || len(m) < mapW*mapH || opacity <= 0 {
		return out
	}
	span := hi - lo
	if span <= 0 {
		span = 1
	}
	var lut [256][3]float64
	for i := range lut {
		c := Turbo(float64(i) / 255)
		lut[i] = [3]float64{opacity * float64(c.R), opacity * float64(c.G), opacity * float64(c.B)}
	}
	w, h := b.Dx(), b.Dy()
	type tap struct {
		i0, i1 int
		a      float64
	}
	taps := func(n, mapN int) []tap {
		t := make([]tap, n)
		for k := range t {
			f := math.Max(0, math.Min(float64(mapN-1), (float64(k)+0.5)/float64(n)*float64(mapN)-0.5))
			i0 := int(f)
			t[k] = tap{i0, min(i0+1, mapN-1), f - float64(i0)}
		}
		return t
	}
	xs, ys := taps(w, mapW), taps(h, mapH)
	keep := 1 - opacity
	for y := range h {
		ty := ys[y]
		r0, r1 := m[ty.i0*mapW:], m[ty.i1*mapW:]
		row := out.Pix[y*out.Stride:]
		for x := range w {
			tx := xs[x]
			top := (1-tx.a)*float64(r0[tx.i0]) + tx.a*float64(r0[tx.i1])
			bot := (1-tx.a)*float64(r1[tx.i0]) + tx.a*float64(r1[tx.i1])
			v := ((1-ty.a)*top + ty.a*bot - lo) / span
			k := int(math.Round(255 * math.Max(0, math.Min(1, v))))
			c := &lut[k]
			o := 4 * x
			row[o] = uint8(math.Round(keep*float64(row[o]) + c[0]))
			row[o+1] = uint8(math.Round(keep*float64(row[o+1]) + c[1]))
			row[o+2] = uint8(math.Round(keep*float64(row[o+2]) + c[2]))
			row[o+3] = 255
		}
	}
	return out
}

// DrawContour paints, in c, every defect pixel of mask (value ≥ 128) that
// touches a normal pixel or the border, onto dst. mask and dst must have the
// same size; a size mismatch draws nothing.
func DrawContour(dst *image.RGBA, mask *image.Gray, c color.RGBA) {
	mb, db := mask.Bounds(), dst.Bounds()
	if mb.Dx() != db.Dx() || mb.Dy() != db.Dy() {
		return
	}
	w, h := mb.Dx(), mb.Dy()
	on := func(x, y int) bool {
		if x < 0 || y < 0 || x >= w || y >= h {
			return false
		}
		return mask.Pix[y*mask.Stride+x] >= 128
	}
	for y := range h {
		for x := range w {
			if on(x, y) && (!on(x-1, y) || !on(x+1, y) || !on(x, y-1) || !on(x, y+1)) {
				dst.SetRGBA(db.Min.X+x, db.Min.Y+y, c)
			}
		}
	}
}

// Package assets holds the workstation's embedded resources and the
// heatmap colouring helpers. It imports no GUI toolkit.
package assets

import (
	"image"
	"image/color"
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
	span := hi - lo
	if span <= 0 {
		span = 1
	}
	valid := mapW > 0 && mapH > 0 && len(m) >= mapW*mapH
	for y := range b.Dy() {
		for x := range b.Dx() {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			base := [3]float64{float64(r >> 8), float64(g >> 8), float64(bl >> 8)}
			if !valid || opacity <= 0 {
				out.SetRGBA(x, y, color.RGBA{uint8(base[0]), uint8(base[1]), uint8(base[2]), 255})
				continue
			}
			v := sampleBilinear(m, mapW, mapH, (float64(x)+0.5)/float64(b.Dx())*float64(mapW)-0.5, (float64(y)+0.5)/float64(b.Dy())*float64(mapH)-0.5)
			c := Turbo((v - lo) / span)
			hc := [3]float64{float64(c.R), float64(c.G), float64(c.B)}
			var px [3]uint8
			for i := range 3 {
				px[i] = uint8(math.Round((1-opacity)*base[i] + opacity*hc[i]))
			}
			out.SetRGBA(x, y, color.RGBA{px[0], px[1], px[2], 255})
		}
	}
	return out
}

func sampleBilinear(m []float32, w, h int, fx, fy float64) float64 {
	fx = math.Max(0, math.Min(float64(w-1), fx))
	fy = math.Max(0, math.Min(float64(h-1), fy))
	x0, y0 := int(fx), int(fy)
	x1, y1 := min(x0+1, w-1), min(y0+1, h-1)
	ax, ay := fx-float64(x0), fy-float64(y0)
	v00 := float64(m[y0*w+x0])
	v01 := float64(m[y0*w+x1])
	v10 := float64(m[y1*w+x0])
	v11 := float64(m[y1*w+x1])
	return (1-ay)*((1-ax)*v00+ax*v01) + ay*((1-ax)*v10+ax*v11)
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

package heatmap

import (
	"image"
	"image/color"
	"image/draw"
	"math"
)

// The colouring of this file answers "where is the part above the
// decision threshold, and by how much": pixels below the threshold keep the
// original image untouched (a clean white bottle stays white), pixels at or
// above it are tinted on a yellow → red → magenta ramp, and the region's
// outline is traced by a smooth contour. Scores are shown in threshold
// units (Normalise: 1.0 is the threshold), so one legend reads the same for
// every model and category.

// Normalise expresses v in threshold units: v / threshold, so the threshold
// is 1.0 and 1.5 is half as much again. A threshold ≤ 0 (no scale to divide
// by) shifts instead: v − threshold + 1.
func Normalise(v, threshold float64) float64 {
	if threshold > 0 {
		return v / threshold
	}
	return v - threshold + 1
}

// PeakCalibrated returns m scaled so that its maximum equals score. The
// pixel map is smoothed (and stored maps are box-averaged), which lowers
// its peak below the image score (the mean of the top patches): a
// borderline image that fails would otherwise show no pixel above the
// threshold. After calibration an image fails exactly when some pixel of
// its map reaches the threshold. A map whose maximum is not positive is
// returned as a copy.
func PeakCalibrated(m []float32, score float64) []float32 {
	out := make([]float32, len(m))
	copy(out, m)
	var peak float32
	for i, v := range m {
		if i == 0 || v > peak {
			peak = v
		}
	}
	if len(m) == 0 || peak <= 0 || math.IsNaN(score) {
		return out
	}
	k := float32(score / float64(peak))
	for i := range out {
		out[i] *= k
	}
	return out
}

// rampStops are the colours of the above-threshold ramp, from just at the
// threshold (0) to the top of the scale (1).
var rampStops = [...][3]float64{{255, 230, 40}, {255, 140, 0}, {230, 20, 20}, {200, 0, 160}}

// AboveColor is the ramp colour of frac in [0, 1] (clamped): 0 at the
// threshold, 1 at the top of the scale.
func AboveColor(frac float64) color.RGBA {
	if math.IsNaN(frac) || frac < 0 {
		frac = 0
	} else if frac > 1 {
		frac = 1
	}
	x := frac * float64(len(rampStops)-1)
	i := min(int(x), len(rampStops)-2)
	f := x - float64(i)
	a, b := rampStops[i], rampStops[i+1]
	return color.RGBA{uint8(math.Round(a[0] + f*(b[0]-a[0]))), uint8(math.Round(a[1] + f*(b[1]-a[1]))),
		uint8(math.Round(a[2] + f*(b[2]-a[2]))), 255}
}

// alphaAt is the heatmap's weight at frac for the user's opacity: never
// below half the opacity, so a region just above the threshold shows.
func alphaAt(frac, opacity float64) float64 {
	return opacity * (0.5 + 0.5*math.Max(0, math.Min(1, frac)))
}

// sampler samples a row-major mapW×mapH map bilinearly at an image of
// w×h pixels (pixel centres, clamped at the edges).
type sampler struct {
	m          []float32
	mapW       int
	xs, ys     []tapF
	imgW, imgH int
}

type tapF struct {
	i0, i1 int
	a      float64
}

func newSampler(m []float32, mapW, mapH, w, h int) sampler {
	taps := func(n, mapN int) []tapF {
		t := make([]tapF, n)
		for k := range t {
			f := math.Max(0, math.Min(float64(mapN-1), (float64(k)+0.5)/float64(n)*float64(mapN)-0.5))
			i0 := int(f)
			t[k] = tapF{i0, min(i0+1, mapN-1), f - float64(i0)}
		}
		return t
	}
	return sampler{m: m, mapW: mapW, xs: taps(w, mapW), ys: taps(h, mapH), imgW: w, imgH: h}
}

func (s sampler) at(x, y int) float64 {
	tx, ty := s.xs[x], s.ys[y]
	r0, r1 := s.m[ty.i0*s.mapW:], s.m[ty.i1*s.mapW:]
	top := (1-tx.a)*float64(r0[tx.i0]) + tx.a*float64(r0[tx.i1])
	bot := (1-tx.a)*float64(r1[tx.i0]) + tx.a*float64(r1[tx.i1])
	return (1-ty.a)*top + ty.a*bot
}

// OverlayAbove draws img with the anomaly map m (mapW×mapH, row-major, in
// score units, sampled bilinearly to the image) tinted where it is at or
// above threshold. Below the threshold the image is unchanged. Above it the
// colour runs from the threshold (frac 0) to top (frac 1; a score, e.g. the
// highest of the run), and opacity in [0, 1] weighs the tint.
func OverlayAbove(img image.Image, m []float32, mapW, mapH int, threshold, top, opacity float64) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	if mapW <= 0 || mapH <= 0 || len(m) < mapW*mapH || opacity <= 0 || b.Empty() {
		return out
	}
	nTop := Normalise(top, threshold)
	span := nTop - 1
	if !(span > 1e-9) {
		span = 0.5
	}
	var lut [256][4]float64 // colour·alpha, and 1 − alpha
	for i := range lut {
		frac := float64(i) / 255
		c, a := AboveColor(frac), alphaAt(frac, opacity)
		lut[i] = [4]float64{a * float64(c.R), a * float64(c.G), a * float64(c.B), 1 - a}
	}
	s := newSampler(m, mapW, mapH, b.Dx(), b.Dy())
	for y := range b.Dy() {
		row := out.Pix[y*out.Stride:]
		for x := range b.Dx() {
			v := s.at(x, y)
			if v < threshold {
				continue
			}
			frac := (Normalise(v, threshold) - 1) / span
			c := &lut[int(math.Round(255*math.Max(0, math.Min(1, frac))))]
			o := 4 * x
			row[o] = uint8(math.Round(c[3]*float64(row[o]) + c[0]))
			row[o+1] = uint8(math.Round(c[3]*float64(row[o+1]) + c[1]))
			row[o+2] = uint8(math.Round(c[3]*float64(row[o+2]) + c[2]))
		}
	}
	return out
}

// Segment is one piece of a contour line, in map coordinates whose unit is
// one map cell and whose origin is the top-left corner of the map (cell
// centres lie at i + 0.5).
type Segment struct{ X0, Y0, X1, Y1 float64 }

// Contour traces the iso-line of m (w×h, row-major) at level by marching
// squares with linear interpolation along cell edges: a smooth outline of
// the region where m ≥ level. Saddle cells are resolved by the cell's mean.
func Contour(m []float32, w, h int, level float64) []Segment {
	if w < 2 || h < 2 || len(m) < w*h {
		return nil
	}
	var segs []Segment
	val := func(x, y int) float64 { return float64(m[y*w+x]) }
	// interp returns the point on the edge between corners p and q where
	// the map crosses level.
	interp := func(px, py, pv, qx, qy, qv float64) (float64, float64) {
		t := 0.5
		if d := qv - pv; d != 0 {
			t = math.Max(0, math.Min(1, (level-pv)/d))
		}
		return px + t*(qx-px) + 0.5, py + t*(qy-py) + 0.5
	}
	for y := range h - 1 {
		for x := range w - 1 {
			fx, fy := float64(x), float64(y)
			a, b, c, d := val(x, y), val(x+1, y), val(x+1, y+1), val(x, y+1) // tl, tr, br, bl
			idx := 0
			if a >= level {
				idx |= 8
			}
			if b >= level {
				idx |= 4
			}
			if c >= level {
				idx |= 2
			}
			if d >= level {
				idx |= 1
			}
			if idx == 0 || idx == 15 {
				continue
			}
			// Edge points: top, right, bottom, left.
			tx, ty := interp(fx, fy, a, fx+1, fy, b)
			rx, ry := interp(fx+1, fy, b, fx+1, fy+1, c)
			bx, by := interp(fx, fy+1, d, fx+1, fy+1, c)
			lx, ly := interp(fx, fy, a, fx, fy+1, d)
			add := func(x0, y0, x1, y1 float64) { segs = append(segs, Segment{x0, y0, x1, y1}) }
			switch idx {
			case 1, 14:
				add(lx, ly, bx, by)
			case 2, 13:
				add(bx, by, rx, ry)
			case 3, 12:
				add(lx, ly, rx, ry)
			case 4, 11:
				add(tx, ty, rx, ry)
			case 6, 9:
				add(tx, ty, bx, by)
			case 7, 8:
				add(lx, ly, tx, ty)
			case 5, 10:
				centre := (a + b + c + d) / 4
				if (centre >= level) == (idx == 5) {
					add(lx, ly, tx, ty)
					add(bx, by, rx, ry)
				} else {
					add(lx, ly, bx, by)
					add(tx, ty, rx, ry)
				}
			}
		}
	}
	return segs
}

// DrawSegments draws contour segments (map coordinates of a mapW×mapH map)
// onto dst, scaled to dst's size, as lines of the given width in pixels
// with soft (anti-aliased) edges.
func DrawSegments(dst *image.RGBA, segs []Segment, mapW, mapH int, c color.RGBA, width float64) {
	b := dst.Bounds()
	if mapW <= 0 || mapH <= 0 || b.Empty() {
		return
	}
	sx, sy := float64(b.Dx())/float64(mapW), float64(b.Dy())/float64(mapH)
	half := math.Max(0.5, width/2)
	for _, s := range segs {
		x0, y0, x1, y1 := s.X0*sx, s.Y0*sy, s.X1*sx, s.Y1*sy
		minX, maxX := int(math.Floor(math.Min(x0, x1)-half-1)), int(math.Ceil(math.Max(x0, x1)+half+1))
		minY, maxY := int(math.Floor(math.Min(y0, y1)-half-1)), int(math.Ceil(math.Max(y0, y1)+half+1))
		dx, dy := x1-x0, y1-y0
		l2 := dx*dx + dy*dy
		for py := max(minY, 0); py < min(maxY, b.Dy()); py++ {
			for px := max(minX, 0); px < min(maxX, b.Dx()); px++ {
				cx, cy := float64(px)+0.5, float64(py)+0.5
				t := 0.0
				if l2 > 0 {
					t = math.Max(0, math.Min(1, ((cx-x0)*dx+(cy-y0)*dy)/l2))
				}
				ex, ey := x0+t*dx-cx, y0+t*dy-cy
				a := math.Max(0, math.Min(1, half+0.5-math.Hypot(ex, ey)))
				if a <= 0 {
					continue
				}
				o := py*dst.Stride + 4*px
				p := dst.Pix[o : o+4 : o+4]
				if old := float64(p[3]) / 255; old == 1 {
					p[0] = uint8(math.Round((1-a)*float64(p[0]) + a*float64(c.R)))
					p[1] = uint8(math.Round((1-a)*float64(p[1]) + a*float64(c.G)))
					p[2] = uint8(math.Round((1-a)*float64(p[2]) + a*float64(c.B)))
				} else {
					p[0], p[1], p[2], p[3] = c.R, c.G, c.B, uint8(math.Max(float64(p[3]), 255*a))
				}
			}
		}
	}
}

// SideBySide places a and b next to each other, each at its own size with
// tops aligned, with gap pixels of bg between them (the original beside its
// heatmap).
func SideBySide(a, b image.Image, gap int, bg color.Color) *image.RGBA {
	ab, bb := a.Bounds(), b.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, ab.Dx()+gap+bb.Dx(), max(ab.Dy(), bb.Dy())))
	draw.Draw(out, out.Bounds(), &image.Uniform{bg}, image.Point{}, draw.Src)
	draw.Draw(out, image.Rect(0, 0, ab.Dx(), ab.Dy()), a, ab.Min, draw.Src)
	draw.Draw(out, image.Rect(ab.Dx()+gap, 0, ab.Dx()+gap+bb.Dx(), bb.Dy()), b, bb.Min, draw.Src)
	return out
}

// Legend draws the scale of OverlayAbove as a w×h bar over threshold units
// [0, top] (top ≥ 1, e.g. Normalise of the run's highest score): grey up
// to the threshold (1.0; no colour there), the ramp above it, and a white
// mark at the threshold. ThresholdX says where the mark is.
func Legend(w, h int, top float64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	top = math.Max(top, 1.05)
	mark := ThresholdX(w, top)
	for x := range w {
		n := (float64(x) + 0.5) / float64(w) * top
		c := color.RGBA{110, 110, 110, 255}
		if n >= 1 {
			c = AboveColor((n - 1) / (top - 1))
		}
		if x == mark || x == mark-1 {
			c = color.RGBA{255, 255, 255, 255}
		}
		for y := range h {
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// ThresholdX is the column of the threshold mark in a Legend of width w.
func ThresholdX(w int, top float64) int {
	top = math.Max(top, 1.05)
	return int(math.Round(float64(w) / top))
}

// Style is how Render draws an overlay.
type Style struct {
	// Threshold is the decision threshold (score units).
	Threshold float64
	// Top is where the colour ramp ends, in threshold units (see
	// Normalise; values ≤ 1 are raised to 1.05 as in Legend).
	Top float64
	// Opacity in [0, 1] weighs the tint.
	Opacity float64
	// Outline traces the region at or above the threshold.
	Outline bool
}

// OutlineColor is the colour of Render's threshold outline.
var OutlineColor = color.RGBA{0, 220, 255, 255}

// Render draws the overlay every view of a verdict shares (the desktop
// application, the reports, live inspection): the map m (mapW×mapH) of an
// image whose score is score, peak-calibrated so that a failing image shows
// colour (PeakCalibrated), tinted only at or above the threshold
// (OverlayAbove), with the outline of that region when asked. A missing map
// gives the image unchanged.
func Render(img image.Image, m []float32, mapW, mapH int, score float64, s Style) *image.RGBA {
	if mapW <= 0 || mapH <= 0 || len(m) < mapW*mapH {
		return OverlayAbove(img, nil, 0, 0, s.Threshold, s.Threshold, 0)
	}
	cm := PeakCalibrated(m[:mapW*mapH], score)
	top := math.Max(s.Top, 1.05)
	topScore := s.Threshold * top
	if s.Threshold <= 0 {
		topScore = top + s.Threshold - 1
	}
	ov := OverlayAbove(img, cm, mapW, mapH, s.Threshold, topScore, s.Opacity)
	if s.Outline {
		width := math.Max(1.5, float64(ov.Bounds().Dx())/250)
		DrawSegments(ov, Contour(cm, mapW, mapH, s.Threshold), mapW, mapH, OutlineColor, width)
	}
	return ov
}

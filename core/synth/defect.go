// Package synth makes synthetic anomalies: defects painted on normal images
// (scratches, blobs/stains, procedural textures, cut-and-paste of another
// region) with their ground-truth masks, and tiny synthetic datasets in the
// MVTec AD layout. The defects feed the out-of-distribution part of the
// anomaly bank (METHOD.md §2: DTD is not available offline); the datasets
// serve tests and the demo.
//
// Everything is deterministic for a given *rand.Rand state.
package synth

import (
	"fmt"
	"image"
	"image/draw"
	"math"
	"math/rand/v2"
)

// Kind is a family of synthetic defect.
type Kind int

// Defect kinds.
const (
	Scratch  Kind = iota // thin random polyline, darker or brighter than the surface
	Blob                 // irregular filled stain, colour shifted
	Texture              // procedural texture (value noise, stripes, checker) pasted in a region
	CutPaste             // another region of the same image, flipped and brightness-shifted, pasted
)

// Kinds returns every defect kind, in order.
func Kinds() []Kind { return []Kind{Scratch, Blob, Texture, CutPaste} }

// String returns the kind's name, used as the defect type folder name.
func (k Kind) String() string {
	switch k {
	case Scratch:
		return "scratch"
	case Blob:
		return "blob"
	case Texture:
		return "texture"
	case CutPaste:
		return "cutpaste"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// RandomDefect applies a defect of a kind drawn uniformly from Kinds.
func RandomDefect(img image.Image, rng *rand.Rand) (image.Image, *image.Gray, Kind) {
	k := Kinds()[rng.IntN(len(Kinds()))]
	out, mask := Defect(img, rng, k)
	return out, mask, k
}

// Defect returns a copy of img (as *image.RGBA with bounds at the origin)
// with a synthetic defect of the given kind, and its mask (255 = defect, 0 =
// normal) of the same size. Pixels outside the mask are unchanged; the mask
// is never empty. Defect sizes scale with the image (about 5–30 % of the
// shorter side).
func Defect(img image.Image, rng *rand.Rand, kind Kind) (image.Image, *image.Gray) {
	src := toRGBA(img)
	dst := toRGBA(src)
	b := dst.Bounds()
	mask := image.NewGray(b)
	switch kind {
	case Scratch:
		scratch(dst, mask, rng)
	case Blob:
		blob(dst, mask, rng)
	case Texture:
		texture(dst, mask, rng)
	default:
		cutPaste(src, dst, mask, rng)
	}
	ensureNonEmpty(src, dst, mask, rng)
	return dst, mask
}

// toRGBA copies img into a new RGBA image with bounds at the origin.
func toRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	return out
}

func luma(p []uint8) float64 { return 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2]) }

func clamp8(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// shift moves pixel (x, y) of img away from its own brightness by d (darker
// on bright pixels, brighter on dark ones), with a per-channel tint.
func shift(img *image.RGBA, x, y int, d float64, tint [3]float64) {
	i := img.PixOffset(x, y)
	s := d
	if luma(img.Pix[i:i+3]) > 127 {
		s = -d
	}
	shiftBy(img, x, y, s, tint)
}

// shiftBy adds s (plus a per-channel tint) to pixel (x, y); where clamping
// would leave less than half of the change, it shifts the other way.
func shiftBy(img *image.RGBA, x, y int, s float64, tint [3]float64) {
	i := img.PixOffset(x, y)
	p := img.Pix[i : i+3]
	if l := luma(p); math.Abs(math.Min(255, math.Max(0, l+s))-l) < math.Abs(s)/2 {
		s = -s
	}
	for c := range 3 {
		p[c] = clamp8(float64(p[c]) + s + tint[c])
	}
}

// meanLuma returns the mean brightness of img.
func meanLuma(img *image.RGBA) float64 {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	return patchLuma(img, 0, 0, w, h)
}

func span(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

// scratch draws a thin polyline of 2–4 segments.
func scratch(img *image.RGBA, mask *image.Gray, rng *rand.Rand) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	side := float64(min(w, h))
	radius := math.Max(0.6, span(rng, 0.006, 0.016)*side)
	// One direction for the whole line: dark on a bright surface, bright on
	// a dark one.
	d := span(rng, 80, 127)
	if meanLuma(img) > 127 {
		d = -d
	}
	var tint [3]float64
	x, y := span(rng, 0.2, 0.8)*float64(w), span(rng, 0.2, 0.8)*float64(h)
	angle := span(rng, 0, 2*math.Pi)
	for range 2 + rng.IntN(3) {
		length := span(rng, 0.1, 0.3) * side
		angle += span(rng, -1, 1)
		x1, y1 := x+length*math.Cos(angle), y+length*math.Sin(angle)
		steps := int(length*2) + 1
		for s := 0; s <= steps; s++ {
			t := float64(s) / float64(steps)
			stamp(img, mask, x+(x1-x)*t, y+(y1-y)*t, radius, d, tint)
		}
		x, y = x1, y1
	}
}

// stamp marks the pixels within radius of (cx, cy) and shifts them by s.
func stamp(img *image.RGBA, mask *image.Gray, cx, cy, r, s float64, tint [3]float64) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	for y := max(0, int(cy-r)); y <= min(h-1, int(cy+r)); y++ {
		for x := max(0, int(cx-r)); x <= min(w-1, int(cx+r)); x++ {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			if dx*dx+dy*dy > r*r+0.25 {
				continue
			}
			if i := mask.PixOffset(x, y); mask.Pix[i] == 0 {
				mask.Pix[i] = 255
				shiftBy(img, x, y, s, tint)
			}
		}
	}
}

// blob fills an irregular star-convex shape with a colour-shifted stain.
func blob(img *image.RGBA, mask *image.Gray, rng *rand.Rand) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	side := float64(min(w, h))
	r := span(rng, 0.06, 0.15) * side
	cx, cy := span(rng, r, float64(w)-r), span(rng, r, float64(h)-r)
	var amp, phase [3]float64
	for k := range amp {
		amp[k] = span(rng, 0, 0.25)
		phase[k] = span(rng, 0, 2*math.Pi)
	}
	d := span(rng, 60, 110)
	var tint [3]float64
	for c := range tint {
		tint[c] = span(rng, -30, 30)
	}
	for y := max(0, int(cy-1.8*r)); y <= min(h-1, int(cy+1.8*r)); y++ {
		for x := max(0, int(cx-1.8*r)); x <= min(w-1, int(cx+1.8*r)); x++ {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			th := math.Atan2(dy, dx)
			rr := r
			for k := range amp {
				rr += r * amp[k] * math.Sin(float64(k+2)*th+phase[k])
			}
			dist := math.Hypot(dx, dy)
			if dist > rr {
				continue
			}
			mask.Pix[mask.PixOffset(x, y)] = 255
			// Stronger in the middle, still at least 60 % at the rim.
			shift(img, x, y, d*(1-0.4*dist/math.Max(rr, 1e-9)), tint)
		}
	}
}

// texture pastes a procedural pattern into an ellipse or a rectangle.
func texture(img *image.RGBA, mask *image.Gray, rng *rand.Rand) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	side := float64(min(w, h))
	rx, ry := span(rng, 0.08, 0.2)*side, span(rng, 0.08, 0.2)*side
	cx, cy := span(rng, rx, float64(w)-rx), span(rng, ry, float64(h)-ry)
	ellipse := rng.IntN(2) == 0
	inside := func(x, y int) bool {
		dx, dy := (float64(x)+0.5-cx)/rx, (float64(y)+0.5-cy)/ry
		if ellipse {
			return dx*dx+dy*dy <= 1
		}
		return math.Abs(dx) <= 1 && math.Abs(dy) <= 1
	}
	// Colours on the other side of the region's mean brightness.
	var sum, n float64
	for y := max(0, int(cy-ry)); y <= min(h-1, int(cy+ry)); y++ {
		for x := max(0, int(cx-rx)); x <= min(w-1, int(cx+rx)); x++ {
			i := img.PixOffset(x, y)
			sum += luma(img.Pix[i : i+3])
			n++
		}
	}
	lo, hi := 150.0, 255.0
	if n > 0 && sum/n > 127 {
		lo, hi = 0, 105
	}
	var c0, c1 [3]float64
	for c := range 3 {
		c0[c], c1[c] = span(rng, lo, hi), span(rng, lo, hi)
	}
	pattern := newPattern(rng, side)
	alpha := span(rng, 0.8, 1)
	for y := max(0, int(cy-ry)); y <= min(h-1, int(cy+ry)); y++ {
		for x := max(0, int(cx-rx)); x <= min(w-1, int(cx+rx)); x++ {
			if !inside(x, y) {
				continue
			}
			mask.Pix[mask.PixOffset(x, y)] = 255
			t := pattern(float64(x), float64(y))
			i := img.PixOffset(x, y)
			for c := range 3 {
				v := c0[c] + (c1[c]-c0[c])*t
				img.Pix[i+c] = clamp8((1-alpha)*float64(img.Pix[i+c]) + alpha*v)
			}
		}
	}
}

// newPattern returns a random procedural pattern with values in [0, 1]:
// value noise, stripes or a checker board.
func newPattern(rng *rand.Rand, side float64) func(x, y float64) float64 {
	switch rng.IntN(3) {
	case 0:
		return valueNoise(rng, span(rng, 0.03, 0.08)*side)
	case 1:
		period := math.Max(2, span(rng, 0.03, 0.08)*side)
		a := span(rng, 0, math.Pi)
		ca, sa := math.Cos(a), math.Sin(a)
		return func(x, y float64) float64 { return 0.5 + 0.5*math.Sin(2*math.Pi*(x*ca+y*sa)/period) }
	default:
		cell := math.Max(2, span(rng, 0.02, 0.06)*side)
		return func(x, y float64) float64 {
			return float64((int(math.Floor(x/cell)) + int(math.Floor(y/cell))) & 1)
		}
	}
}

// valueNoise returns smooth 2-octave value noise with the given cell size:
// random values on a hashed lattice, interpolated with smoothstep.
func valueNoise(rng *rand.Rand, cell float64) func(x, y float64) float64 {
	cell = math.Max(cell, 1.5)
	const size = 64
	lattice := make([]float64, size*size)
	for i := range lattice {
		lattice[i] = rng.Float64()
	}
	at := func(i, j int) float64 { return lattice[(j&(size-1))*size+(i&(size-1))] }
	octave := func(x, y float64) float64 {
		fx, fy := math.Floor(x), math.Floor(y)
		i, j := int(fx), int(fy)
		tx, ty := x-fx, y-fy
		tx, ty = tx*tx*(3-2*tx), ty*ty*(3-2*ty)
		a := at(i, j) + (at(i+1, j)-at(i, j))*tx
		b := at(i, j+1) + (at(i+1, j+1)-at(i, j+1))*tx
		return a + (b-a)*ty
	}
	return func(x, y float64) float64 {
		return (2*octave(x/cell, y/cell) + octave(2*x/cell+17, 2*y/cell+31)) / 3
	}
}

// cutPaste copies a rectangle of src to another place of dst, flipped or
// rotated at random and brightness-shifted.
func cutPaste(src, dst *image.RGBA, mask *image.Gray, rng *rand.Rand) {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	pw := max(2, int(span(rng, 0.1, 0.3)*float64(w)))
	ph := max(2, int(span(rng, 0.1, 0.3)*float64(h)))
	sx, sy := rng.IntN(w-pw+1), rng.IntN(h-ph+1)
	var dx, dy int
	for try := 0; try < 8; try++ {
		dx, dy = rng.IntN(w-pw+1), rng.IntN(h-ph+1)
		if abs(dx-sx) >= pw/2 || abs(dy-sy) >= ph/2 {
			break
		}
	}
	flipX, flipY := rng.IntN(2) == 0, rng.IntN(2) == 0
	// The brightness shift goes the way the patch already differs from
	// what it covers, so that the two add up instead of cancelling.
	var diff float64
	for y := range ph {
		for x := range pw {
			si, di := src.PixOffset(sx+x, sy+y), src.PixOffset(dx+x, dy+y)
			diff += luma(src.Pix[si:si+3]) - luma(src.Pix[di:di+3])
		}
	}
	bright := span(rng, 30, 55)
	if diff < 0 || (diff == 0 && rng.IntN(2) == 0) {
		bright = -bright
	}
	// Stay inside [0, 255] on average: towards the middle on extreme patches.
	if m := patchLuma(src, sx, sy, pw, ph); (m > 200 && bright > 0) || (m < 55 && bright < 0) {
		bright = -bright
	}
	for y := range ph {
		for x := range pw {
			ux, uy := x, y
			if flipX {
				ux = pw - 1 - x
			}
			if flipY {
				uy = ph - 1 - y
			}
			si := src.PixOffset(sx+ux, sy+uy)
			di := dst.PixOffset(dx+x, dy+y)
			for c := range 3 {
				dst.Pix[di+c] = clamp8(float64(src.Pix[si+c]) + bright)
			}
			mask.Pix[mask.PixOffset(dx+x, dy+y)] = 255
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// ensureNonEmpty marks and shifts one pixel if a defect left the mask empty
// (only possible on degenerate, tiny images).
func ensureNonEmpty(src, dst *image.RGBA, mask *image.Gray, rng *rand.Rand) {
	for _, v := range mask.Pix {
		if v != 0 {
			return
		}
	}
	x, y := rng.IntN(mask.Rect.Dx()), rng.IntN(mask.Rect.Dy())
	copy(dst.Pix[dst.PixOffset(x, y):], src.Pix[src.PixOffset(x, y):src.PixOffset(x, y)+4])
	mask.Pix[mask.PixOffset(x, y)] = 255
	shift(dst, x, y, 100, [3]float64{})
}

// patchLuma returns the mean brightness of a rectangle of img.
func patchLuma(img *image.RGBA, x0, y0, w, h int) float64 {
	var sum float64
	for y := y0; y < y0+h; y++ {
		for x := x0; x < x0+w; x++ {
			i := img.PixOffset(x, y)
			sum += luma(img.Pix[i : i+3])
		}
	}
	return sum / float64(w*h)
}

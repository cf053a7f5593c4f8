package encoder

import (
	"image"
	"math"

	"github.com/dmad/workstation/core/imageio"
)

// axis holds the resampling taps of one axis: output o reads source
// samples start[o] … start[o]+len(w[o])−1 with weights w[o] (summing to 1).
type axis struct {
	start []int
	w     [][]float32
}

// newAxis computes the taps that map a source axis of n samples onto the
// output span [off, off+span) in output coordinates, of which outputs
// 0 … out−1 are kept (a crop when off < 0 or span > out). The filter is a
// triangle (bilinear) on pixel centres whose support widens by the
// downscaling factor, as in PIL's antialiased resize: shrinking averages,
// it never skips pixels. Taps outside the source are dropped and the rest
// renormalised (edge pixels repeat).
func newAxis(n, off, span, out int) axis {
	scale := float64(n) / float64(span)
	ss := math.Max(scale, 1)
	a := axis{start: make([]int, out), w: make([][]float32, out)}
	for o := range out {
		center := (float64(o-off) + 0.5) * scale
		lo := max(int(math.Floor(center-ss-0.5))+1, 0)
		hi := min(int(math.Ceil(center+ss-0.5)), n)
		var ws []float32
		var sum float64
		for i := lo; i < hi; i++ {
			x := math.Abs((float64(i) + 0.5 - center) / ss)
			v := 0.0
			if x < 1 {
				v = 1 - x
			}
			ws = append(ws, float32(v))
			sum += v
		}
		if sum == 0 { // cannot happen with hi > lo, but be safe: nearest pixel
			i := min(max(int(center), 0), n-1)
			lo, ws, sum = i, []float32{1}, 1
		}
		for k := range ws {
			ws[k] = float32(float64(ws[k]) / sum)
		}
		// Trim zero weights at the ends.
		for len(ws) > 1 && ws[0] == 0 {
			ws, lo = ws[1:], lo+1
		}
		for len(ws) > 1 && ws[len(ws)-1] == 0 {
			ws = ws[:len(ws)-1]
		}
		a.start[o], a.w[o] = lo, ws
	}
	return a
}

// span is the range of source samples any output reads.
func (a axis) span() (lo, hi int) {
	lo, hi = a.start[0], 0
	for o, s := range a.start {
		lo = min(lo, s)
		hi = max(hi, s+len(a.w[o]))
	}
	return lo, hi
}

// resample renders img with the encoder geometry into an S×S image of k
// interleaved float32 channels holding 0..255 values: k = 3 (R, G, B,
// alpha-premultiplied) or k = 1 (grey; colour images are converted to luma
// first). dst must hold S·S·k values.
func resample(dst []float32, img image.Image, cfg Config, k int) {
	s := cfg.InputSize
	b := img.Bounds()
	dr := cfg.Geometry(b.Dx(), b.Dy())
	ax := newAxis(b.Dx(), dr.Min.X, dr.Dx(), s)
	ay := newAxis(b.Dy(), dr.Min.Y, dr.Dy(), s)

	// Source as 8-bit rows: pix[y*stride + x*bpp + c].
	var pix []uint8
	var stride, bpp int
	switch {
	case k == 1:
		g := imageio.ToGray(img)
		pix, stride, bpp = g.Pix, g.Stride, 1
	default:
		if g, ok := img.(*image.Gray); ok && g.Rect.Min == (image.Point{}) {
			pix, stride, bpp = g.Pix, g.Stride, 1
		} else {
			r := imageio.ToRGBA(img)
			pix, stride, bpp = r.Pix, r.Stride, 4
		}
	}
	srcCh := min(bpp, 3) // channels read from the source: 1 (grey) or 3

	// Horizontal pass over the rows the vertical taps need.
	y0, y1 := ay.span()
	tmp := make([]float32, (y1-y0)*s*srcCh)
	for y := y0; y < y1; y++ {
		row := pix[y*stride:]
		out := tmp[(y-y0)*s*srcCh:]
		for o := range s {
			st, ws := ax.start[o], ax.w[o]
			if srcCh == 1 {
				var v float32
				for t, w := range ws {
					v += w * float32(row[st+t])
				}
				out[o] = v
				continue
			}
			var r, g, bl float32
			p := row[st*bpp:]
			for t, w := range ws {
				q := p[t*bpp : t*bpp+3]
				r += w * float32(q[0])
				g += w * float32(q[1])
				bl += w * float32(q[2])
			}
			out[3*o], out[3*o+1], out[3*o+2] = r, g, bl
		}
	}
	// Vertical pass; a grey source fills all k channels.
	rowLen := s * srcCh
	acc := make([]float32, rowLen)
	for o := range s {
		clear(acc)
		st, ws := ay.start[o], ay.w[o]
		for t, w := range ws {
			src := tmp[(st+t-y0)*rowLen : (st+t-y0+1)*rowLen]
			for i, v := range src {
				acc[i] += w * v
			}
		}
		out := dst[o*s*k : (o+1)*s*k]
		switch {
		case srcCh == k:
			copy(out, acc)
		default: // grey source, 3 channels wanted
			for x, v := range acc {
				out[3*x], out[3*x+1], out[3*x+2] = v, v, v
			}
		}
	}
}

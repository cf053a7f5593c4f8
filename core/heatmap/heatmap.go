// Package heatmap turns patch scores into what an inspector sees: the
// image score, and the pixel anomaly map (bilinear upsampling of the patch
// grid, then Gaussian smoothing, as PatchCore and DMAD do), plus the
// resampling both the encoder (masks to the patch grid) and the stored
// thumbnails need. It has no dependencies: one implementation each.
package heatmap

import (
	"fmt"
	"math"
	"sort"
)

// ImageScore reduces patch scores to image scores: the maximum (PatchCore)
// and the mean of the five highest (DMAD's image score; all of them when
// there are fewer than five). Empty input gives zeros.
func ImageScore(patchScores []float32) (maxScore, top5Mean float32) {
	if len(patchScores) == 0 {
		return 0, 0
	}
	s := append([]float32(nil), patchScores...)
	sort.Slice(s, func(i, j int) bool { return s[i] > s[j] })
	n := min(5, len(s))
	var sum float64
	for _, v := range s[:n] {
		sum += float64(v)
	}
	return s[0], float32(sum / float64(n))
}

// AnomalyMap turns an h0×w0 grid of patch scores (row-major) into an
// outH×outW pixel map: bilinear upsampling with align_corners=False
// semantics (PyTorch F.interpolate: source coordinate (x + 0.5)·in/out −
// 0.5, clamped at 0), then Gaussian smoothing with sigma (PatchCore and
// DMAD use 4) at the output resolution; sigma ≤ 0 skips the smoothing.
// It panics if len(scores) != h0·w0 or a size is not positive.
func AnomalyMap(scores []float32, h0, w0, outH, outW int, sigma float64) []float32 {
	if len(scores) != h0*w0 || outH <= 0 || outW <= 0 || h0 <= 0 || w0 <= 0 {
		panic(fmt.Sprintf("anomaly map: %d scores for a %d×%d grid, output %d×%d", len(scores), h0, w0, outH, outW))
	}
	out := ResizeBilinear(scores, h0, w0, outH, outW)
	if sigma > 0 {
		GaussianSmooth(out, outH, outW, sigma)
	}
	return out
}

// GaussianSmooth filters an h×w map in place with a separable Gaussian of
// standard deviation sigma, truncated at radius ⌊4σ + 0.5⌋ and normalised,
// with mirror ("reflect": d c b a | a b c d) borders — the behaviour of
// scipy.ndimage.gaussian_filter, which PatchCore applies.
func GaussianSmooth(m []float32, h, w int, sigma float64) {
	kern, radius := gaussianKernel(sigma)
	if radius == 0 {
		return
	}
	// Each line is copied once with its mirrored borders around it
	// (padded[radius+i] = line[i]), so the taps read straight through
	// memory instead of mirroring every index.
	padded := make([]float64, max(h, w)+2*radius)
	pass := func(n, count, stride, step int) {
		for l := range count {
			base := l * stride
			for j := range n + 2*radius {
				padded[j] = float64(m[base+reflect(j-radius, n)*step])
			}
			for i := range n {
				var acc float64
				win := padded[i : i+len(kern)]
				for t, kv := range kern {
					acc += kv * win[t]
				}
				m[base+i*step] = float32(acc)
			}
		}
	}
	pass(w, h, w, 1) // rows
	pass(h, w, 1, w) // columns
}

// gaussianKernel returns the normalised Gaussian taps of standard
// deviation sigma, truncated at radius ⌊4σ + 0.5⌋, and that radius.
func gaussianKernel(sigma float64) (kern []float64, radius int) {
	radius = int(4*sigma + 0.5)
	kern = make([]float64, 2*radius+1)
	var sum float64
	for i := range kern {
		x := float64(i - radius)
		kern[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += kern[i]
	}
	for i := range kern {
		kern[i] /= sum
	}
	return kern, radius
}

// reflect maps i into [0, n) by mirroring with the edge sample repeated.
func reflect(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * n
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - 1 - i
	}
	return i
}

// ResizeBilinear resizes a single-channel h×w map (row-major) to oh×ow the
// way torch's F.interpolate(mode="bilinear", align_corners=False) and ONNX
// Resize(mode="linear", coordinate_transformation_mode="half_pixel") do: no
// antialiasing, source coordinates (i+0.5)·h/oh − 0.5 clamped to the map.
func ResizeBilinear(src []float32, h, w, oh, ow int) []float32 {
	out := make([]float32, oh*ow)
	ys := bilinearTaps(h, oh)
	xs := bilinearTaps(w, ow)
	for i, ty := range ys {
		r0, r1 := src[ty.i0*w:], src[ty.i1*w:]
		for j, tx := range xs {
			top := r0[tx.i0]*(1-tx.f) + r0[tx.i1]*tx.f
			bot := r1[tx.i0]*(1-tx.f) + r1[tx.i1]*tx.f
			out[i*ow+j] = top*(1-ty.f) + bot*ty.f
		}
	}
	return out
}

type tap struct {
	i0, i1 int
	f      float32
}

func bilinearTaps(in, out int) []tap {
	taps := make([]tap, out)
	scale := float64(in) / float64(out)
	for i := range taps {
		x := (float64(i)+0.5)*scale - 0.5
		if x < 0 {
			x = 0
		}
		i0 := int(x)
		if i0 > in-1 {
			i0 = in - 1
		}
		i1 := min(i0+1, in-1)
		taps[i] = tap{i0, i1, float32(x - float64(i0))}
	}
	return taps
}

// ResampleBox averages a w×h map into an ow×oh one (box filter), for the
// small maps stored with runs and shown in galleries.
func ResampleBox(m []float32, w, h, ow, oh int) []float32 {
	out := make([]float32, ow*oh)
	for y := range oh {
		y0, y1 := y*h/oh, max((y+1)*h/oh, y*h/oh+1)
		for x := range ow {
			x0, x1 := x*w/ow, max((x+1)*w/ow, x*w/ow+1)
			var s float32
			for yy := y0; yy < y1; yy++ {
				for xx := x0; xx < x1; xx++ {
					s += m[yy*w+xx]
				}
			}
			out[y*ow+x] = s / float32((y1-y0)*(x1-x0))
		}
	}
	return out
}

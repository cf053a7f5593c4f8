package banks

// Scoring shared by the PatchCore baseline and DMAD inference
// (METHOD.md §5): the image score and the pixel anomaly map.

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

// PatchCore is the baseline scorer: a patch's anomaly score is its L2
// distance to the nearest entry of the normal bank.
type PatchCore struct {
	// Searcher searches the normal bank.
	Searcher *Searcher
}

// NewPatchCore prepares a PatchCore scorer over bank.
func NewPatchCore(rt *ort.Runtime, bank *NormalBank, opts SearchOptions) (*PatchCore, error) {
	if err := bank.Validate(); err != nil {
		return nil, fmt.Errorf("patchcore: %w", err)
	}
	opts.Source = bank.Source
	s, err := NewSearcher(rt, bank.Features, opts)
	if err != nil {
		return nil, fmt.Errorf("patchcore: %w", err)
	}
	return &PatchCore{Searcher: s}, nil
}

// Close frees the searcher.
func (p *PatchCore) Close() error { return p.Searcher.Close() }

// PatchScores returns each patch's distance to its nearest normal entry.
func (p *PatchCore) PatchScores(ctx context.Context, q *mat.Matrix) ([]float32, error) {
	dist, _, err := p.Searcher.Search(ctx, q, 1)
	if err != nil {
		return nil, fmt.Errorf("patchcore scores: %w", err)
	}
	return dist, nil
}

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
	ys0, ys1, yl := bilinearTaps(h0, outH)
	xs0, xs1, xl := bilinearTaps(w0, outW)
	out := make([]float32, outH*outW)
	for y := range outH {
		r0, r1, ly := scores[ys0[y]*w0:], scores[ys1[y]*w0:], yl[y]
		for x := range outW {
			lx := xl[x]
			top := (1-lx)*r0[xs0[x]] + lx*r0[xs1[x]]
			bot := (1-lx)*r1[xs0[x]] + lx*r1[xs1[x]]
			out[y*outW+x] = (1-ly)*top + ly*bot
		}
	}
	if sigma > 0 {
		GaussianSmooth(out, outH, outW, sigma)
	}
	return out
}

// bilinearTaps gives, for each output index, the two source indices and the
// weight of the second (align_corners=False).
func bilinearTaps(in, out int) (i0, i1 []int, lambda []float32) {
	i0, i1, lambda = make([]int, out), make([]int, out), make([]float32, out)
	scale := float64(in) / float64(out)
	for o := range out {
		src := max(0, (float64(o)+0.5)*scale-0.5)
		a := min(int(src), in-1)
		i0[o], i1[o] = a, min(a+1, in-1)
		lambda[o] = float32(src - float64(a))
	}
	return
}

// GaussianSmooth filters an h×w map in place with a separable Gaussian of
// standard deviation sigma, truncated at radius ⌊4σ + 0.5⌋ and normalised,
// with mirror ("reflect": d c b a | a b c d) borders — the behaviour of
// scipy.ndimage.gaussian_filter, which PatchCore applies.
func GaussianSmooth(m []float32, h, w int, sigma float64) {
	radius := int(4*sigma + 0.5)
	if radius == 0 {
		return
	}
	kern := make([]float64, 2*radius+1)
	var sum float64
	for i := range kern {
		x := float64(i - radius)
		kern[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += kern[i]
	}
	for i := range kern {
		kern[i] /= sum
	}
	line := make([]float64, max(h, w))
	pass := func(n, count, stride, step int) {
		for l := range count {
			base := l * stride
			for i := range n {
				line[i] = float64(m[base+i*step])
			}
			for i := range n {
				var acc float64
				for t, kv := range kern {
					acc += kv * line[reflect(i+t-radius, n)]
				}
				m[base+i*step] = float32(acc)
			}
		}
	}
	pass(w, h, w, 1) // rows
	pass(h, w, 1, w) // columns
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

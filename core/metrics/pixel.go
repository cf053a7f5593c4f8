package metrics

import (
	"errors"
	"fmt"
	"math"
)

// DefaultBins is the histogram resolution of a PixelAccumulator created with
// bins <= 0: 2^16 bins, 1.5 MiB of counters.
const DefaultBins = 1 << 16

// DefaultMaxFPR is the false-positive-rate limit of the PRO integral in the
// MVTec AD protocol.
const DefaultMaxFPR = 0.3

// PixelAccumulator gathers pixel-level anomaly scores and ground-truth masks
// image by image and yields pixel AUROC, pixel AP, pixel F1max and PRO
// without holding the pixels: memory is fixed (3 counters per bin plus one
// label buffer of the largest image), whatever the number of images.
//
// Approximation: scores are binned into a fixed-range histogram of equal
// width bins over [lo, hi] (values outside are clamped into the first/last
// bin, NaN goes to the first). Pixels in the same bin are treated as tied
// scores, so the curves are exact curves of the binned scores: for AUROC the
// difference from the exact value is at most AUROCTieBound() (half the
// fraction of positive/negative pixel pairs that share a bin; typically
// < 1e-4 with 2^16 bins over the true score range). AP, F1max and PRO are
// computed from the same steps: the thresholds they may use are the 2^16 bin
// edges instead of every distinct score, which is finer than the
// 1000–5000-threshold grids of the reference evaluation code.
//
// For an exact range, run a first pass to find the minimum and maximum score
// (see Range), or give a range known up front (e.g. from validation data) and
// accept clamping of outliers.
//
// A PixelAccumulator is not safe for concurrent use; accumulate per goroutine
// and combine with Merge.
type PixelAccumulator struct {
	lo, hi  float64
	scale   float64
	neg     []uint64  // normal pixels per bin
	pos     []uint64  // anomalous pixels per bin
	overlap []float64 // Σ 1/|region| over anomalous pixels per bin
	regions int       // connected ground-truth regions seen

	labels []int32 // scratch: component labels of the current mask
	stack  []int32 // scratch: flood-fill stack
}

// NewPixelAccumulator returns an accumulator over the score range [lo, hi]
// with the given number of bins (DefaultBins when bins <= 0).
func NewPixelAccumulator(lo, hi float32, bins int) (*PixelAccumulator, error) {
	if bins <= 0 {
		bins = DefaultBins
	}
	l, h := float64(lo), float64(hi)
	if math.IsNaN(l) || math.IsNaN(h) || math.IsInf(l, 0) || math.IsInf(h, 0) || h < l {
		return nil, fmt.Errorf("pixel accumulator: invalid score range [%g, %g]", lo, hi)
	}
	scale := 0.0
	if h > l {
		scale = float64(bins) / (h - l)
	}
	return &PixelAccumulator{
		lo: l, hi: h, scale: scale,
		neg:     make([]uint64, bins),
		pos:     make([]uint64, bins),
		overlap: make([]float64, bins),
	}, nil
}

// Range returns the smallest and largest finite score over all maps (NaN and
// infinities are ignored). It returns (0, 0) when there is none.
func Range(maps ...[]float32) (lo, hi float32) {
	first := true
	for _, m := range maps {
		for _, v := range m {
			if v != v || math.IsInf(float64(v), 0) {
				continue
			}
			if first {
				lo, hi, first = v, v, false
				continue
			}
			if v < lo {
				lo = v
			}
			if v > hi {
				hi = v
			}
		}
	}
	return lo, hi
}

func (a *PixelAccumulator) bin(v float32) int {
	x := (float64(v) - a.lo) * a.scale
	if !(x > 0) { // also NaN
		return 0
	}
	b := int(x)
	if b >= len(a.neg) {
		return len(a.neg) - 1
	}
	return b
}

// Add accumulates one image: its w×h score map and ground-truth mask (true =
// anomalous), both row-major. A nil mask means an all-normal image. The
// mask's connected components (8-connectivity) are the regions of PRO.
func (a *PixelAccumulator) Add(scores []float32, mask []bool, w, h int) error {
	n := w * h
	if w <= 0 || h <= 0 || len(scores) != n {
		return fmt.Errorf("pixel accumulator: score map has %d values, want %d×%d", len(scores), w, h)
	}
	if mask == nil {
		for _, v := range scores {
			a.neg[a.bin(v)]++
		}
		return nil
	}
	if len(mask) != n {
		return fmt.Errorf("pixel accumulator: mask has %d values, want %d×%d", len(mask), w, h)
	}
	sizes := a.components(mask, w, h)
	if len(sizes) == 0 {
		for _, v := range scores {
			a.neg[a.bin(v)]++
		}
		return nil
	}
	a.regions += len(sizes)
	for i, v := range scores {
		b := a.bin(v)
		if l := a.labels[i]; l > 0 {
			a.pos[b]++
			a.overlap[b] += 1 / float64(sizes[l-1])
		} else {
			a.neg[b]++
		}
	}
	return nil
}

// components labels the 8-connected components of mask into a.labels
// (0 = background, k = component k) and returns their sizes.
func (a *PixelAccumulator) components(mask []bool, w, h int) []int {
	n := w * h
	if cap(a.labels) < n {
		a.labels = make([]int32, n)
	}
	a.labels = a.labels[:n]
	clear(a.labels)
	var sizes []int
	for start, m := range mask {
		if !m || a.labels[start] != 0 {
			continue
		}
		id := int32(len(sizes) + 1)
		size := 0
		a.labels[start] = id
		a.stack = append(a.stack[:0], int32(start))
		for len(a.stack) > 0 {
			p := int(a.stack[len(a.stack)-1])
			a.stack = a.stack[:len(a.stack)-1]
			size++
			x, y := p%w, p/w
			for dy := -1; dy <= 1; dy++ {
				yy := y + dy
				if yy < 0 || yy >= h {
					continue
				}
				for dx := -1; dx <= 1; dx++ {
					xx := x + dx
					if xx < 0 || xx >= w {
						continue
					}
					q := yy*w + xx
					if mask[q] && a.labels[q] == 0 {
						a.labels[q] = id
						a.stack = append(a.stack, int32(q))
					}
				}
			}
		}
		sizes = append(sizes, size)
	}
	return sizes
}

// Merge adds the counts of b, which must have the same range and bins.
func (a *PixelAccumulator) Merge(b *PixelAccumulator) error { return a.MergeTimes(b, 1) }

// MergeTimes adds k times the counts of b, which must have the same range
// and bins: as if b's images had been added k times (a bootstrap resample
// draws an image k times).
func (a *PixelAccumulator) MergeTimes(b *PixelAccumulator, k int) error {
	if a.lo != b.lo || a.hi != b.hi || len(a.neg) != len(b.neg) {
		return errors.New("pixel accumulator: merge of accumulators with different ranges or bins")
	}
	if k < 0 {
		return fmt.Errorf("pixel accumulator: merge %d times", k)
	}
	ku, kf := uint64(k), float64(k)
	for i := range a.neg {
		a.neg[i] += ku * b.neg[i]
		a.pos[i] += ku * b.pos[i]
		a.overlap[i] += kf * b.overlap[i]
	}
	a.regions += k * b.regions
	return nil
}

// Reset empties the accumulator, keeping its range and bins.
func (a *PixelAccumulator) Reset() {
	clear(a.neg)
	clear(a.pos)
	clear(a.overlap)
	a.regions = 0
}

// Counts returns the number of anomalous and normal pixels and of
// ground-truth regions accumulated so far.
func (a *PixelAccumulator) Counts() (positive, negative uint64, regions int) {
	for i := range a.neg {
		positive += a.pos[i]
		negative += a.neg[i]
	}
	return positive, negative, a.regions
}

// threshold returns the lower edge of bin b.
func (a *PixelAccumulator) threshold(b int) float64 {
	if a.scale == 0 {
		return a.lo
	}
	return a.lo + float64(b)/a.scale
}

// walk calls f for every non-empty bin from the highest to the lowest with
// the cumulative counts at or above it.
func (a *PixelAccumulator) walk(f func(b int, tp, fp, ov float64)) {
	var tp, fp, ov float64
	for b := len(a.neg) - 1; b >= 0; b-- {
		if a.neg[b] == 0 && a.pos[b] == 0 {
			continue
		}
		tp += float64(a.pos[b])
		fp += float64(a.neg[b])
		ov += a.overlap[b]
		f(b, tp, fp, ov)
	}
}

// AUROC returns the pixel-level AUROC (trapezoid over the bin steps). NaN
// when either class is absent.
func (a *PixelAccumulator) AUROC() float64 {
	pos, neg, _ := a.Counts()
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	var area, ptp, pfp float64
	a.walk(func(_ int, tp, fp, _ float64) {
		area += (fp - pfp) * (tp + ptp) / 2
		ptp, pfp = tp, fp
	})
	return area / (float64(pos) * float64(neg))
}

// AUROCTieBound returns the largest possible difference between AUROC() and
// the exact AUROC of the unbinned scores: half the fraction of
// (anomalous, normal) pixel pairs that fall in the same bin.
func (a *PixelAccumulator) AUROCTieBound() float64 {
	pos, neg, _ := a.Counts()
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	var ties float64
	for b := range a.neg {
		ties += float64(a.pos[b]) * float64(a.neg[b])
	}
	return ties / 2 / (float64(pos) * float64(neg))
}

// AP returns the pixel-level average precision (scikit-learn's step sum over
// the bin thresholds). NaN without anomalous pixels.
func (a *PixelAccumulator) AP() float64 {
	pos, _, _ := a.Counts()
	if pos == 0 {
		return math.NaN()
	}
	var ap, ptp float64
	P := float64(pos)
	a.walk(func(_ int, tp, fp, _ float64) {
		ap += (tp - ptp) / P * (tp / (tp + fp))
		ptp = tp
	})
	return ap
}

// F1Max returns the largest pixel-level F1 over the bin thresholds. NaN
// without anomalous pixels.
func (a *PixelAccumulator) F1Max() float64 {
	pos, _, _ := a.Counts()
	if pos == 0 {
		return math.NaN()
	}
	best := 0.0
	P := float64(pos)
	a.walk(func(_ int, tp, fp, _ float64) {
		best = math.Max(best, 2*tp/(tp+fp+P))
	})
	return best
}

// ROC returns the pixel ROC curve at the bin thresholds, from (0, 0) at
// +Inf to (1, 1); thr holds each bin's lower edge.
func (a *PixelAccumulator) ROC() (fpr, tpr, thr []float64) {
	pos, neg, _ := a.Counts()
	fpr, tpr, thr = []float64{0}, []float64{0}, []float64{math.Inf(1)}
	a.walk(func(b int, tp, fp, _ float64) {
		fpr = append(fpr, fp/float64(neg))
		tpr = append(tpr, tp/float64(pos))
		thr = append(thr, a.threshold(b))
	})
	return fpr, tpr, thr
}

// PROCurve returns the per-region-overlap curve: for each bin threshold
// (descending) the false-positive rate over normal pixels and the mean over
// all ground-truth regions of the fraction of the region at or above the
// threshold. It starts at (0, 0).
func (a *PixelAccumulator) PROCurve() (fpr, pro, thr []float64) {
	_, neg, regions := a.Counts()
	fpr, pro, thr = []float64{0}, []float64{0}, []float64{math.Inf(1)}
	a.walk(func(b int, _, fp, ov float64) {
		fpr = append(fpr, fp/float64(neg))
		pro = append(pro, ov/float64(regions))
		thr = append(thr, a.threshold(b))
	})
	return fpr, pro, thr
}

// PRO returns the normalised area under the PRO curve for false-positive
// rates in [0, maxFPR] (trapezoid rule, the curve linearly interpolated at
// maxFPR), divided by maxFPR: 1 is perfect. NaN without regions or without
// normal pixels, or when maxFPR is not in (0, 1].
func (a *PixelAccumulator) PRO(maxFPR float64) float64 {
	_, neg, regions := a.Counts()
	if regions == 0 || neg == 0 || !(maxFPR > 0 && maxFPR <= 1) {
		return math.NaN()
	}
	fpr, pro, _ := a.PROCurve()
	return areaUpTo(fpr, pro, maxFPR) / maxFPR
}

// areaUpTo integrates y(x) by the trapezoid rule from x[0] to limit, x
// non-decreasing, interpolating linearly at limit.
func areaUpTo(x, y []float64, limit float64) float64 {
	var area float64
	for i := 1; i < len(x); i++ {
		x0, x1 := x[i-1], x[i]
		if x0 >= limit {
			break
		}
		y0, y1 := y[i-1], y[i]
		if x1 > limit {
			y1 = y0 + (y1-y0)*(limit-x0)/(x1-x0)
			x1 = limit
		}
		area += (x1 - x0) * (y0 + y1) / 2
	}
	return area
}

// PRO returns the normalised area under the per-region-overlap curve up to
// maxFPR (MVTec AD protocol; use DefaultMaxFPR = 0.3) for a set of w×h
// anomaly maps and their ground-truth masks (row-major, true = anomalous; a
// nil mask is an all-normal image). Regions are 8-connected components of
// each mask. It runs two passes (range, then a DefaultBins histogram; see
// PixelAccumulator for the approximation) and returns NaN on inconsistent
// input or when there is no region or no normal pixel. For maps of
// different sizes, or when maps do not all fit in memory, use a
// PixelAccumulator directly.
func PRO(maps [][]float32, masks [][]bool, w, h int, maxFPR float64) float64 {
	if len(maps) != len(masks) {
		return math.NaN()
	}
	lo, hi := Range(maps...)
	acc, err := NewPixelAccumulator(lo, hi, DefaultBins)
	if err != nil {
		return math.NaN()
	}
	for i := range maps {
		if err := acc.Add(maps[i], masks[i], w, h); err != nil {
			return math.NaN()
		}
	}
	return acc.PRO(maxFPR)
}

// PixelScores bundles the pixel-level metrics of the protocol.
type PixelScores struct {
	AUROC float64 `json:"pixel_auroc"`
	AP    float64 `json:"pixel_ap"`
	PRO   float64 `json:"pro"`
}

// Scores returns pixel AUROC, AP and PRO (up to DefaultMaxFPR).
func (a *PixelAccumulator) Scores() PixelScores {
	return PixelScores{AUROC: a.AUROC(), AP: a.AP(), PRO: a.PRO(DefaultMaxFPR)}
}

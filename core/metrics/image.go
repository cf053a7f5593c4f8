// Package metrics computes the evaluation metrics of the DMAD protocol
// (METHOD.md §6): image-level AUROC, average precision and F1max computed
// exactly, and pixel-level AUROC, average precision and PRO computed by a
// streaming, memory-bounded accumulator.
//
// Scores follow the convention "higher = more anomalous"; labels are true for
// anomalous (positive) samples. All accumulation is in float64. When scores
// and labels differ in length, the image-level functions use the common
// prefix.
package metrics

import (
	"math"
	"sort"
)

// curve walks the distinct score thresholds from the highest to the lowest
// and reports, for each, the cumulative number of positives and negatives
// scoring at or above it. Tied scores form one step.
type step struct {
	thr    float64
	tp, fp float64
}

// steps returns the cumulative (tp, fp) counts at every distinct threshold in
// descending order, plus the totals of positives and negatives.
// NaN scores are ranked lowest.
func steps(scores []float32, labels []bool) (out []step, pos, neg float64) {
	n := len(scores)
	if len(labels) < n {
		n = len(labels)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	key := func(i int) float64 {
		v := float64(scores[i])
		if math.IsNaN(v) {
			return math.Inf(-1)
		}
		return v
	}
	sort.Slice(idx, func(a, b int) bool { return key(idx[a]) > key(idx[b]) })
	var tp, fp float64
	for i := 0; i < n; {
		t := key(idx[i])
		for i < n && key(idx[i]) == t {
			if labels[idx[i]] {
				tp++
			} else {
				fp++
			}
			i++
		}
		out = append(out, step{thr: t, tp: tp, fp: fp})
	}
	return out, tp, fp
}

// ROC returns the receiver operating characteristic: false- and true-positive
// rates for every distinct threshold, from the highest threshold to the
// lowest. The first point is (0, 0) at threshold +Inf; the last is (1, 1).
// Tied scores produce a single point. If one class is absent the rates of
// that class are NaN.
func ROC(scores []float32, labels []bool) (fpr, tpr, thr []float64) {
	st, pos, neg := steps(scores, labels)
	fpr = append(fpr, 0)
	tpr = append(tpr, 0)
	thr = append(thr, math.Inf(1))
	for _, s := range st {
		fpr = append(fpr, s.fp/neg)
		tpr = append(tpr, s.tp/pos)
		thr = append(thr, s.thr)
	}
	return fpr, tpr, thr
}

// AUROC returns the area under the ROC curve by the trapezoid rule over the
// distinct-threshold points. This equals the Mann–Whitney statistic with
// tied positive/negative pairs counted one half. It is NaN when either class
// is absent.
func AUROC(scores []float32, labels []bool) float64 {
	st, pos, neg := steps(scores, labels)
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	var area, ptp, pfp float64
	for _, s := range st {
		area += (s.fp - pfp) * (s.tp + ptp) / 2
		ptp, pfp = s.tp, s.fp
	}
	return area / (pos * neg)
}

// PR returns the precision–recall curve for every distinct threshold, from
// the highest threshold to the lowest (so recall is non-decreasing). Unlike
// scikit-learn it does not append the artificial (recall 0, precision 1)
// point; plotters may add it.
func PR(scores []float32, labels []bool) (precision, recall, thr []float64) {
	st, pos, _ := steps(scores, labels)
	for _, s := range st {
		precision = append(precision, s.tp/(s.tp+s.fp))
		recall = append(recall, s.tp/pos)
		thr = append(thr, s.thr)
	}
	return precision, recall, thr
}

// AveragePrecision returns scikit-learn's average precision: the step-wise
// sum Σ (R_n − R_{n−1}) · P_n over distinct thresholds in descending order
// (no interpolation). It is NaN without positives.
func AveragePrecision(scores []float32, labels []bool) float64 {
	st, pos, _ := steps(scores, labels)
	if pos == 0 {
		return math.NaN()
	}
	var ap, ptp float64
	for _, s := range st {
		ap += (s.tp - ptp) / pos * (s.tp / (s.tp + s.fp))
		ptp = s.tp
	}
	return ap
}

// F1Max returns the largest F1 score 2PR/(P+R) over all distinct
// thresholds. It is NaN without positives.
func F1Max(scores []float32, labels []bool) float64 {
	st, pos, _ := steps(scores, labels)
	if pos == 0 {
		return math.NaN()
	}
	best := 0.0
	for _, s := range st {
		// F1 = 2TP / (2TP + FP + FN) with FN = pos - TP.
		f1 := 2 * s.tp / (s.tp + s.fp + pos)
		best = math.Max(best, f1)
	}
	return best
}

// ImageScores bundles the three image-level metrics of the protocol.
type ImageScores struct {
	AUROC float64 `json:"image_auroc"`
	AP    float64 `json:"image_ap"`
	F1Max float64 `json:"image_f1max"`
}

// Image computes AUROC, AveragePrecision and F1Max of one set of image
// scores.
func Image(scores []float32, labels []bool) ImageScores {
	return ImageScores{
		AUROC: AUROC(scores, labels),
		AP:    AveragePrecision(scores, labels),
		F1Max: F1Max(scores, labels),
	}
}

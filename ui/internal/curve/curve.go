// Package curve computes ROC and precision-recall curves for the plots of
// the Results view. It is a small local stand-in: the metrics that are
// reported come precomputed from the engine (core/metrics).
package curve

import (
	"math"
	"sort"
)

// ROC returns the receiver operating characteristic of scores against
// labels (true = anomalous): false-positive rates, true-positive rates and
// the thresholds, from the highest threshold down. Tied scores form one point.
// It returns nil slices when either class is empty.
func ROC(scores []float64, labels []bool) (fpr, tpr, thr []float64) {
	idx, pos, neg := order(scores, labels)
	if pos == 0 || neg == 0 {
		return nil, nil, nil
	}
	fpr, tpr, thr = []float64{0}, []float64{0}, []float64{math.Inf(1)}
	tp, fp := 0, 0
	for i, j := range idx {
		if labels[j] {
			tp++
		} else {
			fp++
		}
		if i+1 < len(idx) && scores[idx[i+1]] == scores[j] {
			continue
		}
		fpr = append(fpr, float64(fp)/float64(neg))
		tpr = append(tpr, float64(tp)/float64(pos))
		thr = append(thr, scores[j])
	}
	return fpr, tpr, thr
}

// PR returns the precision-recall curve of scores against labels, from the
// highest threshold down. It returns nil slices when there is no positive.
func PR(scores []float64, labels []bool) (recall, precision []float64) {
	idx, pos, _ := order(scores, labels)
	if pos == 0 {
		return nil, nil
	}
	recall, precision = []float64{0}, []float64{1}
	tp, fp := 0, 0
	for i, j := range idx {
		if labels[j] {
			tp++
		} else {
			fp++
		}
		if i+1 < len(idx) && scores[idx[i+1]] == scores[j] {
			continue
		}
		recall = append(recall, float64(tp)/float64(pos))
		precision = append(precision, float64(tp)/float64(tp+fp))
	}
	return recall, precision
}

// AUC is the trapezoidal area under the polyline (x[i], y[i]).
func AUC(x, y []float64) float64 {
	a := 0.0
	for i := 1; i < len(x) && i < len(y); i++ {
		a += (x[i] - x[i-1]) * (y[i] + y[i-1]) / 2
	}
	return math.Abs(a)
}

func order(scores []float64, labels []bool) (idx []int, pos, neg int) {
	n := min(len(scores), len(labels))
	idx = make([]int, n)
	for i := range n {
		idx[i] = i
		if labels[i] {
			pos++
		} else {
			neg++
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx, pos, neg
}

// Package curve adapts core/metrics' ROC and precision-recall curves to the
// float64 scores of the Results view's plots.
package curve

import (
	"math"

	"github.com/dmad/workstation/core/metrics"
)

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func classes(labels []bool) (pos, neg int) {
	for _, l := range labels {
		if l {
			pos++
		} else {
			neg++
		}
	}
	return pos, neg
}

// ROC returns the receiver operating characteristic of scores against
// labels (true = anomalous): false-positive rates, true-positive rates and
// the thresholds, from the highest threshold down (metrics.ROC). It returns
// nil slices when either class is empty.
func ROC(scores []float64, labels []bool) (fpr, tpr, thr []float64) {
	n := min(len(scores), len(labels))
	if pos, neg := classes(labels[:n]); pos == 0 || neg == 0 {
		return nil, nil, nil
	}
	return metrics.ROC(f32(scores[:n]), labels[:n])
}

// PR returns the precision-recall curve of scores against labels from the
// highest threshold down, starting at (recall 0, precision 1). It returns
// nil slices when there is no positive.
func PR(scores []float64, labels []bool) (recall, precision []float64) {
	n := min(len(scores), len(labels))
	if pos, _ := classes(labels[:n]); pos == 0 {
		return nil, nil
	}
	p, r, _ := metrics.PR(f32(scores[:n]), labels[:n])
	recall, precision = []float64{0}, []float64{1}
	// metrics.PR lists points from the highest threshold down as well.
	for i := range r {
		if r[i] == 0 && i == 0 {
			continue
		}
		recall = append(recall, r[i])
		precision = append(precision, p[i])
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

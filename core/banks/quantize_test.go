package banks

import (
	"math"
	"math/rand"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

// TestQuantizerRulesOutOnlyFartherPoints checks the rule-out test the
// k-center scan relies on: whenever the quantized squared distance of two
// rows reaches (d·a + b)², their float32 squared distance (sqDist, the
// scan's own sum) is at least d², for d just below, at and just above the
// rows' true distance — so the scan never rules out a point that would
// move. Rows: Gaussian at several scales, with an outlier that sets the
// grid, and all zeros.
func TestQuantizerRulesOutOnlyFartherPoints(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		name      string
		rows, dim int
		scale     float64
		outlier   float32
	}{
		{"unit", 200, 128, 1, 0},
		{"outlier", 200, 128, 1, 1e4},
		{"tiny", 200, 48, 1e-6, 0},
		{"zeros", 20, 16, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts := mat.New(tc.rows, tc.dim)
			for i := range pts.RawData() {
				pts.RawData()[i] = float32(rng.NormFloat64() * tc.scale)
			}
			if tc.outlier != 0 {
				pts.Row(0)[0] = tc.outlier
			}
			qz := newQuantizer(pts, 2, nil)
			if qz.rowLen%quantBlock != 0 || qz.rowLen < tc.dim || math.IsInf(qz.maxErr, 0) {
				t.Fatalf("row length %d, max error %v", qz.rowLen, qz.maxErr)
			}
			qs := make([][]int16, tc.rows)
			for i := range qs {
				qs[i] = make([]int16, qz.rowLen)
				qz.quantize(qs[i], pts.Row(i))
			}
			ruledOut, checked := 0, 0
			for i := range tc.rows {
				for j := range tc.rows {
					var D int64
					for k := range qz.rowLen {
						e := int64(qs[i][k]) - int64(qs[j][k])
						D += e * e
					}
					s := sqDist(pts.Row(i), pts.Row(j), inf)
					r := float32(math.Sqrt(float64(s)))
					for _, d := range []float32{r * (1 - 1e-3), r * (1 - 1e-6), r, r * (1 + 1e-6), r * 0.5} {
						th := float32(d*qz.a) + qz.b
						checked++
						if float32(D) >= th*th {
							ruledOut++
							if s < d*d {
								t.Fatalf("rows %d, %d (distance %v) ruled out for d = %v", i, j, r, d)
							}
						}
					}
				}
			}
			// The test must also do its job: most far points are ruled out.
			if tc.scale > 0 && ruledOut < checked/10 {
				t.Fatalf("only %d of %d ruled out", ruledOut, checked)
			}
		})
	}
}

// TestQuantizerNonFinite checks that a non-finite coordinate turns the
// rule-out test off instead of making it unsound.
func TestQuantizerNonFinite(t *testing.T) {
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		pts := mat.New(3, 32)
		pts.Row(1)[5] = 2
		pts.Row(2)[7] = v
		qz := newQuantizer(pts, 2, nil)
		if !math.IsInf(float64(qz.b), 1) {
			t.Fatalf("coordinate %v: b = %v, want +Inf (nothing ruled out)", v, qz.b)
		}
		q := make([]int16, qz.rowLen)
		qz.quantize(q, pts.Row(2))
		if q[7] != 0 {
			t.Fatalf("coordinate %v quantized to %d", v, q[7])
		}
	}
}

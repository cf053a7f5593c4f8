package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestImageMetricsHandWorked(t *testing.T) {
	tests := []struct {
		name          string
		scores        []float32
		labels        []bool
		auroc, ap, f1 float64
	}{
		// scikit-learn's documentation example.
		{"sklearn example", []float32{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.75, 5.0 / 6, 0.8},
		// Pairs (pos, neg): (2,1)=1 (2,2)=½ (3,1)=1 (3,2)=1 → 3.5/4.
		// Steps: t=3 tp1 fp0; t=2 tp2 fp1; t=1 tp2 fp2.
		// AP = ½·1 + ½·⅔; F1 at t=2: 4/(2+1+2).
		{"ties", []float32{1, 2, 2, 3}, []bool{false, false, true, true}, 0.875, 0.5 + 1.0/3, 0.8},
		{"perfect", []float32{0, 1, 2, 3}, []bool{false, false, true, true}, 1, 1, 1},
		// Inverse: positives last. AP = ½·⅓ + ½·½; F1max at the lowest threshold 4/6.
		{"inverse", []float32{3, 2, 1, 0}, []bool{false, false, true, true}, 0, 1.0/6 + 0.25, 2.0 / 3},
		// All tied: one step at (1,1): AUROC ½, AP = prevalence.
		{"constant", []float32{5, 5, 5, 5}, []bool{true, false, false, false}, 0.5, 0.25, 0.4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Image(tt.scores, tt.labels)
			if !near(got.AUROC, tt.auroc, 1e-12) {
				t.Errorf("AUROC = %v, want %v", got.AUROC, tt.auroc)
			}
			if !near(got.AP, tt.ap, 1e-12) {
				t.Errorf("AP = %v, want %v", got.AP, tt.ap)
			}
			if !near(got.F1Max, tt.f1, 1e-12) {
				t.Errorf("F1Max = %v, want %v", got.F1Max, tt.f1)
			}
		})
	}
}

// mannWhitney is the O(n²) definition of AUROC used as the reference.
func mannWhitney(scores []float32, labels []bool) float64 {
	var s, pairs float64
	for i := range scores {
		if !labels[i] {
			continue
		}
		for j := range scores {
			if labels[j] {
				continue
			}
			pairs++
			switch {
			case scores[i] > scores[j]:
				s++
			case scores[i] == scores[j]:
				s += 0.5
			}
		}
	}
	return s / pairs
}

// randomData draws scores on the grid k/levels; positives are shifted up by
// shift grid steps.
func randomData(rng *rand.Rand, n int, levels int, shift int) ([]float32, []bool) {
	scores := make([]float32, n)
	labels := make([]bool, n)
	for i := range scores {
		labels[i] = rng.IntN(4) == 0
		k := rng.IntN(levels)
		if labels[i] {
			k += shift
		}
		scores[i] = float32(k) / float32(levels)
	}
	return scores, labels
}

func TestAUROCMatchesMannWhitney(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, levels := range []int{3, 10, 1000} {
		scores, labels := randomData(rng, 400, levels, levels/5)
		got, want := AUROC(scores, labels), mannWhitney(scores, labels)
		if !near(got, want, 1e-12) {
			t.Errorf("levels %d: AUROC = %v, Mann–Whitney = %v", levels, got, want)
		}
	}
}

func TestMonotoneInvariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	scores, labels := randomData(rng, 2000, 500, 50)
	transformed := make([]float32, len(scores))
	for i, v := range scores {
		transformed[i] = float32(math.Exp(3*float64(v))) - 7
	}
	a, b := Image(scores, labels), Image(transformed, labels)
	if a != b {
		t.Errorf("monotone transform changed metrics: %+v vs %+v", a, b)
	}
}

func TestRandomScoresNearHalf(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n := 20000
	scores := make([]float32, n)
	labels := make([]bool, n)
	pos := 0
	for i := range scores {
		scores[i] = rng.Float32()
		labels[i] = rng.IntN(2) == 0
		if labels[i] {
			pos++
		}
	}
	if got := AUROC(scores, labels); !near(got, 0.5, 0.02) {
		t.Errorf("AUROC of random scores = %v, want ≈ 0.5", got)
	}
	if got, prev := AveragePrecision(scores, labels), float64(pos)/float64(n); !near(got, prev, 0.02) {
		t.Errorf("AP of random scores = %v, want ≈ prevalence %v", got, prev)
	}
}

func TestSingleClassIsNaN(t *testing.T) {
	scores := []float32{1, 2, 3}
	if v := AUROC(scores, []bool{true, true, true}); !math.IsNaN(v) {
		t.Errorf("AUROC without negatives = %v, want NaN", v)
	}
	if v := AveragePrecision(scores, []bool{false, false, false}); !math.IsNaN(v) {
		t.Errorf("AP without positives = %v, want NaN", v)
	}
}

func TestCurves(t *testing.T) {
	scores := []float32{0.1, 0.4, 0.35, 0.8}
	labels := []bool{false, false, true, true}
	fpr, tpr, thr := ROC(scores, labels)
	wantF := []float64{0, 0, 0.5, 0.5, 1}
	wantT := []float64{0, 0.5, 0.5, 1, 1}
	if len(fpr) != len(wantF) || len(thr) != len(wantF) {
		t.Fatalf("ROC has %d points, want %d", len(fpr), len(wantF))
	}
	for i := range wantF {
		if fpr[i] != wantF[i] || tpr[i] != wantT[i] {
			t.Errorf("ROC point %d = (%v, %v), want (%v, %v)", i, fpr[i], tpr[i], wantF[i], wantT[i])
		}
	}
	p, r, _ := PR(scores, labels)
	wantP := []float64{1, 0.5, 2.0 / 3, 0.5}
	wantR := []float64{0.5, 0.5, 1, 1}
	for i := range wantP {
		if !near(p[i], wantP[i], 1e-12) || r[i] != wantR[i] {
			t.Errorf("PR point %d = (%v, %v), want (%v, %v)", i, p[i], r[i], wantP[i], wantR[i])
		}
	}
}

package curve

import (
	"math"
	"testing"
)

func TestROCAndPR(t *testing.T) {
	tests := []struct {
		name    string
		scores  []float64
		labels  []bool
		wantAUC float64
		wantAP  float64 // trapezoidal area under the PR polyline from (0, 1), worked by hand
	}{
		{"perfect", []float64{0.9, 0.8, 0.2, 0.1}, []bool{true, true, false, false}, 1, 1},
		{"inverted", []float64{0.1, 0.2, 0.8, 0.9}, []bool{true, true, false, false}, 0, 7.0 / 24},
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5}, []bool{true, false, true, false}, 0.5, 0.75},
		{"one swap", []float64{0.9, 0.7, 0.8, 0.1}, []bool{true, true, false, false}, 0.75, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fpr, tpr, thr := ROC(tt.scores, tt.labels)
			if len(fpr) != len(thr) || len(tpr) != len(thr) {
				t.Fatalf("lengths %d %d %d", len(fpr), len(tpr), len(thr))
			}
			if fpr[len(fpr)-1] != 1 || tpr[len(tpr)-1] != 1 {
				t.Errorf("curve does not end at (1,1): %v %v", fpr, tpr)
			}
			if got := AUC(fpr, tpr); math.Abs(got-tt.wantAUC) > 1e-9 {
				t.Errorf("AUROC = %v, want %v", got, tt.wantAUC)
			}
			r, p := PR(tt.scores, tt.labels)
			if r[len(r)-1] != 1 {
				t.Errorf("recall does not reach 1: %v", r)
			}
			if tt.wantAP > 0 {
				if got := AUC(r, p); math.Abs(got-tt.wantAP) > 1e-9 {
					t.Errorf("PR area = %v, want %v", got, tt.wantAP)
				}
			}
		})
	}
}

func TestROCOneClass(t *testing.T) {
	if f, _, _ := ROC([]float64{1, 2}, []bool{true, true}); f != nil {
		t.Errorf("ROC with no negative = %v, want nil", f)
	}
	if r, _ := PR([]float64{1, 2}, []bool{false, false}); r != nil {
		t.Errorf("PR with no positive = %v, want nil", r)
	}
}

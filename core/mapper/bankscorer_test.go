package mapper_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/mat"
)

// TestBankScorerMatchesResiduals: scoring from neighbours' bank-row
// projections gives the scores of the residuals those neighbours make,
// for distance knowledge (one neighbour, coefficient 1) and attention
// knowledge (several, coefficients 1 + w_0, w_1, … summing to 2, an
// ineligible slot among them), across several score batches.
func TestBankScorerMatchesResiduals(t *testing.T) {
	rt := openRT(t)
	for _, tc := range []struct {
		name      string
		cfg       mapper.Config
		k, n      int
		attention bool
	}{
		{"distance", mapper.Config{C: 6, Hidden: 16, Distances: true, Slope: 0.2, BNEps: 1e-5, BNMomentum: 0.1}, 1, 40, false},
		{"attention", mapper.Config{C: 5, Hidden: 12, Distances: true, Slope: 0.2, BNEps: 1e-5, BNMomentum: 0.1}, 3, 30, true},
		{"no_distances_batches", mapper.Config{C: 3, Hidden: 8, Slope: 0.1, BNEps: 1e-3, BNMomentum: 0.1}, 1, mapper.ScoreBatch + 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			c := tc.cfg.C
			m, err := mapper.Init(tc.cfg, 5)
			if err != nil {
				t.Fatal(err)
			}
			b := randBatch(rng, 50, c)
			if m.Std, err = mapper.FitStandardization(b.q, b.kn, b.dn); err != nil {
				t.Fatal(err)
			}
			randomize(m, rng)
			bank := func(r int) *mat.Matrix {
				x := mat.New(r, c)
				for i := range x.RawData() {
					x.RawData()[i] = float32(rng.NormFloat64())
				}
				return x
			}
			normal, anomaly := bank(23), bank(17)
			q := bank(tc.n)
			side := func(b *mat.Matrix) (mapper.Neighbours, *mat.Matrix, []float32) {
				nb := mapper.Neighbours{K: tc.k, Idx: make([]int64, tc.n*tc.k), Coef: make([]float32, tc.n*tc.k)}
				res, dist := mat.New(tc.n, c), make([]float32, tc.n)
				for r := range tc.n {
					valid := tc.k
					if tc.attention && r%4 == 0 {
						valid-- // the last slot ineligible
					}
					w := make([]float64, valid)
					var sum float64
					for j := range valid {
						w[j] = rng.Float64() + 0.1
						sum += w[j]
					}
					s := float32(1)
					if tc.attention {
						s = 2
					}
					for i, v := range q.Row(r) {
						res.Row(r)[i] = s * v
					}
					for j := range tc.k {
						o := r*tc.k + j
						if j >= valid {
							nb.Idx[o] = -1
							continue
						}
						nb.Idx[o] = int64(rng.IntN(b.Rows()))
						cf := float32(1)
						if tc.attention {
							cf = float32(w[j] / sum)
							if j == 0 {
								cf++
							}
						}
						nb.Coef[o] = cf
						for i, v := range b.Row(int(nb.Idx[o])) {
							res.Row(r)[i] -= cf * v
						}
					}
					dist[r] = float32(rng.Float64() * 3)
				}
				return nb, res, dist
			}
			nn, kn, dn := side(normal)
			na, ka, da := side(anomaly)
			if !tc.cfg.Distances {
				dn, da = nil, nil
			}
			ref, err := mapper.NewScorer(rt, m)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			want, err := ref.Score(context.Background(), q, kn, ka, dn, da)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := mapper.NewBankScorer(rt, m, normal, anomaly, tc.attention)
			if err != nil {
				t.Fatal(err)
			}
			defer bs.Close()
			got, err := bs.Score(context.Background(), q, nn, na, dn, da)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("score[%d] = %v from bank rows, %v from residuals", i, got[i], want[i])
				}
			}
			nn.Idx[0] = int64(normal.Rows())
			if _, err := bs.Score(context.Background(), q, nn, na, dn, da); err == nil || !strings.Contains(err.Error(), "outside") {
				t.Errorf("a neighbour outside the bank: %v", err)
			}
		})
	}
}

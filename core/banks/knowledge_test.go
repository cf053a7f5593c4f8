package banks

import (
	"context"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

func TestKnowledgeDistanceAndExclusion(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(6))
	// Normal bank: 5 images × 20 patches; the queries are the patches of
	// image 2 themselves, so without exclusion each finds itself.
	nb, ab := knowledgeBanks(t, rng, 100, 10)
	k, err := NewKnowledge(rt, nb, ab, KnowledgeOptions{Search: SearchOptions{ChunkRows: 32}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	q := nb.Features.Slice(40, 60).Clone()
	src := make([]int32, q.Rows())
	for i := range src {
		src[i] = 2
	}
	test, err := k.Compute(context.Background(), q, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	train, err := k.Compute(context.Background(), q, src, false)
	if err != nil {
		t.Fatal(err)
	}
	for r := range q.Rows() {
		if test.DN[r] != 0 || test.IN[r] != int64(40+r) {
			t.Fatalf("test-time query %d: nearest %d at %v, want itself", r, test.IN[r], test.DN[r])
		}
		if train.DN[r] <= 0 || nb.Source[train.IN[r]] == 2 {
			t.Fatalf("training query %d found entry %d of its own image", r, train.IN[r])
		}
		if src[r] == ab.Source[train.IA[r]] {
			t.Fatalf("training query %d found anomaly entry %d made from its own image", r, train.IA[r])
		}
		for _, c := range []struct {
			kq   *mat.Matrix
			d    []float32
			idx  []int64
			bank *mat.Matrix
		}{{train.KN, train.DN, train.IN, nb.Features}, {train.KA, train.DA, train.IA, ab.Features}} {
			var norm float64
			for j := range q.Cols() {
				want := q.Row(r)[j] - c.bank.Row(int(c.idx[r]))[j]
				if c.kq.Row(r)[j] != want {
					t.Fatalf("query %d residual %d: %v, want %v", r, j, c.kq.Row(r)[j], want)
				}
				norm += float64(want) * float64(want)
			}
			if !near(math.Sqrt(norm), float64(c.d[r]), 1e-3) {
				t.Fatalf("query %d: distance %v, residual norm %v", r, c.d[r], math.Sqrt(norm))
			}
		}
	}
	if _, err := k.Compute(context.Background(), q, src[:3], false); err == nil {
		t.Error("short source list accepted")
	}
}

// fromData is mat.FromData for values the test sized to fit.
func fromData(t *testing.T, rows, cols int, data []float32) *mat.Matrix {
	t.Helper()
	m, err := mat.FromData(rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestKnowledgeAttention(t *testing.T) {
	rt := openRuntime(t)
	// One dimension, bank entries at 0, 1, 3, 10; query at 0.5.
	bank := &NormalBank{Features: fromData(t, 4, 1, []float32{0, 1, 3, 10}), Source: []int32{0, 0, 1, 1}}
	ab := &AnomalyBank{Features: fromData(t, 2, 1, []float32{5, 6}), Kind: []uint8{KindOOD, KindOOD}, Source: []int32{NoSource, NoSource}}
	for _, attnK := range []int{1, 3} {
		k, err := NewKnowledge(rt, bank, ab, KnowledgeOptions{AttnK: attnK})
		if err != nil {
			t.Fatal(err)
		}
		q := fromData(t, 1, 1, []float32{0.5})
		res, err := k.Compute(context.Background(), q, nil, true)
		k.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Hand computation: neighbours by distance 0 (0.5, tie: lower index
		// first), 1 (0.5), 3 (2.5); τ = mean d²; w ∝ exp(−d²/τ).
		var want float64
		switch attnK {
		case 1: // w = 1: KN = (q−n) + (q−n) = 2·0.5
			want = 1
		case 3:
			d := []float64{0.5, 0.5, 2.5}
			vals := []float64{0.5, -0.5, -2.5}
			tau := (0.25 + 0.25 + 6.25) / 3
			var sum, attn float64
			for j := range d {
				w := math.Exp(-d[j] * d[j] / tau)
				sum += w
				attn += w * vals[j]
			}
			want = 0.5 + attn/sum
		}
		if !near(float64(res.KN.RawData()[0]), want, 1e-5) || res.DN[0] != 0.5 || res.IN[0] != 0 {
			t.Errorf("AttnK %d: KN %v (want %v), DN %v, IN %v", attnK, res.KN.RawData()[0], want, res.DN[0], res.IN[0])
		}
	}
}

// knowledgeBanks is a normal bank of rows random dim-wide patches (20 per
// image) and an anomaly bank of pseudo anomalies from 200 other normal
// patches (40 per image), for knowledge tests.
func knowledgeBanks(t *testing.T, rng *rand.Rand, rows, dim int) (*NormalBank, *AnomalyBank) {
	t.Helper()
	nb := &NormalBank{Features: gaussian(rng, rows, dim)}
	for i := range rows {
		nb.Source = append(nb.Source, int32(i/20))
	}
	normal := gaussian(rng, 200, dim)
	normalSrc := make([]int32, 200)
	for i := range normalSrc {
		normalSrc[i] = int32(i / 40)
	}
	ab, err := BuildAnomalyBank(context.Background(), AnomalyInputs{Normal: normal, NormalSource: normalSrc, PseudoStd: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	return nb, ab
}

// TestKnowledgeResidualsInto: residuals computed a few rows at a time from
// kept neighbours (appended over query blocks) equal Compute's, with and
// without attention; Check names a patch with no eligible neighbour.
func TestKnowledgeResidualsInto(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(4))
	const dim = 6
	nb, ab := knowledgeBanks(t, rng, 120, dim)
	k, err := NewKnowledge(rt, nb, ab, KnowledgeOptions{AttnK: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx := context.Background()
	q := gaussian(rng, 50, dim)
	src := make([]int32, q.Rows())
	for i := range src {
		src[i] = int32(i % 6) // sources 0–5 have bank entries to skip
	}
	for _, attention := range []bool{false, true} {
		want, err := k.Compute(ctx, q, src, attention)
		if err != nil {
			t.Fatal(err)
		}
		all, err := k.Neighbours(ctx, q.Slice(0, 20), src[:20], attention)
		if err != nil {
			t.Fatal(err)
		}
		rest, err := k.Neighbours(ctx, q.Slice(20, 50), src[20:], attention)
		if err != nil {
			t.Fatal(err)
		}
		if err := all.Append(rest); err != nil {
			t.Fatal(err)
		}
		if err := all.Check(q.Rows()); err != nil {
			t.Fatal(err)
		}
		rows := []int{49, 0, 17, 20, 33}
		kn, ka := make([]float32, len(rows)*dim), make([]float32, len(rows)*dim)
		k.ResidualsInto(q, all, rows, kn, ka)
		for i, r := range rows {
			if !slices.Equal(kn[i*dim:(i+1)*dim], want.KN.Row(r)) || !slices.Equal(ka[i*dim:(i+1)*dim], want.KA.Row(r)) {
				t.Fatalf("attention %v: row %d's residuals differ from Compute's", attention, r)
			}
		}
		// The coefficients rebuild the residuals from bank rows:
		// k·x = s·q − Σ_j c_j·b_j, s = Σ_j c_j.
		for _, sd := range []struct {
			n    Nearest
			bank *mat.Matrix
			want *mat.Matrix
		}{{all.Normal, nb.Features, want.KN}, {all.Anomaly, ab.Features, want.KA}} {
			coef := k.Coefficients(sd.n, attention)
			for r := range q.Rows() {
				var sum float32
				for j := range sd.n.K {
					sum += coef[r*sd.n.K+j]
				}
				if wantSum := map[bool]float32{false: 1, true: 2}[attention]; !near(float64(sum), float64(wantSum), 1e-6) {
					t.Fatalf("attention %v: row %d's coefficients sum to %v", attention, r, sum)
				}
				for c := range dim {
					v := float64(sum * q.Row(r)[c])
					for j := range sd.n.K {
						if i := sd.n.Idx[r*sd.n.K+j]; i >= 0 {
							v -= float64(coef[r*sd.n.K+j] * sd.bank.Row(int(i))[c])
						}
					}
					if !near(v, float64(sd.want.Row(r)[c]), 1e-5) {
						t.Fatalf("attention %v: row %d from coefficients %v, residual %v", attention, r, v, sd.want.Row(r)[c])
					}
				}
			}
		}
		other, err := k.Neighbours(ctx, q.Slice(0, 2), nil, !attention)
		if err != nil {
			t.Fatal(err)
		}
		if all.Append(other) == nil {
			t.Errorf("attention %v: appending neighbours of the other setting succeeded", attention)
		}
	}
	bad, err := k.Neighbours(ctx, q.Slice(0, 3), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	bad.Anomaly.Idx[2] = -1
	if err := bad.Check(3); err == nil || !strings.Contains(err.Error(), "patch 2") || !strings.Contains(err.Error(), "anomaly") {
		t.Errorf("Check of a patch without neighbour: %v", err)
	}
}

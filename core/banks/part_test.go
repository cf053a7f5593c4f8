package banks

import (
	"context"
	"math"
	"math/rand"
	"slices"
	"testing"
)

// TestPartSearcher checks that a part of a bank is searched like a bank of
// only those rows, with neighbours reported by their rows in the whole bank
// and same-image exclusion by the whole bank's source ids, in both modes.
func TestPartSearcher(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(5))
	bank, q := clustered(rng, 600, 40, 16)
	source := make([]int32, bank.Rows())
	for i := range source {
		source[i] = int32(i / 10)
	}
	var rows []int
	for r := range bank.Rows() {
		if r%3 != 0 {
			rows = append(rows, r)
		}
	}
	qSource := make([]int32, q.Rows())
	for i := range qSource {
		qSource[i] = source[rows[i*7%len(rows)]] // each query shares an image with part rows
	}
	ctx := context.Background()
	ref, err := NewSearcher(rt, bank.Gather(rows), SearchOptions{Source: func() []int32 {
		s := make([]int32, len(rows))
		for i, r := range rows {
			s[i] = source[r]
		}
		return s
	}()})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	const k = 3
	wantD, wantI, err := ref.SearchExcluding(ctx, q, qSource, k)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []SearchMode{SearchExact, SearchFast} {
		t.Run(mode.String(), func(t *testing.T) {
			p, err := NewPartSearcher(rt, bank, source, rows, SearchOptions{Mode: mode, Fast: FastOptions{Dims: 16}})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Bank() != bank || !slices.Equal(p.Source(), source) {
				t.Fatal("a part searcher does not report the whole bank")
			}
			d, idx, err := p.SearchExcluding(ctx, q, qSource, k)
			if err != nil {
				t.Fatal(err)
			}
			for i := range idx {
				if idx[i] != int64(rows[wantI[i]]) || d[i] != wantD[i] {
					t.Fatalf("slot %d: row %d at %v, want row %d at %v", i, idx[i], d[i], rows[wantI[i]], wantD[i])
				}
				if source[idx[i]] == qSource[i/k] {
					t.Fatalf("slot %d: row %d is of the query's own image", i, idx[i])
				}
			}
			d1, idx1, err := p.Search(ctx, q, 1)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range idx1 {
				if r%3 == 0 {
					t.Fatalf("query %d found row %d, outside the part", i, r)
				}
				if got := sqrtSqDist(q.Row(i), bank.Row(int(r))); abs32(got-d1[i]) > 1e-3*max(1, got) {
					t.Fatalf("query %d: distance %v to row %d, recomputed %v", i, d1[i], r, got)
				}
			}
		})
	}
	for _, bad := range [][]int{nil, {0, 600}, {-1}} {
		if _, err := NewPartSearcher(rt, bank, source, bad, SearchOptions{}); err == nil {
			t.Errorf("rows %v accepted", bad)
		}
	}
}

func sqrtSqDist(a, b []float32) float32 {
	return float32(math.Sqrt(float64(sqDist(a, b, float32(math.Inf(1))))))
}

func abs32(x float32) float32 { return float32(math.Abs(float64(x))) }

package banks

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

// clustered returns rows×cols points around 40 centres with varied spread,
// and queries near random bank rows: the structure patch features have.
func clustered(rng *rand.Rand, rows, queries, cols int) (bank, q *mat.Matrix) {
	centres := gaussian(rng, 40, cols)
	bank = mat.New(rows, cols)
	for r := range rows {
		cen, sd := centres.Row(rng.Intn(40)), float32(0.1+0.4*rng.Float64())
		for j, row := 0, bank.Row(r); j < cols; j++ {
			row[j] = 3*cen[j] + sd*float32(rng.NormFloat64())
		}
	}
	q = mat.New(queries, cols)
	for r := range queries {
		b := bank.Row(rng.Intn(rows))
		for j, row := 0, q.Row(r); j < cols; j++ {
			row[j] = b[j] + 0.2*float32(rng.NormFloat64())
		}
	}
	return bank, q
}

func TestCascadeSearchAgainstBruteForce(t *testing.T) {
	rt := openRuntime(t)
	for _, tc := range []struct {
		name              string
		bankRows, queries int
		cols, k           int
		fast              FastOptions
		batch             int
		exclude           bool
		minRecall         float64 // fraction of queries whose nearest is exact
	}{
		// With the projection as wide as the features it is a rotation:
		// the candidates are the true neighbours.
		{"full-dims-k1", 800, 100, 32, 1, FastOptions{Dims: 32, Rerank: 4}, 0, false, 1},
		{"full-dims-k5-exclude", 800, 100, 32, 5, FastOptions{Dims: 32, Rerank: 8}, 37, true, 1},
		// Reduced: 8 of 96 dims, 16 candidates re-ranked.
		{"reduced-k1", 3000, 300, 96, 1, FastOptions{Dims: 8, Rerank: 16}, 0, false, 0.9},
		{"reduced-k4-batches", 3000, 300, 96, 4, FastOptions{Dims: 8, Rerank: 16}, 64, false, 0.9},
		{"reduced-k3-exclude", 3000, 300, 96, 3, FastOptions{Dims: 8, Rerank: 16, SampleRows: 500, Seed: 3}, 100, true, 0.9},
		// The same with the re-rank inside the ORT graph.
		{"graph-full-dims-k5-exclude", 800, 100, 32, 5, FastOptions{Dims: 32, Rerank: 8, rerankInGraph: true}, 37, true, 1},
		{"graph-reduced-k3-exclude", 3000, 300, 96, 3, FastOptions{Dims: 8, Rerank: 16, rerankInGraph: true}, 100, true, 0.9},
		// Candidates from the 8 of about 190 lists nearest each query.
		{"lists-full-dims-k1", 6000, 300, 32, 1, FastOptions{Dims: 32, Rerank: 4, ListRows: 32, Probes: 8}, 0, false, 0.9},
		{"lists-reduced-k4", 6000, 300, 96, 4, FastOptions{Dims: 16, Rerank: 16, ListRows: 32, Probes: 8}, 0, false, 0.85},
		// Excluding searches scan the whole bank whatever ListRows says.
		{"lists-full-dims-k5-exclude", 800, 100, 32, 5, FastOptions{Dims: 32, Rerank: 8, ListRows: 8, Probes: 4}, 37, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(len(tc.name))))
			bank, q := clustered(rng, tc.bankRows, tc.queries, tc.cols)
			bankSrc := make([]int32, bank.Rows())
			for i := range bankSrc {
				bankSrc[i] = int32(i / 23)
			}
			var qSrc []int32
			if tc.exclude {
				qSrc = make([]int32, q.Rows())
				for i := range qSrc {
					qSrc[i] = int32(rng.Intn(len(bankSrc)/23 + 2))
				}
			}
			ns, err := NewNeighbourSearcher(rt, bank, SearchOptions{Mode: SearchFast, Fast: tc.fast, QueryBatch: tc.batch, Source: bankSrc})
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			if _, ok := ns.(*CascadeSearcher); !ok {
				t.Fatalf("SearchFast built a %T", ns)
			}
			var dist []float32
			var idx []int64
			if tc.exclude {
				dist, idx, err = ns.SearchExcluding(context.Background(), q, qSrc, tc.k)
			} else {
				dist, idx, err = ns.Search(context.Background(), q, tc.k)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(dist) != q.Rows()*tc.k || len(idx) != q.Rows()*tc.k {
				t.Fatalf("got %d distances, %d indices for %d×%d", len(dist), len(idx), q.Rows(), tc.k)
			}
			wd, wi := bruteForce(bank, q, bankSrc, qSrc, tc.k)
			hits := 0
			for r := range q.Rows() {
				if idx[r*tc.k] == wi[r*tc.k] {
					hits++
				}
				for j := range tc.k {
					o := r*tc.k + j
					i := idx[o]
					if i < 0 || i >= int64(bank.Rows()) {
						t.Fatalf("query %d rank %d: index %d", r, j, i)
					}
					if qSrc != nil && bankSrc[i] == qSrc[r] {
						t.Fatalf("query %d found its own source's row %d", r, i)
					}
					// The distance is the exact one to the returned row.
					var s float64
					for c, v := range q.Row(r) {
						d := float64(v) - float64(bank.Row(int(i))[c])
						s += d * d
					}
					if math.Abs(float64(dist[o])-math.Sqrt(s)) > 1e-5*(1+math.Sqrt(s)) {
						t.Fatalf("query %d rank %d: dist %v, exact distance to row %d is %v", r, j, dist[o], i, math.Sqrt(s))
					}
					// Never nearer than the true j-th neighbour; ascending.
					if float64(dist[o]) < wd[o]*(1-1e-5) {
						t.Fatalf("query %d rank %d: dist %v below the true %v", r, j, dist[o], wd[o])
					}
					if j > 0 && dist[o] < dist[o-1] {
						t.Fatalf("query %d: rank %d dist %v before rank %d dist %v", r, j-1, dist[o-1], j, dist[o])
					}
					if j > 0 && idx[o] == idx[o-1] {
						t.Fatalf("query %d: row %d returned twice", r, idx[o])
					}
				}
			}
			if listed := ns.(*CascadeSearcher).lists != nil; listed != (tc.fast.ListRows > 0 && !tc.exclude) {
				t.Fatalf("searched by lists: %v, want %v", listed, !listed)
			}
			recall := float64(hits) / float64(q.Rows())
			t.Logf("recall@1 %.3f", recall)
			if recall < tc.minRecall {
				t.Fatalf("recall@1 %.3f < %.3f", recall, tc.minRecall)
			}
		})
	}
}

func TestCascadeSearchExcludingAllOfASource(t *testing.T) {
	rt := openRuntime(t)
	bank := mat.New(6, 2)
	for i := range 6 {
		bank.Row(i)[0] = float32(i)
	}
	src := []int32{1, 1, 1, 1, 1, 2}
	for _, inGraph := range []bool{false, true} {
		s, err := NewCascadeSearcher(rt, bank, SearchOptions{Source: src, Fast: FastOptions{Dims: 1, Rerank: 3, rerankInGraph: inGraph}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		q := mat.New(2, 2)
		dist, idx, err := s.SearchExcluding(context.Background(), q, []int32{1, 2}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if idx[0] != 5 || dist[0] != 5 || idx[1] != -1 || !math.IsInf(float64(dist[1]), 1) || idx[2] != -1 {
			t.Fatalf("image-1 query: idx %v dist %v, want [5 -1 -1] [5 +Inf +Inf]", idx[:3], dist[:3])
		}
		if idx[3] != 0 || idx[4] != 1 || idx[5] != 2 || dist[3] != 0 {
			t.Fatalf("image-2 query: idx %v dist %v, want [0 1 2]", idx[3:], dist[3:])
		}
	}
}

func TestCascadeSearchErrors(t *testing.T) {
	rt := openRuntime(t)
	bank := gaussian(rand.New(rand.NewSource(1)), 10, 4)
	for _, tc := range []struct {
		name string
		bank *mat.Matrix
		opts SearchOptions
	}{
		{"nil bank", nil, SearchOptions{}},
		{"empty bank", mat.New(0, 4), SearchOptions{}},
		{"source count", bank, SearchOptions{Source: []int32{1}}},
	} {
		if _, err := NewCascadeSearcher(rt, tc.bank, tc.opts); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := NewCascadeSearcher(nil, bank, SearchOptions{}); err == nil {
		t.Error("nil runtime accepted")
	}
	s, err := NewCascadeSearcher(rt, bank, SearchOptions{Source: make([]int32, 10)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := gaussian(rand.New(rand.NewSource(2)), 3, 4)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"k beyond the bank":  func() error { _, _, err := s.Search(ctx, q, 11); return err },
		"wrong columns":      func() error { _, _, err := s.Search(ctx, mat.New(2, 3), 1); return err },
		"short source list":  func() error { _, _, err := s.SearchExcluding(ctx, q, []int32{1}, 1); return err },
		"negative source id": func() error { _, _, err := s.SearchExcluding(ctx, q, []int32{1, -1, 2}, 1); return err },
		"no bank source ids": func() error {
			ns, err := NewCascadeSearcher(rt, bank, SearchOptions{})
			if err != nil {
				return nil
			}
			defer ns.Close()
			_, _, err = ns.SearchExcluding(ctx, q, []int32{1, 2, 3}, 1)
			return err
		},
	} {
		if call() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if d, i, err := s.Search(ctx, mat.New(0, 4), 1); err != nil || d != nil || i != nil {
		t.Errorf("no queries: %v %v %v, want nothing and no error", d, i, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.Search(cancelled, q, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled search: %v, want context.Canceled", err)
	}
}

func TestParseSearchMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SearchMode
		ok   bool
	}{
		{"", SearchExact, true},
		{"exact", SearchExact, true},
		{" Fast ", SearchFast, true},
		{"approx", SearchExact, false},
	} {
		got, err := ParseSearchMode(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseSearchMode(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && tc.in != "" && got.String() != "exact" && got.String() != "fast" {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	rt := openRuntime(t)
	ns, err := NewNeighbourSearcher(rt, gaussian(rand.New(rand.NewSource(1)), 5, 3), SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if _, ok := ns.(*Searcher); !ok {
		t.Errorf("the zero mode built a %T, want the exact *Searcher", ns)
	}
}

// TestKnowledgeFastMatchesExact: Knowledge built with SearchFast, with a
// projection as wide as the features (a rotation: no neighbour is missed),
// gives the exact knowledge, attention included, with and without the
// same-image exclusion.
func TestKnowledgeFastMatchesExact(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(9))
	nb, ab := knowledgeBanks(t, rng, 120, 12)
	exact, err := NewKnowledge(rt, nb, ab, KnowledgeOptions{AttnK: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer exact.Close()
	fast, err := NewKnowledge(rt, nb, ab, KnowledgeOptions{AttnK: 4, Search: SearchOptions{Mode: SearchFast, Fast: FastOptions{Dims: 12, Rerank: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	if _, ok := fast.Normal.(*CascadeSearcher); !ok {
		t.Fatalf("fast knowledge searches with a %T", fast.Normal)
	}
	q := gaussian(rng, 30, 12)
	src := make([]int32, q.Rows())
	for i := range src {
		src[i] = int32(i % 3)
	}
	for _, tc := range []struct {
		name      string
		source    []int32
		attention bool
	}{{"test-time", nil, false}, {"training", src, false}, {"attention", src, true}} {
		want, err := exact.Compute(context.Background(), q, tc.source, tc.attention)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fast.Compute(context.Background(), q, tc.source, tc.attention)
		if err != nil {
			t.Fatal(err)
		}
		for r := range q.Rows() {
			if got.IN[r] != want.IN[r] || got.IA[r] != want.IA[r] || got.DN[r] != want.DN[r] || got.DA[r] != want.DA[r] {
				t.Fatalf("%s query %d: fast n=%d (%v) a=%d (%v), exact n=%d (%v) a=%d (%v)", tc.name, r,
					got.IN[r], got.DN[r], got.IA[r], got.DA[r], want.IN[r], want.DN[r], want.IA[r], want.DA[r])
			}
			for c, v := range want.KN.Row(r) {
				if math.Abs(float64(got.KN.Row(r)[c]-v)) > 1e-5 || math.Abs(float64(got.KA.Row(r)[c]-want.KA.Row(r)[c])) > 1e-5 {
					t.Fatalf("%s query %d: knowledge differs at column %d", tc.name, r, c)
				}
			}
		}
	}
}

// TestCascadeExclusionMatchesMasking: an excluding search sets each
// query's own rows to +Inf by a scatter of their indices; it finds the
// same neighbours as masking every row of the query's source with Equal
// and Where (the in-graph re-rank path), including a source with many
// rows crowding the queries' nearest candidates, batches whose queries
// have different numbers of own rows, and queries from no source in the
// bank.
func TestCascadeExclusionMatchesMasking(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(9))
	bank, q := clustered(rng, 3000, 400, 96)
	src := make([]int32, bank.Rows())
	for i := range src {
		src[i] = int32(i / 23)
		if i < 400 {
			// One source with many rows, crowded around row 500.
			src[i] = 7
			for c, v := range bank.Row(500) {
				bank.Row(i)[c] = v + 0.01*float32(rng.NormFloat64())
			}
		}
	}
	qSrc := make([]int32, q.Rows())
	for i := range qSrc {
		qSrc[i] = int32(rng.Intn(len(src)/23 + 3))
	}
	for i := 100; i < 140; i++ {
		// Queries of the source with many rows, beside its rows: their
		// own rows fill the nearest candidates.
		qSrc[i] = 7
		for c, v := range bank.Row(500) {
			q.Row(i)[c] = v + 0.01*float32(rng.NormFloat64())
		}
	}
	fast := FastOptions{Dims: 8, Rerank: 16, SampleRows: 500}
	scatter, err := NewCascadeSearcher(rt, bank, SearchOptions{Source: src, Fast: fast})
	if err != nil {
		t.Fatal(err)
	}
	defer scatter.Close()
	if len(scatter.rowsOf[7]) != 400 {
		t.Fatalf("source 7 has %d rows, want 400", len(scatter.rowsOf[7]))
	}
	fast.rerankInGraph = true
	inGraph, err := NewCascadeSearcher(rt, bank, SearchOptions{Source: src, Fast: fast})
	if err != nil {
		t.Fatal(err)
	}
	defer inGraph.Close()
	const k = 3
	_, gi, err := scatter.SearchExcluding(context.Background(), q, qSrc, k)
	if err != nil {
		t.Fatal(err)
	}
	_, wi, err := inGraph.SearchExcluding(context.Background(), q, qSrc, k)
	if err != nil {
		t.Fatal(err)
	}
	for o := range gi {
		if gi[o] != wi[o] {
			t.Fatalf("query %d rank %d: row %d (own rows scattered), %d (source masked)", o/k, o%k, gi[o], wi[o])
		}
		if src[gi[o]] == qSrc[o/k] {
			t.Fatalf("query %d found its own source's row %d", o/k, gi[o])
		}
	}
}

// TestCascadeBlockCandidates checks that choosing the candidates by blocks
// (the default) finds what one TopK over every row finds, on banks that
// end in a part block, plain and excluding the queries' own rows (images
// with few rows, and one with more rows than a block has), and with fewer
// blocks than candidates.
func TestCascadeBlockCandidates(t *testing.T) {
	rt := openRuntime(t)
	for _, tc := range []struct {
		name               string
		bankRows, perImage int
		rerank             int
		exclude            bool
	}{
		{"plain", 1000, 23, 16, false},
		{"exclude-few-rows", 1000, 23, 16, true},
		{"exclude-many-rows", 2500, 1100, 16, true},
		{"fewer-blocks-than-candidates", 200, 23, 16, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(len(tc.name))))
			bank, q := clustered(rng, tc.bankRows, 200, 64)
			src := make([]int32, bank.Rows())
			for i := range src {
				src[i] = int32(i / tc.perImage)
			}
			var qSrc []int32
			if tc.exclude {
				qSrc = make([]int32, q.Rows())
				for i := range qSrc {
					qSrc[i] = src[rng.Intn(len(src))]
				}
			}
			search := func(block int) ([]float32, []int64) {
				s, err := NewCascadeSearcher(rt, bank, SearchOptions{Source: src, Fast: FastOptions{Dims: 8, Rerank: tc.rerank, blockRows: block}})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				var d []float32
				var i []int64
				if tc.exclude {
					d, i, err = s.SearchExcluding(context.Background(), q, qSrc, 3)
				} else {
					d, i, err = s.Search(context.Background(), q, 3)
				}
				if err != nil {
					t.Fatal(err)
				}
				return d, i
			}
			wantD, wantI := search(-1)
			gotD, gotI := search(0)
			for j := range wantI {
				if gotI[j] != wantI[j] || gotD[j] != wantD[j] {
					t.Fatalf("neighbour %d of query %d: row %d at %v by blocks, row %d at %v by one TopK", j%3, j/3, gotI[j], gotD[j], wantI[j], wantD[j])
				}
				if tc.exclude && src[gotI[j]] == qSrc[j/3] {
					t.Fatalf("query %d found row %d of its own image", j/3, gotI[j])
				}
			}
		})
	}
}

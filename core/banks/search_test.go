package banks

import (
	"context"
	"fmt"
	"github.com/dmad/workstation/core/ort/orttest"
	"math"
	"math/rand"
	"sort"
	"testing"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

func openRuntime(t testing.TB) *ort.Runtime { return openRuntimeThreads(t, 1) }

func openRuntimeThreads(t testing.TB, threads int) *ort.Runtime {
	t.Helper()
	return orttest.Open(t, threads)
}

// smallInts returns rows×cols integers in [-3, 3]: every squared distance
// is computed exactly in float32, so ties are real ties.
func smallInts(rng *rand.Rand, rows, cols int) *mat.Matrix {
	m := mat.New(rows, cols)
	for i := range m.RawData() {
		m.RawData()[i] = float32(rng.Intn(7) - 3)
	}
	return m
}

// bruteForce is the reference: exact squared distances in float64, sorted
// by distance then bank index, skipping rows with the query's source.
func bruteForce(bank, q *mat.Matrix, bankSrc, qSrc []int32, k int) ([]float64, []int64) {
	dist := make([]float64, q.Rows()*k)
	idx := make([]int64, q.Rows()*k)
	for r := range q.Rows() {
		type cand struct {
			d float64
			i int
		}
		var cs []cand
		for b := range bank.Rows() {
			if qSrc != nil && bankSrc[b] == qSrc[r] {
				continue
			}
			var s float64
			for c := range q.Cols() {
				x := float64(q.Row(r)[c]) - float64(bank.Row(b)[c])
				s += x * x
			}
			cs = append(cs, cand{s, b})
		}
		sort.Slice(cs, func(a, b int) bool {
			return cs[a].d < cs[b].d || (cs[a].d == cs[b].d && cs[a].i < cs[b].i)
		})
		for j := range k {
			if j < len(cs) {
				dist[r*k+j], idx[r*k+j] = math.Sqrt(cs[j].d), int64(cs[j].i)
			} else {
				dist[r*k+j], idx[r*k+j] = math.Inf(1), -1
			}
		}
	}
	return dist, idx
}

func TestSearchMatchesBruteForce(t *testing.T) {
	rt := openRuntime(t)
	for _, tc := range []struct {
		name              string
		bankRows, queries int
		cols, k           int
		chunk, batch      int
		exclude, ints     bool
	}{
		{"ties-k1-onechunk", 300, 50, 8, 1, 0, 0, false, true},
		{"ties-k5-chunks", 301, 70, 8, 5, 64, 16, false, true},
		{"ties-k7-chunks-exclude", 257, 90, 6, 7, 50, 32, true, true},
		{"gaussian-k3-chunks", 500, 40, 32, 3, 128, 0, false, false},
		{"gaussian-k4-exclude", 400, 40, 32, 4, 100, 7, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(len(tc.name))))
			var bank, q *mat.Matrix
			if tc.ints {
				bank, q = smallInts(rng, tc.bankRows, tc.cols), smallInts(rng, tc.queries, tc.cols)
				// Plant exact duplicates of bank rows, across chunks, and
				// queries equal to bank rows.
				for i := 0; i+200 < bank.Rows(); i += 37 {
					copy(bank.Row(i+200), bank.Row(i))
				}
				for i := 0; i < q.Rows(); i += 3 {
					copy(q.Row(i), bank.Row(rng.Intn(bank.Rows())))
				}
			} else {
				bank, q = gaussian(rng, tc.bankRows, tc.cols), gaussian(rng, tc.queries, tc.cols)
			}
			bankSrc := make([]int32, bank.Rows())
			for i := range bankSrc {
				bankSrc[i] = int32(i / 23) // images of 23 patches
			}
			var qSrc []int32
			if tc.exclude {
				qSrc = make([]int32, q.Rows())
				for i := range qSrc {
					qSrc[i] = int32(rng.Intn(len(bankSrc)/23 + 2))
				}
			}
			s, err := NewSearcher(rt, bank, SearchOptions{ChunkRows: tc.chunk, QueryBatch: tc.batch, Source: bankSrc})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var dist []float32
			var idx []int64
			if tc.exclude {
				dist, idx, err = s.SearchExcluding(context.Background(), q, qSrc, tc.k)
			} else {
				dist, idx, err = s.Search(context.Background(), q, tc.k)
			}
			if err != nil {
				t.Fatal(err)
			}
			wd, wi := bruteForce(bank, q, bankSrc, qSrc, tc.k)
			tol := 1e-3
			for o := range wd {
				if math.Abs(float64(dist[o])-wd[o]) > tol*(1+wd[o]) {
					t.Fatalf("query %d rank %d: dist %v, want %v", o/tc.k, o%tc.k, dist[o], wd[o])
				}
				if idx[o] != wi[o] {
					t.Fatalf("query %d rank %d: index %d, want %d (dist %v vs %v)", o/tc.k, o%tc.k, idx[o], wi[o], dist[o], wd[o])
				}
				if qSrc != nil && idx[o] >= 0 && bankSrc[idx[o]] == qSrc[o/tc.k] {
					t.Fatalf("query %d found its own source's row %d", o/tc.k, idx[o])
				}
			}
		})
	}
}

func TestSearchExcludingAllOfASource(t *testing.T) {
	rt := openRuntime(t)
	// Five rows of image 1, one row of image 2: a query of image 1 has one
	// eligible neighbour, however near its own image's rows are.
	bank := mat.New(6, 2)
	for i := range 6 {
		bank.Row(i)[0] = float32(i)
	}
	src := []int32{1, 1, 1, 1, 1, 2}
	s, err := NewSearcher(rt, bank, SearchOptions{ChunkRows: 4, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := mat.New(2, 2) // both at the origin, on top of row 0
	dist, idx, err := s.SearchExcluding(context.Background(), q, []int32{1, 2}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if idx[0] != 5 || dist[0] != 5 || idx[1] != -1 || !math.IsInf(float64(dist[1]), 1) {
		t.Fatalf("image-1 query: idx %v dist %v, want [5 -1 -1] [5 +Inf +Inf]", idx[:3], dist[:3])
	}
	if idx[3] != 0 || idx[4] != 1 || idx[5] != 2 || dist[3] != 0 {
		t.Fatalf("image-2 query: idx %v dist %v, want [0 1 2]", idx[3:], dist[3:])
	}
	if _, _, err := s.SearchExcluding(context.Background(), q, []int32{1}, 1); err == nil {
		t.Error("short source list accepted")
	}
	if _, _, err := s.Search(context.Background(), q, 7); err == nil {
		t.Error("k beyond the bank accepted")
	}
	if _, _, err := s.Search(context.Background(), mat.New(1, 3), 1); err == nil {
		t.Error("wrong column count accepted")
	}
	noSrc, err := NewSearcher(rt, bank, SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer noSrc.Close()
	if _, _, err := noSrc.SearchExcluding(context.Background(), q, []int32{1, 2}, 1); err == nil {
		t.Error("exclusion without bank sources accepted")
	}
}

// BenchmarkSearch: 784 queries (one 224×224 image) against a 20,000×768
// bank, k = 1, ORT with 2 threads, for a few chunk and batch sizes (0: the
// defaults, 32768 and 512). Reports queries/s.
func BenchmarkSearch(b *testing.B) {
	rt, err := ort.Open(ort.Options{Threads: 2, Device: ort.DeviceCPU})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	rng := rand.New(rand.NewSource(1))
	bank, q := gaussian(rng, 20000, 768), gaussian(rng, 784, 768)
	for _, cfg := range []struct{ chunk, batch int }{{0, 0}, {20000, 0}, {10000, 0}, {20000, 64}, {20000, 128}, {20000, 256}, {20000, 784}} {
		b.Run(fmt.Sprintf("chunk=%d/batch=%d", cfg.chunk, cfg.batch), func(b *testing.B) {
			s, err := NewSearcher(rt, bank, SearchOptions{ChunkRows: cfg.chunk, QueryBatch: cfg.batch})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, _, err := s.Search(context.Background(), q, 1); err != nil { // build sessions
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, _, err := s.Search(context.Background(), q, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*q.Rows())/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// The query batch a searcher chooses keeps its distance matrices within
// the buffer, whatever the bank's size, inside the batch bounds.
func TestQueryBatch(t *testing.T) {
	for _, tc := range []struct {
		opts SearchOptions
		rows int
		want int
	}{
		{SearchOptions{}, 1000, MaxQueryBatch},
		{SearchOptions{}, 20000, 419},
		{SearchOptions{}, 80000, 104},
		{SearchOptions{}, 2000000, MinQueryBatch},
		{SearchOptions{BufferBytes: 8 << 20}, 80000, 64},
		{SearchOptions{BufferBytes: 64 << 20}, 80000, 209},
		{SearchOptions{QueryBatch: 700}, 80000, 700},
	} {
		if got := tc.opts.queryBatch(tc.rows); got != tc.want {
			t.Errorf("%+v over %d rows: query batch %d, want %d", tc.opts, tc.rows, got, tc.want)
		}
	}
}

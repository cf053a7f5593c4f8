package banks

import (
	"context"
	"math"
	"math/rand"
	"slices"
	"sort"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

// identity returns the n×n identity as a projection.
func identity(n int) []float32 {
	p := make([]float32, n*n)
	for i := range n {
		p[i*n+i] = 1
	}
	return p
}

// TestListCandidatesAllProbes checks the partitioned candidate choice
// against brute force when every list is probed: each query's candidates
// must then be the bank rows with the smallest stage-1 values
// (−2·q·b + ‖b‖²), ascending.
func TestListCandidatesAllProbes(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(5))
	bank, q := clustered(rng, 700, 60, 16)
	l, err := newBankLists(context.Background(), rt, bank, identity(16), 16, 20, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if l.probes != len(l.cells) || len(l.cells) < 20 {
		t.Fatalf("%d probes of %d lists", l.probes, len(l.cells))
	}
	const cand = 5
	cv, ci := make([]float32, q.Rows()*cand), make([]int64, q.Rows()*cand)
	if err := l.candidates(context.Background(), q, cand, cv, ci); err != nil {
		t.Fatal(err)
	}
	for r := range q.Rows() {
		want := make([]float64, bank.Rows())
		for b := range bank.Rows() {
			var dot, n float64
			for c, v := range bank.Row(b) {
				dot += float64(q.Row(r)[c]) * float64(v)
				n += float64(v) * float64(v)
			}
			want[b] = n - 2*dot
		}
		sorted := slices.Clone(want)
		sort.Float64s(sorted)
		for j := range cand {
			i := ci[r*cand+j]
			if i < 0 {
				t.Fatalf("query %d: slot %d empty", r, j)
			}
			tol := 1e-4 * (1 + math.Abs(sorted[j]))
			if math.Abs(want[i]-sorted[j]) > tol || math.Abs(float64(cv[r*cand+j])-want[i]) > tol {
				t.Fatalf("query %d slot %d: row %d (value %v, stage-1 %v), want the value %v", r, j, i, want[i], cv[r*cand+j], sorted[j])
			}
			if j > 0 && cv[r*cand+j] < cv[r*cand+j-1] {
				t.Fatalf("query %d: candidates not ascending", r)
			}
		}
	}
}

// TestBankListsSplitLargeCells checks that no list holds more than twice
// ListRows rows (k-means leaves dense regions in large cells, and the
// search probes those most) and that every bank row is in exactly one list.
func TestBankListsSplitLargeCells(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(2))
	// Uneven blobs: a few dense ones and many sparse.
	bank := mat.New(0, 8)
	for b := range 12 {
		centre := make([]float32, 8)
		for i := range centre {
			centre[i] = float32(rng.NormFloat64() * 10)
		}
		n := 40
		if b < 3 {
			n = 900
		}
		for range n {
			row := make([]float32, 8)
			for i := range row {
				row[i] = centre[i] + float32(rng.NormFloat64())
			}
			bank.AppendRow(row)
		}
	}
	const listRows = 50
	l, err := newBankLists(context.Background(), rt, bank, identity(8), 8, listRows, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	seen := make([]int, bank.Rows())
	for c, cell := range l.cells {
		if len(cell.rows) == 0 || len(cell.rows) > 2*listRows {
			t.Errorf("list %d holds %d rows", c, len(cell.rows))
		}
		if len(cell.w) != 9*len(cell.rows) {
			t.Errorf("list %d: %d weights for %d rows", c, len(cell.w), len(cell.rows))
		}
		for _, r := range cell.rows {
			seen[r]++
		}
	}
	for r, n := range seen {
		if n != 1 {
			t.Fatalf("row %d is in %d lists", r, n)
		}
	}
}

// TestKMeansSeparatedBlobs checks that k-means puts three far-apart blobs
// in three cells.
func TestKMeansSeparatedBlobs(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	x := mat.New(300, 4)
	for r := range 300 {
		for c := range 4 {
			x.Row(r)[c] = float32(100*(r/100)) + float32(rng.NormFloat64())
		}
	}
	_, assign, err := kmeans(context.Background(), x, 3, 10, rand.New(rand.NewSource(1)))
	if err != nil {
		t.Fatal(err)
	}
	for blob := range 3 {
		for r := blob * 100; r < (blob+1)*100; r++ {
			if assign[r] != assign[blob*100] {
				t.Fatalf("row %d of blob %d in cell %d, the blob's first in %d", r, blob, assign[r], assign[blob*100])
			}
		}
	}
	if assign[0] == assign[100] || assign[100] == assign[200] || assign[0] == assign[200] {
		t.Fatalf("blobs share cells: %d %d %d", assign[0], assign[100], assign[200])
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := kmeans(ctx, x, 3, 10, rand.New(rand.NewSource(1))); err == nil {
		t.Fatal("a cancelled clustering returned no error")
	}
}

// TestKeepSmallest checks the running selection against sorting, fed in
// pieces as the list scans feed it.
func TestKeepSmallest(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, tc := range []struct{ k, n, pieces int }{{1, 10, 1}, {5, 3, 1}, {5, 100, 3}, {16, 1000, 8}, {16, 40, 5}} {
		vals := make([]float32, tc.n)
		rows := make([]int64, tc.n)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64())
			rows[i] = int64(1000 + i)
		}
		tv, ti := make([]float32, tc.k), make([]int64, tc.k)
		for i := range tv {
			tv[i], ti[i] = float32(math.Inf(1)), -1
		}
		step := (tc.n + tc.pieces - 1) / tc.pieces
		for lo := 0; lo < tc.n; lo += step {
			hi := min(lo+step, tc.n)
			keepSmallest(tv, ti, vals[lo:hi], rows[lo:hi])
		}
		order := make([]int, tc.n)
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return vals[order[a]] < vals[order[b]] })
		for j := range tc.k {
			if j >= tc.n {
				if ti[j] != -1 || !math.IsInf(float64(tv[j]), 1) {
					t.Fatalf("k=%d n=%d: slot %d filled with %v row %d", tc.k, tc.n, j, tv[j], ti[j])
				}
				continue
			}
			if tv[j] != vals[order[j]] || ti[j] != rows[order[j]] {
				t.Fatalf("k=%d n=%d: slot %d holds %v row %d, want %v row %d", tc.k, tc.n, j, tv[j], ti[j], vals[order[j]], rows[order[j]])
			}
		}
	}
}

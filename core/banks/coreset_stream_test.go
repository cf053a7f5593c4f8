package banks

import (
	"context"
	"errors"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

// failingSource fails its pass after failAt rows.
type failingSource struct {
	MatrixSource
	failAt int
}

func (s failingSource) Each(ctx context.Context, fn func(int, *mat.Matrix) error) error {
	return s.MatrixSource.Each(ctx, func(lo int, b *mat.Matrix) error {
		if lo >= s.failAt {
			return errors.New("disk read failed")
		}
		return fn(lo, b)
	})
}

func TestCoresetSourceMatchesInMemory(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	feats, _, _ := clusters(rng, []int{4000, 3000, 2500, 1500}, 96, 6, 1)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		projDim int
		n       int
	}{
		{"projected 32 dims", 32, 120},
		{"projected 64 dims", 64, 40},
		{"unprojected", -1, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := CoresetOptions{ProjDim: tc.projDim, Seed: 7, Workers: 2}
			want, err := Coreset(ctx, feats, tc.n, opts)
			if err != nil {
				t.Fatal(err)
			}
			wantCover := coverRadius(feats, want)
			for _, block := range []int{1, 97, 4096, feats.Rows()} {
				got, err := CoresetSource(ctx, MatrixSource{M: feats, BlockRows: block}, tc.n, opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != tc.n {
					t.Fatalf("block %d: %d points, want %d", block, len(got), tc.n)
				}
				// The rotation is applied after the projection instead of
				// before, so float32 rounding may flip a near tie: the
				// selections must agree on nearly every point and cover the
				// features as well.
				same := 0
				ws := slices.Clone(want)
				slices.Sort(ws)
				for _, g := range got {
					if _, ok := slices.BinarySearch(ws, g); ok {
						same++
					}
				}
				if same < tc.n*95/100 {
					t.Errorf("block %d: %d of %d points shared with the in-memory selection", block, same, tc.n)
				}
				if c := coverRadius(feats, got); c > 1.05*wantCover {
					t.Errorf("block %d: cover radius %.4f, in-memory %.4f", block, c, wantCover)
				}
			}
		})
	}
}

func TestCoresetSourceBlockingDoesNotMatter(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	feats := gaussian(rng, 5000, 80)
	ctx := context.Background()
	opts := CoresetOptions{ProjDim: 24, Seed: 1, Workers: 2}
	want, err := CoresetSource(ctx, MatrixSource{M: feats}, 100, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range []int{1, 13, 999} {
		got, err := CoresetSource(ctx, MatrixSource{M: feats, BlockRows: block}, 100, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("block %d: selection differs from one block", block)
		}
	}
}

func TestBuildNormalBankSource(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	feats := gaussian(rng, 3000, 48)
	src := make([]int32, feats.Rows())
	for i := range src {
		src[i] = int32(i / 100)
	}
	ctx := context.Background()
	opts := CoresetOptions{ProjDim: 16, Seed: 2, Workers: 2}
	b, err := BuildNormalBankSource(ctx, MatrixSource{M: feats, BlockRows: 100}, src, 0.05, opts)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := CoresetSource(ctx, MatrixSource{M: feats}, 150, opts)
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 150 {
		t.Fatalf("bank of %d rows, want 150", b.Len())
	}
	for i, r := range idx {
		if !slices.Equal(b.Features.Row(i), feats.Row(r)) || b.Source[i] != src[r] {
			t.Fatalf("bank row %d is not feature row %d", i, r)
		}
	}
	_, err = BuildNormalBankSource(ctx, failingSource{MatrixSource{M: feats, BlockRows: 100}, 1000}, src, 0.05, opts)
	if err == nil || !strings.Contains(err.Error(), "disk read failed") {
		t.Errorf("failing source: error %v, want the read error", err)
	}
	if _, err := BuildNormalBankSource(ctx, MatrixSource{M: feats}, src[:10], 0.05, opts); err == nil {
		t.Error("source ids of the wrong length accepted")
	}
}

func TestCompareGEMM(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(4))
	bank, q := gaussian(rng, 2000, 64), gaussian(rng, 100, 64)
	c, err := CompareGEMM(context.Background(), rt, bank, q, 2)
	if err != nil {
		t.Fatal(err)
	}
	if c.GEMMGFLOPS <= 0 || c.ExactGFLOPS <= 0 || c.Ratio != c.ExactGFLOPS/c.GEMMGFLOPS || c.Queries != 100 || c.BankRows != 2000 {
		t.Fatalf("comparison %+v", c)
	}
	if _, err := CompareGEMM(context.Background(), rt, bank, gaussian(rng, 5, 32), 1); err == nil {
		t.Fatal("queries of another dimension accepted")
	}
}

func TestCoresetTwoStageBoundedCovers(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	sizes := []int{3000, 2500, 2000, 1200, 800, 400, 60, 20, 8}
	feats, labels, _ := clusters(rng, sizes, 96, 8, 1)
	ctx := context.Background()
	for _, projDim := range []int{32, -1} {
		opts := CoresetOptions{ProjDim: projDim, Seed: 3, Workers: 2}
		const n = 150
		one, err := CoresetSource(ctx, MatrixSource{M: feats, BlockRows: 300}, n, opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.MaxPoints = feats.Rows() / 4
		two, err := CoresetSource(ctx, MatrixSource{M: feats, BlockRows: 300}, n, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(two) != n {
			t.Fatalf("proj %d: %d points, want %d", projDim, len(two), n)
		}
		seen := map[int]bool{}
		hit := map[int]bool{}
		for _, i := range two {
			if i < 0 || i >= feats.Rows() || seen[i] {
				t.Fatalf("proj %d: bad or repeated index %d", projDim, i)
			}
			seen[i] = true
			hit[labels[i]] = true
		}
		if len(hit) != len(sizes) {
			t.Errorf("proj %d: two-stage selection covers %d of %d clusters", projDim, len(hit), len(sizes))
		}
		r1, r2 := coverRadius(feats, one), coverRadius(feats, two)
		t.Logf("proj %d: cover radius single-stage %.3f, two-stage (parts of %d) %.3f", projDim, r1, opts.MaxPoints/3, r2)
		if r2 > 1.25*r1 {
			t.Errorf("proj %d: two-stage cover radius %.3f, single-stage %.3f", projDim, r2, r1)
		}
	}
}

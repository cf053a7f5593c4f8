package banks

import (
	"context"
	"math"
	"math/rand"
	"testing"

	"github.com/dmad/workstation/core/mat"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestImageScore(t *testing.T) {
	for _, tc := range []struct {
		in       []float32
		max, top float32
	}{
		{[]float32{1, 9, 3, 7, 5, 2, 8}, 9, 6.4}, // (9+8+7+5+3)/5
		{[]float32{2, 4}, 4, 3},
		{nil, 0, 0},
	} {
		m, top := ImageScore(tc.in)
		if m != tc.max || !near(float64(top), float64(tc.top), 1e-6) {
			t.Errorf("ImageScore(%v) = %v, %v; want %v, %v", tc.in, m, top, tc.max, tc.top)
		}
	}
}

func TestAnomalyMapBilinear(t *testing.T) {
	// 2×2 → 4×4, align_corners=False: along each axis the source
	// coordinates are −0.25 (clamped to 0), 0.25, 0.75, 1.25 (edge), so a
	// line [a b] becomes [a, .75a+.25b, .25a+.75b, b]. With f = x + 2y:
	scores := []float32{0, 1, 2, 3}
	line := []float64{0, 0.25, 0.75, 1}
	got := AnomalyMap(scores, 2, 2, 4, 4, 0)
	for y := range 4 {
		for x := range 4 {
			want := line[x] + 2*line[y]
			if !near(float64(got[y*4+x]), want, 1e-6) {
				t.Fatalf("(%d,%d) = %v, want %v; map %v", y, x, got[y*4+x], want, got)
			}
		}
	}
	// Downsampling by 2 picks midpoints: 4 → 2 samples at 0.5 and 2.5.
	got = AnomalyMap([]float32{0, 1, 2, 3}, 1, 4, 1, 2, 0)
	if !near(float64(got[0]), 0.5, 1e-6) || !near(float64(got[1]), 2.5, 1e-6) {
		t.Fatalf("downsample %v, want [0.5 2.5]", got)
	}
}

func TestGaussianSmooth(t *testing.T) {
	// σ = 1: radius 4, weights e^{−k²/2}/Σ. An impulse at index 3 of 7
	// spreads to w|i−3|, except index 0 which also receives the weight at
	// offset 4 mirrored back from index −4 (reflect: −1→0, …, −4→3).
	var sum float64
	w := make([]float64, 5)
	for k := -4; k <= 4; k++ {
		sum += math.Exp(-float64(k*k) / 2)
	}
	for k := range w {
		w[k] = math.Exp(-float64(k*k)/2) / sum
	}
	m := []float32{0, 0, 0, 1, 0, 0, 0}
	GaussianSmooth(m, 1, 7, 1)
	want := []float64{w[3] + w[4], w[2], w[1], w[0], w[1], w[2], w[3] + w[4]}
	for i := range want {
		if !near(float64(m[i]), want[i], 1e-6) {
			t.Fatalf("smoothed impulse %v, want %v", m, want)
		}
	}
	// The same along columns, and a constant map stays constant.
	col := []float32{0, 0, 0, 1, 0, 0, 0}
	GaussianSmooth(col, 7, 1, 1)
	for i := range want {
		if !near(float64(col[i]), want[i], 1e-6) {
			t.Fatalf("column impulse %v, want %v", col, want)
		}
	}
	c := make([]float32, 30*20)
	for i := range c {
		c[i] = 2.5
	}
	GaussianSmooth(c, 30, 20, 4)
	for i, v := range c {
		if !near(float64(v), 2.5, 1e-5) {
			t.Fatalf("constant map changed at %d: %v", i, v)
		}
	}
	if got := reflect(-1, 3); got != 0 {
		t.Errorf("reflect(-1, 3) = %d", got)
	}
	if got := reflect(7, 3); got != 1 { // 0 1 2 | 2 1 0 | 0 1 ...: index 7 → 1
		t.Errorf("reflect(7, 3) = %d", got)
	}
}

func TestPatchCoreFindsPlantedOutlier(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(4))
	// Normal "images": 40 images × 49 patches drawn from 6 clusters.
	const dim, perImage, grid = 32, 49, 7
	centres := gaussian(rng, 6, dim)
	for i := range centres.Data {
		centres.Data[i] *= 10
	}
	image := func() *mat.Matrix {
		m := mat.New(perImage, dim)
		for r := range perImage {
			c := centres.Row(rng.Intn(6))
			for j := range dim {
				m.Row(r)[j] = c[j] + float32(rng.NormFloat64()*0.5)
			}
		}
		return m
	}
	var train []*mat.Matrix
	var ids []int32
	for i := range 40 {
		train = append(train, image())
		ids = append(ids, int32(i))
	}
	bank, err := BuildNormalBank(context.Background(), train, ids, 0.1, CoresetOptions{Seed: 1, ProjDim: 16})
	if err != nil {
		t.Fatal(err)
	}
	if bank.Len() != 40*perImage/10 {
		t.Fatalf("bank has %d entries, want %d", bank.Len(), 40*perImage/10)
	}
	pc, err := NewPatchCore(rt, bank, SearchOptions{ChunkRows: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	good, bad := image(), image()
	const planted = 3*grid + 5
	for j := range dim { // a patch between clusters, far from all of them
		bad.Row(planted)[j] = 0.5*(centres.Row(0)[j]+centres.Row(1)[j]) + 3
	}
	sg, err := pc.PatchScores(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := pc.PatchScores(context.Background(), bad)
	if err != nil {
		t.Fatal(err)
	}
	argmax := 0
	for i, v := range sb {
		if v > sb[argmax] {
			argmax = i
		}
	}
	if argmax != planted {
		t.Fatalf("highest patch score at %d, planted outlier at %d", argmax, planted)
	}
	gMax, gTop := ImageScore(sg)
	bMax, bTop := ImageScore(sb)
	t.Logf("image scores: good max %.2f top5 %.2f; bad max %.2f top5 %.2f", gMax, gTop, bMax, bTop)
	if bMax <= gMax || bTop <= gTop {
		t.Fatalf("defective image not scored above the good one")
	}
	// The pixel map peaks over the planted cell (28×28 px per 7×7 grid).
	pix := AnomalyMap(sb, grid, grid, 28, 28, 1)
	peak := 0
	for i, v := range pix {
		if v > pix[peak] {
			peak = i
		}
	}
	if py, px := peak/28/4, peak%28/4; py != planted/grid || px != planted%grid {
		t.Fatalf("map peak in cell (%d,%d), planted in (%d,%d)", py, px, planted/grid, planted%grid)
	}
}

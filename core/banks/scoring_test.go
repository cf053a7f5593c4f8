package banks

import (
	"context"
	"math"
	"math/rand"
	"testing"

	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/mat"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestPatchCoreFindsPlantedOutlier(t *testing.T) {
	rt := openRuntime(t)
	rng := rand.New(rand.NewSource(4))
	// Normal "images": 40 images × 49 patches drawn from 6 clusters.
	const dim, perImage, grid = 32, 49, 7
	centres := gaussian(rng, 6, dim)
	for i := range centres.RawData() {
		centres.RawData()[i] *= 10
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
	gMax, gTop := heatmap.ImageScore(sg)
	bMax, bTop := heatmap.ImageScore(sb)
	t.Logf("image scores: good max %.2f top5 %.2f; bad max %.2f top5 %.2f", gMax, gTop, bMax, bTop)
	if bMax <= gMax || bTop <= gTop {
		t.Fatalf("defective image not scored above the good one")
	}
	// The pixel map peaks over the planted cell (28×28 px per 7×7 grid).
	pix := heatmap.AnomalyMap(sb, grid, grid, 28, 28, 1)
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

package pipeline

import (
	"context"
	"image"
	"math/rand"
	"testing"
)

// BenchmarkScoreMaps rates the five candidate fusions on a validation split
// the size of the benchmark's (68 images, half with a defect mask, 28×28
// patches, 224² maps), pooled and for two categories, as chooseFusion does:
// the maps made once, rated three times.
func BenchmarkScoreMaps(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	const n, h0, size = 68, 28, 224
	items := make([]valScored, n)
	for i := range items {
		it := valScored{score: make([]float32, h0*h0), dist: make([]float32, h0*h0), category: []string{"a", "b"}[i%2]}
		for j := range it.score {
			it.score[j], it.dist[j] = rng.Float32(), rng.Float32()
		}
		if i%2 == 0 {
			it.mask = imageGray(size, size, func(x, y int) bool { return (x-100)*(x-100)+(y-90)*(y-90) < 400+i*10 })
			it.seen = i%4 == 0
		}
		items[i] = it
	}
	cal := MapFusion{ScoreStd: 1, DistStd: 1}
	maskAt := func(g *image.Gray) []bool {
		out := make([]bool, len(g.Pix))
		for i, p := range g.Pix {
			out[i] = p > 0
		}
		return out
	}
	ctx := context.Background()
	for b.Loop() {
		fm, err := newFusionMaps(ctx, items, cal, h0, h0, size, maskAt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rateFusions(ctx, items, fm, FusionWeights(), size); err != nil {
			b.Fatal(err)
		}
		for _, lo := range []int{0, n / 2} {
			idx := make([]int, n/2)
			for i := range idx {
				idx[i] = lo + i
			}
			if _, err := rateFusions(ctx, items[lo:lo+n/2], fm.subset(idx), FusionWeights(), size); err != nil {
				b.Fatal(err)
			}
		}
	}
}

package banks

import (
	"context"
	"fmt"
	"github.com/dmad/workstation/core/sharedtest"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/mat"
)

// sharedDir finds ../shared beside the repository root, or skips.
func sharedDir(tb testing.TB) string {
	tb.Helper()
	return sharedtest.Dir(tb)
}

// realFeatures encodes up to perCategory training images of each shared
// category with the shared MobileNetV2 (784×768 per image).
func realFeatures(tb testing.TB, perCategory int) *mat.Matrix {
	shared := sharedDir(tb)
	card, err := encoder.LoadCard(filepath.Join(shared, "models", "mobilenet_v2_imagenet.json"))
	if err != nil {
		tb.Skipf("backbone card: %v", err)
	}
	model, err := encoder.ReadBackbone(filepath.Join(shared, "models", "mobilenet_v2_imagenet.onnx"), card)
	if err != nil {
		tb.Skipf("backbone: %v", err)
	}
	var paths []string
	for _, cat := range []string{"bottle", "magnetic_tile"} {
		ps, _ := filepath.Glob(filepath.Join(shared, "data", "industrial", cat, "train", "good", "*"))
		sort.Strings(ps)
		paths = append(paths, ps[:min(perCategory, len(ps))]...)
	}
	if len(paths) == 0 {
		tb.Skip("no shared training images")
	}
	rt := openRuntimeThreads(tb, 2)
	enc, err := encoder.New(rt, card, model, encoder.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	defer enc.Close()
	start := time.Now()
	feats, err := enc.EncodeFiles(context.Background(), paths, nil)
	if err != nil {
		tb.Fatal(err)
	}
	all, err := mat.Append(feats...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("encoded %d images in %v", len(paths), time.Since(start))
	return all
}

// BenchmarkCoresetReal runs the 2 % coreset on real MobileNetV2 patch
// features of the shared bottle and magnetic_tile training images (first
// $BANKS_BENCH_IMAGES of each, default 100): the pruning's effect on real,
// clustered features, with and without it.
// Run: go test -run x -bench CoresetReal -benchtime 1x ./core/banks/
func BenchmarkCoresetReal(b *testing.B) {
	per := envInt("BANKS_BENCH_IMAGES", 100)
	feats := realFeatures(b, per)
	rt := openRuntimeThreads(b, 2)
	n := feats.Rows() / 50
	for _, prune := range []bool{true, false} {
		b.Run(fmt.Sprintf("%d×768/prune=%v", feats.Rows(), prune), func(b *testing.B) {
			if !prune && feats.Rows() > 200_000 {
				b.Skip("the unpruned selection takes too long at this size")
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			cpu0 := cpuSeconds()
			stop := peakHeap()
			var st selectStats
			b.ResetTimer()
			for range b.N {
				if _, err := Coreset(context.Background(), feats, n, CoresetOptions{Seed: 1, Runtime: rt, disablePruning: !prune, stats: &st}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// Work per selection, in points: tested, and tested in full.
			b.ReportMetric(float64(st.visited)/float64(n), "tested/sel")
			b.ReportMetric(float64(st.full)/float64(n), "full-rows/sel")
			b.ReportMetric(float64(st.initial)/float64(n), "initial/sel")
			b.ReportMetric(stop()-float64(before.HeapInuse)/(1<<20), "peak-extra-heap-MB")
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MB/op")
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
		})
	}
}

// BenchmarkCoresetParts compares the one-stage greedy selection with the
// two-stage one in parts of PartRows points on real MobileNetV2 patch
// features (first $BANKS_BENCH_IMAGES training images of each shared
// category, default 100): time, and the cover of the features by the
// selected rows in full dimension (nearest selected row of 8,192 sampled
// feature rows: mean, 99th percentile and maximum distance; a selected row
// covers itself at 0). $BANKS_BENCH_PARTS lists the part sizes, comma
// separated (−1: one stage); $BANKS_BENCH_OVERSAMPLE sets how many times
// its share each part picks.
// Run: BANKS_BENCH_IMAGES=1000 go test -run x -bench CoresetParts -benchtime 1x -timeout 60m ./core/banks/
func BenchmarkCoresetParts(b *testing.B) {
	per := envInt("BANKS_BENCH_IMAGES", 100)
	feats := realFeatures(b, per)
	rt := openRuntimeThreads(b, 2)
	n := feats.Rows() / 50
	rng := rand.New(rand.NewSource(3))
	sample := mat.New(min(8192, feats.Rows()), feats.Cols())
	for i := range sample.Rows() {
		copy(sample.Row(i), feats.Row(rng.Intn(feats.Rows())))
	}
	pts, err := Project(context.Background(), feats, 128, rand.New(rand.NewSource(1)), 2, rt)
	if err != nil {
		b.Fatal(err)
	}
	parts := []int{-1, 1 << 16, 1 << 15, 1 << 14}
	if v := os.Getenv("BANKS_BENCH_PARTS"); v != "" {
		parts = nil
		for _, f := range strings.Split(v, ",") {
			var p int
			fmt.Sscan(f, &p)
			parts = append(parts, p)
		}
	}
	over := envInt("BANKS_BENCH_OVERSAMPLE", CoresetOversample)
	for _, partRows := range parts {
		b.Run(fmt.Sprintf("%d×768/part=%d/over=%d", feats.Rows(), partRows, over), func(b *testing.B) {
			var idx []int
			cpu0 := cpuSeconds()
			for range b.N {
				idx, err = selectCoreset(context.Background(), pts.Clone(), n, rand.New(rand.NewSource(2)),
					CoresetOptions{Start: 10, Workers: 2, PartRows: partRows, oversample: over})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
			s, err := NewSearcher(rt, feats.Gather(idx), SearchOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			dist, _, err := s.Search(context.Background(), sample, 1)
			if err != nil {
				b.Fatal(err)
			}
			sort.Slice(dist, func(i, j int) bool { return dist[i] < dist[j] })
			mean := 0.0
			for _, d := range dist {
				mean += float64(d)
			}
			b.ReportMetric(mean/float64(len(dist)), "cover-mean")
			b.ReportMetric(float64(dist[len(dist)*99/100]), "cover-p99")
			b.ReportMetric(float64(dist[len(dist)-1]), "cover-max")
		})
	}
}

// envInt is the integer in the environment variable name, or def.
func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		fmt.Sscan(v, &def)
	}
	return def
}

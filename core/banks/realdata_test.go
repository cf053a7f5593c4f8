package banks

import (
	"context"
	"fmt"
	"github.com/dmad/workstation/core/sharedtest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
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
	per := 100
	if v := os.Getenv("BANKS_BENCH_IMAGES"); v != "" {
		fmt.Sscan(v, &per)
	}
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
			b.ResetTimer()
			for range b.N {
				if _, err := Coreset(context.Background(), feats, n, CoresetOptions{Seed: 1, Runtime: rt, disablePruning: !prune}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(stop()-float64(before.HeapInuse)/(1<<20), "peak-extra-heap-MB")
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MB/op")
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
		})
	}
}

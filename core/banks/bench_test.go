package banks

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"testing"
	"time"

	"github.com/dmad/workstation/core/mat"
)

// benchFeatures makes rows×cols features: either plain N(0,1) (the worst
// case for pruning: no structure) or a mixture of 1,000 clusters of varied
// spread (closer to patch features, which cluster by texture and part).
func benchFeatures(rows, cols int, clustered bool) *mat.Matrix {
	rng := rand.New(rand.NewSource(11))
	if !clustered {
		return gaussian(rng, rows, cols)
	}
	const k = 1000
	centres := gaussian(rng, k, cols)
	m := mat.New(rows, cols)
	for r := range rows {
		c := rng.Intn(k)
		sd := float32(0.05 + 0.3*rng.Float64())
		row, cen := m.Row(r), centres.Row(c)
		for j := range row {
			row[j] = cen[j] + sd*float32(rng.NormFloat64())
		}
	}
	return m
}

// BenchmarkCoreset selects 2 % of the rows (PatchCore's ratio) of synthetic
// features. Reported: ns/op (one whole selection, projection included),
// CPU seconds, the peak heap beyond the features, and the bytes allocated.
// Run: go test -run x -bench Coreset -benchtime 1x ./core/banks/
func BenchmarkCoreset(b *testing.B) {
	for _, bc := range []struct {
		rows      int
		clustered bool
		prune     bool
	}{
		{50_000, true, false},
		{50_000, true, true},
		{50_000, false, false},
		{50_000, false, true},
		{200_000, true, true},
	} {
		name := fmt.Sprintf("%dk×768/clustered=%v/prune=%v", bc.rows/1000, bc.clustered, bc.prune)
		b.Run(name, func(b *testing.B) {
			feats := benchFeatures(bc.rows, 768, bc.clustered)
			rt := openRuntimeThreads(b, 2)
			n := bc.rows / 50
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			cpu0 := cpuSeconds()
			stop := peakHeap()
			b.ResetTimer()
			for range b.N {
				if _, err := Coreset(context.Background(), feats, n, CoresetOptions{Seed: 1, Runtime: rt, disablePruning: !bc.prune}); err != nil {
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

var sinkF float32

// BenchmarkSqDist is the inner kernel: one 128-dim squared distance.
func BenchmarkSqDist(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	x := gaussian(rng, 2, 128)
	inf := float32(math.Inf(1))
	for range b.N {
		sinkF += sqDist(x.Row(0), x.Row(1), inf)
	}
}

// BenchmarkProject projects 50,000×768 features to 128 dims (principal-axes
// rotation included), in Go and on ONNX Runtime (2 threads).
func BenchmarkProject(b *testing.B) {
	feats := benchFeatures(50000, 768, false)
	rt := openRuntimeThreads(b, 2)
	for _, useORT := range []bool{false, true} {
		b.Run(fmt.Sprintf("ort=%v", useORT), func(b *testing.B) {
			for range b.N {
				rng := rand.New(rand.NewSource(1))
				var err error
				if useORT {
					_, err = Project(context.Background(), feats, 128, rng, 2, rt)
				} else {
					_, err = Project(context.Background(), feats, 128, rng, 2, nil)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*feats.Rows())/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// peakHeap samples the Go heap in use every 50 ms until stop is called,
// which returns the peak in MB.
func peakHeap() (stop func() float64) {
	done := make(chan struct{})
	result := make(chan float64)
	go func() {
		var peak uint64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				result <- float64(peak) / (1 << 20)
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 { close(done); return <-result }
}

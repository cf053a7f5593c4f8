package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/encoder/encodertest"
	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/core/train"
)

// heapPeak samples the Go heap (live objects, runtime/metrics) every
// millisecond until stopped and returns its high-water mark.
func heapPeak() (stop func() (objects, total uint64)) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
	var peak, peakTotal uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			peakTotal = max(peakTotal, sample[1].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) { close(done); wg.Wait(); return peak, peakTotal }
}

// BenchmarkTrainMemory trains a DMAD model (normal bank, anomaly bank,
// knowledge, a one-epoch mapper, threshold) on 1,000 and on 10,000
// synthetic normal images (core/synth, 64×64, the tiny test backbone: 64
// patches of 12 dims each) streamed from a float16 feature cache, with the
// same 32 MiB memory budget, and reports the Go heap's high-water mark
// (peak-heap-MB) and, on Linux, the process's peak RSS (peak-rss-MB)
// during training. Memory is bounded by the budget, not by the dataset:
// the two peaks should differ by at most a quarter although the data grow
// tenfold (features-MB is their float32 size, which training never holds).
//
// Run: go test -run x -bench TrainMemory -benchtime 1x ./core/pipeline
func BenchmarkTrainMemory(b *testing.B) {
	rt := runtimeFor(b)
	bb, err := encodertest.Backbone(9)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := encoder.New(rt, encodertest.Card(), bb, encoder.Config{InputSize: 64})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	ctx := context.Background()
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("images=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			if err := synth.WriteDataset(dir, synth.DatasetOptions{Categories: 1, TrainPerCategory: n, TestGoodPerCategory: 1, TestDefectPerCategory: 1, Size: 64, Seed: 5}); err != nil {
				b.Fatal(err)
			}
			ds, err := dataset.Open(dir, dataset.Options{})
			if err != nil {
				b.Fatal(err)
			}
			var paths, cats []string
			var ids []int32
			for _, s := range ds.Train() {
				paths, cats, ids = append(paths, s.Path), append(cats, s.Category), append(ids, int32(len(ids)))
			}
			cache := &DirCache{Dir: filepath.Join(b.TempDir(), "features"), EncoderID: enc.ID(), Float16: true}
			rows, err := EncodeToCache(ctx, enc, paths, cache, nil)
			if err != nil {
				b.Fatal(err)
			}
			ood, err := OODPatches(ctx, enc, paths, 10, 1, nil)
			if err != nil {
				b.Fatal(err)
			}
			tc := train.DefaultConfig(enc.Dim())
			tc.Epochs, tc.BatchSize = 1, 256
			opts := Options{Method: DMAD, TrainPatches: 8192, Train: tc, Seed: 1, ThresholdImages: 16,
				Memory: 32 << 20, EncoderID: enc.ID(), Card: enc.Card(), Encoder: enc.Config()}
			var heap, goTotal uint64
			var rss, rssStart float64
			b.ResetTimer()
			for range b.N {
				set := TrainSet{Normal: CachedImages(cache, paths, ids, cats, rows), OOD: ood}
				runtime.GC()
				debug.FreeOSMemory()
				PeakRSSReset()
				rssStart = max(rssStart, PeakRSSMB())
				stop := heapPeak()
				m, err := Fit(ctx, rt, set, opts, nil)
				h, tot := stop()
				heap, goTotal = max(heap, h), max(goTotal, tot)
				rss = max(rss, PeakRSSMB())
				if err != nil {
					b.Fatal(err)
				}
				if m.Normal.Len() == 0 {
					b.Fatal("empty normal bank")
				}
			}
			total := 0
			for _, r := range rows {
				total += r
			}
			b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(goTotal)/(1<<20), "peak-go-MB")
			b.ReportMetric(rss, "peak-rss-MB")
			b.ReportMetric(rssStart, "start-rss-MB")
			b.ReportMetric(float64(total*enc.Dim()*4)/(1<<20), "features-MB")
			b.ReportMetric(float64(total), "patches")
		})
	}
}

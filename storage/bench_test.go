package storage

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dmad/workstation/core/mat"
)

// peakHeap samples runtime.MemStats.HeapInuse until stop is called and
// returns the peak above the level at start, in MB.
func peakHeap() (stop func() float64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var s runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				runtime.ReadMemStats(&s)
				peak = max(peak, s.HeapInuse)
			}
		}
	})
	return func() float64 {
		close(done)
		wg.Wait()
		return float64(peak-base) / 1e6
	}
}

func benchBank() *mat.Matrix {
	m := mat.New(50000, 768)
	for i := range m.Data {
		m.Data[i] = float32(i%1000) * 0.001
	}
	return m
}

// BenchmarkBankSave writes a 50,000×768 float32 bank (153.6 MB) as one blob.
func BenchmarkBankSave(b *testing.B) {
	p := newProject(b)
	m := benchBank()
	b.SetBytes(int64(4 * len(m.Data)))
	stop := peakHeap()
	for b.Loop() {
		b.StopTimer()
		runtime.GC() // the peak is per write, not garbage of the previous one
		b.StartTimer()
		if _, err := p.PutBlob(context.Background(), "banks", "normal", MatrixReader(m)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(stop(), "peak-heap-MB")
}

// BenchmarkBankLoad streams the same bank back into a matrix.
func BenchmarkBankLoad(b *testing.B) {
	p := newProject(b)
	m := benchBank()
	if _, err := p.PutBlob(context.Background(), "banks", "normal", MatrixReader(m)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(4 * len(m.Data)))
	stop := peakHeap()
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		br, err := p.OpenBlob("banks", "normal")
		if err != nil {
			b.Fatal(err)
		}
		got, err := ReadMatrix(br)
		if err != nil || got.Rows != m.Rows {
			b.Fatal(err)
		}
	}
	b.ReportMetric(stop(), "peak-heap-MB")
}

// BenchmarkFeaturesBatch caches 64 images of 784×768 features in one transaction.
func BenchmarkFeaturesBatch(b *testing.B) {
	p := newProject(b)
	entries := make([]FeatureEntry, 64)
	for i := range entries {
		entries[i] = FeatureEntry{ImageID: uint64(i + 1), Features: mat.New(784, 768)}
	}
	b.SetBytes(int64(len(entries) * 784 * 768 * 4))
	for b.Loop() {
		if err := p.PutFeaturesBatch(context.Background(), "enc", entries); err != nil {
			b.Fatal(err)
		}
	}
}

package storage

import (
	"context"
	"image"
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
	for i := range m.RawData() {
		m.RawData()[i] = float32(i%1000) * 0.001
	}
	return m
}

// BenchmarkBankSave writes a 50,000×768 float32 bank (153.6 MB) as one blob.
func BenchmarkBankSave(b *testing.B) {
	p := newProject(b)
	m := benchBank()
	b.SetBytes(int64(4 * len(m.RawData())))
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
	b.SetBytes(int64(4 * len(m.RawData())))
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
		if err != nil || got.Rows() != m.Rows() {
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

// manifestProject builds a project of n images, each with a mask and a
// feature cache, closed, and returns its path.
func manifestProject(b *testing.B, n int) string {
	b.Helper()
	p := newProject(b)
	recs := make([]*ImageRecord, n)
	for i := range recs {
		recs[i] = &ImageRecord{Path: "/data/img/" + string(rune('a'+i%26)) + "/" + time.Duration(i).String() + ".png"}
	}
	if err := p.PutImages(recs); err != nil {
		b.Fatal(err)
	}
	entries := make([]FeatureEntry, 0, n)
	for _, r := range recs {
		entries = append(entries, FeatureEntry{ImageID: r.ID, Features: mat.New(4, 8)})
	}
	if err := p.PutFeaturesBatch(context.Background(), "enc", entries); err != nil {
		b.Fatal(err)
	}
	path := p.Path()
	p.Close()
	return path
}

// BenchmarkOpenWithManifest is the cost of Open's structure check (a walk
// over every key, no values) on a project of 20000 images with feature
// caches (40000 keys).
func BenchmarkOpenWithManifest(b *testing.B) {
	path := manifestProject(b, 20000)
	b.ResetTimer()
	for range b.N {
		p, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		p.Close()
	}
}

// BenchmarkWriteWithManifest is the cost of one small write transaction
// (a mask) on the same project: the write plus the manifest's key walk.
func BenchmarkWriteWithManifest(b *testing.B) {
	path := manifestProject(b, 20000)
	p, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	m := image.NewGray(image.Rect(0, 0, 8, 8))
	b.ResetTimer()
	for i := range b.N {
		if err := p.PutMask(uint64(1+i%20000), m); err != nil {
			b.Fatal(err)
		}
	}
}

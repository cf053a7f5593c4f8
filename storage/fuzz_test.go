package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/dmad/workstation/internal/alloccheck"
	"image"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/dmad/workstation/core/mat"
)

// A matrix blob whose header claims 2^34 floats used to allocate 64 GiB
// before reading a byte of them.
func TestReadMatrixHugeHeaderAllocatesLittle(t *testing.T) {
	hdr := make([]byte, 24)
	copy(hdr, matMagic)
	binary.LittleEndian.PutUint64(hdr[8:], 1<<20)
	binary.LittleEndian.PutUint64(hdr[16:], 1<<14)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadMatrix(bytes.NewReader(append(hdr, make([]byte, 4096)...)))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("want a truncation error, got %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("a 4 KiB matrix blob allocated %d MiB", grew>>20)
	}
}

// heapWatchdog ends the process when its heap passes limit bytes: an input
// that makes storage allocate without end (a loop in a damaged b-tree did)
// would otherwise take the machine's memory before alloccheck sees the
// growth; the fuzzing engine reports the input of a worker that exits.
func heapWatchdog(limit uint64) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapSys > limit {
				fmt.Fprintf(os.Stderr, "heap %d MiB passed the %d MiB bound\n", ms.HeapSys>>20, limit>>20)
				os.Exit(2)
			}
		}
	}()
	return func() { close(done) }
}

func FuzzReadMatrix(f *testing.F) {
	var buf bytes.Buffer
	m, _ := mat.FromData(2, 3, []float32{1, 2, 3, 4, 5, 6})
	io.Copy(&buf, MatrixReader(m))
	f.Add(buf.Bytes())
	f.Add(append([]byte("DMADMAT1"), make([]byte, 16)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		alloccheck.Within(t, alloccheck.Bound(len(data)), func() {
			m, err := ReadMatrix(bytes.NewReader(data))
			if err == nil && len(m.RawData()) != m.Rows()*m.Cols() {
				t.Fatalf("%d values for %d×%d", len(m.RawData()), m.Rows(), m.Cols())
			}
		})
	})
}

func FuzzDecodeFeatures(f *testing.F) {
	m, _ := mat.FromData(2, 2, []float32{1, -2, 0.5, 7})
	for _, enc := range []string{FeatureFloat32, FeatureFloat16} {
		v, _ := encodeFeatures(m, enc)
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		alloccheck.Within(t, alloccheck.Bound(len(data)), func() {
			m, err := decodeFeatures(data)
			if err == nil && len(m.RawData()) != m.Rows()*m.Cols() {
				t.Fatalf("%d values for %d×%d", len(m.RawData()), m.Rows(), m.Cols())
			}
		})
	})
}

// FuzzModelFile feeds arbitrary bytes to the model file reader: the header
// and then every part through the same limits ImportModel uses.
func FuzzModelFile(f *testing.F) {
	p, err := Create(filepath.Join(f.TempDir(), "seed.dmad"), "seed")
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if err := p.SaveModel(ctx, &ModelRecord{BackboneID: "mobilenet_v2_imagenet"}, map[string]io.Reader{
		PartMapper: bytes.NewReader([]byte("mapper bytes")), PartNormalBank: bytes.NewReader([]byte("bank"))}); err != nil {
		f.Fatal(err)
	}
	var file bytes.Buffer
	if err := p.ExportModel(ctx, 1, &file); err != nil {
		f.Fatal(err)
	}
	p.Close()
	f.Add(file.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		alloccheck.Within(t, alloccheck.Bound(len(data)), func() {
			r := bytes.NewReader(data)
			hdr, err := readModelFileHeader(r)
			if err != nil {
				return
			}
			for _, part := range hdr.Model.Parts {
				io.Copy(io.Discard, io.LimitReader(r, part.Size))
			}
		})
	})
}

// FuzzOpenProject opens mutated project files and reads and writes
// everything: any outcome but a crash (panic, fault) is acceptable, and a
// file that opens must pass or fail CheckFile without crashing either.
func FuzzOpenProject(f *testing.F) {
	dir := f.TempDir()
	p, err := Create(filepath.Join(dir, "seed.dmad"), "seed")
	if err != nil {
		f.Fatal(err)
	}
	p.chunk = 512
	recs := []*ImageRecord{{Path: "/a.png"}, {Path: "/b.png", Label: LabelAnomalous}}
	p.PutImages(recs)
	p.PutMask(recs[1].ID, image.NewGray(image.Rect(0, 0, 4, 4)))
	p.PutBlob(context.Background(), "banks", "n", bytes.NewReader(bytes.Repeat([]byte("bank"), 300)))
	path := p.Path()
	p.Close()
	seed, _ := os.ReadFile(path)
	f.Add(seed[:usedBytes(f, path)]) // bbolt grows files ahead of use; the tail is zeros
	target := filepath.Join(dir, "fuzz.dmad")
	stop := heapWatchdog(1 << 30)
	defer stop()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(target, data, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(target + ".lock-info")
		alloccheck.Within(t, alloccheck.Bound(len(data)), func() {
			CheckFile(context.Background(), target) // any report, no crash
			exerciseProject(t, target)
		})
	})
}

// Sizes whose product overflows int64 (2^31 × 2^31 × 4 wraps to 0, the
// length of an empty payload whose CRC is 0) must not reach the allocator.
func TestDecodeFeaturesOverflowingSize(t *testing.T) {
	for _, rc := range [][2]uint32{{1 << 31, 1 << 31}, {1<<32 - 1, 1<<32 - 1}, {1 << 30, 1 << 4}, {1<<32 - 1, 0}} {
		for _, enc := range []byte{encF32, encF16} {
			v := make([]byte, featHeader)
			v[0] = enc
			binary.BigEndian.PutUint32(v[4:], rc[0])
			binary.BigEndian.PutUint32(v[8:], rc[1])
			alloccheck.Within(t, alloccheck.Bound(len(v)), func() {
				if _, err := decodeFeatures(v); err == nil {
					t.Errorf("%d×%d with no payload decoded", rc[0], rc[1])
				}
			})
		}
	}
}

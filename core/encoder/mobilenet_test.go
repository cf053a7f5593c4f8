package encoder

import (
	"context"
	"image"
	"math"
	"path/filepath"
	"testing"

	"github.com/dmad/workstation/core/imageio"
)

// bottleImages lists a few real images from the shared data, or skips.
func bottleImages(t testing.TB, n int) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(sharedDir(t), "data", "industrial", "bottle", "train", "good", "*.png"))
	if err != nil || len(paths) < n {
		t.Skipf("shared bottle images absent (%d found, %v)", len(paths), err)
	}
	return paths[:n]
}

func TestMobileNetV2(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	card, backbone := mobileNet(t)
	paths := bottleImages(t, 3)
	rt := openRuntime(t, 2)
	ctx := context.Background()

	batched, err := New(rt, card, backbone, Config{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer batched.Close()
	if h, w := batched.Grid(); h != 28 || w != 28 || batched.Dim() != 768 {
		t.Fatalf("grid %d×%d dim %d, want 28×28 and 768", h, w, batched.Dim())
	}
	feats, err := batched.EncodeFiles(ctx, paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	single, err := New(rt, card, backbone, Config{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	var imgs []image.Image
	for _, p := range paths {
		img, err := imageio.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	one, err := single.Encode(ctx, imgs)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range feats {
		if feats[i].Rows() != 784 || feats[i].Cols() != 768 {
			t.Fatalf("image %d: features %d×%d, want 784×768", i, feats[i].Rows(), feats[i].Cols())
		}
		nonzero := 0
		for j, v := range feats[i].RawData() {
			worst = max(worst, math.Abs(float64(v-one[i].RawData()[j])))
			if v != 0 {
				nonzero++
			}
		}
		if nonzero < len(feats[i].RawData())/10 {
			t.Errorf("image %d: only %d of %d features nonzero", i, nonzero, len(feats[i].RawData()))
		}
	}
	t.Logf("batch 2 vs batch 1: max abs diff %.3g", worst)
	if worst >= 1e-4 {
		t.Errorf("batched and single features differ by %g", worst)
	}

	big, err := New(rt, card, backbone, Config{InputSize: 320, Dim: 256, Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	if h, w := big.Grid(); h != 40 || w != 40 {
		t.Fatalf("grid at 320: %d×%d, want 40×40", h, w)
	}
	f, err := big.Encode(ctx, imgs[:1])
	if err != nil {
		t.Fatal(err)
	}
	if f[0].Rows() != 1600 || f[0].Cols() != 256 {
		t.Fatalf("features at 320: %d×%d, want 1600×256", f[0].Rows(), f[0].Cols())
	}
}

func benchmarkMobileNet(b *testing.B, batch, size int) {
	card, backbone := mobileNet(b)
	paths := bottleImages(b, 8)
	rt := openRuntime(b, 2)
	enc, err := New(rt, card, backbone, Config{Batch: batch, InputSize: size})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	imgs := make([]image.Image, 8)
	for i, p := range paths {
		if imgs[i], err = imageio.Load(p); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := enc.Encode(ctx, imgs); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := enc.Encode(ctx, imgs); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N*len(imgs))
	b.ReportMetric(sec*1000, "ms/image")
	b.ReportMetric(1/sec, "images/s")
}

// BenchmarkEncodeMobileNetV2Batch1 encodes 8 decoded 900×900 bottle images
// per op at 224, one image per run, 2 ORT threads.
func BenchmarkEncodeMobileNetV2Batch1(b *testing.B) { benchmarkMobileNet(b, 1, 224) }

// BenchmarkEncodeMobileNetV2Batch8 is the same with batches of 8.
func BenchmarkEncodeMobileNetV2Batch8(b *testing.B) { benchmarkMobileNet(b, 8, 224) }

// BenchmarkEncodeMobileNetV2Batch8At320 is Batch8 at a 320 input (40×40 patches).
func BenchmarkEncodeMobileNetV2Batch8At320(b *testing.B) { benchmarkMobileNet(b, 8, 320) }

// BenchmarkNewMobileNetV2 measures opening an encoder: graph surgery, the
// stride probe and the session.
func BenchmarkNewMobileNetV2(b *testing.B) {
	card, backbone := mobileNet(b)
	rt := openRuntime(b, 2)
	for range b.N {
		enc, err := New(rt, card, backbone, Config{})
		if err != nil {
			b.Fatal(err)
		}
		enc.Close()
	}
}

// BenchmarkPreprocess900 resizes one decoded 900×900 bottle image to the
// 224 input (the CPU work that runs beside inference).
func BenchmarkPreprocess900(b *testing.B) {
	card, _ := mobileNet(b)
	paths := bottleImages(b, 1)
	img, err := imageio.Load(paths[0])
	if err != nil {
		b.Fatal(err)
	}
	e := &Encoder{card: card, cfg: card.DefaultConfig().WithDefaults(), affine: newChannelAffine(card)}
	dst := make([]float32, e.InputLen())
	b.ResetTimer()
	for range b.N {
		e.preprocessInto(dst, img)
	}
}

// BenchmarkEncodeFilesMobileNetV2 decodes and encodes 16 bottle PNGs per
// op (batches of 8, 2 ORT threads): the end-to-end feature extraction rate.
func BenchmarkEncodeFilesMobileNetV2(b *testing.B) {
	card, backbone := mobileNet(b)
	paths := bottleImages(b, 16)
	rt := openRuntime(b, 2)
	enc, err := New(rt, card, backbone, Config{Batch: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	b.ResetTimer()
	for range b.N {
		if _, err := enc.EncodeFiles(context.Background(), paths, nil); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N*len(paths))
	b.ReportMetric(sec*1000, "ms/image")
}

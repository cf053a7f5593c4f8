package synth

import (
	"bytes"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/imageio"
)

// testImage is a mid-grey textured image whose bounds do not start at the
// origin.
func testImage(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(5, 7, 5+w, 7+h))
	for y := img.Rect.Min.Y; y < img.Rect.Max.Y; y++ {
		for x := img.Rect.Min.X; x < img.Rect.Max.X; x++ {
			v := uint8(90 + 40*math.Sin(float64(x)/3)*math.Cos(float64(y)/4))
			img.Set(x, y, color.RGBA{v, v + 10, v - 10, 255})
		}
	}
	return img
}

func lumaAt(img image.Image, x, y int) float64 {
	r, g, b, _ := img.At(x, y).RGBA()
	return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 257
}

func TestDefect(t *testing.T) {
	sizes := []image.Point{{96, 96}, {64, 40}, {224, 160}}
	for _, kind := range Kinds() {
		for _, sz := range sizes {
			for seed := range uint64(5) {
				name := kind.String() + "/" + image.Rect(0, 0, sz.X, sz.Y).String()
				src := testImage(sz.X, sz.Y)
				rng := rand.New(rand.NewPCG(seed, 99))
				out, mask := Defect(src, rng, kind)
				if out.Bounds() != image.Rect(0, 0, sz.X, sz.Y) || mask.Bounds() != out.Bounds() {
					t.Fatalf("%s: bounds %v / mask %v", name, out.Bounds(), mask.Bounds())
				}
				var in, changedIn, diffIn float64
				for y := range sz.Y {
					for x := range sz.X {
						so, sd := src.At(x+5, y+7), out.At(x, y)
						if mask.GrayAt(x, y).Y == 0 {
							if so != sd {
								t.Fatalf("%s seed %d: pixel (%d,%d) outside the mask changed", name, seed, x, y)
							}
							continue
						}
						in++
						d := math.Abs(lumaAt(src, x+5, y+7) - lumaAt(out, x, y))
						diffIn += d
						if d > 8 {
							changedIn++
						}
					}
				}
				area := float64(sz.X * sz.Y)
				if in == 0 || in > 0.5*area {
					t.Errorf("%s seed %d: mask covers %v of %v pixels", name, seed, in, area)
					continue
				}
				// Cut-paste moves real texture, which may match what it covers
				// in places; the other kinds shift every pixel.
				minChanged := 0.8
				if kind == CutPaste {
					minChanged = 0.6
				}
				if changedIn/in < minChanged || diffIn/in < 20 {
					t.Errorf("%s seed %d: only %.0f%% of mask pixels changed, mean |Δluma| %.1f",
						name, seed, 100*changedIn/in, diffIn/in)
				}
			}
		}
	}
}

func TestDefectDeterministic(t *testing.T) {
	src := testImage(64, 64)
	seen := map[Kind]bool{}
	for i := range 40 {
		a, ma, ka := RandomDefect(src, rand.New(rand.NewPCG(uint64(i), 1)))
		b, mb, kb := RandomDefect(src, rand.New(rand.NewPCG(uint64(i), 1)))
		if ka != kb || !bytes.Equal(a.(*image.RGBA).Pix, b.(*image.RGBA).Pix) || !bytes.Equal(ma.Pix, mb.Pix) {
			t.Fatalf("draw %d: same seed, different defect", i)
		}
		seen[ka] = true
	}
	if len(seen) != len(Kinds()) {
		t.Errorf("RandomDefect drew only %v", seen)
	}
}

func TestDefectTinyImage(t *testing.T) {
	for _, kind := range Kinds() {
		_, mask := Defect(testImage(3, 2), rand.New(rand.NewPCG(1, 2)), kind)
		n := 0
		for _, v := range mask.Pix {
			if v != 0 {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%v on a 3×2 image: empty mask", kind)
		}
	}
}

func TestWriteDataset(t *testing.T) {
	opts := DatasetOptions{Categories: 3, TrainPerCategory: 6, TestGoodPerCategory: 2, TestDefectPerCategory: 5, Size: 48, Seed: 7}
	dir := t.TempDir()
	if err := WriteDataset(dir, opts); err != nil {
		t.Fatal(err)
	}
	ds, err := dataset.Open(dir, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Categories) != 3 || ds.Layout != dataset.LayoutMVTec {
		t.Fatalf("categories %v layout %s", ds.Categories, ds.Layout)
	}
	for _, c := range CategoryNames(3) {
		if got := ds.Count(c); got != (dataset.Counts{TrainGood: 6, TestGood: 2, TestDefect: 5}) {
			t.Errorf("%s: counts %+v", c, got)
		}
		if got := ds.DefectTypes(c); len(got) != 4 {
			t.Errorf("%s: defect types %v", c, got)
		}
	}
	for _, s := range ds.Samples {
		if s.Width != 48 || s.Height != 48 {
			t.Errorf("%s: %d×%d", s.Path, s.Width, s.Height)
		}
		if s.Label != dataset.Defect {
			continue
		}
		m, err := imageio.LoadMask(s.MaskPath)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(m.Pix, []byte{255}) == 0 {
			t.Errorf("%s: empty mask", s.MaskPath)
		}
	}

	// Normal images vary within a category.
	a, _ := os.ReadFile(filepath.Join(dir, "tile", "train", "good", "000.png"))
	b, _ := os.ReadFile(filepath.Join(dir, "tile", "train", "good", "001.png"))
	if bytes.Equal(a, b) {
		t.Error("two normal images are identical")
	}

	// Deterministic for a seed; another seed gives other images.
	again := t.TempDir()
	if err := WriteDataset(again, opts); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	opts.Seed = 8
	if err := WriteDataset(other, opts); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"disc/test/scratch/000.png", "fabric/ground_truth/blob/001_mask.png", "tile/train/good/005.png"} {
		x, err1 := os.ReadFile(filepath.Join(dir, rel))
		y, err2 := os.ReadFile(filepath.Join(again, rel))
		z, err3 := os.ReadFile(filepath.Join(other, rel))
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("%s: %v %v %v", rel, err1, err2, err3)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with the same seed", rel)
		}
		if bytes.Equal(x, z) {
			t.Errorf("%s identical for seeds 7 and 8", rel)
		}
	}
}

func TestCategoryNames(t *testing.T) {
	got := CategoryNames(7)
	want := []string{"tile", "disc", "fabric", "wood", "grid", "tile2", "disc2"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("CategoryNames(7) = %v, want %v", got, want)
		}
	}
}

// BenchmarkWriteDataset writes the default dataset: 3 categories × 34
// images of 96×96.
func BenchmarkWriteDataset(b *testing.B) {
	for b.Loop() {
		if err := WriteDataset(b.TempDir(), DatasetOptions{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

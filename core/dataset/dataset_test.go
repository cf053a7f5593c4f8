package dataset

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/imageio/imagetest"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/sharedtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// writeImage writes a w×h image at path (parents created); the extension
// chooses PNG or JPEG.
func writeImage(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), 90, 255})
		}
	}
	var buf bytes.Buffer
	var err error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jpg", ".jpeg":
		err = jpeg.Encode(&buf, img, nil)
	default:
		err = png.Encode(&buf, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.Bytes())
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeMVTec writes a category: trainGood train images, testGood good test
// images and, per defect type, n JPEG images with PNG masks.
func makeMVTec(t *testing.T, dir string, trainGood, testGood int, defects map[string]int) {
	t.Helper()
	name := func(i int) string { return string(rune('a'+i/10)) + string(rune('0'+i%10)) }
	for i := range trainGood {
		writeImage(t, filepath.Join(dir, "train", "good", name(i)+".png"), 20, 16)
	}
	for i := range testGood {
		writeImage(t, filepath.Join(dir, "test", "good", name(i)+".png"), 20, 16)
	}
	for typ, n := range defects {
		for i := range n {
			writeImage(t, filepath.Join(dir, "test", typ, name(i)+".jpg"), 20, 16)
			writeImage(t, filepath.Join(dir, "ground_truth", typ, name(i)+"_mask.png"), 20, 16)
		}
	}
}

func TestOpenMVTec(t *testing.T) {
	root := t.TempDir()
	makeMVTec(t, filepath.Join(root, "bolt"), 3, 2, map[string]int{"crack": 2, "hole": 1})
	makeMVTec(t, filepath.Join(root, "nut"), 4, 1, map[string]int{"scratch": 3})
	writeFile(t, filepath.Join(root, "readme.txt"), []byte("not a category"))

	ds, err := Open(root, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Layout != LayoutMVTec || !slices.Equal(ds.Categories, []string{"bolt", "nut"}) {
		t.Fatalf("layout %q categories %v", ds.Layout, ds.Categories)
	}
	want := map[string]Counts{"bolt": {TrainGood: 3, TestGood: 2, TestDefect: 3}, "nut": {TrainGood: 4, TestGood: 1, TestDefect: 3}}
	for c, w := range want {
		if got := ds.Count(c); got != w {
			t.Errorf("%s counts %+v, want %+v", c, got, w)
		}
	}
	if got := ds.DefectTypes("bolt"); !slices.Equal(got, []string{"crack", "hole"}) {
		t.Errorf("bolt defect types %v", got)
	}
	for _, s := range ds.Samples {
		if s.Width != 20 || s.Height != 16 {
			t.Errorf("%s: size %d×%d", s.Path, s.Width, s.Height)
		}
		if (s.Label == Defect) != (s.MaskPath != "") {
			t.Errorf("%s: label %v mask %q", s.Path, s.Label, s.MaskPath)
		}
		if s.Label == Defect && filepath.Base(s.MaskPath) != stem(filepath.Base(s.Path))+"_mask.png" {
			t.Errorf("%s: mask %s", s.Path, s.MaskPath)
		}
	}

	// One category folder as root, and a selection.
	one, err := Open(filepath.Join(root, "nut"), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(one.Categories, []string{"nut"}) || len(one.Samples) != 8 {
		t.Errorf("single category: %v, %d samples", one.Categories, len(one.Samples))
	}
	sel, err := Open(root, Options{Categories: []string{"nut"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sel.Categories, []string{"nut"}) || len(sel.ByCategory("bolt")) != 0 {
		t.Errorf("selection: %v", sel.Categories)
	}
	_, err = Open(root, Options{Categories: []string{"screw"}, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), `"screw"`) || !strings.Contains(err.Error(), "bolt, nut") {
		t.Errorf("unknown category error = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	pngData := func(w, h int) []byte {
		var buf bytes.Buffer
		png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h)))
		return buf.Bytes()
	}
	jpgData := func(w, h int) []byte {
		var buf bytes.Buffer
		jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h)), nil)
		return buf.Bytes()
	}
	tests := []struct {
		name   string
		breakF func(t *testing.T, cat string) // breaks one file of a valid category
		bad    string                         // path (relative to the category) the error must name
	}{
		{"defect without mask", func(t *testing.T, cat string) {
			os.Remove(filepath.Join(cat, "ground_truth", "crack", "a1_mask.png"))
		}, "test/crack/a1.jpg"},
		{"mask size differs", func(t *testing.T, cat string) {
			writeFile(t, filepath.Join(cat, "ground_truth", "crack", "a0_mask.png"), pngData(10, 16))
		}, "ground_truth/crack/a0_mask.png"},
		{"truncated png", func(t *testing.T, cat string) {
			d := pngData(20, 16)
			writeFile(t, filepath.Join(cat, "train", "good", "a1.png"), d[:len(d)-20])
		}, "train/good/a1.png"},
		{"truncated jpeg", func(t *testing.T, cat string) {
			d := jpgData(20, 16)
			writeFile(t, filepath.Join(cat, "test", "crack", "a0.jpg"), d[:len(d)/2])
		}, "test/crack/a0.jpg"},
		{"garbage", func(t *testing.T, cat string) {
			writeFile(t, filepath.Join(cat, "test", "good", "a0.png"), []byte("hello, not an image"))
		}, "test/good/a0.png"},
		{"empty file", func(t *testing.T, cat string) {
			writeFile(t, filepath.Join(cat, "train", "good", "a2.png"), nil)
		}, "train/good/a2.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			cat := filepath.Join(root, "bolt")
			makeMVTec(t, cat, 3, 2, map[string]int{"crack": 2})
			makeMVTec(t, filepath.Join(root, "nut"), 2, 1, map[string]int{"hole": 1})
			tt.breakF(t, cat)
			bad := filepath.Join(cat, filepath.FromSlash(tt.bad))
			_, err := Open(root, Options{Logger: quiet})
			if err == nil || !strings.Contains(err.Error(), bad) {
				t.Fatalf("error = %v, want one naming %s", err, bad)
			}
			ds, err := Open(root, Options{SkipBad: true, Logger: quiet})
			if err != nil {
				t.Fatalf("SkipBad: %v", err)
			}
			if len(ds.Skipped) != 1 || !strings.Contains(ds.Skipped[0].Error(), bad) {
				t.Errorf("Skipped = %v", ds.Skipped)
			}
			if n := len(ds.Samples); n != 3+2+2+2+1+1-1 {
				t.Errorf("%d samples kept", n)
			}
		})
	}
}

func TestOpenFullDecodeAndProgress(t *testing.T) {
	root := t.TempDir()
	makeMVTec(t, filepath.Join(root, "bolt"), 3, 1, map[string]int{"crack": 1})
	var last, total int
	ds, err := Open(root, Options{Logger: quiet, Workers: 2, Progress: func(e progress.Event) {
		if e.Stage != progress.CheckDataset {
			t.Errorf("progress stage %q", e.Stage)
		}
		last, total = e.Done, e.Total
	}})
	if err != nil {
		t.Fatalf("header check: %v", err)
	}
	if last != len(ds.Samples) || total != len(ds.Samples) {
		t.Errorf("progress ended at %d/%d for %d samples", last, total, len(ds.Samples))
	}
	// Corrupt the pixel data but keep the header and the IEND chunk: the
	// chunk CRC no longer matches. The quick check used to pass this file,
	// --skip-bad kept it and training failed at encoding, every time
	// (issue 11, defect 5): both checks must now name it.
	p := filepath.Join(root, "bolt", "train", "good", "a1.png")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("IDAT"))
	data[i+10] ^= 0xFF
	writeFile(t, p, data)
	for _, full := range []bool{false, true} {
		_, err = Open(root, Options{Logger: quiet, FullDecode: full})
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("full decode %v: error = %v, want one naming %s", full, err, p)
		}
		ds, err := Open(root, Options{Logger: quiet, FullDecode: full, SkipBad: true})
		if err != nil || len(ds.Skipped) != 1 {
			t.Errorf("full decode %v, skip bad: %v, skipped %v", full, err, ds)
		}
	}
}

// A 1 KB PNG claiming 100000×100000 pixels (a decompression bomb) is
// refused from its header, in the quick check and in a full decode.
func TestOpenRefusesDecompressionBomb(t *testing.T) {
	root := t.TempDir()
	makeMVTec(t, filepath.Join(root, "bolt"), 3, 1, nil)
	p := filepath.Join(root, "bolt", "train", "good", "a1.png")
	writeFile(t, p, imagetest.BombPNG(100000, 100000))
	for _, full := range []bool{false, true} {
		_, err := Open(root, Options{Logger: quiet, FullDecode: full})
		if !errors.Is(err, imageio.ErrTooLarge) || !strings.Contains(err.Error(), p) {
			t.Errorf("full decode %v: error = %v, want ErrTooLarge naming %s", full, err, p)
		}
	}
}

func TestOpenEmptyCategory(t *testing.T) {
	root := t.TempDir()
	makeMVTec(t, filepath.Join(root, "bolt"), 2, 1, nil)
	if err := os.MkdirAll(filepath.Join(root, "empty", "train", "good"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Open(root, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), `"empty"`) {
		t.Fatalf("error = %v, want one naming the empty category", err)
	}
	ds, err := Open(root, Options{SkipBad: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ds.Categories, []string{"bolt"}) {
		t.Errorf("categories %v", ds.Categories)
	}
}

func TestOpenVisA(t *testing.T) {
	root := t.TempDir()
	img := func(p string) string { writeImage(t, filepath.Join(root, filepath.FromSlash(p)), 24, 18); return p }
	rows := []string{
		"object,split,label,image,mask",
		"candle,train,normal," + img("candle/Data/Images/Normal/0000.JPG") + ",",
		"candle,train,normal," + img("candle/Data/Images/Normal/0001.JPG") + ",",
		"candle,test,normal," + img("candle/Data/Images/Normal/0002.JPG") + ",",
		"candle,test,anomaly," + img("candle/Data/Images/Anomaly/000.JPG") + "," + img("candle/Data/Masks/Anomaly/000.png"),
		"pcb1,train,normal," + img("pcb1/Data/Images/Normal/0000.JPG") + ",",
		"pcb1,test,anomaly," + img("pcb1/Data/Images/Anomaly/000.JPG") + "," + img("pcb1/Data/Masks/Anomaly/000.png"),
	}
	writeFile(t, filepath.Join(root, "split_csv", "1cls.csv"), []byte(strings.Join(rows, "\n")+"\n"))
	// The 2-class few-shot split moves the candle anomaly to training.
	rows2 := slices.Clone(rows)
	rows2[4] = strings.Replace(rows2[4], "candle,test,", "candle,train,", 1)
	writeFile(t, filepath.Join(root, "split_csv", "2cls_fewshot.csv"), []byte(strings.Join(rows2, "\r\n")))

	ds, err := Open(root, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Layout != LayoutVisA || !slices.Equal(ds.Categories, []string{"candle", "pcb1"}) {
		t.Fatalf("layout %q categories %v", ds.Layout, ds.Categories)
	}
	if got := ds.Count("candle"); got != (Counts{TrainGood: 2, TestGood: 1, TestDefect: 1}) {
		t.Errorf("candle counts %+v", got)
	}
	two, err := Open(root, Options{VisASplit: "2cls_fewshot", Categories: []string{"candle"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if got := two.Count(""); got != (Counts{TrainGood: 2, TrainDefect: 1, TestGood: 1}) {
		t.Errorf("2cls counts %+v", got)
	}
	if _, err := Open(root, Options{VisASplit: "nosuch", Logger: quiet}); err == nil {
		t.Error("missing split CSV: no error")
	}
}

func TestOpenFolder(t *testing.T) {
	root := filepath.Join(t.TempDir(), "batch7")
	writeImage(t, filepath.Join(root, "b.png"), 8, 8)
	writeImage(t, filepath.Join(root, "a.JPG"), 8, 6)
	writeFile(t, filepath.Join(root, "notes.txt"), []byte("x"))
	ds, err := Open(root, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Layout != LayoutFolder || !slices.Equal(ds.Categories, []string{"batch7"}) || len(ds.Samples) != 2 {
		t.Fatalf("layout %q categories %v samples %d", ds.Layout, ds.Categories, len(ds.Samples))
	}
	if s := ds.Samples[0]; filepath.Base(s.Path) != "a.JPG" || s.Label != Unlabeled || s.Height != 6 {
		t.Errorf("first sample %+v", s)
	}
	if _, err := Open(t.TempDir(), Options{Logger: quiet}); err == nil {
		t.Error("empty folder: no error")
	}
	if _, err := Open(filepath.Join(root, "missing"), Options{Logger: quiet}); err == nil {
		t.Error("missing folder: no error")
	}
}

func TestOpenCancel(t *testing.T) {
	root := t.TempDir()
	makeMVTec(t, filepath.Join(root, "bolt"), 5, 1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := OpenContext(ctx, root, Options{Logger: quiet}); !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

func TestSemiSplit(t *testing.T) {
	root := t.TempDir()
	makeMVTec(t, filepath.Join(root, "bolt"), 2, 2, map[string]int{"crack": 6, "hole": 2, "rust": 5})
	makeMVTec(t, filepath.Join(root, "nut"), 2, 2, map[string]int{"dent": 3})
	ds, err := Open(root, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	before := ds.Clone()
	split, moved := SemiSplit(ds, 5, 42)
	if !slices.Equal(ds.Samples, before.Samples) {
		t.Error("SemiSplit modified its input")
	}
	perType := map[string]int{}
	for _, m := range moved {
		if m.Split != Train || m.Label != Defect || m.MaskPath == "" {
			t.Errorf("moved sample %+v", m)
		}
		perType[m.Category+"/"+m.Defect]++
	}
	// bolt: 5 over 3 types round-robin → 2,1(hole has 2 but round 2 takes crack and hole first),...
	// Round 0: crack, hole, rust; round 1: crack, hole → crack 2, hole 2, rust 1.
	want := map[string]int{"bolt/crack": 2, "bolt/hole": 2, "bolt/rust": 1, "nut/dent": 3}
	for k, v := range want {
		if perType[k] != v {
			t.Errorf("moved %d of %s, want %d (all: %v)", perType[k], k, v, perType)
		}
	}
	if c := split.Count("bolt"); c.TrainDefect != 5 || c.TestDefect != 8 {
		t.Errorf("bolt after split %+v", c)
	}
	if c := split.Count("nut"); c.TrainDefect != 3 || c.TestDefect != 0 {
		t.Errorf("nut after split %+v", c)
	}
	for _, s := range split.Test() {
		if slices.ContainsFunc(moved, func(m Sample) bool { return m.Path == s.Path }) {
			t.Errorf("%s moved but still in test", s.Path)
		}
	}

	// Deterministic, and a category's choice does not depend on the others.
	_, again := SemiSplit(ds, 5, 42)
	if !slices.Equal(moved, again) {
		t.Error("same seed, different split")
	}
	boltOnly, err := Open(root, Options{Categories: []string{"bolt"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	_, sub := SemiSplit(boltOnly, 5, 42)
	if !slices.Equal(sub, moved[:5]) {
		t.Errorf("bolt-only split %v differs from %v", sub, moved[:5])
	}
	differs := false
	for seed := int64(1); seed < 10 && !differs; seed++ {
		_, other := SemiSplit(ds, 5, seed)
		differs = !slices.Equal(other, moved)
	}
	if !differs {
		t.Error("the seed never changes the split")
	}
	if _, none := SemiSplit(ds, 0, 42); len(none) != 0 {
		t.Errorf("k=0 moved %d", len(none))
	}
}

// sharedData returns ../shared/data/industrial relative to the module root,
// skipping the test when it is absent.
func sharedData(t testing.TB) string {
	t.Helper()
	return sharedtest.Dir(t, "data", "industrial")
}

func TestOpenSharedData(t *testing.T) {
	root := sharedData(t)
	ds, err := Open(root, Options{Categories: []string{"bottle", "magnetic_tile"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Counts{
		"bottle":        {TrainGood: 209, TestGood: 20, TestDefect: 63},
		"magnetic_tile": {TrainGood: 761, TestGood: 191, TestDefect: 392},
	}
	for c, w := range want {
		if got := ds.Count(c); got != w {
			t.Errorf("%s: %+v, want %+v", c, got, w)
		}
	}
	split, moved := SemiSplit(ds, 10, 0)
	if len(moved) != 20 || split.Count("magnetic_tile").TestDefect != 382 {
		t.Errorf("semi split moved %d", len(moved))
	}
	if got := ds.DefectTypes("magnetic_tile"); len(got) != 5 {
		t.Errorf("magnetic_tile types %v", got)
	}
}

// BenchmarkOpenShared opens and validates (headers only) bottle and
// magnetic_tile: 1636 images and 455 masks.
func BenchmarkOpenShared(b *testing.B) {
	root := sharedData(b)
	for b.Loop() {
		if _, err := Open(root, Options{Categories: []string{"bottle", "magnetic_tile"}, Logger: quiet}); err != nil {
			b.Fatal(err)
		}
	}
}

package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/progress"
)

// newProject creates a fresh project in a temp dir, closed at cleanup.
func newProject(t testing.TB) *Project {
	t.Helper()
	p, err := Create(filepath.Join(t.TempDir(), "p.dmad"), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// writePNG writes a w×h grey PNG whose pixels depend on seed and returns its path.
func writePNG(t *testing.T, dir, name string, w, h int, seed uint8) string {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i) + seed
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCreateRefusesExisting(t *testing.T) {
	p := newProject(t)
	if _, err := Create(p.Path(), "again"); err == nil {
		t.Fatal("Create over an existing file succeeded")
	}
	if name, err := p.Name(); err != nil || name != "test" {
		t.Fatalf("Name = %q, %v", name, err)
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestSettingsAndCategories(t *testing.T) {
	p := newProject(t)
	if got, want := p.Settings(), DefaultSettings(); got.Backbone != want.Backbone || got.InputSize != want.InputSize || got.FeatureCache != want.FeatureCache {
		t.Fatalf("new project settings %+v, want defaults", got)
	}
	s := Settings{Backbone: "wrn50", Device: "cuda", InputSize: 320, FeatureCache: FeatureFloat16, Training: json.RawMessage(`{"epochs":40}`)}
	if err := p.PutSettings(s); err != nil {
		t.Fatal(err)
	}
	if err := p.PutSettings(Settings{FeatureCache: "int8"}); err == nil {
		t.Fatal("unknown feature encoding accepted")
	}
	path := p.Path()
	p.Close()
	p, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got := p.Settings()
	if got.Backbone != "wrn50" || got.Device != "cuda" || got.InputSize != 320 || got.FeatureCache != FeatureFloat16 || string(got.Training) != `{"epochs":40}` {
		t.Fatalf("settings after reopen %+v", got)
	}

	for _, n := range []string{"magnetic_tile", "bottle"} {
		if err := p.PutCategory(Category{Name: n, Description: "d " + n}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.PutCategory(Category{}); err == nil {
		t.Fatal("empty category name accepted")
	}
	cats, err := p.Categories()
	if err != nil || len(cats) != 2 || cats[0].Name != "bottle" || cats[1].Description != "d magnetic_tile" || cats[0].Created.IsZero() {
		t.Fatalf("categories %+v, %v", cats, err)
	}
	if err := p.DeleteCategory("bottle"); err != nil {
		t.Fatal(err)
	}
	if cats, _ := p.Categories(); len(cats) != 1 {
		t.Fatalf("after delete: %+v", cats)
	}
}

func TestImagesRoundTrip(t *testing.T) {
	p := newProject(t)
	dir := t.TempDir()
	a := writePNG(t, dir, "a.png", 31, 17, 0)
	b := writePNG(t, dir, "b.png", 8, 8, 1)
	sha, w, h, err := HashImageFile(a)
	if err != nil || w != 31 || h != 17 || len(sha) != 64 {
		t.Fatalf("HashImageFile = %s %d×%d %v", sha, w, h, err)
	}
	ra := &ImageRecord{Path: a, SHA256: sha, Width: w, Height: h, Category: "bottle", Split: SplitTrain, Label: LabelNormal, Defect: "good"}
	rb := &ImageRecord{Path: b, Category: "bottle", Split: SplitTest, Label: LabelAnomalous, Defect: "crack", Seen: true}
	if err := p.PutImages([]*ImageRecord{ra, rb}); err != nil {
		t.Fatal(err)
	}
	if ra.ID == 0 || rb.ID == 0 || ra.ID == rb.ID {
		t.Fatalf("ids %d %d", ra.ID, rb.ID)
	}
	got, err := p.Image(rb.ID)
	if err != nil || got != *rb {
		t.Fatalf("Image = %+v, %v; want %+v", got, err, *rb)
	}
	got, err = p.ImageByPath(a)
	if err != nil || got != *ra {
		t.Fatalf("ImageByPath = %+v, %v", got, err)
	}
	// Same path again without ID updates that record.
	again := &ImageRecord{Path: a, Category: "bottle", Split: SplitTest}
	if err := p.PutImage(again); err != nil || again.ID != ra.ID {
		t.Fatalf("re-put by path: id %d, %v", again.ID, err)
	}
	// A path owned by another ID is refused.
	if err := p.PutImage(&ImageRecord{ID: rb.ID, Path: a}); err == nil {
		t.Fatal("path collision accepted")
	}
	// Renaming moves the path index.
	rb.Path = filepath.Join(dir, "moved.png")
	if err := p.PutImage(rb); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ImageByPath(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old path still indexed: %v", err)
	}
	anom := LabelAnomalous
	for _, c := range []struct {
		f    ImageFilter
		want int
	}{
		{ImageFilter{}, 2},
		{ImageFilter{Split: SplitTest}, 2},
		{ImageFilter{Label: &anom}, 1},
		{ImageFilter{Category: "none"}, 0},
	} {
		list, err := p.Images(c.f)
		if err != nil || len(list) != c.want {
			t.Errorf("Images(%+v) = %d, %v; want %d", c.f, len(list), err, c.want)
		}
	}
	if err := p.PutMask(ra.ID, image.NewGray(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	if err := p.PutFeatures("enc", ra.ID, mat.New(2, 3)); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteImage(ra.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Image(ra.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted image: %v", err)
	}
	if p.HasMask(ra.ID) || p.HasFeatures("enc", ra.ID) {
		t.Fatal("mask or features survive their image")
	}
	if err := p.DeleteImage(ra.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestCheckImages(t *testing.T) {
	p := newProject(t)
	dir := t.TempDir()
	var recs []*ImageRecord
	for i, name := range []string{"same.png", "changed.png", "gone.png"} {
		path := writePNG(t, dir, name, 10, 10, uint8(i))
		sha, w, h, err := HashImageFile(path)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &ImageRecord{Path: path, SHA256: sha, Width: w, Height: h})
	}
	if err := p.PutImages(recs); err != nil {
		t.Fatal(err)
	}
	writePNG(t, dir, "changed.png", 10, 10, 99)
	os.Remove(recs[2].Path)
	calls := 0
	changes, err := p.CheckImages(context.Background(), func(e progress.Event) {
		calls++
		if e.Stage != progress.CheckImages || e.Total != 3 || e.Done != calls {
			t.Errorf("progress %s %d/%d at call %d", e.Stage, e.Done, e.Total, calls)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].ID != recs[1].ID || changes[0].Status != ImageChanged ||
		changes[1].ID != recs[2].ID || changes[1].Status != ImageMissing {
		t.Fatalf("changes %+v", changes)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.CheckImages(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled check: %v", err)
	}
}

func TestMaskRoundTrip(t *testing.T) {
	p := newProject(t)
	m := image.NewGray(image.Rect(0, 0, 37, 23))
	for y := 5; y < 12; y++ {
		for x := 3; x < 30; x++ {
			m.SetGray(x, y, color.Gray{255})
		}
	}
	if err := p.PutMask(7, m); err != nil {
		t.Fatal(err)
	}
	got, err := p.Mask(7)
	if err != nil {
		t.Fatal(err)
	}
	if got.Bounds() != m.Bounds() || !bytes.Equal(got.Pix, m.Pix) {
		t.Fatal("mask differs after round trip")
	}
	if _, err := p.Mask(8); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing mask: %v", err)
	}
	if err := p.DeleteMask(7); err != nil || p.HasMask(7) {
		t.Fatalf("delete mask: %v", err)
	}
}

func TestFeaturesRoundTrip(t *testing.T) {
	for _, c := range []struct {
		format string
		tol    float64 // relative
	}{{FeatureFloat32, 0}, {FeatureFloat16, 1.0 / 1024}} {
		t.Run(c.format, func(t *testing.T) {
			p := newProject(t)
			s := p.Settings()
			s.FeatureCache = c.format
			if err := p.PutSettings(s); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			var entries []FeatureEntry
			for id := uint64(1); id <= 5; id++ {
				m := mat.New(49, 24)
				for i := range m.RawData() {
					m.RawData()[i] = float32(r.NormFloat64() * 3)
				}
				entries = append(entries, FeatureEntry{ImageID: id, Features: m})
			}
			if err := p.PutFeaturesBatch(context.Background(), "mnv2@224", entries); err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				got, err := p.Features("mnv2@224", e.ImageID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Rows() != 49 || got.Cols() != 24 {
					t.Fatalf("shape %d×%d", got.Rows(), got.Cols())
				}
				for i, want := range e.Features.RawData() {
					if d := math.Abs(float64(got.RawData()[i] - want)); d > c.tol*math.Abs(float64(want))+1e-7 {
						t.Fatalf("value %d: %g, want %g", i, got.RawData()[i], want)
					}
				}
			}
			if !p.HasFeatures("mnv2@224", 3) || p.HasFeatures("mnv2@224", 9) || p.HasFeatures("other", 3) {
				t.Fatal("HasFeatures wrong")
			}
			if _, err := p.Features("other", 1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("other encoder: %v", err)
			}
			if err := p.DropFeatures("mnv2@224"); err != nil || p.HasFeatures("mnv2@224", 1) {
				t.Fatalf("drop: %v", err)
			}
		})
	}
}

func TestFloat16(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		in   float32
		bits uint16
		out  float32
	}{
		{0, 0x0000, 0},
		{1, 0x3c00, 1},
		{-2, 0xc000, -2},
		{0.5, 0x3800, 0.5},
		{65504, 0x7bff, 65504},
		{65520, 0x7c00, inf}, // rounds up to infinity
		{1e9, 0x7c00, inf},   // overflow
		{5.960464477539063e-08, 0x0001, 5.960464477539063e-08}, // smallest subnormal
		{2.9802322387695312e-08, 0x0000, 0},                    // half of it: ties to even
		{6.103515625e-05, 0x0400, 6.103515625e-05},             // smallest normal
		{1 + 1.0/2048, 0x3c00, 1},                              // tie rounds to even
		{1 + 3.0/2048, 0x3c02, 1 + 2.0/1024},                   // tie rounds to even (up)
		{inf, 0x7c00, inf},
	} {
		if got := Float16(c.in); got != c.bits {
			t.Errorf("Float16(%g) = %#04x, want %#04x", c.in, got, c.bits)
		}
		if got := Float32From16(c.bits); got != c.out {
			t.Errorf("Float32From16(%#04x) = %g, want %g", c.bits, got, c.out)
		}
	}
	if f := Float32From16(Float16(float32(math.NaN()))); !math.IsNaN(float64(f)) {
		t.Errorf("NaN became %g", f)
	}
	// Every finite half value survives the round trip.
	for h := 0; h < 0x10000; h++ {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		if got := Float16(Float32From16(uint16(h))); got != uint16(h) && !(h == 0x8000 && got == 0x8000) {
			t.Fatalf("half %#04x → %g → %#04x", h, Float32From16(uint16(h)), got)
		}
	}
}

func TestBlobRoundTrip(t *testing.T) {
	p := newProject(t)
	p.chunk = 1000
	ctx := context.Background()
	for _, n := range []int{0, 1, 999, 1000, 1001, 12345} {
		data := randBytes(uint64(n), n)
		info, err := p.PutBlob(ctx, "banks", "b"+string(rune('a'+n%26)), bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(n) || info.Chunks != (n+999)/1000 {
			t.Fatalf("size %d: info %+v", n, info)
		}
		br, err := p.OpenBlob("banks", info.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(iotest(br))
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if !bytes.Equal(got, data) || br.Size() != int64(n) {
			t.Fatalf("size %d: content differs", n)
		}
		if err := p.VerifyBlob("banks", info.Name); err != nil {
			t.Fatal(err)
		}
	}
	list, err := p.Blobs("banks")
	if err != nil || len(list) != 6 {
		t.Fatalf("Blobs = %d, %v", len(list), err)
	}
	if _, err := p.OpenBlob("banks", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	// Replacing a blob while a reader is open is detected, not mixed.
	if _, err := p.PutBlob(ctx, "banks", "x", bytes.NewReader(randBytes(1, 5000))); err != nil {
		t.Fatal(err)
	}
	br, _ := p.OpenBlob("banks", "x")
	buf := make([]byte, 10)
	if _, err := br.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PutBlob(ctx, "banks", "x", bytes.NewReader(randBytes(2, 5000))); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(br); err == nil || !strings.Contains(err.Error(), "rewritten while reading") {
		t.Fatalf("read across rewrite: %v", err)
	}
	if err := p.DeleteBlob("banks", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.OpenBlob("banks", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted blob: %v", err)
	}
	// A cancelled write stores nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.PutBlob(cctx, "banks", "y", bytes.NewReader(randBytes(3, 5000))); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled put: %v", err)
	}
	if _, err := p.OpenBlob("banks", "y"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancelled blob exists: %v", err)
	}
}

// iotest reads through small odd-sized buffers to exercise chunk boundaries.
func iotest(r io.Reader) io.Reader { return &smallReads{r} }

type smallReads struct{ r io.Reader }

func (s *smallReads) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 333)]) }

func TestMatrixBlob(t *testing.T) {
	p := newProject(t)
	p.chunk = 4096
	m := mat.New(123, 77)
	for i := range m.RawData() {
		m.RawData()[i] = float32(i)*0.25 - 1000
	}
	if _, err := p.PutBlob(context.Background(), "banks", "normal", iotest(MatrixReader(m))); err != nil {
		t.Fatal(err)
	}
	br, err := p.OpenBlob("banks", "normal")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadMatrix(br)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows() != m.Rows() || got.Cols() != m.Cols() || !slicesEqual(got.RawData(), m.RawData()) {
		t.Fatal("matrix differs after round trip")
	}
	if _, err := ReadMatrix(bytes.NewReader([]byte("not a matrix at all, no no no"))); err == nil {
		t.Fatal("ReadMatrix accepted garbage")
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// saveTestModel saves a model with three parts of the given sizes.
func saveTestModel(t testing.TB, p *Project, seed uint64, sizes [3]int, active bool) (*ModelRecord, map[string][]byte) {
	t.Helper()
	data := map[string][]byte{
		PartNormalBank:  randBytes(seed, sizes[0]),
		PartAnomalyBank: randBytes(seed+1000, sizes[1]),
		PartMapper:      randBytes(seed+2000, sizes[2]),
	}
	parts := map[string]io.Reader{}
	for k, v := range data {
		parts[k] = bytes.NewReader(v)
	}
	rec := &ModelRecord{
		BackboneID: p.Settings().Backbone,
		Config:     json.RawMessage(`{"hidden":1024}`),
		Metrics:    map[string]float64{"image_auroc": 0.97},
		Thresholds: map[string]float64{"bottle": 1.5},
		Notes:      "test",
		Active:     active,
	}
	if err := p.SaveModel(context.Background(), rec, parts); err != nil {
		t.Fatal(err)
	}
	return rec, data
}

func readPart(t testing.TB, p *Project, version int, part string) []byte {
	t.Helper()
	br, err := p.OpenModelPart(version, part)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestModelsRoundTrip(t *testing.T) {
	p := newProject(t)
	p.chunk = 1 << 12
	r1, d1 := saveTestModel(t, p, 1, [3]int{10000, 3000, 500}, true)
	r2, _ := saveTestModel(t, p, 2, [3]int{100, 0, 5}, false)
	if r1.Version != 1 || r2.Version != 2 {
		t.Fatalf("versions %d %d", r1.Version, r2.Version)
	}
	act, err := p.ActiveModel()
	if err != nil || act.Version != 1 || !act.Active || len(act.Parts) != 3 || act.Metrics["image_auroc"] != 0.97 || act.Thresholds["bottle"] != 1.5 {
		t.Fatalf("active %+v, %v", act, err)
	}
	for name, want := range d1 {
		if got := readPart(t, p, 1, name); !bytes.Equal(got, want) {
			t.Fatalf("part %s differs", name)
		}
	}
	if err := p.SaveModel(context.Background(), &ModelRecord{Version: 2}, nil); err == nil {
		t.Fatal("overwriting version 2 accepted")
	}
	if err := p.SetActiveModel(2); err != nil {
		t.Fatal(err)
	}
	if err := p.SetActiveModel(9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("activate missing: %v", err)
	}
	list, err := p.Models()
	if err != nil || len(list) != 2 || list[0].Active || !list[1].Active {
		t.Fatalf("models %+v, %v", list, err)
	}
	for _, v := range []int{1, 2} {
		if err := p.VerifyModel(v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.OpenModelPart(1, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing part: %v", err)
	}
	// Training log.
	type ev struct {
		Epoch int     `json:"epoch"`
		Loss  float64 `json:"loss"`
	}
	if err := p.AppendTrainingLog(2, ev{1, 0.9}, ev{2, 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendTrainingLog(2, ev{3, 0.25}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := p.WriteTrainingLog(2, &buf); err != nil {
		t.Fatal(err)
	}
	if want := "{\"epoch\":1,\"loss\":0.9}\n{\"epoch\":2,\"loss\":0.5}\n{\"epoch\":3,\"loss\":0.25}\n"; buf.String() != want {
		t.Fatalf("log %q", buf.String())
	}
	if err := p.DeleteModel(2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ActiveModel(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("active after deleting it: %v", err)
	}
	if log, _ := p.TrainingLog(2); len(log) != 0 {
		t.Fatal("training log survives its model")
	}
	// A failing part reader aborts the whole save: nothing is stored.
	err = p.SaveModel(context.Background(), &ModelRecord{Active: true}, map[string]io.Reader{
		"a": bytes.NewReader(randBytes(1, 9000)),
		"b": io.MultiReader(bytes.NewReader(randBytes(2, 5000)), errReader{}),
	})
	if err == nil {
		t.Fatal("failing part accepted")
	}
	if list, _ := p.Models(); len(list) != 1 {
		t.Fatalf("half-saved model stored: %+v", list)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestRunsRoundTrip(t *testing.T) {
	p := newProject(t)
	scores := make([]float32, 64*64)
	for i := range scores {
		scores[i] = float32(i%64) / 8
	}
	am, err := QuantizeMap(64, 64, scores, 0, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := QuantizeMap(3, 3, scores, 0, 1); err == nil {
		t.Fatal("wrong map size accepted")
	}
	rec := &RunRecord{ModelVersion: 3, Name: "eval", Metrics: map[string]float64{"bottle/image_auroc": 1},
		PerImage: []ImageResult{
			{ImageID: 4, Category: "bottle", Score: 2.5, Label: LabelAnomalous, Map: am},
			{Path: "/elsewhere/x.png", Category: "bottle", Score: 0.1, Label: LabelNormal},
		}}
	if err := p.SaveRun(rec); err != nil {
		t.Fatal(err)
	}
	got, err := p.Run(rec.ID)
	if err != nil || got.ModelVersion != 3 || len(got.PerImage) != 2 || got.PerImage[1].Path != "/elsewhere/x.png" || got.PerImage[0].Score != 2.5 || got.Metrics["bottle/image_auroc"] != 1 {
		t.Fatalf("run %+v, %v", got, err)
	}
	m, err := p.RunMap(rec.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range m.Values() {
		if d := math.Abs(float64(v - scores[i])); d > 8.0/255/2+1e-6 {
			t.Fatalf("map value %d: %g want %g", i, v, scores[i])
		}
	}
	if _, err := p.RunMap(rec.ID, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("map of image without one: %v", err)
	}
	if runs, err := p.Runs(); err != nil || len(runs) != 1 {
		t.Fatalf("runs %d, %v", len(runs), err)
	}
	if err := p.DeleteRun(rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(rec.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted run: %v", err)
	}
}

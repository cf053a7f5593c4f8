package encoder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
)

// rawMaps runs the backbone cut at the card's feature tensors on input
// (batch 1) and returns the maps with their [c, h, w] shapes.
func rawMaps(t *testing.T, rt *ort.Runtime, card *Card, backbone []byte, cfg Config, input []float32) ([][]float32, [][3]int) {
	t.Helper()
	model, err := buildProbeGraph(card, backbone, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range card.FeatureTensors {
		names = append(names, f.Tensor)
	}
	s, err := rt.NewSession(model, []string{card.Input}, names)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := int64(cfg.WithDefaults().InputSize)
	outs, err := s.Run(ort.F32Tensor(input, 1, 3, n, n))
	if err != nil {
		t.Fatal(err)
	}
	maps := make([][]float32, len(outs))
	shapes := make([][3]int, len(outs))
	for i, o := range outs {
		maps[i] = o.F32
		shapes[i] = [3]int{int(o.Shape[1]), int(o.Shape[2]), int(o.Shape[3])}
	}
	return maps, shapes
}

func compareFeatures(t *testing.T, got *mat.Matrix, want [][]float32) {
	t.Helper()
	if got.Rows() != len(want) || got.Cols() != len(want[0]) {
		t.Fatalf("features %d×%d, want %d×%d", got.Rows(), got.Cols(), len(want), len(want[0]))
	}
	worst := 0.0
	for i, row := range want {
		for j, w := range row {
			d := math.Abs(float64(got.Row(i)[j] - w))
			worst = max(worst, d)
			if d > 1e-4*(1+math.Abs(float64(w))) {
				t.Fatalf("patch %d channel %d = %v, reference %v", i, j, got.Row(i)[j], w)
			}
		}
	}
	t.Logf("max abs diff to reference %.2g", worst)
}

// TestAggregationMatchesReference runs the appended aggregation on ONNX
// Runtime and compares it element by element with a plain-Go reference
// computed from the raw feature maps.
func TestAggregationMatchesReference(t *testing.T) {
	rt := openRuntime(t, 1)
	backbone := tinyBackbone(t, 7)
	tests := []struct {
		tensors []string
		size    int
		dim     int
	}{
		{[]string{"feat8", "feat16"}, 64, 0},
		{[]string{"feat8", "feat16"}, 96, 5},
		{[]string{"feat8", "feat16", "feat32"}, 64, 0},
		{[]string{"feat8", "feat16", "feat32"}, 96, 8},
		{[]string{"feat8", "feat16", "feat32"}, 64, 20}, // more outputs than channels
		{[]string{"feat16", "feat8"}, 32, 0},            // finest map listed second
		{[]string{"feat8"}, 32, 3},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/%d/dim%d", tc.tensors, tc.size, tc.dim), func(t *testing.T) {
			card := tinyCard(tc.tensors...)
			cfg := Config{InputSize: tc.size, Dim: tc.dim, Batch: 2}
			model, err := BuildFeatureGraph(card, backbone, cfg)
			if err != nil {
				t.Fatal(err)
			}
			sess, err := rt.NewSession(model, []string{"image"}, []string{OutputName})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			rng := rand.New(rand.NewPCG(uint64(tc.size), uint64(tc.dim)))
			per := 3 * tc.size * tc.size
			input := randn(rng, 2*per, 1)
			outs, err := sess.Run(ort.F32Tensor(input, 2, 3, int64(tc.size), int64(tc.size)))
			if err != nil {
				t.Fatal(err)
			}
			o := outs[0]
			g := tc.size / 8
			C := cfg.OutDim(card)
			if want := []int64{2, int64(g * g), int64(C)}; fmt.Sprint(o.Shape) != fmt.Sprint(want) {
				t.Fatalf("output shape %v, want %v", o.Shape, want)
			}
			for b := 0; b < 2; b++ {
				maps, shapes := rawMaps(t, rt, card, backbone, cfg, input[b*per:(b+1)*per])
				want := refAggregate(maps, shapes, g, g, tc.dim)
				m, err := mat.FromData(g*g, C, o.F32[b*g*g*C:(b+1)*g*g*C])
				if err != nil {
					t.Fatal(err)
				}
				compareFeatures(t, m, want)
			}
		})
	}
}

// TestEncodeMatchesReference checks the whole path — Preprocess, batching
// (including a partial last batch), inference, splitting — against the
// reference aggregation of each image's raw maps.
func TestEncodeMatchesReference(t *testing.T) {
	rt := openRuntime(t, 1)
	backbone := tinyBackbone(t, 3)
	card := tinyCard("feat8", "feat16")
	cfg := Config{InputSize: 64, Batch: 2, Dim: 6}
	enc, err := New(rt, card, backbone, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if h, w := enc.Grid(); h != 8 || w != 8 {
		t.Fatalf("grid %d×%d, want 8×8", h, w)
	}
	if enc.Dim() != 6 {
		t.Fatalf("dim %d, want 6", enc.Dim())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	imgs := []image.Image{noiseImage(rng, 100, 80), noiseImage(rng, 64, 64), noiseImage(rng, 30, 50)}
	feats, err := enc.Encode(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(feats) != len(imgs) {
		t.Fatalf("%d results for %d images", len(feats), len(imgs))
	}
	for i, img := range imgs {
		maps, shapes := rawMaps(t, rt, card, backbone, cfg, enc.Preprocess(img))
		compareFeatures(t, feats[i], refAggregate(maps, shapes, 8, 8, 6))
	}

	// The same images from files, with progress.
	dir := t.TempDir()
	var paths []string
	for i, img := range imgs {
		p := filepath.Join(dir, fmt.Sprintf("%d.png", i))
		writePNG(t, p, img)
		paths = append(paths, p)
	}
	var calls [][2]int
	fromFiles, err := enc.EncodeFiles(context.Background(), paths, func(e progress.Event) {
		if e.Stage != progress.Features {
			t.Errorf("progress stage %q, want %q", e.Stage, progress.Features)
		}
		calls = append(calls, [2]int{e.Done, e.Total})
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range feats {
		for j, v := range feats[i].RawData() {
			if fromFiles[i].RawData()[j] != v {
				t.Fatalf("image %d: EncodeFiles differs from Encode at %d", i, j)
			}
		}
	}
	if fmt.Sprint(calls) != "[[2 3] [3 3]]" {
		t.Errorf("progress calls %v, want [[2 3] [3 3]]", calls)
	}

	// A broken file fails with its name; a cancelled context stops.
	bad := filepath.Join(dir, "bad.png")
	if err := os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nshort"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.EncodeFiles(context.Background(), append(paths, bad), nil); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("broken file: error %v does not name %s", err, bad)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := enc.EncodeFiles(ctx, paths, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: error %v, want context.Canceled", err)
	}
	// Still usable after the failures.
	again, err := enc.Encode(context.Background(), imgs[:1])
	if err != nil || again[0].RawData()[0] != feats[0].RawData()[0] {
		t.Errorf("encode after failures: %v", err)
	}
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
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
}

func TestGraphErrors(t *testing.T) {
	rt := openRuntime(t, 1)
	backbone := tinyBackbone(t, 5)
	wrongStride := tinyCard("feat8", "feat16")
	wrongStride.FeatureTensors[1].Stride = 32
	wrongChannels := tinyCard("feat8", "feat16")
	wrongChannels.FeatureTensors[0].Channels = 6
	wrongInput := tinyCard("feat8")
	wrongInput.Input = "pixels"
	nhwc := tinyCard("feat8")
	nhwc.Layout = "NHWC"
	tests := []struct {
		name  string
		card  *Card
		model []byte
		cfg   Config
		want  []string // substrings of the error
	}{
		{"missing tensor", tinyCard("feat8", "layer9"), backbone, Config{InputSize: 64}, []string{`"layer9"`, "tiny"}},
		{"wrong stride", wrongStride, backbone, Config{InputSize: 64}, []string{`"feat16"`, "stride 32", "4×4"}},
		{"wrong channels", wrongChannels, backbone, Config{InputSize: 64}, []string{`"feat8"`, "5 channels"}},
		{"wrong input", wrongInput, backbone, Config{InputSize: 64}, []string{`"pixels"`, "image"}},
		{"nhwc on nchw graph", nhwc, backbone, Config{InputSize: 64}, []string{"tiny"}},
		{"size not multiple", tinyCard("feat8", "feat16"), backbone, Config{InputSize: 72}, []string{"72", "16"}},
		{"crop smaller", tinyCard("feat8"), backbone, Config{InputSize: 64, Crop: true, ResizeTo: 40}, []string{"40"}},
		{"not onnx", tinyCard("feat8"), []byte("not a model"), Config{}, []string{"tiny"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := New(rt, tc.card, tc.model, tc.cfg)
			if err == nil {
				enc.Close()
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestReadBackbone(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "b.onnx")
	data := []byte("model bytes")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	other := strings.Repeat("ab", 32)
	tests := []struct {
		name, path, sha string
		wantErr         string
	}{
		{"unchecked", p, "", ""},
		{"match", p, good, ""},
		{"match upper case", p, strings.ToUpper(good), ""},
		{"mismatch", p, other, other},
		{"missing", filepath.Join(dir, "none.onnx"), "", "none.onnx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadBackbone(tc.path, &Card{Name: "b", SHA256: tc.sha})
			if tc.wantErr == "" {
				if err != nil || string(got) != string(data) {
					t.Fatalf("ReadBackbone = %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("error %v should name %s and %s", err, tc.path, tc.wantErr)
			}
		})
	}
}

func TestPreprocess(t *testing.T) {
	rt := openRuntime(t, 1)
	backbone := tinyBackbone(t, 9)
	const r, g, b = 10, 100, 200
	flat := image.NewNRGBA(image.Rect(0, 0, 37, 23))
	for i := 0; i < len(flat.Pix); i += 4 {
		copy(flat.Pix[i:], []uint8{r, g, b, 255})
	}
	grey := image.NewGray16(image.Rect(0, 0, 20, 20))
	for i := 0; i < len(grey.Pix); i += 2 {
		grey.Pix[i], grey.Pix[i+1] = 0x80, 0xff // 0x80ff → 128 in 8 bits
	}
	tv := Normalize{Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}
	tests := []struct {
		name  string
		color string
		norm  Normalize
		img   image.Image
		want  [3]float64 // per network channel
	}{
		{"rgb scale", "RGB", Normalize{Scale: 2.0 / 255, Offset: -1}, flat, [3]float64{2*r/255.0 - 1, 2*g/255.0 - 1, 2*b/255.0 - 1}},
		{"bgr scale", "BGR", Normalize{Scale: 1}, flat, [3]float64{b, g, r}},
		{"rgb mean/std", "RGB", tv, flat, [3]float64{(r/255.0 - 0.485) / 0.229, (g/255.0 - 0.456) / 0.224, (b/255.0 - 0.406) / 0.225}},
		{"grey 16-bit", "RGB", Normalize{Scale: 1}, grey, [3]float64{128, 128, 128}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			card := tinyCard("feat8")
			card.Color, card.Normalize = tc.color, tc.norm
			enc, err := New(rt, card, backbone, Config{InputSize: 32})
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			v := enc.Preprocess(tc.img)
			if len(v) != 3*32*32 {
				t.Fatalf("len %d", len(v))
			}
			for i, x := range v {
				c := i / (32 * 32)
				if math.Abs(float64(x)-tc.want[c]) > 1e-5*(1+math.Abs(tc.want[c])) {
					t.Fatalf("value %d (channel %d) = %v, want %v", i, c, x, tc.want[c])
				}
			}
		})
	}
}

func TestPreprocessCropAndLayout(t *testing.T) {
	// A 256×256 image with a 16-pixel red frame around blue: resize 256 +
	// crop 224 keeps only blue; a plain resize keeps red at the corners.
	img := image.NewRGBA(image.Rect(0, 0, 256, 256))
	for y := 0; y < 256; y++ {
		for x := 0; x < 256; x++ {
			c := color.RGBA{0, 0, 255, 255}
			if x < 16 || y < 16 || x >= 240 || y >= 240 {
				c = color.RGBA{255, 0, 0, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	card := tinyCard("feat8")
	card.Normalize = Normalize{Scale: 1}
	e := &Encoder{card: card, affine: newChannelAffine(card)}
	for _, tc := range []struct {
		name   string
		cfg    Config
		layout string
		redMax float32
	}{
		{"crop nchw", Config{InputSize: 224, Crop: true, ResizeTo: 256}, "NCHW", 0},
		{"crop nhwc", Config{InputSize: 224, Crop: true, ResizeTo: 256}, "NHWC", 0},
		{"plain", Config{InputSize: 224}, "NCHW", 255},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.cfg = tc.cfg.WithDefaults()
			card.Layout = tc.layout
			v := e.Preprocess(img)
			var red, blue float32
			for i := 0; i < 224*224; i++ {
				ri, bi := i, 2*224*224+i
				if tc.layout == "NHWC" {
					ri, bi = 3*i, 3*i+2
				}
				red = max(red, v[ri])
				blue = max(blue, v[bi])
			}
			if red != tc.redMax || blue != 255 {
				t.Errorf("max red %v (want %v), max blue %v (want 255)", red, tc.redMax, blue)
			}
		})
	}
}

func TestGeometry(t *testing.T) {
	crop := Config{InputSize: 224, Crop: true, ResizeTo: 256}
	tests := []struct {
		w, h int
		cfg  Config
		want image.Rectangle
	}{
		{900, 900, Config{InputSize: 224}, image.Rect(0, 0, 224, 224)},
		{1200, 500, Config{InputSize: 320}, image.Rect(0, 0, 320, 320)},
		{256, 256, crop, image.Rect(-16, -16, 240, 240)},
		{900, 900, crop, image.Rect(-16, -16, 240, 240)},
		{512, 256, crop, image.Rect(-144, -16, 368, 240)},
		{300, 600, crop, image.Rect(-16, -144, 240, 368)},
	}
	for _, tc := range tests {
		if got := tc.cfg.Geometry(tc.w, tc.h); got != tc.want {
			t.Errorf("geometry(%d, %d, %+v) = %v, want %v", tc.w, tc.h, tc.cfg, got, tc.want)
		}
	}
}

func TestID(t *testing.T) {
	rt := openRuntime(t, 1)
	b1, b2 := tinyBackbone(t, 1), tinyBackbone(t, 2)
	id := func(b []byte, cfg Config) string {
		e, err := New(rt, tinyCard("feat8", "feat16"), b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		return e.ID()
	}
	base := id(b1, Config{InputSize: 32})
	if again := id(b1, Config{InputSize: 32, Batch: 3}); again != base {
		t.Errorf("ID changed with the batch size: %s vs %s", again, base)
	}
	for name, other := range map[string]string{
		"backbone": id(b2, Config{InputSize: 32}),
		"size":     id(b1, Config{InputSize: 64}),
		"crop":     id(b1, Config{InputSize: 32, Crop: true}),
		"dim":      id(b1, Config{InputSize: 32, Dim: 4}),
	} {
		if other == base {
			t.Errorf("ID does not change with the %s", name)
		}
	}
	if !strings.HasPrefix(base, "tiny-") {
		t.Errorf("ID %q does not start with the card name", base)
	}
}

// TestNHWC checks the NHWC input and feature-map paths: a backbone with the
// same weights but NHWC input and NHWC maps gives the same patches.
func TestNHWC(t *testing.T) {
	rt := openRuntime(t, 1)
	nchw, err := New(rt, tinyCard("feat8", "feat16"), tinyBackbone(t, 11), Config{InputSize: 64, Dim: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer nchw.Close()
	card := tinyCard("feat8", "feat16")
	card.Layout = "NHWC"
	card.FeatureTensors[0].Tensor, card.FeatureTensors[0].Layout = "feat8_nhwc", "NHWC"
	card.FeatureTensors[1].Tensor, card.FeatureTensors[1].Layout = "feat16_nhwc", "NHWC"
	nhwc, err := New(rt, card, tinyBackboneLayout(t, 11, true), Config{InputSize: 64, Dim: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer nhwc.Close()
	rng := rand.New(rand.NewPCG(4, 4))
	imgs := []image.Image{noiseImage(rng, 70, 90)}
	a, err := nchw.Encode(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := nhwc.Encode(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range a[0].RawData() {
		if math.Abs(float64(v-b[0].RawData()[i])) > 1e-5 {
			t.Fatalf("value %d: NCHW %v, NHWC %v", i, v, b[0].RawData()[i])
		}
	}
}

func TestStream(t *testing.T) {
	rt := openRuntime(t, 1)
	enc, err := New(rt, tinyCard("feat8", "feat16"), tinyBackbone(t, 21), Config{InputSize: 32, Batch: 3})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	imgs := make([]image.Image, 7)
	for i := range imgs {
		imgs[i] = noiseImage(rng, 40+i, 30)
	}
	want, err := enc.Encode(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	get := func(i int) (image.Image, error) { return imgs[i], nil }
	var order []int
	err = enc.Stream(context.Background(), len(imgs), get, func(i int, f *mat.Matrix) error {
		order = append(order, i)
		for j, v := range f.RawData() {
			if v != want[i].RawData()[j] {
				return fmt.Errorf("image %d differs at %d", i, j)
			}
		}
		return nil
	})
	if err != nil || fmt.Sprint(order) != "[0 1 2 3 4 5 6]" {
		t.Fatalf("stream order %v, error %v", order, err)
	}
	stop := errors.New("enough")
	calls := 0
	err = enc.Stream(context.Background(), len(imgs), get, func(i int, f *mat.Matrix) error {
		calls++
		if i == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 4 {
		t.Errorf("sink error: got %v after %d calls, want %v after 4", err, calls, stop)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode(context.Background(), imgs[:1]); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("encode after Close: %v, want a closed error", err)
	}
}

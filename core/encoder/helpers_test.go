package encoder

import (
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/ort/orttest"
	"github.com/dmad/workstation/core/sharedtest"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

// openRuntime opens a CPU runtime with few threads (the test machine is shared).
func openRuntime(t testing.TB, threads int) *ort.Runtime {
	t.Helper()
	return orttest.Open(t, threads)
}

// sharedDir is ../shared beside the repository root, or "" with a skip.
func sharedDir(t testing.TB) string {
	t.Helper()
	return sharedtest.Dir(t)
}

// mobileNet loads the shared MobileNetV2 card and file, or skips.
func mobileNet(t testing.TB) (*Card, []byte) {
	t.Helper()
	dir := filepath.Join(sharedDir(t), "models")
	card, err := LoadCard(filepath.Join(dir, "mobilenet_v2_imagenet.json"))
	if err != nil {
		t.Skipf("shared MobileNetV2 card unavailable: %v", err)
	}
	onnx, err := ReadBackbone(filepath.Join(dir, card.File), card)
	if err != nil {
		t.Fatal(err)
	}
	return card, onnx
}

func randn(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
	}
	return v
}

// tinyBackbone builds a small CNN with ReLU feature maps "feat8" (5
// channels, stride 8), "feat16" (7, stride 16) and "feat32" (3, stride 32),
// followed by a classifier head, with input "image" [N, 3, H, W].
func tinyBackbone(t testing.TB, seed uint64) []byte { return tinyBackboneLayout(t, seed, false) }

// tinyBackboneLayout is tinyBackbone; with nhwc the input is [N, H, W, 3]
// and the feature maps "feat8_nhwc", "feat16_nhwc" are NHWC copies of the
// same weights' maps.
func tinyBackboneLayout(t testing.TB, seed uint64, nhwc bool) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	g := onnxgraph.New("tiny")
	var x string
	if nhwc {
		x = g.Op("Transpose", []string{g.Input("image", onnxgraph.Float, -1, -1, -1, 3)}, onnxgraph.AttrInts("perm", 0, 3, 1, 2))
	} else {
		x = g.Input("image", onnxgraph.Float, -1, 3, -1, -1)
	}
	conv := func(x string, cin, cout int) string {
		w := g.Const("w", randn(rng, cout*cin*9, math.Sqrt(2/float64(cin*9))), int64(cout), int64(cin), 3, 3)
		b := g.Const("b", randn(rng, cout, 0.1), int64(cout))
		return g.Op("Conv", []string{x, w, b},
			onnxgraph.AttrInts("kernel_shape", 3, 3), onnxgraph.AttrInts("strides", 2, 2), onnxgraph.AttrInts("pads", 1, 1, 1, 1))
	}
	h := g.Op("Relu", []string{conv(x, 3, 4)})
	h = g.Op("Relu", []string{conv(h, 4, 6)})
	f8 := g.OpTo("feat8", "Relu", []string{conv(h, 6, 5)})
	f16 := g.OpTo("feat16", "Relu", []string{conv(f8, 5, 7)})
	f32 := g.OpTo("feat32", "Relu", []string{conv(f16, 7, 3)})
	if nhwc {
		g.OpTo("feat8_nhwc", "Transpose", []string{f8}, onnxgraph.AttrInts("perm", 0, 2, 3, 1))
		g.OpTo("feat16_nhwc", "Transpose", []string{f16}, onnxgraph.AttrInts("perm", 0, 2, 3, 1))
		g.Output("feat8_nhwc", onnxgraph.Float)
		g.Output("feat16_nhwc", onnxgraph.Float)
	}
	pool := g.Op("GlobalAveragePool", []string{f32})
	flat := g.Op("Flatten", []string{pool})
	fc := g.Const("fc", randn(rng, 3*10, 1), 3, 10)
	g.OpTo("logits", "MatMul", []string{flat, fc})
	g.Output("logits", onnxgraph.Float)
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tinyCard describes tinyBackbone's maps (names from "feat8", "feat16", "feat32").
func tinyCard(tensors ...string) *Card {
	all := map[string]FeatureTensor{
		"feat8":  {Tensor: "feat8", Stride: 8, Channels: 5},
		"feat16": {Tensor: "feat16", Stride: 16, Channels: 7},
		"feat32": {Tensor: "feat32", Stride: 32, Channels: 3},
	}
	c := &Card{Name: "tiny", Input: "image", Normalize: Normalize{Scale: 1.0 / 255}}
	for _, n := range tensors {
		f, ok := all[n]
		if !ok {
			f = FeatureTensor{Tensor: n, Stride: 8, Channels: 5}
		}
		c.FeatureTensors = append(c.FeatureTensors, f)
	}
	return c
}

// noiseImage is a w×h RGBA image of smooth random colours.
func noiseImage(rng *rand.Rand, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fx, fy := rng.Float64()*0.3, rng.Float64()*0.3
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := 127 + 100*math.Sin(fx*float64(x)+fy*float64(y))
			img.SetRGBA(x, y, color.RGBA{uint8(v), uint8(rng.IntN(256)), uint8(255 - v), 255})
		}
	}
	return img
}

// refAvgPool3 is a 3×3, stride 1, zero-padded average counting the padding.
func refAvgPool3(m []float32, c, h, w int) []float32 {
	out := make([]float32, len(m))
	for k := 0; k < c; k++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var s float32
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						yy, xx := y+dy, x+dx
						if yy >= 0 && yy < h && xx >= 0 && xx < w {
							s += m[k*h*w+yy*w+xx]
						}
					}
				}
				out[k*h*w+y*w+x] = s / 9
			}
		}
	}
	return out
}

// refAggregate computes the patch features of one image from its raw NCHW
// maps (shapes [c, h, w] each) in plain Go: avgpool, bilinear to the h0×w0
// grid, concat in the given order, adaptive channel pooling to dim (0 = none).
func refAggregate(maps [][]float32, shapes [][3]int, h0, w0, dim int) [][]float32 {
	var chans [][]float32 // each h0*w0
	for i, m := range maps {
		c, h, w := shapes[i][0], shapes[i][1], shapes[i][2]
		p := refAvgPool3(m, c, h, w)
		for k := 0; k < c; k++ {
			plane := p[k*h*w : (k+1)*h*w]
			if h != h0 || w != w0 {
				plane = heatmap.ResizeBilinear(plane, h, w, h0, w0)
			}
			chans = append(chans, plane)
		}
	}
	C := len(chans)
	out := make([][]float32, h0*w0)
	for i := range out {
		v := make([]float32, C)
		for k := range v {
			v[k] = chans[k][i]
		}
		if dim > 0 && dim != C {
			r := make([]float32, dim)
			for j := range r {
				lo := int(math.Floor(float64(j*C) / float64(dim)))
				hi := int(math.Ceil(float64((j+1)*C) / float64(dim)))
				var s float32
				for _, x := range v[lo:hi] {
					s += x
				}
				r[j] = s / float32(hi-lo)
			}
			v = r
		}
		out[i] = v
	}
	return out
}

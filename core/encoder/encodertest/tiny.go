// Package encodertest provides a tiny backbone network for tests across the
// project: a few random convolutions with ReLU feature maps at strides 8 and
// 16 and a classifier head, plus its card. It lets the pipeline, CLI and GUI
// tests run the real engine end to end in seconds without ../shared.
package encodertest

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/onnxgraph"
)

// Backbone builds the tiny network: input "image" [N, 3, H, W], feature maps
// "feat8" (5 channels, stride 8) and "feat16" (7 channels, stride 16), then
// "feat32" and a classifier head "logits" that graph surgery drops.
func Backbone(seed uint64) ([]byte, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	randn := func(n int, std float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * std)
		}
		return v
	}
	g := onnxgraph.New("tiny")
	x := g.Input("image", onnxgraph.Float, -1, 3, -1, -1)
	conv := func(x string, cin, cout int) string {
		w := g.Const("w", randn(cout*cin*9, math.Sqrt(2/float64(cin*9))), int64(cout), int64(cin), 3, 3)
		b := g.Const("b", randn(cout, 0.1), int64(cout))
		return g.Op("Conv", []string{x, w, b},
			onnxgraph.AttrInts("kernel_shape", 3, 3), onnxgraph.AttrInts("strides", 2, 2), onnxgraph.AttrInts("pads", 1, 1, 1, 1))
	}
	h := g.Op("Relu", []string{conv(x, 3, 4)})
	h = g.Op("Relu", []string{conv(h, 4, 6)})
	f8 := g.OpTo("feat8", "Relu", []string{conv(h, 6, 5)})
	f16 := g.OpTo("feat16", "Relu", []string{conv(f8, 5, 7)})
	f32 := g.OpTo("feat32", "Relu", []string{conv(f16, 7, 3)})
	flat := g.Op("Flatten", []string{g.Op("GlobalAveragePool", []string{f32})})
	g.OpTo("logits", "MatMul", []string{flat, g.Const("fc", randn(30, 1), 3, 10)})
	g.Output("logits", onnxgraph.Float)
	return g.Marshal()
}

// Card describes Backbone.
func Card() *encoder.Card {
	return &encoder.Card{
		Name: "tiny", Description: "tiny random test backbone", File: "tiny.onnx", Input: "image",
		Normalize: encoder.Normalize{Scale: 1.0 / 255},
		FeatureTensors: []encoder.FeatureTensor{
			{Tensor: "feat8", Stride: 8, Channels: 5},
			{Tensor: "feat16", Stride: 16, Channels: 7},
		},
	}
}

// Write stores tiny.onnx and tiny.json in dir and returns the ONNX path
// (usable as --backbone).
func Write(dir string, seed uint64) (string, error) {
	b, err := Backbone(seed)
	if err != nil {
		return "", err
	}
	card, err := json.MarshalIndent(Card(), "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "tiny.onnx")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", fmt.Errorf("write tiny backbone: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tiny.json"), card, 0o644); err != nil {
		return "", fmt.Errorf("write tiny card: %w", err)
	}
	return p, nil
}

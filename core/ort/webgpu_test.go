package ort_test

import (
	"strings"
	"testing"

	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

// TestWebGPU runs a small graph on the WebGPU provider where the machine has
// an adapter (a Vulkan or D3D12 GPU); elsewhere the provider must refuse
// with an error that names it, and the test skips.
func TestWebGPU(t *testing.T) {
	rt, err := ort.Open(ort.Options{Threads: 1, Device: ort.DeviceWebGPU})
	if err != nil {
		if !strings.Contains(err.Error(), "WebGPU") {
			t.Fatalf("error does not name the provider: %v", err)
		}
		t.Skipf("no WebGPU adapter here: %v", err)
	}
	defer rt.Close()
	if rt.Provider() != ort.DeviceWebGPU {
		t.Fatalf("provider %s, want webgpu", rt.Provider())
	}
	g := onnxgraph.New("t")
	a := g.Input("a", onnxgraph.Float, -1, 3)
	w := g.Const("w", []float32{1, 2, 3, 4, 5, 6}, 3, 2)
	y := g.Op("MatMul", []string{a, w})
	g.Output(y, onnxgraph.Float)
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := rt.NewSession(model, []string{"a"}, []string{y})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(ort.F32Tensor([]float32{1, 0, 0, 0, 1, -1}, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float32{1, 2, -2, -2} {
		if out[0].F32[i] != want {
			t.Fatalf("matmul on WebGPU = %v, want [1 2 -2 -2]", out[0].F32)
		}
	}
}

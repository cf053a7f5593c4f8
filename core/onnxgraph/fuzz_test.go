package onnxgraph

import (
	"github.com/dmad/workstation/internal/alloccheck"
	"testing"
)

// FuzzLoad: arbitrary bytes as an ONNX model never crash the loader, and a
// loaded graph re-marshals.
func FuzzLoad(f *testing.F) {
	g := New("seed")
	x := g.Input("x", 1, 1, 3)
	g.Output(g.Op("Relu", []string{x}), 1, 1, 3)
	b, err := g.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		alloccheck.Within(t, 2*alloccheck.Bound(len(data)), func() {
			g, err := Load(data)
			if err != nil {
				return
			}
			g.Opset()
			if _, err := g.Marshal(); err != nil {
				t.Fatalf("loaded graph does not marshal: %v", err)
			}
		})
	})
}

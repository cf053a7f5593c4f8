package onnxgraph_test

import (
	"strings"
	"testing"

	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

func TestBuildPruneRoundTrip(t *testing.T) {
	g := onnxgraph.New("t")
	x := g.Input("x", onnxgraph.Float, -1, 2)
	w := g.Const("w", []float32{1, 2, 3, 4}, 2, 2)
	y := g.Op("MatMul", []string{x, w})
	dead := g.Op("Relu", []string{y}) // not an output: Prune drops it
	_ = g.Const("unused", []float32{9}, 1)
	z := g.Op("Add", []string{y, g.Scalar(1)})
	g.Output(z, onnxgraph.Float)
	g.Prune()
	for _, n := range g.Model.Graph.Node {
		for _, o := range n.Output {
			if o == dead {
				t.Fatal("Prune kept a node that feeds no output")
			}
		}
	}
	for _, init := range g.Model.Graph.Initializer {
		if strings.HasPrefix(init.Name, "unused") {
			t.Fatal("Prune kept an unused initializer")
		}
	}
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g2, err := onnxgraph.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if g2.Opset() != onnxgraph.DefaultOpset || !g2.Has(z) || !g2.Has("x") {
		t.Fatalf("loaded graph: opset %d, has output %v", g2.Opset(), g2.Has(z))
	}
	// New values and node names never collide with loaded ones.
	seen := map[string]bool{}
	for _, n := range g2.Model.Graph.Node {
		seen[n.Name] = true
		for _, o := range n.Output {
			seen[o] = true
		}
	}
	for range 20 {
		if f := g2.Fresh("matmul"); seen[f] {
			t.Fatalf("Fresh returned the existing name %s", f)
		}
	}
	out := g2.Op("Neg", []string{z})
	g2.ClearOutputs()
	g2.Output(out, onnxgraph.Float)
	b, err = g2.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	rt, err := ort.Open(ort.Options{Threads: 1, Device: ort.DeviceCPU})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	s, err := rt.NewSession(b, []string{"x"}, []string{out})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Run(ort.F32Tensor([]float32{1, 1}, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	// -([1 1]·[[1 2][3 4]] + 1) = -[5 7]
	if res[0].F32[0] != -5 || res[0].F32[1] != -7 {
		t.Fatalf("edited graph computes %v", res[0].F32)
	}
}

func TestLoadRejectsGarbage(t *testing.T) {
	if _, err := onnxgraph.Load([]byte("not a model")); err == nil {
		t.Fatal("garbage parsed as a model")
	}
}

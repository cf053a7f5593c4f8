package autodiff_test

import (
	"fmt"
	"github.com/dmad/workstation/core/ort/orttest"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmad/workstation/core/autodiff"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

func openRT(t testing.TB) *ort.Runtime {
	t.Helper()
	return orttest.Open(t, 1)
}

// operand is one differentiable input of a gradient check.
type operand struct {
	dims []int64 // declared dims (-1 = dynamic)
	feed []int64 // actual shape fed
	// away keeps values at least this far from zero (kinks, sqrt, division).
	away float64
	pos  bool // strictly positive values
}

type gradCase struct {
	name string
	rows int64 // rows of the output when its first dimension is dynamic
	ops  []operand
	f    func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value
}

func numel(s []int64) int {
	n := 1
	for _, d := range s {
		n *= int(d)
	}
	return n
}

// checkGrad builds L = Σ f(x) ⊙ R, its gradients by autodiff, and compares
// them with central differences through ONNX Runtime.
func checkGrad(t *testing.T, rt *ort.Runtime, c gradCase, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	g := onnxgraph.New(c.name)
	b := autodiff.New(g)
	xs := make([]*autodiff.Value, len(c.ops))
	names := make([]string, len(c.ops))
	data := make([][]float32, len(c.ops))
	for i, o := range c.ops {
		names[i] = fmt.Sprintf("x%d", i)
		xs[i] = b.Param(names[i], o.dims...)
		feed := o.feed
		if feed == nil {
			feed = o.dims
		}
		d := make([]float32, numel(feed))
		for j := range d {
			v := rng.NormFloat64()
			if o.pos {
				v = math.Abs(v) + 0.5
			}
			if math.Abs(v) < o.away {
				v = math.Copysign(o.away+math.Abs(v), v)
			}
			d[j] = float32(v)
		}
		data[i] = d
	}
	y := c.f(b, xs)
	// R has y's static shape where known; dynamic dims take the fed batch.
	rdims := append([]int64(nil), y.Dims...)
	for i, d := range rdims {
		if d < 0 {
			rdims[i] = c.rows
		}
	}
	r := make([]float32, numel(rdims))
	for j := range r {
		r[j] = float32(rng.NormFloat64())
	}
	loss := b.Reshape(b.Sum(b.Mul(y, b.Const("r", r, rdims...)), nil, false), 1)
	grads, err := b.Grad(loss, xs...)
	if err != nil {
		t.Fatal(err)
	}
	outs := append([]string{loss.Name}, grads...)
	for _, o := range outs {
		g.Output(o, onnxgraph.Float)
	}
	model, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := rt.NewSession(model, names, outs)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	defer s.Close()
	run := func() []ort.Tensor {
		in := make([]ort.Tensor, len(data))
		for i, o := range c.ops {
			feed := o.feed
			if feed == nil {
				feed = o.dims
			}
			in[i] = ort.F32Tensor(data[i], feed...)
		}
		res, err := s.Run(in...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		return res
	}
	res := run()
	const h = 1e-2
	for i := range c.ops {
		an := res[1+i].F32
		if len(an) != len(data[i]) {
			t.Fatalf("%s: gradient %d has %d values (shape %v), want %d", c.name, i, len(an), res[1+i].Shape, len(data[i]))
		}
		for j := range data[i] {
			orig := data[i][j]
			data[i][j] = orig + h
			lp := float64(run()[0].F32[0])
			data[i][j] = orig - h
			lm := float64(run()[0].F32[0])
			data[i][j] = orig
			fd := (lp - lm) / (2 * h)
			if d := math.Abs(fd - float64(an[j])); d > 3e-3+2e-2*math.Abs(fd) {
				t.Errorf("%s: d/dx%d[%d] autodiff %.6g, central difference %.6g", c.name, i, j, an[j], fd)
			}
		}
	}
}

func TestGradients(t *testing.T) {
	rt := openRT(t)
	m := func(dims ...int64) operand { return operand{dims: dims} }
	cases := []gradCase{
		{"matmul", 0, []operand{m(4, 3), m(3, 5)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.MatMul(x[0], x[1])
		}},
		{"add_bias_row", 0, []operand{m(4, 3), m(3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Add(x[0], x[1])
		}},
		{"add_row_keepdims", 0, []operand{m(4, 3), m(1, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Add(x[0], x[1])
		}},
		{"sub_column", 0, []operand{m(4, 3), m(4, 1)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Sub(x[0], x[1])
		}},
		{"mul", 0, []operand{m(4, 3), m(4, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Mul(x[0], x[1])
		}},
		{"mul_scalar_operand", 0, []operand{m(4, 3), m(1)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Mul(x[0], x[1])
		}},
		{"mul_self", 0, []operand{m(4, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Mul(x[0], x[0])
		}},
		{"scale", 0, []operand{m(4, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Scale(x[0], -2.5)
		}},
		{"div", 0, []operand{m(4, 3), {dims: []int64{1, 3}, pos: true}}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Div(x[0], x[1])
		}},
		{"neg", 0, []operand{m(2, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Neg(x[0])
		}},
		{"relu", 0, []operand{{dims: []int64{5, 4}, away: 0.05}}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Relu(x[0])
		}},
		{"leaky_relu", 0, []operand{{dims: []int64{5, 4}, away: 0.05}}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.LeakyRelu(x[0], 0.2)
		}},
		{"sqrt", 0, []operand{{dims: []int64{3, 4}, pos: true}}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Sqrt(x[0])
		}},
		{"mean_axis0", 0, []operand{m(5, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Mean(x[0], []int64{0}, true)
		}},
		{"mean_axis1_drop", 0, []operand{m(5, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Mean(x[0], []int64{1}, false)
		}},
		{"mean_all", 0, []operand{m(5, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Mean(x[0], nil, false)
		}},
		{"mean_axis0_dynamic", 0, []operand{{dims: []int64{-1, 3}, feed: []int64{6, 3}}}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Mean(x[0], []int64{0}, true)
		}},
		{"mean_all_dynamic", 0, []operand{{dims: []int64{-1, 3}, feed: []int64{6, 3}}}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Mean(x[0], nil, false)
		}},
		{"sum_axis0", 0, []operand{m(5, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Sum(x[0], []int64{0}, false)
		}},
		{"sum_all", 0, []operand{m(5, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Sum(x[0], nil, false)
		}},
		{"concat_axis1", 0, []operand{m(4, 2), m(4, 3), m(4, 1)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Concat(1, x[0], x[1], x[2])
		}},
		{"concat_axis0", 0, []operand{m(2, 3), m(4, 3)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Concat(0, x[0], x[1])
		}},
		{"concat_axis0_dynamic", 6, []operand{{dims: []int64{-1, 3}, feed: []int64{3, 3}}, {dims: []int64{-1, 3}, feed: []int64{3, 3}}}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Concat(0, x[0], x[1])
		}},
		{"slice_rows", 0, []operand{m(6, 2)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.Slice(x[0], 0, 2, 5)
		}},
		{"hinge", 0, []operand{{dims: []int64{8, 1}, away: 0.05}}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			// max(0, m − ψ) with m = 0.3; keep ψ away from the kink.
			return b.Relu(b.Sub(b.Scalar(0.3), b.Add(x[0], b.Scalar(0.3))))
		}},
		{"batchnorm_train", 0, []operand{m(6, 4), m(4), m(4)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			y, _, _ := b.BatchNormTrain(x[0], x[1], x[2], 1e-5)
			return y
		}},
		{"batchnorm_eval", 0, []operand{m(6, 4), m(4), m(4), m(1, 4), {dims: []int64{1, 4}, pos: true}}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			return b.BatchNormEval(x[0], x[1], x[2], x[3], x[4], 1e-5)
		}},
		{"mlp", 0, []operand{m(6, 3), m(3, 4), m(4), m(4), m(4), m(4, 1)}, func(b *autodiff.Builder, x []*autodiff.Value) *autodiff.Value {
			h := b.Add(b.MatMul(x[0], x[1]), x[2])
			y, _, _ := b.BatchNormTrain(h, x[3], x[4], 1e-5)
			return b.MatMul(b.LeakyRelu(y, 0.2), x[5])
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkGrad(t, rt, c, uint64(i+1)) })
	}
}

func TestGradUnconnectedIsZero(t *testing.T) {
	rt := openRT(t)
	g := onnxgraph.New("u")
	b := autodiff.New(g)
	x := b.Param("x", 2, 2)
	z := b.Param("z", 3)
	loss := b.Reshape(b.Sum(b.Mul(x, x), nil, false), 1)
	grads, err := b.Grad(loss, x, z)
	if err != nil {
		t.Fatal(err)
	}
	g.Output(grads[0], onnxgraph.Float)
	g.Output(grads[1], onnxgraph.Float)
	model, _ := g.Marshal()
	s, err := rt.NewSession(model, []string{"x", "z"}, grads)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(ort.F32Tensor([]float32{1, 2, 3, 4}, 2, 2), ort.F32Tensor([]float32{5, 6, 7}, 3))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float32{2, 4, 6, 8} {
		if out[0].F32[i] != want {
			t.Errorf("dx[%d] = %v, want %v", i, out[0].F32[i], want)
		}
	}
	if len(out[1].F32) != 3 {
		t.Fatalf("dz has shape %v", out[1].Shape)
	}
	for i, v := range out[1].F32 {
		if v != 0 {
			t.Errorf("dz[%d] = %v, want 0", i, v)
		}
	}
}

func TestGradRejectsNonScalarLoss(t *testing.T) {
	b := autodiff.New(onnxgraph.New("n"))
	x := b.Param("x", 2, 2)
	if _, err := b.Grad(x, x); err == nil {
		t.Fatal("non-scalar loss accepted")
	}
}

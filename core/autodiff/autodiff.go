// Package autodiff is a small reverse-mode differentiation over the handful
// of ONNX ops the score mapper uses. A forward expression is built through
// the Builder's methods; every method appends the forward ONNX node(s) to an
// onnxgraph.Graph at once and records on a tape how to differentiate it.
// Grad then walks the tape backwards and appends the backward nodes to the
// same graph, so one ONNX model holds forward pass, backward pass and
// whatever the caller builds on the gradients (an optimiser step).
//
// Shapes follow ONNX (numpy) broadcasting for the element-wise ops; a
// dimension of -1 is dynamic (the batch). Gradients of broadcast operands
// are summed over the broadcast axes.
package autodiff

import (
	"fmt"

	"github.com/dmad/workstation/core/onnxgraph"
)

// Value is a float32 tensor of the expression: the name of an ONNX value
// and its shape (-1 for a dynamic dimension).
type Value struct {
	// Name is the ONNX value name.
	Name string
	// Dims is the shape; -1 marks a dynamic dimension.
	Dims []int64

	in []*Value
	// back returns, for each input whose need flag is set, the name of the
	// gradient of the loss with respect to that input, given the gradient
	// gy of the loss with respect to this value.
	back func(gy string, need []bool) []string
}

// Rank is the number of dimensions.
func (v *Value) Rank() int { return len(v.Dims) }

// Builder records a forward expression and emits its gradient graph.
type Builder struct {
	// G is the graph every node goes to.
	G    *onnxgraph.Graph
	tape []*Value
}

// New starts a Builder that writes into g.
func New(g *onnxgraph.Graph) *Builder { return &Builder{G: g} }

func (b *Builder) push(v *Value) *Value {
	b.tape = append(b.tape, v)
	return v
}

// Input declares a float32 graph input that is not differentiated.
func (b *Builder) Input(name string, dims ...int64) *Value {
	b.G.Input(name, onnxgraph.Float, dims...)
	return b.push(&Value{Name: name, Dims: dims})
}

// Param declares a float32 graph input that Grad can differentiate with
// respect to.
func (b *Builder) Param(name string, dims ...int64) *Value {
	b.G.Input(name, onnxgraph.Float, dims...)
	return b.push(&Value{Name: name, Dims: dims})
}

// Wrap makes an existing graph value of the given shape usable in
// expressions (Grad can differentiate with respect to it like any value).
func (b *Builder) Wrap(name string, dims ...int64) *Value {
	return b.push(&Value{Name: name, Dims: dims})
}

// Const adds a float32 initializer.
func (b *Builder) Const(prefix string, data []float32, dims ...int64) *Value {
	return b.push(&Value{Name: b.G.Const(prefix, data, dims...), Dims: dims})
}

// Scalar adds a rank-0 float32 constant.
func (b *Builder) Scalar(v float32) *Value {
	return b.push(&Value{Name: b.G.Scalar(v), Dims: []int64{}})
}

func (b *Builder) op(dims []int64, in []*Value, back func(gy string, need []bool) []string, op string, attrs ...onnxgraph.Attr) *Value {
	names := make([]string, len(in))
	for i, v := range in {
		names[i] = v.Name
	}
	return b.push(&Value{Name: b.G.Op(op, names, attrs...), Dims: dims, in: in, back: back})
}

// broadcast computes the numpy broadcast shape of a and b.
func broadcast(a, b []int64) ([]int64, error) {
	n := max(len(a), len(b))
	out := make([]int64, n)
	for i := range n {
		da, db := int64(1), int64(1)
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		case da < 0:
			out[i] = db
		case db < 0:
			out[i] = da
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// unbroadcast sums gradient g (of shape out) down to shape in.
func (b *Builder) unbroadcast(g string, out, in []int64) string {
	lead := len(out) - len(in)
	if lead > 0 {
		axes := make([]int64, lead)
		for i := range axes {
			axes[i] = int64(i)
		}
		g = b.G.Op("ReduceSum", []string{g, b.G.Ints(axes...)}, onnxgraph.AttrInt("keepdims", 0))
	}
	var axes []int64
	for i, d := range in {
		if d == 1 && out[lead+i] != 1 {
			axes = append(axes, int64(i))
		}
	}
	if len(axes) > 0 {
		g = b.G.Op("ReduceSum", []string{g, b.G.Ints(axes...)}, onnxgraph.AttrInt("keepdims", 1))
	}
	return g
}

func (b *Builder) binary(op string, x, y *Value, grads func(gy string) (gx, gyy func() string)) *Value {
	dims, err := broadcast(x.Dims, y.Dims)
	if err != nil {
		panic(fmt.Sprintf("autodiff %s: %v", op, err))
	}
	var v *Value
	v = b.op(dims, []*Value{x, y}, func(gy string, need []bool) []string {
		fx, fy := grads(gy)
		out := make([]string, 2)
		if need[0] {
			out[0] = b.unbroadcast(fx(), v.Dims, x.Dims)
		}
		if need[1] {
			out[1] = b.unbroadcast(fy(), v.Dims, y.Dims)
		}
		return out
	}, op)
	return v
}

// Add is x + y with broadcasting (e.g. a bias row added to every row).
func (b *Builder) Add(x, y *Value) *Value {
	return b.binary("Add", x, y, func(gy string) (func() string, func() string) {
		id := func() string { return gy }
		return id, id
	})
}

// Sub is x − y with broadcasting.
func (b *Builder) Sub(x, y *Value) *Value {
	return b.binary("Sub", x, y, func(gy string) (func() string, func() string) {
		return func() string { return gy },
			func() string { return b.G.Op("Neg", []string{gy}) }
	})
}

// Mul is x ⊙ y with broadcasting (a scalar, a row or a column).
func (b *Builder) Mul(x, y *Value) *Value {
	return b.binary("Mul", x, y, func(gy string) (func() string, func() string) {
		return func() string { return b.G.Op("Mul", []string{gy, y.Name}) },
			func() string { return b.G.Op("Mul", []string{gy, x.Name}) }
	})
}

// Div is x / y with broadcasting.
func (b *Builder) Div(x, y *Value) *Value {
	var v *Value
	v = b.binary("Div", x, y, func(gy string) (func() string, func() string) {
		return func() string { return b.G.Op("Div", []string{gy, y.Name}) },
			func() string {
				// d(x/y)/dy = −(x/y)/y
				t := b.G.Op("Mul", []string{gy, v.Name})
				return b.G.Op("Neg", []string{b.G.Op("Div", []string{t, y.Name})})
			}
	})
	return v
}

// Scale is x·c for a constant c.
func (b *Builder) Scale(x *Value, c float32) *Value { return b.Mul(x, b.Scalar(c)) }

// Neg is −x.
func (b *Builder) Neg(x *Value) *Value {
	return b.op(x.Dims, []*Value{x}, func(gy string, need []bool) []string {
		return []string{b.G.Op("Neg", []string{gy})}
	}, "Neg")
}

// Relu is max(x, 0); its gradient at 0 is taken as 0.
func (b *Builder) Relu(x *Value) *Value {
	return b.op(x.Dims, []*Value{x}, func(gy string, need []bool) []string {
		zero := b.G.Scalar(0)
		pos := b.G.Op("Greater", []string{x.Name, zero})
		return []string{b.G.Op("Where", []string{pos, gy, zero})}
	}, "Relu")
}

// LeakyRelu is x for x > 0 and alpha·x otherwise.
func (b *Builder) LeakyRelu(x *Value, alpha float32) *Value {
	return b.op(x.Dims, []*Value{x}, func(gy string, need []bool) []string {
		pos := b.G.Op("Greater", []string{x.Name, b.G.Scalar(0)})
		slope := b.G.Op("Where", []string{pos, b.G.Scalar(1), b.G.Scalar(alpha)})
		return []string{b.G.Op("Mul", []string{gy, slope})}
	}, "LeakyRelu", onnxgraph.AttrFloat("alpha", alpha))
}

// Sqrt is the element-wise square root.
func (b *Builder) Sqrt(x *Value) *Value {
	var v *Value
	v = b.op(x.Dims, []*Value{x}, func(gy string, need []bool) []string {
		h := b.G.Op("Mul", []string{gy, b.G.Scalar(0.5)})
		return []string{b.G.Op("Div", []string{h, v.Name})}
	}, "Sqrt")
	return v
}

// MatMul is the 2-D matrix product x·y.
func (b *Builder) MatMul(x, y *Value) *Value {
	if x.Rank() != 2 || y.Rank() != 2 {
		panic(fmt.Sprintf("autodiff MatMul: want 2-D operands, got %v and %v", x.Dims, y.Dims))
	}
	return b.op([]int64{x.Dims[0], y.Dims[1]}, []*Value{x, y}, func(gy string, need []bool) []string {
		out := make([]string, 2)
		if need[0] { // gy·yᵀ
			out[0] = b.G.Op("Gemm", []string{gy, y.Name}, onnxgraph.AttrInt("transB", 1))
		}
		if need[1] { // xᵀ·gy
			out[1] = b.G.Op("Gemm", []string{x.Name, gy}, onnxgraph.AttrInt("transA", 1))
		}
		return out
	}, "MatMul")
}

// reduced returns the shape of x reduced over axes (all when axes is nil).
func reduced(dims []int64, axes []int64, keep bool) []int64 {
	all := axes == nil
	red := map[int64]bool{}
	for _, a := range axes {
		red[a] = true
	}
	var out []int64
	for i, d := range dims {
		if all || red[int64(i)] {
			if keep {
				out = append(out, 1)
			}
			continue
		}
		out = append(out, d)
	}
	if out == nil {
		out = []int64{}
	}
	return out
}

func normAxes(rank int, axes []int64) []int64 {
	out := make([]int64, len(axes))
	for i, a := range axes {
		if a < 0 {
			a += int64(rank)
		}
		out[i] = a
	}
	return out
}

// expandBack broadcasts the gradient of a reduction back to x's shape.
func (b *Builder) expandBack(x *Value, gy string, axes []int64, keep bool) string {
	if !keep && axes != nil {
		gy = b.G.Op("Unsqueeze", []string{gy, b.G.Ints(axes...)})
	}
	return b.G.Op("Expand", []string{gy, b.G.Op("Shape", []string{x.Name})})
}

// count returns a float scalar value with the number of elements reduced.
func (b *Builder) count(x *Value, axes []int64) string {
	n, static := int64(1), true
	for i, d := range x.Dims {
		if axes != nil && !contains(axes, int64(i)) {
			continue
		}
		if d < 0 {
			static = false
		}
		n *= d
	}
	if static {
		return b.G.Scalar(float32(n))
	}
	var c string
	if axes == nil {
		c = b.G.Op("Size", []string{x.Name})
	} else {
		sh := b.G.Op("Gather", []string{b.G.Op("Shape", []string{x.Name}), b.G.Ints(axes...)})
		c = b.G.Op("ReduceProd", []string{sh}, onnxgraph.AttrInt("keepdims", 0))
	}
	return b.G.Op("Cast", []string{c}, onnxgraph.AttrInt("to", int64(onnxgraph.Float)))
}

func contains(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Sum is ReduceSum over axes (all axes when nil).
func (b *Builder) Sum(x *Value, axes []int64, keepdims bool) *Value {
	if axes != nil {
		axes = normAxes(x.Rank(), axes)
	}
	in := []string{x.Name}
	if axes != nil {
		in = append(in, b.G.Ints(axes...))
	}
	dims := reduced(x.Dims, axes, keepdims)
	return b.push(&Value{
		Name: b.G.Op("ReduceSum", in, onnxgraph.AttrInt("keepdims", boolInt(keepdims))),
		Dims: dims, in: []*Value{x},
		back: func(gy string, need []bool) []string {
			return []string{b.expandBack(x, gy, axes, keepdims)}
		},
	})
}

// Mean is ReduceMean over axes (all axes when nil).
func (b *Builder) Mean(x *Value, axes []int64, keepdims bool) *Value {
	if axes != nil {
		axes = normAxes(x.Rank(), axes)
	}
	attrs := []onnxgraph.Attr{onnxgraph.AttrInt("keepdims", boolInt(keepdims))}
	if axes != nil { // opset 17: axes is still an attribute of ReduceMean
		attrs = append(attrs, onnxgraph.AttrInts("axes", axes...))
	}
	dims := reduced(x.Dims, axes, keepdims)
	return b.push(&Value{
		Name: b.G.Op("ReduceMean", []string{x.Name}, attrs...),
		Dims: dims, in: []*Value{x},
		back: func(gy string, need []bool) []string {
			g := b.G.Op("Div", []string{gy, b.count(x, axes)})
			return []string{b.expandBack(x, g, axes, keepdims)}
		},
	})
}

func boolInt(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// Concat joins xs along axis. Along axis every operand's size must be
// static unless axis is 0 (then sizes may be dynamic).
func (b *Builder) Concat(axis int64, xs ...*Value) *Value {
	if len(xs) == 0 {
		panic("autodiff Concat: no operands")
	}
	rank := xs[0].Rank()
	if axis < 0 {
		axis += int64(rank)
	}
	dims := append([]int64(nil), xs[0].Dims...)
	static := true
	for i, x := range xs {
		if x.Rank() != rank {
			panic(fmt.Sprintf("autodiff Concat: ranks %v and %v differ", xs[0].Dims, x.Dims))
		}
		if x.Dims[axis] < 0 {
			static = false
		}
		if i > 0 {
			dims[axis] += x.Dims[axis]
		}
	}
	if !static {
		dims[axis] = -1
	}
	return b.op(dims, xs, func(gy string, need []bool) []string {
		var split string
		if static {
			sizes := make([]int64, len(xs))
			for i, x := range xs {
				sizes[i] = x.Dims[axis]
			}
			split = b.G.Ints(sizes...)
		} else {
			parts := make([]string, len(xs))
			for i, x := range xs {
				parts[i] = b.G.Op("Shape", []string{x.Name}, onnxgraph.AttrInt("start", axis), onnxgraph.AttrInt("end", axis+1))
			}
			split = b.G.Op("Concat", parts, onnxgraph.AttrInt("axis", 0))
		}
		return b.G.OpN("Split", []string{gy, split}, len(xs), onnxgraph.AttrInt("axis", axis))
	}, "Concat", onnxgraph.AttrInt("axis", axis))
}

// Slice takes [start, end) of x along axis; x's size along axis must be
// static.
func (b *Builder) Slice(x *Value, axis, start, end int64) *Value {
	if axis < 0 {
		axis += int64(x.Rank())
	}
	n := x.Dims[axis]
	if n < 0 || start < 0 || end > n || start > end {
		panic(fmt.Sprintf("autodiff Slice: [%d,%d) of axis %d in %v", start, end, axis, x.Dims))
	}
	dims := append([]int64(nil), x.Dims...)
	dims[axis] = end - start
	return b.push(&Value{
		Name: b.G.Op("Slice", []string{x.Name, b.G.Ints(start), b.G.Ints(end), b.G.Ints(axis)}),
		Dims: dims, in: []*Value{x},
		back: func(gy string, need []bool) []string {
			pads := make([]int64, 2*x.Rank())
			pads[axis] = start
			pads[x.Rank()+int(axis)] = n - end
			return []string{b.G.Op("Pad", []string{gy, b.G.Ints(pads...)})}
		},
	})
}

// Reshape gives x the static shape dims (one dimension may be -1, inferred).
func (b *Builder) Reshape(x *Value, dims ...int64) *Value {
	return b.push(&Value{
		Name: b.G.Op("Reshape", []string{x.Name, b.G.Ints(dims...)}),
		Dims: dims, in: []*Value{x},
		back: func(gy string, need []bool) []string {
			return []string{b.G.Op("Reshape", []string{gy, b.G.Op("Shape", []string{x.Name})})}
		},
	})
}

// BatchNormTrain normalises x (N×H) with its batch statistics:
// (x − μ)/sqrt(σ² + eps)·gamma + beta, with μ and σ² the per-column mean and
// (biased) variance over the rows. It also returns μ and σ² (1×H) so the
// caller can update running statistics. The gradient is exact: the
// expression is composed of differentiable ops.
func (b *Builder) BatchNormTrain(x, gamma, beta *Value, eps float32) (y, mean, variance *Value) {
	mean = b.Mean(x, []int64{0}, true)
	d := b.Sub(x, mean)
	variance = b.Mean(b.Mul(d, d), []int64{0}, true)
	std := b.Sqrt(b.Add(variance, b.Scalar(eps)))
	xhat := b.Div(d, std)
	return b.Add(b.Mul(xhat, gamma), beta), mean, variance
}

// BatchNormEval normalises x with fixed statistics mean and variance.
func (b *Builder) BatchNormEval(x, gamma, beta, mean, variance *Value, eps float32) *Value {
	std := b.Sqrt(b.Add(variance, b.Scalar(eps)))
	return b.Add(b.Mul(b.Div(b.Sub(x, mean), std), gamma), beta)
}

// Grad appends the backward pass of loss (a one-element tensor) to the
// graph and returns, for each of wrt, the name of its gradient. A value that
// loss does not depend on gets a zero gradient.
func (b *Builder) Grad(loss *Value, wrt ...*Value) ([]string, error) {
	n := int64(1)
	for _, d := range loss.Dims {
		n *= d
	}
	if n != 1 {
		return nil, fmt.Errorf("autodiff: loss %s has shape %v, want one element", loss.Name, loss.Dims)
	}
	target := map[*Value]bool{}
	for _, w := range wrt {
		target[w] = true
	}
	// reach: values through which some wrt influences loss.
	reach := map[*Value]bool{}
	for _, v := range b.tape {
		if target[v] {
			reach[v] = true
			continue
		}
		for _, in := range v.in {
			if reach[in] {
				reach[v] = true
				break
			}
		}
	}
	grads := map[*Value][]string{}
	if reach[loss] {
		grads[loss] = []string{b.G.Const("one", []float32{1}, loss.Dims...)}
	}
	total := func(v *Value) string {
		gs := grads[v]
		switch len(gs) {
		case 0:
			return ""
		case 1:
			return gs[0]
		}
		s := b.G.Op("Sum", gs)
		grads[v] = []string{s}
		return s
	}
	for i := len(b.tape) - 1; i >= 0; i-- {
		v := b.tape[i]
		if !reach[v] || v.back == nil {
			continue
		}
		gy := total(v)
		if gy == "" {
			continue
		}
		need := make([]bool, len(v.in))
		any := false
		for j, in := range v.in {
			need[j] = reach[in]
			any = any || need[j]
		}
		if !any {
			continue
		}
		gs := v.back(gy, need)
		for j, in := range v.in {
			if need[j] && gs[j] != "" {
				grads[in] = append(grads[in], gs[j])
			}
		}
	}
	out := make([]string, len(wrt))
	for i, w := range wrt {
		if g := total(w); g != "" {
			out[i] = g
			continue
		}
		out[i] = b.G.Op("ConstantOfShape", []string{b.G.Op("Shape", []string{w.Name})})
	}
	return out, nil
}

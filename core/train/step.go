package train

import (
	"fmt"

	"github.com/dmad/workstation/core/autodiff"
	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

// Adam constants (torch defaults).
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

// stepIO names the inputs and outputs of a training-step graph.
type stepIO struct {
	inputs  []string
	outputs []string
	// indices into outputs
	newParam, newM, newV             []int
	loss, bnMean, bnVar              int
	normalAbove, negBelow, anomBelow int
	grads                            []int // only with debug
	psi, hidden                      int   // only with debug
}

// stepFeed is one step's input tensors by graph input name: the loop fills
// it by name and stepIO.order lays it out in buildStep's order, so the two
// cannot drift apart silently.
type stepFeed map[string]ort.Tensor

// putParams sets each parameter's value and Adam moments (p_, m_, v_).
func (f stepFeed) putParams(ps []mapper.Tensor, state [][3][]float32) {
	for i, p := range ps {
		f["p_"+p.Name] = ort.F32Tensor(state[i][0], p.Dims...)
		f["m_"+p.Name] = ort.F32Tensor(state[i][1], p.Dims...)
		f["v_"+p.Name] = ort.F32Tensor(state[i][2], p.Dims...)
	}
}

// putSchedule sets the step's learning rates and Adam bias corrections.
func (f stepFeed) putSchedule(s schedule) {
	f["lr"] = ort.F32Tensor([]float32{s.lr}, 1)
	f["lr_proj"] = ort.F32Tensor([]float32{s.lrProj}, 1)
	f["bc1"] = ort.F32Tensor([]float32{s.bc1}, 1)
	f["bc2"] = ort.F32Tensor([]float32{s.bc2}, 1)
}

// order returns the feed's tensors in the graph's input order.
func (io *stepIO) order(f stepFeed) ([]ort.Tensor, error) {
	if len(f) != len(io.inputs) {
		return nil, fmt.Errorf("train: step feed has %d inputs, the graph %d", len(f), len(io.inputs))
	}
	in := make([]ort.Tensor, len(io.inputs))
	for i, name := range io.inputs {
		t, ok := f[name]
		if !ok {
			return nil, fmt.Errorf("train: step input %s not fed", name)
		}
		in[i] = t
	}
	return in, nil
}

// buildStep emits the whole training step as one ONNX graph: forward on a
// batch of bn normal patches, their bn pseudo-negatives and bs seen-anomaly
// patches (bs = 0: unsupervised graph without the anomaly term), the
// three-part hinge loss, its backward pass, and Adam (Ψ, L2 weight decay)
// / AdamW (projection) updates.
//
// Inputs, in order: for each parameter p of mapper.Model.Params: p_<name>,
// m_<name>, v_<name>; the [1] scalars lr, lr_proj, bc1 = 1−β1ᵗ,
// bc2 = 1−β2ᵗ; the normal batch qn, knn, kan (bn×C)[, dnn, dan (bn×1)];
// the raw noise eps (bn×C); with bs > 0 the seen batch qa, kna, kaa
// [, dna, daa].
//
// Pseudo-negatives are the normal patches moved by the same raw noise
// vector ε in all three parts: q+ε, k·n+ε, k·a+ε (a perturbed feature and
// its residuals), with their distances recomputed as ‖k·n+ε‖, ‖k·a+ε‖.
// Because P and Ψ's first layer are linear, their first-layer products
// are the normal ones plus ε·E for one C×H matrix E (see mapper.Folded).
//
// m supplies the configuration and the standardisation (baked in as
// constants); its tensor values are not used.
func buildStep(m *mapper.Model, cfg Config, bn, bs int, debug bool) (*onnxgraph.Graph, stepIO) {
	g := onnxgraph.New("dmad_train_step")
	b := autodiff.New(g)
	mc := m.Config
	c := int64(mc.C)
	var io stepIO

	vars, params := m.ParamVars(b, "p_")
	ps := m.Params()
	moms := make([][2]string, len(ps))
	for i, p := range ps {
		io.inputs = append(io.inputs, params[i].Name)
		moms[i][0] = g.Input("m_"+p.Name, onnxgraph.Float, p.Dims...)
		moms[i][1] = g.Input("v_"+p.Name, onnxgraph.Float, p.Dims...)
		io.inputs = append(io.inputs, moms[i][0], moms[i][1])
	}
	scal := func(name string) string {
		io.inputs = append(io.inputs, name)
		return g.Input(name, onnxgraph.Float, 1)
	}
	lr, lrProj, bc1, bc2 := scal("lr"), scal("lr_proj"), scal("bc1"), scal("bc2")

	knowledge := func(suffix string, rows int) mapper.Knowledge {
		r := int64(rows)
		in := func(name string, cols int64) *autodiff.Value {
			io.inputs = append(io.inputs, name+suffix)
			return b.Input(name+suffix, r, cols)
		}
		k := mapper.Knowledge{Q: in("q", c), KN: in("kn", c), KA: in("ka", c)}
		if mc.Distances {
			k.DN, k.DA = in("dn", 1), in("da", 1)
		}
		return k
	}
	kn := knowledge("n", bn)
	io.inputs = append(io.inputs, "eps")
	eps := b.Input("eps", int64(bn), c)

	// Ψ's first layer with the projection folded in (mapper.Folded): the
	// same function as Head(Embed(·)) at a fifth of the multiply-adds.
	f := m.Fold(b, vars)
	sn := m.Standardize(b, kn)
	base := f.Products(b, sn)
	// The pseudo-negatives' standardised inputs are the normal ones plus
	// QScale·ε, KScale·ε, KScale·ε, so their products are base + ε·shift.
	shift := b.Add(b.Scale(f.MQ, m.Std.QScale), b.Scale(b.Add(f.MKN, f.MKA), m.Std.KScale))
	sp := sn
	if mc.Distances {
		norm := func(x *autodiff.Value) *autodiff.Value {
			e := b.Add(x, eps)
			return b.Sqrt(b.Sum(b.Mul(e, e), []int64{1}, true))
		}
		sp = m.Standardize(b, mapper.Knowledge{Q: kn.Q, KN: kn.KN, KA: kn.KA, DN: norm(kn.KN), DA: norm(kn.KA)})
	}
	rows := []*autodiff.Value{f.Complete(b, base, sn), f.Complete(b, b.Add(base, b.MatMul(eps, shift)), sp)}
	if bs > 0 {
		sa := m.Standardize(b, knowledge("a", bs))
		rows = append(rows, f.Complete(b, f.Products(b, sa), sa))
	}
	psi, hidden, bnMean, bnVar := m.HeadFromLayer(b, vars, b.Concat(0, rows...), true)

	margin := b.Scalar(cfg.Margin)
	psiN := b.Slice(psi, 0, 0, int64(bn))
	psiP := b.Slice(psi, 0, int64(bn), int64(2*bn))
	loss := b.Mean(b.Relu(b.Sub(margin, psiN)), nil, false)
	loss = b.Add(loss, b.Scale(b.Mean(b.Relu(b.Add(margin, psiP)), nil, false), cfg.Lambda1))
	var psiA *autodiff.Value
	if bs > 0 {
		psiA = b.Slice(psi, 0, int64(2*bn), int64(2*bn+bs))
		loss = b.Add(loss, b.Scale(b.Mean(b.Relu(b.Add(margin, psiA)), nil, false), cfg.Lambda2))
	}
	loss = b.Reshape(loss, 1)
	grads, err := b.Grad(loss, params...)
	if err != nil {
		panic(err) // loss is [1] by construction
	}

	out := func(name string) int {
		g.Output(name, onnxgraph.Float)
		io.outputs = append(io.outputs, name)
		return len(io.outputs) - 1
	}
	op2 := func(op string, in ...string) string { return g.Op(op, in) }
	k := func(v float32) string { return g.Const("k", []float32{v}, 1) }
	for i, p := range ps {
		pv, mv, vv := params[i].Name, moms[i][0], moms[i][1]
		gr := grads[i]
		rate, wd := lr, cfg.WeightDecay
		if p.Proj {
			rate, wd = lrProj, cfg.WeightDecayProj
		}
		if !p.Proj && wd != 0 { // Adam: L2 term in the gradient
			gr = op2("Add", gr, op2("Mul", pv, k(wd)))
		}
		m2 := g.OpTo("new_m_"+p.Name, "Add", []string{op2("Mul", mv, k(adamBeta1)), op2("Mul", gr, k(1-adamBeta1))})
		v2 := g.OpTo("new_v_"+p.Name, "Add", []string{op2("Mul", vv, k(adamBeta2)), op2("Mul", op2("Mul", gr, gr), k(1-adamBeta2))})
		den := op2("Add", op2("Sqrt", op2("Div", v2, bc2)), k(adamEps))
		upd := op2("Mul", op2("Div", op2("Div", m2, bc1), den), rate)
		base := pv
		if p.Proj && wd != 0 { // AdamW: decoupled decay
			base = op2("Mul", pv, op2("Sub", k(1), op2("Mul", rate, k(wd))))
		}
		g.OpTo("new_p_"+p.Name, "Sub", []string{base, upd})
		io.newParam = append(io.newParam, out("new_p_"+p.Name))
		io.newM = append(io.newM, out("new_m_"+p.Name))
		io.newV = append(io.newV, out("new_v_"+p.Name))
	}
	g.OpTo("loss", "Identity", []string{loss.Name})
	io.loss = out("loss")
	g.OpTo("bn_mean", "Identity", []string{bnMean.Name})
	io.bnMean = out("bn_mean")
	g.OpTo("bn_var", "Identity", []string{bnVar.Name})
	io.bnVar = out("bn_var")
	frac := func(name, cmp string, x *autodiff.Value, thr float32) int {
		c := g.Op("Cast", []string{g.Op(cmp, []string{x.Name, k(thr)})}, onnxgraph.AttrInt("to", int64(onnxgraph.Float)))
		g.OpTo(name, "ReduceMean", []string{c}, onnxgraph.AttrInt("keepdims", 1)) // [1,1]
		return out(name)
	}
	io.normalAbove = frac("normal_above", "Greater", psiN, cfg.Margin)
	io.negBelow = frac("neg_below", "Less", psiP, -cfg.Margin)
	io.anomBelow = -1
	if psiA != nil {
		io.anomBelow = frac("anom_below", "Less", psiA, -cfg.Margin)
	}
	if debug {
		for i, p := range ps {
			g.OpTo("grad_"+p.Name, "Identity", []string{grads[i]})
			io.grads = append(io.grads, out("grad_"+p.Name))
		}
		g.OpTo("psi", "Identity", []string{psi.Name})
		io.psi = out("psi")
		g.OpTo("hidden", "Identity", []string{hidden.Name})
		io.hidden = out("hidden")
	}
	g.Prune()
	return g, io
}

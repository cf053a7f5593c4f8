// Package mapper holds DMAD's learned score mapper (METHOD.md §3–§5): one
// shared linear projection P applied to a patch feature q and its two
// knowledge residuals k·n = q − n and k·a = q − a, optionally the two scalar
// distances ‖k·n‖ and ‖k·a‖, and the MLP
//
//	Ψ(o) = W2ᵀ LeakyReLU(BN(W1ᵀ o + b1)),  o = Cat(P(q), P(k·n), P(k·a)[, dn, da]).
//
// Ψ is a normality score; the anomaly score is S = −Ψ(o). The forward
// expression is written once with core/autodiff, so the inference graph
// (Scorer) and the training step (core/train) share it.
package mapper

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/dmad/workstation/core/autodiff"
	"github.com/dmad/workstation/core/mat"
)

// Config fixes the mapper's shape and its BatchNorm constants.
type Config struct {
	// C is the patch feature dimension.
	C int
	// Hidden is the width H of Ψ's hidden layer (reference 1024).
	Hidden int
	// Distances appends the scalar distances ‖k·n‖ and ‖k·a‖ to o as two
	// extra inputs of Ψ ([ours], METHOD.md §7).
	Distances bool
	// Slope is the LeakyReLU negative slope (0.2).
	Slope float32
	// BNEps is BatchNorm's epsilon (1e-5).
	BNEps float32
	// BNMomentum is the weight of a new batch in the running statistics (0.1).
	BNMomentum float32
	// ProjIdentity starts P as the identity (with zero bias) instead of
	// torch's default Linear initialisation.
	ProjIdentity bool
	// PatchCoreInit (with Distances) starts Ψ as a PatchCore-like scorer:
	// two hidden units carry ±‖k·n‖ and the output weights make
	// Ψ ≈ −standardised ‖k·n‖, while every other output weight is shrunk
	// tenfold. Training starts where PatchCore is and learns from there.
	PatchCoreInit bool
}

// DefaultConfig is the configuration used by the workstation for features
// of dimension c. The hidden width is 256 rather than the reference's 1024:
// with the distances as inputs the narrower Ψ trains four times faster per
// step on a CPU, and the benchmark (README) was measured with it.
func DefaultConfig(c int) Config {
	return Config{C: c, Hidden: 256, Distances: true, Slope: 0.2, BNEps: 1e-5, BNMomentum: 0.1,
		ProjIdentity: true, PatchCoreInit: true}
}

// InDim is the width of o, Ψ's input: 3C, plus 2 with Distances.
func (c Config) InDim() int {
	if c.Distances {
		return 3*c.C + 2
	}
	return 3 * c.C
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.C <= 0:
		return fmt.Errorf("mapper config: feature dimension C = %d", c.C)
	case c.Hidden <= 0:
		return fmt.Errorf("mapper config: hidden width %d", c.Hidden)
	case c.Hidden < 2 && c.PatchCoreInit && c.Distances:
		return fmt.Errorf("mapper config: PatchCoreInit needs a hidden width ≥ 2, got %d", c.Hidden)
	case c.BNEps <= 0:
		return fmt.Errorf("mapper config: BatchNorm epsilon %v", c.BNEps)
	case c.BNMomentum < 0 || c.BNMomentum > 1:
		return fmt.Errorf("mapper config: BatchNorm momentum %v", c.BNMomentum)
	}
	return nil
}

// Standardization maps raw knowledge to the scale Ψ is trained on:
// q̃ = (q − QMean)·QScale, k̃ = k·KScale for both residuals, and
// d̃ = (d − DMean)·DScale for both distances. Scalar scales keep one
// perturbation of a feature the same vector in all three parts.
type Standardization struct {
	QMean          []float32
	QScale, KScale float32
	DMean, DScale  float32
}

// IdentityStandardization leaves features as they are.
func IdentityStandardization(c int) Standardization {
	return Standardization{QMean: make([]float32, c), QScale: 1, KScale: 1, DScale: 1}
}

// FitStandardization measures the standardisation from normal training
// patches: the per-dimension mean of q and its overall RMS spread, the RMS of
// the normal residual k·n per dimension, and the mean and spread of ‖k·n‖.
func FitStandardization(q, kn *mat.Matrix, dn []float32) (Standardization, error) {
	if q.Rows() == 0 || q.Rows() != kn.Rows() || q.Cols() != kn.Cols() || len(dn) != q.Rows() {
		return Standardization{}, fmt.Errorf("fit standardisation: q %d×%d, k·n %d×%d, %d distances", q.Rows(), q.Cols(), kn.Rows(), kn.Cols(), len(dn))
	}
	return FitStandardizationFrom(q, func(lo, hi int) *mat.Matrix { return kn.Slice(lo, hi) }, dn)
}

// FitStandardizationFrom is FitStandardization with the residuals k·n
// given a block of rows at a time: kn(lo, hi) returns rows [lo, hi), so
// they need not all be held (it may reuse one buffer). The result is
// bit-identical to FitStandardization's.
func FitStandardizationFrom(q *mat.Matrix, kn func(lo, hi int) *mat.Matrix, dn []float32) (Standardization, error) {
	if q.Rows() == 0 || len(dn) != q.Rows() {
		return Standardization{}, fmt.Errorf("fit standardisation: q %d×%d, %d distances", q.Rows(), q.Cols(), len(dn))
	}
	c := q.Cols()
	mean := make([]float64, c)
	for i := range q.Rows() {
		for j, v := range q.Row(i) {
			mean[j] += float64(v)
		}
	}
	s := Standardization{QMean: make([]float32, c)}
	for j := range mean {
		mean[j] /= float64(q.Rows())
		s.QMean[j] = float32(mean[j])
	}
	var sq, sk float64
	const block = 4096
	for lo := 0; lo < q.Rows(); lo += block {
		hi := min(lo+block, q.Rows())
		k := kn(lo, hi)
		if k == nil || k.Rows() != hi-lo || k.Cols() != c {
			return Standardization{}, fmt.Errorf("fit standardisation: residual rows %d–%d are not %d×%d", lo, hi, hi-lo, c)
		}
		for i := lo; i < hi; i++ {
			for j, v := range q.Row(i) {
				d := float64(v) - mean[j]
				sq += d * d
			}
			for _, v := range k.Row(i - lo) {
				sk += float64(v) * float64(v)
			}
		}
	}
	n := float64(q.Rows() * c)
	s.QScale = invOr1(math.Sqrt(sq / n))
	s.KScale = invOr1(math.Sqrt(sk / n))
	var dm, dv float64
	for _, d := range dn {
		dm += float64(d)
	}
	dm /= float64(len(dn))
	for _, d := range dn {
		dv += (float64(d) - dm) * (float64(d) - dm)
	}
	s.DMean = float32(dm)
	s.DScale = invOr1(math.Sqrt(dv / float64(len(dn))))
	return s, nil
}

func invOr1(x float64) float32 {
	if x < 1e-12 || math.IsNaN(x) {
		return 1
	}
	return float32(1 / x)
}

// Model is a mapper's full state: its configuration, learned tensors,
// BatchNorm running statistics, input standardisation and provenance.
type Model struct {
	Config Config
	// P is the shared projection (C×C), applied as x·P + PBias.
	P     *mat.Matrix
	PBias []float32
	// W1 is Ψ's first layer (InDim×Hidden), applied as o·W1 + B1.
	W1 *mat.Matrix
	B1 []float32
	// Gamma and Beta are BatchNorm's affine parameters (Hidden).
	Gamma, Beta []float32
	// RunMean and RunVar are BatchNorm's running statistics (Hidden).
	RunMean, RunVar []float32
	// W2 is Ψ's output layer (Hidden, no bias).
	W2 []float32
	// Std is the input standardisation.
	Std Standardization
	// Backbone identifies the feature extractor the model was trained on.
	Backbone string
	// BankIDs identify the memory banks the knowledge came from.
	BankIDs []string
}

// Init creates a model with torch-like default initialisation (Linear:
// U(±1/√fan_in) for weights and biases; BatchNorm γ=1, β=0, running
// mean 0 and variance 1), modified by ProjIdentity and PatchCoreInit.
func Init(cfg Config, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d6170706572))
	uni := func(dst []float32, fanIn int) {
		bound := 1 / math.Sqrt(float64(fanIn))
		for i := range dst {
			dst[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
	c, d, h := cfg.C, cfg.InDim(), cfg.Hidden
	m := &Model{
		Config: cfg,
		P:      mat.New(c, c), PBias: make([]float32, c),
		W1: mat.New(d, h), B1: make([]float32, h),
		Gamma: make([]float32, h), Beta: make([]float32, h),
		RunMean: make([]float32, h), RunVar: make([]float32, h),
		W2:  make([]float32, h),
		Std: IdentityStandardization(c),
	}
	if cfg.ProjIdentity {
		for i := range c {
			m.P.Row(i)[i] = 1
		}
	} else {
		uni(m.P.RawData(), c)
		uni(m.PBias, c)
	}
	uni(m.W1.RawData(), d)
	uni(m.B1, d)
	uni(m.W2, h)
	for i := range h {
		m.Gamma[i], m.RunVar[i] = 1, 1
	}
	if cfg.Distances && cfg.PatchCoreInit {
		for i := range m.W2 {
			m.W2[i] *= 0.1
		}
		dn := 3 * c // row of W1 fed by the standardised ‖k·n‖
		for u := range 2 {
			for r := range d {
				m.W1.Row(r)[u] = 0
			}
			m.B1[u] = 0
		}
		m.W1.Row(dn)[0] = 1
		m.W1.Row(dn)[1] = -1
		// LeakyReLU(z) − LeakyReLU(−z) = (1+α)z, so these two output
		// weights make Ψ = −ẑ(‖k·n‖) exactly.
		w := 1 / (1 + cfg.Slope)
		m.W2[0], m.W2[1] = -w, w
	}
	return m, nil
}

// Tensor is one named tensor of a model; Data aliases the model's storage.
type Tensor struct {
	Name string
	Dims []int64
	Data []float32
	// Proj marks the projection's tensors (optimised with AdamW in the
	// reference); the others belong to Ψ.
	Proj bool
}

// Params lists the trainable tensors in a fixed order.
func (m *Model) Params() []Tensor {
	c, d, h := int64(m.Config.C), int64(m.Config.InDim()), int64(m.Config.Hidden)
	return []Tensor{
		{"P", []int64{c, c}, m.P.RawData(), true},
		{"PBias", []int64{c}, m.PBias, true},
		{"W1", []int64{d, h}, m.W1.RawData(), false},
		{"B1", []int64{h}, m.B1, false},
		{"Gamma", []int64{h}, m.Gamma, false},
		{"Beta", []int64{h}, m.Beta, false},
		{"W2", []int64{h, 1}, m.W2, false},
	}
}

// Clone returns a deep copy.
func (m *Model) Clone() *Model {
	cp := func(s []float32) []float32 { return append([]float32(nil), s...) }
	return &Model{
		Config: m.Config,
		P:      m.P.Clone(), PBias: cp(m.PBias),
		W1: m.W1.Clone(), B1: cp(m.B1),
		Gamma: cp(m.Gamma), Beta: cp(m.Beta),
		RunMean: cp(m.RunMean), RunVar: cp(m.RunVar),
		W2: cp(m.W2),
		Std: Standardization{QMean: cp(m.Std.QMean), QScale: m.Std.QScale, KScale: m.Std.KScale,
			DMean: m.Std.DMean, DScale: m.Std.DScale},
		Backbone: m.Backbone,
		BankIDs:  append([]string(nil), m.BankIDs...),
	}
}

// Vars are a model's tensors as expression values: constants in the
// inference graph, graph inputs in the training step.
type Vars struct {
	P, PBias, W1, B1, Gamma, Beta, W2 *autodiff.Value
	RunMean, RunVar                   *autodiff.Value
}

// ConstVars adds the model's tensors to b's graph as initializers.
func (m *Model) ConstVars(b *autodiff.Builder) Vars {
	ps := m.Params()
	v := make([]*autodiff.Value, len(ps))
	for i, p := range ps {
		v[i] = b.Const(p.Name, p.Data, p.Dims...)
	}
	h := int64(m.Config.Hidden)
	return Vars{P: v[0], PBias: v[1], W1: v[2], B1: v[3], Gamma: v[4], Beta: v[5], W2: v[6],
		RunMean: b.Const("RunMean", m.RunMean, 1, h), RunVar: b.Const("RunVar", m.RunVar, 1, h)}
}

// ParamVars declares the trainable tensors as differentiable graph inputs
// named after Params (with prefix), in Params order; running statistics
// are not included.
func (m *Model) ParamVars(b *autodiff.Builder, prefix string) (Vars, []*autodiff.Value) {
	ps := m.Params()
	v := make([]*autodiff.Value, len(ps))
	for i, p := range ps {
		v[i] = b.Param(prefix+p.Name, p.Dims...)
	}
	return Vars{P: v[0], PBias: v[1], W1: v[2], B1: v[3], Gamma: v[4], Beta: v[5], W2: v[6]}, v
}

// Knowledge is one batch of Ψ's raw inputs as expression values: Q, KN and
// KA are N×C; DN and DA (N×1) are used only with Distances.
type Knowledge struct {
	Q, KN, KA, DN, DA *autodiff.Value
}

// Standardize applies the model's input standardisation (constants; no
// gradient flows to the statistics).
func (m *Model) Standardize(b *autodiff.Builder, k Knowledge) Knowledge {
	s := m.Std
	c := int64(m.Config.C)
	out := Knowledge{
		Q:  b.Scale(b.Sub(k.Q, b.Const("qmean", s.QMean, 1, c)), s.QScale),
		KN: b.Scale(k.KN, s.KScale),
		KA: b.Scale(k.KA, s.KScale),
	}
	if m.Config.Distances {
		dm := b.Scalar(s.DMean)
		out.DN = b.Scale(b.Sub(k.DN, dm), s.DScale)
		out.DA = b.Scale(b.Sub(k.DA, dm), s.DScale)
	}
	return out
}

// Project applies the shared projection: x·P + PBias.
func Project(b *autodiff.Builder, v Vars, x *autodiff.Value) *autodiff.Value {
	return b.Add(b.MatMul(x, v.P), v.PBias)
}

// Embed builds o = Cat(P(q), P(k·n), P(k·a)[, dn, da]) from standardised
// knowledge.
func (m *Model) Embed(b *autodiff.Builder, v Vars, k Knowledge) *autodiff.Value {
	parts := []*autodiff.Value{Project(b, v, k.Q), Project(b, v, k.KN), Project(b, v, k.KA)}
	if m.Config.Distances {
		parts = append(parts, k.DN, k.DA)
	}
	return b.Concat(1, parts...)
}

// Head is Ψ's forward pass on o (N×InDim) giving Ψ (N×1). With train set,
// BatchNorm uses the batch statistics, which it also returns (1×H each);
// otherwise it uses v.RunMean and v.RunVar and the statistics are nil.
func (m *Model) Head(b *autodiff.Builder, v Vars, o *autodiff.Value, train bool) (psi, mean, variance *autodiff.Value) {
	psi, _, mean, variance = m.HeadParts(b, v, o, train)
	return psi, mean, variance
}

// HeadParts is Head that also returns the BatchNorm output (N×H, the
// LeakyReLU's input).
func (m *Model) HeadParts(b *autodiff.Builder, v Vars, o *autodiff.Value, train bool) (psi, hidden, mean, variance *autodiff.Value) {
	return m.HeadFromLayer(b, v, b.Add(b.MatMul(o, v.W1), v.B1), train)
}

// Folded is the shared projection folded into Ψ's first layer. For
// o = Cat(x_q·P + PBias, x_kn·P + PBias, x_ka·P + PBias[, dn, da]),
//
//	o·W1 + B1 = x_q·MQ + x_kn·MKN + x_ka·MKA [+ dn·WDN + da·WDA] + Bias,
//
// with M_part = P·W1_part (C×H, W1_part the part's C rows of W1) and
// Bias = PBias·(W1_q + W1_kn + W1_ka) + B1: the same function with three
// N×C·C×H products per batch instead of three N×C·C×C ones and an
// N×3C·3C×H one (a fifth of a training step's multiply-adds at C = 768,
// H = 256, forward and backward).
type Folded struct {
	MQ, MKN, MKA *autodiff.Value // C×H
	WDN, WDA     *autodiff.Value // 1×H; nil without Distances
	Bias         *autodiff.Value // 1×H
}

// Fold builds the folded first layer from v (see Folded).
func (m *Model) Fold(b *autodiff.Builder, v Vars) Folded {
	c := int64(m.Config.C)
	part := func(i int64) *autodiff.Value { return b.Slice(v.W1, 0, i*c, (i+1)*c) }
	wq, wkn, wka := part(0), part(1), part(2)
	f := Folded{MQ: b.MatMul(v.P, wq), MKN: b.MatMul(v.P, wkn), MKA: b.MatMul(v.P, wka)}
	f.Bias = b.Add(b.MatMul(b.Reshape(v.PBias, 1, c), b.Add(b.Add(wq, wkn), wka)), v.B1)
	if m.Config.Distances {
		f.WDN = b.Slice(v.W1, 0, 3*c, 3*c+1)
		f.WDA = b.Slice(v.W1, 0, 3*c+1, 3*c+2)
	}
	return f
}

// Products returns x_q·MQ + x_kn·MKN + x_ka·MKA for standardised knowledge
// k (N×H): the first layer without its distance and bias terms.
func (f Folded) Products(b *autodiff.Builder, k Knowledge) *autodiff.Value {
	return b.Add(b.Add(b.MatMul(k.Q, f.MQ), b.MatMul(k.KN, f.MKN)), b.MatMul(k.KA, f.MKA))
}

// Complete adds the distance terms (with Distances; k.DN and k.DA) and
// the bias to products, giving o·W1 + B1.
func (f Folded) Complete(b *autodiff.Builder, products *autodiff.Value, k Knowledge) *autodiff.Value {
	h := products
	if f.WDN != nil {
		h = b.Add(h, b.Add(b.MatMul(k.DN, f.WDN), b.MatMul(k.DA, f.WDA)))
	}
	return b.Add(h, f.Bias)
}

// HeadFromLayer is HeadParts from Ψ's first-layer output h = o·W1 + B1
// (N×H), as Folded computes it.
func (m *Model) HeadFromLayer(b *autodiff.Builder, v Vars, h *autodiff.Value, train bool) (psi, hidden, mean, variance *autodiff.Value) {
	if train {
		hidden, mean, variance = b.BatchNormTrain(h, v.Gamma, v.Beta, m.Config.BNEps)
	} else {
		hidden = b.BatchNormEval(h, v.Gamma, v.Beta, v.RunMean, v.RunVar, m.Config.BNEps)
	}
	return b.MatMul(b.LeakyRelu(hidden, m.Config.Slope), v.W2), hidden, mean, variance
}

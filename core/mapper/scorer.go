package mapper

import (
	"context"
	"fmt"
	"math"

	gmat "gonum.org/v1/gonum/mat"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

// ScoreBatch is the number of patches Score sends to ONNX Runtime at once.
const ScoreBatch = 8192

// Scorer runs a model's inference graph (BatchNorm with running
// statistics). It is not safe for concurrent use.
type Scorer struct {
	cfg     Config
	session *ort.Session
}

// InferenceGraph builds the model's inference graph: inputs q, kn, ka
// (N×C) and, with Distances, dn and da (N); output "score" (N) = −Ψ(o).
//
// Ψ's first layer is linear in o, o's parts are linear in the inputs, and
// BatchNorm at inference is a per-unit affine map, so the graph applies
// them as one folded affine map:
//
//	z = q·A + kn·B + ka·D (+ dn·e + da·f) + c0
//
// with A = s_q·P·W1_q·g, B = s_k·P·W1_n·g, D = s_k·P·W1_a·g (C×H each, W1_x
// the rows of W1 fed by that part of o, g = γ/√(var+ε) per unit) and c0
// collecting the biases, the standardisation's offsets and BatchNorm's
// shift. That is 3·C·H multiply-adds per patch instead of 3·C² + (3C+2)·H
// (4× fewer at C = 768, H = 256); the products are formed in float64 once
// here. Then LeakyReLU, W2 and the sign, as in training.
func (m *Model) InferenceGraph() (*onnxgraph.Graph, []string, error) {
	if err := m.check(); err != nil {
		return nil, nil, err
	}
	f := m.folded()
	c, h := int64(m.Config.C), int64(m.Config.Hidden)
	g := onnxgraph.New("dmad_mapper")
	q, kn, ka := g.Input("q", onnxgraph.Float, -1, c), g.Input("kn", onnxgraph.Float, -1, c), g.Input("ka", onnxgraph.Float, -1, c)
	inputs := []string{"q", "kn", "ka"}
	z := g.Op("Add", []string{g.Op("MatMul", []string{q, g.Const("a", f.a, c, h)}), g.Op("MatMul", []string{kn, g.Const("b", f.b, c, h)})})
	z = g.Op("Add", []string{z, g.Op("MatMul", []string{ka, g.Const("d", f.d, c, h)})})
	return g, append(inputs, m.finishHead(g, z, f)...), nil
}

// finishHead completes an inference graph from z, the folded first layer's
// input terms (N×H): with Distances it adds the inputs dn and da (returned)
// and their terms, then c0, LeakyReLU, W2 and the sign into the output
// "score" (N).
func (m *Model) finishHead(g *onnxgraph.Graph, z string, f foldedHead) (inputs []string) {
	h := int64(m.Config.Hidden)
	if m.Config.Distances {
		dn, da := g.Input("dn", onnxgraph.Float, -1), g.Input("da", onnxgraph.Float, -1)
		inputs = []string{"dn", "da"}
		col := func(v string) string { return g.Op("Reshape", []string{v, g.Ints(-1, 1)}) }
		z = g.Op("Add", []string{z, g.Op("Mul", []string{col(dn), g.Const("e", f.e, 1, h)})})
		z = g.Op("Add", []string{z, g.Op("Mul", []string{col(da), g.Const("f", f.f, 1, h)})})
	}
	z = g.Op("Add", []string{z, g.Const("c0", f.c0, 1, h)})
	act := g.Op("LeakyRelu", []string{z}, onnxgraph.AttrFloat("alpha", m.Config.Slope))
	psi := g.Op("MatMul", []string{act, g.Const("w2", m.W2, h, 1)})
	g.OpTo("score", "Neg", []string{g.Op("Reshape", []string{psi, g.Ints(-1)})})
	g.Output("score", onnxgraph.Float, -1)
	return inputs
}

// newScoreSession compiles an inference graph whose output is "score".
func newScoreSession(rt *ort.Runtime, g *onnxgraph.Graph, inputs []string) (*ort.Session, error) {
	model, err := g.Marshal()
	if err != nil {
		return nil, err
	}
	return rt.NewSession(model, inputs, []string{"score"})
}

// runBatches runs sess over n patches, ScoreBatch at a time, and returns
// the scores: inputs gives a batch's leading tensors, and with distances
// set the batch's dn and da follow them. ctx is checked between batches.
func runBatches(ctx context.Context, sess *ort.Session, n int, distances bool, dn, da []float32, inputs func(from, to int) ([]ort.Tensor, error)) ([]float32, error) {
	out := make([]float32, 0, n)
	for from := 0; from < n; from += ScoreBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		to := min(from+ScoreBatch, n)
		in, err := inputs(from, to)
		if err != nil {
			return nil, err
		}
		if distances {
			rows := int64(to - from)
			in = append(in, ort.F32Tensor(dn[from:to], rows), ort.F32Tensor(da[from:to], rows))
		}
		res, err := sess.Run(in...)
		if err != nil {
			return nil, fmt.Errorf("mapper score patches %d–%d: %w", from, to, err)
		}
		out = append(out, res[0].F32...)
	}
	return out, nil
}

// foldedHead is Ψ's first layer and BatchNorm folded with the projection
// and the standardisation (see InferenceGraph).
type foldedHead struct {
	a, b, d []float32 // C×H
	e, f    []float32 // H (with Distances)
	c0      []float32 // H
}

func (m *Model) folded() foldedHead {
	c, h := m.Config.C, m.Config.Hidden
	s := m.Std
	gain := make([]float64, h) // BatchNorm's scale per unit
	for u := range h {
		gain[u] = float64(m.Gamma[u]) / math.Sqrt(float64(m.RunVar[u])+float64(m.Config.BNEps))
	}
	toDense := func(x []float32, r, cols int) *gmat.Dense {
		d := make([]float64, len(x))
		for i, v := range x {
			d[i] = float64(v)
		}
		return gmat.NewDense(r, cols, d)
	}
	p := toDense(m.P.RawData(), c, c)
	w1 := m.W1.RawData()
	// c0 = BatchNorm(B1 + pb·(W1_q + W1_n + W1_a) − s_q·μ·P·W1_q − dm·s_d·(w_dn + w_da)).
	bias := make([]float64, h)
	for u := range h {
		bias[u] = float64(m.B1[u])
	}
	part := func(k int, scale float64) []float32 {
		wk := toDense(w1[k*c*h:(k+1)*c*h], c, h)
		var pw gmat.Dense
		pw.Mul(p, wk)
		for u := range h {
			var pb float64
			for j := range c {
				pb += float64(m.PBias[j]) * wk.At(j, u)
			}
			bias[u] += pb
			if k == 0 { // q is centred by μ before scaling
				var mu float64
				for j := range c {
					mu += float64(s.QMean[j]) * pw.At(j, u)
				}
				bias[u] -= scale * mu
			}
		}
		out := make([]float32, c*h)
		for j := range c {
			for u := range h {
				out[j*h+u] = float32(scale * pw.At(j, u) * gain[u])
			}
		}
		return out
	}
	var fh foldedHead
	fh.a = part(0, float64(s.QScale))
	fh.b = part(1, float64(s.KScale))
	fh.d = part(2, float64(s.KScale))
	if m.Config.Distances {
		fh.e, fh.f = make([]float32, h), make([]float32, h)
		ds, dm := float64(s.DScale), float64(s.DMean)
		for u := range h {
			wdn, wda := float64(w1[3*c*h+u]), float64(w1[(3*c+1)*h+u])
			fh.e[u] = float32(ds * wdn * gain[u])
			fh.f[u] = float32(ds * wda * gain[u])
			bias[u] -= dm * ds * (wdn + wda)
		}
	}
	fh.c0 = make([]float32, h)
	for u := range h {
		fh.c0[u] = float32((bias[u]-float64(m.RunMean[u]))*gain[u] + float64(m.Beta[u]))
	}
	return fh
}

// NewScorer compiles the model's inference graph on rt.
func NewScorer(rt *ort.Runtime, m *Model) (*Scorer, error) {
	g, inputs, err := m.InferenceGraph()
	if err != nil {
		return nil, err
	}
	s, err := newScoreSession(rt, g, inputs)
	if err != nil {
		return nil, fmt.Errorf("mapper scorer: %w", err)
	}
	return &Scorer{cfg: m.Config, session: s}, nil
}

// Score returns the anomaly score S = −Ψ(o) of every patch (row) of q with
// its residuals kn, ka and (with Distances) distances dn, da; without
// Distances dn and da may be nil. Work is batched; ctx is checked between
// batches.
func (s *Scorer) Score(ctx context.Context, q, kn, ka *mat.Matrix, dn, da []float32) ([]float32, error) {
	n, c := q.Rows(), s.cfg.C
	for name, x := range map[string]*mat.Matrix{"q": q, "k·n": kn, "k·a": ka} {
		if x.Cols() != c || x.Rows() != n {
			return nil, fmt.Errorf("mapper score: %s is %d×%d, want %d×%d", name, x.Rows(), x.Cols(), n, c)
		}
	}
	if s.cfg.Distances && (len(dn) != n || len(da) != n) {
		return nil, fmt.Errorf("mapper score: %d and %d distances for %d patches", len(dn), len(da), n)
	}
	return runBatches(ctx, s.session, n, s.cfg.Distances, dn, da, func(from, to int) ([]ort.Tensor, error) {
		rows := int64(to - from)
		return []ort.Tensor{
			ort.F32Tensor(q.Slice(from, to).RawData(), rows, int64(c)),
			ort.F32Tensor(kn.Slice(from, to).RawData(), rows, int64(c)),
			ort.F32Tensor(ka.Slice(from, to).RawData(), rows, int64(c)),
		}, nil
	})
}

// Close frees the session.
func (s *Scorer) Close() error { return s.session.Close() }

// check verifies that every tensor has the size the config implies.
func (m *Model) check() error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if m.P == nil || m.W1 == nil {
		return fmt.Errorf("mapper model: projection or first layer missing")
	}
	h := m.Config.Hidden
	for _, p := range m.Params() {
		want := int64(1)
		for _, d := range p.Dims {
			want *= d
		}
		if int64(len(p.Data)) != want {
			return fmt.Errorf("mapper model: tensor %s has %d values, want %d", p.Name, len(p.Data), want)
		}
	}
	if len(m.RunMean) != h || len(m.RunVar) != h {
		return fmt.Errorf("mapper model: running statistics have %d and %d values, want %d", len(m.RunMean), len(m.RunVar), h)
	}
	if len(m.Std.QMean) != m.Config.C {
		return fmt.Errorf("mapper model: standardisation mean has %d values, want %d", len(m.Std.QMean), m.Config.C)
	}
	return nil
}

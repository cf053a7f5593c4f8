package mapper

import (
	"context"
	"fmt"

	"github.com/dmad/workstation/core/autodiff"
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
	inputs  []string
}

// InferenceGraph builds the model's inference graph: inputs q, kn, ka
// (N×C) and, with Distances, dn and da (N); output "score" (N) = −Ψ(o).
// The model's tensors are baked in as initializers.
func (m *Model) InferenceGraph() (*onnxgraph.Graph, []string, error) {
	if err := m.check(); err != nil {
		return nil, nil, err
	}
	g := onnxgraph.New("dmad_mapper")
	b := autodiff.New(g)
	c := int64(m.Config.C)
	k := Knowledge{Q: b.Input("q", -1, c), KN: b.Input("kn", -1, c), KA: b.Input("ka", -1, c)}
	inputs := []string{"q", "kn", "ka"}
	if m.Config.Distances {
		dn, da := b.Input("dn", -1), b.Input("da", -1)
		k.DN, k.DA = b.Reshape(dn, -1, 1), b.Reshape(da, -1, 1)
		inputs = append(inputs, "dn", "da")
	}
	v := m.ConstVars(b)
	psi, _, _ := m.Head(b, v, m.Embed(b, v, m.Standardize(b, k)), false)
	g.OpTo("score", "Neg", []string{b.Reshape(psi, -1).Name})
	g.Output("score", onnxgraph.Float, -1)
	return g, inputs, nil
}

// NewScorer compiles the model's inference graph on rt.
func NewScorer(rt *ort.Runtime, m *Model) (*Scorer, error) {
	g, inputs, err := m.InferenceGraph()
	if err != nil {
		return nil, err
	}
	model, err := g.Marshal()
	if err != nil {
		return nil, err
	}
	s, err := rt.NewSession(model, inputs, []string{"score"})
	if err != nil {
		return nil, fmt.Errorf("mapper scorer: %w", err)
	}
	return &Scorer{cfg: m.Config, session: s, inputs: inputs}, nil
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
	out := make([]float32, 0, n)
	for from := 0; from < n; from += ScoreBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		to := min(from+ScoreBatch, n)
		rows := int64(to - from)
		in := []ort.Tensor{
			ort.F32Tensor(q.Slice(from, to).RawData(), rows, int64(c)),
			ort.F32Tensor(kn.Slice(from, to).RawData(), rows, int64(c)),
			ort.F32Tensor(ka.Slice(from, to).RawData(), rows, int64(c)),
		}
		if s.cfg.Distances {
			in = append(in, ort.F32Tensor(dn[from:to], rows), ort.F32Tensor(da[from:to], rows))
		}
		res, err := s.session.Run(in...)
		if err != nil {
			return nil, fmt.Errorf("mapper score patches %d–%d: %w", from, to, err)
		}
		out = append(out, res[0].F32...)
	}
	return out, nil
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

package mapper

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

// Neighbours describe one bank's side of the knowledge of N patches, as
// weights on bank rows: k·x = s·q − Σ_j Coef[i·K+j]·bank[Idx[i·K+j]] with
// s = Σ_j Coef (1 for distance knowledge, q − n; 2 for attention
// knowledge, q − n + Σ w_j (q − b_j)). Idx −1 marks an unused slot.
type Neighbours struct {
	K    int
	Idx  []int64
	Coef []float32
}

// BankScorer scores patches from their neighbours instead of their
// residuals. The folded first layer (see InferenceGraph) is linear in k·n
// and k·a, so with the residuals written as above
//
//	k·n·B + k·a·D = s·q·(B + D) − Σ_j c_j·(bank_n·B)[n_j] − Σ_j c'_j·(bank_a·D)[a_j]
//
// and the bank tables bank_n·B and bank_a·D (R×H) are computed once: a
// patch then costs one C×H product and a few H-long sums instead of three
// C×H products and the two C-long residuals. It is not safe for concurrent
// use.
type BankScorer struct {
	cfg            Config
	session        *ort.Session
	tableN, tableA *mat.Matrix // R×H
}

// NewBankScorer prepares scoring with m against the normal and anomaly
// banks (R×C each); attention says whether the neighbours' coefficients
// sum to 2 (attention knowledge) or 1.
func NewBankScorer(rt *ort.Runtime, m *Model, normal, anomaly *mat.Matrix, attention bool) (*BankScorer, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	c, h := m.Config.C, m.Config.Hidden
	for name, b := range map[string]*mat.Matrix{"normal": normal, "anomaly": anomaly} {
		if b == nil || b.Rows() == 0 || b.Cols() != c {
			return nil, fmt.Errorf("mapper bank scorer: the %s bank is not R×%d", name, c)
		}
	}
	f := m.folded()
	tn, err := bankTable(rt, normal, f.b, c, h)
	if err != nil {
		return nil, fmt.Errorf("mapper bank scorer: normal bank table: %w", err)
	}
	ta, err := bankTable(rt, anomaly, f.d, c, h)
	if err != nil {
		return nil, fmt.Errorf("mapper bank scorer: anomaly bank table: %w", err)
	}
	s := float32(1)
	if attention {
		s = 2
	}
	wq := make([]float32, c*h)
	for i := range wq {
		wq[i] = f.a[i] + s*(f.b[i]+f.d[i])
	}
	g := onnxgraph.New("dmad_mapper_banks")
	q := g.Input("q", onnxgraph.Float, -1, int64(c))
	gathered := g.Input("g", onnxgraph.Float, -1, int64(h))
	z := g.Op("Sub", []string{g.Op("MatMul", []string{q, g.Const("wq", wq, int64(c), int64(h))}), gathered})
	inputs := append([]string{"q", "g"}, m.finishHead(g, z, f)...)
	sess, err := newScoreSession(rt, g, inputs)
	if err != nil {
		return nil, fmt.Errorf("mapper bank scorer: %w", err)
	}
	return &BankScorer{cfg: m.Config, session: sess, tableN: tn, tableA: ta}, nil
}

// bankTable returns bank·w (R×h) for w (c×h), on ONNX Runtime.
func bankTable(rt *ort.Runtime, bank *mat.Matrix, w []float32, c, h int) (*mat.Matrix, error) {
	g := onnxgraph.New("bank_table")
	in := g.Input("bank", onnxgraph.Float, -1, int64(c))
	out := g.Op("MatMul", []string{in, g.Const("w", w, int64(c), int64(h))})
	g.Output(out, onnxgraph.Float, -1, int64(h))
	model, err := g.Marshal()
	if err != nil {
		return nil, err
	}
	sess, err := rt.NewSession(model, []string{in}, []string{out})
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	t := mat.New(bank.Rows(), h)
	const block = 8192
	for lo := 0; lo < bank.Rows(); lo += block {
		hi := min(lo+block, bank.Rows())
		res, err := sess.Run(ort.F32Tensor(bank.Slice(lo, hi).RawData(), int64(hi-lo), int64(c)))
		if err != nil {
			return nil, err
		}
		copy(t.RawData()[lo*h:], res[0].F32)
	}
	return t, nil
}

// Score returns the anomaly score S = −Ψ(o) of every patch (row) of q from
// its neighbours in both banks and (with Distances) its distances to the
// nearest entries. Work is batched; ctx is checked between batches.
func (s *BankScorer) Score(ctx context.Context, q *mat.Matrix, normal, anomaly Neighbours, dn, da []float32) ([]float32, error) {
	n, c, h := q.Rows(), s.cfg.C, s.cfg.Hidden
	if q.Cols() != c {
		return nil, fmt.Errorf("mapper score: q is %d×%d, want %d columns", q.Rows(), q.Cols(), c)
	}
	for name, nb := range map[string]Neighbours{"normal": normal, "anomaly": anomaly} {
		if nb.K < 1 || len(nb.Idx) != n*nb.K || len(nb.Coef) != len(nb.Idx) {
			return nil, fmt.Errorf("mapper score: %s neighbours of %d slots for %d patches", name, len(nb.Idx), n)
		}
	}
	if s.cfg.Distances && (len(dn) != n || len(da) != n) {
		return nil, fmt.Errorf("mapper score: %d and %d distances for %d patches", len(dn), len(da), n)
	}
	gathered := make([]float32, min(n, ScoreBatch)*h)
	return runBatches(ctx, s.session, n, s.cfg.Distances, dn, da, func(from, to int) ([]ort.Tensor, error) {
		rows := int64(to - from)
		g := gathered[:(to-from)*h]
		if err := s.gather(g, from, to, normal, anomaly); err != nil {
			return nil, err
		}
		return []ort.Tensor{
			ort.F32Tensor(q.Slice(from, to).RawData(), rows, int64(c)),
			ort.F32Tensor(g, rows, int64(h)),
		}, nil
	})
}

// gather writes Σ_j c_j·tableN[n_j] + Σ_j c'_j·tableA[a_j] for patches
// [from, to) into g, the rows split over the cores.
func (s *BankScorer) gather(g []float32, from, to int, normal, anomaly Neighbours) error {
	h := s.cfg.Hidden
	workers := min(runtime.GOMAXPROCS(0), max(1, (to-from)/256))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	per := (to - from + workers - 1) / workers
	for w := range workers {
		lo, hi := from+w*per, min(to, from+(w+1)*per)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := lo; r < hi; r++ {
				dst := g[(r-from)*h : (r-from+1)*h]
				clear(dst)
				for _, side := range []struct {
					nb Neighbours
					t  *mat.Matrix
				}{{normal, s.tableN}, {anomaly, s.tableA}} {
					for j := range side.nb.K {
						i, cf := side.nb.Idx[r*side.nb.K+j], side.nb.Coef[r*side.nb.K+j]
						if i < 0 || cf == 0 {
							continue
						}
						if i >= int64(side.t.Rows()) {
							errs[w] = fmt.Errorf("mapper score: patch %d's neighbour %d is outside a bank of %d rows", r, i, side.t.Rows())
							return
						}
						for u, v := range side.t.Row(int(i)) {
							dst[u] += cf * v
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Close frees the session.
func (s *BankScorer) Close() error { return s.session.Close() }

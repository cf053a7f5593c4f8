package banks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

// GEMMComparison is exact search's throughput against the machine's GEMM
// peak on the same product shape (queries × C · C × bank rows), in GFLOP/s
// of that product.
type GEMMComparison struct {
	GEMMGFLOPS  float64 `json:"gemm_gflops"`
	ExactGFLOPS float64 `json:"exact_gflops"`
	// Ratio is ExactGFLOPS / GEMMGFLOPS.
	Ratio float64 `json:"ratio"`
	// ExactQueriesPerS is the exact search's query rate in the best run.
	ExactQueriesPerS float64 `json:"exact_queries_per_s"`
	Queries          int     `json:"queries"`
	BankRows         int     `json:"bank_rows"`
}

// CompareGEMM measures exact search (k = 1) of q in bank against a bare
// MatMul of its distance product, both on rt, alternating repeats times
// and keeping each one's fastest run: on a shared machine the
// least-disturbed runs are the fairest peak and the fairest comparison
// with it (BenchmarkSearchModes and `workstation bench` use it).
func CompareGEMM(ctx context.Context, rt *ort.Runtime, bank, q *mat.Matrix, repeats int) (GEMMComparison, error) {
	if bank == nil || q == nil || bank.Rows() == 0 || q.Rows() == 0 || bank.Cols() != q.Cols() {
		return GEMMComparison{}, errors.New("compare with GEMM: need a bank and queries of the same dimension")
	}
	repeats = max(1, repeats)
	exact, err := NewSearcher(rt, bank, SearchOptions{})
	if err != nil {
		return GEMMComparison{}, fmt.Errorf("compare with GEMM: %w", err)
	}
	defer exact.Close()
	sess, err := newGEMMSession(rt, bank)
	if err != nil {
		return GEMMComparison{}, fmt.Errorf("compare with GEMM: %w", err)
	}
	defer sess.Close()
	in := ort.F32Tensor(q.RawData(), int64(q.Rows()), int64(q.Cols()))
	// One untimed run of each: sessions allocate on their first run.
	if _, err := sess.Run(in); err != nil {
		return GEMMComparison{}, fmt.Errorf("compare with GEMM: %w", err)
	}
	if _, _, err := exact.Search(ctx, q, 1); err != nil {
		return GEMMComparison{}, fmt.Errorf("compare with GEMM: %w", err)
	}
	bestGemm, bestExact := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range repeats {
		if err := ctx.Err(); err != nil {
			return GEMMComparison{}, err
		}
		t0 := time.Now()
		if _, err := sess.Run(in); err != nil {
			return GEMMComparison{}, fmt.Errorf("compare with GEMM: %w", err)
		}
		t1 := time.Now()
		if _, _, err := exact.Search(ctx, q, 1); err != nil {
			return GEMMComparison{}, fmt.Errorf("compare with GEMM: %w", err)
		}
		bestGemm, bestExact = min(bestGemm, t1.Sub(t0)), min(bestExact, time.Since(t1))
	}
	flop := 2 * float64(q.Rows()) * float64(bank.Rows()) * float64(bank.Cols())
	c := GEMMComparison{GEMMGFLOPS: flop / bestGemm.Seconds() / 1e9, ExactGFLOPS: flop / bestExact.Seconds() / 1e9,
		ExactQueriesPerS: float64(q.Rows()) / bestExact.Seconds(), Queries: q.Rows(), BankRows: bank.Rows()}
	c.Ratio = c.ExactGFLOPS / c.GEMMGFLOPS
	return c, nil
}

// newGEMMSession is a bare q·Bᵀ MatMul with Bᵀ (C×rows) as an
// initializer: the distance product of the search without anything around
// it.
func newGEMMSession(rt *ort.Runtime, bank *mat.Matrix) (*ort.Session, error) {
	bt := make([]float32, bank.Rows()*bank.Cols())
	for r := range bank.Rows() {
		for c, v := range bank.Row(r) {
			bt[c*bank.Rows()+r] = v
		}
	}
	g := onnxgraph.New("gemm")
	x := g.Input("q", onnxgraph.Float, -1, int64(bank.Cols()))
	y := g.OpTo("y", "MatMul", []string{x, g.Const("bt", bt, int64(bank.Cols()), int64(bank.Rows()))})
	g.Output(y, onnxgraph.Float)
	model, err := g.Marshal()
	if err != nil {
		return nil, err
	}
	return rt.NewSession(model, []string{x}, []string{y})
}

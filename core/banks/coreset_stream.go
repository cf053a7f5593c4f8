package banks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand"
	"runtime"
	"sort"
	"time"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
	gmat "gonum.org/v1/gonum/mat"
)

// RowSource is a feature matrix read in blocks of rows, so that it never has
// to be in memory whole (features streamed from a cache on disk).
type RowSource interface {
	// Rows and Cols are the matrix's dimensions.
	Rows() int
	Cols() int
	// Each calls fn with consecutive blocks of rows, in order, from row 0
	// to Rows(); lo is the index of the block's first row. The block is
	// only valid during the call. An error from fn stops the pass.
	Each(ctx context.Context, fn func(lo int, block *mat.Matrix) error) error
}

// MatrixSource is a RowSource over a matrix in memory, in blocks of
// BlockRows rows (0: 8192).
type MatrixSource struct {
	M         *mat.Matrix
	BlockRows int
}

// Rows returns the matrix's rows.
func (s MatrixSource) Rows() int { return s.M.Rows() }

// Cols returns the matrix's columns.
func (s MatrixSource) Cols() int { return s.M.Cols() }

// Each hands out the matrix in slices of BlockRows rows.
func (s MatrixSource) Each(ctx context.Context, fn func(lo int, block *mat.Matrix) error) error {
	step := s.BlockRows
	if step <= 0 {
		step = 8192
	}
	for lo := 0; lo < s.M.Rows(); lo += step {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(lo, s.M.Slice(lo, min(lo+step, s.M.Rows()))); err != nil {
			return err
		}
	}
	return nil
}

// CoresetSource is [Coreset] over features read from src in blocks: only
// the N×ProjDim projection is held (plus the selection's int16 copies of
// it), never the N×C features, so its memory is about 2·N·ProjDim·4 bytes
// whatever C is (0.8 GB for 760k patches at 128 dims instead of 2.3 GB of
// features and their concatenation). src is read once; fetch the kept rows
// with [GatherRows]. The projection is the same as Coreset's (one random
// Gaussian matrix rotated to the principal axes of a sample of projected
// rows); here the rotation is applied to the projected rows instead of the
// projection matrix, which changes no distance but float32 rounding.
//
// A negative ProjDim, or one not smaller than src.Cols(), selects on the
// features themselves and so holds them all, unless MaxPoints bounds them.
//
// With MaxPoints > 0 and more rows than that, memory stays bounded
// whatever the source's size (a composable coreset): the rows are taken in
// consecutive parts of MaxPoints/3 rows, each part's projection is reduced
// by the same greedy selection to twice its share of n, and the greedy
// selection over the union of those picks gives the n indices. The
// result covers the features about as well (k-center coresets compose
// within a factor of 2; on the tests the cover radius stays within a few
// per cent) but is not the same selection as the single-stage one.
func CoresetSource(ctx context.Context, src RowSource, n int, opts CoresetOptions) ([]int, error) {
	if src == nil {
		return nil, errors.New("coreset: no features")
	}
	N := src.Rows()
	if all, done, err := coresetOfAll(N, n); done {
		return all, err
	}
	if opts.ProjDim == 0 {
		opts.ProjDim = 128
	}
	if opts.MaxPoints > 0 && N > opts.MaxPoints {
		return coresetTwoStage(ctx, src, n, opts)
	}
	if opts.ProjDim <= 0 || opts.ProjDim >= src.Cols() {
		all := mat.WithCapacity(N, src.Cols())
		if err := src.Each(ctx, func(_ int, b *mat.Matrix) error { all.AppendRows(b); return nil }); err != nil {
			return nil, fmt.Errorf("coreset: read features: %w", err)
		}
		return Coreset(ctx, all, n, opts)
	}
	if opts.Start <= 0 {
		opts.Start = 10
	}
	opts.Start = min(opts.Start, N)
	if opts.Workers <= 0 {
		opts.Workers = runtime.NumCPU()
	}
	rng := rand.New(rand.NewSource(opts.Seed))
	t := time.Now()
	pts, err := ProjectSource(ctx, src, opts.ProjDim, rng, opts.Workers, opts.Runtime)
	if err != nil {
		return nil, fmt.Errorf("coreset: %w", err)
	}
	slog.Info("coreset stage", "stage", "read and project", "rows", N, "s", time.Since(t).Seconds())
	t = time.Now()
	idx, err := selectCoreset(ctx, pts, n, rng, opts)
	slog.Info("coreset stage", "stage", "greedy selection", "kept", n, "s", time.Since(t).Seconds())
	return idx, err
}

// ProjectSource is [Project] over a RowSource: the rows are projected block
// by block with the random Gaussian matrix (drawn from rng exactly as
// Project draws it), then rotated in place to the principal axes of the
// same sample of rows Project uses.
func ProjectSource(ctx context.Context, src RowSource, dim int, rng *rand.Rand, workers int, rt *ort.Runtime) (*mat.Matrix, error) {
	C, N := src.Cols(), src.Rows()
	w := make([]float32, C*dim)
	s := 1 / math.Sqrt(float64(dim))
	for i := range w {
		w[i] = float32(rng.NormFloat64() * s)
	}
	var sample []int
	if N > pcaSample {
		sample = rng.Perm(N)[:pcaSample]
	}
	out := mat.New(N, dim)
	proj, closeProj, err := newProjector(rt, w, C, dim, workers)
	if err != nil {
		return nil, fmt.Errorf("project %d×%d to %d dims: %w", N, C, dim, err)
	}
	defer closeProj()
	seen := 0
	err = src.Each(ctx, func(lo int, b *mat.Matrix) error {
		if b.Cols() != C || lo != seen || lo+b.Rows() > N {
			return fmt.Errorf("block of %d×%d at row %d does not continue a %d×%d source at row %d", b.Rows(), b.Cols(), lo, N, C, seen)
		}
		seen += b.Rows()
		return proj(ctx, b, out.Slice(lo, lo+b.Rows()))
	})
	if err == nil && seen != N {
		err = fmt.Errorf("source gave %d of its %d rows", seen, N)
	}
	if err != nil {
		return nil, fmt.Errorf("project %d×%d to %d dims: %w", N, C, dim, err)
	}
	ps := out
	if sample != nil {
		ps = out.Gather(sample)
	}
	v, ok := rotationOf(ps, dim)
	if !ok {
		return out, nil // no rotation: distances are the same either way
	}
	err = parallelFor(ctx, N, workers, 1024, func(lo, hi, _ int) {
		tmp := make([]float32, dim)
		for r := lo; r < hi; r++ {
			row := out.Row(r)
			clear(tmp)
			for t, x := range row {
				axpy(tmp, v[t*dim:(t+1)*dim], x)
			}
			copy(row, tmp)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// newProjector returns a function writing block·w into out (block rows ×
// dim), on ONNX Runtime when rt is set (one session for every block).
func newProjector(rt *ort.Runtime, w []float32, C, dim, workers int) (func(context.Context, *mat.Matrix, *mat.Matrix) error, func(), error) {
	if rt == nil {
		return func(ctx context.Context, b, out *mat.Matrix) error {
			p, err := projectGo(ctx, b, w, dim, workers)
			if err != nil {
				return err
			}
			copy(out.RawData(), p.RawData())
			return nil
		}, func() {}, nil
	}
	g := onnxgraph.New("projection")
	x := g.Input("x", onnxgraph.Float, -1, int64(C))
	y := g.OpTo("y", "MatMul", []string{x, g.Const("w", w, int64(C), int64(dim))})
	g.Output(y, onnxgraph.Float)
	model, err := g.Marshal()
	if err != nil {
		return nil, nil, err
	}
	s, err := rt.NewSession(model, []string{"x"}, []string{"y"})
	if err != nil {
		return nil, nil, fmt.Errorf("on ONNX Runtime: %w", err)
	}
	return func(ctx context.Context, b, out *mat.Matrix) error {
		const block = 8192
		for lo := 0; lo < b.Rows(); lo += block {
			if err := ctx.Err(); err != nil {
				return err
			}
			hi := min(lo+block, b.Rows())
			res, err := s.Run(ort.F32Tensor(b.Slice(lo, hi).RawData(), int64(hi-lo), int64(C)))
			if err != nil {
				return fmt.Errorf("on ONNX Runtime, rows %d–%d: %w", lo, hi, err)
			}
			copy(out.Slice(lo, hi).RawData(), res[0].F32)
		}
		return nil
	}, func() { s.Close() }, nil
}

// rotationOf returns V (dim×dim, row-major; column j is the j-th
// principal axis of the rows of ps, largest variance first), or false when
// the eigen-decomposition fails.
func rotationOf(ps *mat.Matrix, dim int) ([]float32, bool) {
	vecs, order, ok := principalBasis(ps, dim)
	if !ok {
		return nil, false
	}
	v := make([]float32, dim*dim)
	for t := range dim {
		for j, col := range order {
			v[t*dim+j] = float32(vecs.At(t, col))
		}
	}
	return v, true
}

// principalBasis returns the eigenvectors of the covariance of the rows of
// ps and the order of their eigenvalues, largest first.
func principalBasis(ps *mat.Matrix, dim int) (*gmat.Dense, []int, bool) {
	mean := make([]float64, dim)
	for r := range ps.Rows() {
		for j, v := range ps.Row(r) {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(ps.Rows())
	}
	cov := make([]float64, dim*dim)
	x := make([]float64, dim)
	for r := range ps.Rows() {
		for j, v := range ps.Row(r) {
			x[j] = float64(v) - mean[j]
		}
		for a := range dim {
			xa := x[a]
			row := cov[a*dim : (a+1)*dim]
			for b := a; b < dim; b++ {
				row[b] += xa * x[b]
			}
		}
	}
	for a := range dim {
		for b := a + 1; b < dim; b++ {
			cov[b*dim+a] = cov[a*dim+b]
		}
	}
	var eig gmat.EigenSym
	if !eig.Factorize(gmat.NewSymDense(dim, cov), true) {
		return nil, nil, false
	}
	vals := eig.Values(nil)
	vecs := &gmat.Dense{}
	eig.VectorsTo(vecs)
	order := make([]int, dim)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	return vecs, order, true
}

// GatherRows reads the rows idx of src (in idx's order; an index may
// repeat) in one pass over src.
func GatherRows(ctx context.Context, src RowSource, idx []int) (*mat.Matrix, error) {
	out := mat.New(len(idx), src.Cols())
	at := make(map[int][]int, len(idx))
	for k, r := range idx {
		if r < 0 || r >= src.Rows() {
			return nil, fmt.Errorf("gather rows: row %d of %d", r, src.Rows())
		}
		at[r] = append(at[r], k)
	}
	err := src.Each(ctx, func(lo int, b *mat.Matrix) error {
		for i := range b.Rows() {
			for _, k := range at[lo+i] {
				copy(out.Row(k), b.Row(i))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gather rows: %w", err)
	}
	return out, nil
}

// BuildNormalBankSource is [BuildNormalBankFrom] over features read from
// src in blocks (source[i] is row i's image id): the coreset selects on the
// projection ([CoresetSource]) and a second pass fetches the kept rows.
func BuildNormalBankSource(ctx context.Context, src RowSource, source []int32, ratio float64, opts CoresetOptions) (*NormalBank, error) {
	if src == nil || src.Rows() == 0 {
		return nil, errors.New("build normal bank: no features")
	}
	if len(source) != src.Rows() {
		return nil, fmt.Errorf("build normal bank: %d source ids for %d patches", len(source), src.Rows())
	}
	if !(ratio > 0) {
		return nil, fmt.Errorf("build normal bank: coreset ratio %v must be positive", ratio)
	}
	n := max(1, int(ratio*float64(src.Rows())))
	idx, err := CoresetSource(ctx, src, n, opts)
	if err != nil {
		return nil, fmt.Errorf("build normal bank from %d patches: %w", src.Rows(), err)
	}
	t := time.Now()
	feats, err := GatherRows(ctx, src, idx)
	if err != nil {
		return nil, fmt.Errorf("build normal bank from %d patches: %w", src.Rows(), err)
	}
	slog.Info("coreset stage", "stage", "gather kept rows", "s", time.Since(t).Seconds())
	b := &NormalBank{Features: feats, Source: make([]int32, len(idx))}
	for i, r := range idx {
		b.Source[i] = source[r]
	}
	return b, nil
}

// coresetTwoStage is CoresetSource over parts of at most MaxPoints/3 rows
// (see there). The projection is not rotated to principal axes (which only
// speeds up the selection): each part would need its own sample.
func coresetTwoStage(ctx context.Context, src RowSource, n int, opts CoresetOptions) ([]int, error) {
	N, C := src.Rows(), src.Cols()
	if opts.Start <= 0 {
		opts.Start = 10
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.NumCPU()
	}
	dim := opts.ProjDim
	var proj func(context.Context, *mat.Matrix, *mat.Matrix) error
	if dim <= 0 || dim >= C {
		dim = C
		proj = func(_ context.Context, b, out *mat.Matrix) error { copy(out.RawData(), b.RawData()); return nil }
	} else {
		rng := rand.New(rand.NewSource(opts.Seed))
		w := make([]float32, C*dim)
		s := 1 / math.Sqrt(float64(dim))
		for i := range w {
			w[i] = float32(rng.NormFloat64() * s)
		}
		p, closeProj, err := newProjector(opts.Runtime, w, C, dim, opts.Workers)
		if err != nil {
			return nil, fmt.Errorf("coreset: project to %d dims: %w", dim, err)
		}
		defer closeProj()
		proj = p
	}
	rng := rand.New(rand.NewSource(opts.Seed + 1))
	partRows := max(1, opts.MaxPoints/3)
	part := mat.WithCapacity(0, dim)
	partLo := 0
	union := mat.WithCapacity(0, dim)
	var unionIdx []int
	const oversample = 2
	// reduce selects the current part's share and empties it.
	reduce := func() error {
		rows := part.Rows()
		if rows == 0 {
			return nil
		}
		k := partShare(rows, N, n, oversample)
		idx, err := selectCoreset(ctx, part, k, rng, CoresetOptions{Start: min(opts.Start, rows), Workers: opts.Workers, PartRows: opts.PartRows})
		if err != nil {
			return err
		}
		for _, i := range idx {
			union.AppendRow(part.Row(i))
			unionIdx = append(unionIdx, partLo+i)
		}
		partLo += rows
		part = mat.WithCapacity(0, dim)
		return nil
	}
	seen := 0
	err := src.Each(ctx, func(lo int, b *mat.Matrix) error {
		if b.Cols() != C || lo != seen {
			return fmt.Errorf("block of %d×%d at row %d does not continue a %d×%d source at row %d", b.Rows(), b.Cols(), lo, N, C, seen)
		}
		seen += b.Rows()
		pb := mat.New(b.Rows(), dim)
		if err := proj(ctx, b, pb); err != nil {
			return err
		}
		for r := 0; r < pb.Rows(); {
			take := min(pb.Rows()-r, partRows-part.Rows())
			part.AppendRows(pb.Slice(r, r+take))
			r += take
			if part.Rows() == partRows {
				if err := reduce(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil && seen != N {
		err = fmt.Errorf("source gave %d of its %d rows", seen, N)
	}
	if err == nil {
		err = reduce()
	}
	if err != nil {
		return nil, fmt.Errorf("coreset of %d rows in parts of %d: %w", N, partRows, err)
	}
	if n >= union.Rows() {
		return unionIdx, nil
	}
	opts.Start = min(opts.Start, union.Rows())
	idx, err := selectCoreset(ctx, union, n, rng, opts)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(idx))
	for i, u := range idx {
		out[i] = unionIdx[u]
	}
	return out, nil
}

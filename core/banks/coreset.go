package banks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
)

// CoresetOptions configure [Coreset]. The zero value gives PatchCore's
// defaults (128-dim projection, 10 random starting points).
type CoresetOptions struct {
	// ProjDim is the dimension of the random Gaussian projection used for the
	// selection; 0 means 128. A negative value, or one not smaller than the
	// feature dimension, selects on the features themselves.
	ProjDim int
	// Start is the number of random starting points whose mean distance
	// initialises every point's distance (PatchCore); 0 means 10.
	Start int
	// Seed seeds the projection and the starting points.
	Seed int64
	// Workers is the number of goroutines; 0 means runtime.NumCPU().
	Workers int
	// Runtime, when set, runs the projection on ONNX Runtime (one MatMul per
	// block of rows) instead of in Go; it is much faster for large inputs.
	Runtime *ort.Runtime
	// Progress, when set, gets a progress.Bank event as selections complete
	// (about 100 times).
	Progress progress.Func
	// MaxPoints, when > 0, bounds the points [CoresetSource] selects over
	// at once (memory ≈ 12·MaxPoints·ProjDim bytes): a larger source is
	// selected in two stages, see CoresetSource. 0: no bound.
	MaxPoints int
	// PartRows, when > 0, selects over more points than that in two stages
	// (a composable coreset, see selectInParts); 0 selects in one stage.
	// It trades cover for time: on the benchmark's 760,480 patches
	// (BenchmarkCoresetParts, 2 cores) parts of 16,384 cut the selection
	// from 112 s to 33 s and the whole normal bank to 47 s, with about the
	// same cover of the features (of 8,192 sampled, mean distance to the
	// selection −1.5 %, 99th percentile +0.5 %, largest +1.3 %), yet the
	// benchmark lost image AUROC with that bank (PatchCore 0.9820 → 0.9802,
	// DMAD unsupervised 0.9881 → 0.9835), so it is not the default.
	PartRows int

	// oversample is how many times its share of n each part picks in the
	// first stage of a selection in parts (0: CoresetOversample;
	// benchmarks vary it).
	oversample int
	// disablePruning turns the triangle-inequality pruning off (tests and
	// benchmarks compare against it).
	disablePruning bool
	// stats, when set, receives the one-stage selection's counters
	// (benchmarks report them).
	stats *selectStats
}

// selectStats counts a greedy selection's work: members tested (the
// candidate prefixes of the groups the pruning did not skip), float32 rows
// tested among them, and tests in the initial group.
type selectStats struct {
	visited, full, initial int64
}

// Coreset selects n row indices of feats by PatchCore's approximate greedy
// k-center coreset: the rows are projected to ProjDim dimensions by a random
// Gaussian matrix; every point's distance is initialised to its mean
// distance to Start random points (which are not selected themselves), then
// the point farthest from the selection is selected n times, each selection
// lowering the other points' distances. Indices come in selection order.
//
// The distance update is exact but avoids the naive scan of all N points
// per selection: every point belongs to the group of the selected centre it
// is nearest to, and a new centre c can only bring point i closer if
// ‖c − centre(i)‖ < 2·d(i) (triangle inequality), so whole groups whose
// centre is farther than twice their radius are skipped, and within a
// scanned group, points are skipped by the same test and distance sums stop
// early once they exceed the current distance. The work is spread over
// Workers goroutines.
//
// Cost, measured on 2 shared cores: selecting 2 % of 760,480 real
// MobileNetV2 patch features (970 images) from their projection takes 82
// CPU-seconds, 49 s (136 CPU-seconds, 73 s, before the quantized rows and
// the sorted groups; the same selection). The pruning and the
// principal-axes rotation (see [Project]) leave about a quarter of the
// naive N·n tests, nearly all decided by a member's first quantized block;
// what is left waits on memory (see BenchmarkCoresetReal for the whole).
// Memory beyond feats: the N×ProjDim projection, plus an int16 copy of it
// and up to as much again while points move between groups (about 0.5–1 GB
// for 1M points). Set Runtime for large inputs: the
// projection is ~7× faster on ONNX Runtime.
//
// If n ≥ feats.Rows() every index is returned.
func Coreset(ctx context.Context, feats *mat.Matrix, n int, opts CoresetOptions) ([]int, error) {
	if feats == nil {
		return nil, errors.New("coreset: no features")
	}
	N := feats.Rows()
	if all, done, err := coresetOfAll(N, n); done {
		return all, err
	}
	if opts.ProjDim == 0 {
		opts.ProjDim = 128
	}
	if opts.Start <= 0 {
		opts.Start = 10
	}
	if opts.Start > N {
		opts.Start = N
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.NumCPU()
	}
	rng := rand.New(rand.NewSource(opts.Seed))
	var pts *mat.Matrix
	if opts.ProjDim <= 0 || opts.ProjDim >= feats.Cols() {
		pts = feats // the selection only reads its points
	} else {
		var err error
		pts, err = Project(ctx, feats, opts.ProjDim, rng, opts.Workers, opts.Runtime)
		if err != nil {
			return nil, fmt.Errorf("coreset: %w", err)
		}
	}
	return selectCoreset(ctx, pts, n, rng, opts)
}

// CoresetOversample is how many times its share of n each part of the
// two-stage selection picks (see CoresetOptions.PartRows).
const CoresetOversample = 3

// selectCoreset runs the greedy selection of n points on the projected
// points pts (which it only reads), in parts when there are
// more than opts.PartRows of them.
func selectCoreset(ctx context.Context, pts *mat.Matrix, n int, rng *rand.Rand, opts CoresetOptions) ([]int, error) {
	if opts.oversample <= 0 {
		opts.oversample = CoresetOversample
	}
	if partRows := opts.PartRows; partRows > 0 && pts.Rows() > partRows && opts.oversample*n < pts.Rows() {
		return selectInParts(ctx, pts, n, partRows, rng, opts)
	}
	report := func(done int) {
		if opts.Progress != nil {
			opts.Progress(progress.Event{Stage: progress.Bank, Done: done, Total: n})
		}
	}
	return selectGreedy(ctx, pts, n, rng, opts.Start, opts.Workers, !opts.disablePruning, report, opts.stats)
}

// selectGreedy is the greedy k-center selection of n points of pts (which
// it only reads); report gets the count done about 100 times.
func selectGreedy(ctx context.Context, pts *mat.Matrix, n int, rng *rand.Rand, start, workers int, prune bool, report func(done int), stats *selectStats) ([]int, error) {
	k := newKCenter(pts, workers, prune)
	if err := k.init(ctx, sampleDistinct(rng, pts.Rows(), min(start, pts.Rows()))); err != nil {
		return nil, fmt.Errorf("coreset: %w", err)
	}
	out := make([]int, 0, n)
	step := max(1, n/100)
	for len(out) < n {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("coreset: %w", err)
		}
		out = append(out, k.selectNext())
		if len(out)%step == 0 || len(out) == n {
			report(len(out))
		}
	}
	if stats != nil {
		*stats = selectStats{visited: k.visited.Load(), full: k.full.Load(), initial: k.initial.Load()}
	}
	return out, nil
}

// selectInParts is the two-stage selection of a composable coreset: pts is
// cut into consecutive parts of about partRows points; each part selects
// CoresetOversample times its share of n by the greedy selection (parts run
// side by side, one per worker, which also spares the per-selection
// synchronisation of one selection on many workers), and the greedy
// selection over the union of those picks gives the n points. Each part's
// cost grows with its size squared, so the whole falls from about N·n
// distance evaluations to 3·N·n/parts + 3·n². k-center covers compose
// within a factor of 2 of the best cover; on real features the cover stays
// within a few per cent of the one-stage selection's (see PartRows).
func selectInParts(ctx context.Context, pts *mat.Matrix, n, partRows int, rng *rand.Rand, opts CoresetOptions) ([]int, error) {
	N := pts.Rows()
	parts := (N + partRows - 1) / partRows
	type part struct {
		lo, hi, k int
		seed      int64
		picked    []int
	}
	ps := make([]part, parts)
	firstStage := 0
	for i := range ps {
		lo, hi := i*N/parts, (i+1)*N/parts
		k := partShare(hi-lo, N, n, opts.oversample)
		ps[i] = part{lo: lo, hi: hi, k: k, seed: rng.Int63()}
		firstStage += k
	}
	total := firstStage + n
	var mu sync.Mutex
	done := 0
	report := func(add int) {
		if opts.Progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		done += add
		opts.Progress(progress.Event{Stage: progress.Bank, Done: done, Total: total})
	}
	var next atomic.Int64
	errs := make([]error, parts)
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= parts || ctx.Err() != nil {
				return
			}
			p := &ps[i]
			last := 0
			p.picked, errs[i] = selectGreedy(ctx, pts.Slice(p.lo, p.hi), p.k, rand.New(rand.NewSource(p.seed)),
				opts.Start, 1, !opts.disablePruning, func(d int) { report(d - last); last = d }, nil)
		}
	}
	var wg sync.WaitGroup
	for range min(max(1, opts.Workers), parts) {
		wg.Add(1)
		go func() { defer wg.Done(); work() }()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coreset: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	union := mat.WithCapacity(firstStage, pts.Cols())
	unionIdx := make([]int, 0, firstStage)
	for _, p := range ps {
		for _, j := range p.picked {
			union.AppendRow(pts.Row(p.lo + j))
			unionIdx = append(unionIdx, p.lo+j)
		}
	}
	last := 0
	idx, err := selectGreedy(ctx, union, n, rng, opts.Start, opts.Workers, !opts.disablePruning,
		func(d int) { report(d - last); last = d }, nil)
	if err != nil {
		return nil, err
	}
	for i, u := range idx {
		idx[i] = unionIdx[u]
	}
	return idx, nil
}

// partShare is how many of a first stage's picks fall to a part of rows
// of N points when n are selected in all, each part picking oversample
// times its share: at least one, at most rows.
func partShare(rows, N, n, oversample int) int {
	return min(rows, max(1, (oversample*n*rows+N-1)/N))
}

// sampleDistinct returns k distinct indices in [0, n).
func sampleDistinct(rng *rand.Rand, n, k int) []int {
	seen := make(map[int]bool, k)
	out := make([]int, 0, k)
	for len(out) < k {
		i := rng.Intn(n)
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}

// Project multiplies feats by a dim-column random Gaussian matrix with
// entries N(0, 1/dim) (a Johnson–Lindenstrauss projection: distances are
// preserved in expectation). The matrix is then rotated (an orthogonal
// change of basis, which changes no distance) so that the output axes are
// the principal axes of a sample of projected rows, largest variance first:
// partial distance sums then grow fastest and the coreset's early-stopping
// distance test stops sooner. With rt set the product runs on ONNX Runtime.
func Project(ctx context.Context, feats *mat.Matrix, dim int, rng *rand.Rand, workers int, rt *ort.Runtime) (*mat.Matrix, error) {
	C := feats.Cols()
	w := make([]float32, C*dim)
	s := 1 / math.Sqrt(float64(dim))
	for i := range w {
		w[i] = float32(rng.NormFloat64() * s)
	}
	sample := feats
	if feats.Rows() > pcaSample {
		sample = feats.Gather(rng.Perm(feats.Rows())[:pcaSample])
	}
	ps, err := project(ctx, sample, w, dim, workers, rt)
	if err != nil {
		return nil, fmt.Errorf("project %d×%d to %d dims: %w", feats.Rows(), C, dim, err)
	}
	w = rotateToPrincipal(ps, w, C, dim)
	out, err := project(ctx, feats, w, dim, workers, rt)
	if err != nil {
		return nil, fmt.Errorf("project %d×%d to %d dims: %w", feats.Rows(), C, dim, err)
	}
	return out, nil
}

// project multiplies feats by w (C×dim), on ONNX Runtime when rt is set.
func project(ctx context.Context, feats *mat.Matrix, w []float32, dim, workers int, rt *ort.Runtime) (*mat.Matrix, error) {
	if rt == nil {
		return projectGo(ctx, feats, w, dim, workers)
	}
	out := mat.New(feats.Rows(), dim)
	if err := projectORT(ctx, rt, feats, w, dim, out); err != nil {
		return nil, fmt.Errorf("on ONNX Runtime: %w", err)
	}
	return out, nil
}

// pcaSample is the number of rows whose projections set the principal axes.
const pcaSample = 8192

func projectGo(ctx context.Context, feats *mat.Matrix, w []float32, dim, workers int) (*mat.Matrix, error) {
	out := mat.New(feats.Rows(), dim)
	err := parallelFor(ctx, feats.Rows(), workers, 256, func(lo, hi, _ int) {
		for r := lo; r < hi; r++ {
			o := out.Row(r)
			for d, xv := range feats.Row(r) {
				axpy(o, w[d*dim:(d+1)*dim], xv)
			}
		}
	})
	return out, err
}

// rotateToPrincipal returns w·V, V the eigenvectors of the covariance of
// the projected sample ps, in decreasing eigenvalue order.
func rotateToPrincipal(ps *mat.Matrix, w []float32, C, dim int) []float32 {
	vecs, order, ok := principalBasis(ps, dim)
	if !ok {
		return w // no rotation: distances are the same either way
	}
	out := make([]float32, C*dim)
	for c := range C {
		wr := w[c*dim : (c+1)*dim]
		for j, col := range order {
			var acc float64
			for t, wv := range wr {
				acc += float64(wv) * vecs.At(t, col)
			}
			out[c*dim+j] = float32(acc)
		}
	}
	return out
}

func projectORT(ctx context.Context, rt *ort.Runtime, feats *mat.Matrix, w []float32, dim int, out *mat.Matrix) error {
	g := onnxgraph.New("projection")
	x := g.Input("x", onnxgraph.Float, -1, int64(feats.Cols()))
	y := g.OpTo("y", "MatMul", []string{x, g.Const("w", w, int64(feats.Cols()), int64(dim))})
	g.Output(y, onnxgraph.Float)
	model, err := g.Marshal()
	if err != nil {
		return err
	}
	s, err := rt.NewSession(model, []string{"x"}, []string{"y"})
	if err != nil {
		return err
	}
	defer s.Close()
	const block = 8192
	for lo := 0; lo < feats.Rows(); lo += block {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+block, feats.Rows())
		res, err := s.Run(ort.F32Tensor(feats.Slice(lo, hi).RawData(), int64(hi-lo), int64(feats.Cols())))
		if err != nil {
			return fmt.Errorf("rows %d–%d: %w", lo, hi, err)
		}
		copy(out.Slice(lo, hi).RawData(), res[0].F32)
	}
	return nil
}

// sqDist returns ‖a − b‖², stopping early (with a partial sum ≥ bound) once
// the sum reaches bound. Partial sums of squares only grow, so "result <
// bound" is exactly "full distance < bound". The sum is checked every 16
// dimensions; projected points have their largest-variance axes first.
func sqDist(a, b []float32, bound float32) float32 {
	b = b[:len(a)]
	i, s := 0, float32(0)
	if n := len(a) / 16; n > 0 {
		if s = sqDistBlocks(a, b, 0, bound); s >= bound {
			return s
		}
		i = n * 16
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}

// parallelFor runs fn over [0, n) split into contiguous ranges on up to
// workers goroutines (w is the worker number), checking ctx between ranges.
func parallelFor(ctx context.Context, n, workers, minChunk int, fn func(lo, hi, w int)) error {
	if n == 0 {
		return ctx.Err()
	}
	chunk := max(minChunk, (n+workers*8-1)/(workers*8))
	var next atomic.Int64
	var wg sync.WaitGroup
	run := func(w int) {
		for ctx.Err() == nil {
			lo := int(next.Add(int64(chunk)) - int64(chunk))
			if lo >= n {
				return
			}
			fn(lo, min(lo+chunk, n), w)
		}
	}
	workers = min(workers, (n+chunk-1)/chunk)
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); run(w) }()
	}
	run(0)
	wg.Wait()
	return ctx.Err()
}

// coresetOfAll handles the requests that need no selection: no rows or a
// count below 1 (an error), and n ≥ rows (every index). done reports
// whether it answered.
func coresetOfAll(rows, n int) (all []int, done bool, err error) {
	switch {
	case rows == 0:
		return nil, true, errors.New("coreset: no features")
	case n <= 0:
		return nil, true, fmt.Errorf("coreset: asked for %d points", n)
	case n >= rows:
		all = make([]int, rows)
		for i := range all {
			all[i] = i
		}
		return all, true, nil
	}
	return nil, false, nil
}

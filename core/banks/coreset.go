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
	// Progress, when set, is called as selections complete (about 100 times).
	Progress func(done, total int)

	// disablePruning turns the triangle-inequality pruning off (tests and
	// benchmarks compare against it).
	disablePruning bool
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
// If n ≥ feats.Rows every index is returned.
func Coreset(ctx context.Context, feats *mat.Matrix, n int, opts CoresetOptions) ([]int, error) {
	if feats == nil || feats.Rows == 0 {
		return nil, errors.New("coreset: no features")
	}
	if len(feats.Data) != feats.Rows*feats.Cols {
		return nil, fmt.Errorf("coreset: matrix %d×%d holds %d values", feats.Rows, feats.Cols, len(feats.Data))
	}
	if n <= 0 {
		return nil, fmt.Errorf("coreset: asked for %d points", n)
	}
	N := feats.Rows
	if n >= N {
		all := make([]int, N)
		for i := range all {
			all[i] = i
		}
		return all, nil
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
	pts := feats
	if opts.ProjDim > 0 && opts.ProjDim < feats.Cols {
		var err error
		pts, err = Project(ctx, feats, opts.ProjDim, rng, opts.Workers, opts.Runtime)
		if err != nil {
			return nil, fmt.Errorf("coreset: %w", err)
		}
	}
	k := newKCenter(pts, opts.Workers, !opts.disablePruning)
	if err := k.init(ctx, sampleDistinct(rng, N, opts.Start)); err != nil {
		return nil, fmt.Errorf("coreset: %w", err)
	}
	out := make([]int, 0, n)
	step := max(1, n/100)
	for len(out) < n {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("coreset: %w", err)
		}
		out = append(out, k.selectNext())
		if opts.Progress != nil && (len(out)%step == 0 || len(out) == n) {
			opts.Progress(len(out), n)
		}
	}
	return out, nil
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
// preserved in expectation). With rt set the product runs on ONNX Runtime.
func Project(ctx context.Context, feats *mat.Matrix, dim int, rng *rand.Rand, workers int, rt *ort.Runtime) (*mat.Matrix, error) {
	C := feats.Cols
	w := make([]float32, C*dim)
	s := 1 / math.Sqrt(float64(dim))
	for i := range w {
		w[i] = float32(rng.NormFloat64() * s)
	}
	out := mat.New(feats.Rows, dim)
	if rt != nil {
		if err := projectORT(ctx, rt, feats, w, dim, out); err != nil {
			return nil, fmt.Errorf("project %d×%d to %d dims on ONNX Runtime: %w", feats.Rows, C, dim, err)
		}
		return out, nil
	}
	err := parallelFor(ctx, feats.Rows, workers, 256, func(lo, hi, _ int) {
		for r := lo; r < hi; r++ {
			x := feats.Row(r)
			o := out.Row(r)
			for d, xv := range x {
				axpy(o, w[d*dim:(d+1)*dim], xv)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("project %d×%d to %d dims: %w", feats.Rows, C, dim, err)
	}
	return out, nil
}

// axpy adds a·x to y (len(x) ≥ len(y)).
func axpy(y, x []float32, a float32) {
	x = x[:len(y)]
	i := 0
	for ; i+8 <= len(y); i += 8 {
		yy := y[i : i+8 : i+8]
		xx := x[i : i+8 : i+8]
		yy[0] += a * xx[0]
		yy[1] += a * xx[1]
		yy[2] += a * xx[2]
		yy[3] += a * xx[3]
		yy[4] += a * xx[4]
		yy[5] += a * xx[5]
		yy[6] += a * xx[6]
		yy[7] += a * xx[7]
	}
	for ; i < len(y); i++ {
		y[i] += a * x[i]
	}
}

func projectORT(ctx context.Context, rt *ort.Runtime, feats *mat.Matrix, w []float32, dim int, out *mat.Matrix) error {
	g := onnxgraph.New("projection")
	x := g.Input("x", onnxgraph.Float, -1, int64(feats.Cols))
	y := g.OpTo("y", "MatMul", []string{x, g.Const("w", w, int64(feats.Cols), int64(dim))})
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
	for lo := 0; lo < feats.Rows; lo += block {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+block, feats.Rows)
		res, err := s.Run(ort.F32Tensor(feats.Slice(lo, hi).Data, int64(hi-lo), int64(feats.Cols)))
		if err != nil {
			return fmt.Errorf("rows %d–%d: %w", lo, hi, err)
		}
		copy(out.Slice(lo, hi).Data, res[0].F32)
	}
	return nil
}

// sqDist returns ‖a − b‖², stopping early (with a partial sum ≥ bound) once
// the sum reaches bound. Partial sums of squares only grow, so "result <
// bound" is exactly "full distance < bound".
func sqDist(a, b []float32, bound float32) float32 {
	b = b[:len(a)]
	var s float32
	i := 0
	for ; i+32 <= len(a); i += 32 {
		aa := a[i : i+32 : i+32]
		bb := b[i : i+32 : i+32]
		var s0, s1, s2, s3 float32
		for j := 0; j < 32; j += 4 {
			d0 := aa[j] - bb[j]
			d1 := aa[j+1] - bb[j+1]
			d2 := aa[j+2] - bb[j+2]
			d3 := aa[j+3] - bb[j+3]
			s0 += d0 * d0
			s1 += d1 * d1
			s2 += d2 * d2
			s3 += d3 * d3
		}
		s += (s0 + s1) + (s2 + s3)
		if s >= bound {
			return s
		}
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}

// group is the set of points whose nearest selected centre is center
// (center −1: the initial group, not yet near any centre).
type group struct {
	center  int32
	members []int32
	radius  float32 // max distance of a member
	far     int32   // the member at radius (−1 when empty)
}

// workItem is a slice [lo, hi) of one candidate group's members.
type workItem struct {
	g      int
	lo, hi int
	dcg    float32 // ‖c − centre(g)‖, +Inf for the initial group
	kept   int
	radius float32
	far    int32
}

// kCenter is the state of the greedy k-center selection.
type kCenter struct {
	pts      *mat.Matrix
	dist     []float32 // each point's distance to its nearest centre
	groups   []*group
	chosen   []bool
	workers  int
	prune    bool
	items    []workItem
	moved    [][]int32 // per worker
	dcg      []float32 // per group
	nextFill int

	// Counters for benchmarks: points visited in scanned groups, full or
	// early-stopped distance evaluations, and visits to the initial group.
	visited, evaluated, initial atomic.Int64
}

func newKCenter(pts *mat.Matrix, workers int, prune bool) *kCenter {
	return &kCenter{
		pts: pts, dist: make([]float32, pts.Rows), chosen: make([]bool, pts.Rows),
		workers: workers, prune: prune, moved: make([][]int32, workers),
	}
}

// init sets every distance to the mean distance to the start points.
func (k *kCenter) init(ctx context.Context, starts []int) error {
	all := make([]int32, k.pts.Rows)
	inf := float32(math.Inf(1))
	err := parallelFor(ctx, k.pts.Rows, k.workers, 1024, func(lo, hi, _ int) {
		for i := lo; i < hi; i++ {
			all[i] = int32(i)
			x := k.pts.Row(i)
			var s float64
			for _, st := range starts {
				s += math.Sqrt(float64(sqDist(x, k.pts.Row(st), inf)))
			}
			k.dist[i] = float32(s / float64(len(starts)))
		}
	})
	if err != nil {
		return err
	}
	g := &group{center: -1, members: all}
	g.radius, g.far = -1, -1
	for _, i := range all {
		if k.dist[i] > g.radius {
			g.radius, g.far = k.dist[i], i
		}
	}
	k.groups = []*group{g}
	return nil
}

// selectNext selects the farthest point and updates the distances.
func (k *kCenter) selectNext() int {
	var best *group
	for _, g := range k.groups {
		if g.far >= 0 && (best == nil || g.radius > best.radius || (g.radius == best.radius && g.far < best.far)) {
			best = g
		}
	}
	if best == nil || best.radius <= 0 || k.chosen[best.far] {
		// Everything left coincides with a centre: fill with unchosen points.
		for k.chosen[k.nextFill] {
			k.nextFill++
		}
		k.chosen[k.nextFill] = true
		return k.nextFill
	}
	sel := best.far
	k.chosen[sel] = true
	k.update(sel)
	return int(sel)
}

// pruneSlack keeps the triangle-inequality tests conservative under float32
// rounding.
const pruneSlack = 1 + 1e-4

func (k *kCenter) update(sel int32) {
	c := k.pts.Row(int(sel))
	inf := float32(math.Inf(1))
	// Distances from the new centre to every group's centre.
	if cap(k.dcg) < len(k.groups) {
		k.dcg = make([]float32, len(k.groups), 2*len(k.groups))
	}
	k.dcg = k.dcg[:len(k.groups)]
	if k.prune {
		calc := func(lo, hi, _ int) {
			for gi := lo; gi < hi; gi++ {
				g := k.groups[gi]
				if g.center < 0 {
					k.dcg[gi] = inf
					continue
				}
				lim := 2 * g.radius * pruneSlack
				s := sqDist(c, k.pts.Row(int(g.center)), lim*lim)
				// An early-stopped sum is a lower bound ≥ 2·radius: still
				// enough to prune the group.
				k.dcg[gi] = float32(math.Sqrt(float64(s)))
			}
		}
		if len(k.groups) >= 4096 && k.workers > 1 {
			_ = parallelFor(context.Background(), len(k.groups), k.workers, 1024, calc)
		} else {
			calc(0, len(k.groups), 0)
		}
	}
	// Work items over the candidate groups.
	const chunk = 4096
	k.items = k.items[:0]
	total := 0
	for gi, g := range k.groups {
		dcg := inf
		if k.prune {
			dcg = k.dcg[gi]
			if g.center >= 0 && dcg >= 2*g.radius*pruneSlack {
				continue
			}
			if g.center < 0 {
				dcg = inf
			}
		}
		for lo := 0; lo < len(g.members); lo += chunk {
			k.items = append(k.items, workItem{g: gi, lo: lo, hi: min(lo+chunk, len(g.members)), dcg: dcg})
		}
		total += len(g.members)
	}
	for w := range k.moved {
		k.moved[w] = k.moved[w][:0]
	}
	var next atomic.Int64
	work := func(w int) {
		moved := k.moved[w]
		for {
			it := int(next.Add(1) - 1)
			if it >= len(k.items) {
				break
			}
			item := &k.items[it]
			g := k.groups[item.g]
			m := g.members[item.lo:item.hi]
			kept, evals := 0, 0
			radius, far := float32(-1), int32(-1)
			for _, i := range m {
				d := k.dist[i]
				if item.dcg < inf && item.dcg >= 2*d*pruneSlack {
					// ‖c − x‖ ≥ ‖c − centre‖ − d ≥ d: no improvement.
				} else {
					evals++
					if s := sqDist(c, k.pts.Row(int(i)), d*d); s < d*d {
						k.dist[i] = float32(math.Sqrt(float64(s)))
						moved = append(moved, i)
						continue
					}
				}
				m[kept] = i
				kept++
				if d > radius || (d == radius && i < far) {
					radius, far = d, i
				}
			}
			item.kept, item.radius, item.far = kept, radius, far
			k.visited.Add(int64(len(m)))
			k.evaluated.Add(int64(evals))
			if g.center < 0 {
				k.initial.Add(int64(len(m)))
			}
		}
		k.moved[w] = moved
	}
	if total >= 2*chunk && k.workers > 1 {
		var wg sync.WaitGroup
		for w := 1; w < k.workers; w++ {
			wg.Add(1)
			go func() { defer wg.Done(); work(w) }()
		}
		work(0)
		wg.Wait()
	} else {
		work(0)
	}
	// Compact the scanned groups and refresh their radii.
	for a := 0; a < len(k.items); {
		gi := k.items[a].g
		g := k.groups[gi]
		n := 0
		g.radius, g.far = -1, -1
		for ; a < len(k.items) && k.items[a].g == gi; a++ {
			it := &k.items[a]
			if it.lo != n {
				copy(g.members[n:], g.members[it.lo:it.lo+it.kept])
			}
			n += it.kept
			if it.far >= 0 && (it.radius > g.radius || (it.radius == g.radius && it.far < g.far)) {
				g.radius, g.far = it.radius, it.far
			}
		}
		g.members = g.members[:n]
	}
	// The new centre's group.
	ng := &group{center: sel, radius: -1, far: -1}
	size := 0
	for _, m := range k.moved {
		size += len(m)
	}
	ng.members = make([]int32, 0, size)
	for _, m := range k.moved {
		for _, i := range m {
			ng.members = append(ng.members, i)
			if d := k.dist[i]; d > ng.radius || (d == ng.radius && i < ng.far) {
				ng.radius, ng.far = d, i
			}
		}
	}
	// Drop emptied groups (the initial group too once it empties).
	live := k.groups[:0]
	for _, g := range k.groups {
		if len(g.members) > 0 {
			live = append(live, g)
		}
	}
	for i := len(live); i < len(k.groups); i++ {
		k.groups[i] = nil
	}
	k.groups = live
	if len(ng.members) > 0 {
		k.groups = append(k.groups, ng)
	}
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

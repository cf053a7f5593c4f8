package banks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"sort"
	"sync"

	"gonum.org/v1/gonum/lapack/lapack64"
	gmat "gonum.org/v1/gonum/mat"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

// FastOptions are the recall knobs of the fast (cascade) search.
type FastOptions struct {
	// Dims is the dimension of the principal-axes projection the
	// candidates are chosen in; 0 means 64. Larger finds the exact
	// neighbour more often and costs proportionally more.
	Dims int
	// Rerank is the number of candidates per query re-ranked by their
	// exact full-dimension distance; 0 means 16 (at least k is used).
	Rerank int
	// SampleRows is the number of bank rows the principal axes are
	// estimated from; 0 means 4096.
	SampleRows int
	// Seed seeds the choice of those rows and of the subspace iteration's
	// start (the projection is deterministic for a seed).
	Seed int64
	// rerankInGraph re-ranks in the ORT graph (Gather + ReduceSumSquare)
	// instead of in Go over the bank rows in place; kept for the benchmark
	// that chose between them.
	rerankInGraph bool
	// blockRows is the block size of the candidate choice (see
	// cascadeGraph): 0 means candidateBlock, −1 one TopK over all rows;
	// kept for the benchmark that chose between them.
	blockRows int
	// ListRows, when positive, partitions the bank into lists of about
	// that many rows (k-means cells of the projected rows) and chooses a
	// query's candidates only among the rows of its Probes nearest lists
	// (see bankLists). Searches that exclude a query's own rows, banks of
	// fewer than 2·ListRows·Probes rows and GPU providers (where one large
	// product beats many small ones fed from the host) scan the whole bank.
	ListRows int
	// Probes is the number of lists a query's candidates come from; 0
	// means 8.
	Probes int
}

// candidateBlock is the number of consecutive bank rows whose smallest
// stage-1 value stands for them in the first TopK of the candidate choice.
const candidateBlock = 32

func (o FastOptions) withDefaults() FastOptions {
	if o.Dims <= 0 {
		o.Dims = 64
	}
	if o.Rerank <= 0 {
		o.Rerank = 16
	}
	if o.SampleRows <= 0 {
		o.SampleRows = 4096
	}
	if o.Probes <= 0 {
		o.Probes = 8
	}
	return o
}

// CascadeSearcher is the fast nearest-neighbour search: queries and bank are
// projected onto the bank's top FastOptions.Dims principal axes, the
// FastOptions.Rerank nearest candidates are taken there, and those are
// re-ranked by their exact distance in full dimension. The candidates come
// from one ONNX Runtime graph per query batch: MatMul (projection), MatMul
// (stage-1 values: Dims instead of C multiply-adds per bank row), and the
// choice by blocks of rows (see cascadeGraph); the re-rank runs in Go over
// the bank rows in place. With FastOptions.ListRows the candidates come
// instead from the lists nearest each query (see bankLists). The returned
// distances are exact
// for the returned rows (recomputed in float64 as [Searcher] does); the
// approximation is only that a true neighbour may be missed when it is not
// among the candidates.
//
// A CascadeSearcher is safe for concurrent use; calls are serialised.
type CascadeSearcher struct {
	mu     sync.Mutex
	rt     *ort.Runtime
	bank   *mat.Matrix
	source []int32
	opts   SearchOptions
	// proj holds the C×Dims principal axes, estimated on the first search:
	// a scorer prepares searchers for the whole banks and every category's
	// part, and an image of a known category only ever searches its part,
	// so the whole banks' axes (0.2–0.4 s each) are often never needed.
	proj []float32
	// rowsOf lists the bank rows of each source id: an excluding search
	// gives the graph each query's own rows, which it sets to +Inf before
	// choosing candidates (a scatter of a few values per query: masking
	// every batch × bank value with Equal and Where made a search three
	// times as slow as a plain one, and asking for more candidates and
	// dropping the own in Go one and a half times).
	rowsOf map[int32][]int64
	plain  map[int]*ort.Session
	excl   map[int]*ort.Session
	lists  *bankLists // made on the first plain search (see FastOptions.ListRows)
}

// NewCascadeSearcher prepares a fast search over bank (kept by reference:
// do not modify it while the searcher lives); it estimates the principal
// axes (one ORT MatMul over the sampled rows and a Dims-independent
// eigendecomposition) and builds its graph sessions on first use.
func NewCascadeSearcher(rt *ort.Runtime, bank *mat.Matrix, opts SearchOptions) (*CascadeSearcher, error) {
	if rt == nil {
		return nil, errors.New("fast searcher: no ONNX Runtime")
	}
	if bank == nil || bank.Rows() == 0 || bank.Cols() == 0 {
		return nil, errors.New("fast searcher: empty bank")
	}
	if opts.Source != nil && len(opts.Source) != bank.Rows() {
		return nil, fmt.Errorf("fast searcher: %d source ids for %d bank rows", len(opts.Source), bank.Rows())
	}
	if opts.K <= 0 {
		opts.K = 1
	}
	if opts.QueryBatch <= 0 {
		opts.QueryBatch = 512
	}
	opts.Fast = opts.Fast.withDefaults()
	opts.Fast.Dims = min(opts.Fast.Dims, bank.Cols())
	rowsOf := map[int32][]int64{}
	for r, id := range opts.Source {
		rowsOf[id] = append(rowsOf[id], int64(r))
	}
	return &CascadeSearcher{rt: rt, bank: bank, source: opts.Source, opts: opts, rowsOf: rowsOf,
		plain: map[int]*ort.Session{}, excl: map[int]*ort.Session{}}, nil
}

// Bank returns the searched bank.
func (s *CascadeSearcher) Bank() *mat.Matrix { return s.bank }

// Source returns the bank's source ids (nil when none were given).
func (s *CascadeSearcher) Source() []int32 { return s.source }

// Options returns the options in use, defaults filled in.
func (s *CascadeSearcher) Options() SearchOptions { return s.opts }

// Close frees the graph sessions.
func (s *CascadeSearcher) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, m := range []map[int]*ort.Session{s.plain, s.excl} {
		for k, sess := range m {
			errs = append(errs, sess.Close())
			delete(m, k)
		}
	}
	errs = append(errs, s.lists.close())
	s.lists = nil
	return errors.Join(errs...)
}

// Search is [Searcher.Search] with the cascade: the returned rows are the
// nearest among each query's candidates, their distances exact.
func (s *CascadeSearcher) Search(ctx context.Context, q *mat.Matrix, k int) ([]float32, []int64, error) {
	return s.search(ctx, q, nil, k)
}

// SearchExcluding is [Searcher.SearchExcluding] with the cascade; the
// exclusion is applied before the candidates are chosen, so it is exact.
func (s *CascadeSearcher) SearchExcluding(ctx context.Context, q *mat.Matrix, qSource []int32, k int) ([]float32, []int64, error) {
	if err := checkSources(s.source, q, qSource); err != nil {
		return nil, nil, err
	}
	return s.search(ctx, q, qSource, k)
}

func (s *CascadeSearcher) search(ctx context.Context, q *mat.Matrix, qSource []int32, k int) ([]float32, []int64, error) {
	if q == nil || q.Rows() == 0 {
		return nil, nil, nil
	}
	k, err := queryK("fast search", s.bank, q, k, s.opts.K)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cand := min(max(s.opts.Fast.Rerank, k), s.bank.Rows())
	if f := s.opts.Fast; qSource == nil && f.ListRows > 0 && s.bank.Rows() >= 2*f.ListRows*f.Probes && s.rt.Provider() == ort.DeviceCPU {
		return s.searchLists(ctx, q, k, cand)
	}
	// Keep the batch's stage-1 values (batch × bank rows) near 8 MiB, where
	// the caches still hold them between the MatMul that writes them and
	// the reductions that read them (a 512-query batch over 14,000 rows
	// spent a third more on the MatMul and the TopK), but batches of at
	// least 128 queries (smaller ones cost more per run than they save);
	// the gathered candidates of the in-graph re-rank (batch × cand × C)
	// near 64 MiB.
	batch := min(s.opts.QueryBatch, max(128, (2<<20)/s.bank.Rows()), max(1, (16<<20)/(cand*s.bank.Cols())))
	dist := make([]float32, q.Rows()*k)
	idx := make([]int64, q.Rows()*k)
	for qlo := 0; qlo < q.Rows(); qlo += batch {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("fast search: %w", err)
		}
		qhi := min(qlo+batch, q.Rows())
		nb := qhi - qlo
		sess, err := s.session(cand, qSource != nil)
		if err != nil {
			return nil, nil, err
		}
		in := []ort.Tensor{ort.F32Tensor(q.Slice(qlo, qhi).RawData(), int64(nb), int64(q.Cols())), ort.I64Tensor([]int64{int64(k)}, 1)}
		if qSource != nil {
			in = append(in, s.exclusion(qSource[qlo:qhi]))
		}
		out, err := sess.Run(in...)
		if err != nil {
			return nil, nil, fmt.Errorf("fast search queries %d–%d: %w", qlo, qhi, err)
		}
		if s.opts.Fast.rerankInGraph {
			for r := range nb {
				o := (qlo + r) * k
				for j := range k {
					v, i := out[0].F32[r*k+j], out[1].I64[r*k+j]
					if math.IsInf(float64(v), 1) {
						dist[o+j], idx[o+j] = v, -1
					} else {
						dist[o+j], idx[o+j] = float32(math.Sqrt(float64(max(v, 0)))), i
					}
				}
				refineNeighbours(s.bank, q.Row(qlo+r), dist[o:o+k], idx[o:o+k])
			}
			continue
		}
		if err := s.rerankBatch(ctx, q, qlo, nb, cand, out[0].F32, out[1].I64, dist, idx); err != nil {
			return nil, nil, err
		}
	}
	return dist, idx, nil
}

// rerankBatch re-ranks the candidates cv, ci (nb×cand) of the queries qlo …
// qlo+nb−1 of q into their slots of dist and idx (k = len(dist)/q.Rows()
// per query), on all cores.
func (s *CascadeSearcher) rerankBatch(ctx context.Context, q *mat.Matrix, qlo, nb, cand int, cv []float32, ci []int64, dist []float32, idx []int64) error {
	k := len(dist) / q.Rows()
	err := parallelFor(ctx, nb, runtime.GOMAXPROCS(0), 16, func(lo, hi, _ int) {
		for r := lo; r < hi; r++ {
			o := (qlo + r) * k
			s.rerank(q.Row(qlo+r), cv[r*cand:(r+1)*cand], ci[r*cand:(r+1)*cand], dist[o:o+k], idx[o:o+k])
		}
	})
	if err != nil {
		return fmt.Errorf("fast search: %w", err)
	}
	return nil
}

// listBatch is the number of queries a partitioned search probes at once:
// every list scan gets the queries of the whole batch that probe it, and
// larger scans cost less per query.
const listBatch = 8192

// searchLists is search over the bank's lists (FastOptions.ListRows).
func (s *CascadeSearcher) searchLists(ctx context.Context, q *mat.Matrix, k, cand int) ([]float32, []int64, error) {
	if s.lists == nil {
		if err := s.axes(); err != nil {
			return nil, nil, err
		}
		pbank := mat.New(s.bank.Rows(), s.opts.Fast.Dims)
		if err := projectORT(ctx, s.rt, s.bank, s.proj, s.opts.Fast.Dims, pbank); err != nil {
			return nil, nil, fmt.Errorf("fast searcher: project the bank: %w", err)
		}
		l, err := newBankLists(ctx, s.rt, pbank, s.proj, s.bank.Cols(), s.opts.Fast.ListRows, s.opts.Fast.Probes, s.opts.Fast.Seed)
		if err != nil {
			return nil, nil, fmt.Errorf("fast searcher: %w", err)
		}
		s.lists = l
	}
	dist := make([]float32, q.Rows()*k)
	idx := make([]int64, q.Rows()*k)
	for qlo := 0; qlo < q.Rows(); qlo += listBatch {
		qhi := min(qlo+listBatch, q.Rows())
		nb := qhi - qlo
		cv, ci := make([]float32, nb*cand), make([]int64, nb*cand)
		if err := s.lists.candidates(ctx, q.Slice(qlo, qhi), cand, cv, ci); err != nil {
			return nil, nil, fmt.Errorf("fast search queries %d–%d: %w", qlo, qhi, err)
		}
		if err := s.rerankBatch(ctx, q, qlo, nb, cand, cv, ci, dist, idx); err != nil {
			return nil, nil, err
		}
	}
	return dist, idx, nil
}

// axes estimates the principal axes once.
func (s *CascadeSearcher) axes() error {
	if s.proj != nil {
		return nil
	}
	proj, err := principalAxes(s.rt, s.bank, s.opts.Fast.Dims, s.opts.Fast.SampleRows, s.opts.Fast.Seed)
	if err != nil {
		return fmt.Errorf("fast searcher: %w", err)
	}
	s.proj = proj
	return nil
}

// exclusion returns the graph's input that excludes each query's own
// rows (see cascadeGraph): for the re-rank in the graph the queries' source
// ids (n×1), else each query's own bank rows (n×E, E the most any query
// of the batch has, at least 1), the short lists filled up with the
// padding row the bank always has past its last.
func (s *CascadeSearcher) exclusion(qSource []int32) ort.Tensor {
	n := len(qSource)
	if s.opts.Fast.rerankInGraph {
		src := make([]int64, n)
		for i, id := range qSource {
			src[i] = int64(id)
		}
		return ort.I64Tensor(src, int64(n), 1)
	}
	e := 1
	for _, id := range qSource {
		e = max(e, len(s.rowsOf[id]))
	}
	own := make([]int64, n*e)
	for i, id := range qSource {
		rows := own[i*e : (i+1)*e]
		copy(rows, s.rowsOf[id])
		for j := len(s.rowsOf[id]); j < e; j++ {
			rows[j] = int64(s.bank.Rows()) // the padding row
		}
	}
	return ort.I64Tensor(own, int64(n), int64(e))
}

// rerank fills dist and idx (length k) with the nearest of the candidate
// rows ci by exact distance to qr, nearest first (ties: lower index).
// Candidates whose stage-1 value cv is +Inf were excluded. The bank rows
// are read in place; partial sums stop once they pass the current k-th
// distance.
func (s *CascadeSearcher) rerank(qr []float32, cv []float32, ci []int64, dist []float32, idx []int64) {
	inf := float32(math.Inf(1))
	for j := range dist {
		dist[j], idx[j] = inf, -1
	}
	k := len(dist)
	for j, i := range ci {
		if math.IsInf(float64(cv[j]), 1) {
			continue
		}
		bound, worst := dist[k-1], idx[k-1]
		d := sqDist(qr, s.bank.Row(int(i)), math.Nextafter32(bound, inf))
		if !(d < bound || (d == bound && (worst < 0 || i < worst))) {
			continue
		}
		m := k - 1
		for ; m > 0 && (d < dist[m-1] || (d == dist[m-1] && i < idx[m-1]) || idx[m-1] < 0); m-- {
			dist[m], idx[m] = dist[m-1], idx[m-1]
		}
		dist[m], idx[m] = d, i
	}
	for j := range dist {
		if idx[j] >= 0 {
			dist[j] = float32(math.Sqrt(float64(dist[j])))
		}
	}
	refineNeighbours(s.bank, qr, dist, idx)
}

func (s *CascadeSearcher) session(cand int, exclude bool) (*ort.Session, error) {
	m := s.plain
	if exclude {
		m = s.excl
	}
	if sess := m[cand]; sess != nil {
		return sess, nil
	}
	if err := s.axes(); err != nil {
		return nil, err
	}
	block := s.opts.Fast.blockRows
	if block == 0 {
		block = candidateBlock
	}
	model, inputs, outputs, err := cascadeGraph(s.rt, s.bank, s.source, s.proj, s.opts.Fast.Dims, cand, block, exclude, s.opts.Fast.rerankInGraph)
	if err != nil {
		return nil, fmt.Errorf("fast search graph: %w", err)
	}
	sess, err := s.rt.NewSession(model, inputs, outputs)
	if err != nil {
		return nil, fmt.Errorf("fast search session: %w", err)
	}
	m[cand] = sess
	return sess, nil
}

// cascadeGraph builds the candidate search. Inputs: q (n×C), k (1 int64),
// with exclude the queries' source ids qsource (n×1 int64) with stage2, or
// else each query's own bank rows own (n×E int64, filled up with the row
// R, padding), whose values are set to +Inf. Outputs: with stage2, exact squared
// distances (n×k, ascending; +Inf for excluded slots) and bank row indices
// (n×k); without, the cand candidates' stage-1 values (+Inf: excluded) and
// bank row indices (n×cand, unordered), for the re-rank in Go.
//
// Stage 1 ranks bank rows by −2·p·pbᵀ + ‖pb‖² (the projected squared
// distance less ‖p‖², which is the same for every row of a query), as one
// MatMul of [p, 1] with [−2·PBᵀ; ‖pb‖²].
//
// With block > 0 (and at least cand blocks) the cand smallest values are
// found in two steps: the cand blocks of block consecutive rows with the
// smallest minimum (ReduceMin, then TopK over a block-th of the values),
// then the cand smallest of those blocks' rows. Every row among the cand
// smallest lies in one of those blocks (a block without any has a larger
// minimum than each of them), so the candidates are those of one TopK over
// all rows, ties aside; the TopK, which cost as much as the MatMul over
// all rows, reads block times fewer values. The bank is padded to whole
// blocks with rows whose value is +Inf, which the re-rank skips.
func cascadeGraph(rt *ort.Runtime, bank *mat.Matrix, source []int32, proj []float32, dims, cand, block int, exclude, stage2 bool) (model []byte, inputs, outputs []string, err error) {
	C, R, D := bank.Cols(), bank.Rows(), dims
	pbank := mat.New(R, D)
	if err := projectORT(context.Background(), rt, bank, proj, D, pbank); err != nil {
		return nil, nil, nil, fmt.Errorf("project the bank: %w", err)
	}
	if block <= 0 || stage2 || (R+block-1)/block < cand {
		block = 1
	}
	Rp := (R + block - 1) / block * block // padded to whole blocks
	if exclude && !stage2 {
		Rp = (R + block) / block * block // and at least one padding row
	}
	w := stage1Weights(pbank, nil, Rp)
	for r := R; r < Rp; r++ {
		w[D*Rp+r] = float32(math.Inf(1)) // 1·Inf: the padding's value
	}
	g := onnxgraph.New("nn_cascade")
	q := g.Input("q", onnxgraph.Float, -1, int64(C))
	k := g.Input("k", onnxgraph.Int64, 1)
	inputs = []string{q, k}
	p := g.Op("MatMul", []string{q, g.Const("proj", proj, int64(C), int64(D))})
	p1 := g.Op("Pad", []string{p, g.Ints(0, 0, 0, 1), g.Scalar(1)})
	s1 := g.Op("MatMul", []string{p1, g.Const("wbank", w, int64(D+1), int64(Rp))})
	inf := func() string { return g.Scalar(float32(math.Inf(1))) }
	switch {
	case exclude && !stage2:
		own := g.Input("own", onnxgraph.Int64, -1, -1)
		inputs = append(inputs, own)
		s1 = g.Op("ScatterElements", []string{s1, own, g.Op("Expand", []string{inf(), g.Op("Shape", []string{own})})},
			onnxgraph.AttrInt("axis", 1))
	case exclude:
		qs := g.Input("qsource", onnxgraph.Int64, -1, 1)
		inputs = append(inputs, qs)
		bs := make([]int64, Rp)
		for i := range bs {
			bs[i] = int64(NoSource) - 1 // padding: no query's image
		}
		for i, v := range source {
			bs[i] = int64(v)
		}
		same := g.Op("Equal", []string{qs, g.ConstI64("bsource", bs, 1, int64(Rp))})
		s1 = g.Op("Where", []string{same, inf(), s1})
	}
	smallest := func(x string, n int64) []string {
		return g.OpN("TopK", []string{x, g.Ints(n)}, 2,
			onnxgraph.AttrInt("axis", 1), onnxgraph.AttrInt("largest", 0), onnxgraph.AttrInt("sorted", 0))
	}
	var top1 []string
	if block == 1 {
		top1 = smallest(s1, int64(cand))
	} else {
		nb, bl := int64(Rp/block), int64(block)
		mins := g.Op("ReduceMin", []string{g.Op("Reshape", []string{s1, g.Ints(-1, nb, bl)})},
			onnxgraph.AttrInts("axes", 2), onnxgraph.AttrInt("keepdims", 0))
		blocks := smallest(mins, int64(cand))[1] // n×cand block numbers
		offsets := make([]int64, block)
		for i := range offsets {
			offsets[i] = int64(i)
		}
		rows := g.Op("Add", []string{
			g.Op("Mul", []string{g.Op("Unsqueeze", []string{blocks, g.Ints(2)}), g.Ints(bl)}),
			g.ConstI64("offsets", offsets, 1, 1, bl)}) // n×cand×block
		rows = g.Op("Reshape", []string{rows, g.Ints(0, int64(cand)*bl)})
		top := smallest(g.Op("GatherElements", []string{s1, rows}, onnxgraph.AttrInt("axis", 1)), int64(cand))
		top1 = []string{top[0], g.Op("GatherElements", []string{rows, top[1]}, onnxgraph.AttrInt("axis", 1))}
	}
	if !stage2 {
		g.Output(top1[0], onnxgraph.Float)
		g.Output(top1[1], onnxgraph.Int64)
		model, err = g.Marshal()
		return model, inputs, top1, err
	}
	// Stage 2: exact squared distances to the candidates.
	cands := g.Op("Gather", []string{g.Const("bank", bank.RawData(), int64(R), int64(C)), top1[1]}, onnxgraph.AttrInt("axis", 0))
	diff := g.Op("Sub", []string{g.Op("Unsqueeze", []string{q, g.Ints(1)}), cands})
	d2 := g.Op("ReduceSumSquare", []string{diff}, onnxgraph.AttrInts("axes", 2), onnxgraph.AttrInt("keepdims", 0))
	if exclude {
		d2 = g.Op("Where", []string{g.Op("IsInf", []string{top1[0]}), g.Scalar(float32(math.Inf(1))), d2})
	}
	top2 := g.OpN("TopK", []string{d2, k}, 2,
		onnxgraph.AttrInt("axis", 1), onnxgraph.AttrInt("largest", 0), onnxgraph.AttrInt("sorted", 1))
	rows := g.Op("GatherElements", []string{top1[1], top2[1]}, onnxgraph.AttrInt("axis", 1))
	g.Output(top2[0], onnxgraph.Float)
	g.Output(rows, onnxgraph.Int64)
	model, err = g.Marshal()
	return model, inputs, []string{top2[0], rows}, err
}

// stage1Weights returns the (D+1)×cols matrix [−2·PBᵀ; ‖pb‖²] of the rows
// pb of the projected bank pbank (R×D) listed in rows, column j for rows[j]
// (all rows in order when rows is nil); columns past them are zero. A
// projected query with a trailing 1 times it gives each row's stage-1 value,
// −2·p·pb + ‖pb‖² (‖p‖² less than the projected squared distance).
func stage1Weights(pbank *mat.Matrix, rows []int64, cols int) []float32 {
	n, D := pbank.Rows(), pbank.Cols()
	if rows != nil {
		n = len(rows)
	}
	w := make([]float32, (D+1)*cols)
	for j := range n {
		r := j
		if rows != nil {
			r = int(rows[j])
		}
		var s float64
		for d, v := range pbank.Row(r) {
			w[d*cols+j] = -2 * v
			s += float64(v) * float64(v)
		}
		w[D*cols+j] = float32(s)
	}
	return w
}

// principalAxes returns the C×dims matrix of the bank's top dims principal
// axes (columns, decreasing variance), estimated from up to sampleRows rows
// chosen with seed. The covariance product runs on ONNX Runtime.
func principalAxes(rt *ort.Runtime, bank *mat.Matrix, dims, sampleRows int, seed int64) ([]float32, error) {
	C := bank.Cols()
	rows := make([]int, bank.Rows())
	for i := range rows {
		rows[i] = i
	}
	if bank.Rows() > sampleRows {
		rows = sampleDistinct(rand.New(rand.NewSource(seed)), bank.Rows(), sampleRows)
		sort.Ints(rows)
	}
	x := bank.Gather(rows)
	mean := make([]float64, C)
	for r := range x.Rows() {
		for c, v := range x.Row(r) {
			mean[c] += float64(v)
		}
	}
	for r := range x.Rows() {
		row := x.Row(r)
		for c := range row {
			row[c] -= float32(mean[c] / float64(x.Rows()))
		}
	}
	g := onnxgraph.New("covariance")
	in := g.Input("x", onnxgraph.Float, -1, int64(C))
	out := g.OpTo("cov", "MatMul", []string{g.Op("Transpose", []string{in}), in})
	g.Output(out, onnxgraph.Float)
	model, err := g.Marshal()
	if err != nil {
		return nil, fmt.Errorf("covariance graph: %w", err)
	}
	sess, err := rt.NewSession(model, []string{in}, []string{out})
	if err != nil {
		return nil, fmt.Errorf("covariance session: %w", err)
	}
	defer sess.Close()
	res, err := sess.Run(ort.F32Tensor(x.RawData(), int64(x.Rows()), int64(C)))
	if err != nil {
		return nil, fmt.Errorf("covariance of %d bank rows: %w", x.Rows(), err)
	}
	cov := make([]float64, C*C)
	for a := range C {
		for b := a; b < C; b++ { // symmetrise the float32 product
			v := (float64(res[0].F32[a*C+b]) + float64(res[0].F32[b*C+a])) / 2
			cov[a*C+b], cov[b*C+a] = v, v
		}
	}
	// Subspace iteration for the top dims axes: a full eigendecomposition
	// of C×C costs seconds in Go, and the cascade needs only the dominant
	// subspace (any orthonormal basis of it preserves the same distances).
	l := min(dims+16, C)             // oversampled
	covm := gmat.NewDense(C, C, cov) // Dense: a blocked, parallel product
	rng := rand.New(rand.NewSource(seed))
	y := gmat.NewDense(C, l, nil)
	for i := range C {
		for j := range l {
			y.Set(i, j, rng.NormFloat64())
		}
	}
	basis := gmat.NewDense(C, l, nil)
	tau := make([]float64, l)
	q1, q2 := make([]float64, 1), make([]float64, 1)
	lapack64.Geqrf(basis.RawMatrix(), tau, q1, -1)
	lapack64.Orgqr(basis.RawMatrix(), tau, q2, -1)
	work := make([]float64, max(int(q1[0]), int(q2[0]), C))
	for range 6 {
		// The thin Q of y (C×l), not the full C×C one: the full one cost
		// more than the rest of the estimate together.
		basis.Copy(y)
		lapack64.Geqrf(basis.RawMatrix(), tau, work, len(work))
		lapack64.Orgqr(basis.RawMatrix(), tau, work, len(work))
		y.Mul(covm, basis)
	}
	// Rayleigh–Ritz: eigenvectors of the l×l projected covariance.
	var small gmat.Dense
	small.Mul(basis.T(), y)
	sym := gmat.NewSymDense(l, nil)
	for a := range l {
		for b := a; b < l; b++ {
			sym.SetSym(a, b, (small.At(a, b)+small.At(b, a))/2)
		}
	}
	var eig gmat.EigenSym
	if !eig.Factorize(sym, true) {
		return nil, errors.New("principal axes: eigendecomposition did not converge")
	}
	vals := eig.Values(nil)
	var vecs gmat.Dense
	eig.VectorsTo(&vecs)
	order := make([]int, l)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	var axes gmat.Dense
	axes.Mul(basis, &vecs)
	proj := make([]float32, C*dims)
	for c := range C {
		for j := range dims {
			proj[c*dims+j] = float32(axes.At(c, order[j]))
		}
	}
	return proj, nil
}

package banks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/onnxgraph"
	"github.com/dmad/workstation/core/ort"
)

// SearchOptions configure a [Searcher].
type SearchOptions struct {
	// K is the neighbour count used when Search is called with k ≤ 0;
	// 0 means 1.
	K int
	// ChunkRows is the number of bank rows per search graph; the bank is cut
	// into chunks of this size whose top-k lists are merged in Go, so the
	// distance matrices stay QueryBatch×ChunkRows. 0 means 32768.
	ChunkRows int
	// QueryBatch is the number of query rows per graph run; 0 chooses it
	// from BufferBytes.
	QueryBatch int
	// BufferBytes bounds the distance matrices of one search across all
	// chunks (each chunk's graph keeps its own, so their sum grows with the
	// bank): the default QueryBatch is BufferBytes / (4 · bank rows),
	// within [MinQueryBatch, MaxQueryBatch]. 0 means DefaultSearchBuffer.
	BufferBytes int64
	// Source is the source (image) id of each bank row; SearchExcluding
	// needs it.
	Source []int32
	// Mode picks the searcher [NewNeighbourSearcher] builds; the zero
	// value is exact search.
	Mode SearchMode
	// Fast configures the fast (cascade) search.
	Fast FastOptions
}

// Bounds of the query batch a Searcher chooses, and its default buffer
// (training and bench set theirs from the memory budget). On a 15,000-row
// bank of 768 dims the default keeps 512 queries a run; BenchmarkSearch
// measured 128–256 within 20 % of it on 20,000 rows.
const (
	MinQueryBatch       = 64
	MaxQueryBatch       = 512
	DefaultSearchBuffer = 32 << 20
)

// queryBatch is the QueryBatch opts chooses for a bank of rows rows.
func (opts SearchOptions) queryBatch(rows int) int {
	if opts.QueryBatch > 0 {
		return opts.QueryBatch
	}
	buf := opts.BufferBytes
	if buf <= 0 {
		buf = DefaultSearchBuffer
	}
	return int(min(MaxQueryBatch, max(MinQueryBatch, buf/(4*int64(max(rows, 1))))))
}

// Searcher finds exact L2 nearest neighbours of query rows in a bank on ONNX
// Runtime. Each bank chunk is one graph with the chunk (as −2·Bᵀ) and its
// squared norms as initializers: d² − ‖q‖² = ‖b‖² − 2·q·bᵀ (one Gemm), then
// TopK(k, smallest); ‖q‖² is added in Go. Per-chunk lists are merged in Go; equal distances come
// lowest bank index first.
//
// A Searcher is safe for concurrent use; calls are serialised.
type Searcher struct {
	mu     sync.Mutex
	rt     *ort.Runtime
	bank   *mat.Matrix
	source []int32
	opts   SearchOptions
	chunks []*searchChunk
}

type searchChunk struct {
	lo, hi int
	sess   *ort.Session
	// maxSame is the most rows of the chunk that share one source id (0
	// without source ids): SearchExcluding asks the chunk for that many
	// more neighbours and drops the query's own.
	maxSame int
}

// NewSearcher prepares a search over bank (kept by reference: do not modify
// it while the Searcher lives). Graph sessions are built on first use.
func NewSearcher(rt *ort.Runtime, bank *mat.Matrix, opts SearchOptions) (*Searcher, error) {
	if rt == nil {
		return nil, errors.New("searcher: no ONNX Runtime")
	}
	if bank == nil || bank.Rows() == 0 || bank.Cols() == 0 {
		return nil, errors.New("searcher: empty bank")
	}
	if opts.Source != nil && len(opts.Source) != bank.Rows() {
		return nil, fmt.Errorf("searcher: %d source ids for %d bank rows", len(opts.Source), bank.Rows())
	}
	if opts.K <= 0 {
		opts.K = 1
	}
	if opts.ChunkRows <= 0 {
		opts.ChunkRows = 32768
	}
	opts.QueryBatch = opts.queryBatch(bank.Rows())
	s := &Searcher{rt: rt, bank: bank, source: opts.Source, opts: opts}
	for lo := 0; lo < bank.Rows(); lo += opts.ChunkRows {
		c := &searchChunk{lo: lo, hi: min(lo+opts.ChunkRows, bank.Rows())}
		if opts.Source != nil {
			count := map[int32]int{}
			for _, id := range opts.Source[c.lo:c.hi] {
				if id >= 0 { // negative ids come from no image and match no query
					count[id]++
					c.maxSame = max(c.maxSame, count[id])
				}
			}
		}
		s.chunks = append(s.chunks, c)
	}
	return s, nil
}

// Bank returns the searched bank.
func (s *Searcher) Bank() *mat.Matrix { return s.bank }

// Source returns the bank's source ids (nil when none were given).
func (s *Searcher) Source() []int32 { return s.source }

// Close frees the graph sessions.
func (s *Searcher) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, c := range s.chunks {
		if c.sess != nil {
			errs = append(errs, c.sess.Close())
			c.sess = nil
		}
	}
	return errors.Join(errs...)
}

// Search returns, for each row of q, its k nearest bank rows: dist holds
// the L2 distances and idx the bank row indices, both row-major q.Rows()×k,
// nearest first (equal distances: lowest index first). The graph selects
// the k candidates from the expanded squared distances (clamped at 0); the
// returned distances are then recomputed directly for precision.
// k ≤ 0 uses SearchOptions.K.
func (s *Searcher) Search(ctx context.Context, q *mat.Matrix, k int) (dist []float32, idx []int64, err error) {
	return s.search(ctx, q, nil, k)
}

// SearchExcluding is Search where bank rows whose source id equals the
// query row's qSource id are never returned (METHOD.md §3: a normal
// training patch must not find patches of its own image). The exclusion is
// exact, inside the graph (Equal + Where to +Inf). Slots with no eligible
// bank row left get distance +Inf and index −1. Query source ids must be
// non-negative: negative ids mark bank entries that came from no image.
//
// Each chunk is asked for k + maxSame neighbours (maxSame: the most rows
// of the chunk from one source) and the query's own are dropped, so the k
// nearest eligible rows are always among them; an in-graph mask (Equal +
// Where) needed a second session per chunk and twice the buffers.
func (s *Searcher) SearchExcluding(ctx context.Context, q *mat.Matrix, qSource []int32, k int) (dist []float32, idx []int64, err error) {
	if err := checkSources(s.source, q, qSource); err != nil {
		return nil, nil, err
	}
	return s.search(ctx, q, qSource, k)
}

func (s *Searcher) search(ctx context.Context, q *mat.Matrix, qSource []int32, k int) ([]float32, []int64, error) {
	if q == nil || q.Rows() == 0 {
		return nil, nil, nil
	}
	k, err := queryK("search", s.bank, q, k, s.opts.K)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dist := make([]float32, q.Rows()*k)
	idx := make([]int64, q.Rows()*k)
	type part struct {
		vals []float32
		idx  []int64
		kc   int
		lo   int64
	}
	parts := make([]part, len(s.chunks))
	for qlo := 0; qlo < q.Rows(); qlo += s.opts.QueryBatch {
		qhi := min(qlo+s.opts.QueryBatch, q.Rows())
		nb := qhi - qlo
		qt := ort.F32Tensor(q.Slice(qlo, qhi).RawData(), int64(nb), int64(q.Cols()))
		for ci, c := range s.chunks {
			if err := ctx.Err(); err != nil {
				return nil, nil, fmt.Errorf("search: %w", err)
			}
			sess, err := s.session(c)
			if err != nil {
				return nil, nil, err
			}
			kc := min(k, c.hi-c.lo)
			if qSource != nil {
				kc = min(k+c.maxSame, c.hi-c.lo)
			}
			out, err := sess.Run(qt, ort.I64Tensor([]int64{int64(kc)}, 1))
			if err != nil {
				return nil, nil, fmt.Errorf("search bank rows %d–%d: %w", c.lo, c.hi, err)
			}
			parts[ci] = part{vals: out[0].F32, idx: out[1].I64, kc: kc, lo: int64(c.lo)}
		}
		// Merge the sorted per-chunk lists: smallest distance first, then
		// lowest bank index. The graphs leave out ‖q‖² (see searchGraph).
		qn := make([]float64, nb)
		for r := range nb {
			for _, v := range q.Row(qlo + r) {
				qn[r] += float64(v) * float64(v)
			}
		}
		heads := make([]int, len(parts))
		for r := range nb {
			clear(heads)
			own := int32(-1) // the query's source: its rows are skipped
			if qSource != nil {
				own = qSource[qlo+r]
			}
			for j := range k {
				best := -1
				var bv float32
				var bi int64
				for pi := range parts {
					p := &parts[pi]
					for own >= 0 && heads[pi] < p.kc && s.source[p.lo+p.idx[r*p.kc+heads[pi]]] == own {
						heads[pi]++
					}
					if heads[pi] >= p.kc {
						continue
					}
					v := p.vals[r*p.kc+heads[pi]]
					gi := p.lo + p.idx[r*p.kc+heads[pi]]
					if best < 0 || v < bv || (v == bv && gi < bi) {
						best, bv, bi = pi, v, gi
					}
				}
				o := (qlo+r)*k + j
				if best < 0 { // no eligible bank row left
					dist[o], idx[o] = float32(math.Inf(1)), -1
					continue
				}
				heads[best]++
				dist[o] = float32(math.Sqrt(max(float64(bv)+qn[r], 0)))
				idx[o] = bi
			}
			s.refine(q.Row(qlo+r), dist[(qlo+r)*k:(qlo+r+1)*k], idx[(qlo+r)*k:(qlo+r+1)*k])
		}
	}
	return dist, idx, nil
}

// refine recomputes the found neighbours' distances directly, as
// √Σ(q−b)² in float64, and re-sorts them (distance, then index). The
// expanded form ‖q‖² − 2·q·b + ‖b‖² loses precision for near neighbours
// (a query equal to a bank row comes out at ~1e-3 instead of 0), which the
// knowledge residuals and scores should not inherit.
func (s *Searcher) refine(q []float32, dist []float32, idx []int64) {
	refineNeighbours(s.bank, q, dist, idx)
}

// refineNeighbours is [Searcher.refine] over any bank.
func refineNeighbours(bank *mat.Matrix, q []float32, dist []float32, idx []int64) {
	for j, i := range idx {
		if i < 0 {
			continue
		}
		b := bank.Row(int(i))
		var sum float64
		for c, v := range q {
			d := float64(v) - float64(b[c])
			sum += d * d
		}
		dist[j] = float32(math.Sqrt(sum))
	}
	for j := 1; j < len(idx); j++ { // insertion sort: k is small, mostly sorted
		for m := j; m > 0 && less(dist[m], idx[m], dist[m-1], idx[m-1]); m-- {
			dist[m], dist[m-1] = dist[m-1], dist[m]
			idx[m], idx[m-1] = idx[m-1], idx[m]
		}
	}
}

func less(d1 float32, i1 int64, d2 float32, i2 int64) bool {
	if i1 < 0 || i2 < 0 {
		return i2 < 0 && i1 >= 0
	}
	return d1 < d2 || (d1 == d2 && i1 < i2)
}

// session returns the chunk's graph session, building it on first use.
func (s *Searcher) session(c *searchChunk) (*ort.Session, error) {
	if c.sess != nil {
		return c.sess, nil
	}
	model, inputs, outputs, err := searchGraph(s.bank.Slice(c.lo, c.hi))
	if err != nil {
		return nil, fmt.Errorf("search graph for bank rows %d–%d: %w", c.lo, c.hi, err)
	}
	sess, err := s.rt.NewSession(model, inputs, outputs)
	if err != nil {
		return nil, fmt.Errorf("search session for bank rows %d–%d: %w", c.lo, c.hi, err)
	}
	c.sess = sess
	return sess, nil
}

// searchGraph builds the distance + TopK graph over one bank chunk.
// Inputs: q (n×C float) and k (1 int64). Outputs: squared distances less
// ‖q‖² (n×k float, ascending) and indices (n×k int64, chunk rows).
func searchGraph(chunk *mat.Matrix) (model []byte, inputs, outputs []string, err error) {
	C, R := chunk.Cols(), chunk.Rows()
	bt := make([]float32, C*R) // −2·Bᵀ, C×R
	norms := make([]float32, R)
	for r := range R {
		row := chunk.Row(r)
		var n float64
		for c, v := range row {
			bt[c*R+r] = -2 * v
			n += float64(v) * float64(v)
		}
		norms[r] = float32(n)
	}
	g := onnxgraph.New("nn_search")
	q := g.Input("q", onnxgraph.Float, -1, int64(C))
	k := g.Input("k", onnxgraph.Int64, 1)
	inputs = []string{q, k}
	// ‖b‖² − 2·q·bᵀ in one Gemm: ‖q‖² is the same for a query's every bank
	// row, so it changes no ranking and is added in Go (search). One matrix
	// of QueryBatch×R instead of three keeps ONNX Runtime's buffers small.
	d2 := g.Op("Gemm", []string{q, g.Const("neg2bt", bt, int64(C), int64(R)), g.Const("bnorm", norms, 1, int64(R))})
	top := g.OpN("TopK", []string{d2, k}, 2,
		onnxgraph.AttrInt("axis", 1), onnxgraph.AttrInt("largest", 0), onnxgraph.AttrInt("sorted", 1))
	g.Output(top[0], onnxgraph.Float)
	g.Output(top[1], onnxgraph.Int64)
	model, err = g.Marshal()
	return model, inputs, top, err
}

// checkSources validates SearchExcluding's source ids, for every searcher:
// the bank must carry source ids, and each query one non-negative id.
func checkSources(bankSource []int32, q *mat.Matrix, qSource []int32) error {
	if bankSource == nil {
		return errors.New("search excluding sources: the bank has no source ids")
	}
	if q != nil && len(qSource) != q.Rows() {
		return fmt.Errorf("search excluding sources: %d source ids for %d queries", len(qSource), q.Rows())
	}
	for i, v := range qSource {
		if v < 0 {
			return fmt.Errorf("search excluding sources: query %d has negative source id %d (negative ids mark bank entries of no image)", i, v)
		}
	}
	return nil
}

// queryK checks queries against bank and resolves the neighbour count
// (k ≤ 0: def), for every searcher; what names the searcher in errors.
func queryK(what string, bank, q *mat.Matrix, k, def int) (int, error) {
	if q.Cols() != bank.Cols() {
		return 0, fmt.Errorf("%s: queries have %d columns, bank %d", what, q.Cols(), bank.Cols())
	}
	if k <= 0 {
		k = def
	}
	if k > bank.Rows() {
		return 0, fmt.Errorf("%s: k = %d exceeds the bank's %d rows", what, k, bank.Rows())
	}
	return k, nil
}

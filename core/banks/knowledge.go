package banks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

// KnowledgeOptions configure [Knowledge].
type KnowledgeOptions struct {
	// AttnK is the number of nearest entries of each bank the attention
	// variant attends over; 0 means 8.
	AttnK int
	// AttnTemp scales the softmax temperature; 0 means 1 (see Compute).
	AttnTemp float32
	// Search configures both searchers, exact or fast (Source is set from
	// the banks).
	Search SearchOptions
}

// Knowledge computes DMAD's knowledge residuals (METHOD.md §3) against the
// two banks.
type Knowledge struct {
	// Normal searches M_n, with its source ids for same-image exclusion.
	Normal NeighbourSearcher
	// Anomaly searches M_a, with its source ids (pseudo and seen entries).
	Anomaly NeighbourSearcher
	// AttnK and AttnTemp are the attention settings (see KnowledgeOptions).
	AttnK    int
	AttnTemp float32
}

// Result holds the knowledge of a batch of query patches, one row each.
type Result struct {
	// KN and KA are the residual knowledge q − n and q − a (plus the
	// attention term in the attention variant).
	KN, KA *mat.Matrix
	// DN and DA are the L2 distances to the nearest normal and anomaly
	// entries: ‖q − n‖ and ‖q − a‖ (PatchCore's score is DN).
	DN, DA []float32
	// IN and IA are the bank row indices of n and a.
	IN, IA []int64
}

// NewKnowledge prepares searchers over both banks.
func NewKnowledge(rt *ort.Runtime, normal *NormalBank, anomaly *AnomalyBank, opts KnowledgeOptions) (*Knowledge, error) {
	if err := normal.Validate(); err != nil {
		return nil, fmt.Errorf("knowledge: %w", err)
	}
	if err := anomaly.Validate(); err != nil {
		return nil, fmt.Errorf("knowledge: %w", err)
	}
	if normal.Features.Cols() != anomaly.Features.Cols() {
		return nil, fmt.Errorf("knowledge: normal bank has %d columns, anomaly bank %d", normal.Features.Cols(), anomaly.Features.Cols())
	}
	if opts.AttnK <= 0 {
		opts.AttnK = 8
	}
	if opts.AttnTemp <= 0 {
		opts.AttnTemp = 1
	}
	so := opts.Search
	so.Source = normal.Source
	ns, err := NewNeighbourSearcher(rt, normal.Features, so)
	if err != nil {
		return nil, fmt.Errorf("knowledge: normal bank: %w", err)
	}
	so.Source = anomaly.Source
	as, err := NewNeighbourSearcher(rt, anomaly.Features, so)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("knowledge: anomaly bank: %w", err)
	}
	return &Knowledge{Normal: ns, Anomaly: as, AttnK: opts.AttnK, AttnTemp: opts.AttnTemp}, nil
}

// Close frees both searchers.
func (k *Knowledge) Close() error {
	return errors.Join(k.Normal.Close(), k.Anomaly.Close())
}

// Compute returns the knowledge of the query patches q. source gives each
// row's image id for training patches (bank entries of the same image are
// then skipped in both banks, METHOD.md §3 [ours]); pass nil at test time.
// It is Residuals of Neighbours.
//
// Distance knowledge: KN = q − n, KA = q − a with n, a the nearest entries.
//
// Attention knowledge (attention = true, the unsupervised regime): q
// attends over its AttnK nearest entries b_j of each bank with weights
// w_j = softmax_j(−‖q − b_j‖² / τ), τ = AttnTemp · mean_j ‖q − b_j‖² (per
// query, so the weights do not depend on the feature scale), and the values
// are the residuals q − b_j: Attn = Σ_j w_j (q − b_j), a soft residual over
// the neighbourhood. It is added to the nearest residual: KN = q − n + Attn_n
// (likewise KA). Values are residuals rather than the entries themselves so
// the sum stays a residual and does not reintroduce q's position, which the
// mapper already sees as P(q); the normalisation of METHOD.md §3
// (BatchNorm(q − n + Attn)) is left to the mapper, which learns it.
func (k *Knowledge) Compute(ctx context.Context, q *mat.Matrix, source []int32, attention bool) (*Result, error) {
	nb, err := k.Neighbours(ctx, q, source, attention)
	if err != nil {
		return nil, err
	}
	return k.Residuals(q, nb)
}

// Nearest is one bank's search result for a batch of queries: each row's K
// nearest entries, row-major, nearest first (index −1 where none was
// eligible).
type Nearest struct {
	K    int
	Dist []float32
	Idx  []int64
}

// Neighbours are what knowledge is computed from: the nearest entries of
// both banks. They depend on the banks and the queries only, not on the
// mapper, so a caller scoring the same patches with several mappers (the
// checkpoints of one training) searches once.
type Neighbours struct {
	Normal, Anomaly Nearest
	// Attention records whether the search was for attention knowledge
	// (AttnK entries per bank) or distance knowledge (one).
	Attention bool
}

// Neighbours searches both banks for the query patches q (source as for
// Compute): the nearest entry of each, or the AttnK nearest with attention.
func (k *Knowledge) Neighbours(ctx context.Context, q *mat.Matrix, source []int32, attention bool) (*Neighbours, error) {
	if q == nil || q.Rows() == 0 {
		return nil, errors.New("knowledge: no query patches")
	}
	if source != nil && len(source) != q.Rows() {
		return nil, fmt.Errorf("knowledge: %d source ids for %d patches", len(source), q.Rows())
	}
	nb := &Neighbours{Attention: attention}
	var err error
	if nb.Normal, err = k.search(ctx, k.Normal, q, source, attention); err != nil {
		return nil, fmt.Errorf("knowledge against the normal bank: %w", err)
	}
	if nb.Anomaly, err = k.search(ctx, k.Anomaly, q, source, attention); err != nil {
		return nil, fmt.Errorf("knowledge against the anomaly bank: %w", err)
	}
	return nb, nil
}

func (k *Knowledge) search(ctx context.Context, s NeighbourSearcher, q *mat.Matrix, source []int32, attention bool) (Nearest, error) {
	kk := 1
	if attention {
		kk = min(k.AttnK, s.Bank().Rows())
	}
	var dist []float32
	var idx []int64
	var err error
	if source != nil && s.Source() != nil {
		dist, idx, err = s.SearchExcluding(ctx, q, source, kk)
	} else {
		dist, idx, err = s.Search(ctx, q, kk)
	}
	return Nearest{K: kk, Dist: dist, Idx: idx}, err
}

// Residuals computes the knowledge of q from its neighbours nb, found by
// Neighbours for the same q on these banks.
func (k *Knowledge) Residuals(q *mat.Matrix, nb *Neighbours) (*Result, error) {
	if err := nb.Check(q.Rows()); err != nil {
		return nil, err
	}
	res := &Result{}
	var err error
	if res.KN, res.DN, res.IN, err = k.residuals(k.Normal.Bank(), q, nb.Normal, nb.Attention); err != nil {
		return nil, fmt.Errorf("knowledge against the normal bank: %w", err)
	}
	if res.KA, res.DA, res.IA, err = k.residuals(k.Anomaly.Bank(), q, nb.Anomaly, nb.Attention); err != nil {
		return nil, fmt.Errorf("knowledge against the anomaly bank: %w", err)
	}
	return res, nil
}

func (k *Knowledge) residuals(bank, q *mat.Matrix, n Nearest, attention bool) (*mat.Matrix, []float32, []int64, error) {
	kk, dist, idx := n.K, n.Dist, n.Idx
	kn := mat.New(q.Rows(), q.Cols())
	dn := make([]float32, q.Rows())
	in := make([]int64, q.Rows())
	for r := range q.Rows() {
		if nearest := idx[r*kk]; nearest >= int64(bank.Rows()) {
			return nil, nil, nil, fmt.Errorf("patch %d's neighbour %d is outside a bank of %d rows", r, nearest, bank.Rows())
		}
	}
	// Rows are independent: split them over the cores (a scoring's 12,544
	// rows × 768 take milliseconds per bank).
	err := parallelFor(context.Background(), q.Rows(), runtime.GOMAXPROCS(0), 256, func(lo, hi, _ int) {
		w := make([]float64, kk)
		for r := lo; r < hi; r++ {
			k.residualRow(bank, q.Row(r), kn.Row(r), dist[r*kk:(r+1)*kk], idx[r*kk:(r+1)*kk], w, attention)
			dn[r], in[r] = dist[r*kk], idx[r*kk]
		}
	})
	return kn, dn, in, err
}

// residualRow writes query qr's knowledge against bank into out from its
// neighbours' distances and indices (nearest first); w is scratch of their
// length.
func (k *Knowledge) residualRow(bank *mat.Matrix, qr, out, dist []float32, idx []int64, w []float64, attention bool) {
	nr := bank.Row(int(idx[0]))
	for c := range out {
		out[c] = qr[c] - nr[c]
	}
	if !attention {
		return
	}
	valid := attentionWeights(dist, idx, w, k.AttnTemp)
	for j := range valid {
		wj := float32(w[j])
		br := bank.Row(int(idx[j]))
		for c := range out {
			out[c] += wj * (qr[c] - br[c])
		}
	}
}

// Append appends the neighbours of further queries (found by the same
// Knowledge with the same attention setting) to nb.
func (nb *Neighbours) Append(more *Neighbours) error {
	if nb.Attention != more.Attention || nb.Normal.K != more.Normal.K || nb.Anomaly.K != more.Anomaly.K {
		return errors.New("knowledge: appending neighbours of a different search")
	}
	nb.Normal.Dist, nb.Normal.Idx = append(nb.Normal.Dist, more.Normal.Dist...), append(nb.Normal.Idx, more.Normal.Idx...)
	nb.Anomaly.Dist, nb.Anomaly.Idx = append(nb.Anomaly.Dist, more.Anomaly.Dist...), append(nb.Anomaly.Idx, more.Anomaly.Idx...)
	return nil
}

// Check reports neighbours that do not fit n queries, and a query row that
// has no eligible neighbour in a bank (every entry came from its own
// image).
func (nb *Neighbours) Check(n int) error {
	for _, s := range []struct {
		name string
		n    Nearest
	}{{"normal", nb.Normal}, {"anomaly", nb.Anomaly}} {
		if s.n.K < 1 || len(s.n.Idx) != n*s.n.K || len(s.n.Dist) != len(s.n.Idx) {
			return fmt.Errorf("knowledge: %d %s-bank neighbour slots for %d patches", len(s.n.Idx), s.name, n)
		}
		for r := range n {
			if s.n.Idx[r*s.n.K] < 0 {
				return fmt.Errorf("knowledge against the %s bank: patch %d has no neighbour outside its own image", s.name, r)
			}
		}
	}
	return nil
}

// ResidualsInto writes the residuals k·n and k·a of the given rows of q
// into kn and ka (len(rows)×C each, row-major), from nb, the neighbours of
// all of q (checked with Check). It is Residuals for a few rows at a time:
// a caller that needs rows in turn, such as training's batches, keeps
// only the neighbours instead of every row's residuals.
func (k *Knowledge) ResidualsInto(q *mat.Matrix, nb *Neighbours, rows []int, kn, ka []float32) {
	c := q.Cols()
	nbank, abank := k.Normal.Bank(), k.Anomaly.Bank()
	// The error is only ctx's, and the context is never cancelled.
	_ = parallelFor(context.Background(), len(rows), runtime.GOMAXPROCS(0), 256, func(lo, hi, _ int) {
		wn, wa := make([]float64, nb.Normal.K), make([]float64, nb.Anomaly.K)
		for i := lo; i < hi; i++ {
			r := rows[i]
			kk := nb.Normal.K
			k.residualRow(nbank, q.Row(r), kn[i*c:(i+1)*c], nb.Normal.Dist[r*kk:(r+1)*kk], nb.Normal.Idx[r*kk:(r+1)*kk], wn, nb.Attention)
			kk = nb.Anomaly.K
			k.residualRow(abank, q.Row(r), ka[i*c:(i+1)*c], nb.Anomaly.Dist[r*kk:(r+1)*kk], nb.Anomaly.Idx[r*kk:(r+1)*kk], wa, nb.Attention)
		}
	})
}

// attentionWeights writes into w the attention weights over a query's
// eligible neighbours (distances dist, nearest first; index −1 marks the
// ineligible ones, which come last): softmax_j(−d_j²/τ), τ = temp·mean d²
// (see Compute). It returns the number of eligible neighbours.
func attentionWeights(dist []float32, idx []int64, w []float64, temp float32) (valid int) {
	var mean float64
	for j := range idx {
		if idx[j] >= 0 {
			d := float64(dist[j])
			mean += d * d
			valid++
		}
	}
	tau := float64(temp) * mean / float64(valid)
	var sum float64
	d0 := float64(dist[0])
	for j := range valid {
		d := float64(dist[j])
		if tau > 0 {
			w[j] = math.Exp(-(d*d - d0*d0) / tau) // shifted by the smallest: stable
		} else {
			w[j] = 1
		}
		sum += w[j]
	}
	for j := range valid {
		w[j] /= sum
	}
	return valid
}

// Coefficients returns the weights with which one side's knowledge
// subtracts its neighbours' bank rows, for every query of n (row-major,
// n.K per query): k·x = s·q − Σ_j c_j·b_j with s = Σ_j c_j. Distance
// knowledge (n.K = 1) gives c = (1); attention knowledge gives
// (1 + w_0, w_1, …), the nearest entry counted once as the residual and
// once in the attention, and 0 for ineligible slots. Scoring from bank
// rows' projections uses them (mapper.BankScorer).
func (k *Knowledge) Coefficients(n Nearest, attention bool) []float32 {
	out := make([]float32, len(n.Idx))
	if !attention {
		for r := range len(n.Idx) / n.K {
			if n.Idx[r*n.K] >= 0 {
				out[r*n.K] = 1
			}
		}
		return out
	}
	w := make([]float64, n.K)
	for r := range len(n.Idx) / n.K {
		dist, idx := n.Dist[r*n.K:(r+1)*n.K], n.Idx[r*n.K:(r+1)*n.K]
		if idx[0] < 0 {
			continue
		}
		valid := attentionWeights(dist, idx, w, k.AttnTemp)
		for j := range valid {
			out[r*n.K+j] = float32(w[j])
		}
		out[r*n.K]++
	}
	return out
}

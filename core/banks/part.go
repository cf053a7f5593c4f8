package banks

import (
	"context"
	"errors"
	"fmt"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

// PartSearcher searches a part of a bank, some of its rows, and reports
// neighbours by their rows in the whole bank. A unified model's banks hold
// every category's entries; routing an image of a known category to its
// category's part searches a fraction of the bank (the fast search's
// "route each image to its category's part").
type PartSearcher struct {
	inner  NeighbourSearcher
	bank   *mat.Matrix
	source []int32
	rows   []int
}

// NewPartSearcher prepares a search of opts.Mode over rows of bank (source
// gives every bank row's image id, or nil; opts.Source is ignored).
func NewPartSearcher(rt *ort.Runtime, bank *mat.Matrix, source []int32, rows []int, opts SearchOptions) (*PartSearcher, error) {
	if len(rows) == 0 {
		return nil, errors.New("part searcher: no rows")
	}
	if source != nil && len(source) != bank.Rows() {
		return nil, fmt.Errorf("part searcher: %d source ids for %d bank rows", len(source), bank.Rows())
	}
	for _, r := range rows {
		if r < 0 || r >= bank.Rows() {
			return nil, fmt.Errorf("part searcher: row %d outside a bank of %d", r, bank.Rows())
		}
	}
	opts.Source = nil
	if source != nil {
		opts.Source = make([]int32, len(rows))
		for i, r := range rows {
			opts.Source[i] = source[r]
		}
	}
	inner, err := NewNeighbourSearcher(rt, bank.Gather(rows), opts)
	if err != nil {
		return nil, fmt.Errorf("part searcher over %d of %d rows: %w", len(rows), bank.Rows(), err)
	}
	return &PartSearcher{inner: inner, bank: bank, source: source, rows: rows}, nil
}

// Search is [NeighbourSearcher.Search] over the part.
func (p *PartSearcher) Search(ctx context.Context, q *mat.Matrix, k int) ([]float32, []int64, error) {
	dist, idx, err := p.inner.Search(ctx, q, k)
	return dist, p.whole(idx), err
}

// SearchExcluding is [NeighbourSearcher.SearchExcluding] over the part.
func (p *PartSearcher) SearchExcluding(ctx context.Context, q *mat.Matrix, qSource []int32, k int) ([]float32, []int64, error) {
	dist, idx, err := p.inner.SearchExcluding(ctx, q, qSource, k)
	return dist, p.whole(idx), err
}

// whole maps part rows to bank rows in place (−1 stays −1).
func (p *PartSearcher) whole(idx []int64) []int64 {
	for i, r := range idx {
		if r >= 0 {
			idx[i] = int64(p.rows[r])
		}
	}
	return idx
}

// Bank returns the whole bank (the indices refer to it).
func (p *PartSearcher) Bank() *mat.Matrix { return p.bank }

// Source returns the whole bank's source ids.
func (p *PartSearcher) Source() []int32 { return p.source }

// Close frees the part's sessions.
func (p *PartSearcher) Close() error { return p.inner.Close() }

// Part returns knowledge over parts of k's banks: the normal bank's rows
// normalRows and the anomaly bank's anomalyRows, searched as opts says.
// Neighbours are reported by their rows in the whole banks, so residuals
// and mappers made for the whole banks apply unchanged.
func (k *Knowledge) Part(rt *ort.Runtime, normalRows, anomalyRows []int, opts SearchOptions) (*Knowledge, error) {
	ns, err := NewPartSearcher(rt, k.Normal.Bank(), k.Normal.Source(), normalRows, opts)
	if err != nil {
		return nil, fmt.Errorf("knowledge part: normal bank: %w", err)
	}
	as, err := NewPartSearcher(rt, k.Anomaly.Bank(), k.Anomaly.Source(), anomalyRows, opts)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("knowledge part: anomaly bank: %w", err)
	}
	return &Knowledge{Normal: ns, Anomaly: as, AttnK: k.AttnK, AttnTemp: k.AttnTemp}, nil
}

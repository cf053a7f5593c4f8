package banks

// The PatchCore baseline scorer (METHOD.md §5); the image score and the
// pixel anomaly map both scorers share are in core/heatmap.

import (
	"context"
	"fmt"

	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
)

// PatchCore is the baseline scorer: a patch's anomaly score is its L2
// distance to the nearest entry of the normal bank.
type PatchCore struct {
	// Searcher searches the normal bank.
	Searcher *Searcher
}

// NewPatchCore prepares a PatchCore scorer over bank.
func NewPatchCore(rt *ort.Runtime, bank *NormalBank, opts SearchOptions) (*PatchCore, error) {
	if err := bank.Validate(); err != nil {
		return nil, fmt.Errorf("patchcore: %w", err)
	}
	opts.Source = bank.Source
	s, err := NewSearcher(rt, bank.Features, opts)
	if err != nil {
		return nil, fmt.Errorf("patchcore: %w", err)
	}
	return &PatchCore{Searcher: s}, nil
}

// Close frees the searcher.
func (p *PatchCore) Close() error { return p.Searcher.Close() }

// PatchScores returns each patch's distance to its nearest normal entry.
func (p *PatchCore) PatchScores(ctx context.Context, q *mat.Matrix) ([]float32, error) {
	dist, _, err := p.Searcher.Search(ctx, q, 1)
	if err != nil {
		return nil, fmt.Errorf("patchcore scores: %w", err)
	}
	return dist, nil
}

package pipeline

import (
	"context"
	"fmt"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/mapper"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
)

// MapSigma is the Gaussian smoothing of anomaly maps (METHOD.md §5).
const MapSigma = 4

// Scorer scores patch features with a trained model. It is not safe for
// concurrent use.
type Scorer struct {
	m      *Model
	normal banks.NeighbourSearcher
	kn     *banks.Knowledge
	ms     *mapper.BankScorer
}

// NewScorer prepares the model's search and mapper sessions; search.Mode
// picks exact or fast search.
func NewScorer(rt *ort.Runtime, m *Model, search banks.SearchOptions) (*Scorer, error) {
	s := &Scorer{m: m}
	var err error
	if m.Meta.Method == PatchCore {
		so := search
		so.Source = m.Normal.Source
		if s.normal, err = banks.NewNeighbourSearcher(rt, m.Normal.Features, so); err != nil {
			return nil, fmt.Errorf("scorer: %w", err)
		}
		return s, nil
	}
	if m.Anomaly == nil || m.Mapper == nil {
		return nil, fmt.Errorf("scorer: DMAD model lacks its anomaly bank or mapper")
	}
	if s.kn, err = banks.NewKnowledge(rt, m.Normal, m.Anomaly, banks.KnowledgeOptions{Search: search}); err != nil {
		return nil, fmt.Errorf("scorer: %w", err)
	}
	if s.ms, err = mapper.NewBankScorer(rt, m.Mapper, m.Normal.Features, m.Anomaly.Features, m.Meta.Attention); err != nil {
		s.kn.Close()
		return nil, fmt.Errorf("scorer: %w", err)
	}
	return s, nil
}

// Close frees the sessions.
func (s *Scorer) Close() error {
	if s.normal != nil {
		s.normal.Close()
	}
	if s.kn != nil {
		s.kn.Close()
	}
	if s.ms != nil {
		s.ms.Close()
	}
	return nil
}

// PatchScores returns the anomaly score of every row of q. source, when not
// nil, gives each row's image id so bank entries of the same image are
// skipped (used for training images only).
func (s *Scorer) PatchScores(ctx context.Context, q *mat.Matrix, source []int32) ([]float32, error) {
	score, _, err := s.PatchParts(ctx, q, source)
	return score, err
}

// PatchParts returns every row's anomaly score and its distance to the
// nearest normal-bank entry (for PatchCore the two are the same slice).
// source is as for PatchScores.
func (s *Scorer) PatchParts(ctx context.Context, q *mat.Matrix, source []int32) (score, dist []float32, err error) {
	if s.normal != nil {
		if source != nil {
			dist, _, err = s.normal.SearchExcluding(ctx, q, source, 1)
		} else {
			dist, _, err = s.normal.Search(ctx, q, 1)
		}
		return dist, dist, err
	}
	nb, err := s.kn.Neighbours(ctx, q, source, s.m.Meta.Attention)
	if err != nil {
		return nil, nil, err
	}
	return partsFrom(ctx, s.kn, s.ms, q, nb)
}

// partsFrom is DMAD's PatchParts from neighbours already searched: the
// mapper ms's scores from the neighbours' bank rows (ms was made for kn's
// banks). The banks' searches cost most of a scoring and do not depend on
// the mapper, so the checkpoints of one training share them (see
// validationItems).
func partsFrom(ctx context.Context, kn *banks.Knowledge, ms *mapper.BankScorer, q *mat.Matrix, nb *banks.Neighbours) (score, dist []float32, err error) {
	if err := nb.Check(q.Rows()); err != nil {
		return nil, nil, err
	}
	side := func(n banks.Nearest) (mapper.Neighbours, []float32) {
		d := make([]float32, q.Rows())
		for r := range d {
			d[r] = n.Dist[r*n.K]
		}
		return mapper.Neighbours{K: n.K, Idx: n.Idx, Coef: kn.Coefficients(n, nb.Attention)}, d
	}
	nn, dn := side(nb.Normal)
	na, da := side(nb.Anomaly)
	score, err = ms.Score(ctx, q, nn, na, dn, da)
	return score, dn, err
}

// ImageResult is one scored image.
type ImageResult struct {
	// Score is the image score: mean of the top-5 mapper patch scores
	// (METHOD.md §5).
	Score float32
	// Max is the largest mapper patch score.
	Max float32
	// Patches are the anomaly map's patch scores on the H0×W0 grid,
	// row-major: for DMAD the fusion of the mapper's scores and the
	// calibrated distance (Meta.MapFusion), for PatchCore the distance.
	Patches []float32
	// Mapper and Distance are DMAD's two per-patch signals (nil for
	// PatchCore): the mapper's scores and the distances to the normal bank.
	Mapper, Distance []float32
}

// ScoreImages scores many images, concatenating several per search run for
// throughput. categories, when not nil, holds each image's category, which
// selects its map fusion (MapFusion.For); "" or nil: the model's default.
// report gets a progress.Score event after each group.
func (s *Scorer) ScoreImages(ctx context.Context, feats []*mat.Matrix, categories []string, report progress.Func) ([]ImageResult, error) {
	if categories != nil && len(categories) != len(feats) {
		return nil, fmt.Errorf("score images: %d categories for %d images", len(categories), len(feats))
	}
	out := make([]ImageResult, len(feats))
	const group = 16
	for from := 0; from < len(feats); from += group {
		to := min(from+group, len(feats))
		q, err := mat.Append(feats[from:to]...)
		if err != nil {
			return nil, err
		}
		scores, dists, err := s.PatchParts(ctx, q, nil)
		if err != nil {
			return nil, err
		}
		off := 0
		for i := from; i < to; i++ {
			n := feats[i].Rows()
			p := scores[off : off+n : off+n]
			d := dists[off : off+n : off+n]
			off += n
			mx, top := heatmap.ImageScore(p)
			out[i] = ImageResult{Score: top, Max: mx, Patches: p}
			if s.normal == nil {
				out[i].Mapper, out[i].Distance = p, d
				f := s.m.Meta.MapFusion
				if categories != nil {
					f = f.For(categories[i])
				}
				out[i].Patches = f.Fuse(nil, p, d)
			}
		}
		report.Send(progress.Event{Stage: progress.Score, Done: to, Total: len(feats)})
	}
	return out, nil
}

// Map turns patch scores on an h0×w0 grid into an outH×outW anomaly map:
// bilinear upsampling and Gaussian smoothing with σ = MapSigma.
func Map(patches []float32, h0, w0, outH, outW int) []float32 {
	return heatmap.AnomalyMap(patches, h0, w0, outH, outW, MapSigma)
}

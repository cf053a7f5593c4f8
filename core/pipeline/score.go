package pipeline

import (
	"context"
	"fmt"
	"maps"
	"slices"

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

	// The fast search routes images of a known category to their
	// category's part of the banks (see prepareRoutes).
	rt     *ort.Runtime
	search banks.SearchOptions
	routes map[string]*route
}

// route is the search of one category's part of the banks: normal for
// PatchCore, kn for DMAD.
type route struct {
	normal banks.NeighbourSearcher
	kn     *banks.Knowledge
}

// InspectionFastDims is the fast search's projected dimension for scoring
// images to inspect (not for training, whose knowledge, threshold images
// and weak-label rounds keep banks.FastOptions' default of 64). Both banks'
// searches took a fifth less time at 48 (alternated, banks of
// magnetic_tile's sizes) with fast metrics within 0.0002 of exact on the
// benchmark; models trained with 48-dimension knowledge lost up to 0.0005
// image AUROC, so training keeps 64.
const InspectionFastDims = 48

// InspectionListRows is the fast search's list size for scoring images to
// inspect (see banks.FastOptions.ListRows).
const InspectionListRows = 256

// ForInspection is search with the fast search's dimension and list size for
// scoring images to inspect (InspectionFastDims, InspectionListRows) unless
// it sets them.
func ForInspection(search banks.SearchOptions) banks.SearchOptions {
	if search.Mode != banks.SearchFast {
		return search
	}
	if search.Fast.Dims == 0 {
		search.Fast.Dims = InspectionFastDims
	}
	if search.Fast.ListRows == 0 {
		search.Fast.ListRows = InspectionListRows
	}
	return search
}

// NewScorer prepares the model's search and mapper sessions; search.Mode
// picks exact or fast search.
func NewScorer(rt *ort.Runtime, m *Model, search banks.SearchOptions) (*Scorer, error) {
	s := &Scorer{m: m, rt: rt, search: search}
	var err error
	if m.Meta.Method == PatchCore {
		so := search
		so.Source = m.Normal.Source
		if s.normal, err = banks.NewNeighbourSearcher(rt, m.Normal.Features, so); err != nil {
			return nil, fmt.Errorf("scorer: %w", err)
		}
		if err := s.prepareRoutes(); err != nil {
			s.Close()
			return nil, err
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
	if err := s.prepareRoutes(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// prepareRoutes prepares, for the fast search, every routable category's
// part of the banks (Meta.CategoryImages, which Fit keeps to categories
// the backbone tells apart): the bank entries its training images gave,
// and the anomaly bank's entries from no image (synthetic defects). Like
// the whole banks' searchers, the parts are made once per scorer. Exact
// search always searches the whole banks, so what it finds does not depend
// on the category given.
func (s *Scorer) prepareRoutes() error {
	if s.search.Mode != banks.SearchFast {
		return nil
	}
	for _, category := range slices.Sorted(maps.Keys(s.m.Meta.CategoryImages)) {
		ids := s.m.Meta.CategoryImages[category]
		// A category with no entries in a bank keeps the whole banks.
		nrows := partRows(s.m.Normal.Source, ids, false)
		if len(nrows) == 0 {
			continue
		}
		r := &route{}
		var err error
		if s.kn == nil {
			r.normal, err = banks.NewPartSearcher(s.rt, s.m.Normal.Features, s.m.Normal.Source, nrows, s.search)
		} else {
			arows := partRows(s.m.Anomaly.Source, ids, true)
			if len(arows) == 0 {
				continue
			}
			r.kn, err = s.kn.Part(s.rt, nrows, arows, s.search)
		}
		if err != nil {
			return fmt.Errorf("scorer: %s's part of the banks: %w", category, err)
		}
		if s.routes == nil {
			s.routes = map[string]*route{}
		}
		s.routes[category] = r
	}
	return nil
}

// partRows returns the rows of a bank whose source (each row's image id)
// is one of ids, and with orNone also the rows from no image
// (banks.NoSource): a category's part of the bank.
func partRows(source, ids []int32, orNone bool) []int {
	mine := make(map[int32]bool, len(ids))
	for _, id := range ids {
		mine[id] = true
	}
	var rows []int
	for r, id := range source {
		if mine[id] || (orNone && id == banks.NoSource) {
			rows = append(rows, r)
		}
	}
	return rows
}

// runEnd returns the end of the run of items from, from+1, … (of n) that
// share key(from), at most limit long: the images one search call takes
// together, which must share one route.
func runEnd(from, n, limit int, key func(i int) string) int {
	to := from + 1
	for to < n && to-from < limit && key(to) == key(from) {
		to++
	}
	return to
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
	for _, r := range s.routes {
		if r.normal != nil {
			r.normal.Close()
		}
		if r.kn != nil {
			r.kn.Close()
		}
	}
	return nil
}

// routeFor returns the searchers for an image of category: its part of
// the banks where prepareRoutes made one, else the whole banks.
func (s *Scorer) routeFor(category string) (banks.NeighbourSearcher, *banks.Knowledge) {
	if r, ok := s.routes[category]; ok {
		return r.normal, r.kn
	}
	return s.normal, s.kn
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
	return s.partsWith(ctx, s.normal, s.kn, q, source)
}

// partsIn is PatchParts for rows of an image of category, searched in
// that category's part of the banks where the scorer routes it.
func (s *Scorer) partsIn(ctx context.Context, category string, q *mat.Matrix, source []int32) (score, dist []float32, err error) {
	normal, kn := s.routeFor(category)
	return s.partsWith(ctx, normal, kn, q, source)
}

// partsWith is PatchParts with the given searchers (the whole banks' or
// a category's part, see routeFor).
func (s *Scorer) partsWith(ctx context.Context, normal banks.NeighbourSearcher, kn *banks.Knowledge, q *mat.Matrix, source []int32) (score, dist []float32, err error) {
	if s.normal != nil {
		if source != nil {
			dist, _, err = normal.SearchExcluding(ctx, q, source, 1)
		} else {
			dist, _, err = normal.Search(ctx, q, 1)
		}
		return dist, dist, err
	}
	nb, err := kn.Neighbours(ctx, q, source, s.m.Meta.Attention)
	if err != nil {
		return nil, nil, err
	}
	return partsFrom(ctx, kn, s.ms, q, nb)
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
// selects its map fusion (MapFusion.For) and, with the fast search, the
// part of the banks searched (see routeFor); "" or nil: the model's
// default fusion and the whole banks. report gets a progress.Score event
// after each group.
func (s *Scorer) ScoreImages(ctx context.Context, feats []*mat.Matrix, categories []string, report progress.Func) ([]ImageResult, error) {
	if categories != nil && len(categories) != len(feats) {
		return nil, fmt.Errorf("score images: %d categories for %d images", len(categories), len(feats))
	}
	out := make([]ImageResult, len(feats))
	const group = 16
	catOf := func(i int) string {
		if categories == nil {
			return ""
		}
		return categories[i]
	}
	for from, to := 0, 0; from < len(feats); from = to {
		// A group shares one route: it ends early where the category
		// changes.
		to = runEnd(from, len(feats), group, catOf)
		q, err := mat.Append(feats[from:to]...)
		if err != nil {
			return nil, err
		}
		scores, dists, err := s.partsIn(ctx, catOf(from), q, nil)
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
				out[i].Patches = s.m.Meta.MapFusion.For(catOf(i)).Fuse(nil, p, d)
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

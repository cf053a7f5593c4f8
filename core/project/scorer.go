package project

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"sync"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/pipeline"
)

// ImageScorer scores single image files with one stored model, keeping the
// encoder and the model's sessions loaded between images: the engine of
// live inspection (`workstation watch`, the GUI's live view). It writes
// nothing to the project, so the project may be open read-only. It is safe
// for concurrent use (calls are serialised).
type ImageScorer struct {
	mu      sync.Mutex
	enc     *encoder.Encoder
	sc      *pipeline.Scorer
	model   *pipeline.Model
	version int
}

// ImageScore is one scored image.
type ImageScore struct {
	// Score is the image anomaly score.
	Score float32
	// Threshold is the decision threshold of the image's category (the
	// model's global threshold when it has none for that category).
	Threshold float32
	// Map is the anomaly map, MapSize×MapSize (the encoder's input geometry).
	Map     []float32
	MapSize int
	// Image is the decoded image (EXIF orientation applied), kept so an
	// overlay needs no second decode.
	Image image.Image
}

// NewImageScorer loads a stored model (version ≤ 0: the active one) and
// prepares its sessions, searching nearest neighbours the way mode says
// (a live line wants banks.SearchFast). Close it when done.
func (s *Session) NewImageScorer(version int, mode banks.SearchMode) (*ImageScorer, error) {
	m, rec, err := s.loadModel(version)
	if err != nil {
		return nil, err
	}
	enc, err := s.Encoder()
	if err != nil {
		return nil, err
	}
	if enc.ID() != m.Meta.EncoderID {
		return nil, fmt.Errorf("model %d was trained on features %s but the project now computes %s: restore the project's backbone/input size or retrain", rec.Version, m.Meta.EncoderID, enc.ID())
	}
	sc, err := pipeline.NewScorer(s.rt, m, pipeline.ForInspection(banks.SearchOptions{Mode: mode}))
	if err != nil {
		return nil, err
	}
	return &ImageScorer{enc: enc, sc: sc, model: m, version: rec.Version}, nil
}

// Model is the model the scorer uses.
func (is *ImageScorer) Model() *pipeline.Model { return is.model }

// Version is the project's version of that model.
func (is *ImageScorer) Version() int { return is.version }

// Threshold is the decision threshold of category: the model's
// per-category threshold when it stores one, its global threshold
// otherwise.
func (is *ImageScorer) Threshold(category string) float32 {
	if t, ok := is.model.Meta.CategoryThresholds[category]; ok {
		return t
	}
	return is.model.Meta.Threshold
}

// MapRange is the range used to colour the scorer's anomaly maps, as in
// the stored runs' thumbnails.
func (is *ImageScorer) MapRange() (lo, hi float64) {
	m := is.model.Meta
	return float64(m.MapLo), float64(max(m.MapHi, m.Threshold*1.5, m.MapLo+1e-6))
}

// HeatmapTop is where overlays' colour ramp ends, in threshold units
// (heatmap.Style.Top): the top of MapRange over the global threshold, at
// least 1.25, as in the inspection report.
func (is *ImageScorer) HeatmapTop() float64 {
	_, hi := is.MapRange()
	return math.Max(1.25, heatmap.Normalise(hi, float64(is.model.Meta.Threshold)))
}

// Score encodes and scores the image file at path; category selects the
// threshold ("" or an unknown one: the global threshold).
func (is *ImageScorer) Score(ctx context.Context, path, category string) (ImageScore, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.sc == nil {
		return ImageScore{}, fmt.Errorf("score %s: the scorer is closed", path)
	}
	var img image.Image
	feats, err := is.enc.EncodeFunc(ctx, 1, func(int) (image.Image, error) {
		m, err := imageio.Load(path)
		img = m
		return m, err
	}, nil)
	if err != nil {
		return ImageScore{}, err
	}
	res, err := is.sc.ScoreImages(ctx, feats, []string{category}, nil)
	if err != nil {
		return ImageScore{}, fmt.Errorf("score %s: %w", path, err)
	}
	h0, w0 := is.enc.Grid()
	size := is.enc.Config().InputSize
	return ImageScore{Score: res[0].Score, Threshold: is.Threshold(category),
		Map: pipeline.Map(res[0].Patches, h0, w0, size, size), MapSize: size, Image: img}, nil
}

// Warm scores one blank image of category through the whole path: the
// encoder, the bank searches of the category's route and the mapper. Their
// sessions, and the fast search's bank lists, are otherwise made by the
// first image (about half a second on a realistic bank, twice the usual
// verdict), so a live line calls Warm before it starts watching.
func (is *ImageScorer) Warm(ctx context.Context, category string) error {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.sc == nil {
		return errors.New("warm the scorer: it is closed")
	}
	size := is.enc.Config().InputSize
	blank := image.NewGray(image.Rect(0, 0, size, size))
	for i := range blank.Pix {
		blank.Pix[i] = 128
	}
	feats, err := is.enc.EncodeFunc(ctx, 1, func(int) (image.Image, error) { return blank, nil }, nil)
	if err != nil {
		return fmt.Errorf("warm the scorer: %w", err)
	}
	if _, err := is.sc.ScoreImages(ctx, feats, []string{category}, nil); err != nil {
		return fmt.Errorf("warm the scorer: %w", err)
	}
	return nil
}

// Close frees the model's sessions (the encoder belongs to the session).
func (is *ImageScorer) Close() error {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.sc == nil {
		return nil
	}
	err := is.sc.Close()
	is.sc = nil
	return err
}

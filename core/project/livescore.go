package project

import (
	"context"
	"path/filepath"
	"slices"
	"time"

	"github.com/dmad/workstation/core/folderwatch"
	"github.com/dmad/workstation/core/live"
	"github.com/dmad/workstation/core/verdict"
)

// VerdictScorer turns the scorer into live inspection's per-file scorer:
// each image gets a verdict at category's threshold (threshold ≥ 0
// overrides it), and each fail a heatmap overlay queued on overlays (see
// live.OverlayWriter: the verdict names the overlay's path and is
// published before the PNG is written). `workstation watch` and the GUI's
// live view share it.
func (is *ImageScorer) VerdictScorer(overlays *live.OverlayWriter, category string, threshold float64) folderwatch.Scorer {
	top := is.HeatmapTop()
	return func(ctx context.Context, path string) (verdict.Verdict, error) {
		sc, err := is.Score(ctx, path, category)
		if err != nil {
			return verdict.Verdict{}, err
		}
		v := verdict.Verdict{Path: path, Category: category, Score: float64(sc.Score), Threshold: float64(sc.Threshold),
			ModelVersion: is.Version(), ScoredAt: time.Now()}
		if threshold >= 0 {
			v.Threshold = threshold
		}
		v.Decision = verdict.Decide(v.Score, v.Threshold)
		if v.Decision == verdict.Fail {
			overlays.Queue(&v, sc.Image, sc.Map, sc.MapSize, sc.MapSize, top)
		}
		return v, nil
	}
}

// DefaultCategory is the category of images watched in the folder input
// when none is given: the model's only category, or the folder's name when
// the model has such a category; "" (the global threshold) otherwise.
func (is *ImageScorer) DefaultCategory(input string) string {
	cats := is.model.Meta.Categories
	if len(cats) == 1 {
		return cats[0]
	}
	if base := filepath.Base(filepath.Clean(input)); slices.Contains(cats, base) {
		return base
	}
	return ""
}

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
// overrides it), and each fail a heatmap overlay under out (see
// live.SaveOverlay). `workstation watch` and the GUI's live view share it.
func (is *ImageScorer) VerdictScorer(out, category string, threshold float64) folderwatch.Scorer {
	lo, hi := is.MapRange()
	return func(ctx context.Context, path string) (verdict.Verdict, error) {
		sc, err := is.Score(ctx, path, category)
		if err != nil {
			return verdict.Verdict{}, err
		}
		v := verdict.Verdict{Path: path, Category: category, Score: float64(sc.Score), Threshold: float64(sc.Threshold),
			ModelVersion: is.Version()}
		if threshold >= 0 {
			v.Threshold = threshold
		}
		v.Decision = verdict.Decide(v.Score, v.Threshold)
		if v.Decision == verdict.Fail {
			if err := live.SaveOverlay(out, &v, sc.Image, sc.Map, sc.MapSize, sc.MapSize, lo, hi); err != nil {
				return verdict.Verdict{}, err
			}
		}
		v.ScoredAt = time.Now()
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

package project

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/review"
	"github.com/dmad/workstation/storage"
)

// Thresholds returns the decision thresholds of a model version (≤ 0: the
// active one): those stored in its record — where the reviewer's edits go —
// or, for a record without them (an imported model), the thresholds the
// model was trained with. Results, Inspect, the CLI, live inspection and
// the report all decide with these.
func (s *Session) Thresholds(version int) (review.Thresholds, error) {
	rec, err := s.modelRecord(version)
	if err != nil {
		return review.Thresholds{}, err
	}
	return recordThresholds(rec)
}

func (s *Session) modelRecord(version int) (storage.ModelRecord, error) {
	if version <= 0 {
		rec, err := s.Store.ActiveModel()
		if err != nil {
			return rec, fmt.Errorf("project %s has no active model: train one first: %w", s.Store.Path(), err)
		}
		return rec, nil
	}
	return s.Store.Model(version)
}

// recordThresholds reads a record's thresholds, falling back on its metadata.
func recordThresholds(rec storage.ModelRecord) (review.Thresholds, error) {
	if t, ok := review.FromRecord(rec.Thresholds); ok {
		return t, nil
	}
	var meta pipeline.Meta
	if err := json.Unmarshal(rec.Config, &meta); err != nil {
		return review.Thresholds{}, fmt.Errorf("model %d: no thresholds in its record and its metadata is unreadable: %w", rec.Version, err)
	}
	return metaThresholds(meta), nil
}

func metaThresholds(m pipeline.Meta) review.Thresholds {
	t := review.Thresholds{Global: float64(m.Threshold)}
	for c, v := range m.CategoryThresholds {
		t.Set(c, float64(v))
	}
	return t
}

// applyThresholds makes a loaded model's metadata carry the version's
// current thresholds, so every path that decides from Meta (scorer, CLI)
// uses the reviewer's values.
func applyThresholds(m *pipeline.Model, t review.Thresholds) {
	m.Meta.Threshold = float32(t.Global)
	m.Meta.CategoryThresholds = map[string]float32{}
	for c, v := range t.PerCategory {
		m.Meta.CategoryThresholds[c] = float32(v)
	}
}

// SetThresholds stores a model version's thresholds (≤ 0: the active one)
// in its record. The version stays the same: thresholds are a decision rule
// over its scores, not part of what was trained (the metadata keeps the
// trained values; ResetThresholds restores them).
func (s *Session) SetThresholds(version int, t review.Thresholds) error {
	rec, err := s.modelRecord(version)
	if err != nil {
		return err
	}
	return s.Store.SetModelThresholds(rec.Version, t.Record())
}

// TrainedThresholds are the thresholds a version was trained with.
func (s *Session) TrainedThresholds(version int) (review.Thresholds, error) {
	rec, err := s.modelRecord(version)
	if err != nil {
		return review.Thresholds{}, err
	}
	var meta pipeline.Meta
	if err := json.Unmarshal(rec.Config, &meta); err != nil {
		return review.Thresholds{}, fmt.Errorf("model %d metadata: %w", rec.Version, err)
	}
	return metaThresholds(meta), nil
}

// Override is a reviewer's decision on one image's verdict under one model
// version (see storage.Review).
type Override = storage.Review

// ReviewerName is the name overrides are recorded under: the OS user
// (review.CurrentUser).
func ReviewerName() string { return review.CurrentUser() }

// OverrideKey is the key of an image in overrides: its project id when it
// has one, its path otherwise.
func OverrideKey(id uint64, path string) string {
	if id != 0 {
		return storage.ImageKey(id)
	}
	return path
}

// SetOverride records a reviewer's decision for a model version (≤ 0: the
// active one). An empty Who is filled with ReviewerName, a zero When with
// now.
func (s *Session) SetOverride(version int, o Override) error {
	rec, err := s.modelRecord(version)
	if err != nil {
		return err
	}
	if o.Who == "" {
		o.Who = ReviewerName()
	}
	return s.Store.PutReview(rec.Version, o)
}

// ClearOverride removes the decision on image under a model version.
func (s *Session) ClearOverride(version int, image string) error {
	rec, err := s.modelRecord(version)
	if err != nil {
		return err
	}
	return s.Store.DeleteReview(rec.Version, image)
}

// Overrides are a model version's reviewer decisions, by image key.
func (s *Session) Overrides(version int) (map[string]Override, error) {
	rec, err := s.modelRecord(version)
	if err != nil {
		return nil, err
	}
	return s.Store.Reviews(rec.Version)
}

// VersionComparison is two model versions evaluated on the same test images.
type VersionComparison struct {
	A, B *EvalResult
	// ThresholdsA and ThresholdsB are the thresholds each decided with.
	ThresholdsA, ThresholdsB review.Thresholds
	review.Comparison
}

// CompareVersions evaluates versions a and b on the project's test split
// (nothing is stored) and compares their metrics and verdicts image by
// image, each at its own thresholds.
func (s *Session) CompareVersions(ctx context.Context, a, b int, report progress.Func) (*VersionComparison, error) {
	out := &VersionComparison{}
	for i, v := range []int{a, b} {
		res, err := s.Evaluate(ctx, EvalOptions{Version: v, NoSave: true}, report)
		if err != nil {
			return nil, fmt.Errorf("compare: model %d: %w", v, err)
		}
		t, err := s.Thresholds(res.ModelVersion)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			out.A, out.ThresholdsA = res, t
		} else {
			out.B, out.ThresholdsB = res, t
		}
	}
	out.Comparison = review.Compare(ScoredItems(out.A.Images), ScoredItems(out.B.Images), out.ThresholdsA, out.ThresholdsB)
	return out, nil
}

// ScoredItems turns scored images into review items keyed like overrides.
func ScoredItems(sc []Scored) []review.Item {
	out := make([]review.Item, len(sc))
	for i, x := range sc {
		out[i] = review.Item{Key: OverrideKey(x.Record.ID, x.Record.Path), Path: x.Record.Path, Category: x.Record.Category,
			Label: LabelName(x.Record.Label), Score: float64(x.Score)}
	}
	return out
}

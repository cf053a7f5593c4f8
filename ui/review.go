package ui

import (
	"path/filepath"
	"time"

	"github.com/dmad/workstation/core/review"
)

// Verdicts of a scored image.
const (
	VerdictPass = review.Pass
	VerdictFail = review.Fail
)

// Override is a reviewer's decision on the model's verdict for one image
// under one model version: accepted (the model was right) or rejected (the
// final verdict is the other one).
type Override struct {
	// Image is OverrideKey of the scored image.
	Image string
	// ModelVerdict is the model's verdict when the reviewer decided.
	ModelVerdict string
	Accepted     bool
	// Score and Threshold are those in force at the decision.
	Score, Threshold float64
	// Who is the reviewer (the OS user name), When the time of the decision.
	Who  string
	When time.Time
}

// Final is the verdict after review.
func (o Override) Final() string {
	if o.Accepted {
		return o.ModelVerdict
	}
	if o.ModelVerdict == VerdictFail {
		return VerdictPass
	}
	return VerdictFail
}

// Reviewer is implemented by projects that keep a model version's decision
// thresholds (global and per category) and reviewers' overrides: Results
// and Inspect then decide with those thresholds and offer accept/reject.
// A separate interface so that projects without it keep compiling; they
// decide with Run.Threshold and cannot record overrides.
type Reviewer interface {
	// Thresholds returns the thresholds of a model (ModelInfo.ID).
	Thresholds(modelID string) (review.Thresholds, error)
	// SetThresholds stores them with the model (no new model version).
	SetThresholds(modelID string, t review.Thresholds) error
	// Overrides returns a model's overrides by image key.
	Overrides(modelID string) (map[string]Override, error)
	// SetOverride records a decision; an empty Who is the OS user.
	SetOverride(modelID string, o Override) error
	// ClearOverride removes the decision on an image.
	ClearOverride(modelID, image string) error
}

// OverrideKey identifies a scored image in overrides: "id:<project id>"
// for project images, the file path for images outside the project.
func OverrideKey(s ScoredImage) string {
	if s.ImageID != "" {
		return "id:" + s.ImageID
	}
	return s.Path
}

// defectType is the defect type of a scored image: the MVTec-style parent
// folder of a defect ("broken_large"), "good" for a good one, "" unknown.
func defectType(s ScoredImage, known map[string]string) string {
	if t, ok := known[s.ImageID]; ok && s.ImageID != "" {
		if t == "" && s.Label == LabelGood {
			return "good"
		}
		return t
	}
	switch s.Label {
	case LabelGood:
		return "good"
	case LabelDefect:
		if p := filepath.Base(filepath.Dir(s.Path)); p != s.Category && p != "." {
			return p
		}
	}
	return ""
}

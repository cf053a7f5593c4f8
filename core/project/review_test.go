package project

import (
	"context"
	"math"
	"testing"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/storage"
)

// checkReview edits a version's thresholds and records overrides, on a
// session with trained versions 1 and 3: the scorer, the evaluation and the
// comparison all use the edited values, and the version count is unchanged.
func checkReview(t *testing.T, s *Session) {
	t.Helper()
	ctx := context.Background()
	trained, err := s.TrainedThresholds(1)
	if err != nil {
		t.Fatal(err)
	}
	th, err := s.Thresholds(1)
	if err != nil || !th.Equal(trained) || len(th.PerCategory) != 2 {
		t.Fatalf("thresholds of v1 %+v (trained %+v): %v", th, trained, err)
	}
	cats := make([]string, 0, 2)
	for c := range th.PerCategory {
		cats = append(cats, c)
	}
	edited := th.Clone()
	edited.Set(cats[0], 123.5)
	edited.Global = 77
	before, _ := s.Store.Models()
	if err := s.SetThresholds(1, edited); err != nil {
		t.Fatal(err)
	}
	if after, _ := s.Store.Models(); len(after) != len(before) {
		t.Errorf("editing thresholds made %d versions from %d", len(after), len(before))
	}
	if got, _ := s.Thresholds(1); !got.Equal(edited) {
		t.Errorf("thresholds read back %+v, want %+v", got, edited)
	}
	is, err := s.NewImageScorer(1, banks.SearchExact)
	if err != nil {
		t.Fatal(err)
	}
	if got := is.Threshold(cats[0]); got != 123.5 {
		t.Errorf("scorer threshold of %s: %v, want the edited 123.5", cats[0], got)
	}
	if got := is.Threshold("no-such-category"); got != 77 {
		t.Errorf("scorer global threshold %v, want 77", got)
	}
	is.Close()
	res, err := s.Evaluate(ctx, EvalOptions{Version: 1, NoSave: true}, nil)
	if err != nil || res.Threshold != 77 {
		t.Fatalf("evaluation threshold %v (%v), want the edited 77", res.Threshold, err)
	}

	// Overrides: who/when filled, keyed by image, per version.
	img := res.Images[0]
	key := OverrideKey(img.Record.ID, img.Record.Path)
	if err := s.SetOverride(1, Override{Image: key, ModelVerdict: storage.VerdictPass, Accepted: false, Score: float64(img.Score), Threshold: 77}); err != nil {
		t.Fatal(err)
	}
	ov, err := s.Overrides(1)
	if err != nil || len(ov) != 1 || ov[key].Who == "" || ov[key].When.IsZero() || ov[key].FinalVerdict() != storage.VerdictFail {
		t.Fatalf("overrides %+v: %v", ov, err)
	}
	if other, _ := s.Overrides(3); len(other) != 0 {
		t.Errorf("override of v1 shows under v3: %+v", other)
	}
	if err := s.ClearOverride(1, key); err != nil {
		t.Fatal(err)
	}
	if ov, _ := s.Overrides(1); len(ov) != 0 {
		t.Errorf("%d overrides after clearing", len(ov))
	}

	// Back to the trained thresholds, then compare v1 with v3.
	if err := s.SetThresholds(1, trained); err != nil {
		t.Fatal(err)
	}
	cmp, err := s.CompareVersions(ctx, 1, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Common != 18 || cmp.A.ModelVersion != 1 || cmp.B.ModelVersion != 3 || cmp.CountsA[""].Images != 18 {
		t.Fatalf("comparison: %d common, versions %d/%d", cmp.Common, cmp.A.ModelVersion, cmp.B.ModelVersion)
	}
	// Every listed change really differs at each version's thresholds.
	for _, c := range cmp.Changed {
		if c.VerdictA == c.VerdictB || (c.ScoreA >= c.ThresholdA) == (c.ScoreB >= c.ThresholdB) {
			t.Errorf("change %+v is not one", c)
		}
	}
	changed := 0
	byKey := map[string]float64{}
	for _, x := range cmp.B.Images {
		byKey[OverrideKey(x.Record.ID, x.Record.Path)] = float64(x.Score)
	}
	for _, x := range cmp.A.Images {
		k := OverrideKey(x.Record.ID, x.Record.Path)
		if (float64(x.Score) >= cmp.ThresholdsA.For(x.Record.Category)) != (byKey[k] >= cmp.ThresholdsB.For(x.Record.Category)) {
			changed++
		}
	}
	if changed != len(cmp.Changed) || math.IsNaN(cmp.ThresholdsB.Global) {
		t.Errorf("%d changed verdicts listed, %d counted", len(cmp.Changed), changed)
	}
}

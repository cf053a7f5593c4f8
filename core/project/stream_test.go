package project

import (
	"context"
	"slices"
	"testing"

	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/storage"
)

// Training features are cached in the project and, over budget, read back
// image by image instead of held: both ways give the same features.
func TestTrainingFeaturesStreamOverBudget(t *testing.T) {
	s, ds, _ := newTestSession(t, synth.DatasetOptions{Categories: 1, TrainPerCategory: 6, TestGoodPerCategory: 1, TestDefectPerCategory: 1, Size: 48, Seed: 2})
	ctx := context.Background()
	if _, err := s.ImportDataset(ctx, ds, nil); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Store.Images(storage.ImageFilter{})
	enc, err := s.Encoder()
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := s.trainingFeatures(ctx, enc, recs, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if !s.Store.HasFeatures(enc.ID(), r.ID) {
			t.Fatalf("features of %s not cached in the project", r.Path)
		}
	}
	held, err := s.trainingFeatures(ctx, enc, recs, 1<<40, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if streamed[i].Features != nil || streamed[i].Load == nil || held[i].Features == nil {
			t.Fatalf("image %d: streamed holds %v, held holds %v", i, streamed[i].Features != nil, held[i].Features != nil)
		}
		f, err := streamed[i].Load()
		if err != nil {
			t.Fatal(err)
		}
		if streamed[i].Patches != f.Rows() || !slices.Equal(f.RawData(), held[i].Features.RawData()) {
			t.Fatalf("image %d: streamed features differ from held ones", i)
		}
	}
}

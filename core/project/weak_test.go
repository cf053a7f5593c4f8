package project

import (
	"context"
	"testing"

	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/core/train"
	"github.com/dmad/workstation/storage"
)

// Images marked defective without a mask (weak anomalies) make training
// semi-supervised through their top patches, and evaluation leaves them out.
func TestWeakAnomalies(t *testing.T) {
	s, ds, _ := newTestSession(t, synth.DatasetOptions{Categories: 2, TrainPerCategory: 10, TestGoodPerCategory: 4, TestDefectPerCategory: 6, Size: 64, Seed: 5})
	ctx := context.Background()
	if _, err := s.ImportDataset(ctx, ds, nil); err != nil {
		t.Fatal(err)
	}
	anomalous := storage.LabelAnomalous
	defects, err := s.Store.Images(storage.ImageFilter{Label: &anomalous})
	if err != nil {
		t.Fatal(err)
	}
	var weak []uint64
	perCat := map[string]int{}
	for _, r := range defects {
		if perCat[r.Category] < 2 {
			perCat[r.Category]++
			weak = append(weak, r.ID)
		}
	}
	if err := s.MarkWeak(weak, true); err != nil {
		t.Fatal(err)
	}
	tc := train.DefaultConfig(0)
	tc.Epochs, tc.BatchSize = 2, 256
	fit := pipeline.Options{CoresetRatio: 0.2, TrainPatches: 2000, Train: tc, Seed: 1}
	_, m, err := s.Train(ctx, TrainOptions{Semi: true, Fit: fit, OODImages: 6}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta.Regime != pipeline.Semi || m.Meta.WeakImages != 4 || m.Meta.SeenImages != 0 || m.Meta.MapFusion == nil {
		t.Fatalf("meta %+v", m.Meta)
	}
	test, err := s.testImages(m.Meta.Categories)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range test {
		for _, id := range weak {
			if r.ID == id {
				t.Fatalf("weak anomaly %s is evaluated", r.Path)
			}
		}
	}
	// Unmarked, they are test images again and training has no anomalies.
	if err := s.MarkWeak(weak, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Train(ctx, TrainOptions{Semi: true, Fit: fit, OODImages: 6}, nil); err == nil {
		t.Fatal("semi-supervised training without seen or weak anomalies succeeded")
	}
}

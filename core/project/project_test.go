package project

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/encoder/encodertest"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/core/train"
	"github.com/dmad/workstation/storage"
)

// newTestSession writes the synthetic dataset opts into a temporary folder
// (root), opens a new project there on the tiny test backbone at input size
// opts.Size, and opens the dataset for import; the session and its runtime
// are closed when the test ends.
func newTestSession(t *testing.T, opts synth.DatasetOptions) (s *Session, ds *dataset.Dataset, root string) {
	t.Helper()
	root = t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(root, "xdg"))
	data := filepath.Join(root, "data")
	if err := synth.WriteDataset(data, opts); err != nil {
		t.Fatal(err)
	}
	bb, err := encodertest.Write(filepath.Join(root, "bb"), 3)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := ort.Open(ort.Options{Threads: 2, Device: ort.DeviceCPU})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	s, _, err = Open(filepath.Join(root, "p.db"), OpenOptions{Create: true}, rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.SetBackbone(bb, opts.Size); err != nil {
		t.Fatal(err)
	}
	if ds, err = dataset.Open(data, dataset.Options{}); err != nil {
		t.Fatal(err)
	}
	return s, ds, root
}

func TestTrainRetrainEvaluateInspect(t *testing.T) {
	s, ds, root := newTestSession(t, synth.DatasetOptions{Categories: 2, TrainPerCategory: 10, TestGoodPerCategory: 4, TestDefectPerCategory: 6, Size: 64, Seed: 4})
	if got := s.Store.Settings().Backbone; got != "tiny" {
		t.Fatalf("project backbone %q, want the card name", got)
	}
	ctx := context.Background()
	recs, err := s.ImportDataset(ctx, ds, nil)
	if err != nil || len(recs) != len(ds.Samples) {
		t.Fatalf("import: %v (%d records)", err, len(recs))
	}
	// Importing again updates, never duplicates.
	if _, err := s.ImportDataset(ctx, ds, nil); err != nil {
		t.Fatal(err)
	}
	all, _ := s.Store.Images(storage.ImageFilter{})
	if len(all) != len(ds.Samples) {
		t.Fatalf("%d images after a second import of %d", len(all), len(ds.Samples))
	}

	tc := train.DefaultConfig(0)
	tc.Epochs, tc.BatchSize = 2, 256
	fit := pipeline.Options{CoresetRatio: 0.2, TrainPatches: 2000, Train: tc, Seed: 1}
	if _, _, err := s.Train(ctx, TrainOptions{Semi: true, Fit: fit}, nil); err == nil {
		t.Fatal("semi-supervised training without seen anomalies succeeded")
	}
	rec1, m1, err := s.Train(ctx, TrainOptions{Fit: fit, OODImages: 6}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec1.Version != 1 || m1.Meta.Regime != pipeline.Unsupervised {
		t.Fatalf("first model %d %s", rec1.Version, m1.Meta.Regime)
	}

	// Annotated defects arrive: mark two as seen anomalies and retrain.
	_, moved := dataset.SemiSplit(ds, 1, 1)
	var ids []uint64
	for _, smp := range moved {
		r, err := s.Store.ImageByPath(smp.Path)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if err := s.MarkSeen(ids, true); err != nil {
		t.Fatal(err)
	}
	var stages []progress.Stage
	rec2, m2, err := s.Train(ctx, TrainOptions{Semi: true, Fit: fit, OODImages: 6}, func(e progress.Event) {
		if !slices.Contains(stages, e.Stage) {
			stages = append(stages, e.Stage)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec2.Version != 2 || m2.Meta.Regime != pipeline.Semi || m2.Meta.SeenImages != 2 {
		t.Fatalf("second model %d %s seen %d", rec2.Version, m2.Meta.Regime, m2.Meta.SeenImages)
	}
	// The normal images did not change: the bank and the synthetic defects
	// are reused, not rebuilt.
	if slices.Contains(stages, progress.Bank) || slices.Contains(stages, progress.Synthetic) {
		t.Fatalf("retraining rebuilt the normal bank or the synthetic defects: stages %v", stages)
	}
	if !slices.Equal(m1.Normal.Features.RawData(), m2.Normal.Features.RawData()) {
		t.Fatal("reused normal bank differs")
	}
	// The first model had no seen anomalies: its anomaly bank changes
	// make-up, so the mapper is trained anew (pipeline.Options.Start).
	if epochs := countEpochs(t, s, rec2.Version); epochs != 2 || m2.Meta.RefitSteps != 0 {
		t.Fatalf("first semi-supervised training ran %d epochs (want 2), %d fine-tuning steps (want 0)", epochs, m2.Meta.RefitSteps)
	}
	// Retraining a semi-supervised model refits it: its mapper is
	// fine-tuned for a quarter of the epochs (at least one).
	rec3, m3, err := s.Train(ctx, TrainOptions{Semi: true, Fit: fit, OODImages: 6}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if epochs := countEpochs(t, s, rec3.Version); epochs != 1 || m3.Meta.RefitSteps == 0 || m3.Normal.Len() != m2.Normal.Len() {
		t.Fatalf("fine-tune ran %d epochs (want 1), %d fine-tuning steps", epochs, m3.Meta.RefitSteps)
	}
	// A full retrain rebuilds the bank.
	stages = nil
	if _, _, err := s.Train(ctx, TrainOptions{Semi: true, Fit: fit, OODImages: 6, FullRetrain: true}, func(e progress.Event) {
		if !slices.Contains(stages, e.Stage) {
			stages = append(stages, e.Stage)
		}
	}); err != nil || !slices.Contains(stages, progress.Bank) {
		t.Fatalf("full retrain: %v, stages %v", err, stages)
	}
	if active, _ := s.Store.ActiveModel(); active.Version != 4 {
		t.Fatalf("active model %d", active.Version)
	}

	res, err := s.Evaluate(ctx, EvalOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 2 categories × 10 test images, minus the 2 seen anomalies.
	if len(res.Images) != 18 || res.ModelVersion != 4 || len(res.PerCategory) != 2 || res.RunID == 0 {
		t.Fatalf("evaluation: %d images, model %d, %d categories, run %d", len(res.Images), res.ModelVersion, len(res.PerCategory), res.RunID)
	}
	run, err := s.Store.Run(res.RunID)
	if err != nil || len(run.PerImage) != 18 {
		t.Fatalf("stored run: %v", err)
	}
	if am, err := s.Store.RunMap(res.RunID, 0); err != nil || am == nil {
		t.Fatalf("stored map: %v", err)
	}

	ins, err := s.Inspect(ctx, 1, ds.Test()[:3], nil)
	if err != nil || len(ins.Images) != 3 || ins.Images[0].MapSize != 64 {
		t.Fatalf("inspect: %v", err)
	}
	checkImageScorer(t, s, ins, root)
	checkReview(t, s)
}

// checkImageScorer scores inspected images one at a time with an
// ImageScorer: the scores match the batch inspection's, and a corrupt
// file is an error that names it.
func checkImageScorer(t *testing.T, s *Session, ins *InspectResult, root string) {
	t.Helper()
	is, err := s.NewImageScorer(0, banks.SearchExact)
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	if is.Version() < 1 || is.Model() == nil {
		t.Fatalf("scorer of the active model: version %d", is.Version())
	}
	scorer1, err := s.NewImageScorer(1, banks.SearchExact)
	if err != nil {
		t.Fatal(err)
	}
	defer scorer1.Close()
	ctx := context.Background()
	// Scores after a warm-up are the inspection's too.
	if err := scorer1.Warm(ctx, ins.Images[0].Record.Category); err != nil {
		t.Fatalf("warm the scorer: %v", err)
	}
	for _, im := range ins.Images {
		got, err := scorer1.Score(ctx, im.Record.Path, im.Record.Category)
		if err != nil {
			t.Fatal(err)
		}
		if d := float64(got.Score - im.Score); d > 1e-4 || d < -1e-4 {
			t.Errorf("%s: single-image score %v, batch inspection %v", im.Record.Path, got.Score, im.Score)
		}
		if got.MapSize != im.MapSize || len(got.Map) != len(im.Map) {
			t.Errorf("%s: map %d (%d values), inspection's %d", im.Record.Path, got.MapSize, len(got.Map), im.MapSize)
		}
		if want := ins.Model.Meta.Threshold; got.Threshold <= 0 || (len(ins.Model.Meta.CategoryThresholds) == 0 && got.Threshold != want) {
			t.Errorf("threshold %v (model's %v)", got.Threshold, want)
		}
	}
	bad := filepath.Join(root, "corrupt.png")
	if err := os.WriteFile(bad, []byte("\x89PNG not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := is.Score(ctx, bad, ""); err == nil || !strings.Contains(err.Error(), "corrupt.png") {
		t.Errorf("corrupt file: %v, want an error naming it", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := is.Warm(cancelled, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("warm with a cancelled context: %v, want context.Canceled", err)
	}
	if err := is.Close(); err != nil {
		t.Fatal(err)
	}
	if err := is.Warm(ctx, ""); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("warm a closed scorer: %v, want an error saying it is closed", err)
	}
}

// countEpochs reads a model's training log and counts distinct epochs.
func countEpochs(t *testing.T, s *Session, version int) int {
	t.Helper()
	log, err := s.Store.TrainingLog(version)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[float64]bool{}
	for _, raw := range log {
		var e struct{ Epoch, Epochs float64 }
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		seen[e.Epoch] = true
		if e.Epochs != 1 {
			return int(e.Epochs)
		}
	}
	return len(seen)
}

package project

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/encoder/encodertest"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/storage"
)

// Training features are cached in the project and, over budget, read back
// image by image instead of held: both ways give the same features.
func TestTrainingFeaturesStreamOverBudget(t *testing.T) {
	root := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(root, "xdg"))
	data := filepath.Join(root, "data")
	if err := synth.WriteDataset(data, synth.DatasetOptions{Categories: 1, TrainPerCategory: 6, TestGoodPerCategory: 1, TestDefectPerCategory: 1, Size: 48, Seed: 2}); err != nil {
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
	defer rt.Close()
	s, _, err := Open(filepath.Join(root, "p.db"), OpenOptions{Create: true}, rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetBackbone(bb, 48); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ds, err := dataset.Open(data, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
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

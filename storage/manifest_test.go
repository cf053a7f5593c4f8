package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"maps"
	"testing"

	"github.com/dmad/workstation/core/mat"
	bolt "go.etcd.io/bbolt"
)

// storedManifest reads meta/manifest and a full recount of every bucket.
func storedManifest(t *testing.T, p *Project) (stored, recount map[string]int) {
	t.Helper()
	err := p.view(func(tx *bolt.Tx) error {
		var m manifest
		if err := json.Unmarshal(tx.Bucket(bktMeta).Get(keyManifest), &m); err != nil {
			return err
		}
		stored = m.Counts
		var err error
		recount, err = countKeys(tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return stored, recount
}

// TestManifestStaysExact runs every write API and checks after each that
// the manifest, which update recounts only for the buckets a write names,
// equals a full recount: a write that changes a bucket it does not name
// fails here instead of making the next open report damage.
func TestManifestStaysExact(t *testing.T) {
	ctx := context.Background()
	p := newProject(t)
	var model *ModelRecord
	var run *RunRecord
	steps := []struct {
		name string
		do   func() error
	}{
		{"PutImage", func() error { return p.PutImage(&ImageRecord{Path: "/d/a.png", Category: "bottle"}) }},
		{"PutImages", func() error {
			return p.PutImages([]*ImageRecord{{Path: "/d/b.png", Category: "bottle"}, {Path: "/d/c.png", Category: "tile"}})
		}},
		{"PutMask", func() error { return p.PutMask(1, image.NewGray(image.Rect(0, 0, 4, 4))) }},
		{"PutFeatures", func() error { return p.PutFeatures("enc", 1, mat.New(2, 3)) }},
		{"PutFeaturesBatch", func() error {
			return p.PutFeaturesBatch(ctx, "enc", []FeatureEntry{{ImageID: 2, Features: mat.New(2, 3)}, {ImageID: 3, Features: mat.New(2, 3)}})
		}},
		{"PutBlob", func() error { _, err := p.PutBlob(ctx, "bank", "n1", bytes.NewReader(randBytes(1, 9000))); return err }},
		{"SaveModel", func() error { model, _ = saveTestModel(t, p, 7, [3]int{3000, 10, 1}, true); return nil }},
		{"AppendTrainingLog", func() error { return p.AppendTrainingLog(model.Version, map[string]int{"epoch": 1}) }},
		{"SetActiveModel", func() error { return p.SetActiveModel(model.Version) }},
		{"PutReview", func() error {
			return p.PutReview(model.Version, Review{Image: ImageKey(1), ModelVerdict: VerdictFail, Accepted: false, Who: "t"})
		}},
		{"SetModelThresholds", func() error { return p.SetModelThresholds(model.Version, map[string]float64{"image": 0.5}) }},
		{"DeleteReview", func() error { return p.DeleteReview(model.Version, ImageKey(1)) }},
		{"SaveRun", func() error {
			run = &RunRecord{ModelVersion: model.Version, Name: "eval", PerImage: []ImageResult{{ImageID: 1, Category: "bottle", Score: 1}}}
			return p.SaveRun(run)
		}},
		{"PutSettings", func() error { s := p.Settings(); s.Device = "cpu"; return p.PutSettings(s) }},
		{"PutCategory", func() error { return p.PutCategory(Category{Name: "bottle"}) }},
		{"ImportModel", func() error {
			var file bytes.Buffer
			if err := p.ExportModel(ctx, model.Version, &file); err != nil {
				return err
			}
			_, err := p.ImportModel(ctx, &file)
			return err
		}},
		{"DeleteMask", func() error { return p.DeleteMask(1) }},
		{"DeleteImage", func() error { return p.DeleteImage(2) }},
		{"DeleteRun", func() error { return p.DeleteRun(run.ID) }},
		{"DeleteCategory", func() error { return p.DeleteCategory("bottle") }},
		{"DeleteBlob", func() error { return p.DeleteBlob("bank", "n1") }},
		{"DropFeatures", func() error { return p.DropFeatures("enc") }},
		{"DeleteModel", func() error { return p.DeleteModel(model.Version) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		stored, recount := storedManifest(t, p)
		if !maps.Equal(stored, recount) {
			t.Fatalf("after %s: manifest %v, recount %v", s.name, stored, recount)
		}
	}
}

package storage

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// writeV1Fixture writes a schema-1 project with raw bbolt: images keyed by
// path without hash, masks keyed by path as bare PNG.
func writeV1Fixture(t *testing.T, path string, images []v1Image, masks map[string]*image.Gray) {
	t.Helper()
	db, err := bolt.Open(path, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket([]byte("meta"))
		meta.Put([]byte("schema_version"), []byte("1"))
		meta.Put([]byte("name"), []byte("old project"))
		settings, _ := tx.CreateBucket([]byte("settings"))
		settings.Put([]byte("json"), []byte(`{"backbone":"mobilenet_v2_imagenet","input_size":256}`))
		imgs, _ := tx.CreateBucket([]byte("images"))
		for _, im := range images {
			js, _ := json.Marshal(im)
			if err := imgs.Put([]byte(im.Path), js); err != nil {
				return err
			}
		}
		mb, _ := tx.CreateBucket([]byte("masks"))
		for path, m := range masks {
			var buf bytes.Buffer
			png.Encode(&buf, m)
			if err := mb.Put([]byte(path), buf.Bytes()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateV1(t *testing.T) {
	dir := t.TempDir()
	present := writePNG(t, dir, "present.png", 20, 12, 3)
	missing := filepath.Join(dir, "missing.png")
	mask := image.NewGray(image.Rect(0, 0, 20, 12))
	mask.Pix[5] = 255
	path := filepath.Join(dir, "old.dmad")
	writeV1Fixture(t, path, []v1Image{
		{Path: present, Category: "bottle", Split: SplitTest, Label: LabelAnomalous, Defect: "broken"},
		{Path: missing, Category: "bottle", Split: SplitTrain, Label: LabelNormal, Defect: "good"},
	}, map[string]*image.Gray{present: mask})

	// Read-only cannot migrate.
	if _, err := Open(path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "needs migration") {
		t.Fatalf("read-only open of v1: %v", err)
	}
	p, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Settings().InputSize != 256 || p.Settings().FeatureCache != FeatureFloat32 && p.Settings().FeatureCache != FeatureFloat16 {
		t.Fatalf("settings %+v", p.Settings())
	}
	rec, err := p.ImageByPath(present)
	if err != nil {
		t.Fatal(err)
	}
	sha, _, _, _ := HashImageFile(present)
	if rec.ID == 0 || rec.SHA256 != sha || rec.Width != 20 || rec.Height != 12 || rec.Defect != "broken" || rec.Label != LabelAnomalous {
		t.Fatalf("migrated record %+v", rec)
	}
	m, err := p.Mask(rec.ID)
	if err != nil || !bytes.Equal(m.Pix, mask.Pix) {
		t.Fatalf("migrated mask: %v", err)
	}
	gone, err := p.ImageByPath(missing)
	if err != nil || gone.SHA256 != "" || gone.Split != SplitTrain {
		t.Fatalf("record of missing file %+v, %v", gone, err)
	}
	// The file is now schema 2, new buckets work, and it reopens without migrating.
	if _, err := p.PutBlob(t.Context(), "banks", "n", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	p.Close()
	p, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var v int
	p.view(func(tx *bolt.Tx) (err error) { v, err = schemaVersionOf(tx); return })
	if v != SchemaVersion {
		t.Fatalf("schema after migration %d", v)
	}
	changes, err := p.CheckImages(t.Context(), nil)
	if err != nil || len(changes) != 1 || changes[0].Path != missing || changes[0].Status != ImageMissing {
		t.Fatalf("check after migration %+v, %v", changes, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.dmad")
	db, _ := bolt.Open(newer, 0o644, nil)
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket(bktMeta)
		return b.Put(keySchema, []byte("99"))
	})
	db.Close()
	foreign := filepath.Join(dir, "foreign.db")
	db, _ = bolt.Open(foreign, 0o644, nil)
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("stuff")); return err })
	db.Close()
	junk := filepath.Join(dir, "junk.dmad")
	os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 1000), 0o644)

	for _, c := range []struct{ path, want string }{
		{newer, "project was written by a newer workstation (schema 99 > 2); upgrade"},
		{foreign, "not a workstation project"},
		{junk, junk},
		{filepath.Join(dir, "absent.dmad"), "absent.dmad"},
	} {
		p, err := Open(c.path, Options{})
		if err == nil {
			p.Close()
			t.Errorf("Open(%s) succeeded", c.path)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%s) = %v, want it to mention %q", c.path, err, c.want)
		}
	}
}

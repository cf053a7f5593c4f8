package storage

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newProject(t)
	src.chunk = 4 << 10
	rec, data := saveTestModel(t, src, 42, [3]int{50000, 7000, 123}, true)
	var file bytes.Buffer
	if err := src.ExportModel(ctx, rec.Version, &file); err != nil {
		t.Fatal(err)
	}
	if err := src.ExportModel(ctx, 99, &file); err == nil {
		t.Fatal("export of a missing version succeeded")
	}

	dst := newProject(t)
	dst.chunk = 1 << 10                                // different chunking on the other station
	saveTestModel(t, dst, 1, [3]int{10, 10, 10}, true) // occupies version 1
	v, err := dst.ImportModel(ctx, bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := dst.Model(v)
	if err != nil {
		t.Fatal(err)
	}
	if v != 2 || got.Active || got.BackboneID != rec.BackboneID || string(got.Config) != string(rec.Config) ||
		got.Metrics["image_auroc"] != 0.97 || got.Thresholds["bottle"] != 1.5 || got.Notes != rec.Notes ||
		!strings.Contains(got.Origin, `version 1 of project "test"`) {
		t.Fatalf("imported record %+v", got)
	}
	for name, want := range data {
		if b := readPart(t, dst, v, name); !bytes.Equal(b, want) {
			t.Fatalf("imported part %s differs", name)
		}
	}
	if err := dst.VerifyModel(v); err != nil {
		t.Fatal(err)
	}
	if err := dst.SetActiveModel(v); err != nil {
		t.Fatal(err)
	}

	// Damaged or truncated files are refused and leave nothing behind.
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"flipped part byte", flipByte(file.Bytes(), file.Len()-100), "checksum mismatch"},
		{"flipped header byte", flipByte(file.Bytes(), 40), "header"},
		{"truncated", file.Bytes()[:file.Len()-10], "truncated"},
		{"not a model", []byte("hello world, this is a text file"), "not a workstation model file"},
	} {
		before, _ := dst.Models()
		_, err := dst.ImportModel(ctx, bytes.NewReader(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to mention %q", c.name, err, c.want)
		}
		if after, _ := dst.Models(); len(after) != len(before) {
			t.Errorf("%s: a refused import stored a model", c.name)
		}
	}

	// Another backbone: refused, naming both.
	other := newProject(t)
	s := other.Settings()
	s.Backbone = "wide_resnet50_2"
	if err := other.PutSettings(s); err != nil {
		t.Fatal(err)
	}
	_, err = other.ImportModel(ctx, bytes.NewReader(file.Bytes()))
	if err == nil || !strings.Contains(err.Error(), `"mobilenet_v2_imagenet"`) || !strings.Contains(err.Error(), `"wide_resnet50_2"`) {
		t.Fatalf("backbone mismatch: %v", err)
	}
	if ms, _ := other.Models(); len(ms) != 0 {
		t.Fatal("refused import stored a model")
	}
}

func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

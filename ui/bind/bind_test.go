package bind

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/sharedtest"
	"github.com/dmad/workstation/storage"
	"github.com/dmad/workstation/ui"
)

// newTestEngine opens a 1-thread CPU runtime and an engine with no backbone
// (the adapter tests never encode).
func newTestEngine(t testing.TB) *Engine {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	rt, err := ort.Open(ort.Options{Threads: 1, Device: ort.DeviceCPU})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	e, err := NewEngine(Options{Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newTestProject(t testing.TB, e *Engine) *Project {
	t.Helper()
	p, err := e.CreateProject(filepath.Join(t.TempDir(), "p.dmad"), "Line 3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func writePNG(t testing.TB, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// images writes n 40×30 grey PNGs into dir and returns their paths.
func images(t *testing.T, dir string, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		img := image.NewGray(image.Rect(0, 0, 40, 30))
		img.SetGray(i, i, color.Gray{200})
		p := filepath.Join(dir, string(rune('a'+i))+".png")
		writePNG(t, p, img)
		out = append(out, p)
	}
	return out
}

func TestIDRoundTrip(t *testing.T) {
	tests := []struct {
		id   uint64
		text string
	}{
		{1, "1"}, {42, "42"}, {math.MaxUint64, "18446744073709551615"},
	}
	for _, tt := range tests {
		if got := formatID(tt.id); got != tt.text {
			t.Errorf("formatID(%d) = %q, want %q", tt.id, got, tt.text)
		}
		if got, err := parseID(tt.text); err != nil || got != tt.id {
			t.Errorf("parseID(%q) = %d, %v", tt.text, got, err)
		}
	}
	for _, bad := range []string{"", "0", "-1", "run1", "1.5"} {
		if _, err := parseID(bad); err == nil {
			t.Errorf("parseID(%q) accepted", bad)
		}
	}
}

func TestAddImagesMasksAndSeen(t *testing.T) {
	e := newTestEngine(t)
	p := newTestProject(t, e)
	src := t.TempDir()
	paths := images(t, src, 3)
	mask := image.NewGray(image.Rect(0, 0, 40, 30))
	for x := 5; x < 15; x++ {
		mask.SetGray(x, 10, color.Gray{255})
	}
	maskPath := filepath.Join(src, "masks", "c_mask.png")
	writePNG(t, maskPath, mask)
	recs := []ui.ImageRecord{
		{Path: paths[0], Category: "bolt", Split: ui.SplitTrain, Label: ui.LabelGood},
		{Path: paths[1], Category: "bolt", Split: ui.SplitTest, Label: ui.LabelGood},
		{Path: paths[2], Category: "nut", Split: ui.SplitTest, Label: ui.LabelDefect, DefectType: "crack", MaskPath: maskPath},
	}
	got, err := p.AddImages(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("AddImages returned %d records", len(got))
	}
	for i, r := range got {
		if r.ID == "" || r.Path != recs[i].Path || r.Category != recs[i].Category || r.Split != recs[i].Split ||
			r.Label != recs[i].Label || r.DefectType != recs[i].DefectType || r.HasMask != (i == 2) {
			t.Errorf("record %d = %+v, from %+v", i, r, recs[i])
		}
	}
	// Importing the same files again updates, not duplicates.
	if _, err := p.AddImages(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	all, err := p.Images()
	if err != nil || len(all) != 3 {
		t.Fatalf("Images: %d, %v", len(all), err)
	}
	if _, err := p.AddImages(context.Background(), []ui.ImageRecord{{Path: paths[0]}}); err == nil {
		t.Error("an image without category was imported")
	}

	img, err := p.LoadImage(got[0].ID)
	if err != nil || img.Bounds().Dx() != 40 || img.Bounds().Dy() != 30 {
		t.Fatalf("LoadImage: %v %v", img, err)
	}
	m, err := p.Mask(got[2].ID)
	if err != nil || m.GrayAt(7, 10).Y != 255 || m.GrayAt(7, 11).Y != 0 {
		t.Fatalf("imported mask: %v", err)
	}
	if _, err := p.Mask(got[0].ID); !errors.Is(err, ui.ErrNoMask) {
		t.Errorf("Mask of an image without one: %v, want ErrNoMask", err)
	}

	// Seen anomalies need a mask; marking a good image relabels it a defect.
	if err := p.SetSeenAnomaly(got[1].ID, true); err == nil || !strings.Contains(err.Error(), "no mask") {
		t.Errorf("seen without mask: %v", err)
	}
	if err := p.SaveMask(got[1].ID, image.NewGray(image.Rect(0, 0, 10, 10))); err == nil {
		t.Error("a mask of the wrong size was saved")
	}
	if err := p.SaveMask(got[1].ID, mask); err != nil {
		t.Fatal(err)
	}
	if err := p.SetSeenAnomaly(got[1].ID, true); err != nil {
		t.Fatal(err)
	}
	all, _ = p.Images()
	if r := all[1]; !r.HasMask || !r.SeenAnomaly || r.Label != ui.LabelDefect {
		t.Errorf("after mask + seen: %+v", r)
	}
	// A weak anomaly needs no mask; marking relabels the image a defect.
	if err := p.SetWeakAnomaly(got[0].ID, true); err != nil {
		t.Fatal(err)
	}
	all, _ = p.Images()
	if r := all[0]; !r.WeakAnomaly || r.HasMask || r.Label != ui.LabelDefect {
		t.Errorf("after weak: %+v", r)
	}
	if err := p.SetWeakAnomaly(got[0].ID, false); err != nil {
		t.Fatal(err)
	}
	if all, _ = p.Images(); all[0].WeakAnomaly {
		t.Errorf("after unmarking weak: %+v", all[0])
	}
	// Deleting the mask unmarks the seen anomaly.
	if err := p.SaveMask(got[1].ID, nil); err != nil {
		t.Fatal(err)
	}
	all, _ = p.Images()
	if r := all[1]; r.HasMask || r.SeenAnomaly {
		t.Errorf("after deleting the mask: %+v", r)
	}
	for _, bad := range []string{"", "999", "x"} {
		if _, err := p.LoadImage(bad); err == nil {
			t.Errorf("LoadImage(%q) succeeded", bad)
		}
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	e := newTestEngine(t)
	p := newTestProject(t, e)
	s, err := p.Settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.Threshold != 0 || s.InputSize != 224 || s.Regime != ui.SemiSupervised {
		t.Errorf("new project settings %+v: want no threshold (the model's), 224 px, semi-supervised", s)
	}
	tests := []ui.Settings{
		{Regime: ui.Unsupervised, Device: ui.DeviceCPU, Epochs: 7, InputSize: 320, CoresetRatio: 0.1, Memory: 3 << 30, Threshold: 1.25},
		{Regime: ui.SemiSupervised, Device: ui.DeviceGPU, Epochs: 1, InputSize: 224, CoresetRatio: 0.02, Threshold: -0.5},
		{Regime: ui.SemiSupervised, Device: ui.DeviceAuto, Epochs: 20, InputSize: 256, CoresetRatio: 1, Threshold: 0},
	}
	for _, want := range tests {
		if err := p.SaveSettings(want); err != nil {
			t.Fatal(err)
		}
		got, err := p.Settings()
		if err != nil || got != want {
			t.Errorf("settings round trip: got %+v, %v; want %+v", got, err, want)
		}
	}
	// Reopened from the file, storage's own fields agree.
	path := p.Path()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q, err := e.OpenProject(path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st := q.Session().Store.Settings()
	if st.InputSize != 256 || st.Device != "auto" || q.Name() != "Line 3" {
		t.Errorf("stored settings %+v, name %q", st, q.Name())
	}
	if got, _ := q.Settings(); got != tests[2] {
		t.Errorf("reopened settings %+v", got)
	}
}

func TestOpenLockedProject(t *testing.T) {
	e := newTestEngine(t)
	p := newTestProject(t, e)
	_, err := e.OpenProject(p.Path())
	if !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("second open of %s: %v, want ErrLocked", p.Path(), err)
	}
	if _, err := e.OpenProject(filepath.Join(t.TempDir(), "missing.dmad")); err == nil {
		t.Error("opening a missing file succeeded")
	}
}

func TestSaveRunRoundTrip(t *testing.T) {
	e := newTestEngine(t)
	p := newTestProject(t, e)
	paths := images(t, t.TempDir(), 2)
	recs, err := p.AddImages(context.Background(), []ui.ImageRecord{
		{Path: paths[0], Category: "c", Split: ui.SplitTest, Label: ui.LabelGood},
		{Path: paths[1], Category: "c", Split: ui.SplitTest, Label: ui.LabelDefect},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A 128×128 map with a bright square in the top-left quarter.
	mk := func(v float32) []float32 {
		m := make([]float32, 128*128)
		for y := range 64 {
			for x := range 64 {
				m[y*128+x] = v
			}
		}
		return m
	}
	run := ui.Run{Name: "batch", ModelID: "3", Threshold: 0.4,
		Images: []ui.ScoredImage{
			{ImageID: recs[0].ID, Path: paths[0], Category: "c", Score: 0.2, Label: ui.LabelGood, Map: mk(0.5), MapW: 128, MapH: 128},
			{ImageID: recs[1].ID, Path: paths[1], Category: "c", Score: 0.9, Label: ui.LabelDefect, Map: mk(2), MapW: 128, MapH: 128},
			{Path: "/elsewhere/x.png", Category: "c", Score: 0.5},
		},
		PerCategory: map[string]ui.Metrics{"c": {ImageAUROC: 1, ImageAP: 0.9, PixelAUROC: 0.8, PRO: 0.7}}}
	saved, err := p.SaveRun(run)
	if err != nil {
		t.Fatal(err)
	}
	if saved.ID == "" {
		t.Fatal("SaveRun assigned no ID")
	}
	again, err := p.SaveRun(saved)
	if err != nil || again.ID != saved.ID {
		t.Fatalf("saving a stored run again: %v, ID %q → %q", err, saved.ID, again.ID)
	}
	// A fresh adapter reads the run back from the file.
	path := p.Path()
	p.Close()
	q, err := e.OpenProject(path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	runs, err := q.Runs()
	if err != nil || len(runs) != 1 {
		t.Fatalf("Runs: %d, %v", len(runs), err)
	}
	r := runs[0]
	if r.ID != saved.ID || r.Name != "batch" || r.ModelID != "3" || len(r.Images) != 3 {
		t.Fatalf("run read back: %+v", r)
	}
	if got := r.PerCategory["c"]; got != run.PerCategory["c"] {
		t.Errorf("metrics %+v, want %+v", got, run.PerCategory["c"])
	}
	for i, s := range r.Images {
		w := run.Images[i]
		if s.ImageID != w.ImageID || s.Path != w.Path || s.Score != w.Score || s.Label != w.Label {
			t.Errorf("image %d: %+v, want %+v", i, s, w)
		}
	}
	// Maps come back at 64×64, same scale: bright quarter, zero elsewhere.
	s := r.Images[1]
	if s.MapW != 64 || s.MapH != 64 || len(s.Map) != 64*64 {
		t.Fatalf("map %d×%d (%d values)", s.MapW, s.MapH, len(s.Map))
	}
	const tol = 2.0 / 255 * 2
	if v := s.Map[10*64+10]; math.Abs(float64(v)-2) > tol {
		t.Errorf("map inside the square %.3f, want 2", v)
	}
	if v := s.Map[50*64+50]; math.Abs(float64(v)) > tol {
		t.Errorf("map outside the square %.3f, want 0", v)
	}
	if v := r.Images[0].Map[10*64+10]; math.Abs(float64(v)-0.5) > tol {
		t.Errorf("first map inside the square %.3f, want 0.5", v)
	}
	if r.Images[2].Map != nil {
		t.Errorf("an image saved without a map has one")
	}
}

func TestScanFolder(t *testing.T) {
	e := newTestEngine(t)
	plain := t.TempDir()
	images(t, plain, 2)
	images(t, filepath.Join(plain, "sub"), 1)
	scan, err := e.ScanFolder(context.Background(), plain)
	if err != nil {
		t.Fatal(err)
	}
	if scan.Layout != "plain" || len(scan.Images) != 3 {
		t.Errorf("plain folder: layout %q, %d images", scan.Layout, len(scan.Images))
	}
	if _, err := e.ScanFolder(context.Background(), filepath.Join(plain, "missing")); err == nil {
		t.Error("scanning a missing folder succeeded")
	}
	empty := t.TempDir()
	if _, err := e.ScanFolder(context.Background(), empty); err == nil {
		t.Error("scanning an empty folder succeeded")
	}
}

func TestDetect(t *testing.T) {
	e := newTestEngine(t)
	d := e.Detect()
	if len(d.Providers) == 0 || d.Providers[0] != "cpu" || !strings.Contains(d.Description, "CPU (1 threads)") {
		t.Errorf("Detect = %+v", d)
	}
	if d.GPU != (len(d.Providers) > 1) {
		t.Errorf("GPU %v with providers %v", d.GPU, d.Providers)
	}
	if _, err := e.runtimeFor(ui.DeviceCPU); err != nil {
		t.Errorf("cpu runtime: %v", err)
	}
	if _, err := e.runtimeFor(ui.DeviceGPU); (err == nil) != d.GPU {
		t.Errorf("gpu runtime error %v with GPU %v", err, d.GPU)
	}
}

// sharedDir returns ../shared beside the module root, or skips.
func sharedDir(t *testing.T) string {
	t.Helper()
	sharedtest.Dir(t, "data", "industrial", "bottle")
	return sharedtest.Dir(t)
}

// TestScanSharedBottle recognises the real MVTec AD bottle category with
// its splits, labels and masks.
func TestScanSharedBottle(t *testing.T) {
	shared := sharedDir(t)
	e := newTestEngine(t)
	scan, err := e.ScanFolder(context.Background(), filepath.Join(shared, "data", "industrial", "bottle"))
	if err != nil {
		t.Fatal(err)
	}
	train, test, masks := 0, 0, 0
	for _, r := range scan.Images {
		if r.Category != "bottle" {
			t.Fatalf("category %q", r.Category)
		}
		if r.Split == ui.SplitTrain {
			train++
		} else {
			test++
		}
		if r.MaskPath != "" {
			masks++
			if r.Label != ui.LabelDefect || r.DefectType == "" {
				t.Errorf("masked image %s: label %q type %q", r.Path, r.Label, r.DefectType)
			}
		}
	}
	if scan.Layout != "mvtec" || train != 209 || test != 83 || masks != 63 {
		t.Errorf("bottle: layout %q, %d train, %d test, %d masks; want mvtec, 209, 83, 63", scan.Layout, train, test, masks)
	}
}

// TestOpenProjectLeavesEmptyFile: opening an empty or missing file fails
// and writes nothing (bbolt would have initialised the empty file).
func TestOpenProjectLeavesEmptyFile(t *testing.T) {
	e := newTestEngine(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.OpenProject(empty); err == nil {
		t.Fatal("opened an empty file as a project")
	}
	if st, err := os.Stat(empty); err != nil || st.Size() != 0 {
		t.Errorf("the empty file was rewritten: %v", err)
	}
	missing := filepath.Join(dir, "missing.db")
	if _, err := e.OpenProject(missing); err == nil {
		t.Fatal("opened a missing project")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("opening a missing project created it: %v", err)
	}
}

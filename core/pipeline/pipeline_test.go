package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/encoder/encodertest"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/ort/orttest"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/core/train"
)

func runtimeFor(t testing.TB) *ort.Runtime {
	t.Helper()
	return orttest.Open(t, 2)
}

// synthetic builds a dataset, the tiny encoder, and everyone's features.
type fixture struct {
	ds    *dataset.Dataset
	split *dataset.Dataset
	moved []dataset.Sample
	enc   *encoder.Encoder
	set   TrainSet
	// normalPaths are the files of set.Normal, in its order.
	normalPaths []string
	test        []dataset.Sample
	tfeats      []*mat.Matrix
}

func newFixture(t *testing.T, rt *ort.Runtime) *fixture {
	t.Helper()
	dir := t.TempDir()
	if err := synth.WriteDataset(dir, synth.DatasetOptions{Categories: 2, TrainPerCategory: 12, TestGoodPerCategory: 5, TestDefectPerCategory: 8, Size: 64, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	ds, err := dataset.Open(dir, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bb, err := encodertest.Backbone(9)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encoder.New(rt, encodertest.Card(), bb, encoder.Config{InputSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	f := &fixture{ds: ds, enc: enc}
	f.split, f.moved = dataset.SemiSplit(ds, 2, 1)
	ctx := context.Background()
	var normal []dataset.Sample
	for _, s := range f.split.Train() {
		if s.Label == dataset.Good {
			normal = append(normal, s)
		}
	}
	paths := func(ss []dataset.Sample) []string {
		var p []string
		for _, s := range ss {
			p = append(p, s.Path)
		}
		return p
	}
	f.normalPaths = paths(normal)
	nf, err := Encode(ctx, enc, f.normalPaths, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range normal {
		f.set.Normal = append(f.set.Normal, Image{ID: int32(i), Category: s.Category, Features: nf[i]})
	}
	sf, err := Encode(ctx, enc, paths(f.moved), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range f.moved {
		m, err := loadMask(s.MaskPath)
		if err != nil {
			t.Fatal(err)
		}
		f.set.Seen = append(f.set.Seen, Image{ID: int32(len(normal) + i), Category: s.Category, Features: sf[i], Mask: m})
	}
	if f.set.OOD, err = OODPatches(ctx, enc, paths(normal), 6, 1, nil); err != nil || f.set.OOD.Rows() == 0 {
		t.Fatalf("OOD patches: %v (%v rows)", err, f.set.OOD)
	}
	f.test = f.split.Test()
	if f.tfeats, err = Encode(ctx, enc, paths(f.test), nil, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func smallFit(method Method, enc *encoder.Encoder) Options {
	tc := train.DefaultConfig(enc.Dim())
	tc.Epochs, tc.BatchSize = 3, 256
	return Options{Method: method, CoresetRatio: 0.2, TrainPatches: 2000, Train: tc, Seed: 1,
		EncoderID: enc.ID(), Card: enc.Card(), Encoder: enc.Config()}
}

func TestFitScoreEvaluateRoundTrip(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	h0, w0 := f.enc.Grid()
	for _, c := range []struct {
		name   string
		method Method
		semi   bool
		regime string
	}{
		{"patchcore", PatchCore, false, Unsupervised},
		{"dmad unsupervised", DMAD, false, Unsupervised},
		{"dmad semi", DMAD, true, Semi},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := f.set
			if !c.semi {
				set.Seen = nil
			}
			var stages []progress.Stage
			m, err := Fit(ctx, rt, set, smallFit(c.method, f.enc), func(e progress.Event) {
				if len(stages) == 0 || stages[len(stages)-1] != e.Stage {
					stages = append(stages, e.Stage)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if m.Meta.Regime != c.regime || m.Meta.Method != c.method || len(m.Meta.Categories) != 2 {
				t.Fatalf("meta %+v", m.Meta)
			}
			if m.Normal.Len() == 0 || (c.method == DMAD) != (m.Mapper != nil) || m.Meta.Threshold == 0 {
				t.Fatalf("model incomplete: bank %d, mapper %v, threshold %v", m.Normal.Len(), m.Mapper != nil, m.Meta.Threshold)
			}
			if c.method == DMAD && (stages[0] != progress.Bank || !slices.Contains(stages, progress.Train) || !slices.Contains(stages, progress.Threshold)) {
				t.Fatalf("stages %v", stages)
			}
			res := scoreAll(t, rt, m, f.tfeats)
			items := make([]Scored, len(f.test))
			for i, s := range f.test {
				items[i] = Scored{Path: s.Path, Category: s.Category, Anomalous: s.Label == dataset.Defect, MaskPath: s.MaskPath, Result: res[i]}
				if len(res[i].Patches) != h0*w0 || res[i].Max < res[i].Score {
					t.Fatalf("image %d: %d patch scores, max %v < top-5 mean %v", i, len(res[i].Patches), res[i].Max, res[i].Score)
				}
			}
			per, mean, err := Evaluate(ctx, items, h0, w0, f.enc.Config())
			if err != nil {
				t.Fatal(err)
			}
			if len(per) != 2 {
				t.Fatalf("%d categories", len(per))
			}
			// Painted defects on synthetic textures are easy even for random
			// convolutions: a working pipeline ranks most of them above normal.
			if mean.ImageAUROC < 0.75 || mean.PixelAUROC < 0.75 {
				t.Fatalf("%s: mean metrics too low: %+v", c.name, mean)
			}

			// The model survives serialisation and scores identically.
			parts, err := m.Parts()
			if err != nil {
				t.Fatal(err)
			}
			blobs := map[string][]byte{}
			for k, r := range parts {
				b, _ := io.ReadAll(r)
				blobs[k] = b
			}
			m2, err := LoadModel(func(p string) (io.ReadCloser, error) {
				b, ok := blobs[p]
				if !ok {
					return nil, errors.New("no part " + p)
				}
				return io.NopCloser(bytes.NewReader(b)), nil
			})
			if err != nil {
				t.Fatal(err)
			}
			res2 := scoreAll(t, rt, m2, f.tfeats[:3])
			for i := range res2 {
				if res2[i].Score != res[i].Score {
					t.Fatalf("reloaded model scores %v, original %v", res2[i].Score, res[i].Score)
				}
			}
		})
	}
}

func TestFitErrorsAndCancel(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	if _, err := Fit(context.Background(), rt, TrainSet{}, smallFit(DMAD, f.enc), nil); err == nil {
		t.Fatal("fit without images succeeded")
	}
	set := f.set
	set.Seen = append([]Image(nil), set.Seen...)
	set.Seen[0].Mask = nil
	if _, err := Fit(context.Background(), rt, set, smallFit(DMAD, f.enc), nil); err == nil {
		t.Fatal("seen anomaly without mask accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Fit(ctx, rt, f.set, smallFit(DMAD, f.enc), func(e progress.Event) {
		if e.Stage == progress.Train {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled fit returned %v", err)
	}
}

func TestDirCache(t *testing.T) {
	m, err := mat.FromData(2, 3, []float32{1, -2, 3.5, 0, 1e-8, 7.001})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		float16 bool
		ext     string
		tol     float64 // relative error allowed (float16: 2^-11)
		abs     float64 // absolute error allowed near zero
	}{
		{"float16", true, ".f16", 1.0 / 2048, 6e-8},
		{"float32", false, ".f32", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "a.png")
			if err := os.WriteFile(img, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			c := &DirCache{Dir: filepath.Join(dir, "cache"), EncoderID: "enc", Float16: tc.float16}
			if _, ok := c.Get(img); ok {
				t.Fatal("empty cache hit")
			}
			if err := c.Put(img, m); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(c.Dir, "*"+tc.ext))
			if len(files) != 1 {
				t.Fatalf("cache files %v, want one %s", files, tc.ext)
			}
			if st, _ := os.Stat(files[0]); st.Size() != int64(8+len(m.RawData())*map[bool]int{true: 2, false: 4}[tc.float16]) {
				t.Fatalf("cache file of %d bytes", st.Size())
			}
			// Both settings read both encodings (an old float32 cache stays usable).
			for _, reader := range []*DirCache{c, {Dir: c.Dir, EncoderID: "enc", Float16: !tc.float16}} {
				got, ok := reader.Get(img)
				if !ok || got.Rows() != 2 || got.Cols() != 3 {
					t.Fatalf("cache miss or wrong shape: %v", got)
				}
				if r, c, ok := reader.Shape(img); !ok || r != 2 || c != 3 {
					t.Fatalf("Shape %d×%d (%v), want 2×3", r, c, ok)
				}
				for i, want := range m.RawData() {
					if d := math.Abs(float64(got.RawData()[i] - want)); d > tc.tol*math.Abs(float64(want))+tc.abs {
						t.Fatalf("value %d: %v, stored %v", i, got.RawData()[i], want)
					}
				}
			}
			other := &DirCache{Dir: c.Dir, EncoderID: "other"}
			if _, ok := other.Get(img); ok {
				t.Fatal("features of another encoder returned")
			}
			// A truncated file is a miss (encoded again), not bad features.
			if err := os.Truncate(files[0], 13); err != nil {
				t.Fatal(err)
			}
			if _, ok := c.Get(img); ok {
				t.Fatal("truncated cache file read")
			}
			if _, _, ok := c.Shape(img); ok {
				t.Fatal("truncated cache file's shape read")
			}
			if err := os.Truncate(files[0], 5); err != nil {
				t.Fatal(err)
			}
			if _, _, ok := c.Shape(img); ok {
				t.Fatal("shape read from a file shorter than its header")
			}
		})
	}
}

func TestMaskAt(t *testing.T) {
	g := imageGray(8, 4, func(x, y int) bool { return x >= 4 }) // right half
	got := MaskAt(g, encoder.Config{InputSize: 4})
	want := []bool{false, false, true, true}
	for y := range 4 {
		for x := range 4 {
			if got[y*4+x] != want[x] {
				t.Fatalf("pixel %d,%d = %v", x, y, got[y*4+x])
			}
		}
	}
}

// TestFitFastKnowledgeMatchesExact: the training patches' knowledge comes
// from the fast cascade by default; it re-ranks its candidates exactly and
// keeps the same-image exclusion, so where it finds the exact neighbours
// (as on this fixture) the fitted model scores exactly as one fitted on
// exactly searched knowledge.
func TestFitFastKnowledgeMatchesExact(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	scores := map[bool][]float32{}
	for _, exact := range []bool{false, true} {
		o := smallFit(DMAD, f.enc)
		o.ExactKnowledge = exact
		m, err := Fit(ctx, rt, f.set, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range scoreAll(t, rt, m, f.tfeats) {
			scores[exact] = append(scores[exact], r.Patches...)
		}
	}
	fast, exact := scores[false], scores[true]
	if len(fast) == 0 || len(fast) != len(exact) {
		t.Fatalf("%d and %d patch scores", len(fast), len(exact))
	}
	for i := range fast {
		if d := math.Abs(float64(fast[i] - exact[i])); d > 1e-4*math.Max(1, math.Abs(float64(exact[i]))) {
			t.Fatalf("patch %d: %v with fast training knowledge, %v with exact", i, fast[i], exact[i])
		}
	}
}

// TestFitFastThresholdMatchesExact: a first fit scores its threshold
// images by the fast cascade unless ExactThreshold is set; where the
// cascade finds the exact neighbours (as on this fixture) the thresholds
// and the fusion's calibration agree, and the setting changes nothing else.
func TestFitFastThresholdMatchesExact(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	models := map[bool]*Model{}
	for _, exact := range []bool{false, true} {
		o := smallFit(DMAD, f.enc)
		o.ExactThreshold = exact
		m, err := Fit(ctx, rt, f.set, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		models[exact] = m
	}
	fast, exact := models[false].Meta, models[true].Meta
	near := func(a, b float32) bool {
		return math.Abs(float64(a-b)) <= 1e-4*math.Max(1, math.Abs(float64(b)))
	}
	if !near(fast.Threshold, exact.Threshold) || len(fast.CategoryThresholds) != len(exact.CategoryThresholds) {
		t.Fatalf("threshold %v (fast) vs %v (exact); per category %v vs %v", fast.Threshold, exact.Threshold, fast.CategoryThresholds, exact.CategoryThresholds)
	}
	for c, v := range exact.CategoryThresholds {
		if !near(fast.CategoryThresholds[c], v) {
			t.Fatalf("%s threshold %v (fast) vs %v (exact)", c, fast.CategoryThresholds[c], v)
		}
	}
	fu, eu := fast.MapFusion, exact.MapFusion
	if fu == nil || eu == nil || !near(fu.ScoreMean, eu.ScoreMean) || !near(fu.DistStd, eu.DistStd) || fu.MapperWeight != eu.MapperWeight {
		t.Fatalf("fusion %+v (fast) vs %+v (exact)", fu, eu)
	}
	// The mapper is the same: the setting acts after training.
	for i, p := range models[false].Mapper.Params() {
		if !slices.Equal(p.Data, models[true].Mapper.Params()[i].Data) {
			t.Fatalf("the threshold setting changed the mapper's %s", p.Name)
		}
	}
}

// TestMeasureEncode checks that the encoding cost of a test set is every
// category's cost weighted by its share of the test images, each measured
// on a sample of that category's images.
func TestMeasureEncode(t *testing.T) {
	f := newFixture(t, runtimeFor(t))
	// An unequal split: all of category 0's test images, one of category 1's.
	var test []dataset.Sample
	count := map[string]int{}
	for _, s := range f.test {
		if count[s.Category] == 0 || s.Category == f.test[0].Category {
			test = append(test, s)
			count[s.Category]++
		}
	}
	if len(count) != 2 {
		t.Fatalf("fixture test set has %d categories, want 2", len(count))
	}
	mean, per := measureEncode(context.Background(), f.enc, test)
	if len(per) != 2 {
		t.Fatalf("costs of %d categories, want 2: %v", len(per), per)
	}
	var want float64
	for c, n := range count {
		if per[c] <= 0 {
			t.Fatalf("category %s: cost %v ms", c, per[c])
		}
		want += per[c] * float64(n) / float64(len(test))
	}
	if math.Abs(mean-want) > 1e-9*want {
		t.Fatalf("mean cost %v ms, want the weighted %v (per category %v, counts %v)", mean, want, per, count)
	}
}

// TestThresholdMatchesImageByImage checks that the threshold images,
// searched several to a call with each image's own bank entries excluded,
// give the thresholds that scoring each of them alone gives, in both
// search modes (with fast search, each image in its category's part).
func TestThresholdMatchesImageByImage(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	for _, mode := range []banks.SearchMode{banks.SearchExact, banks.SearchFast} {
		t.Run(mode.String(), func(t *testing.T) {
			opts := smallFit(DMAD, f.enc)
			opts.Search.Mode = mode
			opts.ThresholdImages = 17 // more than one call's worth
			m, err := Fit(ctx, rt, f.set, opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := NewScorer(rt, m, opts.Search)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			order := rand.New(rand.NewSource(opts.Seed + 11)).Perm(len(f.set.Normal))
			var all []float32
			byCat := map[string][]float32{}
			for _, i := range order[:min(len(order), opts.ThresholdImages)] {
				im := f.set.Normal[i]
				patch, _, err := sc.partsIn(ctx, im.Category, im.Features, sourceOf(im))
				if err != nil {
					t.Fatal(err)
				}
				_, s := heatmap.ImageScore(patch)
				all = append(all, s)
				byCat[im.Category] = append(byCat[im.Category], s)
			}
			if want := quantile(all, DefaultThresholdQuantile); m.Meta.Threshold != want {
				t.Fatalf("threshold %v, image by image %v", m.Meta.Threshold, want)
			}
			for c, s := range byCat {
				if want := quantile(s, DefaultThresholdQuantile); m.Meta.CategoryThresholds[c] != want {
					t.Fatalf("%s's threshold %v, image by image %v", c, m.Meta.CategoryThresholds[c], want)
				}
			}
		})
	}
}

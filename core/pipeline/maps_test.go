package pipeline

import (
	"context"
	"image"
	"image/color"
	"maps"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/mat"
)

func TestMapFusion(t *testing.T) {
	// Normal patches: mapper scores around −2 (σ 1), distances around 3 (σ 0.5).
	s := []float32{-3, -2, -1, -2}
	d := []float32{2.5, 3, 3.5, 3}
	cal, err := CalibrateFusion(s, d, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	sm, ss := meanStd(s)
	if cal.ScoreMean != sm || cal.ScoreStd != ss || cal.DistMean != 3 || math.Abs(float64(cal.DistStd)-math.Sqrt(0.125)) > 1e-6 {
		t.Fatalf("calibration %+v", cal)
	}
	for _, c := range []struct {
		name string
		w    float32
		s, d []float32
		want []float32
	}{
		{"mapper only", 1, []float32{-2, 5}, []float32{100, -100}, []float32{-2, 5}},
		// d = μ_d maps to μ_S; d one σ_d above maps to one σ_S above.
		{"distance only", 0, []float32{9, 9}, []float32{3, 3 + float32(math.Sqrt(0.125))}, []float32{sm, sm + ss}},
		{"half and half", 0.5, []float32{1}, []float32{3}, []float32{(1 + sm) / 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := cal.WithWeight(c.w).Fuse(nil, c.s, c.d)
			for i := range c.want {
				if math.Abs(float64(got[i]-c.want[i])) > 1e-5 {
					t.Fatalf("fused %v, want %v", got, c.want)
				}
			}
		})
	}
	// The calibrated distance has the mapper's mean and spread on the
	// calibration patches.
	z := cal.WithWeight(0).Fuse(nil, s, d)
	if m, sd := meanStd(z); math.Abs(float64(m-sm)) > 1e-5 || math.Abs(float64(sd-ss)) > 1e-5 {
		t.Fatalf("calibrated distance mean %v σ %v, mapper %v σ %v", m, sd, sm, ss)
	}
	var none *MapFusion
	if got := none.Fuse(nil, []float32{1, 2}, []float32{7, 7}); !slices.Equal(got, []float32{1, 2}) {
		t.Fatalf("nil fusion gave %v", got)
	}
	for _, bad := range [][2][]float32{{{1}, {1}}, {{1, 2}, {1}}, {{1, 1}, {1, 2}}, {{1, 2}, {3, 3}}} {
		if _, err := CalibrateFusion(bad[0], bad[1], 1); err == nil {
			t.Errorf("calibration on %v accepted", bad)
		}
	}
}

func TestBestScore(t *testing.T) {
	s := []ValidationScore{
		{MapperWeight: 0, PixelAUROC: 0.9, PRO: 0.7},
		{MapperWeight: 0.5, PixelAUROC: 0.95, PRO: 0.8},
		{MapperWeight: 1, PixelAUROC: 0.97, PRO: 0.78}, // same criterion: the first wins
	}
	if b := bestScore(s); b.MapperWeight != 0.5 {
		t.Fatalf("best %+v", b)
	}
}

func TestPickValidation(t *testing.T) {
	var normal []Image
	for i := range 50 {
		cat := "a"
		if i%4 == 0 {
			cat = "b" // 13 images of b, 37 of a
		}
		normal = append(normal, Image{ID: int32(100 + i), Category: cat})
	}
	got := PickValidation(normal, 8, 1)
	n := map[string]int{}
	for _, i := range got {
		n[normal[i].Category]++
	}
	// 8 of a; b has 13 images, so at most a quarter of them (3).
	if n["a"] != 8 || n["b"] != 3 || len(got) != 11 {
		t.Fatalf("picked %v: %v", got, n)
	}
	if again := PickValidation(normal, 8, 1); !slices.Equal(got, again) {
		t.Fatalf("not deterministic: %v then %v", got, again)
	}
	if !slices.IsSorted(got) {
		t.Fatalf("not sorted: %v", got)
	}
}

// The validation split is made from normal training images only: every
// image in it comes from a picked normal training image (its ID and its
// file), none from the test set or the seen anomalies, and the held-out
// images are left out of the mapper's training images.
func TestValidationFromTrainingDataOnly(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	normalPaths := f.normalPaths
	picked := PickValidation(f.set.Normal, 2, 1)
	if len(picked) != 4 {
		t.Fatalf("picked %v", picked)
	}
	v, err := NewValidation(ctx, f.enc, f.set.Normal, normalPaths, picked, 2, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Defects) != 8 {
		t.Fatalf("%d validation images", len(v.Defects))
	}
	testPaths := map[string]bool{}
	for _, s := range f.split.Test() {
		testPaths[s.Path] = true
	}
	for _, s := range f.moved {
		testPaths[s.Path] = true
	}
	normalIDs := map[int32]int{}
	for i, im := range f.set.Normal {
		normalIDs[im.ID] = i
	}
	for k, im := range v.Defects {
		i, ok := normalIDs[im.ID]
		if !ok || !slices.Contains(picked, i) || normalPaths[i] != normalPaths[picked[k/2]] {
			t.Fatalf("validation image %d comes from image %d, not a picked normal image", k, im.ID)
		}
		if testPaths[normalPaths[i]] {
			t.Fatalf("validation image %d made from test image %s", k, normalPaths[i])
		}
		if im.Mask == nil || im.Features.Rows() != f.set.Normal[i].Features.Rows() {
			t.Fatalf("validation image %d has no mask or wrong features", k)
		}
		if same(im.Features, f.set.Normal[i].Features) {
			t.Fatalf("validation image %d has no defect painted", k)
		}
	}
	set := f.set
	set.Validation = v
	imgs, err := trainingImages(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != len(f.set.Normal)-4 {
		t.Fatalf("%d training images of %d, 4 held out", len(imgs), len(f.set.Normal))
	}
	held := v.HeldOut()
	for _, im := range imgs {
		if held[im.ID] {
			t.Fatalf("held-out image %d trains the mapper", im.ID)
		}
	}
	// Holding out everything is refused.
	all := make([]int, len(f.set.Normal))
	for i := range all {
		all[i] = i
	}
	everything, err := NewValidation(ctx, f.enc, f.set.Normal, normalPaths, all, 1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	set.Validation = everything
	if _, err := trainingImages(set); err == nil {
		t.Fatal("a validation split holding out every image accepted")
	}
}

func same(a, b *mat.Matrix) bool { return slices.Equal(a.RawData(), b.RawData()) }

// Fit with a validation split chooses the map fusion weight and the
// checkpoint on it and records how every candidate did.
func TestFitChoosesOnValidation(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	normalPaths := f.normalPaths
	v, err := NewValidation(ctx, f.enc, f.set.Normal, normalPaths, PickValidation(f.set.Normal, 2, 1), 2, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := f.set
	set.Seen, set.Validation = nil, v
	opts := smallFit(DMAD, f.enc)
	opts.Train.Epochs, opts.Train.FirstCheckpoint, opts.Train.CheckpointEvery = 4, 2, 2
	// A low quantile puts the sample's threshold under most normal images,
	// so the held-out images must raise it (checked below).
	opts.ThresholdQuantile = 0.05
	m, err := Fit(ctx, rt, set, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	fu := m.Meta.MapFusion
	if fu == nil || len(m.Meta.Validation) != len(FusionWeights()) || fu.DistStd <= 0 || fu.ScoreStd <= 0 {
		t.Fatalf("fusion %+v, validation %+v", fu, m.Meta.Validation)
	}
	// The best-rated weight where the split is sure enough of the mapper,
	// else the distance.
	best := bestScore(m.Meta.Validation)
	want := best.MapperWeight
	if want != 0 && m.Meta.MapperConfidence < MapperConfidence {
		want = 0
	}
	if fu.MapperWeight != want || (best.MapperWeight != 0) != (m.Meta.MapperConfidence > 0) {
		t.Fatalf("fusion weight %v, validation's best %v at confidence %v", fu.MapperWeight, best.MapperWeight, m.Meta.MapperConfidence)
	}
	// The threshold step rated the maps on the checkpoints' search of the
	// split; a search from scratch gives the same ratings.
	if m.validation != nil {
		t.Fatal("the fit kept its validation search")
	}
	fresh, err := NewScorer(rt, m, bankSearch())
	if err != nil {
		t.Fatal(err)
	}
	scored, err := scoreValidation(ctx, fresh, set)
	fresh.Close()
	if err != nil {
		t.Fatal(err)
	}
	h0, w0 := gridOf(len(scored[0].score))
	enc := opts.Encoder.WithDefaults()
	again, err := scoreMaps(ctx, scored, *fu.WithWeight(0), FusionWeights(), h0, w0, enc.InputSize, func(g *image.Gray) []bool { return MaskAt(g, enc) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again, m.Meta.Validation) {
		t.Fatalf("validation from the fit's search %+v, from scratch %+v", m.Meta.Validation, again)
	}
	if len(m.Meta.Checkpoints) != 2 || m.Meta.Checkpoints[0].Epoch != 2 || m.Meta.Checkpoints[1].Epoch != 4 {
		t.Fatalf("checkpoints %+v", m.Meta.Checkpoints)
	}
	if m.Meta.Epochs != 2 && m.Meta.Epochs != 4 {
		t.Fatalf("kept epoch %d", m.Meta.Epochs)
	}
	// Maps are the fusion of the mapper's scores and the distances; the
	// image score stays the mapper's.
	sc, err := NewScorer(rt, m, bankSearch())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// The thresholds are at least every held-out normal image's score
	// (the mapper never trained on those images).
	held := v.HeldOut()
	for _, im := range set.Normal {
		if !held[im.ID] {
			continue
		}
		patch, _, err := sc.PatchParts(ctx, im.Features, sourceOf(im))
		if err != nil {
			t.Fatal(err)
		}
		_, s := heatmap.ImageScore(patch)
		if s > m.Meta.CategoryThresholds[im.Category] || s > m.Meta.Threshold {
			t.Errorf("held-out normal image %d scores %v above its category's threshold %v (global %v)",
				im.ID, s, m.Meta.CategoryThresholds[im.Category], m.Meta.Threshold)
		}
	}
	res, err := sc.ScoreImages(ctx, f.tfeats[:2], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		want := fu.Fuse(nil, r.Mapper, r.Distance)
		if !slices.Equal(r.Patches, want) {
			t.Fatal("map patches are not the fusion")
		}
		if _, top := heatmap.ImageScore(r.Mapper); top != r.Score {
			t.Fatalf("image score %v, mapper's top-5 mean %v", r.Score, top)
		}
	}
	// Without a validation split the default weight is used.
	set.Validation = nil
	m2, err := Fit(ctx, rt, set, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Meta.MapFusion == nil || m2.Meta.MapFusion.MapperWeight != DefaultMapperWeight || m2.Meta.Validation != nil || m2.Meta.Checkpoints != nil {
		t.Fatalf("without validation: fusion %+v, validation %v", m2.Meta.MapFusion, m2.Meta.Validation)
	}
	// The checkpoints share one search of the validation split: its
	// neighbours give every mapper over the same banks (here m's and the
	// second fit's) exactly the scores of a full scoring.
	set.Validation = v
	whole := func(string) *banks.Knowledge { return sc.kn }
	items, err := validationItems(ctx, whole, set, m.Meta.Attention)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2*len(held)+len(held) {
		t.Fatalf("%d validation items for %d held-out images with 2 defects each", len(items), len(held))
	}
	// Seen anomalies with a mask join the split as real defects, scored
	// without their own bank entries (checked with the others below);
	// one without a mask (picked patches) cannot be rated and stays out.
	set.Seen = append([]Image(nil), f.set.Seen...)
	set.Seen[0].Mask, set.Seen[0].Flags = nil, make([]bool, patchesOf(set.Seen[0]))
	withSeen, err := validationItems(ctx, whole, set, m.Meta.Attention)
	if err != nil {
		t.Fatal(err)
	}
	if len(withSeen) != len(items)+len(set.Seen)-1 {
		t.Fatalf("%d validation items with %d seen anomalies (one without a mask), %d without", len(withSeen), len(set.Seen), len(items))
	}
	for i, it := range withSeen[:len(items)] {
		if it.seen {
			t.Fatalf("synthetic validation item %d marked as a seen anomaly", i)
		}
	}
	for i, it := range withSeen[len(items):] {
		if s := set.Seen[1+i]; it.im.ID != s.ID || it.mask != s.Mask || it.category != s.Category || !it.seen {
			t.Fatalf("validation item %d is not seen anomaly %d", len(items)+i, s.ID)
		}
	}
	items = withSeen
	for _, mm := range []*Model{m, {Meta: m.Meta, Normal: m.Normal, Anomaly: m.Anomaly, Mapper: m2.Mapper}} {
		full, err := NewScorer(rt, mm, bankSearch())
		if err != nil {
			t.Fatal(err)
		}
		got, err := scoreValidationItems(ctx, sc.kn, full.ms, items)
		if err != nil {
			t.Fatal(err)
		}
		for i, it := range items {
			f, err := it.im.features()
			if err != nil {
				t.Fatal(err)
			}
			s, d, err := full.PatchParts(ctx, f, sourceOf(it.im))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[i].score, s) || !slices.Equal(got[i].dist, d) || (got[i].mask == nil) != (it.mask == nil) {
				t.Fatalf("validation item %d: scores from shared neighbours differ from a full scoring", i)
			}
		}
		full.Close()
	}
}

func TestTopPatches(t *testing.T) {
	for _, c := range []struct {
		n    int
		f    float64
		want int
	}{{784, 0.01, 7}, {1600, 0.01, 16}, {50, 0.01, 1}, {3, 2, 3}} {
		if got := WeakPatchCount(c.n, c.f); got != c.want {
			t.Errorf("WeakPatchCount(%d, %v) = %d, want %d", c.n, c.f, got, c.want)
		}
	}
	scores := []float32{0.1, 5, -3, 4, 4.5, 0}
	got := TopPatches(scores, 3)
	want := []bool{false, true, false, true, true, false}
	if !slices.Equal(got, want) {
		t.Fatalf("top 3 of %v: %v", scores, got)
	}
	if got := TopPatches(scores, 10); slices.Contains(got, false) {
		t.Fatalf("cap above the patch count: %v", got)
	}
}

// Weakly labelled images (no masks) contribute their top-scoring patches,
// capped, as seen anomalies.
func TestFitWeak(t *testing.T) {
	rt := runtimeFor(t)
	f := newFixture(t, rt)
	ctx := context.Background()
	set := f.set
	set.Weak = nil
	for _, im := range f.set.Seen {
		im.Mask = nil
		set.Weak = append(set.Weak, im)
	}
	set.Seen = nil
	opts := smallFit(DMAD, f.enc)
	opts.WeakRounds, opts.WeakFraction = 2, 0.05
	m, err := Fit(ctx, rt, set, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	perImage := WeakPatchCount(set.Weak[0].Features.Rows(), 0.05)
	if m.Meta.Regime != Semi || m.Meta.WeakImages != len(set.Weak) || m.Meta.WeakPatches != perImage*len(set.Weak) || m.Meta.SeenImages != 0 {
		t.Fatalf("meta %+v (want %d patches per image)", m.Meta, perImage)
	}
	// The picked patches went into the anomaly bank as seen anomalies:
	// exactly the cap per image.
	if got := m.Anomaly.Count(banks.KindSeen); got != perImage*len(set.Weak) {
		t.Fatalf("%d seen-anomaly entries, want %d", got, perImage*len(set.Weak))
	}
	// pickWeak flags each image's top patches under the model's anomaly
	// map: the fusion of the mapper's scores and the distances, whatever
	// its weight (0: the distances alone).
	sc, err := NewScorer(rt, m, bankSearch())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for _, fu := range []*MapFusion{m.Meta.MapFusion, m.Meta.MapFusion.WithWeight(0), m.Meta.MapFusion.WithWeight(1)} {
		mm := *m
		mm.Meta.MapFusion = fu
		picked, n, err := pickWeak(ctx, rt, &mm, set.Weak, opts)
		if err != nil || n != perImage*len(set.Weak) {
			t.Fatalf("picked %d patches: %v", n, err)
		}
		for i, im := range picked {
			s, d, err := sc.PatchParts(ctx, set.Weak[i].Features, nil)
			if err != nil {
				t.Fatal(err)
			}
			s = fu.Fuse(nil, s, d)
			var lowestPicked, highestLeft float32 = math.MaxFloat32, -math.MaxFloat32
			for j, fl := range im.Flags {
				if fl {
					lowestPicked = min(lowestPicked, s[j])
				} else {
					highestLeft = max(highestLeft, s[j])
				}
			}
			if lowestPicked < highestLeft {
				t.Fatalf("mapper weight %v, image %d: a picked patch scores %v, below an unpicked %v", fu.MapperWeight, i, lowestPicked, highestLeft)
			}
		}
	}
	// A weak image without features is an error that names it.
	bad := set
	bad.Weak = append([]Image(nil), set.Weak...)
	bad.Weak[0].Features = nil
	if _, err := Fit(ctx, rt, bad, opts, nil); err == nil {
		t.Fatal("weak image without features accepted")
	}
}

// TestChooseFusionPerCategory checks that each category with real defects
// (seen anomalies) and clean images in the validation split gets the mapper
// weight its own images prefer: here category "tile" has defects only the
// mapper's scores outline and "bottle" defects only the distance does; a
// category with synthetic defects only keeps the pooled choice.
// TestMapperConfidence checks the bootstrap against maps whose better
// signal is known: a mapper that alone outlines the defects wins every
// resample, one that never does wins none, and maps equal to the
// distance's never win (a tie is not a win).
func TestMapperConfidence(t *testing.T) {
	const side, size = 8, 64
	rng := rand.New(rand.NewSource(5))
	mask := image.NewGray(image.Rect(0, 0, size, size))
	for y := 16; y < 40; y++ {
		for x := 16; x < 40; x++ {
			mask.SetGray(x, y, color.Gray{Y: 255})
		}
	}
	enc := encoder.Config{InputSize: size}
	maskAt := func(g *image.Gray) []bool { return MaskAt(g, enc) }
	build := func(mapperSees, same bool) ([]valScored, fusionMaps, MapFusion) {
		var items []valScored
		var s, d []float32
		for k := range 16 {
			it := valScored{score: make([]float32, side*side), dist: make([]float32, side*side), seen: true}
			for p := range it.score {
				it.dist[p] = 3 + float32(rng.NormFloat64())
				it.score[p] = float32(rng.NormFloat64())
				x, y := p%side*8+4, p/side*8+4
				if k%2 == 0 && mask.GrayAt(x, y).Y > 127 {
					if mapperSees {
						it.score[p] += 4
					} else {
						it.dist[p] += 4
					}
				}
				if same {
					it.score[p] = it.dist[p]
				}
			}
			if k%2 == 0 {
				it.mask = mask
			} else {
				s, d = append(s, it.score...), append(d, it.dist...)
			}
			items = append(items, it)
		}
		cal, err := CalibrateFusion(s, d, 0)
		if err != nil {
			t.Fatal(err)
		}
		fm, err := newFusionMaps(context.Background(), items, cal, side, side, size, maskAt)
		if err != nil {
			t.Fatal(err)
		}
		return items, fm, cal
	}
	for _, c := range []struct {
		name             string
		mapperSees, same bool
		lo, hi           float64
	}{
		{"mapper outlines the defects", true, false, 0.99, 1},
		{"distance outlines the defects", false, false, 0, 0.01},
		// Same signals: the calibrated distance is the mapper's score up to
		// rounding, so neither map wins beyond it.
		{"same maps", false, true, 0, 0.6},
	} {
		t.Run(c.name, func(t *testing.T) {
			items, fm, _ := build(c.mapperSees, c.same)
			conf, err := mapperConfidence(context.Background(), items, fm, 1, size, 1)
			if err != nil {
				t.Fatal(err)
			}
			if conf < c.lo || conf > c.hi {
				t.Fatalf("confidence %v, want in [%v, %v]", conf, c.lo, c.hi)
			}
			again, _ := mapperConfidence(context.Background(), items, fm, 1, size, 1)
			if again != conf {
				t.Fatalf("same seed, confidence %v then %v", conf, again)
			}
		})
	}
	items, fm, _ := build(true, false)
	var clean []valScored
	var cleanIdx []int
	for i, it := range items {
		if it.mask == nil {
			clean, cleanIdx = append(clean, it), append(cleanIdx, i)
		}
	}
	if _, err := mapperConfidence(context.Background(), clean, fm.subset(cleanIdx), 1, size, 1); err == nil {
		t.Error("no defective images: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := mapperConfidence(ctx, items, fm, 1, size, 1); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestChooseFusionPerCategory(t *testing.T) {
	const side = 8 // patch grid
	rng := rand.New(rand.NewSource(3))
	mask := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := 16; y < 40; y++ {
		for x := 24; x < 48; x++ {
			mask.SetGray(x, y, color.Gray{Y: 255})
		}
	}
	inDefect := func(p int) bool { // patch p's centre inside the mask
		x, y := (p%side*8)+4, (p/side*8)+4
		return mask.GrayAt(x, y).Y > 127
	}
	item := func(cat string, defect, mapperSees bool) valScored {
		it := valScored{score: make([]float32, side*side), dist: make([]float32, side*side), category: cat, seen: defect && cat != "cable"}
		for p := range it.score {
			it.score[p] = float32(rng.NormFloat64())
			it.dist[p] = 3 + float32(rng.NormFloat64())
			if defect && inDefect(p) {
				if mapperSees {
					it.score[p] += 4
				} else {
					it.dist[p] += 4
				}
			}
		}
		if defect {
			it.mask = mask
		}
		return it
	}
	var items []valScored
	for range 4 {
		items = append(items, item("tile", true, true), item("tile", false, true),
			item("bottle", true, false), item("bottle", false, false))
	}
	// pcb: the mapper's scores are the distance's, except for one of six
	// defects, which only the mapper outlines: the best rating is the
	// mapper's on the strength of one image, which a third of the
	// resamples leave out.
	for k := range 6 {
		for _, defect := range []bool{true, false} {
			it := item("pcb", defect, k == 0)
			for p := range it.score {
				it.score[p] = it.dist[p] - 3
				if defect && k == 0 && inDefect(p) {
					it.score[p] += 4
				}
			}
			items = append(items, it)
		}
	}
	items = append(items, item("screw", false, false)) // clean images only: no weight of its own
	// Synthetic defects only (seen false): no weight of its own either.
	items = append(items, item("cable", true, true), item("cable", false, true))
	var s, d []float32
	for _, it := range items {
		if it.mask == nil {
			s, d = append(s, it.score...), append(d, it.dist...)
		}
	}
	m := &Model{}
	opts := Options{Encoder: encoder.Config{InputSize: 64}}
	if err := chooseFusion(context.Background(), m, opts, s, d, items); err != nil {
		t.Fatal(err)
	}
	fu := m.Meta.MapFusion
	want := map[string]float32{"tile": 1, "bottle": 0, "pcb": 0}
	if !maps.Equal(fu.CategoryWeights, want) {
		t.Fatalf("category weights %v, want %v (validation %+v, confidence %v)", fu.CategoryWeights, want, m.Meta.CategoryValidation, m.Meta.CategoryMapperConfidence)
	}
	if len(m.Meta.CategoryValidation) != 3 || len(m.Meta.CategoryValidation["tile"]) != len(FusionWeights()) {
		t.Fatalf("category validation %+v", m.Meta.CategoryValidation)
	}
	// tile's mapper is beyond doubt; pcb's best-rated weight is not 0 but
	// falls back to the distance for want of confidence.
	conf := m.Meta.CategoryMapperConfidence
	if conf["tile"] < MapperConfidence {
		t.Errorf("tile's mapper confidence %v, want ≥ %v", conf["tile"], MapperConfidence)
	}
	if best := bestScore(m.Meta.CategoryValidation["pcb"]).MapperWeight; best == 0 {
		t.Errorf("pcb's best-rated weight is 0: the case does not exercise the confidence rule (validation %+v)", m.Meta.CategoryValidation["pcb"])
	} else if c, ok := conf["pcb"]; !ok || c >= MapperConfidence {
		t.Errorf("pcb's confidence %v (recorded %v), want below %v", c, ok, MapperConfidence)
	}
	if _, ok := conf["bottle"]; ok {
		t.Errorf("bottle's best weight is 0, yet a confidence was recorded: %v", conf)
	}
	// A weight the user fixes is kept whatever the split says.
	opts.MapWeights = []float32{1}
	if err := chooseFusion(context.Background(), m, opts, s, d, items); err != nil {
		t.Fatal(err)
	}
	if w := m.Meta.MapFusion.CategoryWeights["pcb"]; w != 1 || m.Meta.CategoryMapperConfidence != nil {
		t.Errorf("fixed weight 1: pcb got %v, confidence %v", w, m.Meta.CategoryMapperConfidence)
	}
	opts.MapWeights = nil
	for cat, w := range map[string]float32{"tile": 1, "bottle": 0, "pcb": 0, "screw": fu.MapperWeight, "cable": fu.MapperWeight, "": fu.MapperWeight} {
		if got := fu.For(cat).MapperWeight; got != w {
			t.Errorf("For(%q) has weight %v, want %v", cat, got, w)
		}
	}
	var none *MapFusion
	if none.For("tile") != nil {
		t.Error("nil fusion's For is not nil")
	}
}

// TestSplitPairGain: the least gain a later checkpoint needs is the image
// AUROC of one pair of the split's defective (synthetic, and seen
// anomalies with masks) and clean (the synthetic defects' sources) images.
func TestSplitPairGain(t *testing.T) {
	mask := image.NewGray(image.Rect(0, 0, 2, 2))
	defects := []Image{{ID: 1}, {ID: 1}, {ID: 2}}
	tests := []struct {
		name string
		set  TrainSet
		want float64
	}{
		{"synthetic only", TrainSet{Validation: &Validation{Defects: defects}}, 1.0 / (3 * 2)},
		{"seen with masks count, weak ones do not", TrainSet{Validation: &Validation{Defects: defects},
			Seen: []Image{{ID: 7, Mask: mask}, {ID: 8}}}, 1.0 / (4 * 2)},
		{"no defects", TrainSet{Validation: &Validation{}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := splitPairGain(tc.set); math.Abs(got-tc.want) > 1e-15 {
				t.Fatalf("splitPairGain = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEvaluateSmoothing: evaluateMasks at MapSigma is EvaluateMasks, and
// another smoothing changes the pixel metrics of a map whose defect is a
// thin line (what bench's σ variants measure).
func TestEvaluateSmoothing(t *testing.T) {
	const grid, size = 16, 64
	rng := rand.New(rand.NewSource(4))
	mask := image.NewGray(image.Rect(0, 0, size, size))
	for y := 8; y < 56; y++ {
		mask.Pix[y*size+30], mask.Pix[y*size+31] = 255, 255
	}
	var items []Scored
	for i := range 6 {
		p := make([]float32, grid*grid)
		for j := range p {
			p[j] = float32(rng.NormFloat64())
		}
		it := Scored{Category: "c", Anomalous: i%2 == 0}
		if it.Anomalous {
			for y := 2; y < 14; y++ {
				p[y*grid+7] += 3
			}
		}
		it.Result = ImageResult{Score: p[0], Patches: p}
		items = append(items, it)
	}
	maskOf := func(i int) (*image.Gray, error) {
		if items[i].Anomalous {
			return mask, nil
		}
		return nil, nil
	}
	cfg := encoder.Config{InputSize: size}
	_, want, err := EvaluateMasks(context.Background(), items, grid, grid, cfg, maskOf)
	if err != nil {
		t.Fatal(err)
	}
	_, same, err := evaluateMasks(context.Background(), items, grid, grid, cfg, MapSigma, maskOf)
	if err != nil {
		t.Fatal(err)
	}
	if same != want {
		t.Fatalf("at MapSigma %+v, EvaluateMasks %+v", same, want)
	}
	_, wide, err := evaluateMasks(context.Background(), items, grid, grid, cfg, 16, maskOf)
	if err != nil {
		t.Fatal(err)
	}
	if wide.PixelAUROC == want.PixelAUROC && wide.PRO == want.PRO {
		t.Fatalf("σ 16 gave the pixel metrics of σ %v: %+v", MapSigma, wide)
	}
}

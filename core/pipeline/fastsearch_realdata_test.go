package pipeline

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/ort"
	mapperTrain "github.com/dmad/workstation/core/train"
)

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestFastSearchAccuracyReal compares exact and fast (cascade) search on
// real data: the shared MobileNetV2 features of the first
// $DMAD_FAST_TRAIN (60) good training images of bottle and magnetic_tile,
// a PatchCore normal bank of $DMAD_FAST_RATIO_PCT (10) % of their patches,
// and every test image of both categories scored both ways. It logs the
// mean image and pixel AUROC of each mode and their differences, recall@1
// (the share of test patches whose fast nearest distance equals the exact
// one) and the scoring rate of each mode, and fails when the issue's
// accuracy targets (image AUROC within 0.005, pixel AUROC within 0.01) are
// missed. Opt-in (DMAD_FAST_SEARCH=1): it encodes ~800 images and searches
// exhaustively, minutes on 2 cores. Features are cached in
// $DMAD_FAST_CACHE (default: a folder in the system temp directory).
// $DMAD_FAST_METHODS (default "patchcore") may add "dmad": an unsupervised
// DMAD model fitted on the same normal bank, compared the same way (both of
// its banks are then searched fast), trained $DMAD_FAST_EPOCHS epochs
// (default: train.DefaultConfig's); DMAD_FAST_SWEEP=0 skips the sweep.
func TestFastSearchAccuracyReal(t *testing.T) {
	shared := sharedDir(t)
	if os.Getenv("DMAD_FAST_SEARCH") != "1" {
		t.Skip("exact vs fast search on real data takes minutes: run with DMAD_FAST_SEARCH=1")
	}
	ctx := context.Background()
	rt := runtimeFor(t)
	enc := sharedEncoder(t, rt, shared)
	ds, err := dataset.Open(filepath.Join(shared, "data", "industrial"), dataset.Options{Categories: []string{"bottle", "magnetic_tile"}})
	if err != nil {
		t.Fatal(err)
	}
	perCat := envInt("DMAD_FAST_TRAIN", 60)
	var train []dataset.Sample
	count := map[string]int{}
	for _, s := range ds.Train() {
		if s.Label == dataset.Good && count[s.Category] < perCat {
			train = append(train, s)
			count[s.Category]++
		}
	}
	test := ds.Test()
	var paths []string
	for _, s := range append(append([]dataset.Sample{}, train...), test...) {
		paths = append(paths, s.Path)
	}
	cacheDir := os.Getenv("DMAD_FAST_CACHE")
	if cacheDir == "" {
		cacheDir = filepath.Join(os.TempDir(), "dmad-fastsearch-features")
	}
	t0 := time.Now()
	feats, err := Encode(ctx, enc, paths, &DirCache{Dir: cacheDir, EncoderID: enc.ID()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("features of %d train + %d test images in %v (cache %s)", len(train), len(test), time.Since(t0).Round(time.Second), cacheDir)
	var set TrainSet
	for i, s := range train {
		set.Normal = append(set.Normal, Image{ID: int32(i), Category: s.Category, Features: feats[i]})
	}
	ratio := float64(envInt("DMAD_FAST_RATIO_PCT", 10)) / 100
	t0 = time.Now()
	m, err := Fit(ctx, rt, set, Options{Method: PatchCore, CoresetRatio: ratio, Seed: 1, EncoderID: enc.ID(), Card: enc.Card(), Encoder: enc.Config()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("normal bank %d×%d (%.0f %% coreset) in %v", m.Normal.Features.Rows(), m.Normal.Features.Cols(), 100*ratio, time.Since(t0).Round(time.Second))
	testFeats := feats[len(train):]
	h0, w0 := enc.Grid()
	if os.Getenv("DMAD_FAST_SWEEP") != "0" {
		sweepRecall(t, rt, m.Normal.Features, testFeats)
	}
	type outcome struct {
		mean  metrics.Summary
		res   []ImageResult
		rate  float64
		setup time.Duration
	}
	run := func(m *Model, mode banks.SearchMode) outcome {
		t0 := time.Now()
		sc, err := NewScorer(rt, m, banks.SearchOptions{Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		setup := time.Since(t0)
		t1 := time.Now()
		res, err := sc.ScoreImages(ctx, testFeats, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		rate := float64(len(testFeats)) / time.Since(t1).Seconds()
		items := make([]Scored, len(test))
		for i, s := range test {
			items[i] = Scored{Path: s.Path, Category: s.Category, Anomalous: s.Label == dataset.Defect, MaskPath: s.MaskPath, Result: res[i]}
		}
		per, mean, err := Evaluate(ctx, items, h0, w0, enc.Config())
		if err != nil {
			t.Fatal(err)
		}
		for c, pm := range per {
			t.Logf("  %s %-5v %-14s image AUROC %.4f  pixel AUROC %.4f", m.Meta.Method, mode, c, pm.ImageAUROC, pm.PixelAUROC)
		}
		t.Logf("%s %-5v mean image AUROC %.4f  pixel AUROC %.4f  PRO %.4f  scoring %.2f images/s (setup %v, load %s)",
			m.Meta.Method, mode, mean.ImageAUROC, mean.PixelAUROC, mean.PRO, rate, setup.Round(time.Millisecond), loadAvg())
		return outcome{mean, res, rate, setup}
	}
	// Decoding + encoding cost per image (uncached, 16 test images of each
	// category), for the end-to-end rate: decode + encode + score.
	encMS, _ := measureEncode(ctx, enc, test)
	t.Logf("decode + encode %.1f ms/image (load %s)", encMS, loadAvg())
	compare := func(m *Model) {
		exact := run(m, banks.SearchExact)
		fast := run(m, banks.SearchFast)
		same, total := 0, 0
		var maxRel float64
		for i := range exact.res {
			for j, e := range exact.res[i].Patches {
				f := fast.res[i].Patches[j]
				total++
				if math.Abs(float64(f-e)) <= 1e-6*math.Abs(float64(e))+1e-7 {
					same++
				}
				if e > 0 {
					maxRel = max(maxRel, float64(f-e)/float64(e))
				}
			}
		}
		dI := fast.mean.ImageAUROC - exact.mean.ImageAUROC
		dP := fast.mean.PixelAUROC - exact.mean.PixelAUROC
		// For PatchCore the patch score is the nearest distance, so equal
		// scores are recall@1; for DMAD they are patches whose mapper inputs
		// came out the same.
		t.Logf("%s fast − exact: image AUROC %+.4f, pixel AUROC %+.4f; equal patch scores (PatchCore: recall@1) %.4f of %d test patches (largest score excess %.3f %%); scoring %.2f vs %.2f images/s (%.1f×)",
			m.Meta.Method, dI, dP, float64(same)/float64(total), total, 100*maxRel, fast.rate, exact.rate, fast.rate/exact.rate)
		e2e := func(rate float64) float64 { return 1000 / (encMS + 1000/rate) }
		t.Logf("%s end to end (decode + encode + score): exact %.2f, fast %.2f images/s", m.Meta.Method, e2e(exact.rate), e2e(fast.rate))
		if math.Abs(dI) > 0.005 || math.Abs(dP) > 0.01 {
			t.Errorf("%s: fast search misses the accuracy target: image AUROC %+.4f (≤ 0.005), pixel AUROC %+.4f (≤ 0.01)", m.Meta.Method, dI, dP)
		}
	}
	methods := os.Getenv("DMAD_FAST_METHODS")
	if methods == "" {
		methods = "patchcore"
	}
	if strings.Contains(methods, "patchcore") {
		compare(m)
	}
	if !strings.Contains(methods, "dmad") {
		t.Log("DMAD comparison skipped: set DMAD_FAST_METHODS=patchcore,dmad to also fit an unsupervised DMAD model on the same bank")
		return
	}
	var trainPaths []string
	for _, s := range train {
		trainPaths = append(trainPaths, s.Path)
	}
	set.OOD, err = OODPatches(ctx, enc, trainPaths, envInt("DMAD_FAST_OOD", 100), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	dopts := Options{Method: DMAD, NormalBank: m.Normal, Seed: 1, EncoderID: enc.ID(), Card: enc.Card(), Encoder: enc.Config()}
	// Fewer epochs make a weaker model but the same comparison: both
	// modes score the same fitted model.
	dopts.Train = mapperTrain.DefaultConfig(m.Normal.Features.Cols())
	dopts.Train.Epochs = envInt("DMAD_FAST_EPOCHS", dopts.Train.Epochs)
	dm, err := Fit(ctx, rt, set, dopts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DMAD (unsupervised, %d epochs) fitted in %v; anomaly bank %d rows", dopts.Train.Epochs, time.Since(t0).Round(time.Second), dm.Anomaly.Features.Rows())
	compare(dm)
}

// sweepRecall logs recall@1 and queries/s of the fast search for a few
// settings of its knobs, on the patches of every 7th test image, against
// the exact search of the same bank.
func sweepRecall(t *testing.T, rt *ort.Runtime, bank *mat.Matrix, testFeats []*mat.Matrix) {
	ctx := context.Background()
	var sub []*mat.Matrix
	for i := 0; i < len(testFeats); i += 7 {
		sub = append(sub, testFeats[i])
	}
	q, err := mat.Append(sub...)
	if err != nil {
		t.Fatal(err)
	}
	exact, err := banks.NewSearcher(rt, bank, banks.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer exact.Close()
	t0 := time.Now()
	wantD, want, err := exact.Search(ctx, q, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sweep: %d queries of %d test images, bank %d rows; exact %.0f queries/s (load %s)", q.Rows(), len(sub), bank.Rows(), float64(q.Rows())/time.Since(t0).Seconds(), loadAvg())
	for _, f := range []banks.FastOptions{{Dims: 64, Rerank: 32}, {Dims: 64, Rerank: 16}, {Dims: 32, Rerank: 16}, {Dims: 32, Rerank: 8}, {Dims: 16, Rerank: 16}, {Dims: 16, Rerank: 8}} {
		fs, err := banks.NewCascadeSearcher(rt, bank, banks.SearchOptions{Fast: f})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		gotD, got, err := fs.Search(ctx, q, 1)
		fs.Close()
		if err != nil {
			t.Fatal(err)
		}
		hits, sameDist := 0, 0
		var excess float64
		for i := range want {
			if got[i] == want[i] {
				hits++
			}
			if gotD[i] <= wantD[i] {
				sameDist++
			} else {
				excess += float64(gotD[i]-wantD[i]) / float64(wantD[i])
			}
		}
		t.Logf("sweep: fast dims=%d rerank=%d: recall@1 %.4f (same distance %.4f, mean excess %.4f %%), %.0f queries/s (load %s)",
			f.Dims, f.Rerank, float64(hits)/float64(len(want)), float64(sameDist)/float64(len(want)), 100*excess/float64(len(want)),
			float64(q.Rows())/time.Since(t0).Seconds(), loadAvg())
	}
}

// loadAvg is the 1-minute load average from /proc/loadavg ("?" if unknown):
// the machine may be shared, which the rates depend on.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	var l float64
	if _, err := fmt.Sscan(string(b), &l); err != nil {
		return "?"
	}
	return strconv.FormatFloat(l, 'f', 2, 64)
}

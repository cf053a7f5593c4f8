package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"fmt"
	"github.com/dmad/workstation/core/banks"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
)

// BenchOptions configure Bench: the whole protocol of METHOD.md §6 in one
// process.
type BenchOptions struct {
	Data       string
	Categories []string
	// Runs lists what to run: "patchcore", "dmad-unsupervised", "dmad-semi".
	Runs []string
	// Seen is K, the anomalies per category moved to training (default 10).
	Seen int
	Seed int64
	// Card, Backbone and Encoder define the features.
	Card     *encoder.Card
	Backbone []byte
	Encoder  encoder.Config
	// Fit is the base fit configuration; Method, NormalBank are set per run.
	Fit Options
	// MaxTrain, when > 0, keeps only the first MaxTrain normal training
	// images of each category (a reduced protocol for quick checks).
	MaxTrain int
	// OODImages is the number of synthetic-defect images for M_o (default 200).
	OODImages int
	// CacheDir, when set, caches features between runs (raw float32 files).
	CacheDir string
	// Progress receives stage progress (Event.Run names the run of the
	// fitting and scoring stages); Log receives result lines.
	Progress progress.Func
	Log      func(format string, args ...any)
}

// BenchRun is one method/regime's outcome (DESIGN.md's JSON).
type BenchRun struct {
	Method        string                     `json:"method"`
	Regime        string                     `json:"regime"`
	SeenAnomalies int                        `json:"seen_anomalies"`
	PerCategory   map[string]metrics.Summary `json:"per_category"`
	Mean          metrics.Summary            `json:"mean"`
	Timings       BenchTimings               `json:"timings"`
	PeakRSSMB     float64                    `json:"peak_rss_mb"`
	Threshold     float32                    `json:"threshold"`
}

// BenchTimings are wall-clock seconds of each stage. FeaturesS (encoding
// every image once) and BanksS (the normal coreset) are shared by all runs
// and reported in each; TrainS is the run's own fitting (anomaly bank,
// knowledge, mapper, threshold); InferMSPerImage is encoding plus scoring
// of one test image.
type BenchTimings struct {
	FeaturesS       float64 `json:"features_s"`
	BanksS          float64 `json:"banks_s"`
	TrainS          float64 `json:"train_s"`
	InferMSPerImage float64 `json:"infer_ms_per_image"`
}

// BenchReport is the benchmark's JSON document.
type BenchReport struct {
	Backbone   string     `json:"backbone"`
	Device     string     `json:"device"`
	Threads    int        `json:"threads"`
	ImageSize  int        `json:"image_size"`
	Categories []string   `json:"categories"`
	TestImages int        `json:"test_images"`
	Seed       int64      `json:"seed"`
	Runs       []BenchRun `json:"runs"`
}

// DefaultBenchRuns are the runs of `workstation bench`.
var DefaultBenchRuns = []string{"patchcore", "dmad-unsupervised", "dmad-semi"}

// Bench runs the protocol: semi-supervised split (identical for every
// run), features once, one shared normal bank, then each run fitted and
// scored on the same test images.
func Bench(ctx context.Context, rt *ort.Runtime, o BenchOptions) (*BenchReport, error) {
	if o.Seen <= 0 {
		o.Seen = 10
	}
	if o.OODImages <= 0 {
		o.OODImages = DefaultOODImages
	}
	if len(o.Runs) == 0 {
		o.Runs = DefaultBenchRuns
	}
	prog := o.Progress
	if prog == nil {
		prog = func(progress.Event) {}
	}
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ds, err := dataset.OpenContext(ctx, o.Data, dataset.Options{Categories: o.Categories})
	if err != nil {
		return nil, err
	}
	split, moved := dataset.SemiSplit(ds, o.Seen, o.Seed)
	enc, err := encoder.New(rt, o.Card, o.Backbone, o.Encoder)
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	h0, w0 := enc.Grid()

	var normalS []dataset.Sample
	perCat := map[string]int{}
	for _, s := range split.Train() {
		if s.Label == dataset.Good && (o.MaxTrain <= 0 || perCat[s.Category] < o.MaxTrain) {
			normalS = append(normalS, s)
			perCat[s.Category]++
		}
	}
	test := split.Test()
	paths := func(ss []dataset.Sample) []string {
		p := make([]string, len(ss))
		for i, s := range ss {
			p[i] = s.Path
		}
		return p
	}
	var cache FeatureCache
	if o.CacheDir != "" {
		cache = &DirCache{Dir: o.CacheDir, EncoderID: enc.ID()}
	}
	t0 := time.Now()
	all := append(append(paths(normalS), paths(moved)...), paths(test)...)
	feats, err := Encode(ctx, enc, all, cache, prog)
	if err != nil {
		return nil, err
	}
	ood, err := OODPatches(ctx, enc, paths(normalS), o.OODImages, o.Seed, prog)
	if err != nil {
		return nil, err
	}
	featS := time.Since(t0).Seconds()
	// Encoding cost per image, measured now (uncached) on a few test images.
	encMS := measureEncode(ctx, enc, paths(test))

	set := TrainSet{OOD: ood}
	for i, s := range normalS {
		set.Normal = append(set.Normal, Image{ID: int32(i), Category: s.Category, Features: feats[i]})
	}
	var seen []Image
	for i, s := range moved {
		m, err := loadMask(s.MaskPath)
		if err != nil {
			return nil, err
		}
		seen = append(seen, Image{ID: int32(len(normalS) + i), Category: s.Category, Features: feats[len(normalS)+i], Mask: m})
	}
	testFeats := feats[len(normalS)+len(moved):]

	// One normal bank for every run (cached with the features when asked:
	// the coreset is the slowest single step).
	t1 := time.Now()
	base := o.Fit
	base.EncoderID, base.Card, base.Encoder, base.Seed = enc.ID(), o.Card, enc.Config(), o.Seed
	pcOpts := withMethod(base, PatchCore)
	bankFile := ""
	if o.CacheDir != "" {
		bankFile = bankCacheFile(o.CacheDir, enc.ID(), base, paths(normalS))
		if b, err := os.ReadFile(bankFile); err == nil {
			nb := &banks.NormalBank{}
			if err := nb.UnmarshalBinary(b); err == nil {
				pcOpts.NormalBank = nb
				logf("normal bank from cache %s", bankFile)
			}
		}
	}
	pc, err := Fit(ctx, rt, set, pcOpts, prog)
	if err != nil {
		return nil, err
	}
	banksS := time.Since(t1).Seconds()
	if bankFile != "" && pcOpts.NormalBank == nil {
		if b, err := pc.Normal.MarshalBinary(); err == nil {
			if err := os.WriteFile(bankFile, b, 0o644); err != nil {
				logf("normal bank not cached: %v", err)
			}
		}
	}
	base.NormalBank = pc.Normal

	rep := &BenchReport{Backbone: o.Card.Name, Device: string(rt.Provider()), Threads: rt.Threads(),
		ImageSize: enc.Config().InputSize, Categories: split.Categories, TestImages: len(test), Seed: o.Seed}
	for _, run := range o.Runs {
		var m *Model
		t := time.Now()
		switch run {
		case "patchcore":
			m = pc
		case "dmad-unsupervised", "dmad-semi":
			s := set
			if run == "dmad-semi" {
				s.Seen = seen
			}
			m, err = Fit(ctx, rt, s, withMethod(base, DMAD), inRun(prog, run))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", run, err)
			}
		default:
			return nil, fmt.Errorf("unknown bench run %q (want %s)", run, strings.Join(DefaultBenchRuns, ", "))
		}
		trainS := time.Since(t).Seconds()
		if run == "patchcore" {
			trainS = banksS
		}
		sc, err := NewScorer(rt, m, base.Search)
		if err != nil {
			return nil, err
		}
		t2 := time.Now()
		res, err := sc.ScoreImages(ctx, testFeats, inRun(prog, run))
		sc.Close()
		if err != nil {
			return nil, err
		}
		scoreMS := 1000 * time.Since(t2).Seconds() / float64(max(1, len(test)))
		items := make([]Scored, len(test))
		for i, s := range test {
			items[i] = Scored{Path: s.Path, Category: s.Category, Anomalous: s.Label == dataset.Defect, MaskPath: s.MaskPath, Result: res[i]}
		}
		per, mean, err := Evaluate(ctx, items, h0, w0, enc.Config())
		if err != nil {
			return nil, err
		}
		br := BenchRun{Method: string(m.Meta.Method), Regime: m.Meta.Regime, SeenAnomalies: m.Meta.SeenImages,
			PerCategory: per, Mean: mean, PeakRSSMB: PeakRSSMB(), Threshold: m.Meta.Threshold,
			Timings: BenchTimings{FeaturesS: featS, BanksS: banksS, TrainS: trainS, InferMSPerImage: encMS + scoreMS}}
		rep.Runs = append(rep.Runs, br)
		logf("%-18s I-AUROC %.4f  I-AP %.4f  P-AUROC %.4f  PRO %.4f  (train %.0fs, %.1f ms/img)",
			run, mean.ImageAUROC, mean.ImageAP, mean.PixelAUROC, mean.PRO, trainS, encMS+scoreMS)
		for _, c := range rep.Categories {
			pm := per[c]
			logf("    %-16s I-AUROC %.4f  P-AUROC %.4f  PRO %.4f", c, pm.ImageAUROC, pm.PixelAUROC, pm.PRO)
		}
	}
	return rep, nil
}

// bankCacheFile names a cached normal bank by everything it depends on.
func bankCacheFile(dir, encID string, o Options, normal []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%g\x00%d\x00", encID, o.withDefaults(1).CoresetRatio, o.Seed)
	for _, p := range normal {
		fmt.Fprintf(h, "%s\x00", p)
	}
	return filepath.Join(dir, "bank-"+hex.EncodeToString(h.Sum(nil))[:24]+".bin")
}

func withMethod(o Options, m Method) Options { o.Method = m; return o }

// measureEncode times encoding of up to 16 images (ms per image).
func measureEncode(ctx context.Context, enc *encoder.Encoder, paths []string) float64 {
	n := min(16, len(paths))
	if n == 0 {
		return 0
	}
	t := time.Now()
	if _, err := enc.EncodeFiles(ctx, paths[:n], nil); err != nil {
		return 0
	}
	return 1000 * time.Since(t).Seconds() / float64(n)
}

// PeakRSSMB reports the process's peak resident memory (VmHWM) in MiB, or 0
// where /proc is not available.
func PeakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// inRun marks the events of one benchmark run with its name.
func inRun(f progress.Func, run string) progress.Func {
	return func(e progress.Event) {
		e.Run = run
		f(e)
	}
}

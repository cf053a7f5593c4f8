package pipeline

import (
	"cmp"
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
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/progress"
)

// BenchOptions configure Bench: the whole protocol of METHOD.md §6 in one
// process.
type BenchOptions struct {
	Data       string
	Categories []string
	// Runs lists what to run: "patchcore", "dmad-unsupervised", "dmad-semi",
	// "dmad-weak" (the same K anomalies per category as dmad-semi, masks
	// withheld).
	Runs []string
	// ValidationImages is the number of normal training images per
	// category held out for the validation split (0: the default, < 0:
	// none).
	ValidationImages int
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
	// MapFusion is how the run's maps were made (DMAD), Validation how
	// the candidate fusions did on the validation split.
	MapFusion   *MapFusion        `json:"map_fusion,omitempty"`
	Validation  []ValidationScore `json:"validation,omitempty"`
	Checkpoints []ValidationScore `json:"checkpoints,omitempty"`
	Epochs      int               `json:"epochs,omitempty"`
	// MapVariants are the test pixel metrics of the maps every candidate
	// mapper weight would have given (DMAD; a measurement, never used to
	// choose).
	MapVariants []MapVariant `json:"map_variants,omitempty"`
}

// MapVariant is the test pixel metrics of one map fusion weight.
type MapVariant struct {
	MapperWeight float32                    `json:"mapper_weight"`
	PerCategory  map[string]metrics.Summary `json:"per_category"`
	Mean         metrics.Summary            `json:"mean"`
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
	b := &bench{o: o, rt: rt, prog: o.Progress, logf: o.Log}
	if b.prog == nil {
		b.prog = func(progress.Event) {}
	}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	ds, err := dataset.OpenContext(ctx, o.Data, dataset.Options{Categories: o.Categories})
	if err != nil {
		return nil, err
	}
	split, moved := dataset.SemiSplit(ds, o.Seen, o.Seed)
	if b.enc, err = encoder.New(rt, o.Card, o.Backbone, o.Encoder); err != nil {
		return nil, err
	}
	defer b.enc.Close()
	if err := b.encode(ctx, split, moved); err != nil {
		return nil, err
	}
	if err := b.sharedBank(ctx); err != nil {
		return nil, err
	}
	rep := &BenchReport{Backbone: o.Card.Name, Device: string(rt.Provider()), Threads: rt.Threads(),
		ImageSize: b.enc.Config().InputSize, Categories: split.Categories, TestImages: len(b.test), Seed: o.Seed}
	for _, run := range o.Runs {
		br, err := b.run(ctx, run)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, br)
		b.logf("%-18s I-AUROC %.4f  I-AP %.4f  P-AUROC %.4f  PRO %.4f  (train %.0fs, %.1f ms/img)",
			run, br.Mean.ImageAUROC, br.Mean.ImageAP, br.Mean.PixelAUROC, br.Mean.PRO, br.Timings.TrainS, br.Timings.InferMSPerImage)
		for _, c := range rep.Categories {
			pm := br.PerCategory[c]
			b.logf("    %-16s I-AUROC %.4f  P-AUROC %.4f  PRO %.4f", c, pm.ImageAUROC, pm.PixelAUROC, pm.PRO)
		}
	}
	return rep, nil
}

// bench is one benchmark's shared state: the split, the features, the
// training set and the shared normal bank (in base.NormalBank).
type bench struct {
	o    BenchOptions
	rt   *ort.Runtime
	enc  *encoder.Encoder
	prog progress.Func
	logf func(format string, args ...any)

	normal, test []dataset.Sample
	set          TrainSet // normal images, OOD patches and the validation split
	seen         []Image  // the seen anomalies, for dmad-semi and (without masks) dmad-weak
	testFeats    []*mat.Matrix
	featS, encMS float64 // feature time (s), encoding cost per image (ms)

	base   Options // fit options of every run, with the shared normal bank
	pc     *Model  // the PatchCore model, fitted with the bank
	banksS float64
}

func paths(ss []dataset.Sample) []string {
	p := make([]string, len(ss))
	for i, s := range ss {
		p[i] = s.Path
	}
	return p
}

// encode computes the features of every image once, the OOD patches, and
// the training set.
func (b *bench) encode(ctx context.Context, split *dataset.Dataset, moved []dataset.Sample) error {
	perCat := map[string]int{}
	for _, s := range split.Train() {
		if s.Label == dataset.Good && (b.o.MaxTrain <= 0 || perCat[s.Category] < b.o.MaxTrain) {
			b.normal = append(b.normal, s)
			perCat[s.Category]++
		}
	}
	b.test = split.Test()
	var cache FeatureCache
	if b.o.CacheDir != "" {
		cache = &DirCache{Dir: b.o.CacheDir, EncoderID: b.enc.ID()}
	}
	t0 := time.Now()
	all := append(append(paths(b.normal), paths(moved)...), paths(b.test)...)
	feats, err := Encode(ctx, b.enc, all, cache, b.prog)
	if err != nil {
		return err
	}
	for i, s := range b.normal {
		b.set.Normal = append(b.set.Normal, Image{ID: int32(i), Category: s.Category, Features: feats[i]})
	}
	// The validation split: held-out normal training images with synthetic
	// defects; the OOD patches come from the other normal images only.
	var picked []int
	if b.o.ValidationImages >= 0 {
		picked = PickValidation(b.set.Normal, cmp.Or(b.o.ValidationImages, DefaultValidationImages), b.o.Seed)
	}
	if b.set.Validation, err = NewValidation(ctx, b.enc, b.set.Normal, paths(b.normal), picked, DefaultValidationDefects, b.o.Seed, b.prog); err != nil {
		return err
	}
	held := b.set.Validation.HeldOut()
	var oodPaths []string
	for i, s := range b.normal {
		if !held[int32(i)] {
			oodPaths = append(oodPaths, s.Path)
		}
	}
	if b.set.OOD, err = OODPatches(ctx, b.enc, oodPaths, b.o.OODImages, b.o.Seed, b.prog); err != nil {
		return err
	}
	b.featS = time.Since(t0).Seconds()
	// Encoding cost per image, measured now (uncached) on a few test images.
	b.encMS = measureEncode(ctx, b.enc, paths(b.test))
	for i, s := range moved {
		m, err := loadMask(s.MaskPath)
		if err != nil {
			return err
		}
		b.seen = append(b.seen, Image{ID: int32(len(b.normal) + i), Category: s.Category, Features: feats[len(b.normal)+i], Mask: m})
	}
	b.testFeats = feats[len(b.normal)+len(moved):]
	return nil
}

// sharedBank fits PatchCore, whose normal bank every run shares (cached
// with the features when asked: the coreset is the slowest single step).
func (b *bench) sharedBank(ctx context.Context) error {
	t1 := time.Now()
	b.base = b.o.Fit
	b.base.EncoderID, b.base.Card, b.base.Encoder, b.base.Seed = b.enc.ID(), b.o.Card, b.enc.Config(), b.o.Seed
	pcOpts := withMethod(b.base, PatchCore)
	bankFile := ""
	if b.o.CacheDir != "" {
		bankFile = bankCacheFile(b.o.CacheDir, b.enc.ID(), b.base, paths(b.normal))
		if data, err := os.ReadFile(bankFile); err == nil {
			nb := &banks.NormalBank{}
			if err := nb.UnmarshalBinary(data); err == nil {
				pcOpts.NormalBank = nb
				b.logf("normal bank from cache %s", bankFile)
			}
		}
	}
	pc, err := Fit(ctx, b.rt, b.set, pcOpts, b.prog)
	if err != nil {
		return err
	}
	b.banksS = time.Since(t1).Seconds()
	if bankFile != "" && pcOpts.NormalBank == nil {
		if data, err := pc.Normal.MarshalBinary(); err == nil {
			if err := os.WriteFile(bankFile, data, 0o644); err != nil {
				b.logf("normal bank not cached: %v", err)
			}
		}
	}
	b.pc, b.base.NormalBank = pc, pc.Normal
	return nil
}

// run fits (DMAD) or takes (PatchCore) one run's model and scores the test
// images with it.
func (b *bench) run(ctx context.Context, run string) (BenchRun, error) {
	var m *Model
	t := time.Now()
	switch run {
	case "patchcore":
		m = b.pc
	case "dmad-unsupervised", "dmad-semi", "dmad-weak":
		s := b.set
		switch run {
		case "dmad-semi":
			s.Seen = b.seen
		case "dmad-weak":
			for _, im := range b.seen {
				im.Mask = nil
				s.Weak = append(s.Weak, im)
			}
		}
		var err error
		if m, err = Fit(ctx, b.rt, s, withMethod(b.base, DMAD), inRun(b.prog, run)); err != nil {
			return BenchRun{}, fmt.Errorf("%s: %w", run, err)
		}
	default:
		return BenchRun{}, fmt.Errorf("unknown bench run %q (want %s or dmad-weak)", run, strings.Join(DefaultBenchRuns, ", "))
	}
	trainS := time.Since(t).Seconds()
	if run == "patchcore" {
		trainS = b.banksS
	}
	sc, err := NewScorer(b.rt, m, b.base.Search)
	if err != nil {
		return BenchRun{}, err
	}
	t2 := time.Now()
	res, err := sc.ScoreImages(ctx, b.testFeats, inRun(b.prog, run))
	sc.Close()
	if err != nil {
		return BenchRun{}, err
	}
	scoreMS := 1000 * time.Since(t2).Seconds() / float64(max(1, len(b.test)))
	items := make([]Scored, len(b.test))
	for i, s := range b.test {
		items[i] = Scored{Path: s.Path, Category: s.Category, Anomalous: s.Label == dataset.Defect, MaskPath: s.MaskPath, Result: res[i]}
	}
	h0, w0 := b.enc.Grid()
	per, mean, err := Evaluate(ctx, items, h0, w0, b.enc.Config())
	if err != nil {
		return BenchRun{}, err
	}
	br := BenchRun{Method: string(m.Meta.Method), Regime: m.Meta.Regime, SeenAnomalies: m.Meta.SeenImages + m.Meta.WeakImages,
		PerCategory: per, Mean: mean, PeakRSSMB: PeakRSSMB(), Threshold: m.Meta.Threshold,
		MapFusion: m.Meta.MapFusion, Validation: m.Meta.Validation, Checkpoints: m.Meta.Checkpoints, Epochs: m.Meta.Epochs,
		Timings: BenchTimings{FeaturesS: b.featS, BanksS: b.banksS, TrainS: trainS, InferMSPerImage: b.encMS + scoreMS}}
	if m.Meta.MapFusion != nil {
		for _, v := range m.Meta.Checkpoints {
			b.logf("%s checkpoint: epoch %d  mapper weight %.2f  P-AUROC %.4f  PRO %.4f  I-AUROC %.4f", run, v.Epoch, v.MapperWeight, v.PixelAUROC, v.PRO, v.ImageAUROC)
		}
		b.logf("%s: mapper of epoch %d kept, map fusion mapper weight %.2f", run, m.Meta.Epochs, m.Meta.MapFusion.MapperWeight)
		for _, v := range m.Meta.Validation {
			b.logf("%s validation: mapper weight %.2f  P-AUROC %.4f  PRO %.4f  I-AUROC %.4f", run, v.MapperWeight, v.PixelAUROC, v.PRO, v.ImageAUROC)
		}
		if br.MapVariants, err = b.mapVariants(ctx, run, items, *m.Meta.MapFusion); err != nil {
			return BenchRun{}, err
		}
	}
	return br, nil
}

// mapVariants measures, on the test images, the maps of every candidate
// fusion weight (1 = the mapper's scores, 0 = the calibrated distance). It
// only reports; the model's weight was fixed on the validation split.
func (b *bench) mapVariants(ctx context.Context, run string, items []Scored, cal MapFusion) ([]MapVariant, error) {
	h0, w0 := b.enc.Grid()
	var out []MapVariant
	for _, w := range FusionWeights() {
		alt := make([]Scored, len(items))
		for i, it := range items {
			alt[i] = it
			alt[i].Result.Patches = cal.WithWeight(w).Fuse(nil, it.Result.Mapper, it.Result.Distance)
		}
		per, mean, err := Evaluate(ctx, alt, h0, w0, b.enc.Config())
		if err != nil {
			return nil, err
		}
		out = append(out, MapVariant{MapperWeight: w, PerCategory: per, Mean: mean})
		line := fmt.Sprintf("%s test maps at mapper weight %.2f: P-AUROC %.4f PRO %.4f", run, w, mean.PixelAUROC, mean.PRO)
		for _, c := range b.set.categories() {
			line += fmt.Sprintf(" | %s %.4f %.4f", c, per[c].PixelAUROC, per[c].PRO)
		}
		b.logf("%s", line)
	}
	return out, nil
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

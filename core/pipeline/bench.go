package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/membudget"
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
	// withheld), "dmad-retrain" (dmad-semi's model refitted after
	// RetrainNew new annotations: fitted first without them, then from
	// that model with them, see Options.Start).
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
	// CacheDir, when set, caches features between runs (see DirCache); otherwise they are cached in a temporary folder for the
	// benchmark's duration. Either way features are read from the cache as
	// needed, never all held in memory.
	CacheDir string
	// Float16Cache stores newly cached features as float16 (half the disk
	// and I/O; see DirCache for its effect on the metrics).
	Float16Cache bool
	// Memory is the memory budget in bytes (0: membudget.Default()); it
	// sizes the groups of test images scored together.
	Memory int64
	// NoFast skips scoring every run a second time with the fast search.
	NoFast bool
	// FastOnly scores every run once, with the fast search: the run's
	// metrics and rate are the fast search's (BenchRun.Search says so).
	// For configurations whose exact scoring takes long, such as a finer
	// patch grid; exact scoring is the default.
	FastOnly bool
	// NoGEMM skips measuring exact search against the GEMM peak.
	NoGEMM bool
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
	// PeakRSSMB is the process's peak resident memory during this run
	// (fitting and scoring; the high-water mark is reset before each run
	// where Linux allows, see PeakRSSReset), or since the start otherwise.
	PeakRSSMB float64 `json:"peak_rss_mb"`
	Threshold float32 `json:"threshold"`
	// Search is the search mode the run's metrics were scored with:
	// exact, or fast with BenchOptions.FastOnly.
	Search string `json:"search"`
	// ImagesPerS is that scoring's rate end to end (encode + score).
	ImagesPerS float64 `json:"images_per_s"`
	// Fast is the same model scored with the fast search (absent with
	// NoFast).
	Fast *BenchSearch `json:"fast,omitempty"`
	// MapFusion is how the run's maps were made (DMAD), Validation how
	// the candidate fusions did on the validation split.
	MapFusion  *MapFusion        `json:"map_fusion,omitempty"`
	Validation []ValidationScore `json:"validation,omitempty"`
	// CategoryValidation is Validation per category (the categories'
	// own mapper weights, MapFusion.CategoryWeights).
	CategoryValidation map[string][]ValidationScore `json:"category_validation,omitempty"`
	Checkpoints        []ValidationScore            `json:"checkpoints,omitempty"`
	// CategoryAgreement is Meta.CategoryAgreement; Routed the categories
	// the fast search routed to their part of the banks.
	CategoryAgreement map[string]float64 `json:"category_agreement,omitempty"`
	Routed            []string           `json:"routed,omitempty"`
	Epochs            int                `json:"epochs,omitempty"`
	// MapVariants are the test pixel metrics of the maps every candidate
	// mapper weight would have given (DMAD; a measurement, never used to
	// choose).
	MapVariants []MapVariant `json:"map_variants,omitempty"`
	// SigmaVariants are the test pixel metrics of the run's maps smoothed
	// with other σ than MapSigma (DMAD; a measurement, never used to
	// choose: whether a smoothing chosen on the validation split could
	// matter).
	SigmaVariants []MapVariant `json:"sigma_variants,omitempty"`
}

// MapVariant is the test pixel metrics of one map fusion weight.
type MapVariant struct {
	MapperWeight float32 `json:"mapper_weight"`
	// Sigma is the maps' Gaussian smoothing (0: MapSigma).
	Sigma       float64                    `json:"sigma,omitempty"`
	PerCategory map[string]metrics.Summary `json:"per_category"`
	Mean        metrics.Summary            `json:"mean"`
}

// BenchSearch is one run's model scored with another search mode.
type BenchSearch struct {
	Mode            string                     `json:"mode"`
	PerCategory     map[string]metrics.Summary `json:"per_category"`
	Mean            metrics.Summary            `json:"mean"`
	InferMSPerImage float64                    `json:"infer_ms_per_image"`
	ImagesPerS      float64                    `json:"images_per_s"`
}

// BenchTimings are wall-clock seconds of each stage. FeaturesS (encoding
// every image once) and BanksS (PatchCore's fitting: the normal bank, its
// routing check and the threshold) are shared by all runs and reported in
// each, NormalBankS is the normal bank alone (0 when it came from the
// cache); TrainS is the run's own fitting (anomaly bank,
// knowledge, mapper, threshold); InferMSPerImage is encoding plus scoring
// of one test image.
type BenchTimings struct {
	FeaturesS   float64 `json:"features_s"`
	BanksS      float64 `json:"banks_s"`
	NormalBankS float64 `json:"normal_bank_s,omitempty"`
	TrainS      float64 `json:"train_s"`
	// StartTrainS is, for dmad-retrain, the fitting of the model it
	// refits (TrainS is the refit's).
	StartTrainS     float64 `json:"start_train_s,omitempty"`
	InferMSPerImage float64 `json:"infer_ms_per_image"`
}

// BenchReport is the benchmark's JSON document.
type BenchReport struct {
	Backbone   string   `json:"backbone"`
	Device     string   `json:"device"`
	Threads    int      `json:"threads"`
	ImageSize  int      `json:"image_size"`
	Categories []string `json:"categories"`
	TestImages int      `json:"test_images"`
	Seed       int64    `json:"seed"`
	// MemoryBudgetMB is the memory setting (BenchOptions.Memory) in MiB.
	MemoryBudgetMB float64 `json:"memory_budget_mb"`
	// SharedPeakRSSMB is the peak resident memory of the shared stages
	// (features, synthetic defects, normal bank); PeakRSSMB the whole
	// process's.
	SharedPeakRSSMB float64 `json:"shared_peak_rss_mb"`
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	// GEMM compares exact search (one test image's patches against the
	// normal bank) with the GEMM peak of the same shape, measured in the
	// same run (absent with NoGEMM).
	GEMM *banks.GEMMComparison `json:"gemm,omitempty"`
	Runs []BenchRun            `json:"runs"`
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
	if o.Memory <= 0 {
		o.Memory = membudget.Default()
	}
	defer membudget.LimitGo(o.Memory)()
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
	if o.CacheDir == "" {
		dir, err := os.MkdirTemp("", "dmad-bench-features-*")
		if err != nil {
			return nil, fmt.Errorf("bench: feature cache: %w", err)
		}
		defer os.RemoveAll(dir)
		b.o.CacheDir = dir
	}
	b.cache = &DirCache{Dir: b.o.CacheDir, EncoderID: b.enc.ID(), Float16: o.Float16Cache}
	PeakRSSReset()
	if err := b.encode(ctx, split, moved); err != nil {
		return nil, err
	}
	if err := b.sharedBank(ctx); err != nil {
		return nil, err
	}
	rep := &BenchReport{Backbone: o.Card.Name, Device: string(rt.Provider()), Threads: rt.Threads(),
		ImageSize: b.enc.Config().InputSize, Categories: split.Categories, TestImages: len(b.test), Seed: o.Seed,
		MemoryBudgetMB: float64(o.Memory) / (1 << 20), SharedPeakRSSMB: PeakRSSMB()}
	b.logf("features and normal bank: peak RSS %.0f MB (memory budget %s)", rep.SharedPeakRSSMB, membudget.Format(o.Memory))
	if !o.NoGEMM {
		g, err := b.compareGEMM(ctx)
		if err != nil {
			return nil, err
		}
		rep.GEMM = &g
		b.logf("exact search %.1f GFLOP/s vs GEMM peak %.1f GFLOP/s: ratio %.2f (%d queries × %d bank rows)",
			g.ExactGFLOPS, g.GEMMGFLOPS, g.Ratio, g.Queries, g.BankRows)
	}
	processPeak := rep.SharedPeakRSSMB
	for _, run := range o.Runs {
		PeakRSSReset()
		br, err := b.run(ctx, run)
		if err != nil {
			return nil, err
		}
		processPeak = max(processPeak, br.PeakRSSMB)
		rep.Runs = append(rep.Runs, br)
		name := run
		if br.Search != banks.SearchExact.String() {
			name += " (" + br.Search + ")"
		}
		b.logf("%-18s I-AUROC %.4f  I-AP %.4f  P-AUROC %.4f  PRO %.4f  (train %.0fs, %.1f ms/img, %.1f img/s, peak RSS %.0f MB)",
			name, br.Mean.ImageAUROC, br.Mean.ImageAP, br.Mean.PixelAUROC, br.Mean.PRO, br.Timings.TrainS, br.Timings.InferMSPerImage, br.ImagesPerS, br.PeakRSSMB)
		if f := br.Fast; f != nil {
			b.logf("%-18s I-AUROC %.4f  I-AP %.4f  P-AUROC %.4f  PRO %.4f  (%.1f ms/img, %.1f img/s)",
				"  fast search", f.Mean.ImageAUROC, f.Mean.ImageAP, f.Mean.PixelAUROC, f.Mean.PRO, f.InferMSPerImage, f.ImagesPerS)
		}
		for _, c := range rep.Categories {
			pm := br.PerCategory[c]
			line := fmt.Sprintf("    %-16s I-AUROC %.4f  P-AUROC %.4f  PRO %.4f", c, pm.ImageAUROC, pm.PixelAUROC, pm.PRO)
			if br.Fast != nil {
				fm := br.Fast.PerCategory[c]
				line += fmt.Sprintf("   fast: I-AUROC %.4f  P-AUROC %.4f", fm.ImageAUROC, fm.PixelAUROC)
			}
			b.logf("%s", line)
		}
	}
	rep.PeakRSSMB = max(processPeak, PeakRSSMB())
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
	set          TrainSet // normal images (read from cache), OOD patches and the validation split
	seen         []Image  // the seen anomalies, for dmad-semi and (without masks) dmad-weak
	cache        *DirCache
	featS, encMS float64            // feature time (s), encoding cost per image (ms)
	encCat       map[string]float64 // encoding cost per image of each category (ms)

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
	t0 := time.Now()
	all := append(append(paths(b.normal), paths(moved)...), paths(b.test)...)
	rows, err := EncodeToCache(ctx, b.enc, all, b.cache, b.prog)
	if err != nil {
		return err
	}
	ids, cats := make([]int32, len(all)), make([]string, len(all))
	for i, s := range append(append(append([]dataset.Sample(nil), b.normal...), moved...), b.test...) {
		ids[i], cats[i] = int32(i), s.Category
	}
	imgs := CachedImages(b.cache, all, ids, cats, rows)
	b.set = TrainSet{Normal: imgs[:len(b.normal)]}
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
	// Encoding cost per image, measured now (uncached) on a few test images
	// of each category.
	b.encMS, b.encCat = measureEncode(ctx, b.enc, b.test)
	for _, c := range slices.Sorted(maps.Keys(b.encCat)) {
		b.logf("encoding (decode, resize, backbone) of %s's test images: %.1f ms per image", c, b.encCat[c])
	}
	for i, s := range moved {
		m, err := loadMask(s.MaskPath)
		if err != nil {
			return err
		}
		im := imgs[len(b.normal)+i]
		im.Mask = m
		b.seen = append(b.seen, im)
	}
	return nil
}

// sharedBank fits PatchCore, whose normal bank every run shares (cached
// with the features when asked: the coreset is the slowest single step).
func (b *bench) sharedBank(ctx context.Context) error {
	t1 := time.Now()
	b.base = b.o.Fit
	b.base.Memory = b.o.Memory
	b.base.EncoderID, b.base.Card, b.base.Encoder, b.base.Seed = b.enc.ID(), b.o.Card, b.enc.Config(), b.o.Seed
	pcOpts := withMethod(b.base, PatchCore)
	bankFile := ""
	if b.o.CacheDir != "" {
		bankFile = bankCacheFile(b.o.CacheDir, b.enc.ID(), b.base, b.o.Float16Cache, paths(b.normal))
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
	if pc.Meta.NormalBankSeconds > 0 {
		b.logf("normal bank (%d entries) built in %.1f s", pc.Normal.Len(), pc.Meta.NormalBankSeconds)
	}
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

// run fits (or takes) the run's model and scores the test images.
func (b *bench) run(ctx context.Context, run string) (BenchRun, error) {
	var m *Model
	var startS float64 // dmad-retrain: the earlier model's fitting
	t := time.Now()
	switch run {
	case "patchcore":
		m = b.pc
	case "dmad-retrain":
		var err error
		if m, startS, err = b.retrain(ctx, run); err != nil {
			return BenchRun{}, err
		}
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
		return BenchRun{}, fmt.Errorf("unknown bench run %q (want %s, dmad-weak or dmad-retrain)", run, strings.Join(DefaultBenchRuns, ", "))
	}
	trainS := time.Since(t).Seconds()
	switch run {
	case "patchcore":
		trainS = b.banksS
	case "dmad-retrain":
		trainS = m.Meta.TrainSeconds // the refit alone
	}
	search := b.base.Search
	search.Mode = banks.SearchExact
	if b.o.FastOnly {
		search.Mode = banks.SearchFast
	}
	items, per, mean, scoreMS, err := b.score(ctx, m, search, inRun(b.prog, run))
	if err != nil {
		return BenchRun{}, err
	}
	b.logf("%s: %s search, %.1f ms per image: encoding %.1f (%d test images of each category, weighted by its share), scoring %.1f", run, search.Mode, b.encMS+scoreMS, b.encMS, encodeSample, scoreMS)
	br := BenchRun{Method: string(m.Meta.Method), Regime: m.Meta.Regime, SeenAnomalies: m.Meta.SeenImages + m.Meta.WeakImages, Search: search.Mode.String(),
		PerCategory: per, Mean: mean, Threshold: m.Meta.Threshold, ImagesPerS: 1000 / (b.encMS + scoreMS),
		MapFusion: m.Meta.MapFusion, Validation: m.Meta.Validation, CategoryValidation: m.Meta.CategoryValidation, Checkpoints: m.Meta.Checkpoints, Epochs: m.Meta.Epochs,
		Timings: BenchTimings{FeaturesS: b.featS, BanksS: b.banksS, NormalBankS: b.pc.Meta.NormalBankSeconds, TrainS: trainS, StartTrainS: startS, InferMSPerImage: b.encMS + scoreMS}}
	br.CategoryAgreement = m.Meta.CategoryAgreement
	b.logBanks(run, m)
	br.Routed = slices.Sorted(maps.Keys(m.Meta.CategoryImages))
	for _, c := range slices.Sorted(maps.Keys(m.Meta.CategoryAgreement)) {
		_, routed := m.Meta.CategoryImages[c]
		b.logf("%s: %s's bank entries with their nearest neighbour in %s: %.4f (fast search routed: %v)", run, c, c, m.Meta.CategoryAgreement[c], routed)
	}
	if m.Meta.MapFusion != nil {
		for _, v := range m.Meta.Checkpoints {
			b.logf("%s checkpoint: epoch %d  mapper weight %.2f  P-AUROC %.4f  PRO %.4f  I-AUROC %.4f", run, v.Epoch, v.MapperWeight, v.PixelAUROC, v.PRO, v.ImageAUROC)
		}
		b.logf("%s: mapper of epoch %d kept, map fusion mapper weight %.2f", run, m.Meta.Epochs, m.Meta.MapFusion.MapperWeight)
		for _, v := range m.Meta.Validation {
			b.logf("%s validation: mapper weight %.2f  P-AUROC %.4f  PRO %.4f  I-AUROC %.4f", run, v.MapperWeight, v.PixelAUROC, v.PRO, v.ImageAUROC)
		}
		for _, c := range slices.Sorted(maps.Keys(m.Meta.MapFusion.CategoryWeights)) {
			b.logf("%s: %s's own map fusion mapper weight %.2f", run, c, m.Meta.MapFusion.CategoryWeights[c])
		}
		if br.MapVariants, err = b.mapVariants(ctx, run, items, *m.Meta.MapFusion); err != nil {
			return BenchRun{}, err
		}
		if br.SigmaVariants, err = b.sigmaVariants(ctx, run, items); err != nil {
			return BenchRun{}, err
		}
	}
	items = nil
	if !b.o.NoFast && !b.o.FastOnly {
		fast := b.base.Search
		fast.Mode = banks.SearchFast
		_, fper, fmean, fastMS, err := b.score(ctx, m, fast, inRun(b.prog, run+" (fast)"))
		if err != nil {
			return BenchRun{}, err
		}
		b.logf("%s: %s search, %.1f ms per image: encoding %.1f, scoring %.1f", run, fast.Mode, b.encMS+fastMS, b.encMS, fastMS)
		br.Fast = &BenchSearch{Mode: fast.Mode.String(), PerCategory: fper, Mean: fmean,
			InferMSPerImage: b.encMS + fastMS, ImagesPerS: 1000 / (b.encMS + fastMS)}
	}
	br.PeakRSSMB = PeakRSSMB()
	return br, nil
}

// logBanks logs the sizes of m's banks and of each routed category's part
// of them (what the fast search searches for an image of that category).
func (b *bench) logBanks(run string, m *Model) {
	size := func(source, ids []int32, orNone bool) int { return len(partRows(source, ids, orNone)) }
	line := fmt.Sprintf("%s: normal bank %d entries", run, m.Normal.Len())
	if m.Anomaly != nil {
		line += fmt.Sprintf(", anomaly bank %d", m.Anomaly.Len())
	}
	for _, c := range slices.Sorted(maps.Keys(m.Meta.CategoryImages)) {
		ids := m.Meta.CategoryImages[c]
		line += fmt.Sprintf("; %s's part %d", c, size(m.Normal.Source, ids, false))
		if m.Anomaly != nil {
			line += fmt.Sprintf(" + %d", size(m.Anomaly.Source, ids, true))
		}
	}
	b.logf("%s", line)
}

// RetrainNew is the number of new annotations dmad-retrain adds: seen
// anomalies spread evenly over the semi split's (both categories).
const RetrainNew = 5

// retrain fits dmad-semi's set without RetrainNew of its seen anomalies,
// then refits that model with all of them (Options.Start); it returns the
// refitted model and the first fit's seconds.
func (b *bench) retrain(ctx context.Context, run string) (*Model, float64, error) {
	held := map[int]bool{}
	n := min(RetrainNew, len(b.seen)-1)
	for i := range n {
		held[(i+1)*len(b.seen)/n-1] = true
	}
	first := b.set
	for i, im := range b.seen {
		if !held[i] {
			first.Seen = append(first.Seen, im)
		}
	}
	t := time.Now()
	prev, err := Fit(ctx, b.rt, first, withMethod(b.base, DMAD), inRun(b.prog, run+" (before)"))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: first fit: %w", run, err)
	}
	startS := time.Since(t).Seconds()
	b.logf("%s: first fit with %d seen anomalies in %.1f s", run, len(first.Seen), startS)
	s := b.set
	s.Seen = b.seen
	o := withMethod(b.base, DMAD)
	o.Start = prev
	m, err := Fit(ctx, b.rt, s, o, inRun(b.prog, run))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", run, err)
	}
	b.logf("%s: refitted with %d seen anomalies (%d new) in %.1f s", run, len(s.Seen), n, m.Meta.TrainSeconds)
	return m, startS, nil
}

// score scores the test images with m, features read from the cache in
// groups sized by the memory budget, and evaluates them: the scored items,
// the metrics and the scoring cost per image (ms).
func (b *bench) score(ctx context.Context, m *Model, search banks.SearchOptions, report progress.Func) ([]Scored, map[string]metrics.Summary, metrics.Summary, float64, error) {
	if b.o.Memory > 0 && search.BufferBytes == 0 {
		search.BufferBytes = searchBuffer(b.o.Memory)
	}
	sc, err := NewScorer(b.rt, m, ForInspection(search))
	if err != nil {
		return nil, nil, metrics.Summary{}, 0, err
	}
	defer sc.Close()
	h0, w0 := b.enc.Grid()
	perImage := int64(h0*w0*b.enc.Dim()) * 4
	group := int(max(16, min(int64(len(b.test)), b.o.Memory/16/max(1, perImage))))
	items := make([]Scored, len(b.test))
	var scoring time.Duration
	catTime, catImages := map[string]time.Duration{}, map[string]int{}
	for from, to := 0, 0; from < len(b.test); from = to {
		// A group ends where the category changes, so each category's
		// scoring is timed on its own.
		cat := b.test[from].Category
		to = runEnd(from, len(b.test), group, func(i int) string { return b.test[i].Category })
		feats := make([]*mat.Matrix, to-from)
		for i := range feats {
			f, ok := b.cache.Get(b.test[from+i].Path)
			if !ok {
				return nil, nil, metrics.Summary{}, 0, fmt.Errorf("features of test image %s are missing from the cache %s", b.test[from+i].Path, b.o.CacheDir)
			}
			feats[i] = f
		}
		t := time.Now()
		cats := make([]string, len(feats))
		for i := range cats {
			cats[i] = cat
		}
		res, err := sc.ScoreImages(ctx, feats, cats, func(e progress.Event) {
			e.Done, e.Total = from+e.Done, len(b.test)
			report.Send(e)
		})
		took := time.Since(t)
		scoring += took
		catTime[cat] += took
		catImages[cat] += to - from
		if err != nil {
			return nil, nil, metrics.Summary{}, 0, err
		}
		for i, s := range b.test[from:to] {
			items[from+i] = Scored{Path: s.Path, Category: s.Category, Anomalous: s.Label == dataset.Defect, MaskPath: s.MaskPath, Result: res[i]}
		}
	}
	for _, c := range slices.Sorted(maps.Keys(catTime)) {
		ms := 1000 * catTime[c].Seconds() / float64(catImages[c])
		b.logf("%s search of %s's %d test images: encoding %.1f + scoring %.1f = %.1f ms per image (%.1f images/s)",
			search.Mode, c, catImages[c], b.encCat[c], ms, b.encCat[c]+ms, 1000/(b.encCat[c]+ms))
	}
	per, mean, err := Evaluate(ctx, items, h0, w0, b.enc.Config())
	if err != nil {
		return nil, nil, metrics.Summary{}, 0, err
	}
	return items, per, mean, 1000 * scoring.Seconds() / float64(max(1, len(b.test))), nil
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
		b.logMaps(fmt.Sprintf("%s test maps at mapper weight %.2f", run, w), per, mean)
	}
	return out, nil
}

// sigmaVariants measures, on the test images, the run's maps smoothed with
// σ = 2 and 8 instead of MapSigma. It only reports.
func (b *bench) sigmaVariants(ctx context.Context, run string, items []Scored) ([]MapVariant, error) {
	h0, w0 := b.enc.Grid()
	var out []MapVariant
	for _, sigma := range []float64{2, 8} {
		per, mean, err := evaluateMasks(ctx, items, h0, w0, b.enc.Config(), sigma, maskFiles(items))
		if err != nil {
			return nil, err
		}
		out = append(out, MapVariant{Sigma: sigma, PerCategory: per, Mean: mean})
		b.logMaps(fmt.Sprintf("%s test maps smoothed with σ %g", run, sigma), per, mean)
	}
	return out, nil
}

// logMaps logs one line of a map variant's pixel metrics: the mean, then
// each category's.
func (b *bench) logMaps(label string, per map[string]metrics.Summary, mean metrics.Summary) {
	line := fmt.Sprintf("%s: P-AUROC %.4f PRO %.4f", label, mean.PixelAUROC, mean.PRO)
	for _, c := range b.set.categories() {
		line += fmt.Sprintf(" | %s %.4f %.4f", c, per[c].PixelAUROC, per[c].PRO)
	}
	b.logf("%s", line)
}

// compareGEMM measures exact search of one test image's patches against the
// normal bank with the GEMM peak of the same shape (banks.CompareGEMM).
func (b *bench) compareGEMM(ctx context.Context) (banks.GEMMComparison, error) {
	if len(b.test) == 0 {
		return banks.GEMMComparison{}, errors.New("bench: no test images to measure search with")
	}
	q, ok := b.cache.Get(b.test[0].Path)
	if !ok {
		return banks.GEMMComparison{}, fmt.Errorf("features of test image %s are missing from the cache %s", b.test[0].Path, b.o.CacheDir)
	}
	return banks.CompareGEMM(ctx, b.rt, b.base.NormalBank.Features, q, 5)
}

// bankCacheFile names a cached normal bank by everything it depends on.
func bankCacheFile(dir, encID string, o Options, float16Cache bool, normal []string) string {
	h := sha256.New()
	// "streamed": banks of the streaming coreset (rotation after the
	// projection) are not mixed with earlier ones; the memory budget may
	// select in two stages.
	fmt.Fprintf(h, "%s\x00%g\x00%d\x00streamed\x00%v\x00%d\x00", encID, o.withDefaults(1).CoresetRatio, o.Seed, float16Cache, o.Memory)
	for _, p := range normal {
		fmt.Fprintf(h, "%s\x00", p)
	}
	return filepath.Join(dir, "bank-"+hex.EncodeToString(h.Sum(nil))[:24]+".bin")
}

func withMethod(o Options, m Method) Options { o.Method = m; return o }

// measureEncode times the encoding (decode, resize, backbone) of up to
// encodeSample test images of each category, spread over the category's
// images, and returns the mean cost per test image (ms), each category's
// weighted by its share of the test images, and each category's cost.
// Categories differ in image size and format (900×900 PNG against
// 250×370 JPEG on the benchmark), so a sample of one category would not
// speak for the test set.
func measureEncode(ctx context.Context, enc *encoder.Encoder, test []dataset.Sample) (float64, map[string]float64) {
	byCat := map[string][]string{}
	for _, s := range test {
		byCat[s.Category] = append(byCat[s.Category], s.Path)
	}
	perCategory := map[string]float64{}
	if len(test) == 0 {
		return 0, perCategory
	}
	// One batch first, untimed: the encoder's first run sets up its
	// buffers (with every feature cached it has not run yet).
	warm := make([]string, min(len(test), max(1, enc.Config().Batch)))
	for i := range warm {
		warm[i] = test[i].Path
	}
	if _, err := enc.EncodeFiles(ctx, warm, nil); err != nil {
		return 0, nil
	}
	var total float64
	for _, c := range slices.Sorted(maps.Keys(byCat)) {
		ps := byCat[c]
		n := min(encodeSample, len(ps))
		sample := make([]string, n)
		for i := range sample {
			sample[i] = ps[i*len(ps)/n]
		}
		t := time.Now()
		if _, err := enc.EncodeFiles(ctx, sample, nil); err != nil {
			return 0, nil
		}
		perCategory[c] = 1000 * time.Since(t).Seconds() / float64(n)
		total += perCategory[c] * float64(len(ps))
	}
	return total / float64(len(test)), perCategory
}

// encodeSample is the number of test images of each category whose
// encoding measureEncode times.
const encodeSample = 16

// PeakRSSReset resets the process's peak resident memory (VmHWM) to the
// current resident memory (Linux ≥ 4.0: /proc/self/clear_refs), so that
// PeakRSSMB measures from now; it reports whether it could.
func PeakRSSReset() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
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

package project

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"sort"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/membudget"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/storage"
)

// TrainOptions configure Session.Train. Build them with NewTrainOptions
// (or start from DefaultTrainOptions); zero values take the defaults.
type TrainOptions struct {
	// Method is DMAD (default) or PatchCore.
	Method pipeline.Method
	// Semi uses the images marked as seen anomalies (with their masks);
	// false trains unsupervised on normal images only.
	Semi bool
	// SemiIfAny trains semi-supervised when there are seen anomalies and
	// unsupervised otherwise (Semi fails without them).
	SemiIfAny bool
	// Categories restricts training to these categories; empty means all.
	Categories []string
	// Fit configures banks and mapper (Method, encoder fields are set here).
	Fit pipeline.Options
	// OODImages is the number of synthetic-defect images for M_o
	// [pipeline.DefaultOODImages].
	OODImages int
	// Notes are stored with the model.
	Notes string
	// FullRetrain rebuilds everything. By default, when an earlier DMAD model
	// was built from the same normal images, its normal bank and synthetic
	// defects are reused and its mapper is fine-tuned (pipeline.Options.Start:
	// a smaller sample of patches, FineTuneFraction of the epochs, the fast
	// search) instead of trained from scratch.
	FullRetrain bool
	// FineTuneFraction is the share of the epochs a fine-tune runs
	// [DefaultFineTuneFraction].
	FineTuneFraction float64
	// Memory is the memory budget in bytes [membudget.Default(): an eighth
	// of the machine's RAM, 1–4 GiB]. Training holds the features in memory
	// when they take at most a quarter of it and otherwise streams them
	// from the project's feature cache.
	Memory int64
}

// withDefaults fills the zero values from DefaultTrainOptions.
func (o TrainOptions) withDefaults() TrainOptions {
	d := DefaultTrainOptions()
	if o.Method == "" {
		o.Method = d.Method
	}
	if o.OODImages == 0 {
		o.OODImages = d.OODImages
	}
	if o.FineTuneFraction == 0 {
		o.FineTuneFraction = d.FineTuneFraction
	}
	if o.Memory == 0 {
		o.Memory = d.Memory
	}
	f := &o.Fit
	if f.CoresetRatio == 0 {
		f.CoresetRatio = d.Fit.CoresetRatio
	}
	if f.TrainPatches == 0 {
		f.TrainPatches = d.Fit.TrainPatches
	}
	if f.Train.Epochs == 0 {
		seed := f.Train.Seed
		f.Train = d.Fit.Train
		f.Train.Seed = max(seed, 1)
	}
	if f.Train.Mapper.Hidden == 0 {
		f.Train.Mapper = d.Fit.Train.Mapper
	}
	return o
}

// trainingImages are the normal training images and (for semi-supervised
// DMAD) the seen anomalies of the selected categories; it settles whether
// the run is semi-supervised.
func (s *Session) trainingImages(o *TrainOptions) (normal, seen, weak []storage.ImageRecord, err error) {
	want := map[string]bool{}
	for _, c := range o.Categories {
		want[c] = true
	}
	all, err := s.Store.Images(storage.ImageFilter{})
	if err != nil {
		return nil, nil, nil, err
	}
	semi := (o.Semi || o.SemiIfAny) && o.Method == pipeline.DMAD
	for _, r := range all {
		if len(want) > 0 && !want[r.Category] {
			continue
		}
		switch {
		case r.Split == storage.SplitTrain && r.Label == storage.LabelNormal:
			normal = append(normal, r)
		case semi && r.Seen && r.Label == storage.LabelAnomalous:
			seen = append(seen, r)
		case semi && r.Weak && r.Label == storage.LabelAnomalous:
			weak = append(weak, r)
		}
	}
	if len(normal) == 0 {
		return nil, nil, nil, errors.New("the project has no normal training images: import a dataset or mark good images as training images")
	}
	if o.SemiIfAny && !o.Semi {
		o.Semi = len(seen)+len(weak) > 0
		if !o.Semi {
			s.log.Info("no seen anomalies: training unsupervised", "project", s.Store.Path())
		}
	}
	if o.Semi && o.Method == pipeline.DMAD && len(seen)+len(weak) == 0 {
		return nil, nil, nil, errors.New("semi-supervised training needs annotated defects: paint masks and mark images as seen anomalies, mark defective images without masks as weak anomalies, or train unsupervised")
	}
	return normal, seen, weak, nil
}

// Train fits a unified model on the project's training images and stores it
// as a new, active model version (banks, mapper and metadata in one
// transaction). It returns the stored record. Options out of range are an
// *OptionError.
func (s *Session) Train(ctx context.Context, o TrainOptions, report progress.Func) (storage.ModelRecord, *pipeline.Model, error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return storage.ModelRecord{}, nil, err
	}
	if report == nil {
		report = func(progress.Event) {}
	}
	if o.Fit.Train.Logger == nil {
		o.Fit.Train.Logger = s.log
	}
	defer membudget.LimitGo(o.Memory)()
	enc, err := s.Encoder()
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	normal, seen, weak, err := s.trainingImages(&o)
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	imgs, err := s.trainingFeatures(ctx, enc, append(append(append([]storage.ImageRecord{}, normal...), seen...), weak...), o.Memory, report)
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	fo := o.Fit
	fo.Memory = o.Memory
	fo.Method, fo.EncoderID, fo.Card, fo.Encoder = o.Method, enc.ID(), enc.Card(), enc.Config()
	key := normalBankKey(enc.ID(), fo, normal)
	var prev *pipeline.Model
	if !o.FullRetrain {
		prev = s.reusable(key)
	}
	if prev != nil {
		fo.NormalBank = prev.Normal
		s.log.Info("reusing the normal bank and synthetic defects of an earlier model", "key", key[:12])
		if o.Method == pipeline.DMAD && prev.Mapper != nil && prev.Meta.EncoderID == enc.ID() {
			fo.Start = prev
			fo.Refit.Epochs = refitEpochs(fo.Train.Epochs, o.FineTuneFraction)
		}
	}
	set, err := s.trainSet(ctx, o, enc, normal, seen, weak, imgs, prev, report)
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	var events []any
	m, err := pipeline.Fit(ctx, s.rt, set, fo, func(e progress.Event) {
		if e.Stage == progress.Train && (e.Done == e.Total || e.Done%max(1, e.Total/e.Epochs) == 0) {
			events = append(events, e)
		}
		report(e)
	})
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	m.Meta.NormalBankKey = key
	report(progress.Event{Stage: progress.Save})
	rec, err := s.storeModel(ctx, m, enc.Card().Name, o.Notes, events)
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	return rec, m, nil
}

// trainingFeatures makes sure the project caches the features of recs
// (encoding what it lacks, stored as it goes) and returns them as training
// images with IDs 0, 1, …: held in memory when their float32 size is at
// most a quarter of the memory budget, otherwise read from the project's
// cache when Fit needs them.
func (s *Session) trainingFeatures(ctx context.Context, enc *encoder.Encoder, recs []storage.ImageRecord, budget int64, report progress.Func) ([]pipeline.Image, error) {
	cache := &featureCache{p: s.Store, encID: enc.ID(), ids: map[string]uint64{}, ctx: ctx, flushEvery: 32}
	paths, ids, cats := make([]string, len(recs)), make([]int32, len(recs)), make([]string, len(recs))
	for i, r := range recs {
		paths[i], ids[i], cats[i] = r.Path, int32(i), r.Category
		cache.ids[r.Path] = r.ID
	}
	rows, err := pipeline.EncodeToCache(ctx, enc, paths, cache, report)
	if err == nil {
		err = cache.flush(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("cache features: %w", err)
	}
	imgs := pipeline.CachedImages(cache, paths, ids, cats, rows)
	total := int64(0)
	for _, n := range rows {
		total += int64(n) * int64(enc.Dim()) * 4
	}
	if total > budget/4 {
		s.log.Info("streaming features from the project", "features", membudget.Format(total), "memory", membudget.Format(budget))
		return imgs, nil
	}
	for i := range imgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if imgs[i].Features, err = imgs[i].Load(); err != nil {
			return nil, err
		}
	}
	return imgs, nil
}

// trainSet gathers the training set: normal and seen images with their
// features (imgs: normal, seen, weak, in that order) and masks, and for
// DMAD the synthetic-defect patches, reused from prev when it has them.
func (s *Session) trainSet(ctx context.Context, o TrainOptions, enc *encoder.Encoder, normal, seen, weak []storage.ImageRecord,
	imgs []pipeline.Image, prev *pipeline.Model, report progress.Func) (pipeline.TrainSet, error) {
	set := pipeline.TrainSet{Normal: imgs[:len(normal)]}
	normalPaths := make([]string, len(normal))
	for i, r := range normal {
		normalPaths[i] = r.Path
	}
	for i, r := range seen {
		m, err := s.Store.Mask(r.ID)
		if err != nil {
			return set, fmt.Errorf("mask of seen anomaly %s: %w", r.Path, err)
		}
		im := imgs[len(normal)+i]
		im.Mask = m
		set.Seen = append(set.Seen, im)
	}
	if o.Method != pipeline.DMAD {
		return set, nil
	}
	off := len(normal) + len(seen)
	for i := range weak {
		set.Weak = append(set.Weak, imgs[off+i])
	}
	// The validation split (synthetic defects on held-out normal training
	// images) chooses the map fusion and the checkpoint; its images give
	// no synthetic defects to the anomaly bank.
	picked := pipeline.PickValidation(set.Normal, pipeline.DefaultValidationImages, o.Fit.Seed)
	var err error
	if set.Validation, err = pipeline.NewValidation(ctx, enc, set.Normal, normalPaths, picked, pipeline.DefaultValidationDefects, o.Fit.Seed, report); err != nil {
		return set, err
	}
	if prev != nil && prev.Anomaly != nil && prev.Anomaly.Count(banks.KindOOD) > 0 {
		set.OOD = oodRows(prev.Anomaly)
		return set, nil
	}
	held := set.Validation.HeldOut()
	var oodPaths []string
	for i, p := range normalPaths {
		if !held[int32(i)] {
			oodPaths = append(oodPaths, p)
		}
	}
	set.OOD, err = pipeline.OODPatches(ctx, enc, oodPaths, min(o.OODImages, 4*len(oodPaths)), o.Fit.Seed, report)
	return set, err
}

// storeModel saves m as the new active model with its training log.
func (s *Session) storeModel(ctx context.Context, m *pipeline.Model, backboneName, notes string, events []any) (storage.ModelRecord, error) {
	meta, err := json.Marshal(m.Meta)
	if err != nil {
		return storage.ModelRecord{}, fmt.Errorf("model metadata: %w", err)
	}
	rec := &storage.ModelRecord{BackboneID: backboneName, Config: meta, Notes: notes, Active: true,
		Thresholds: map[string]float64{"image": float64(m.Meta.Threshold)}}
	for c, t := range m.Meta.CategoryThresholds {
		rec.Thresholds["image/"+c] = float64(t)
	}
	parts, err := m.Parts()
	if err != nil {
		return storage.ModelRecord{}, err
	}
	if err := s.Store.SaveModel(ctx, rec, parts); err != nil {
		return storage.ModelRecord{}, fmt.Errorf("save model: %w", err)
	}
	if len(events) > 0 {
		if err := s.Store.AppendTrainingLog(rec.Version, events...); err != nil {
			s.log.Warn("training log not saved", "err", err)
		}
	}
	return *rec, nil
}

// Scored is one image scored by Evaluate or Inspect.
type Scored struct {
	Record storage.ImageRecord // ID 0 for images outside the project
	// MaskPath is the ground-truth mask file of an inspected image ("" when
	// there is none; Evaluate reads masks from the project).
	MaskPath string
	pipeline.ImageResult
	// Map is the anomaly map at MapSize×MapSize (the encoder's input geometry).
	Map     []float32
	MapSize int
}

// EvalOptions configure Session.Evaluate.
type EvalOptions struct {
	// Version is the model version; ≤ 0 means the active one.
	Version int
	// NoSave computes the metrics without storing the run, so a project on
	// read-only media (opened with OpenOptions.ReadOnly) can be evaluated.
	NoSave bool
}

// EvalResult is an evaluation of the test split.
type EvalResult struct {
	ModelVersion int
	Model        *pipeline.Model
	Threshold    float32
	PerCategory  map[string]metrics.Summary
	Mean         metrics.Summary
	Images       []Scored
	RunID        uint64 // 0 with EvalOptions.NoSave
}

// Evaluate scores the project's test images (of the model's categories)
// with a stored model, computes the metrics, and (unless o.NoSave) stores
// the run with per-image scores and small anomaly maps.
func (s *Session) Evaluate(ctx context.Context, o EvalOptions, report progress.Func) (*EvalResult, error) {
	m, rec, err := s.loadModel(o.Version)
	if err != nil {
		return nil, err
	}
	test, err := s.testImages(m.Meta.Categories)
	if err != nil {
		return nil, err
	}
	scored, err := s.score(ctx, m, test, report)
	if err != nil {
		return nil, err
	}
	items := make([]pipeline.Scored, len(scored))
	for i, sc := range scored {
		items[i] = pipeline.Scored{Path: sc.Record.Path, Category: sc.Record.Category,
			Anomalous: sc.Record.Label == storage.LabelAnomalous, Result: sc.ImageResult}
	}
	enc, err := s.Encoder()
	if err != nil {
		return nil, err
	}
	h0, w0 := enc.Grid()
	per, mean, err := pipeline.EvaluateMasks(ctx, items, h0, w0, enc.Config(), func(i int) (*image.Gray, error) {
		if items[i].Anomalous && s.Store.HasMask(test[i].ID) {
			return s.Store.Mask(test[i].ID)
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	res := &EvalResult{ModelVersion: rec.Version, Model: m, Threshold: m.Meta.Threshold, PerCategory: per, Mean: mean, Images: scored}
	if o.NoSave {
		return res, nil
	}
	run := &storage.RunRecord{ModelVersion: rec.Version, Name: fmt.Sprintf("evaluation of model v%d", rec.Version),
		Metrics: map[string]float64{}}
	mean.Put(run.Metrics, "")
	for c, pm := range per {
		pm.Put(run.Metrics, c+"/")
	}
	for _, sc := range scored {
		run.PerImage = append(run.PerImage, imageResult(sc, m))
	}
	if err := s.Store.SaveRun(run); err != nil {
		return nil, fmt.Errorf("save evaluation run: %w", err)
	}
	res.RunID = run.ID
	return res, nil
}

// testImages are the project's test images of the categories, without the
// seen anomalies (they were trained on).
func (s *Session) testImages(categories []string) ([]storage.ImageRecord, error) {
	cats := map[string]bool{}
	for _, c := range categories {
		cats[c] = true
	}
	all, err := s.Store.Images(storage.ImageFilter{Split: storage.SplitTest})
	if err != nil {
		return nil, err
	}
	var test []storage.ImageRecord
	for _, r := range all {
		if cats[r.Category] && !r.Seen && !r.Weak {
			test = append(test, r)
		}
	}
	if len(test) == 0 {
		return nil, errors.New("no test images for the model's categories")
	}
	return test, nil
}

// InspectResult is an inspection of image files.
type InspectResult struct {
	ModelVersion int
	Model        *pipeline.Model
	// Images are in the order of the samples; Record.ID is the project's
	// id of an image the project holds, 0 otherwise.
	Images []Scored
	// PerCategory and Mean are the metrics when every image's label is
	// known and every category has good and defective images (an MVTec AD
	// or VisA test folder); PerCategory is nil otherwise.
	PerCategory map[string]metrics.Summary
	Mean        metrics.Summary
	// Maps are the patch maps and masks of a run whose every image is
	// labelled (nil otherwise), for inspection.MapsName: a merge of shard
	// outputs computes the pixel metrics from them.
	Maps *inspection.PixelMaps
}

// Inspect scores image files (inside or outside the project) with a stored
// model (version ≤ 0: the active one) and, when every sample is labelled,
// computes the metrics. Nothing is written to the project: features of
// inspected files are not cached, so a read-only project can inspect.
func (s *Session) Inspect(ctx context.Context, version int, samples []dataset.Sample, report progress.Func) (*InspectResult, error) {
	m, rec, err := s.loadModel(version)
	if err != nil {
		return nil, err
	}
	recs := make([]storage.ImageRecord, len(samples))
	for i, smp := range samples {
		recs[i] = storage.ImageRecord{Path: smp.Path, Category: smp.Category, Label: storageLabel(smp.Label)}
	}
	scored, err := s.score(ctx, m, recs, report)
	if err != nil {
		return nil, err
	}
	res := &InspectResult{ModelVersion: rec.Version, Model: m, Images: scored}
	labelled := len(samples) > 0
	items := make([]pipeline.Scored, len(scored))
	for i := range scored {
		sc := &scored[i]
		sc.MaskPath = samples[i].MaskPath
		if r, err := s.Store.ImageByPath(sc.Record.Path); err == nil {
			sc.Record.ID = r.ID
		}
		labelled = labelled && samples[i].Label != dataset.Unlabeled
		items[i] = pipeline.Scored{Path: sc.Record.Path, Category: sc.Record.Category,
			Anomalous: samples[i].Label == dataset.Defect, MaskPath: sc.MaskPath, Result: sc.ImageResult}
	}
	if !labelled {
		return res, nil
	}
	enc, err := s.Encoder()
	if err != nil {
		return nil, err
	}
	h0, w0 := enc.Grid()
	if res.Maps, err = pixelMaps(ctx, items, h0, w0, enc.Config()); err != nil {
		return nil, err
	}
	if !bothClasses(items) {
		return res, nil
	}
	if res.PerCategory, res.Mean, err = pipeline.Evaluate(ctx, items, h0, w0, enc.Config()); err != nil {
		return nil, err
	}
	return res, nil
}

// pixelMaps are the patch maps of items and their masks in the encoder's
// input geometry.
func pixelMaps(ctx context.Context, items []pipeline.Scored, h0, w0 int, cfg encoder.Config) (*inspection.PixelMaps, error) {
	cfg = cfg.WithDefaults()
	m := &inspection.PixelMaps{GridH: h0, GridW: w0, Size: cfg.InputSize, Images: make([]inspection.ImageMap, len(items))}
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		im := inspection.ImageMap{Path: it.Path, Patches: it.Result.Patches}
		if it.MaskPath != "" {
			g, err := imageio.LoadMask(it.MaskPath)
			if err != nil {
				return nil, fmt.Errorf("mask of %s: %w", it.Path, err)
			}
			im.Mask = pipeline.MaskAt(g, cfg)
		}
		m.Images[i] = im
	}
	return m, nil
}

// bothClasses reports whether every category has normal and anomalous
// images: the metrics are undefined otherwise.
func bothClasses(items []pipeline.Scored) bool {
	type count struct{ normal, anomalous int }
	per := map[string]count{}
	for _, it := range items {
		c := per[it.Category]
		if it.Anomalous {
			c.anomalous++
		} else {
			c.normal++
		}
		per[it.Category] = c
	}
	for _, c := range per {
		if c.normal == 0 || c.anomalous == 0 {
			return false
		}
	}
	return true
}

// score encodes (cached for project images) and scores recs.
func (s *Session) score(ctx context.Context, m *pipeline.Model, recs []storage.ImageRecord, report progress.Func) ([]Scored, error) {
	if report == nil {
		report = func(progress.Event) {}
	}
	enc, err := s.Encoder()
	if err != nil {
		return nil, err
	}
	if enc.ID() != m.Meta.EncoderID {
		return nil, fmt.Errorf("the model was trained on features %s but the project now computes %s: restore the project's backbone/input size or retrain", m.Meta.EncoderID, enc.ID())
	}
	inProject := 0
	for _, r := range recs {
		if r.ID != 0 {
			inProject++
		}
	}
	var feats []*mat.Matrix
	if inProject == len(recs) {
		feats, err = s.Features(ctx, recs, report)
	} else {
		paths := make([]string, len(recs))
		for i, r := range recs {
			paths[i] = r.Path
		}
		feats, err = pipeline.Encode(ctx, enc, paths, nil, report)
	}
	if err != nil {
		return nil, err
	}
	sc, err := pipeline.NewScorer(s.rt, m, pipeline.ForInspection(banks.SearchOptions{Mode: s.search}))
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	cats := make([]string, len(recs))
	for i, r := range recs {
		cats[i] = r.Category
	}
	res, err := sc.ScoreImages(ctx, feats, cats, report)
	if err != nil {
		return nil, err
	}
	h0, w0 := enc.Grid()
	size := enc.Config().InputSize
	out := make([]Scored, len(recs))
	for i := range recs {
		out[i] = Scored{Record: recs[i], ImageResult: res[i], Map: pipeline.Map(res[i].Patches, h0, w0, size, size), MapSize: size}
	}
	return out, nil
}

// ThumbMapSize is the side of the anomaly maps stored with runs.
const ThumbMapSize = 64

func imageResult(sc Scored, m *pipeline.Model) storage.ImageResult {
	r := storage.ImageResult{ImageID: sc.Record.ID, Path: sc.Record.Path, Category: sc.Record.Category,
		Score: float64(sc.Score), Label: sc.Record.Label}
	small := heatmap.ResampleBox(sc.Map, sc.MapSize, sc.MapSize, ThumbMapSize, ThumbMapSize)
	if am, err := storage.QuantizeMap(ThumbMapSize, ThumbMapSize, small, m.Meta.MapLo, max(m.Meta.MapHi, m.Meta.Threshold*1.5, m.Meta.MapLo+1e-6)); err == nil {
		r.Map = am
	}
	return r
}

// Categories lists the names of the project's categories, sorted.
func (s *Session) Categories() ([]string, error) {
	cs, err := s.Store.Categories()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	sort.Strings(out)
	return out, nil
}

// normalBankKey identifies a normal bank by what it is built from: the
// encoder, the coreset settings and the normal images' content.
func normalBankKey(encID string, o pipeline.Options, normal []storage.ImageRecord) string {
	h := sha256.New()
	ratio := o.CoresetRatio
	if ratio <= 0 {
		ratio = pipeline.DefaultCoresetRatio
	}
	fmt.Fprintf(h, "%s\x00%g\x00%d\x00", encID, ratio, o.Seed)
	for _, r := range normal {
		fmt.Fprintf(h, "%d:%s:%s\x00", r.ID, r.SHA256, r.Category)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// reusable returns the newest stored model whose normal bank has key (nil
// when there is none, or it cannot be read — then everything is rebuilt).
func (s *Session) reusable(key string) *pipeline.Model {
	models, err := s.Store.Models()
	if err != nil {
		return nil
	}
	for i := len(models) - 1; i >= 0; i-- {
		var meta pipeline.Meta
		if json.Unmarshal(models[i].Config, &meta) != nil || meta.NormalBankKey != key {
			continue
		}
		m, _, err := s.loadModel(models[i].Version)
		if err != nil {
			s.log.Warn("earlier model unreadable; rebuilding its banks", "version", models[i].Version, "err", err)
			return nil
		}
		return m
	}
	return nil
}

// oodRows extracts the out-of-distribution entries of an anomaly bank.
func oodRows(ab *banks.AnomalyBank) *mat.Matrix {
	var rows []int
	for i, k := range ab.Kind {
		if k == banks.KindOOD {
			rows = append(rows, i)
		}
	}
	return ab.Features.Gather(rows)
}

// refitEpochs is the fine-tune's share frac of a training's epochs, at
// least one (see pipeline.RefitOptions).
func refitEpochs(epochs int, frac float64) int {
	if frac <= 0 {
		frac = DefaultFineTuneFraction
	}
	return max(1, int(math.Round(float64(epochs)*frac)))
}

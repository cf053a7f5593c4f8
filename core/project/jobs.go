package project

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"maps"
	"math"
	"sort"
	"time"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/train"
	"github.com/dmad/workstation/storage"
)

// TrainOptions configure Session.Train.
type TrainOptions struct {
	// Method is DMAD (default) or PatchCore.
	Method pipeline.Method
	// Semi uses the images marked as seen anomalies (with their masks);
	// false trains unsupervised on normal images only.
	Semi bool
	// Categories restricts training to these categories; empty means all.
	Categories []string
	// Fit configures banks and mapper (Method, encoder fields are set here).
	Fit pipeline.Options
	// OODImages is the number of synthetic-defect images for M_o (default 200).
	OODImages int
	// Notes are stored with the model.
	Notes string
	// FullRetrain rebuilds everything. By default, when an earlier DMAD model
	// was built from the same normal images, its normal bank and synthetic
	// defects are reused and its mapper is fine-tuned for FineTuneFraction
	// of the epochs instead of trained from scratch.
	FullRetrain bool
	// FineTuneFraction is the share of the epochs a fine-tune runs [0.25].
	FineTuneFraction float64
}

// Progress is one progress report of a long job.
type Progress = pipeline.Event

// Train fits a unified model on the project's training images and stores it
// as a new, active model version (banks, mapper and metadata in one
// transaction). It returns the stored record.
func (s *Session) Train(ctx context.Context, o TrainOptions, progress func(Progress)) (storage.ModelRecord, *pipeline.Model, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	if o.Method == "" {
		o.Method = pipeline.DMAD
	}
	if o.OODImages <= 0 {
		o.OODImages = 200
	}
	enc, err := s.Encoder()
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	want := map[string]bool{}
	for _, c := range o.Categories {
		want[c] = true
	}
	all, err := s.Store.Images(storage.ImageFilter{})
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	var normal, seen []storage.ImageRecord
	for _, r := range all {
		if len(want) > 0 && !want[r.Category] {
			continue
		}
		switch {
		case r.Split == storage.SplitTrain && r.Label == storage.LabelNormal:
			normal = append(normal, r)
		case o.Semi && o.Method == pipeline.DMAD && r.Seen && r.Label == storage.LabelAnomalous:
			seen = append(seen, r)
		}
	}
	if len(normal) == 0 {
		return storage.ModelRecord{}, nil, errors.New("the project has no normal training images: import a dataset or mark good images as training images")
	}
	if o.Semi && o.Method == pipeline.DMAD && len(seen) == 0 {
		return storage.ModelRecord{}, nil, errors.New("semi-supervised training needs annotated defects: paint masks and mark images as seen anomalies, or train unsupervised")
	}
	feats, err := s.Features(ctx, append(append([]storage.ImageRecord{}, normal...), seen...),
		func(d, t int) { progress(Progress{Stage: "features", Done: d, Total: t}) })
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	fo := o.Fit
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
			fo = fineTune(fo, prev, o.FineTuneFraction)
		}
	}
	set := pipeline.TrainSet{}
	normalPaths := make([]string, len(normal))
	for i, r := range normal {
		set.Normal = append(set.Normal, pipeline.Image{ID: int32(i), Category: r.Category, Features: feats[i]})
		normalPaths[i] = r.Path
	}
	for i, r := range seen {
		m, err := s.Store.Mask(r.ID)
		if err != nil {
			return storage.ModelRecord{}, nil, fmt.Errorf("mask of seen anomaly %s: %w", r.Path, err)
		}
		set.Seen = append(set.Seen, pipeline.Image{ID: int32(len(normal) + i), Category: r.Category, Features: feats[len(normal)+i], Mask: m})
	}
	if o.Method == pipeline.DMAD && prev != nil && prev.Anomaly != nil && prev.Anomaly.Count(banks.KindOOD) > 0 {
		set.OOD = oodRows(prev.Anomaly)
	} else if o.Method == pipeline.DMAD {
		set.OOD, err = pipeline.OODPatches(ctx, enc, normalPaths, min(o.OODImages, 4*len(normalPaths)), o.Fit.Seed,
			func(d, t int) { progress(Progress{Stage: "synthetic", Done: d, Total: t}) })
		if err != nil {
			return storage.ModelRecord{}, nil, err
		}
	}
	var events []any
	m, err := pipeline.Fit(ctx, s.rt, set, fo, func(e pipeline.Event) {
		if e.Stage == "train" && e.Done == e.Total || e.Stage == "train" && e.Done%max(1, e.Total/e.Epochs) == 0 {
			events = append(events, e)
		}
		progress(e)
	})
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	m.Meta.NormalBankKey = key
	meta, _ := json.Marshal(m.Meta)
	rec := &storage.ModelRecord{BackboneID: enc.Card().Name, Config: meta, Notes: o.Notes, Active: true,
		Thresholds: map[string]float64{"image": float64(m.Meta.Threshold)}}
	for c, t := range m.Meta.CategoryThresholds {
		rec.Thresholds["image/"+c] = float64(t)
	}
	parts, err := m.Parts()
	if err != nil {
		return storage.ModelRecord{}, nil, err
	}
	progress(Progress{Stage: "save"})
	if err := s.Store.SaveModel(ctx, rec, parts); err != nil {
		return storage.ModelRecord{}, nil, fmt.Errorf("save model: %w", err)
	}
	if len(events) > 0 {
		if err := s.Store.AppendTrainingLog(rec.Version, events...); err != nil {
			s.log.Warn("training log not saved", "err", err)
		}
	}
	return *rec, m, nil
}

// Scored is one image scored by Evaluate or Inspect.
type Scored struct {
	Record storage.ImageRecord // ID 0 for images outside the project
	pipeline.ImageResult
	// Map is the anomaly map at MapSize×MapSize (the encoder's input geometry).
	Map     []float32
	MapSize int
}

// EvalResult is an evaluation of the test split.
type EvalResult struct {
	ModelVersion int
	Threshold    float32
	PerCategory  map[string]pipeline.Metrics
	Mean         pipeline.Metrics
	Images       []Scored
	RunID        uint64
}

// Evaluate scores the project's test images (of the model's categories)
// with a stored model (version ≤ 0: the active one), computes the metrics,
// and stores the run with per-image scores and small anomaly maps.
func (s *Session) Evaluate(ctx context.Context, version int, progress func(Progress)) (*EvalResult, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	m, rec, err := s.loadModel(version)
	if err != nil {
		return nil, err
	}
	cats := map[string]bool{}
	for _, c := range m.Meta.Categories {
		cats[c] = true
	}
	all, err := s.Store.Images(storage.ImageFilter{Split: storage.SplitTest})
	if err != nil {
		return nil, err
	}
	var test []storage.ImageRecord
	for _, r := range all {
		if cats[r.Category] && !r.Seen {
			test = append(test, r)
		}
	}
	if len(test) == 0 {
		return nil, errors.New("no test images for the model's categories")
	}
	scored, err := s.score(ctx, m, test, nil, progress)
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
	res := &EvalResult{ModelVersion: rec.Version, Threshold: m.Meta.Threshold, PerCategory: per, Mean: mean, Images: scored}
	run := &storage.RunRecord{ModelVersion: rec.Version, Name: "evaluation " + time.Now().Format("2006-01-02 15:04"),
		Metrics: metricsMap(mean)}
	for c, pm := range per {
		for k, v := range metricsMap(pm) {
			run.Metrics[c+"/"+k] = v
		}
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

// Inspect scores image files (inside or outside the project) with a stored
// model. Features of files outside the project are not cached.
func (s *Session) Inspect(ctx context.Context, version int, samples []dataset.Sample, progress func(Progress)) ([]Scored, *pipeline.Model, error) {
	m, _, err := s.loadModel(version)
	if err != nil {
		return nil, nil, err
	}
	recs := make([]storage.ImageRecord, len(samples))
	for i, smp := range samples {
		recs[i] = storage.ImageRecord{Path: smp.Path, Category: smp.Category, Label: -1}
		if smp.Label == dataset.Good {
			recs[i].Label = storage.LabelNormal
		} else if smp.Label == dataset.Defect {
			recs[i].Label = storage.LabelAnomalous
		}
	}
	scored, err := s.score(ctx, m, recs, nil, progress)
	return scored, m, err
}

// score encodes (cached for project images) and scores recs.
func (s *Session) score(ctx context.Context, m *pipeline.Model, recs []storage.ImageRecord, _ any, progress func(Progress)) ([]Scored, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	enc, err := s.Encoder()
	if err != nil {
		return nil, err
	}
	if enc.ID() != m.Meta.EncoderID {
		return nil, fmt.Errorf("the model was trained on features %s but the project now computes %s: restore the project's backbone/input size or retrain", m.Meta.EncoderID, enc.ID())
	}
	var inProject []storage.ImageRecord
	for _, r := range recs {
		if r.ID != 0 {
			inProject = append(inProject, r)
		}
	}
	feats := make([]*mat.Matrix, len(recs))
	if len(inProject) == len(recs) {
		feats, err = s.Features(ctx, recs, func(d, t int) { progress(Progress{Stage: "features", Done: d, Total: t}) })
	} else {
		paths := make([]string, len(recs))
		for i, r := range recs {
			paths[i] = r.Path
		}
		feats, err = pipeline.Encode(ctx, enc, paths, nil, func(d, t int) { progress(Progress{Stage: "features", Done: d, Total: t}) })
	}
	if err != nil {
		return nil, err
	}
	sc, err := pipeline.NewScorer(s.rt, m, banks.SearchOptions{})
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	res, err := sc.ScoreImages(ctx, feats, func(d, t int) { progress(Progress{Stage: "score", Done: d, Total: t}) })
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
	small := pipeline.ResampleBox(sc.Map, sc.MapSize, sc.MapSize, ThumbMapSize, ThumbMapSize)
	if am, err := storage.QuantizeMap(ThumbMapSize, ThumbMapSize, small, m.Meta.MapLo, max(m.Meta.MapHi, m.Meta.Threshold*1.5, m.Meta.MapLo+1e-6)); err == nil {
		r.Map = am
	}
	return r
}

func metricsMap(m pipeline.Metrics) map[string]float64 {
	all := map[string]float64{"image_auroc": m.ImageAUROC, "image_ap": m.ImageAP, "image_f1max": m.ImageF1Max,
		"pixel_auroc": m.PixelAUROC, "pixel_ap": m.PixelAP, "pro": m.PRO}
	// An undefined metric (NaN: a single-class validation set) is absent,
	// not a value JSON cannot hold.
	maps.DeleteFunc(all, func(_ string, v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
	return all
}

// Categories lists the project's categories with image counts.
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
		ratio = 0.02
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

// fineTune continues training from prev's mapper for a fraction of the
// epochs: new annotations refine a trained model rather than restart it.
func fineTune(o pipeline.Options, prev *pipeline.Model, frac float64) pipeline.Options {
	if frac <= 0 {
		frac = 0.25
	}
	tc := o.Train
	if tc.Epochs <= 0 {
		tc = train.DefaultConfig(prev.Mapper.Config.C)
		tc.Seed = o.Train.Seed
	}
	tc.Start = prev.Mapper
	tc.Mapper = prev.Mapper.Config
	tc.Epochs = max(1, int(math.Round(float64(tc.Epochs)*frac)))
	o.Train = tc
	return o
}

// Package project is a working session on one project file: it connects the
// project's images, masks and feature cache (storage) with the engine
// (core/pipeline) for import, training, evaluation and inspection. The CLI
// and the desktop application both work through it, so a project trained
// from one opens in the other.
package project

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dmad/workstation/core/backbone"
	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/mat"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/review"
	"github.com/dmad/workstation/storage"
)

// Session is an open project with the engine attached. Its methods are not
// meant to run concurrently with each other (the GUI runs one job at a time).
type Session struct {
	Store *storage.Project
	rt    *ort.Runtime
	log   *slog.Logger
	// readOnly sessions compute but never cache features.
	readOnly bool
	// search is how scoring finds nearest neighbours (exact by default;
	// training always searches exactly).
	search banks.SearchMode

	mu  sync.Mutex
	enc *encoder.Encoder
}

// SetSearchMode sets how Inspect and Evaluate find nearest neighbours: banks.SearchExact (the default, what
// bench reports) or banks.SearchFast (candidates from the bank lists nearest
// each patch, re-ranked exactly; on the shared benchmark image AUROC within
// 0.001 of exact and scoring 6–13× faster).
// Training always searches exactly.
func (s *Session) SetSearchMode(m banks.SearchMode) { s.search = m }

// OpenOptions say how Open treats the project file.
type OpenOptions struct {
	// Create makes a new project when the file does not exist.
	Create bool
	// ReadOnly opens without writing anything (read-only media, several
	// readers of one project): evaluation must not save its run, and
	// features are computed but not cached.
	ReadOnly bool
}

// Open opens (or, with o.Create, creates) the project file at path. The
// runtime is used for every engine call. Created reports whether the file
// was made by this call, so a command that then fails can remove it. An
// empty file is refused, never rewritten.
func Open(path string, o OpenOptions, rt *ort.Runtime, log *slog.Logger) (s *Session, created bool, err error) {
	if log == nil {
		log = slog.Default()
	}
	var p *storage.Project
	st, statErr := os.Stat(path)
	switch {
	case errors.Is(statErr, os.ErrNotExist) && o.Create && !o.ReadOnly:
		name := filepath.Base(path)
		name = name[:len(name)-len(filepath.Ext(name))]
		p, err = storage.Create(path, name)
		created = err == nil
	case statErr != nil:
		return nil, false, fmt.Errorf("project %s: %w", path, statErr)
	case st.IsDir():
		return nil, false, fmt.Errorf("project %s: is a folder, not a project file", path)
	case st.Size() == 0:
		return nil, false, fmt.Errorf("project %s: the file is empty (0 bytes), not a project", path)
	default:
		p, err = storage.Open(path, storage.Options{ReadOnly: o.ReadOnly, Logger: log})
	}
	if err != nil {
		return nil, false, err
	}
	return &Session{Store: p, rt: rt, log: log, readOnly: o.ReadOnly}, created, nil
}

// Close closes the encoder and the project file.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.enc != nil {
		s.enc.Close()
		s.enc = nil
	}
	s.mu.Unlock()
	return s.Store.Close()
}

// Runtime is the session's ONNX Runtime.
func (s *Session) Runtime() *ort.Runtime { return s.rt }

// SetBackbone records the backbone and input size in the project settings;
// the encoder is rebuilt on next use. Features of other settings stay cached
// under their own encoder id. A backbone given as a file (ONNX with its card
// beside it, or a card) is first imported into the user's backbone store,
// so the project names it the way every station does: by its card name.
func (s *Session) SetBackbone(spec string, inputSize int) error {
	st := s.Store.Settings()
	if spec != "" {
		name, err := backbone.Install(spec)
		if err != nil {
			return err
		}
		st.Backbone = name
	}
	if inputSize > 0 {
		st.InputSize = inputSize
	}
	if err := s.Store.PutSettings(st); err != nil {
		return err
	}
	s.mu.Lock()
	if s.enc != nil {
		s.enc.Close()
		s.enc = nil
	}
	s.mu.Unlock()
	return nil
}

// Encoder returns the encoder the project's settings name.
func (s *Session) Encoder() (*encoder.Encoder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enc != nil {
		return s.enc, nil
	}
	st := s.Store.Settings()
	card, model, err := backbone.Resolve(st.Backbone)
	if err != nil {
		return nil, err
	}
	enc, err := encoder.New(s.rt, card, model, encoder.Config{InputSize: st.InputSize})
	if err != nil {
		return nil, err
	}
	s.enc = enc
	return enc, nil
}

// ImportDataset adds a dataset's images to the project (paths and content
// hashes; files stay where they are) with their ground-truth masks. Images
// already in the project are updated, not duplicated.
func (s *Session) ImportDataset(ctx context.Context, ds *dataset.Dataset, report progress.Func) ([]storage.ImageRecord, error) {
	recs := make([]*storage.ImageRecord, 0, len(ds.Samples))
	for i, smp := range ds.Samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec := &storage.ImageRecord{Path: smp.Path, Category: smp.Category, Width: smp.Width, Height: smp.Height,
			Defect: smp.Defect, Split: storage.SplitTrain, Label: storage.LabelNormal}
		if old, err := s.Store.ImageByPath(smp.Path); err == nil {
			rec.ID, rec.Seen, rec.Weak = old.ID, old.Seen, old.Weak
		}
		if smp.Split == dataset.Test {
			rec.Split = storage.SplitTest
		}
		if smp.Label == dataset.Defect {
			rec.Label = storage.LabelAnomalous
		}
		sha, w, h, err := storage.HashImageFile(smp.Path)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", smp.Path, err)
		}
		rec.SHA256, rec.Width, rec.Height = sha, w, h
		recs = append(recs, rec)
		if i%32 == 0 {
			report.Send(progress.Event{Stage: progress.Import, Done: i, Total: len(ds.Samples) * 2})
		}
	}
	if err := s.Store.PutImages(recs); err != nil {
		return nil, err
	}
	for i, smp := range ds.Samples {
		if smp.MaskPath == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, err := imageio.LoadMask(smp.MaskPath)
		if err != nil {
			return nil, fmt.Errorf("import mask: %w", err)
		}
		if err := s.Store.PutMask(recs[i].ID, m); err != nil {
			return nil, err
		}
		if i%32 == 0 {
			report.Send(progress.Event{Stage: progress.Import, Done: len(ds.Samples) + i, Total: len(ds.Samples) * 2})
		}
	}
	for _, smp := range ds.Samples {
		if err := s.Store.PutCategory(storage.Category{Name: smp.Category}); err != nil {
			return nil, err
		}
	}
	out := make([]storage.ImageRecord, len(recs))
	for i, r := range recs {
		out[i] = *r
	}
	report.Send(progress.Event{Stage: progress.Import, Done: 1, Total: 1})
	return out, nil
}

// MarkSeen marks (or unmarks) images as seen anomalies: annotated defects the
// semi-supervised regime trains on. They must have a mask.
func (s *Session) MarkSeen(ids []uint64, seen bool) error {
	var recs []*storage.ImageRecord
	for _, id := range ids {
		r, err := s.Store.Image(id)
		if err != nil {
			return err
		}
		if seen && !s.Store.HasMask(id) {
			return fmt.Errorf("image %s has no mask: paint one before marking it as a seen anomaly", r.Path)
		}
		r.Seen = seen
		recs = append(recs, &r)
	}
	return s.Store.PutImages(recs)
}

// MarkWeak marks (or unmarks) images as weak anomalies: defective, without
// a mask. Marking one also labels it anomalous; the semi-supervised regime
// trains on its top-scoring patches (pipeline.TrainSet.Weak) and
// evaluation leaves it out.
func (s *Session) MarkWeak(ids []uint64, weak bool) error {
	var recs []*storage.ImageRecord
	for _, id := range ids {
		r, err := s.Store.Image(id)
		if err != nil {
			return err
		}
		r.Weak = weak
		if weak {
			r.Label = storage.LabelAnomalous
		}
		recs = append(recs, &r)
	}
	return s.Store.PutImages(recs)
}

// ImportWeak adds the images under dir as weak anomalies (defective, no
// mask) of the category named by their first folder below dir
// (dir/<category>/…/image.png); images directly in dir are an error, as
// is an empty dir. Images already in the project are marked, not
// duplicated. It returns the records.
func (s *Session) ImportWeak(ctx context.Context, dir string) ([]storage.ImageRecord, error) {
	files, err := dataset.ListImages(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("weak anomalies %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("weak anomalies %s: no images (want %s/<category>/<image>)", dir, dir)
	}
	recs := make([]*storage.ImageRecord, 0, len(files))
	cats := map[string]bool{}
	for _, f := range files {
		rel, err := filepath.Rel(dir, f)
		if err != nil {
			return nil, fmt.Errorf("weak anomaly %s: %w", f, err)
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) < 2 {
			return nil, fmt.Errorf("weak anomaly %s is not in a category folder (want %s/<category>/<image>)", f, dir)
		}
		rec := &storage.ImageRecord{Path: f, Category: parts[0], Split: storage.SplitTrain}
		if old, err := s.Store.ImageByPath(f); err == nil {
			rec = &old
		}
		rec.Label, rec.Weak = storage.LabelAnomalous, true
		sha, w, h, err := storage.HashImageFile(f)
		if err != nil {
			return nil, fmt.Errorf("weak anomaly: %w", err)
		}
		rec.SHA256, rec.Width, rec.Height = sha, w, h
		recs = append(recs, rec)
		cats[rec.Category] = true
	}
	if err := s.Store.PutImages(recs); err != nil {
		return nil, err
	}
	for c := range cats {
		if err := s.Store.PutCategory(storage.Category{Name: c}); err != nil {
			return nil, err
		}
	}
	out := make([]storage.ImageRecord, len(recs))
	for i, r := range recs {
		out[i] = *r
	}
	return out, nil
}

// featureCache adapts the project's feature cache (keyed by image id) to the
// pipeline's (keyed by path).
type featureCache struct {
	p     *storage.Project
	encID string
	ids   map[string]uint64
	put   []storage.FeatureEntry
	// With flushEvery > 0, Put writes every flushEvery images (in ctx), so
	// that features streamed into the cache are not all held.
	flushEvery int
	ctx        context.Context
}

func (c *featureCache) Get(path string) (*mat.Matrix, bool) {
	id, ok := c.ids[path]
	if !ok || !c.p.HasFeatures(c.encID, id) {
		return nil, false
	}
	m, err := c.p.Features(c.encID, id)
	if err != nil {
		return nil, false // damaged entries are recomputed
	}
	return m, true
}

func (c *featureCache) Put(path string, m *mat.Matrix) error {
	id, ok := c.ids[path]
	if !ok {
		return nil
	}
	c.put = append(c.put, storage.FeatureEntry{ImageID: id, Features: m})
	if c.flushEvery > 0 && len(c.put) >= c.flushEvery {
		return c.flush(c.ctx)
	}
	return nil
}

// flush writes the collected features in transactions of a few dozen images.
func (c *featureCache) flush(ctx context.Context) error {
	const group = 32
	for from := 0; from < len(c.put); from += group {
		if err := c.p.PutFeaturesBatch(ctx, c.encID, c.put[from:min(from+group, len(c.put))]); err != nil {
			return err
		}
	}
	c.put = nil
	return nil
}

// Features returns the patch features of project images, from the cache or
// computed (and then cached).
func (s *Session) Features(ctx context.Context, recs []storage.ImageRecord, report progress.Func) ([]*mat.Matrix, error) {
	enc, err := s.Encoder()
	if err != nil {
		return nil, err
	}
	cache := &featureCache{p: s.Store, encID: enc.ID(), ids: map[string]uint64{}}
	paths := make([]string, len(recs))
	for i, r := range recs {
		paths[i] = r.Path
		cache.ids[r.Path] = r.ID
	}
	feats, err := pipeline.Encode(ctx, enc, paths, cache, report)
	if err != nil {
		return nil, err
	}
	if s.readOnly {
		return feats, nil
	}
	if err := cache.flush(ctx); err != nil {
		return nil, fmt.Errorf("cache features: %w", err)
	}
	return feats, nil
}

// ModelReader opens model parts stored in the project for pipeline.LoadModel.
func (s *Session) loadModel(version int) (*pipeline.Model, storage.ModelRecord, error) {
	var rec storage.ModelRecord
	var err error
	if version <= 0 {
		rec, err = s.Store.ActiveModel()
		if err != nil {
			return nil, rec, fmt.Errorf("project %s has no active model: train one first: %w", s.Store.Path(), err)
		}
	} else if rec, err = s.Store.Model(version); err != nil {
		return nil, rec, err
	}
	m, err := pipeline.LoadModel(func(part string) (io.ReadCloser, error) {
		r, err := s.Store.OpenModelPart(rec.Version, part)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(r), nil
	})
	if err != nil {
		return nil, rec, fmt.Errorf("model %d: %w", rec.Version, err)
	}
	// The record's thresholds (a reviewer may have edited them) decide;
	// a record without them keeps the trained ones.
	if t, ok := review.FromRecord(rec.Thresholds); ok {
		applyThresholds(m, t)
	}
	return m, rec, nil
}

// LoadModel loads a stored model; version ≤ 0 means the active one.
func (s *Session) LoadModel(version int) (*pipeline.Model, storage.ModelRecord, error) {
	return s.loadModel(version)
}

// storageLabel is the project's label of a dataset label.
func storageLabel(l dataset.Label) int {
	switch l {
	case dataset.Good:
		return storage.LabelNormal
	case dataset.Defect:
		return storage.LabelAnomalous
	}
	return storage.LabelUnknown
}

// LabelName names a project label: "good", "defect", or "" when unknown.
func LabelName(label int) string {
	switch label {
	case storage.LabelNormal:
		return dataset.Good.String()
	case storage.LabelAnomalous:
		return dataset.Defect.String()
	}
	return ""
}

// LabelByName is LabelName's inverse: the project label of "good" or
// "defect", storage.LabelUnknown for anything else.
func LabelByName(name string) int {
	switch name {
	case dataset.Good.String():
		return storage.LabelNormal
	case dataset.Defect.String():
		return storage.LabelAnomalous
	}
	return storage.LabelUnknown
}

package bind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/heatmap"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/project"
	"github.com/dmad/workstation/core/review"
	"github.com/dmad/workstation/storage"
	"github.com/dmad/workstation/ui"
)

// Project implements ui.Project over a project file. Image, model and run
// IDs are the storage IDs (model IDs the versions) in decimal.
type Project struct {
	s    *project.Session
	name string

	// job is held by the engine while it trains or scores on this project.
	job sync.Mutex

	mu   sync.Mutex
	runs map[uint64]ui.Run // runs built in this session or read back (they never change)
}

func newProject(s *project.Session) *Project {
	name, err := s.Store.Name()
	if err != nil || name == "" {
		name = s.Store.Path()
	}
	return &Project{s: s, name: name, runs: map[uint64]ui.Run{}}
}

// Session returns the engine session on the project.
func (p *Project) Session() *project.Session { return p.s }

// Name implements ui.Project.
func (p *Project) Name() string { return p.name }

// Path implements ui.Project.
func (p *Project) Path() string { return p.s.Store.Path() }

// Close implements ui.Project.
func (p *Project) Close() error { return p.s.Close() }

func formatID(id uint64) string { return strconv.FormatUint(id, 10) }

func parseID(id string) (uint64, error) {
	v, err := strconv.ParseUint(id, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("image id %q: not an image of this project", id)
	}
	return v, nil
}

// record returns the stored record of a ui image ID.
func (p *Project) record(id string) (storage.ImageRecord, error) {
	v, err := parseID(id)
	if err != nil {
		return storage.ImageRecord{}, err
	}
	r, err := p.s.Store.Image(v)
	if err != nil {
		return r, fmt.Errorf("image %s: %w", id, err)
	}
	return r, nil
}

func (p *Project) uiRecord(r storage.ImageRecord) ui.ImageRecord {
	out := ui.ImageRecord{ID: formatID(r.ID), Path: r.Path, Category: r.Category, Split: ui.Split(r.Split),
		Label: ui.LabelGood, HasMask: p.s.Store.HasMask(r.ID), SeenAnomaly: r.Seen, WeakAnomaly: r.Weak}
	if r.Label == storage.LabelAnomalous {
		out.Label = ui.LabelDefect
	}
	if r.Defect != dataset.GoodType {
		out.DefectType = r.Defect
	}
	return out
}

// Images implements ui.Project, in ID (import) order.
func (p *Project) Images() ([]ui.ImageRecord, error) {
	all, err := p.s.Store.Images(storage.ImageFilter{})
	if err != nil {
		return nil, err
	}
	out := make([]ui.ImageRecord, len(all))
	for i, r := range all {
		out[i] = p.uiRecord(r)
	}
	return out, nil
}

// sampleRecord converts a dataset sample to a view record.
func sampleRecord(s dataset.Sample) ui.ImageRecord {
	r := ui.ImageRecord{Path: s.Path, Category: s.Category, Split: ui.SplitTrain, MaskPath: s.MaskPath}
	if s.Split == dataset.Test {
		r.Split = ui.SplitTest
	}
	switch s.Label {
	case dataset.Good:
		r.Label = ui.LabelGood
	case dataset.Defect:
		r.Label, r.DefectType = ui.LabelDefect, s.Defect
	}
	return r
}

// AddImages implements ui.Project with Session.ImportDataset: paths and
// content hashes are recorded (files stay where they are) with the masks
// MaskPath names. Images already in the project are updated.
func (p *Project) AddImages(ctx context.Context, recs []ui.ImageRecord) ([]ui.ImageRecord, error) {
	ds := &dataset.Dataset{Layout: dataset.LayoutFolder}
	for _, r := range recs {
		if r.Category == "" {
			return nil, fmt.Errorf("import %s: the image has no category", r.Path)
		}
		s := dataset.Sample{Path: r.Path, MaskPath: r.MaskPath, Category: r.Category, Split: dataset.Train,
			Label: dataset.Good, Defect: dataset.GoodType}
		if r.Split == ui.SplitTest {
			s.Split = dataset.Test
		}
		if r.Label == ui.LabelDefect {
			s.Label, s.Defect = dataset.Defect, r.DefectType
		}
		ds.Samples = append(ds.Samples, s)
	}
	stored, err := p.s.ImportDataset(ctx, ds, nil)
	if err != nil {
		return nil, err
	}
	out := make([]ui.ImageRecord, len(stored))
	for i, r := range stored {
		out[i] = p.uiRecord(r)
	}
	return out, nil
}

// LoadImage implements ui.Project (EXIF orientation applied).
func (p *Project) LoadImage(id string) (image.Image, error) {
	r, err := p.record(id)
	if err != nil {
		return nil, err
	}
	img, err := imageio.Load(r.Path)
	if err != nil {
		return nil, fmt.Errorf("load image %s: %w", r.Path, err)
	}
	return img, nil
}

// Mask implements ui.Project.
func (p *Project) Mask(id string) (*image.Gray, error) {
	v, err := parseID(id)
	if err != nil {
		return nil, err
	}
	m, err := p.s.Store.Mask(v)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ui.ErrNoMask
	}
	return m, err
}

// SaveMask implements ui.Project. Deleting the mask of a seen anomaly also
// unmarks it (training needs its mask).
func (p *Project) SaveMask(id string, m *image.Gray) error {
	r, err := p.record(id)
	if err != nil {
		return err
	}
	if m == nil {
		if err := p.s.Store.DeleteMask(r.ID); err != nil {
			return err
		}
		if r.Seen {
			r.Seen = false
			return p.s.Store.PutImage(&r)
		}
		return nil
	}
	if b := m.Bounds(); r.Width > 0 && (b.Dx() != r.Width || b.Dy() != r.Height) {
		return fmt.Errorf("mask of %s is %d×%d but the image is %d×%d", r.Path, b.Dx(), b.Dy(), r.Width, r.Height)
	}
	return p.s.Store.PutMask(r.ID, m)
}

// SetSeenAnomaly implements ui.Project. A seen anomaly needs a mask, and is
// a defect by definition: a good image marked seen is relabelled.
func (p *Project) SetSeenAnomaly(id string, seen bool) error {
	r, err := p.record(id)
	if err != nil {
		return err
	}
	if seen && !p.s.Store.HasMask(r.ID) {
		return fmt.Errorf("image %s has no mask: paint one before marking it as a seen anomaly", r.Path)
	}
	r.Seen = seen
	if seen {
		r.Label = storage.LabelAnomalous
	}
	return p.s.Store.PutImage(&r)
}

// SetWeakAnomaly implements ui.WeakMarker: the image is defective, without
// a mask (marking relabels it a defect).
func (p *Project) SetWeakAnomaly(id string, weak bool) error {
	r, err := p.record(id)
	if err != nil {
		return err
	}
	return p.s.MarkWeak([]uint64{r.ID}, weak)
}

// RemoveImage implements ui.ImageRemover: the image's record, mask and
// cached features leave the project; the file stays.
func (p *Project) RemoveImage(id string) error {
	v, err := parseID(id)
	if err != nil {
		return err
	}
	return p.s.Store.DeleteImage(v)
}

// guiSettings are the views' settings that storage.Settings lacks, kept
// under "gui" in storage.Settings.Training.
type guiSettings struct {
	Regime       ui.Regime `json:"regime"`
	Device       ui.Device `json:"device"`
	Epochs       int       `json:"epochs"`
	CoresetRatio float64   `json:"coreset_ratio"`
	// Memory is the training memory budget in bytes; 0: the default.
	Memory int64 `json:"memory,omitempty"`
	// Threshold is the last threshold chosen in Results; 0: the model's.
	Threshold float64 `json:"threshold"`
}

func trainingFields(st storage.Settings) map[string]json.RawMessage {
	fields := map[string]json.RawMessage{}
	if len(st.Training) > 0 {
		_ = json.Unmarshal(st.Training, &fields) // unknown shapes are replaced
	}
	return fields
}

// Settings implements ui.Project. A project that never saved settings
// from the views gets ui.DefaultSettings with no threshold (the model's).
func (p *Project) Settings() (ui.Settings, error) {
	st := p.s.Store.Settings()
	d := ui.DefaultSettings()
	g := guiSettings{Regime: d.Regime, Device: d.Device, Epochs: d.Epochs, CoresetRatio: d.CoresetRatio}
	if raw, ok := trainingFields(st)["gui"]; ok {
		if err := json.Unmarshal(raw, &g); err != nil {
			return d, fmt.Errorf("settings of %s: %w", p.Path(), err)
		}
	}
	out := ui.Settings{Regime: g.Regime, Device: g.Device, Epochs: g.Epochs, InputSize: st.InputSize,
		CoresetRatio: g.CoresetRatio, Memory: g.Memory, Threshold: g.Threshold}
	if out.InputSize <= 0 {
		out.InputSize = d.InputSize
	}
	return out, nil
}

// SaveSettings implements ui.Project. A new input size takes effect on the
// next job (features of each size are cached separately).
func (p *Project) SaveSettings(s ui.Settings) error {
	st := p.s.Store.Settings()
	fields := trainingFields(st)
	raw, err := json.Marshal(guiSettings{Regime: s.Regime, Device: s.Device, Epochs: s.Epochs,
		CoresetRatio: s.CoresetRatio, Memory: s.Memory, Threshold: s.Threshold})
	if err != nil {
		return err
	}
	fields["gui"] = raw
	if st.Training, err = json.Marshal(fields); err != nil {
		return err
	}
	switch s.Device {
	case ui.DeviceCPU:
		st.Device = "cpu"
	case ui.DeviceGPU:
		st.Device = "cuda"
	default:
		st.Device = "auto"
	}
	resize := s.InputSize > 0 && s.InputSize != st.InputSize
	if resize {
		if !p.job.TryLock() {
			return fmt.Errorf("project %s is busy with another job: change the input size when it is done", p.Name())
		}
		defer p.job.Unlock()
		st.InputSize = s.InputSize
	}
	if err := p.s.Store.PutSettings(st); err != nil {
		return err
	}
	if resize {
		return p.s.SetBackbone("", s.InputSize) // drops the encoder of the old size
	}
	return nil
}

// setThreshold stores the Results threshold (0: the model's).
func (p *Project) setThreshold(t float64) error {
	s, err := p.Settings()
	if err != nil {
		return err
	}
	if s.Threshold == t {
		return nil
	}
	s.Threshold = t
	return p.SaveSettings(s)
}

// modelInfo describes a stored model from its record and metadata.
func modelInfo(rec storage.ModelRecord, meta pipeline.Meta) ui.ModelInfo {
	m := ui.ModelInfo{ID: strconv.Itoa(rec.Version), Version: rec.Version, Created: rec.Created, Regime: ui.Unsupervised,
		Categories: meta.Categories, InputSize: meta.Encoder.InputSize, SeenAnomalies: meta.SeenImages}
	if meta.Regime == pipeline.Semi {
		m.Regime = ui.SemiSupervised
	}
	return m
}

// model reads a model's description, with its epochs and final loss from
// the training log.
func (p *Project) model(rec storage.ModelRecord) ui.ModelInfo {
	var meta pipeline.Meta
	_ = json.Unmarshal(rec.Config, &meta) // an imported model may lack it; the record still lists
	m := modelInfo(rec, meta)
	if events, err := p.s.Store.TrainingLog(rec.Version); err == nil && len(events) > 0 {
		var e progress.Event
		if json.Unmarshal(events[len(events)-1], &e) == nil {
			m.Epochs, m.FinalLoss = e.Epochs, e.Loss
		}
	}
	return m
}

// Models implements ui.Project: every stored version, oldest first.
func (p *Project) Models() ([]ui.ModelInfo, error) {
	recs, err := p.s.Store.Models()
	if err != nil {
		return nil, err
	}
	out := make([]ui.ModelInfo, len(recs))
	for i, r := range recs {
		out[i] = p.model(r)
	}
	return out, nil
}

// uiLabel and storageLabel translate labels; the views' names are the
// project's (a test checks they agree).
func uiLabel(l int) ui.Label { return ui.Label(project.LabelName(l)) }

func storageLabel(l ui.Label) int { return project.LabelByName(string(l)) }

// scoredImage converts one scored image (map at the encoder's input size).
func scoredImage(sc project.Scored) ui.ScoredImage {
	out := ui.ScoredImage{Path: sc.Record.Path, Category: sc.Record.Category, Score: float64(sc.Score),
		Label: uiLabel(sc.Record.Label), Map: sc.Map, MapW: sc.MapSize, MapH: sc.MapSize, MaskPath: sc.MaskPath}
	if sc.Record.ID != 0 {
		out.ImageID = formatID(sc.Record.ID)
	}
	return out
}

func (p *Project) cacheRun(id uint64, r ui.Run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs[id] = r
}

// Runs implements ui.Project: stored runs, oldest first, with their small
// anomaly maps (runs scored in this session keep their full-size maps).
func (p *Project) Runs() ([]ui.Run, error) {
	recs, err := p.s.Store.Runs()
	if err != nil {
		return nil, err
	}
	out := make([]ui.Run, 0, len(recs))
	for _, rec := range recs {
		p.mu.Lock()
		r, ok := p.runs[rec.ID]
		p.mu.Unlock()
		if !ok {
			if r, err = p.readRun(rec); err != nil {
				return nil, err
			}
			p.cacheRun(rec.ID, r)
		}
		out = append(out, r)
	}
	return out, nil
}

// readRun converts a stored run, loading its maps.
func (p *Project) readRun(rec storage.RunRecord) (ui.Run, error) {
	r := ui.Run{ID: formatID(rec.ID), Name: rec.Name, ModelID: strconv.Itoa(rec.ModelVersion), Created: rec.Created}
	if m, err := p.s.Store.Model(rec.ModelVersion); err == nil {
		r.Threshold = m.Thresholds["image"]
	}
	for key, v := range rec.Metrics {
		cat, name, ok := cutLast(key, '/')
		if !ok {
			continue // the mean over categories; the views compute it
		}
		if r.PerCategory == nil {
			r.PerCategory = map[string]ui.Metrics{}
		}
		m := r.PerCategory[cat]
		if m.Set(name, v) {
			r.PerCategory[cat] = m
		}
	}
	for i, im := range rec.PerImage {
		s := ui.ScoredImage{Path: im.Path, Category: im.Category, Score: im.Score, Label: uiLabel(im.Label)}
		if im.ImageID != 0 {
			s.ImageID = formatID(im.ImageID)
		}
		am, err := p.s.Store.RunMap(rec.ID, i)
		switch {
		case err == nil:
			s.Map, s.MapW, s.MapH = am.Values(), am.W, am.H
		case !errors.Is(err, storage.ErrNotFound):
			return r, fmt.Errorf("run %d: %w", rec.ID, err)
		}
		r.Images = append(r.Images, s)
	}
	return r, nil
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// SaveRun implements ui.Project. A run the engine already stored (Engine.Score
// on the test split) is returned as is; any other run is stored with its
// maps reduced to project.ThumbMapSize².
func (p *Project) SaveRun(r ui.Run) (ui.Run, error) {
	if r.ID != "" {
		if id, err := strconv.ParseUint(r.ID, 10, 64); err == nil {
			if _, err := p.s.Store.Run(id); err == nil {
				p.mu.Lock()
				defer p.mu.Unlock()
				if old, ok := p.runs[id]; ok {
					old.Name = r.Name
					return old, nil
				}
				return r, nil
			}
		}
	}
	version := 0
	if r.ModelID != "" {
		v, err := strconv.Atoi(r.ModelID)
		if err != nil {
			return r, fmt.Errorf("save run %q: model %q is not a model version of this project", r.Name, r.ModelID)
		}
		version = v
	}
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	rec := &storage.RunRecord{ModelVersion: version, Created: r.Created, Name: r.Name, Metrics: map[string]float64{}}
	for c, m := range r.PerCategory {
		m.Put(rec.Metrics, c+"/")
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range r.Images {
		for _, v := range s.Map {
			lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
		}
	}
	if hi <= lo {
		hi = lo + 1e-6
	}
	for _, s := range r.Images {
		im := storage.ImageResult{Path: s.Path, Category: s.Category, Score: s.Score, Label: storageLabel(s.Label)}
		if s.ImageID != "" {
			id, err := parseID(s.ImageID)
			if err != nil {
				return r, fmt.Errorf("save run %q: image %s: %w", r.Name, s.Path, err)
			}
			im.ImageID = id
		}
		if s.MapW > 0 && s.MapH > 0 && len(s.Map) >= s.MapW*s.MapH {
			n := project.ThumbMapSize
			small := heatmap.ResampleBox(s.Map, s.MapW, s.MapH, n, n)
			am, err := storage.QuantizeMap(n, n, small, float32(lo), float32(hi))
			if err != nil {
				return r, fmt.Errorf("save run: %w", err)
			}
			im.Map = am
		}
		rec.PerImage = append(rec.PerImage, im)
	}
	if err := p.s.Store.SaveRun(rec); err != nil {
		return r, fmt.Errorf("save run %q: %w", r.Name, err)
	}
	r.ID = formatID(rec.ID)
	p.cacheRun(rec.ID, r)
	return r, nil
}

// modelVersion parses a ui model ID (the version).
func modelVersion(id string) (int, error) {
	v, err := strconv.Atoi(id)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("model %q: not a model version of this project", id)
	}
	return v, nil
}

// Thresholds implements ui.Reviewer with Session.Thresholds.
func (p *Project) Thresholds(modelID string) (review.Thresholds, error) {
	v, err := modelVersion(modelID)
	if err != nil {
		return review.Thresholds{}, err
	}
	return p.s.Thresholds(v)
}

// SetThresholds implements ui.Reviewer with Session.SetThresholds.
func (p *Project) SetThresholds(modelID string, t review.Thresholds) error {
	v, err := modelVersion(modelID)
	if err != nil {
		return err
	}
	return p.s.SetThresholds(v, t)
}

// Overrides implements ui.Reviewer with Session.Overrides.
func (p *Project) Overrides(modelID string) (map[string]ui.Override, error) {
	v, err := modelVersion(modelID)
	if err != nil {
		return nil, err
	}
	all, err := p.s.Overrides(v)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ui.Override, len(all))
	for k, o := range all {
		out[k] = ui.Override{Image: o.Image, ModelVerdict: o.ModelVerdict, Accepted: o.Accepted, Score: o.Score,
			Threshold: o.Threshold, Who: o.Who, When: o.When}
	}
	return out, nil
}

// SetOverride implements ui.Reviewer with Session.SetOverride (the
// views' image keys are the project's: "id:<n>" or the path).
func (p *Project) SetOverride(modelID string, o ui.Override) error {
	v, err := modelVersion(modelID)
	if err != nil {
		return err
	}
	return p.s.SetOverride(v, project.Override{Image: o.Image, ModelVerdict: o.ModelVerdict, Accepted: o.Accepted,
		Score: o.Score, Threshold: o.Threshold, Who: o.Who, When: o.When})
}

// ClearOverride implements ui.Reviewer.
func (p *Project) ClearOverride(modelID, image string) error {
	v, err := modelVersion(modelID)
	if err != nil {
		return err
	}
	return p.s.ClearOverride(v, image)
}

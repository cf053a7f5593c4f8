// Package bind connects the desktop application's views (package ui) to
// the real engine: Engine implements ui.Engine over core/project sessions
// and ONNX Runtime, and Project implements ui.Project over a project file
// (storage). cmd/workstation wires them into ui.Deps with Engine.Deps.
package bind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/project"
	"github.com/dmad/workstation/core/synth"
	"github.com/dmad/workstation/core/train"
	"github.com/dmad/workstation/storage"
	"github.com/dmad/workstation/ui"
)

// Options configure an Engine. Zero values take the defaults in brackets.
type Options struct {
	// Runtime is the ONNX Runtime of the device chosen at start-up
	// (required); the Device "auto" of the views uses it.
	Runtime *ort.Runtime
	// LibraryPath and Threads open further runtimes when the user picks
	// another device than Runtime's ("cpu" or "gpu").
	LibraryPath string
	Threads     int
	// Backbone is the backbone spec (store name or file) of new projects
	// [storage's default, mobilenet_v2_imagenet].
	Backbone string
	// TrainPatches is the number of normal patches the mapper trains on
	// [the pipeline's default].
	TrainPatches int
	// OODImages is the number of synthetic-defect images for the anomaly
	// bank [200].
	OODImages int
	// QuickTrainPatches and QuickOODImages replace the two above for
	// requests marked Quick (the demo) [8192, 30]; Quick also sets the
	// threshold from 32 normal images instead of 64.
	QuickTrainPatches int
	QuickOODImages    int
	// BatchSize is the number of normal patches per training step [the
	// training default].
	BatchSize int
	// Demo sizes the dataset GenerateDemo writes [3 categories × 20
	// training images, 6 good and 8 defective test images, 96 px].
	Demo synth.DatasetOptions
	// Seed fixes sampling and initialisation [1].
	Seed int64
	// Logger receives diagnostics [slog.Default()].
	Logger *slog.Logger
}

// Engine implements ui.Engine with the real engine. Its methods may be
// called from any goroutine; jobs on one project run one at a time.
type Engine struct {
	o Options

	mu       sync.Mutex
	extra    map[ort.Device]*ort.Runtime // runtimes opened for other devices
	failed   map[ort.Device]error        // devices that did not load
	detected *ui.DeviceInfo
}

// NewEngine returns an engine over o.Runtime.
func NewEngine(o Options) (*Engine, error) {
	if o.Runtime == nil {
		return nil, errors.New("bind: the engine needs an ONNX Runtime")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.OODImages <= 0 {
		o.OODImages = 200
	}
	if o.QuickTrainPatches <= 0 {
		o.QuickTrainPatches = 8192
	}
	if o.QuickOODImages <= 0 {
		o.QuickOODImages = 30
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Threads <= 0 {
		o.Threads = o.Runtime.Threads()
	}
	return &Engine{o: o, extra: map[ort.Device]*ort.Runtime{}, failed: map[ort.Device]error{}}, nil
}

// Close releases the runtimes the engine opened itself (not Options.Runtime).
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for d, rt := range e.extra {
		rt.Close()
		delete(e.extra, d)
	}
	return nil
}

// Deps returns the application's dependencies on this engine.
func (e *Engine) Deps() ui.Deps {
	return ui.Deps{
		Engine: e,
		OpenProject: func(path string) (ui.Project, error) {
			p, err := e.OpenProject(path)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
		CreateProject: func(path, name string) (ui.Project, error) {
			p, err := e.CreateProject(path, name)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
	}
}

// OpenProject opens an existing project file. A project another process
// holds fails with storage's error naming that process.
func (e *Engine) OpenProject(path string) (*Project, error) {
	st, err := storage.Open(path, storage.Options{Logger: e.o.Logger})
	if err != nil {
		return nil, err
	}
	return newProject(project.NewSession(st, e.o.Runtime, e.o.Logger)), nil
}

// CreateProject creates a project file named name at path, recording the
// engine's backbone in its settings.
func (e *Engine) CreateProject(path, name string) (*Project, error) {
	st, err := storage.Create(path, name)
	if err != nil {
		return nil, err
	}
	s := project.NewSession(st, e.o.Runtime, e.o.Logger)
	if spec := e.optBackbone(); spec != "" {
		// A backbone file is installed into the user's store and named by its card.
		if err := s.SetBackbone(spec, 0); err != nil {
			s.Close()
			os.Remove(path) // nothing of it was used yet
			return nil, fmt.Errorf("create project %s: backbone %s: %w", path, spec, err)
		}
	}
	return newProject(s), nil
}

// Detect implements ui.Engine: the provider of the start-up runtime, and
// whether CUDA or DirectML load (probed once).
func (e *Engine) Detect() ui.DeviceInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.detected != nil {
		return *e.detected
	}
	main := e.o.Runtime.Provider()
	info := ui.DeviceInfo{Providers: []string{"cpu"}}
	gpu := ""
	if main != ort.DeviceCPU {
		gpu = string(main)
	} else {
		for _, d := range []ort.Device{ort.DeviceCUDA, ort.DeviceDirectML} {
			if _, err := e.openLocked(d); err == nil {
				gpu = string(d)
				break
			}
		}
	}
	if gpu != "" {
		info.Providers = append(info.Providers, gpu)
		info.GPU = true
	}
	desc := fmt.Sprintf("CPU (%d threads)", e.o.Threads)
	if gpu != "" {
		desc = strings.ToUpper(gpu) + " GPU and " + desc
	}
	info.Description = fmt.Sprintf("%s, ONNX Runtime %s, using %s", desc, e.o.Runtime.Version(), main)
	e.detected = &info
	return info
}

// openLocked opens (once) a runtime for device d; e.mu is held.
func (e *Engine) openLocked(d ort.Device) (*ort.Runtime, error) {
	if rt := e.extra[d]; rt != nil {
		return rt, nil
	}
	if err := e.failed[d]; err != nil {
		return nil, err
	}
	rt, err := ort.Open(ort.Options{LibraryPath: e.o.LibraryPath, Threads: e.o.Threads, Device: d,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		e.failed[d] = err
		return nil, err
	}
	e.extra[d] = rt
	return rt, nil
}

// runtimeFor returns the runtime for the views' device choice.
func (e *Engine) runtimeFor(d ui.Device) (*ort.Runtime, error) {
	main := e.o.Runtime
	switch d {
	case ui.DeviceAuto, "":
		return main, nil
	case ui.DeviceCPU:
		if main.Provider() == ort.DeviceCPU {
			return main, nil
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.openLocked(ort.DeviceCPU)
	case ui.DeviceGPU:
		if main.Provider() != ort.DeviceCPU {
			return main, nil
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		var errs []error
		for _, dev := range []ort.Device{ort.DeviceCUDA, ort.DeviceDirectML} {
			rt, err := e.openLocked(dev)
			if err == nil {
				return rt, nil
			}
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("no GPU execution provider loads on this machine (choose auto or cpu): %w", errors.Join(errs...))
	}
	return nil, fmt.Errorf("unknown device %q", d)
}

// ScanFolder implements ui.Engine: MVTec AD and VisA layouts through
// core/dataset; any other folder is listed (recursively) as "plain".
func (e *Engine) ScanFolder(ctx context.Context, dir string) (ui.FolderScan, error) {
	ds, err := dataset.OpenContext(ctx, dir, dataset.Options{Logger: e.o.Logger})
	if err == nil && ds.Layout != dataset.LayoutFolder {
		out := ui.FolderScan{Layout: ds.Layout}
		for _, s := range ds.Samples {
			out.Images = append(out.Images, sampleRecord(s))
		}
		return out, nil
	}
	if errors.Is(err, context.Canceled) {
		return ui.FolderScan{}, err
	}
	paths, werr := listImages(ctx, dir)
	if werr != nil {
		return ui.FolderScan{}, werr
	}
	if len(paths) == 0 {
		if err != nil {
			return ui.FolderScan{}, err
		}
		return ui.FolderScan{}, fmt.Errorf("scan %s: no images found", dir)
	}
	out := ui.FolderScan{Layout: "plain"}
	for _, p := range paths {
		out.Images = append(out.Images, ui.ImageRecord{Path: p})
	}
	return out, nil
}

// listImages lists image files under dir, recursively, sorted.
func listImages(ctx context.Context, dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "ground_truth") {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff":
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	slices.Sort(out)
	return out, nil
}

// inspectSamples are the images Score with a Dir scores: the test images of
// an MVTec/VisA folder, or every image under a plain folder. Inside an MVTec
// test folder (sub-folders good/, <defect>/), labels and masks are read
// from the folder names.
func (e *Engine) inspectSamples(ctx context.Context, dir string) ([]dataset.Sample, error) {
	ds, err := dataset.OpenContext(ctx, dir, dataset.Options{Logger: e.o.Logger})
	if err == nil && ds.Layout != dataset.LayoutFolder {
		return ds.Test(), nil
	}
	if errors.Is(err, context.Canceled) {
		return nil, err
	}
	paths, werr := listImages(ctx, dir)
	if werr != nil {
		return nil, werr
	}
	if len(paths) == 0 {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("scan %s: no images found", dir)
	}
	out := make([]dataset.Sample, len(paths))
	for i, p := range paths {
		s := dataset.Sample{Path: p, Category: filepath.Base(dir), Split: dataset.Test, Label: dataset.Unlabeled}
		parent := filepath.Dir(p)
		if filepath.Base(filepath.Dir(parent)) == "test" {
			// <cat>/test/<type>/<name>: an MVTec test folder.
			typ := filepath.Base(parent)
			cat := filepath.Dir(filepath.Dir(parent))
			s.Category, s.Defect = filepath.Base(cat), typ
			if typ == dataset.GoodType {
				s.Label = dataset.Good
			} else {
				s.Label = dataset.Defect
				stem := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
				mp := filepath.Join(cat, "ground_truth", typ, stem+"_mask.png")
				if _, err := os.Stat(mp); err == nil {
					s.MaskPath = mp
				}
			}
		}
		out[i] = s
	}
	return out, nil
}

// maxCachedFullMaps bounds the runs whose full-size maps (InputSize², about
// 200 kB an image at 224 px) the project keeps in memory; larger runs are
// read back with their stored 64×64 maps.
const maxCachedFullMaps = 200

// jobProject returns the adapter behind a view's project and locks it for
// one engine job; call the returned func when done.
func jobProject(p ui.Project) (*Project, func(), error) {
	bp, ok := p.(*Project)
	if !ok || bp == nil {
		return nil, nil, fmt.Errorf("project %T was not opened by the workstation engine", p)
	}
	if !bp.job.TryLock() {
		return nil, nil, fmt.Errorf("project %s is busy with another job: wait for it or cancel it", bp.Name())
	}
	return bp, bp.job.Unlock, nil
}

// Train implements ui.Engine: one unified DMAD model over the project's
// normal training images (semi-supervised when the request asks for it and
// the project has seen anomalies), stored in the project as a new active
// version. The returned ModelInfo's ID is the version.
func (e *Engine) Train(ctx context.Context, req ui.TrainRequest, progress func(ui.Progress)) (ui.ModelInfo, error) {
	p, done, err := jobProject(req.Project)
	if err != nil {
		return ui.ModelInfo{}, err
	}
	defer done()
	rt, err := e.runtimeFor(req.Device)
	if err != nil {
		return ui.ModelInfo{}, err
	}
	s := p.s
	s.SetRuntime(rt)
	if req.InputSize > 0 && req.InputSize != s.Store.Settings().InputSize {
		if err := s.SetBackbone("", req.InputSize); err != nil {
			return ui.ModelInfo{}, err
		}
	}
	want := map[string]bool{}
	for _, c := range req.Categories {
		want[c] = true
	}
	all, err := s.Store.Images(storage.ImageFilter{})
	if err != nil {
		return ui.ModelInfo{}, err
	}
	seen := 0
	for _, r := range all {
		if r.Seen && r.Label == storage.LabelAnomalous && (len(want) == 0 || want[r.Category]) {
			seen++
		}
	}
	semi := req.Regime == ui.SemiSupervised && seen > 0
	if req.Regime == ui.SemiSupervised && !semi {
		e.o.Logger.Info("no seen anomalies: training unsupervised", "project", p.Path())
	}
	tc := train.DefaultConfig(0)
	if req.Epochs > 0 {
		tc.Epochs = req.Epochs
	}
	if e.o.BatchSize > 0 {
		tc.BatchSize = e.o.BatchSize
	}
	tc.Seed = uint64(e.o.Seed)
	tc.Logger = e.o.Logger
	fit := pipeline.Options{CoresetRatio: req.CoresetRatio, TrainPatches: e.o.TrainPatches, Train: tc, Seed: e.o.Seed}
	ood := e.o.OODImages
	if req.Quick {
		fit.TrainPatches, ood = e.o.QuickTrainPatches, e.o.QuickOODImages
		fit.ThresholdImages = 32
	}
	tr := newTracker(trainStages, progress, e.o.Logger)
	defer tr.end()
	rec, m, err := s.Train(ctx, project.TrainOptions{Method: pipeline.DMAD, Semi: semi, Categories: req.Categories,
		Fit: fit, OODImages: ood, Notes: "trained in the desktop application"}, tr.event)
	if err != nil {
		return ui.ModelInfo{}, err
	}
	// A threshold chosen for an earlier model means nothing on this one's scores.
	if err := p.setThreshold(0); err != nil {
		e.o.Logger.Warn("reset threshold", "err", err)
	}
	info := modelInfo(rec, m.Meta)
	info.Epochs, info.FinalLoss = tc.Epochs, tr.loss
	if progress != nil {
		progress(ui.Progress{Stage: "done", Epoch: tc.Epochs, Epochs: tc.Epochs, Loss: tr.loss, Fraction: 1})
	}
	return info, nil
}

// Score implements ui.Engine: the project's test split (Session.Evaluate,
// stored as a run) or every image under req.Dir (Session.Inspect, not
// stored). Maps are InputSize² over the whole image.
func (e *Engine) Score(ctx context.Context, req ui.ScoreRequest, progress func(ui.Progress)) (ui.Run, error) {
	p, done, err := jobProject(req.Project)
	if err != nil {
		return ui.Run{}, err
	}
	defer done()
	version := 0
	if req.ModelID != "" {
		if version, err = strconv.Atoi(req.ModelID); err != nil {
			return ui.Run{}, fmt.Errorf("model %q: not a model version of this project", req.ModelID)
		}
	}
	rt, err := e.runtimeFor(req.Device)
	if err != nil {
		return ui.Run{}, err
	}
	s := p.s
	s.SetRuntime(rt)
	tr := newTracker(scoreStages, progress, e.o.Logger)
	defer tr.end()
	if req.Dir == "" {
		res, err := s.Evaluate(ctx, version, tr.event)
		if err != nil {
			return ui.Run{}, err
		}
		run := ui.Run{ID: formatID(res.RunID), ModelID: strconv.Itoa(res.ModelVersion), Created: time.Now(),
			Threshold: float64(res.Threshold), PerCategory: map[string]ui.Metrics{}}
		if rr, err := s.Store.Run(res.RunID); err == nil {
			run.Name, run.Created = rr.Name, rr.Created
		}
		for c, m := range res.PerCategory {
			run.PerCategory[c] = uiMetrics(m)
		}
		for _, sc := range res.Images {
			run.Images = append(run.Images, scoredImage(sc, ""))
		}
		if len(run.Images) <= maxCachedFullMaps {
			p.cacheRun(res.RunID, run) // Results shows the full-size maps, not the stored 64×64 ones
		}
		return run, nil
	}
	samples, err := e.inspectSamples(ctx, req.Dir)
	if err != nil {
		return ui.Run{}, err
	}
	scored, m, err := s.Inspect(ctx, version, samples, tr.event)
	if err != nil {
		return ui.Run{}, err
	}
	run := ui.Run{Name: "batch " + filepath.Base(req.Dir), ModelID: req.ModelID, Created: time.Now(),
		Threshold: float64(m.Meta.Threshold)}
	labelled := true
	items := make([]pipeline.Scored, len(scored))
	for i, sc := range scored {
		run.Images = append(run.Images, scoredImage(sc, samples[i].MaskPath))
		if r, err := s.Store.ImageByPath(sc.Record.Path); err == nil {
			run.Images[i].ImageID = formatID(r.ID)
		}
		labelled = labelled && samples[i].Label != dataset.Unlabeled
		items[i] = pipeline.Scored{Path: sc.Record.Path, Category: sc.Record.Category,
			Anomalous: samples[i].Label == dataset.Defect, MaskPath: samples[i].MaskPath, Result: sc.ImageResult}
	}
	if labelled {
		enc, err := s.Encoder()
		if err != nil {
			return ui.Run{}, err
		}
		h0, w0 := enc.Grid()
		per, _, err := pipeline.Evaluate(ctx, items, h0, w0, enc.Config())
		if err != nil {
			return ui.Run{}, err
		}
		run.PerCategory = map[string]ui.Metrics{}
		for c, m := range per {
			run.PerCategory[c] = uiMetrics(m)
		}
	}
	return run, nil
}

// GenerateDemo implements ui.Engine with core/synth.
func (e *Engine) GenerateDemo(ctx context.Context, dir string) error {
	return synth.WriteDatasetContext(ctx, dir, e.o.Demo, nil)
}

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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/ort"
	"github.com/dmad/workstation/core/project"
	"github.com/dmad/workstation/core/synth"
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
	// bank [pipeline.DefaultOODImages]. A request marked Quick (the demo)
	// uses project.QuickTrainPatches and project.QuickOODImages instead of
	// these two.
	OODImages int
	// BatchSize is the number of normal patches per training step [the
	// training default].
	BatchSize int
	// Demo sizes the dataset GenerateDemo writes [3 categories × 20
	// training images, 6 good and 8 defective test images, 96 px].
	Demo synth.DatasetOptions
	// Seed fixes sampling and initialisation [pipeline.DefaultSeed].
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
	detected *string                     // the GPU provider found, "" for none; nil before the probe
}

// NewEngine returns an engine over o.Runtime.
func NewEngine(o Options) (*Engine, error) {
	if o.Runtime == nil {
		return nil, errors.New("bind: the engine needs an ONNX Runtime")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
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
	var errs []error
	for d, rt := range e.extra {
		if err := rt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s runtime: %w", d, err))
		}
		delete(e.extra, d)
	}
	return errors.Join(errs...)
}

// Deps returns the application's dependencies on this engine.
func (e *Engine) Deps() ui.Deps {
	return ui.Deps{
		Engine: e,
		Live:   e.Live,
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

// OpenProject opens an existing project file (never creating one, never
// rewriting an empty file). A project another process holds fails with
// storage's error naming that process.
func (e *Engine) OpenProject(path string) (*Project, error) {
	s, _, err := project.Open(path, project.OpenOptions{}, e.o.Runtime, warnOnly(e.o.Logger)) // the terminal gets warnings only, as from training
	if err != nil {
		return nil, err
	}
	return newProject(s), nil
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

// Detect implements ui.Engine: the provider of the start-up runtime (now:
// an auto-chosen GPU that failed a graph has given way to the CPU), and
// whether CUDA or DirectML load (probed once).
func (e *Engine) Detect() ui.DeviceInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	main := e.o.Runtime.Provider()
	if e.detected == nil {
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
		e.detected = &gpu
	}
	gpu := *e.detected
	info := ui.DeviceInfo{Providers: []string{"cpu"}}
	if gpu != "" {
		info.Providers = append(info.Providers, gpu)
		info.GPU = true
	}
	desc := fmt.Sprintf("CPU (%d threads)", e.o.Threads)
	if gpu != "" {
		desc = strings.ToUpper(gpu) + " GPU and " + desc
	}
	info.Description = fmt.Sprintf("%s, ONNX Runtime %s, using %s", desc, e.o.Runtime.Version(), main)
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
	paths, werr := dataset.ListImages(ctx, dir)
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
	c := project.Choices{SemiIfAny: req.Regime == ui.SemiSupervised,
		Categories: req.Categories, Epochs: req.Epochs, CoresetRatio: req.CoresetRatio, Memory: req.Memory, Quick: req.Quick,
		FullRetrain: req.FromScratch,
		Seed:        e.o.Seed, BatchSize: e.o.BatchSize, Notes: "trained in the desktop application", Logger: warnOnly(e.o.Logger)}
	if !req.Quick {
		c.TrainPatches, c.OODImages = e.o.TrainPatches, e.o.OODImages
	}
	o, err := project.NewTrainOptions(c)
	if err != nil {
		return ui.ModelInfo{}, err
	}
	tr := newTracker(trainStages, progress, e.o.Logger)
	defer tr.end()
	rec, m, err := s.Train(ctx, o, tr.event)
	if err != nil {
		return ui.ModelInfo{}, err
	}
	// A threshold chosen for an earlier model means nothing on this one's scores.
	if err := p.setThreshold(0); err != nil {
		e.o.Logger.Warn("reset threshold", "err", err)
	}
	info := modelInfo(rec, m.Meta)
	epochs := o.Fit.Train.Epochs
	info.Epochs, info.FinalLoss = epochs, tr.loss
	if progress != nil {
		// The last training event's epoch: a first training that stopped
		// early, or a refit's short fine-tune, ends before epochs.
		done := ui.Progress{Stage: "done", Epoch: epochs, Epochs: epochs, Loss: tr.loss, Fraction: 1}
		if tr.epochs > 0 {
			done.Epoch, done.Epochs, done.Refit = tr.epoch, tr.epochs, tr.refit
		}
		progress(done)
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
	search := banks.SearchExact
	if req.Fast {
		search = banks.SearchFast
	}
	s.SetSearchMode(search)
	tr := newTracker(scoreStages, progress, e.o.Logger)
	defer tr.end()
	if req.Dir == "" {
		res, err := s.Evaluate(ctx, project.EvalOptions{Version: version}, tr.event)
		if err != nil {
			return ui.Run{}, err
		}
		run := ui.Run{ID: formatID(res.RunID), ModelID: strconv.Itoa(res.ModelVersion), Created: time.Now(),
			Threshold: float64(res.Threshold), PerCategory: res.PerCategory}
		if rr, err := s.Store.Run(res.RunID); err == nil {
			run.Name, run.Created = rr.Name, rr.Created
		}
		for _, sc := range res.Images {
			run.Images = append(run.Images, scoredImage(sc))
		}
		if len(run.Images) <= maxCachedFullMaps {
			p.cacheRun(res.RunID, run) // Results shows the full-size maps, not the stored 64×64 ones
		}
		return run, nil
	}
	// A batch from the line may hold a damaged file: score the rest and
	// name what was left out, rather than fail the whole batch.
	scan, err := project.InspectSamples(ctx, req.Dir, project.ScanOptions{SkipBad: true, Logger: e.o.Logger})
	if err != nil {
		return ui.Run{}, err
	}
	for _, p := range scan.Skipped {
		e.o.Logger.Warn("inspect: skipped a damaged image", "image", p.Path, "err", p.Err)
	}
	res, err := s.Inspect(ctx, version, scan.Samples, tr.event)
	if err != nil {
		return ui.Run{}, err
	}
	run := ui.Run{Name: "batch " + filepath.Base(req.Dir), ModelID: req.ModelID, Created: time.Now(),
		Threshold: float64(res.Model.Meta.Threshold), PerCategory: res.PerCategory}
	for _, sc := range res.Images {
		run.Images = append(run.Images, scoredImage(sc))
	}
	return run, nil
}

// GenerateDemo implements ui.Engine with core/synth.
func (e *Engine) GenerateDemo(ctx context.Context, dir string) error {
	return synth.WriteDatasetContext(ctx, dir, e.o.Demo, nil)
}

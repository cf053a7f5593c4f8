// Package ui holds the Fyne views of the inspection workstation: the start
// screen, Data, Annotate, Train, Results and Inspect.
//
// The views know nothing of the maths or of the project file. They talk to
// the engine through Engine and to the open project through Project; the
// application's main wires adapters for core/pipeline and storage into Deps.
package ui

import (
	"context"
	"errors"
	"image"
	"time"

	"github.com/dmad/workstation/core/encoder"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/train"
)

// Regime is the training regime of a model.
type Regime string

// The training regimes of METHOD.md: unsupervised uses normal images only,
// semi-supervised also uses the annotated seen anomalies.
const (
	Unsupervised   Regime = "unsupervised"
	SemiSupervised Regime = "semi-supervised"
)

// Device names an execution device choice.
type Device string

// Device choices offered to the user.
const (
	DeviceAuto Device = "auto"
	DeviceCPU  Device = "cpu"
	DeviceGPU  Device = "gpu"
)

// Split is the dataset split of an image.
type Split string

// Splits of a dataset.
const (
	SplitTrain Split = "train"
	SplitTest  Split = "test"
)

// Label is the ground-truth class of an image.
type Label string

// Labels of images. Unknown is for images nobody has labelled (for example
// an inspection batch).
const (
	LabelGood    Label = "good"
	LabelDefect  Label = "defect"
	LabelUnknown Label = ""
)

// DeviceInfo says which execution providers the engine found.
type DeviceInfo struct {
	// Providers lists the usable providers, e.g. "cpu", "cuda", "directml".
	Providers []string
	// GPU is true when at least one GPU provider loads.
	GPU bool
	// Description is a one-line human summary, e.g. "CPU (2 threads)".
	Description string
}

// ImageRecord is one image of a project (or of a folder being imported).
type ImageRecord struct {
	// ID identifies the image inside the project; empty before import.
	ID string
	// Path is the image file on disk.
	Path     string
	Category string
	Split    Split
	Label    Label
	// DefectType is the MVTec sub-folder name of a defect ("broken_large"), if any.
	DefectType string
	// MaskPath is a ground-truth mask file found beside the image (import only).
	MaskPath string
	// HasMask is true when the project holds a mask for the image.
	HasMask bool
	// SeenAnomaly marks an annotated defect the semi-supervised regime may train on.
	SeenAnomaly bool
	// WeakAnomaly marks an image known to be defective without a mask: the
	// semi-supervised regime trains on its top-scoring patches.
	WeakAnomaly bool
}

// FolderScan is what the engine found in a folder chosen for import.
type FolderScan struct {
	// Layout is "mvtec", "visa" or "plain". For "plain" the images carry no
	// category or label and the view asks the user for them.
	Layout string
	Images []ImageRecord
}

// Settings are the project's training settings.
type Settings struct {
	Regime       Regime
	Device       Device
	Epochs       int
	InputSize    int
	CoresetRatio float64
	// Memory is the most memory training may use for features, in bytes;
	// 0 means the engine's default (membudget.Default: an eighth of RAM,
	// 1–4 GiB).
	Memory int64
	// Threshold is the last decision threshold chosen in Results.
	Threshold float64
}

// DefaultSettings are the settings of a new project.
func DefaultSettings() Settings {
	return Settings{Regime: SemiSupervised, Device: DeviceAuto, Epochs: train.DefaultConfig(0).Epochs,
		InputSize: encoder.DefaultInputSize, CoresetRatio: pipeline.DefaultCoresetRatio, Threshold: 0}
}

// ModelInfo describes one trained model version.
type ModelInfo struct {
	// ID is the engine's handle of the model (opaque to the views).
	ID string
	// Version is assigned when Engine.Train stores the model (1, 2, ...).
	Version    int
	Created    time.Time
	Regime     Regime
	Categories []string
	Epochs     int
	InputSize  int
	// SeenAnomalies is the number of annotated defects trained on.
	SeenAnomalies int
	// FinalLoss is the last training loss.
	FinalLoss float64
}

// TrainRequest asks the engine to train one unified model.
type TrainRequest struct {
	// Project gives the images, labels and masks to train on.
	Project      Project
	Regime       Regime
	Device       Device
	Epochs       int
	InputSize    int
	CoresetRatio float64
	// Memory is Settings.Memory (0: the default).
	Memory int64
	// Categories restricts training to these categories; empty means all.
	Categories []string
	// Quick trades accuracy for time (fewer sampled patches and synthetic
	// defects): the demo trains in about a minute on a laptop CPU.
	Quick bool
	// FromScratch rebuilds every bank and trains the mapper anew; by
	// default a project's last model of the same normal images is refitted
	// with the new annotations (seconds instead of minutes).
	FromScratch bool
}

// ScoreRequest asks the engine to score images with a model.
type ScoreRequest struct {
	Project Project
	// ModelID is ModelInfo.ID of the model to score with.
	ModelID string
	Device  Device
	// Dir, when set, scores every image under it (an inspection batch);
	// otherwise the project's test split is scored.
	Dir string
	// Fast scores with the fast search (candidates from the bank lists
	// nearest each patch, re-ranked exactly: image AUROC within 0.001 of
	// the exact search on the benchmark, scoring 6–13× faster) instead of
	// the exact one.
	Fast bool
}

// Progress is one progress event of a long engine call.
type Progress struct {
	// Stage is what the job is doing in plain words (progress.Stage.Label:
	// "building the normal memory", "scoring images").
	Stage  string
	Epoch  int
	Epochs int
	// Refit is set while an earlier model's mapper is fine-tuned (Epochs
	// are the fine-tune's own).
	Refit bool
	Step  int
	Steps int
	// Loss is the latest training loss (0 when not training).
	Loss float64
	// ETA is the estimated time left (0 when unknown).
	ETA time.Duration
	// Fraction is the overall progress in [0, 1].
	Fraction float64
}

// ScoredImage is the result of scoring one image.
type ScoredImage struct {
	// ImageID is the project image (empty for an inspection batch).
	ImageID  string
	Path     string
	Category string
	Score    float64
	// Label is the ground truth when known.
	Label Label
	// Map is the anomaly map, row-major MapH×MapW, same scale as Score.
	Map        []float32
	MapW, MapH int
	// MaskPath is a ground-truth mask file, when one exists outside the project.
	MaskPath string
}

// Metrics are the evaluation metrics of one category (or the mean): the
// engine's own type, so nothing is copied between the two.
type Metrics = metrics.Summary

// Run is one scoring run: an evaluation of the test split or an inspection batch.
type Run struct {
	// ID is assigned by Project.SaveRun when empty.
	ID      string
	Name    string
	ModelID string
	Created time.Time
	Images  []ScoredImage
	// PerCategory holds precomputed metrics; empty for an unlabelled batch.
	PerCategory map[string]Metrics
	// Threshold is the engine's suggested decision threshold.
	Threshold float64
}

// Engine is what the views need from training and scoring.
type Engine interface {
	// Detect reports the execution providers that load on this machine.
	Detect() DeviceInfo
	// ScanFolder recognises MVTec AD / VisA layouts under dir, or lists the
	// images of a plain folder with Layout "plain".
	ScanFolder(ctx context.Context, dir string) (FolderScan, error)
	// Train trains one unified model on the project's images.
	Train(ctx context.Context, req TrainRequest, progress func(Progress)) (ModelInfo, error)
	// Score scores images and returns the run with its metrics when labels exist.
	Score(ctx context.Context, req ScoreRequest, progress func(Progress)) (Run, error)
	// GenerateDemo writes a small synthetic dataset in MVTec AD layout under dir.
	GenerateDemo(ctx context.Context, dir string) error
}

// ErrNoMask is returned by Project.Mask when an image has no mask.
var ErrNoMask = errors.New("no mask")

// Project is what the views read from and write to the open project.
type Project interface {
	// Name is the project's display name; Path its file.
	Name() string
	Path() string
	// Images lists every image of the project, in a stable order.
	Images() ([]ImageRecord, error)
	// AddImages imports images (and the masks their MaskPath names);
	// it returns the records with IDs assigned.
	AddImages(ctx context.Context, recs []ImageRecord) ([]ImageRecord, error)
	// LoadImage decodes the image with the given ID.
	LoadImage(id string) (image.Image, error)
	// Mask returns the image's mask (0 = normal, 255 = defect) or ErrNoMask.
	Mask(id string) (*image.Gray, error)
	// SaveMask stores the mask of an image; a nil mask deletes it.
	SaveMask(id string, m *image.Gray) error
	// SetSeenAnomaly marks or unmarks an image as a seen anomaly for training.
	SetSeenAnomaly(id string, seen bool) error
	Settings() (Settings, error)
	SaveSettings(s Settings) error
	// Models lists the trained model versions, oldest first.
	Models() ([]ModelInfo, error)
	// Runs lists scoring runs, oldest first (metadata and images).
	Runs() ([]Run, error)
	// SaveRun stores a run and returns it with its ID.
	SaveRun(r Run) (Run, error)
	Close() error
}

// ImageRemover is implemented by projects that can remove images (their
// records, masks and cached features; never the files): the Data view offers
// Remove when the open project has it. A separate interface so that
// projects without it keep compiling.
type ImageRemover interface {
	RemoveImage(id string) error
}

// WeakMarker is implemented by projects that can mark images as weak
// anomalies (defective, no mask); the Annotate view offers the mark when
// the open project has it. Separate so that projects without it compile.
type WeakMarker interface {
	SetWeakAnomaly(id string, weak bool) error
}

// RecentStore remembers recently opened project files.
type RecentStore interface {
	Recent() []string
	// Add puts path first in the list.
	Add(path string)
}

// Deps are the application's dependencies.
type Deps struct {
	Engine        Engine
	OpenProject   func(path string) (Project, error)
	CreateProject func(path, name string) (Project, error)
	// Live runs live inspection (the Live screen); nil disables it.
	Live LiveFunc
	// Recent defaults to a store in the app's Preferences when nil.
	Recent RecentStore
	// DataDir is where the demo dataset and project go; defaults to the
	// app's storage root.
	DataDir string
}

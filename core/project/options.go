package project

import (
	"fmt"
	"log/slog"

	"github.com/dmad/workstation/core/membudget"
	"github.com/dmad/workstation/core/pipeline"
)

// Choices are what a user decides about a training run, from the CLI's
// flags or the desktop application's Train view. A zero value keeps the
// default; NewTrainOptions turns choices into TrainOptions, so both front
// ends train with the same defaults and the same range checks.
type Choices struct {
	Method pipeline.Method // [DMAD]
	// Semi trains semi-supervised on the images marked as seen anomalies.
	Semi bool
	// SemiIfAny trains semi-supervised when the selected categories have
	// seen anomalies and unsupervised (with a log line) otherwise.
	SemiIfAny bool
	// Categories restricts training to these categories; empty means all.
	Categories []string

	Seed         int64   // [pipeline.DefaultSeed]
	CoresetRatio float64 // in (0, 1] [pipeline.DefaultCoresetRatio]
	Epochs       int     // [train.DefaultConfig]
	BatchSize    int     // normal patches per step [train.DefaultConfig]
	TrainPatches int     // [pipeline.DefaultTrainPatches]
	OODImages    int     // [pipeline.DefaultOODImages]
	Hidden       int     // width of the mapper's hidden layer [mapper default]
	NoiseStd     float64 // [train.DefaultConfig]
	Lambda2      float64 // [train.DefaultConfig]
	Margin       float64 // [train.DefaultConfig]
	LR           float64 // [train.DefaultConfig]
	// Attention adds attention knowledge in the unsupervised regime.
	Attention bool
	// NoDistances is the ablation without the scalar distances ‖k·n‖, ‖k·a‖.
	NoDistances bool
	// Quick trades accuracy for time (the demo): QuickTrainPatches normal
	// patches, QuickOODImages synthetic defects and QuickThresholdImages
	// images for the threshold, unless set explicitly.
	Quick bool

	FullRetrain bool
	Notes       string
	// Memory is the memory budget in bytes [membudget.Default()].
	Memory int64
	// Logger receives one line per training epoch [the session's logger].
	Logger *slog.Logger
}

// The sizes a Quick run uses.
const (
	QuickTrainPatches    = 8192
	QuickOODImages       = 30
	QuickThresholdImages = 32
)

// DefaultFineTuneFraction is the share of the epochs a fine-tune runs.
const DefaultFineTuneFraction = 0.25

// DefaultTrainOptions are the training options with every default written
// out.
func DefaultTrainOptions() TrainOptions {
	return TrainOptions{Method: pipeline.DMAD, Fit: pipeline.DefaultOptions(),
		OODImages: pipeline.DefaultOODImages, FineTuneFraction: DefaultFineTuneFraction, Memory: membudget.Default()}
}

// NewTrainOptions returns the defaults with c's choices applied, checked
// by Validate (an out-of-range choice is an *OptionError).
func NewTrainOptions(c Choices) (TrainOptions, error) {
	o := DefaultTrainOptions()
	if c.Method != "" {
		o.Method = c.Method
	}
	o.Semi, o.SemiIfAny, o.Categories = c.Semi, c.SemiIfAny, c.Categories
	o.FullRetrain, o.Notes = c.FullRetrain, c.Notes
	if c.Memory != 0 {
		o.Memory = c.Memory
	}
	fit, tc := &o.Fit, &o.Fit.Train
	if c.Seed != 0 {
		fit.Seed = c.Seed
	}
	tc.Seed = uint64(fit.Seed)
	tc.Logger = c.Logger
	if c.Quick {
		fit.TrainPatches, o.OODImages, fit.ThresholdImages = QuickTrainPatches, QuickOODImages, QuickThresholdImages
	}
	setInt(&tc.Epochs, c.Epochs)
	setInt(&tc.BatchSize, c.BatchSize)
	setInt(&fit.TrainPatches, c.TrainPatches)
	setInt(&o.OODImages, c.OODImages)
	setInt(&tc.Mapper.Hidden, c.Hidden)
	if c.CoresetRatio != 0 {
		fit.CoresetRatio = c.CoresetRatio
	}
	setFloat(&tc.NoiseStd, c.NoiseStd)
	setFloat(&tc.Lambda2, c.Lambda2)
	setFloat(&tc.Margin, c.Margin)
	setFloat(&tc.LR, c.LR)
	fit.Attention = c.Attention
	if c.NoDistances {
		tc.Mapper.Distances = false
		tc.Mapper.PatchCoreInit = false
	}
	return o, o.Validate()
}

func setInt(dst *int, v int) {
	if v != 0 {
		*dst = v
	}
}

func setFloat(dst *float32, v float64) {
	if v != 0 {
		*dst = float32(v)
	}
}

// OptionError is a choice out of its range. Option is the choice's name as
// the CLI spells its flag ("coreset-ratio"); the CLI turns it into a usage
// error naming --Option, the desktop application shows the message.
type OptionError struct {
	Option string
	Value  any
	Range  string // e.g. "in (0, 1]", "≥ 1"
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%s %v is out of range: want %s", e.Option, e.Value, e.Range)
}

// Validate checks every numeric option's range.
func (o TrainOptions) Validate() error {
	tc := o.Fit.Train
	checks := []struct {
		ok     bool
		option string
		value  any
		want   string
	}{
		{o.Fit.CoresetRatio > 0 && o.Fit.CoresetRatio <= 1, "coreset-ratio", o.Fit.CoresetRatio, "in (0, 1]"},
		{tc.Epochs >= 1, "epochs", tc.Epochs, "≥ 1"},
		{tc.BatchSize >= 1, "batch", tc.BatchSize, "≥ 1"},
		{o.Fit.TrainPatches >= 1, "train-patches", o.Fit.TrainPatches, "≥ 1"},
		{o.OODImages >= 0, "ood-images", o.OODImages, "≥ 0"},
		{tc.Mapper.Hidden >= 1, "hidden", tc.Mapper.Hidden, "≥ 1"},
		{tc.NoiseStd >= 0, "noise-std", tc.NoiseStd, "≥ 0"},
		{tc.Lambda2 >= 0, "lambda2", tc.Lambda2, "≥ 0"},
		{tc.Margin >= 0, "margin", tc.Margin, "≥ 0"},
		{tc.LR > 0, "lr", tc.LR, "> 0"},
		{o.FineTuneFraction >= 0 && o.FineTuneFraction <= 1, "fine-tune-fraction", o.FineTuneFraction, "in [0, 1]"},
		{membudget.Check(o.Memory) == nil, "memory", membudget.Format(o.Memory), "≥ " + membudget.Format(membudget.Min)},
	}
	for _, c := range checks {
		if !c.ok {
			return &OptionError{Option: c.option, Value: c.value, Range: c.want}
		}
	}
	return nil
}

// ValidateEngine checks the engine choices both front ends share: ONNX
// Runtime threads (0: the runtime's default) and the network input side
// (0: the project's setting).
func ValidateEngine(threads, inputSize int) error {
	if threads < 0 {
		return &OptionError{Option: "threads", Value: threads, Range: "≥ 0"}
	}
	if inputSize != 0 && (inputSize < 16 || inputSize > 4096) {
		return &OptionError{Option: "input-size", Value: inputSize, Range: "in [16, 4096]"}
	}
	return nil
}

// ValidateSeen checks the number of seen anomalies per category.
func ValidateSeen(k int) error {
	if k < 0 {
		return &OptionError{Option: "seen-anomalies", Value: k, Range: "≥ 0"}
	}
	return nil
}

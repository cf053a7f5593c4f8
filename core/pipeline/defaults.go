package pipeline

import "github.com/dmad/workstation/core/train"

// The workstation's defaults, written once: the CLI's flag defaults, the
// desktop application's settings and Options.withDefaults all read them.
const (
	// DefaultCoresetRatio is the fraction of normal patches kept in M_n.
	DefaultCoresetRatio = 0.02
	// DefaultOODImages is the number of synthetic-defect images whose
	// patches form the out-of-distribution part of M_o.
	DefaultOODImages = 200
	// DefaultTrainPatches is the number of normal patches the mapper trains on.
	DefaultTrainPatches = 131072
	// DefaultThresholdImages is the number of normal training images scored
	// to set the decision threshold.
	DefaultThresholdImages = 64
	// DefaultThresholdQuantile is the quantile of those scores used.
	DefaultThresholdQuantile = 0.99
	// DefaultSeed fixes sampling, splits and initialisation.
	DefaultSeed = 1
)

// DefaultOptions are the fit options with every default written out (the
// feature dimension of Train.Mapper is filled in by Fit).
func DefaultOptions() Options {
	return Options{Method: DMAD, CoresetRatio: DefaultCoresetRatio, TrainPatches: DefaultTrainPatches,
		Train: train.DefaultConfig(0), ThresholdImages: DefaultThresholdImages,
		ThresholdQuantile: DefaultThresholdQuantile, Seed: DefaultSeed}
}

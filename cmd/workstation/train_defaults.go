package main

import "github.com/dmad/workstation/core/train"

// defaultTrain returns the training configuration with the epochs and
// batch size a user asked for (0 keeps the default); the feature dimension
// is filled in by the pipeline.
func defaultTrain(epochs, batch int, seed int64) train.Config {
	c := train.DefaultConfig(0)
	if epochs > 0 {
		c.Epochs = epochs
	}
	if batch > 0 {
		c.BatchSize = batch
	}
	c.Seed = uint64(seed)
	return c
}

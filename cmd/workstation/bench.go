package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dmad/workstation/core/pipeline"
)

// fitFlags are the model-fitting flags shared by train and bench.
type fitFlags struct {
	seed         int64
	coresetRatio float64
	epochs       int
	trainPatches int
	batch        int
	attention    bool
	oodImages    int
}

func (f *fitFlags) register(fs *flag.FlagSet) {
	fs.Int64Var(&f.seed, "seed", 1, "random seed (split, sampling, initialisation)")
	fs.Float64Var(&f.coresetRatio, "coreset-ratio", 0.02, "fraction of normal patches kept in the normal bank")
	fs.IntVar(&f.epochs, "epochs", 0, "mapper training epochs (0: the default schedule)")
	fs.IntVar(&f.trainPatches, "train-patches", 0, "normal patches sampled to train the mapper (0: default 131072)")
	fs.IntVar(&f.batch, "batch", 0, "normal patches per training step (0: default)")
	fs.BoolVar(&f.attention, "attention", false, "add attention knowledge in the unsupervised regime (METHOD.md §3)")
	fs.IntVar(&f.oodImages, "ood-images", 200, "synthetic-defect images for the out-of-distribution part of the anomaly bank")
}

func (f *fitFlags) options() pipeline.Options {
	o := pipeline.Options{CoresetRatio: f.coresetRatio, TrainPatches: f.trainPatches, Attention: f.attention, Seed: f.seed}
	if f.epochs > 0 || f.batch > 0 {
		o.Train = defaultTrain(f.epochs, f.batch, f.seed)
	}
	return o
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "--data DIR --json OUT.json [flags]",
		"Runs the whole evaluation protocol (METHOD.md §6) in one process: the semi-supervised split\n"+
			"(K anomalies per category moved to training, the same for every method), features once,\n"+
			"then PatchCore, DMAD unsupervised and DMAD semi-supervised, unified over all categories and\n"+
			"scored on the same test images. Writes per-category and mean metrics, timings and memory.", stderr)
	var ef engineFlags
	var ff fitFlags
	ef.register(fs)
	ff.register(fs)
	data := fs.String("data", "", "dataset `DIR` (MVTec AD or VisA layout)")
	out := fs.String("json", "", "write the report to `FILE`")
	cats := fs.String("categories", "", "comma-separated categories (default: all)")
	methods := fs.String("methods", "patchcore,dmad", "methods to run: patchcore, dmad (dmad runs both regimes)")
	runs := fs.String("runs", "", "explicit runs instead of --methods: patchcore, dmad-unsupervised, dmad-semi")
	seen := fs.Int("seen-anomalies", 10, "K: anomalous test images per category moved to training for the semi-supervised regime")
	cache := fs.String("cache", "", "cache features in `DIR` between runs")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" || *out == "" {
		return usagef("--data and --json are required")
	}
	var runList []string
	if *runs != "" {
		runList = splitList(*runs)
	} else {
		for _, m := range splitList(*methods) {
			switch m {
			case "patchcore":
				runList = append(runList, "patchcore")
			case "dmad":
				runList = append(runList, "dmad-unsupervised", "dmad-semi")
			default:
				return usagef("unknown method %q in --methods (want patchcore, dmad)", m)
			}
		}
	}
	card, model, err := resolveBackbone(ef.backbone)
	if err != nil {
		return err
	}
	rt, err := ef.runtime()
	if err != nil {
		return err
	}
	defer rt.Close()
	pr := newProgress(stderr, ef.quiet)
	defer pr.Done()
	rep, err := pipeline.Bench(ctx, rt, pipeline.BenchOptions{
		Data: *data, Categories: splitList(*cats), Runs: runList, Seen: *seen, Seed: ff.seed,
		Card: card, Backbone: model, Encoder: ef.encoderConfig(), Fit: ff.options(),
		OODImages: ff.oodImages, CacheDir: *cache, Progress: pr.Update, Log: pr.Log,
	})
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

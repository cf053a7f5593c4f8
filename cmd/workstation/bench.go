package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/dmad/workstation/core/backbone"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/dmad/workstation/core/membudget"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/project"
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
	hidden       int
	noiseStd     float64
	lambda2      float64
	margin       float64
	lr           float64
	noDistances  bool
	memory       int64
}

func (f *fitFlags) register(fs *flag.FlagSet) {
	fs.Int64Var(&f.seed, "seed", pipeline.DefaultSeed, "random seed (split, sampling, initialisation)")
	fs.Float64Var(&f.coresetRatio, "coreset-ratio", pipeline.DefaultCoresetRatio, "fraction of normal patches kept in the normal bank")
	fs.IntVar(&f.epochs, "epochs", 0, "mapper training epochs (0: the default schedule)")
	fs.IntVar(&f.trainPatches, "train-patches", 0, "normal patches sampled to train the mapper (0: the default, "+strconv.Itoa(pipeline.DefaultTrainPatches)+")")
	fs.IntVar(&f.batch, "batch", 0, "normal patches per training step (0: default)")
	fs.BoolVar(&f.attention, "attention", false, "add attention knowledge in the unsupervised regime (METHOD.md §3)")
	fs.IntVar(&f.oodImages, "ood-images", pipeline.DefaultOODImages, "synthetic-defect images for the out-of-distribution part of the anomaly bank")
	fs.IntVar(&f.hidden, "hidden", 0, "width of the mapper's hidden layer (0: default)")
	fs.Float64Var(&f.noiseStd, "noise-std", 0, "pseudo-negative noise, relative to the normal residual scale (0: default)")
	fs.Float64Var(&f.lambda2, "lambda2", 0, "weight of the seen-anomaly hinge term (0: default 10)")
	fs.Float64Var(&f.margin, "margin", 0, "hinge margin (0: default)")
	fs.Float64Var(&f.lr, "lr", 0, "mapper learning rate (0: default)")
	fs.BoolVar(&f.noDistances, "no-distances", false, "ablation: do not give the mapper the scalar distances ‖k·n‖, ‖k·a‖")
	fs.Func("memory", "memory budget `SIZE` such as 4GiB or 512MB (default "+membudget.Format(membudget.Default())+
		", an eighth of this machine's RAM within 1–4 GiB): features that do not fit in a quarter of it are streamed from disk", func(v string) error {
		b, err := membudget.Parse(v)
		f.memory = b
		return err
	})
}

// choices are the flags as the engine's training choices (the core checks
// their ranges and fills the defaults).
func (f *fitFlags) choices() project.Choices {
	return project.Choices{Seed: f.seed, CoresetRatio: f.coresetRatio, Epochs: f.epochs, TrainPatches: f.trainPatches,
		BatchSize: f.batch, Attention: f.attention, OODImages: f.oodImages, Hidden: f.hidden, NoiseStd: f.noiseStd,
		Lambda2: f.lambda2, Margin: f.margin, LR: f.lr, NoDistances: f.noDistances, Memory: f.memory}
}

// flagError turns an out-of-range option into a usage error naming its flag.
func flagError(err error) error {
	var oe *project.OptionError
	if errors.As(err, &oe) {
		return usagef("--%s %v is out of range: want %s", oe.Option, oe.Value, oe.Range)
	}
	return err
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "--data DIR --json OUT.json [flags]",
		"Runs the whole evaluation protocol (METHOD.md §6) in one process: the semi-supervised split\n"+
			"(K anomalies per category moved to training, the same for every method), features once,\n"+
			"then PatchCore, DMAD unsupervised and DMAD semi-supervised, unified over all categories and\n"+
			"scored on the same test images, with exact search and again with the fast search. Writes\n"+
			"per-category and mean metrics, timings, peak memory per run, and exact search's throughput\n"+
			"against this machine's GEMM peak. Features are read from a cache on disk, never all held.", stderr)
	var ef engineFlags
	var ff fitFlags
	ef.register(fs)
	ff.register(fs)
	data := fs.String("data", "", "dataset `DIR` (MVTec AD or VisA layout)")
	out := fs.String("json", "", "write the report to `FILE`")
	cats := fs.String("categories", "", "comma-separated categories (default: all)")
	methods := fs.String("methods", "patchcore,dmad", "methods to run: patchcore, dmad (dmad runs both regimes)")
	runs := fs.String("runs", "", "explicit runs instead of --methods: patchcore, dmad-unsupervised, dmad-semi, dmad-weak (the semi split's anomalies without masks), dmad-retrain (dmad-semi refitted after 5 new annotations)")
	valImages := fs.Int("validation-images", 0, "normal training images per category held out for the validation split (0: default "+strconv.Itoa(pipeline.DefaultValidationImages)+", -1: none)")
	mapWeight := fs.Float64("map-weight", -1, "mapper weight of the anomaly-map fusion in [0, 1] (-1: chosen on the validation split)")
	fixedSchedule := fs.Bool("fixed-schedule", false, "train for all epochs instead of keeping the checkpoint the validation split rates best")
	weakRounds := fs.Int("weak-rounds", 0, "dmad-weak: rounds of picking the weak images' top patches and refitting (0: default 1)")
	seen := fs.Int("seen-anomalies", 10, "K: anomalous test images per category moved to training for the semi-supervised regime")
	cache := fs.String("cache", "", "cache features in `DIR` between runs (default: a temporary folder, removed at the end)")
	cache16 := fs.Bool("cache-float16", false, "cache new features as float16 instead of float32 (half the disk and I/O; moved image AUROC by about 0.001 on the benchmark)")
	noFast := fs.Bool("no-fast", false, "do not score every run a second time with the fast search")
	fastOnly := fs.Bool("fast-only", false, "score every run once, with the fast search (its metrics replace exact ones; for configurations whose exact scoring takes long, such as --input-size 320)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE` (for go tool pprof)")
	maxTrain := fs.Int("max-train", 0, "use at most N normal training images per category (0: all; a reduced protocol for quick checks)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ef.applyVerbose(stderr)
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
	opts, err := project.NewTrainOptions(ff.choices())
	if err == nil {
		err = project.ValidateSeen(*seen)
	}
	if err == nil {
		err = ef.validate()
	}
	if err != nil {
		return flagError(err)
	}
	switch {
	case *mapWeight > 1 || (*mapWeight < 0 && *mapWeight != -1):
		return usagef("--map-weight %v is out of range: want 0 to 1, or -1", *mapWeight)
	case *mapWeight >= 0:
		opts.Fit.MapWeights = []float32{float32(*mapWeight)}
	}
	if *weakRounds < 0 {
		return usagef("--weak-rounds %d is out of range: want ≥ 0", *weakRounds)
	}
	opts.Fit.WeakRounds, opts.Fit.FixedSchedule = *weakRounds, *fixedSchedule
	card, model, err := backbone.Resolve(ef.backbone)
	if err != nil {
		return err
	}
	rt, err := ef.runtime()
	if err != nil {
		return err
	}
	defer rt.Close()
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	pr := newProgress(stderr, ef.quiet)
	defer pr.Done()
	rep, err := pipeline.Bench(ctx, rt, pipeline.BenchOptions{
		Data: *data, Categories: splitList(*cats), Runs: runList, Seen: *seen, Seed: ff.seed,
		Card: card, Backbone: model, Encoder: ef.encoderConfig(), Fit: opts.Fit,
		OODImages: opts.OODImages, ValidationImages: *valImages, CacheDir: *cache, MaxTrain: *maxTrain, Progress: pr.Report, Log: pr.Log,
		Float16Cache: *cache16, Memory: opts.Memory, NoFast: *noFast, FastOnly: *fastOnly,
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

// startCPUProfile profiles the process's CPU into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
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

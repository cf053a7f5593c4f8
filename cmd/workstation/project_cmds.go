package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/inspection"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/project"
	"github.com/dmad/workstation/core/review"
	"github.com/dmad/workstation/core/shard"
	"github.com/dmad/workstation/storage"
	"github.com/dmad/workstation/ui/report"
)

// openSession opens the runtime and the project. Commands that only read
// open it read-only (they never create it and work on read-only media);
// train creates it when missing. done closes both; call it with the
// command's error, so a project this command created is removed when the
// command fails.
func openSession(ef *engineFlags, path string, o project.OpenOptions) (s *project.Session, done func(*error), err error) {
	if path == "" {
		return nil, nil, usagef("--project is required")
	}
	if err := ef.validate(); err != nil {
		return nil, nil, err
	}
	rt, err := ef.runtime()
	if err != nil {
		return nil, nil, err
	}
	s, created, err := project.Open(path, o, rt, nil)
	if err != nil {
		rt.Close()
		return nil, nil, err
	}
	return s, func(cmdErr *error) {
		s.Close()
		rt.Close()
		if created && *cmdErr != nil {
			os.Remove(path) // nothing of value: the command that made it failed
		}
	}, nil
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("train", "--project P.dmadproj --data DIR [flags]",
		"Imports a dataset (MVTec AD or VisA layout, or a plain folder of good images with --label good\n"+
			"--category NAME) into the project (paths, hashes and masks; images stay where they are), then\n"+
			"trains ONE unified model over all selected categories and stores it as the project's new active\n"+
			"model. Run it once per plain folder to add categories, then once more to train on all of them.\n"+
			"With --seen-anomalies K, K anomalous test images per category (spread over defect types, fixed\n"+
			"by --seed) become seen anomalies: moved to training with their masks and left out of evaluation\n"+
			"(semi-supervised regime). Features are cached in the project, so retraining is much faster.\n\n"+
			"Examples:\n"+
			"  workstation train --project line1.dmadproj --data /data/mvtec\n"+
			"  workstation train --project line1.dmadproj --data photos/good --label good --category bottle",
		stderr, "project", "data", "label", "category", "categories", "seen-anomalies", "method")
	var ef engineFlags
	var ff fitFlags
	ef.register(fs)
	ff.register(fs)
	proj := fs.String("project", "", "project `FILE` (created when missing)")
	data := fs.String("data", "", "dataset `DIR` to import before training (optional if the project has images)")
	cats := fs.String("categories", "", "comma-separated `LIST` of categories to train on (default: all)")
	label := fs.String("label", "", "`LABEL` of a plain --data folder's images: good (the only label a plain folder can have)")
	category := fs.String("category", "", "category `NAME` of a plain --data folder's images (default: the folder's name)")
	seen := fs.Int("seen-anomalies", 0, "`K` anomalous images per category used as seen anomalies (0: unsupervised)")
	weak := fs.String("weak", "", "`DIR` of images known to be defective but without masks (DIR/<category>/<image>): imported as weak anomalies, whose top-scoring patches the semi-supervised regime trains on")
	method := fs.String("method", "dmad", "`METHOD`: dmad or patchcore")
	skipBad := fs.Bool("skip-bad", false, "skip unreadable images and masks with a warning instead of stopping")
	fullCheck := fs.Bool("full-check", false, "decode every image and mask completely before importing (slower; finds damage inside the data that the quick header-and-end check cannot, e.g. in a JPEG's compressed data)")
	full := fs.Bool("full-retrain", false, "rebuild banks and train the mapper from scratch even when an earlier model used the same normal images (default: reuse and fine-tune)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ef.applyVerbose(stderr)
	m, err := pipeline.ParseMethod(*method)
	if err != nil {
		return usageError{err.Error()}
	}
	c := ff.choices()
	c.Method, c.Semi, c.Categories, c.FullRetrain = m, *seen > 0 || *weak != "", splitList(*cats), *full
	if *weak != "" && m != pipeline.DMAD {
		return usagef("--weak needs --method dmad (PatchCore has no use for anomalies)")
	}
	opts, err := project.NewTrainOptions(c)
	if err == nil {
		err = project.ValidateSeen(*seen)
	}
	if err != nil {
		return flagError(err)
	}
	// Read the dataset before touching the project: a bad --data leaves nothing behind.
	var ds *dataset.Dataset
	if *data != "" {
		if ds, err = openTrainingData(ctx, *data, *label, *category, c.Categories, dataset.Options{SkipBad: *skipBad, FullDecode: *fullCheck}); err != nil {
			return err
		}
	} else if *label != "" || *category != "" {
		return usagef("--label and --category name what the images of --data are: give --data")
	}
	s, done, err := openSession(&ef, *proj, project.OpenOptions{Create: true})
	if err != nil {
		return err
	}
	defer done(&err)
	if err := s.SetBackbone(ef.backbone, ef.inputSize); err != nil {
		return err
	}
	pr := newProgress(stderr, ef.quiet)
	defer pr.Done()
	if ds != nil {
		if err := importForTraining(ctx, s, ds, *seen, ff.seed, pr); err != nil {
			return err
		}
	}
	if *weak != "" {
		recs, err := s.ImportWeak(ctx, *weak)
		if err != nil {
			return err
		}
		pr.Log("marked %d images of %s as weak anomalies (defective, no mask)", len(recs), *weak)
	}
	start := time.Now()
	rec, model, err := s.Train(ctx, opts, pr.Report)
	if err != nil {
		return err
	}
	pr.Done()
	weakNote := ""
	if model.Meta.WeakImages > 0 {
		weakNote = fmt.Sprintf(", %d weak (%d patches)", model.Meta.WeakImages, model.Meta.WeakPatches)
	}
	fmt.Fprintf(stdout, "model %d (%s, %s, %d categories, %d seen anomalies%s) trained in %s; %s\n",
		rec.Version, model.Meta.Method, model.Meta.Regime, len(model.Meta.Categories), model.Meta.SeenImages, weakNote,
		time.Since(start).Round(time.Second), modelThresholds(model.Meta))
	return nil
}

// modelThresholds names a model's thresholds as inspect and the report
// do: the global one, then each category's own.
func modelThresholds(m pipeline.Meta) string {
	t := fmt.Sprintf("threshold %.4f", m.Threshold)
	if len(m.CategoryThresholds) == 0 {
		return t
	}
	var own []string
	for _, c := range slices.Sorted(maps.Keys(m.CategoryThresholds)) {
		own = append(own, fmt.Sprintf("%s %.4f", c, m.CategoryThresholds[c]))
	}
	return t + " (per category: " + strings.Join(own, ", ") + ")"
}

// openTrainingData reads train's --data: a dataset layout, or with --label
// good a plain folder whose images become normal training images of one
// category (--category, default the folder's name).
// check carries --skip-bad and --full-check.
func openTrainingData(ctx context.Context, dir, label, category string, cats []string, check dataset.Options) (*dataset.Dataset, error) {
	if label != "" && label != dataset.GoodType {
		return nil, usagef("--label %q: a plain folder can only be labelled good (defects need the MVTec layout with masks)", label)
	}
	opts := dataset.Options{Categories: cats, SkipBad: check.SkipBad, FullDecode: check.FullDecode}
	if label != "" {
		opts.Categories = nil // the folder's own name is not the category
	}
	ds, err := dataset.OpenContext(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	if ds.Layout != dataset.LayoutFolder {
		if label != "" || category != "" {
			return nil, usagef("--label and --category are for a plain folder of images; %s is a dataset (%s layout) with its own labels and categories", dir, ds.Layout)
		}
		return ds, nil
	}
	if label == "" {
		return nil, usagef("%s is a plain folder of images: say what they are with --label good (and --category NAME), or use the MVTec AD layout", dir)
	}
	if category == "" {
		category = ds.Categories[0]
	}
	if strings.TrimSpace(category) != category || category == "" || strings.ContainsAny(category, `/\`) {
		return nil, usagef("--category %q: want a plain name (no slashes, no surrounding spaces)", category)
	}
	for i := range ds.Samples {
		smp := &ds.Samples[i]
		smp.Category, smp.Split, smp.Label, smp.Defect = category, dataset.Train, dataset.Good, dataset.GoodType
	}
	ds.Categories = []string{category}
	return ds, nil
}

// importForTraining imports ds into the project and marks seen anomalies
// per category as seen.
func importForTraining(ctx context.Context, s *project.Session, ds *dataset.Dataset, seen int, seed int64, pr *progressBar) error {
	for _, p := range ds.Skipped {
		pr.Log("skipped %s", p.Error())
	}
	if _, err := s.ImportDataset(ctx, ds, pr.Report); err != nil {
		return err
	}
	if seen <= 0 {
		return nil
	}
	_, moved := dataset.SemiSplit(ds, seen, seed)
	var ids []uint64
	for _, smp := range moved {
		r, err := s.Store.ImageByPath(smp.Path)
		if err != nil {
			return err
		}
		ids = append(ids, r.ID)
	}
	if err := s.MarkSeen(ids, true); err != nil {
		return err
	}
	pr.Log("marked %d annotated defects as seen anomalies", len(ids))
	return nil
}

// evalReport is eval's JSON output.
type evalReport struct {
	Project      string  `json:"project"`
	ModelVersion int     `json:"model_version"`
	Method       string  `json:"method"`
	Regime       string  `json:"regime"`
	Threshold    float32 `json:"threshold"`
	// CategoryThresholds are the model's per-category thresholds (inspect
	// and the report judge each image at its category's).
	CategoryThresholds map[string]float32         `json:"category_thresholds,omitempty"`
	RunID              uint64                     `json:"run_id"`
	PerCategory        map[string]metrics.Summary `json:"per_category"`
	Mean               metrics.Summary            `json:"mean"`
	Images             []evalImage                `json:"images"`
	// WorkstationVersion is the version that wrote the file.
	WorkstationVersion string `json:"workstation_version"`
}

type evalImage struct {
	Path      string  `json:"path"`
	Category  string  `json:"category"`
	Anomalous bool    `json:"anomalous"`
	Score     float32 `json:"score"`
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("eval", "--project P.dmadproj [--data DIR] --json OUT.json",
		"Scores the project's test images with the active model (or --model N), computes image and pixel\n"+
			"metrics per category, stores the run in the project (unless --save=false) and writes it as\n"+
			"JSON. --data imports a dataset's images first. With --save=false and no --data the project is\n"+
			"opened read-only (read-only media, several readers).\n\n"+
			"Example:\n  workstation eval --project line1.dmadproj --json eval.json", stderr, "project", "json", "data", "model", "save")
	var ef engineFlags
	ef.register(fs)
	proj := fs.String("project", "", "project `FILE`")
	data := fs.String("data", "", "dataset `DIR` to import before evaluating")
	out := fs.String("json", "", "write the evaluation to `FILE`")
	version := fs.Int("model", 0, "model `VERSION` (default: the active one)")
	save := fs.Bool("save", true, "store the run in the project")
	search := searchFlag(fs, banks.SearchExact)
	if err := parse(fs, args); err != nil {
		return err
	}
	ef.applyVerbose(stderr)
	mode, err := parseSearch(*search)
	if err != nil {
		return err
	}
	if *proj == "" {
		return usagef("--project is required")
	}
	if *out == "" {
		return usagef("--json is required")
	}
	var ds *dataset.Dataset
	if *data != "" {
		if ds, err = dataset.OpenContext(ctx, *data, dataset.Options{}); err != nil {
			return err
		}
	}
	s, done, err := openSession(&ef, *proj, project.OpenOptions{ReadOnly: !*save && ds == nil})
	if err != nil {
		return err
	}
	s.SetSearchMode(mode)
	defer done(&err)
	pr := newProgress(stderr, ef.quiet)
	defer pr.Done()
	if ds != nil {
		if _, err := s.ImportDataset(ctx, ds, pr.Report); err != nil {
			return err
		}
	}
	res, err := s.Evaluate(ctx, project.EvalOptions{Version: *version, NoSave: !*save}, pr.Report)
	if err != nil {
		return err
	}
	meta := res.Model.Meta
	rep := evalReport{Project: *proj, ModelVersion: res.ModelVersion, Method: string(meta.Method), Regime: meta.Regime,
		Threshold: res.Threshold, CategoryThresholds: meta.CategoryThresholds, RunID: res.RunID, PerCategory: res.PerCategory, Mean: res.Mean,
		WorkstationVersion: workstation.Version()}
	for _, im := range res.Images {
		rep.Images = append(rep.Images, evalImage{Path: im.Record.Path, Category: im.Record.Category,
			Anomalous: im.Record.Label == storage.LabelAnomalous, Score: im.Score})
	}
	if err := writeJSON(*out, rep); err != nil {
		return err
	}
	pr.Done()
	fmt.Fprintf(stdout, "model %d: mean image AUROC %.4f, pixel AUROC %.4f, PRO %.4f over %d test images; wrote %s\n",
		res.ModelVersion, res.Mean.ImageAUROC, res.Mean.PixelAUROC, res.Mean.PRO, len(res.Images), *out)
	return nil
}

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("inspect", "--project P.dmadproj --input DIR --out DIR [flags]",
		"Scores every image under --input with the project's active model and writes to --out:\n"+
			"report.html and report.pdf (header with project, model, backbone, thresholds, date and operator;\n"+
			"per-category and per-defect-type tables; overlays of the fails and missed defects), scores.csv\n"+
			"(one numbered row per image: category, defect type, label, score, threshold, verdict), one overlay\n"+
			"PNG per image (heatmap, ground-truth contour where a mask exists, score, verdict, legend),\n"+
			"ROC/PR curves when labels are known, and summary.json with the same numbers. Each image is judged\n"+
			"at its category's threshold. The project is opened read-only.\n\n"+
			"Examples:\n"+
			"  workstation inspect --project line1.dmadproj --input /data/incoming --out /reports/today\n"+
			"  workstation inspect --project line1.dmadproj --input photos/ --category bottle --out out/ --operator ana",
		stderr, "project", "input", "out", "category", "operator", "model", "threshold")
	var ef engineFlags
	ef.register(fs)
	proj := fs.String("project", "", "project `FILE`")
	input := fs.String("input", "", "`DIR` of images (a plain folder, or MVTec AD/VisA layout)")
	outDir := fs.String("out", "", "output `DIR` (created)")
	category := fs.String("category", "", "score a plain folder as category `NAME` (its threshold); in a dataset, only that category")
	operator := fs.String("operator", review.CurrentUser(), "`NAME` of who runs the inspection, for the report (default: the user name)")
	version := fs.Int("model", 0, "model `VERSION` (default: the active one)")
	threshold := fs.Float64("threshold", -1, "decision threshold `T` for every image (default: each category's, from the model)")
	opacity := fs.Float64("opacity", 0.5, "heatmap opacity in the overlays, 0 to 1")
	skipBad := fs.Bool("skip-bad", false, "skip unreadable or damaged images (listed on stderr) instead of failing")
	fullCheck := fs.Bool("full-check", false, "decode every image completely before scoring (slower; finds damage inside the data that the quick check cannot)")
	search := searchFlag(fs, banks.SearchExact)
	shardSpec := fs.String("shard", "", "score only shard `I/N` of the input (stable split; combine with 'workstation report merge')")
	if err := parse(fs, args); err != nil {
		return err
	}
	ef.applyVerbose(stderr)
	mode, err := parseSearch(*search)
	if err != nil {
		return err
	}
	if *proj == "" {
		return usagef("--project is required")
	}
	sh, err := parseShardFlag(*shardSpec)
	if err != nil {
		return err
	}
	if *input == "" || *outDir == "" {
		return usagef("--input and --out are required")
	}
	if *opacity < 0 || *opacity > 1 {
		return usagef("--opacity %g is out of range: want in [0, 1]", *opacity)
	}
	scan, err := project.InspectSamples(ctx, *input, project.ScanOptions{SkipBad: *skipBad, FullCheck: *fullCheck})
	if err != nil {
		return err
	}
	samples, skipped := scan.Samples, scan.Skipped
	if *category != "" {
		if samples, err = asCategory(samples, *category, *input); err != nil {
			return err
		}
	}
	if sh != nil {
		if samples, err = selectShard(*input, samples, *sh); err != nil {
			return err
		}
		// Each worker names only the damaged files of its own slice.
		if skipped, err = shard.Filter(*input, skipped, func(p dataset.Problem) string { return p.Path }, *sh); err != nil {
			return err
		}
	}
	for _, p := range skipped {
		fmt.Fprintln(stderr, "skipped:", p)
	}
	s, done, err := openSession(&ef, *proj, project.OpenOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	s.SetSearchMode(mode)
	defer done(&err)
	if *category != "" {
		if err := checkCategory(s, *version, *category); err != nil {
			return err
		}
	}
	pr := newProgress(stderr, ef.quiet)
	defer pr.Done()
	res, err := s.Inspect(ctx, *version, samples, pr.Report)
	if err != nil {
		return err
	}
	r := inspectReport(s, *input, *opacity, samples, res)
	r.Operator = *operator
	if *threshold < 0 {
		pr.Done()
		for _, c := range unknownCategories(samples, res.Model.Meta.Categories) {
			fmt.Fprintf(stderr, "note: model %d has no category %q; its images are judged at the global threshold %.4f (name one of %s with --category)\n",
				res.ModelVersion, c, res.Model.Meta.Threshold, strings.Join(res.Model.Meta.Categories, ", "))
		}
	}
	if *threshold >= 0 {
		r.Threshold, r.CategoryThresholds = *threshold, nil
	}
	if sh != nil {
		r.Shard = sh.String()
	}
	// maps.bin (for 'report merge': the pixel metrics of the whole run)
	// goes first: report.Write writes summary.json last, the sign that
	// the output is complete.
	if res.Maps != nil {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", *outDir, err)
		}
		if err := inspection.WriteMaps(*outDir, *res.Maps); err != nil {
			return err
		}
	}
	if err := report.Write(ctx, *outDir, r, pr.Report); err != nil {
		return err
	}
	pr.Done()
	sum := r.Summary(r.Rows())
	fmt.Fprintf(stdout, "%d images: %d fail, %d pass at %s; report in %s\n",
		sum.Images, sum.Fail, sum.Pass, thresholdText(sum), *outDir)
	return nil
}

// unknownCategories are the categories of samples the model was not
// trained on, sorted.
func unknownCategories(samples []dataset.Sample, known []string) []string {
	var out []string
	for _, smp := range samples {
		if !slices.Contains(known, smp.Category) && !slices.Contains(out, smp.Category) {
			out = append(out, smp.Category)
		}
	}
	slices.Sort(out)
	return out
}

// thresholdText names the thresholds a run used, as the report's header
// does: "threshold 0.6587", or one per category that has its own.
func thresholdText(s inspection.Summary) string {
	var own []string
	for _, c := range s.Categories {
		if _, ok := s.CategoryThresholds[c.Category]; ok {
			own = append(own, fmt.Sprintf("%s %.4f", c.Category, c.Threshold))
		}
	}
	if len(own) == 0 {
		return fmt.Sprintf("threshold %.4f", s.Threshold)
	}
	return "thresholds " + strings.Join(own, ", ")
}

// asCategory scores samples as category name: a dataset's samples of that
// category, or every image of a folder of one category (a plain folder, or
// one category's test folder) under that name, labels kept.
func asCategory(samples []dataset.Sample, name, input string) ([]dataset.Sample, error) {
	var mine []dataset.Sample
	cats := map[string]bool{}
	for _, smp := range samples {
		cats[smp.Category] = true
		if smp.Category == name {
			mine = append(mine, smp)
		}
	}
	if len(mine) > 0 {
		return mine, nil
	}
	if len(cats) > 1 {
		return nil, usagef("--category %s: %s is a dataset without that category (it has %s)", name, input, strings.Join(slices.Sorted(maps.Keys(cats)), ", "))
	}
	out := make([]dataset.Sample, len(samples))
	for i, smp := range samples {
		smp.Category = name
		out[i] = smp
	}
	return out, nil
}

// checkCategory refuses a --category the model was not trained on, naming
// those it was.
func checkCategory(s *project.Session, version int, name string) error {
	var rec storage.ModelRecord
	var err error
	if version <= 0 {
		rec, err = s.Store.ActiveModel()
	} else {
		rec, err = s.Store.Model(version)
	}
	if err != nil {
		return fmt.Errorf("project %s: model: %w", s.Store.Path(), err)
	}
	var meta pipeline.Meta
	if err := json.Unmarshal(rec.Config, &meta); err != nil {
		return fmt.Errorf("model %d: metadata: %w", rec.Version, err)
	}
	if !slices.Contains(meta.Categories, name) {
		return usagef("--category %s: model %d knows %s", name, rec.Version, strings.Join(meta.Categories, ", "))
	}
	return nil
}

// inspectReport translates an inspection into the report writer's terms:
// the header from the project and the model, one item per sample (samples
// and res.Images are in the same order).
func inspectReport(s *project.Session, input string, opacity float64, samples []dataset.Sample, res *project.InspectResult) report.Report {
	meta := res.Model.Meta
	name, _ := s.Store.Name()
	backbone := s.Store.Settings().Backbone
	if meta.Card != nil && meta.Card.Name != "" {
		backbone = meta.Card.Name
	}
	r := report.Report{Title: "Inspection of " + input, Created: time.Now(), Project: name, Input: input,
		ModelVersion: res.ModelVersion, Method: string(meta.Method), Regime: meta.Regime, Backbone: backbone,
		Threshold: float64(meta.Threshold), Opacity: opacity,
		MapLo: float64(meta.MapLo), MapHi: float64(max(meta.MapHi, meta.Threshold*1.5, meta.MapLo+1e-6))}
	if len(meta.CategoryThresholds) > 0 {
		r.CategoryThresholds = map[string]float64{}
		for c, t := range meta.CategoryThresholds {
			r.CategoryThresholds[c] = float64(t)
		}
	}
	masks := map[string]string{}
	for i, sc := range res.Images {
		masks[sc.Record.Path] = sc.MaskPath
		r.Items = append(r.Items, report.Item{Path: sc.Record.Path, Category: sc.Record.Category, DefectType: samples[i].Defect,
			Score: float64(sc.Score), Label: project.LabelName(sc.Record.Label), Map: sc.Map, MapW: sc.MapSize, MapH: sc.MapSize})
	}
	r.LoadImage = func(it report.Item) (image.Image, error) { return imageio.Load(it.Path) }
	r.LoadMask = func(it report.Item) (*image.Gray, error) {
		if masks[it.Path] == "" {
			return nil, nil
		}
		return imageio.LoadMask(masks[it.Path])
	}
	r.PerCategory = res.PerCategory
	return r
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

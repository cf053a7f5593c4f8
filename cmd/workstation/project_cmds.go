package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/dmad/workstation"
	"github.com/dmad/workstation/core/banks"
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/metrics"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/project"
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
	fs := newFlags("train", "--project P.db --data DIR [flags]",
		"Imports a dataset (MVTec AD or VisA layout) into the project (paths, hashes and masks; images\n"+
			"stay where they are), then trains ONE unified model over all selected categories and stores it\n"+
			"as the project's new active model. With --seen-anomalies K, K anomalous test images per\n"+
			"category (spread over defect types, fixed by --seed) become seen anomalies: moved to training\n"+
			"with their masks and left out of evaluation (semi-supervised regime). Features are cached in\n"+
			"the project, so retraining is much faster.", stderr)
	var ef engineFlags
	var ff fitFlags
	ef.register(fs)
	ff.register(fs)
	proj := fs.String("project", "", "project `FILE` (created when missing)")
	data := fs.String("data", "", "dataset `DIR` to import before training (optional if the project has images)")
	cats := fs.String("categories", "", "comma-separated categories (default: all)")
	seen := fs.Int("seen-anomalies", 0, "K anomalous images per category used as seen anomalies (0: unsupervised)")
	weak := fs.String("weak", "", "`DIR` of images known to be defective but without masks (DIR/<category>/<image>): imported as weak anomalies, whose top-scoring patches the semi-supervised regime trains on")
	method := fs.String("method", "dmad", "dmad or patchcore")
	skipBad := fs.Bool("skip-bad", false, "skip unreadable images and masks with a warning instead of stopping")
	full := fs.Bool("full-retrain", false, "rebuild banks and train the mapper from scratch even when an earlier model used the same normal images (default: reuse and fine-tune)")
	if err := parse(fs, args); err != nil {
		return err
	}
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
		if ds, err = dataset.OpenContext(ctx, *data, dataset.Options{Categories: c.Categories, SkipBad: *skipBad}); err != nil {
			return err
		}
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
	fmt.Fprintf(stdout, "model %d (%s, %s, %d categories, %d seen anomalies%s) trained in %s; threshold %.4f\n",
		rec.Version, model.Meta.Method, model.Meta.Regime, len(model.Meta.Categories), model.Meta.SeenImages, weakNote,
		time.Since(start).Round(time.Second), model.Meta.Threshold)
	return nil
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
	Project      string                     `json:"project"`
	ModelVersion int                        `json:"model_version"`
	Method       string                     `json:"method"`
	Regime       string                     `json:"regime"`
	Threshold    float32                    `json:"threshold"`
	RunID        uint64                     `json:"run_id"`
	PerCategory  map[string]metrics.Summary `json:"per_category"`
	Mean         metrics.Summary            `json:"mean"`
	Images       []evalImage                `json:"images"`
}

type evalImage struct {
	Path      string  `json:"path"`
	Category  string  `json:"category"`
	Anomalous bool    `json:"anomalous"`
	Score     float32 `json:"score"`
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("eval", "--project P.db [--data DIR] --json OUT.json",
		"Scores the project's test images with the active model (or --model N), computes image and pixel\n"+
			"metrics per category, stores the run in the project (unless --save=false) and writes it as\n"+
			"JSON. --data imports a dataset's images first. With --save=false and no --data the project is\n"+
			"opened read-only (read-only media, several readers).", stderr)
	var ef engineFlags
	ef.register(fs)
	proj := fs.String("project", "", "project `FILE`")
	data := fs.String("data", "", "dataset `DIR` to import before evaluating")
	out := fs.String("json", "", "write the evaluation to `FILE`")
	version := fs.Int("model", 0, "model version (0: the active one)")
	save := fs.Bool("save", true, "store the run in the project")
	search := searchFlag(fs, banks.SearchExact)
	if err := parse(fs, args); err != nil {
		return err
	}
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
		Threshold: res.Threshold, RunID: res.RunID, PerCategory: res.PerCategory, Mean: res.Mean}
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
	fs := newFlags("inspect", "--project P.db --input DIR --out DIR [flags]",
		"Scores every image under --input with the project's active model and writes to --out:\n"+
			"scores.csv (file, category, score, decision at the threshold), one heatmap overlay PNG per\n"+
			"image (with the ground-truth contour where a mask exists), ROC/PR curves when labels are\n"+
			"known, and report.html + summary.json. The project is opened read-only.", stderr)
	var ef engineFlags
	ef.register(fs)
	proj := fs.String("project", "", "project `FILE`")
	input := fs.String("input", "", "`DIR` of images (a plain folder, or MVTec/VisA layout)")
	outDir := fs.String("out", "", "output `DIR` (created)")
	version := fs.Int("model", 0, "model version (0: the active one)")
	threshold := fs.Float64("threshold", -1, "decision threshold on the image score (default: the model's)")
	opacity := fs.Float64("opacity", 0.5, "heatmap opacity in the overlays")
	skipBad := fs.Bool("skip-bad", false, "skip unreadable or damaged images (listed on stderr) instead of failing")
	search := searchFlag(fs, banks.SearchExact)
	shardSpec := fs.String("shard", "", "score only shard `I/N` of the input (stable split; combine with 'workstation report merge')")
	if err := parse(fs, args); err != nil {
		return err
	}
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
	scan, err := project.InspectSamples(ctx, *input, project.ScanOptions{SkipBad: *skipBad})
	if err != nil {
		return err
	}
	samples, skipped := scan.Samples, scan.Skipped
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
	pr := newProgress(stderr, ef.quiet)
	defer pr.Done()
	res, err := s.Inspect(ctx, *version, samples, pr.Report)
	if err != nil {
		return err
	}
	thr := float64(res.Model.Meta.Threshold)
	if *threshold >= 0 {
		thr = *threshold
	}
	r := inspectReport(*input, thr, *opacity, res)
	if err := report.Write(ctx, *outDir, r, pr.Report); err != nil {
		return err
	}
	anomalous := 0
	for _, sc := range res.Images {
		if float64(sc.Score) >= thr {
			anomalous++
		}
	}
	n := len(res.Images)
	summary := map[string]any{"input": *input, "images": n, "threshold": thr, "anomalous": anomalous,
		"normal": n - anomalous, "model_method": res.Model.Meta.Method, "model_regime": res.Model.Meta.Regime,
		"workstation_version": workstation.Version()}
	if r.PerCategory != nil {
		summary["per_category"] = r.PerCategory
	}
	if sh != nil {
		summary["shard"] = sh.String()
	}
	if err := writeJSON(filepath.Join(*outDir, "summary.json"), summary); err != nil {
		return err
	}
	pr.Done()
	fmt.Fprintf(stdout, "%d images: %d above the threshold %.4f, %d below; report in %s\n",
		n, anomalous, thr, n-anomalous, *outDir)
	return nil
}

// inspectReport translates an inspection into the report writer's terms.
func inspectReport(input string, thr, opacity float64, res *project.InspectResult) report.Report {
	r := report.Report{Title: "Inspection of " + input, Created: time.Now(), Threshold: thr, Opacity: opacity}
	masks := map[string]string{}
	for _, sc := range res.Images {
		masks[sc.Record.Path] = sc.MaskPath
		r.Items = append(r.Items, report.Item{Path: sc.Record.Path, Category: sc.Record.Category, Score: float64(sc.Score),
			Label: project.LabelName(sc.Record.Label), Map: sc.Map, MapW: sc.MapSize, MapH: sc.MapSize})
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

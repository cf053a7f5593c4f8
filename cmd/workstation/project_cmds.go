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
	"github.com/dmad/workstation/core/dataset"
	"github.com/dmad/workstation/core/imageio"
	"github.com/dmad/workstation/core/pipeline"
	"github.com/dmad/workstation/core/project"
	"github.com/dmad/workstation/storage"
	"github.com/dmad/workstation/ui/report"
)

// openSession opens the runtime and the project with the engine flags'
// backbone and input size recorded in its settings.
func openSession(ef *engineFlags, path string, create bool, setBackbone bool) (*project.Session, func(), error) {
	if path == "" {
		return nil, nil, usagef("--project is required")
	}
	rt, err := ef.runtime()
	if err != nil {
		return nil, nil, err
	}
	s, err := project.Open(path, create, rt, nil)
	if err != nil {
		rt.Close()
		return nil, nil, err
	}
	if setBackbone {
		if err := s.SetBackbone(ef.backbone, ef.inputSize); err != nil {
			s.Close()
			rt.Close()
			return nil, nil, err
		}
	}
	return s, func() { s.Close(); rt.Close() }, nil
}

func eventLine(e project.Progress) string {
	if e.Stage == "train" {
		return fmt.Sprintf("epoch %d/%d loss %.4f normal>m %.2f neg<-m %.2f anom<-m %.2f", e.Epoch, e.Epochs, e.Loss, e.NormalAbove, e.NegBelow, e.AnomBelow)
	}
	return ""
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
	s, closeAll, err := openSession(&ef, *proj, true, true)
	if err != nil {
		return err
	}
	defer closeAll()
	pr := newProgress(stderr, ef.quiet)
	defer pr.Done()
	if *data != "" {
		ds, err := dataset.OpenContext(ctx, *data, dataset.Options{Categories: splitList(*cats), SkipBad: *skipBad})
		if err != nil {
			return err
		}
		for _, p := range ds.Skipped {
			pr.Log("skipped %s", p.Error())
		}
		if _, err := s.ImportDataset(ctx, ds, func(d, t int) { pr.Update("import", d, t, "") }); err != nil {
			return err
		}
		if *seen > 0 {
			_, moved := dataset.SemiSplit(ds, *seen, ff.seed)
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
		}
	}
	start := time.Now()
	rec, model, err := s.Train(ctx, project.TrainOptions{Method: m, Semi: *seen > 0, Categories: splitList(*cats),
		Fit: ff.options(), OODImages: ff.oodImages, FullRetrain: *full},
		func(e project.Progress) { pr.Update(e.Stage, e.Done, e.Total, eventLine(e)) })
	if err != nil {
		return err
	}
	pr.Done()
	fmt.Fprintf(stdout, "model %d (%s, %s, %d categories, %d seen anomalies) trained in %s; threshold %.4f\n",
		rec.Version, model.Meta.Method, model.Meta.Regime, len(model.Meta.Categories), model.Meta.SeenImages,
		time.Since(start).Round(time.Second), model.Meta.Threshold)
	return nil
}

// evalReport is eval's JSON output.
type evalReport struct {
	Project      string                      `json:"project"`
	ModelVersion int                         `json:"model_version"`
	Method       string                      `json:"method"`
	Regime       string                      `json:"regime"`
	Threshold    float32                     `json:"threshold"`
	RunID        uint64                      `json:"run_id"`
	PerCategory  map[string]pipeline.Metrics `json:"per_category"`
	Mean         pipeline.Metrics            `json:"mean"`
	Images       []evalImage                 `json:"images"`
}

type evalImage struct {
	Path      string  `json:"path"`
	Category  string  `json:"category"`
	Anomalous bool    `json:"anomalous"`
	Score     float32 `json:"score"`
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", "--project P.db [--data DIR] --json OUT.json",
		"Scores the project's test images with the active model (or --model N), computes image and pixel\n"+
			"metrics per category, stores the run in the project and writes it as JSON. --data imports\n"+
			"a dataset's images first.", stderr)
	var ef engineFlags
	ef.register(fs)
	proj := fs.String("project", "", "project `FILE`")
	data := fs.String("data", "", "dataset `DIR` to import before evaluating")
	out := fs.String("json", "", "write the evaluation to `FILE`")
	version := fs.Int("model", 0, "model version (0: the active one)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--json is required")
	}
	if _, err := os.Stat(*proj); err != nil {
		return fmt.Errorf("project %s: %w", *proj, err)
	}
	s, closeAll, err := openSession(&ef, *proj, false, false)
	if err != nil {
		return err
	}
	defer closeAll()
	pr := newProgress(stderr, ef.quiet)
	defer pr.Done()
	if *data != "" {
		ds, err := dataset.OpenContext(ctx, *data, dataset.Options{})
		if err != nil {
			return err
		}
		if _, err := s.ImportDataset(ctx, ds, func(d, t int) { pr.Update("import", d, t, "") }); err != nil {
			return err
		}
	}
	res, err := s.Evaluate(ctx, *version, func(e project.Progress) { pr.Update(e.Stage, e.Done, e.Total, "") })
	if err != nil {
		return err
	}
	m, rec, err := s.LoadModel(res.ModelVersion)
	if err != nil {
		return err
	}
	rep := evalReport{Project: *proj, ModelVersion: rec.Version, Method: string(m.Meta.Method), Regime: m.Meta.Regime,
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
		rec.Version, res.Mean.ImageAUROC, res.Mean.PixelAUROC, res.Mean.PRO, len(res.Images), *out)
	return nil
}

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", "--project P.db --input DIR --out DIR [flags]",
		"Scores every image under --input with the project's active model and writes to --out:\n"+
			"scores.csv (file, category, score, decision at the threshold), one heatmap overlay PNG per\n"+
			"image (with the ground-truth contour where a mask exists), ROC/PR curves when labels are\n"+
			"known, and report.html + summary.json.", stderr)
	var ef engineFlags
	ef.register(fs)
	proj := fs.String("project", "", "project `FILE`")
	input := fs.String("input", "", "`DIR` of images (a plain folder, or MVTec/VisA layout)")
	outDir := fs.String("out", "", "output `DIR` (created)")
	version := fs.Int("model", 0, "model version (0: the active one)")
	threshold := fs.Float64("threshold", -1, "decision threshold on the image score (default: the model's)")
	opacity := fs.Float64("opacity", 0.5, "heatmap opacity in the overlays")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *input == "" || *outDir == "" {
		return usagef("--input and --out are required")
	}
	if _, err := os.Stat(*proj); err != nil {
		return fmt.Errorf("project %s: %w", *proj, err)
	}
	ds, err := dataset.OpenContext(ctx, *input, dataset.Options{})
	if err != nil {
		return err
	}
	samples := ds.Samples
	if ds.Layout != dataset.LayoutFolder {
		samples = ds.Test()
	}
	s, closeAll, err := openSession(&ef, *proj, false, false)
	if err != nil {
		return err
	}
	defer closeAll()
	pr := newProgress(stderr, ef.quiet)
	defer pr.Done()
	scored, model, err := s.Inspect(ctx, *version, samples, func(e project.Progress) { pr.Update(e.Stage, e.Done, e.Total, "") })
	if err != nil {
		return err
	}
	thr := float64(model.Meta.Threshold)
	if *threshold >= 0 {
		thr = *threshold
	}
	r := report.Report{Title: "Inspection of " + *input, Created: time.Now(), Threshold: thr, Opacity: *opacity}
	masks := map[string]string{}
	for _, smp := range samples {
		masks[smp.Path] = smp.MaskPath
	}
	anomalous := 0
	for _, sc := range scored {
		label := ""
		switch sc.Record.Label {
		case storage.LabelNormal:
			label = "good"
		case storage.LabelAnomalous:
			label = "defect"
		}
		if float64(sc.Score) >= thr {
			anomalous++
		}
		r.Items = append(r.Items, report.Item{Path: sc.Record.Path, Category: sc.Record.Category, Score: float64(sc.Score),
			Label: label, Map: sc.Map, MapW: sc.MapSize, MapH: sc.MapSize})
	}
	r.LoadImage = func(it report.Item) (image.Image, error) { return imageio.Load(it.Path) }
	r.LoadMask = func(it report.Item) (*image.Gray, error) {
		if masks[it.Path] == "" {
			return nil, nil
		}
		return imageio.LoadMask(masks[it.Path])
	}
	if ds.Layout != dataset.LayoutFolder {
		items := make([]pipeline.Scored, len(scored))
		for i, sc := range scored {
			items[i] = pipeline.Scored{Path: sc.Record.Path, Category: sc.Record.Category,
				Anomalous: sc.Record.Label == storage.LabelAnomalous, MaskPath: masks[sc.Record.Path], Result: sc.ImageResult}
		}
		enc, err := s.Encoder()
		if err != nil {
			return err
		}
		h0, w0 := enc.Grid()
		per, _, err := pipeline.Evaluate(ctx, items, h0, w0, enc.Config())
		if err != nil {
			return err
		}
		r.PerCategory = map[string]report.Metrics{}
		for c, m := range per {
			r.PerCategory[c] = report.Metrics{ImageAUROC: m.ImageAUROC, ImageAP: m.ImageAP, ImageF1Max: m.ImageF1Max,
				PixelAUROC: m.PixelAUROC, PixelAP: m.PixelAP, PRO: m.PRO}
		}
	}
	if err := report.Write(ctx, *outDir, r, func(d, t int) { pr.Update("report", d, t, "") }); err != nil {
		return err
	}
	summary := map[string]any{"input": *input, "images": len(scored), "threshold": thr, "anomalous": anomalous,
		"normal": len(scored) - anomalous, "model_method": model.Meta.Method, "model_regime": model.Meta.Regime,
		"workstation_version": workstation.Version()}
	if r.PerCategory != nil {
		summary["per_category"] = r.PerCategory
	}
	if err := writeJSON(filepath.Join(*outDir, "summary.json"), summary); err != nil {
		return err
	}
	pr.Done()
	fmt.Fprintf(stdout, "%d images: %d above the threshold %.4f, %d below; report in %s\n",
		len(scored), anomalous, thr, len(scored)-anomalous, *outDir)
	return nil
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

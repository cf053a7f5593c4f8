package ui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"slices"
	"sort"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/ui/internal/curve"
	"github.com/dmad/workstation/ui/internal/plots"
)

// resultsView browses evaluation runs: gallery, metrics, curves.
type resultsView struct {
	w       *Workstation
	content fyne.CanvasObject

	runs    []Run
	runSel  *widget.Select
	evalBtn *widget.Button
	fast    *widget.Check // evaluate with the fast search (off: exact, as bench reports)
	bar     *widget.ProgressBar
	status  *widget.Label
	browser *runBrowser
	compare *compareView
	tabs    *container.AppTabs

	metricRows [][]string
	table      *widget.Table
	curves     [4]*canvas.Image
	current    int
	ignoreSel  bool
}

var metricHeader = []string{"category", "image AUROC", "image AP", "image F1max", "pixel AUROC", "pixel AP", "PRO"}

func newResultsView(w *Workstation) *resultsView {
	v := &resultsView{w: w, current: -1}
	v.runSel = widget.NewSelect(nil, func(s string) {
		if v.ignoreSel {
			return
		}
		if i := slices.Index(v.runSel.Options, s); i >= 0 {
			v.showRun(i)
		}
	})
	v.evalBtn = widget.NewButtonWithIcon("Evaluate latest model", theme.MediaPlayIcon(), func() {
		if !w.needProject() {
			return
		}
		models, err := w.project.Models()
		if err != nil || len(models) == 0 {
			w.showError(errors.New("the project has no trained model"), "train a model on the Train screen first")
			return
		}
		v.evaluate(models[len(models)-1])
	})
	v.fast = widget.NewCheck("Fast search", nil)
	v.bar = widget.NewProgressBar()
	v.bar.Hide()
	v.status = widget.NewLabel("")
	// The gallery decides with the run's model's thresholds, kept with the
	// model in the project (Reviewer), so Results, Inspect, the CLI and the
	// report show one value; Settings.Threshold is no longer read.
	v.browser = newRunBrowser(w)
	v.compare = newCompareView(w)
	v.table = widget.NewTable(func() (int, int) { return len(v.metricRows) + 1, len(metricHeader) },
		func() fyne.CanvasObject { return widget.NewLabel("pixel AUROC 0.000") },
		func(id widget.TableCellID, o fyne.CanvasObject) {
			l := o.(*widget.Label)
			if id.Row == 0 {
				l.TextStyle.Bold = true
				l.SetText(metricHeader[id.Col])
				return
			}
			l.TextStyle.Bold = id.Row == len(v.metricRows)
			l.SetText(v.metricRows[id.Row-1][id.Col])
		})
	for c := range metricHeader {
		v.table.SetColumnWidth(c, 120)
	}
	grid := container.NewGridWithColumns(2)
	for i := range v.curves {
		v.curves[i] = canvas.NewImageFromImage(nil)
		v.curves[i].FillMode = canvas.ImageFillContain
		v.curves[i].SetMinSize(fyne.NewSize(320, 240))
		grid.Add(v.curves[i])
	}
	metricsNote := widget.NewLabelWithStyle("Metrics as computed by the engine for this run; the last row is the mean over categories.",
		fyne.TextAlignLeading, fyne.TextStyle{Italic: true})
	v.tabs = container.NewAppTabs(
		container.NewTabItem("Gallery", v.browser.content),
		container.NewTabItem("Metrics", container.NewBorder(metricsNote, nil, nil, nil, v.table)),
		container.NewTabItem("Curves", container.NewVScroll(grid)),
		container.NewTabItem("Compare versions", v.compare.content),
	)
	top := container.NewBorder(nil, nil, container.NewHBox(widget.NewLabel("Run"), container.NewGridWrap(fyne.NewSize(340, 36), v.runSel), v.evalBtn, v.fast),
		container.NewGridWrap(fyne.NewSize(160, 36), v.bar), v.status)
	v.content = container.NewBorder(top, nil, nil, nil, v.tabs)
	return v
}

func (v *resultsView) clear() {
	v.runs, v.current = nil, -1
	v.runSel.SetOptions(nil)
	v.runSel.ClearSelected()
	v.browser.setRun(Run{})
	v.compare.setRuns(nil)
	v.metricRows = nil
	v.table.Refresh()
	for _, c := range v.curves {
		c.Image = nil
		c.Refresh()
	}
	v.status.SetText("")
}

// reload lists the project's runs (evaluations, not batches) and shows the newest.
func (v *resultsView) reload() {
	p := v.w.project
	if p == nil {
		return
	}
	runs, err := p.Runs()
	if err != nil {
		v.w.showError(fmt.Errorf("list runs: %w", err), "reopen the project")
		return
	}
	if len(runs) == len(v.runs) && v.current >= 0 {
		return
	}
	v.runs = runs
	opts := make([]string, len(runs))
	for i, r := range runs {
		opts[i] = runOption(i, r)
	}
	v.ignoreSel = true
	v.runSel.SetOptions(opts)
	v.ignoreSel = false
	v.compare.setRuns(runs)
	if len(runs) == 0 {
		v.status.SetText("No runs yet: train a model, then evaluate it.")
		return
	}
	v.showRun(len(runs) - 1)
}

func (v *resultsView) showRun(i int) {
	v.current = i
	v.ignoreSel = true
	v.runSel.SetSelectedIndex(i)
	v.ignoreSel = false
	run := v.runs[i]
	v.browser.setRun(run)
	v.metricRows = metricRows(run.PerCategory)
	v.table.Refresh()
	v.status.SetText(fmt.Sprintf("%s: %d images, model %s", run.Name, len(run.Images), run.ModelID))
	v.drawCurves(run)
}

func metricRows(m map[string]Metrics) [][]string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var rows [][]string
	var mean Metrics
	f := func(x float64) string { return fmt.Sprintf("%.3f", x) }
	for _, n := range names {
		x := m[n]
		rows = append(rows, []string{n, f(x.ImageAUROC), f(x.ImageAP), f(x.ImageF1Max), f(x.PixelAUROC), f(x.PixelAP), f(x.PRO)})
		k := float64(len(names))
		mean.ImageAUROC += x.ImageAUROC / k
		mean.ImageAP += x.ImageAP / k
		mean.ImageF1Max += x.ImageF1Max / k
		mean.PixelAUROC += x.PixelAUROC / k
		mean.PixelAP += x.PixelAP / k
		mean.PRO += x.PRO / k
	}
	if len(names) > 0 {
		rows = append(rows, []string{"mean", f(mean.ImageAUROC), f(mean.ImageAP), f(mean.ImageF1Max), f(mean.PixelAUROC), f(mean.PixelAP), f(mean.PRO)})
	}
	return rows
}

// drawCurves renders image- and pixel-level ROC and PR curves off the UI thread.
func (v *resultsView) drawCurves(run Run) {
	p := v.w.project
	idx := v.current
	v.w.background(func(ctx context.Context) {
		imgs, err := curveImages(ctx, p, run)
		fyne.Do(func() {
			if v.current != idx {
				return
			}
			if err != nil {
				v.status.SetText("Curves unavailable: " + err.Error())
				return
			}
			for i, img := range imgs {
				v.curves[i].Image = img
				v.curves[i].Refresh()
			}
		})
	})
}

// curveImages returns image ROC, image PR, pixel ROC and pixel PR plots,
// one series per category with both classes.
func curveImages(ctx context.Context, p Project, run Run) ([4]image.Image, error) {
	var out [4]image.Image
	type pts struct {
		scores []float64
		labels []bool
	}
	img, pix := map[string]*pts{}, map[string]*pts{}
	get := func(m map[string]*pts, c string) *pts {
		if m[c] == nil {
			m[c] = &pts{}
		}
		return m[c]
	}
	for _, s := range run.Images {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if s.Label == LabelUnknown {
			continue
		}
		pi := get(img, s.Category)
		pi.scores = append(pi.scores, s.Score)
		pi.labels = append(pi.labels, s.Label == LabelDefect)
		if len(s.Map) < s.MapW*s.MapH || s.MapW == 0 {
			continue
		}
		var mask *image.Gray
		if s.Label == LabelDefect {
			_, m, err := loadScored(p, ScoredImage{ImageID: s.ImageID, Path: s.Path, MaskPath: s.MaskPath})
			if err != nil || m == nil {
				continue // a defect without a mask has no pixel labels
			}
			mask = m
		}
		pp := get(pix, s.Category)
		for y := range s.MapH {
			for x := range s.MapW {
				lab := false
				if mask != nil {
					b := mask.Bounds()
					mx := (2*x + 1) * b.Dx() / (2 * s.MapW)
					my := (2*y + 1) * b.Dy() / (2 * s.MapH)
					lab = mask.Pix[my*mask.Stride+mx] > 0
				}
				pp.scores = append(pp.scores, float64(s.Map[y*s.MapW+x]))
				pp.labels = append(pp.labels, lab)
			}
		}
	}
	for k, set := range []map[string]*pts{img, pix} {
		cats := make([]string, 0, len(set))
		for c := range set {
			cats = append(cats, c)
		}
		sort.Strings(cats)
		var roc, pr []plots.Series
		for _, c := range cats {
			fpr, tpr, _ := curve.ROC(set[c].scores, set[c].labels)
			if fpr == nil {
				continue
			}
			rec, prec := curve.PR(set[c].scores, set[c].labels)
			roc = append(roc, plots.Series{Name: fmt.Sprintf("%s (%.3f)", c, curve.AUC(fpr, tpr)), X: fpr, Y: tpr})
			pr = append(pr, plots.Series{Name: c, X: rec, Y: prec})
		}
		level := [...]string{"Image", "Pixel"}[k]
		var err error
		if out[2*k], err = plots.Lines(level+" ROC", "false-positive rate", "true-positive rate", roc, 420, 320, true, true); err != nil {
			return out, err
		}
		if out[2*k+1], err = plots.Lines(level+" precision-recall", "recall", "precision", pr, 420, 320, true, false); err != nil {
			return out, err
		}
	}
	return out, nil
}

// evaluate scores the project's test split with model m and shows the run.
func (v *resultsView) evaluate(m ModelInfo) {
	p := v.w.project
	if p == nil {
		return
	}
	dev := DeviceAuto
	if s, err := p.Settings(); err == nil {
		dev = s.Device
	}
	v.evalBtn.Disable()
	v.status.SetText(fmt.Sprintf("Evaluating model v%d…", m.Version))
	v.bar.SetValue(0)
	v.bar.Show()
	fast := v.fast.Checked
	v.w.background(func(ctx context.Context) {
		run, err := v.w.deps.Engine.Score(ctx, ScoreRequest{Project: p, ModelID: m.ID, Device: dev, Fast: fast}, func(pr Progress) {
			fyne.Do(func() { v.bar.SetValue(pr.Fraction) })
		})
		if err == nil {
			if run.Name == "" {
				run.Name = fmt.Sprintf("model v%d on test split", m.Version)
			}
			if fast {
				run.Name += " (fast search)"
			}
			run, err = p.SaveRun(run)
		}
		fyne.Do(func() {
			v.evalBtn.Enable()
			v.bar.Hide()
			if err != nil {
				v.status.SetText("Evaluation failed.")
				v.w.showError(fmt.Errorf("evaluate model v%d: %w", m.Version, err), "the project needs test images (split \"test\"); import an MVTec-style folder or a test folder")
				return
			}
			v.runs = nil
			v.current = -1
			v.reload()
		})
	})
}

// runOption is a run's line in the Results run list: number, name, date
// and size. Runs stored before names stopped carrying their date are not
// dated twice.
func runOption(i int, r Run) string {
	when := r.Created.Format("2006-01-02 15:04")
	name := strings.TrimSpace(strings.Replace(r.Name, when, "", 1))
	return fmt.Sprintf("%d. %s — %s (%d images)", i+1, name, when, len(r.Images))
}

package ui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"path/filepath"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/dmad/workstation/core/progress"
	"github.com/dmad/workstation/core/review"
	"github.com/dmad/workstation/ui/report"
)

// inspectView scores a folder (a batch), reviews it and exports a report.
type inspectView struct {
	w       *Workstation
	content fyne.CanvasObject

	dir       string
	dirLabel  *widget.Label
	scoreBtn  *widget.Button
	cancelBtn *widget.Button
	exportBtn *widget.Button
	fast      *widget.Check // score with the fast search (on by default)
	bar       *widget.ProgressBar
	status    *widget.Label
	browser   *runBrowser
	run       *Run
	cancel    context.CancelFunc
}

func newInspectView(w *Workstation) *inspectView {
	v := &inspectView{w: w}
	v.dirLabel = widget.NewLabel("No folder chosen.")
	pick := widget.NewButtonWithIcon("Choose folder…", theme.FolderOpenIcon(), func() {
		dialog.ShowFolderOpen(func(u fyne.ListableURI, err error) {
			if err == nil && u != nil {
				v.setDir(u.Path())
			}
		}, w.win)
	})
	v.scoreBtn = widget.NewButtonWithIcon("Score batch", theme.MediaPlayIcon(), func() { v.score() })
	v.scoreBtn.Importance = widget.HighImportance
	v.scoreBtn.Disable()
	v.cancelBtn = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), func() {
		if v.cancel != nil {
			v.cancel()
		}
	})
	v.cancelBtn.Disable()
	v.exportBtn = widget.NewButtonWithIcon("Export report…", theme.DocumentSaveIcon(), func() {
		dialog.ShowFolderOpen(func(u fyne.ListableURI, err error) {
			if err == nil && u != nil {
				v.export(filepath.Join(u.Path(), "report-"+filepath.Base(v.dir)))
			}
		}, w.win)
	})
	v.exportBtn.Disable()
	// A batch to inspect wants its verdicts quickly; the fast search's
	// decisions match the exact one's within 0.001 image AUROC.
	v.fast = widget.NewCheck("Fast search", nil)
	v.fast.SetChecked(true)
	v.bar = widget.NewProgressBar()
	v.status = widget.NewLabel("")
	v.browser = newRunBrowser(w)
	top := container.NewVBox(
		container.NewBorder(nil, nil, container.NewHBox(pick, v.scoreBtn, v.cancelBtn, v.exportBtn, v.fast), nil, v.dirLabel),
		container.NewBorder(nil, nil, nil, v.status, v.bar))
	v.content = container.NewBorder(top, nil, nil, nil, v.browser.content)
	return v
}

func (v *inspectView) reload() {}

func (v *inspectView) clear() {
	v.run = nil
	v.browser.setRun(Run{})
	v.exportBtn.Disable()
	v.status.SetText("")
}

func (v *inspectView) setDir(dir string) {
	v.dir = dir
	v.dirLabel.SetText(dir)
	v.scoreBtn.Enable()
}

// score scores the chosen folder with the project's latest model.
func (v *inspectView) score() {
	if !v.w.needProject() || v.dir == "" {
		return
	}
	p := v.w.project
	models, err := p.Models()
	if err != nil || len(models) == 0 {
		v.w.showError(errors.New("the project has no trained model"), "train a model on the Train screen first")
		return
	}
	m := models[len(models)-1]
	dev := DeviceAuto
	if s, err := p.Settings(); err == nil {
		dev = s.Device
	}
	ctx, cancel := context.WithCancel(v.w.ctx)
	v.cancel = cancel
	v.scoreBtn.Disable()
	v.exportBtn.Disable()
	v.cancelBtn.Enable()
	v.bar.SetValue(0)
	v.status.SetText(fmt.Sprintf("Scoring with model v%d…", m.Version))
	dir, fast := v.dir, v.fast.Checked
	v.w.background(func(context.Context) {
		defer cancel()
		run, err := v.w.deps.Engine.Score(ctx, ScoreRequest{Project: p, ModelID: m.ID, Device: dev, Dir: dir, Fast: fast}, func(pr Progress) {
			fyne.Do(func() {
				v.bar.SetValue(pr.Fraction)
				if pr.Steps > 0 {
					v.status.SetText(fmt.Sprintf("%d / %d images · ETA %s", pr.Step, pr.Steps, formatETA(pr.ETA)))
				}
			})
		})
		fyne.Do(func() {
			v.scoreBtn.Enable()
			v.cancelBtn.Disable()
			switch {
			case errors.Is(err, context.Canceled):
				v.status.SetText("Cancelled.")
			case err != nil:
				v.status.SetText("Failed.")
				v.w.showError(fmt.Errorf("score %s: %w", dir, err), "choose a folder with readable images")
			default:
				if run.Name == "" {
					run.Name = "batch " + filepath.Base(dir)
				}
				v.run = &run
				v.browser.setRun(run)
				v.bar.SetValue(1)
				v.status.SetText(fmt.Sprintf("%d images scored.", len(run.Images)))
				v.exportBtn.Enable()
			}
		})
	})
}

// export writes the report of the scored batch into dir.
func (v *inspectView) export(dir string) {
	if v.run == nil {
		return
	}
	// Each image is decided at its category's threshold and carries its
	// reviewer's decision, as in the view.
	run, th, p := *v.run, v.browser.th.Clone(), v.w.project
	overrides, types := v.browser.overrides, v.browser.types
	r := report.Report{Title: "Inspection report — " + run.Name, Created: run.Created, Threshold: th.Global,
		CategoryThresholds: th.PerCategory, Project: p.Name(), Input: v.dir,
		PerCategory: map[string]report.Metrics{},
		LoadImage: func(it report.Item) (image.Image, error) {
			for _, s := range run.Images {
				if s.Path == it.Path {
					img, _, err := loadScored(p, s)
					return img, err
				}
			}
			return decodeFile(it.Path)
		}}
	if mv, err := strconv.Atoi(run.ModelID); err == nil {
		r.ModelVersion = mv
		if models, err := p.Models(); err == nil {
			for _, m := range models {
				if m.Version == mv {
					r.Regime = string(m.Regime)
				}
			}
		}
	}
	r.Operator = review.CurrentUser()
	for _, s := range run.Images {
		it := report.Item{Path: s.Path, Category: s.Category, DefectType: defectType(s, types), Score: s.Score,
			Label: string(s.Label), Map: s.Map, MapW: s.MapW, MapH: s.MapH}
		if o, ok := overrides[OverrideKey(s)]; ok {
			it.Override = &report.Override{Verdict: o.Final(), By: o.Who, At: o.When}
		}
		r.Items = append(r.Items, it)
	}
	for c, m := range run.PerCategory {
		r.PerCategory[c] = m
	}
	v.exportBtn.Disable()
	v.status.SetText("Writing the report…")
	v.w.background(func(ctx context.Context) {
		err := report.Write(ctx, dir, r, func(e progress.Event) {
			fyne.Do(func() { v.bar.SetValue(float64(e.Done) / float64(e.Total)) })
		})
		fyne.Do(func() {
			v.exportBtn.Enable()
			if err != nil {
				v.status.SetText("Report failed.")
				v.w.showError(err, "choose a folder you can write to, with free space")
				return
			}
			v.status.SetText("Report written to " + dir)
			dialog.ShowInformation("Report written", "The report is in\n"+dir+"\n(report.html, scores.csv, overlays/).", v.w.win)
		})
	})
}
